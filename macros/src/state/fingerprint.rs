//! The fingerprint of a state's definition: a stable 64-bit FNV-1a hash.
//!
//! It covers the state's stable name, its `version`, and for each field in order:
//! its name, its type as written (tokens, whitespace-normalized) and its `serde`
//! attributes — everything that changes the snapshot's bytes. So renaming,
//! reordering, retyping, adding or removing a field, or changing a field's
//! `#[serde(..)]` changes it; comments, doc comments and formatting do not. A
//! type alias or a change inside a field's own type is not seen: bump
//! `#[state(version = N)]` for those.

use quote::ToTokens;

use super::model::StateDef;

pub fn fingerprint(def: &StateDef<'_>) -> u64 {
    let mut text = format!("{}|v{}", def.name, def.version);
    for field in &def.fields {
        let name = field
            .ident
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default();
        text.push_str(&format!("|{name}:{}", field.ty.to_token_stream()));
        for attr in field.attrs.iter().filter(|a| a.path().is_ident("serde")) {
            text.push_str(&format!("#{}", attr.meta.to_token_stream()));
        }
    }
    fnv1a(text.as_bytes())
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}
