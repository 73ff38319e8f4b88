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
    use std::error::Error;
    use std::sync::Arc;

    use super::Chain;
    use crate::db::{DbError, FoldCause, FoldFailure};
    use crate::snapshot::IdentityMismatch;
    use crate::state::FoldError;
    use crate::store::StoreError;

    /// No error of the chain repeats its cause's text: each cause shows once.
    fn assert_each_cause_once(error: &(dyn Error + 'static)) {
        let mut outer = error;
        while let Some(cause) = outer.source() {
            let (shown, inner) = (outer.to_string(), cause.to_string());
            assert!(
                !shown.contains(&inner),
                "`{shown}` repeats its source `{inner}`"
            );
            outer = cause;
        }
    }

    fn store() -> StoreError {
        StoreError::backend(
            "read segment /x/1.seg",
            std::io::Error::other("disk on fire"),
        )
    }

    #[test]
    fn prints_each_cause_once() {
        let io = std::io::Error::other("disk on fire");
        let error = DbError::Dir {
            dir: "/x".into(),
            source: io,
        };
        assert_each_cause_once(&error);
        assert_eq!(
            Chain(&error).to_string(),
            "cannot open database directory /x: disk on fire"
        );
    }

    #[test]
    fn no_runtime_error_shows_its_source_twice() {
        let codec = || crate::CodecError::Decode {
            event: "E",
            version: 1,
            source: postcard::Error::DeserializeBadVarint,
        };
        let fold = FoldFailure {
            state: "S",
            seq: 4,
            event: Some(Arc::from("E")),
            cause: FoldCause::Apply(FoldError::with_source("bad", std::io::Error::other("root"))),
        };
        let errors: Vec<Box<dyn Error + 'static>> = vec![
            Box::new(DbError::Store(store())),
            Box::new(DbError::Read {
                seq: 2,
                cause: FoldCause::Store(store()),
            }),
            Box::new(DbError::Read {
                seq: 2,
                cause: FoldCause::Decode(codec()),
            }),
            Box::new(DbError::Fold(Arc::new(fold))),
            Box::new(IdentityMismatch::Unreadable {
                seq: 3,
                source: store(),
            }),
            Box::new(codec()),
            Box::new(store()),
            Box::new(crate::snapshot::SnapshotError::Decode {
                state: "S",
                source: postcard::Error::DeserializeBadVarint,
            }),
        ];
        for error in &errors {
            assert_each_cause_once(error.as_ref());
        }
    }
}
