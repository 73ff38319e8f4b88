//! The one name escaper: state, subscription and other names as file names.
//!
//! ASCII letters, digits, `_` and `-` are kept; every other byte is written as
//! `%XX` (upper-case hex), so two different names never share a file (`a:b` and
//! `a_b` stay apart) and no name climbs out of its directory (`..` becomes
//! `%2E%2E`). Empty names, control characters and names too long for a file
//! name are refused.

use crate::store::StoreError;

/// Longest escaped name: well under the 255-byte limit of common file systems.
const MAX_LEN: usize = 200;

/// The file name for `name`, or why `name` cannot be stored
/// ([`StoreError::InvalidName`]; `kind` says what kind of name it is).
pub(crate) fn escape(kind: &'static str, name: &str) -> Result<String, StoreError> {
    let invalid = |reason: &str| StoreError::InvalidName {
        kind,
        name: name.to_owned(),
        reason: reason.to_owned(),
    };
    if name.is_empty() {
        return Err(invalid("it is empty"));
    }
    if name.chars().any(char::is_control) {
        return Err(invalid("it contains control characters"));
    }
    let mut out = String::with_capacity(name.len());
    for byte in name.bytes() {
        if byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-' {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    if out.len() > MAX_LEN {
        return Err(invalid("it is longer than 200 bytes once escaped"));
    }
    Ok(out)
}

/// Undoes [`escape`]; a malformed escape is kept as it is (a file put there
/// by hand still gets a name).
pub(crate) fn unescape(name: &str) -> String {
    let bytes = name.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&byte) = bytes.get(i) {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (byte, hex) {
            (b'%', Some(decoded)) => {
                out.push(decoded);
                i += 3;
            }
            _ => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::{escape, unescape};

    #[test]
    fn unescape_undoes_escape() {
        for name in [
            "Order_Book-2",
            "a:b",
            "../x",
            "ünï",
            "process-manager.fulfil",
        ] {
            assert_eq!(unescape(&escape("state", name).unwrap()), name);
        }
        assert_eq!(unescape("50%"), "50%");
        assert_eq!(unescape("%4"), "%4");
    }

    #[test]
    fn keeps_safe_names_and_escapes_the_rest() {
        assert_eq!(escape("state", "Order_Book-2").unwrap(), "Order_Book-2");
        assert_eq!(escape("state", "a:b").unwrap(), "a%3Ab");
        assert_eq!(escape("state", "../x").unwrap(), "%2E%2E%2Fx");
        assert_ne!(
            escape("state", "a:b").unwrap(),
            escape("state", "a_b").unwrap()
        );
    }

    #[test]
    fn refuses_unstorable_names() {
        assert!(escape("state", "").is_err());
        assert!(escape("state", "a\nb").is_err());
        assert!(escape("state", &"x".repeat(201)).is_err());
    }

    #[test]
    fn a_refused_name_is_an_invalid_name_not_an_invalid_append() {
        let error = escape("subscription name", "a\nb").unwrap_err();
        match &error {
            crate::store::StoreError::InvalidName { kind, name, reason } => {
                assert_eq!((*kind, name.as_str()), ("subscription name", "a\nb"));
                assert!(reason.contains("control characters"), "{reason}");
            }
            other => panic!("expected InvalidName, got {other:?}"),
        }
        assert_eq!(
            error.to_string(),
            "subscription name \"a\\nb\" cannot be stored: it contains control characters"
        );
    }
}
