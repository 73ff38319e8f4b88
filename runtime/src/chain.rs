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
    use crate::db::{DbError, EnvelopeError, FoldCause, FoldFailure};
    use crate::snapshot::{IdentityMismatch, SnapshotStore};
    use crate::state::FoldError;
    use foldkit_storage::StorageError;

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

    fn storage() -> StorageError {
        StorageError::NotFound {
            seq: 9,
            first: Some(1),
            last: Some(3),
        }
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
            log: "L".into(),
            seq: 4,
            cause: FoldCause::Apply(FoldError::with_source("bad", std::io::Error::other("root"))),
        };
        let errors: Vec<Box<dyn Error + 'static>> = vec![
            Box::new(DbError::Storage {
                log: "L".into(),
                source: storage(),
            }),
            Box::new(DbError::Envelope {
                event: "E",
                source: EnvelopeError::EmptyStreamId,
            }),
            Box::new(DbError::Read {
                log: "L".into(),
                seq: 2,
                cause: FoldCause::Storage(storage()),
            }),
            Box::new(DbError::Read {
                log: "L".into(),
                seq: 2,
                cause: FoldCause::Decode(codec()),
            }),
            Box::new(DbError::Fold(Arc::new(fold))),
            Box::new(IdentityMismatch::Unreadable(storage())),
            Box::new(codec()),
            Box::new(crate::snapshot::SnapshotError::Decode {
                state: "S",
                source: postcard::Error::DeserializeBadVarint,
            }),
        ];
        for error in &errors {
            assert_each_cause_once(error.as_ref());
        }
        // A store error: writing under a file, not a directory.
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("f");
        std::fs::write(&file, b"x").expect("write");
        let store = SnapshotStore::new(&file, 1);
        let error = store
            .write("s", Some(1), b"blob")
            .expect_err("not a directory");
        assert_each_cause_once(&error);
        assert_each_cause_once(&DbError::SnapshotIo(error));
    }
}
