//! Printing an error with its causes, for logs.
//!
//! Every foldkit error shows each cause once: in `Display` *or* as
//! `source()`, never both. A log line must still say everything, so the
//! runtime logs errors through [`Chain`], which walks `source()`.

use std::error::Error;
use std::fmt;

/// Displays an error followed by each of its causes: `outer: cause: root`.
pub(crate) struct Chain<'a>(pub(crate) &'a (dyn Error + 'static));

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut cause = self.0.source();
        while let Some(error) = cause {
            write!(f, ": {error}")?;
            cause = error.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::Chain;

    #[test]
    fn prints_each_cause_once() {
        let io = std::io::Error::other("disk on fire");
        let error = crate::DbError::Dir {
            dir: "/x".into(),
            source: io,
        };
        assert_eq!(
            Chain(&error).to_string(),
            "cannot open database directory /x: disk on fire"
        );
    }
}
