//! Helpers shared by the container attributes of `#[derive(Event)]` and
//! `#[derive(State)]`: collecting errors, and keys that may appear once.

use proc_macro2::Span;
use syn::meta::ParseNestedMeta;
use syn::{Error, LitInt, LitStr, Result};

/// Collects several errors into one report.
#[derive(Default)]
pub struct Errors(Option<Error>);

impl Errors {
    /// Adds an error to the report.
    pub fn push(&mut self, error: Error) {
        match &mut self.0 {
            Some(all) => all.combine(error),
            None => self.0 = Some(error),
        }
    }

    /// Every error pushed, and `last`, as one error.
    pub fn fail(mut self, last: Error) -> Error {
        self.push(last);
        self.0
            .unwrap_or_else(|| Error::new(Span::call_site(), "foldkit: invalid input"))
    }

    /// `Ok(value)` if no error was pushed, else every error.
    pub fn finish<T>(self, value: T) -> Result<T> {
        match self.0 {
            Some(error) => Err(error),
            None => Ok(value),
        }
    }
}

/// Stores `value` in `slot`, or fails if the key was already given.
pub fn set_once<T>(slot: &mut Option<T>, meta: &ParseNestedMeta<'_>, value: T) -> Result<()> {
    if slot.is_some() {
        return Err(meta.error("this key is given twice: keep one"));
    }
    *slot = Some(value);
    Ok(())
}

/// Parses `key = N` where N is a version: an integer of at least 1.
pub fn version(meta: &ParseNestedMeta<'_>) -> Result<u32> {
    let lit: LitInt = meta
        .value()?
        .parse()
        .map_err(|e| Error::new(e.span(), "expected a version number, e.g. `version = 2`"))?;
    let value: u32 = lit.base10_parse()?;
    if value == 0 {
        return Err(Error::new(
            lit.span(),
            "versions start at 1: use `version = 1` or higher",
        ));
    }
    Ok(value)
}

/// Parses `key = "text"` where the text must not be empty.
pub fn name(meta: &ParseNestedMeta<'_>) -> Result<String> {
    let lit: LitStr = meta
        .value()?
        .parse()
        .map_err(|e| Error::new(e.span(), "expected a string, e.g. `name = \"OrderEvent\"`"))?;
    if lit.value().trim().is_empty() {
        return Err(Error::new(lit.span(), "the name must not be empty"));
    }
    Ok(lit.value())
}

/// The error for an unknown key, listing the valid ones.
pub fn unknown_key(meta: &ParseNestedMeta<'_>, attr: &str, valid: &str) -> Error {
    let word = meta
        .path
        .get_ident()
        .map_or_else(|| "this key".to_owned(), |i| format!("`{i}`"));
    meta.error(format!(
        "unknown `#[{attr}(..)]` key {word}: expected one of {valid}"
    ))
}
