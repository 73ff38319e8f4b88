//! foldkit: derive-driven, embedded event sourcing.

pub use foldkit_storage as storage;
pub use foldkit_storage::Seq;

#[doc(hidden)]
pub mod __private {
    //! Items the derives expand to. Not public API: no stability promise.
}
