//! Validation of a state struct and its `#[state(..)]` attribute.

use syn::{Data, DeriveInput, Error, Field, Fields, Path};

use crate::attr::{self, Errors};

const VALID_KEYS: &str = "`event`, `version`, `name`";

/// A validated state struct.
pub struct StateDef<'a> {
    pub input: &'a DeriveInput,
    pub event: Path,
    pub name: String,
    pub version: u32,
    pub fields: Vec<&'a Field>,
}

impl<'a> StateDef<'a> {
    /// The state, or every error and the event type if one was named.
    pub fn from_input(input: &'a DeriveInput) -> std::result::Result<Self, (Error, Option<Path>)> {
        let mut errors = Errors::default();
        let fields = match &input.data {
            Data::Struct(data) => match &data.fields {
                Fields::Named(named) => named.named.iter().collect(),
                Fields::Unnamed(_) | Fields::Unit => {
                    errors.push(Error::new(
                        data.struct_token.span,
                        "`#[derive(State)]` needs a struct with named fields, e.g. `struct OrderBook { orders: Table<Order> }`",
                    ));
                    Vec::new()
                }
            },
            Data::Enum(data) => {
                errors.push(Error::new(
                    data.enum_token.span,
                    "`#[derive(State)]` is for structs with named fields: a state is the struct events fold into",
                ));
                Vec::new()
            }
            Data::Union(data) => {
                errors.push(Error::new(
                    data.union_token.span,
                    "`#[derive(State)]` is for structs with named fields, not unions",
                ));
                Vec::new()
            }
        };
        let (mut event, mut version, mut name) = (None, None, None);
        for attr in input.attrs.iter().filter(|a| a.path().is_ident("state")) {
            let parsed = attr.parse_nested_meta(|meta| {
                if meta.path.is_ident("event") {
                    let path: Path = meta.value()?.parse().map_err(|e| {
                        Error::new(
                            e.span(),
                            "expected the event type this state folds, e.g. `event = OrderEvent`",
                        )
                    })?;
                    attr::set_once(&mut event, &meta, path)
                } else if meta.path.is_ident("version") {
                    let v = attr::version(&meta)?;
                    attr::set_once(&mut version, &meta, v)
                } else if meta.path.is_ident("name") {
                    let n = attr::name(&meta)?;
                    attr::set_once(&mut name, &meta, n)
                } else {
                    Err(attr::unknown_key(&meta, "state", VALID_KEYS))
                }
            });
            if let Err(error) = parsed {
                errors.push(error);
            }
        }
        let Some(event) = event else {
            return Err((
                errors.fail(Error::new_spanned(
                    &input.ident,
                    "a state must say which events it folds: add `#[state(event = YourEvent)]` to the struct",
                )),
                None,
            ));
        };
        let def = StateDef {
            input,
            event,
            name: name.unwrap_or_else(|| input.ident.to_string()),
            version: version.unwrap_or(1),
            fields,
        };
        let event = def.event.clone();
        errors.finish(def).map_err(|error| (error, Some(event)))
    }
}
