//! Validation of a state struct and its `#[state(..)]` attribute.

use syn::{Data, DeriveInput, Error, Field, Fields, Path};

use crate::attr::{self, Errors};

const VALID_KEYS: &str = "`event`, `events`, `version`, `name`";

/// A validated state struct.
pub struct StateDef<'a> {
    pub input: &'a DeriveInput,
    /// The event types it folds, in the order listed (at least one, no repeats).
    pub events: Vec<Path>,
    pub name: String,
    pub version: u32,
    pub fields: Vec<&'a Field>,
}

impl<'a> StateDef<'a> {
    /// The state, or every error and the event types that were named.
    pub fn from_input(input: &'a DeriveInput) -> std::result::Result<Self, (Error, Vec<Path>)> {
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
        let mut events: Option<Vec<Path>> = None;
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
                } else if meta.path.is_ident("events") {
                    let mut listed: Vec<Path> = Vec::new();
                    let parsed = meta.parse_nested_meta(|inner| {
                        let path = inner.path.clone();
                        let key = quote::ToTokens::to_token_stream(&path).to_string();
                        if listed
                            .iter()
                            .any(|p| quote::ToTokens::to_token_stream(p).to_string() == key)
                        {
                            errors.push(Error::new_spanned(
                                &path,
                                format!("`{key}` is listed twice in `events(..)`: list each event type once"),
                            ));
                        } else {
                            listed.push(path);
                        }
                        Ok(())
                    });
                    // Reported here, and `events` is still set: one mistake, one error.
                    if let Err(e) = parsed {
                        errors.push(Error::new(
                            e.span(),
                            "expected the event types this state folds, e.g. `events(OrderEvent, CustomerEvent)`",
                        ));
                    } else if listed.is_empty() {
                        errors.push(meta.error(
                            "`events(..)` lists no event type: name at least one, e.g. `events(OrderEvent)`",
                        ));
                    }
                    attr::set_once(&mut events, &meta, listed)
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
        let events = match (event, events) {
            (Some(event), None) => vec![event],
            (None, Some(events)) => events,
            (Some(event), Some(events)) => {
                let error = Error::new_spanned(
                    &event,
                    "use either `event = E` or `events(E1, E2, ..)`, not both: list every type in `events(..)`",
                );
                return Err((errors.fail(error), events));
            }
            (None, None) => {
                let error = Error::new_spanned(
                    &input.ident,
                    "a state must say which events it folds: add `#[state(event = YourEvent)]` (or `#[state(events(E1, E2))]`) to the struct",
                );
                return Err((errors.fail(error), Vec::new()));
            }
        };
        let def = StateDef {
            input,
            events,
            name: name.unwrap_or_else(|| input.ident.to_string()),
            version: version.unwrap_or(1),
            fields,
        };
        let events = def.events.clone();
        errors.finish(def).map_err(|error| (error, events))
    }
}
