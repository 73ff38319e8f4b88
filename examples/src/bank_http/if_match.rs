//! `If-Match` as RFC 9110 (section 13.1.1) defines it: `*`, or a list of entity
//! tags, strong (`"3"`) or weak (`W/"3"`), compared with the *strong* comparison.
//!
//! An account's ETag is its version as a strong tag (`"3"`, see `GET /accounts/{id}`).
//! So `*` holds when the account exists, a list holds when one of its strong tags
//! is the current version, and a weak tag never matches (the strong comparison
//! says so: a weak tag promises equivalent content, not the same version).

use axum::http::HeaderMap;
use axum::http::header::IF_MATCH;

/// A parsed `If-Match` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IfMatch {
    /// `*`: the account must exist.
    Any,
    /// A list of entity tags: the account must be at the version of one of them.
    Tags(Vec<EntityTag>),
}

/// One entity tag of an `If-Match` list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntityTag {
    /// `W/` was given: it never matches under the strong comparison.
    pub weak: bool,
    /// The tag between the quotes.
    pub opaque: String,
}

/// The message for a header that is not `*` or a list of entity tags. It shows the
/// syntax, never a sample tag that could pass for a real ETag.
pub const SYNTAX: &str = "If-Match must be `*` or a comma-separated list of entity tags, each \
    a double-quoted string optionally prefixed by `W/` (RFC 9110, section 8.8.3); send back \
    the ETag header of GET /accounts/{id} as it is";

impl IfMatch {
    /// The `If-Match` of a request (several header lines form one list), if any.
    pub fn from_headers(headers: &HeaderMap) -> Result<Option<IfMatch>, &'static str> {
        let mut values = headers.get_all(IF_MATCH).iter().peekable();
        if values.peek().is_none() {
            return Ok(None);
        }
        let mut tags = Vec::new();
        let mut any = false;
        for value in values {
            let text = value.to_str().map_err(|_| SYNTAX)?;
            if text.trim() == "*" {
                any = true;
                continue;
            }
            parse_list(text, &mut tags)?;
        }
        match (any, tags.is_empty()) {
            (true, true) => Ok(Some(IfMatch::Any)),
            // `*` is the whole field value, never a list member.
            (true, false) => Err(SYNTAX),
            (false, true) => Err(SYNTAX),
            (false, false) => Ok(Some(IfMatch::Tags(tags))),
        }
    }

    /// Whether an account at `version` (0: it does not exist) satisfies it.
    pub fn matches(&self, version: u64) -> bool {
        version > 0
            && match self {
                IfMatch::Any => true,
                IfMatch::Tags(tags) => tags
                    .iter()
                    .any(|tag| !tag.weak && tag.opaque == version.to_string()),
            }
    }
}

/// Parses `#entity-tag` (empty list elements are allowed, as RFC 9110 section 5.6.1 says).
fn parse_list(text: &str, tags: &mut Vec<EntityTag>) -> Result<(), &'static str> {
    let mut rest = text.trim_matches(is_ows);
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix(',') {
            rest = after.trim_start_matches(is_ows);
            continue;
        }
        let (weak, quoted) = match rest.strip_prefix("W/") {
            Some(after) => (true, after),
            None => (false, rest),
        };
        let body = quoted.strip_prefix('"').ok_or(SYNTAX)?;
        let end = body.find('"').ok_or(SYNTAX)?;
        let opaque = &body[..end];
        if !opaque.bytes().all(is_etagc) {
            return Err(SYNTAX);
        }
        tags.push(EntityTag {
            weak,
            opaque: opaque.to_owned(),
        });
        rest = body[end + 1..].trim_start_matches(is_ows);
        if !rest.is_empty() && !rest.starts_with(',') {
            return Err(SYNTAX);
        }
    }
    Ok(())
}

fn is_ows(c: char) -> bool {
    c == ' ' || c == '\t'
}

/// `etagc = %x21 / %x23-7E / obs-text`.
fn is_etagc(b: u8) -> bool {
    b == 0x21 || (0x23..=0x7e).contains(&b) || b >= 0x80
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn parse(values: &[&'static str]) -> Result<Option<IfMatch>, &'static str> {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(IF_MATCH, HeaderValue::from_static(value));
        }
        IfMatch::from_headers(&headers)
    }

    fn tag(weak: bool, opaque: &str) -> EntityTag {
        EntityTag {
            weak,
            opaque: opaque.into(),
        }
    }

    #[test]
    fn star_strong_and_weak_tags_and_lists() {
        assert_eq!(parse(&[]), Ok(None));
        assert_eq!(parse(&["*"]), Ok(Some(IfMatch::Any)));
        assert_eq!(
            parse(&["\"3\""]),
            Ok(Some(IfMatch::Tags(vec![tag(false, "3")])))
        );
        assert_eq!(
            parse(&["W/\"3\", \"4\" ,, \"x!#~\""]),
            Ok(Some(IfMatch::Tags(vec![
                tag(true, "3"),
                tag(false, "4"),
                tag(false, "x!#~")
            ])))
        );
        assert_eq!(
            parse(&["\"1\"", "\"2\""]),
            Ok(Some(IfMatch::Tags(vec![tag(false, "1"), tag(false, "2")])))
        );
        assert_eq!(
            parse(&["\"\""]),
            Ok(Some(IfMatch::Tags(vec![tag(false, "")])))
        );
    }

    #[test]
    fn malformed_headers_are_refused_without_a_sample_tag() {
        for bad in [
            "3",
            "\"3",
            "w/\"3\"",
            "\"3\" \"4\"",
            "\"a b\"",
            "*, \"3\"",
            ",",
            "W/3",
        ] {
            assert_eq!(parse(&[bad]), Err(SYNTAX), "{bad:?}");
        }
        // No quoted sample that could pass for a real ETag.
        assert!(
            !SYNTAX
                .as_bytes()
                .windows(2)
                .any(|w| w[0] == b'"' && w[1].is_ascii_digit()),
            "{SYNTAX}"
        );
    }

    #[test]
    fn matching_uses_the_strong_comparison() {
        let list = |v: &[&'static str]| parse(v).unwrap().unwrap();
        assert!(IfMatch::Any.matches(1));
        assert!(!IfMatch::Any.matches(0), "* needs a current representation");
        assert!(list(&["\"2\", \"3\""]).matches(3));
        assert!(!list(&["\"2\", \"3\""]).matches(4));
        assert!(!list(&["W/\"3\""]).matches(3), "a weak tag never matches");
        assert!(!list(&["\"0\""]).matches(0));
        assert!(!list(&["\"03\""]).matches(3), "octet by octet");
    }
}
