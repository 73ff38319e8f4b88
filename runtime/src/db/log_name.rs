//! Turning an event type's stable name into the name of its log directory.
//!
//! Every log lives in `<db dir>/logs/<log name>`. The log name is the event's
//! [`Event::NAME`](crate::Event::NAME) with ASCII letters, digits, `_` and `-`
//! kept as they are and every other byte written as `%XX` (upper-case hex), so
//! two different names never share a directory (`a:b` and `a_b` stay apart) and
//! no name can climb out of `logs/` (`..` becomes `%2E%2E`). Names that are
//! empty, contain control characters, or would be too long for a file name are
//! rejected.

use crate::db::DbError;

/// Longest log directory name: well under the 255-byte limit of common file systems.
const MAX_LEN: usize = 200;

/// The directory name of the log for events named `name`.
pub(crate) fn log_name(name: &'static str) -> Result<String, DbError> {
    let invalid = |reason| DbError::InvalidEventName { name, reason };
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
        return Err(invalid(
            "it is too long for a directory name (200 bytes once escaped)",
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_plain_names_and_escapes_the_rest() {
        assert_eq!(log_name("OrderEvent").ok().as_deref(), Some("OrderEvent"));
        assert_eq!(
            log_name("shop::v-1_x").ok().as_deref(),
            Some("shop%3A%3Av-1_x")
        );
        assert_eq!(log_name("..").ok().as_deref(), Some("%2E%2E"));
        assert_eq!(log_name("a/b").ok().as_deref(), Some("a%2Fb"));
        assert_eq!(log_name("é").ok().as_deref(), Some("%C3%A9"));
    }

    #[test]
    fn distinct_names_get_distinct_directories() {
        assert_ne!(log_name("a:b").ok(), log_name("a_b").ok());
        assert_ne!(log_name("a%3Ab").ok(), log_name("a:b").ok());
    }

    #[test]
    fn rejects_names_that_cannot_be_directories() {
        for name in ["", "tab\there", "nul\0"] {
            assert!(
                matches!(log_name(name), Err(DbError::InvalidEventName { .. })),
                "{name:?}"
            );
        }
        let long: &'static str = "x".repeat(201).leak();
        assert!(matches!(
            log_name(long),
            Err(DbError::InvalidEventName { .. })
        ));
        let escaped_long: &'static str = "é".repeat(40).leak(); // 80 bytes -> 240 escaped
        assert!(matches!(
            log_name(escaped_long),
            Err(DbError::InvalidEventName { .. })
        ));
    }
}
