//! Validation of an event enum and its `#[event(..)]` attribute.

use syn::{Data, DeriveInput, Error, Ident, Path, Result, Variant};

use crate::attr::{self, Errors};

const VALID_KEYS: &str = "`version`, `name`, `previous`";

/// A validated event enum.
pub struct EventDef<'a> {
    pub input: &'a DeriveInput,
    pub name: String,
    pub version: u32,
    /// `previous = OlderEnum`: the schema this one upcasts from.
    pub previous: Option<Path>,
    pub variants: Vec<&'a Variant>,
}

impl<'a> EventDef<'a> {
    pub fn from_input(input: &'a DeriveInput) -> Result<Self> {
        let mut errors = Errors::default();
        let variants = match &input.data {
            Data::Enum(data) => data.variants.iter().collect(),
            Data::Struct(data) => {
                errors.push(Error::new(
                    data.struct_token.span,
                    "`#[derive(Event)]` is for enums: make the event an enum with one variant per fact, e.g. `enum OrderEvent { Placed { .. } }`",
                ));
                Vec::new()
            }
            Data::Union(data) => {
                errors.push(Error::new(
                    data.union_token.span,
                    "`#[derive(Event)]` is for enums, not unions: make the event an enum with one variant per fact",
                ));
                Vec::new()
            }
        };
        let (mut version, mut name, mut previous) = (None, None, None::<Path>);
        for attr in input.attrs.iter().filter(|a| a.path().is_ident("event")) {
            let parsed = attr.parse_nested_meta(|meta| {
                if meta.path.is_ident("version") {
                    let v = attr::version(&meta)?;
                    attr::set_once(&mut version, &meta, v)
                } else if meta.path.is_ident("name") {
                    let n = attr::name(&meta)?;
                    attr::set_once(&mut name, &meta, n)
                } else if meta.path.is_ident("previous") {
                    let path: Path = meta.value()?.parse().map_err(|e| {
                        Error::new(
                            e.span(),
                            "expected the older event type, e.g. `previous = legacy::OrderEventV1`",
                        )
                    })?;
                    attr::set_once(&mut previous, &meta, path)
                } else {
                    Err(attr::unknown_key(&meta, "event", VALID_KEYS))
                }
            });
            if let Err(error) = parsed {
                errors.push(error);
            }
        }
        let ident: &Ident = &input.ident;
        let def = EventDef {
            input,
            name: name.unwrap_or_else(|| ident.to_string()),
            version: version.unwrap_or(1),
            previous,
            variants,
        };
        errors.finish(def)
    }
}
