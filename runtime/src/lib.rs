//! foldkit: derive-driven, embedded event sourcing.

mod db;
mod event;
mod state;

pub use foldkit_macros::{Event, State};
pub use foldkit_storage as storage;
pub use foldkit_storage::{FsyncPolicy, Seq};

pub use db::{
    Db, DbBuilder, DbError, Envelope, EnvelopeError, FoldCause, FoldErrorPolicy, FoldFailure,
    Handle, ReadGuard,
};
pub use event::{CodecError, Event};
pub use state::{Apply, FoldError, Meta, State};

/// serde, re-exported so derived code and users need no direct dependency.
pub use serde;

/// Everything a user needs to model a domain: `use foldkit::prelude::*;`.
pub mod prelude {
    pub use crate::{Apply, Event, FoldError, Meta, State};
    pub use crate::{Db, FoldErrorPolicy, FsyncPolicy, Handle};
    pub use serde::{Deserialize, Serialize};
}

#[doc(hidden)]
pub mod __private {
    //! Items the derives expand to. Not public API: no stability promise.
    pub use crate::event::{check_previous, decode_oldest, decode_with_previous};
}
