//! Domains shared by the runnable foldkit examples (see the `[[example]]` targets):
//! a bank (accounts as aggregates, with a read model), the same bank served over
//! HTTP ([`bank_http`]), counters (many instances, one read model), and a shop's
//! orders ([`orders`]). Their
//! given/when/then tests use `foldkit::testing`.
//!
//! ```
//! use foldkit::testing::AggregateTest;
//! use foldkit_examples::bank::{Account, AccountCommand, AccountError, AccountEvent};
//!
//! let opened = AccountEvent::Opened { owner: "Ann".into(), initial_balance: 10 };
//! AggregateTest::<Account>::given([opened])
//!     .when(AccountCommand::Withdraw { amount: 11 })
//!     .then_expect_error(AccountError::InsufficientFunds { balance: 10, requested: 11 });
//! ```

pub mod bank;
pub mod bank_http;
pub mod counter;
pub mod orders;

use std::process::ExitCode;

/// How an example ends: its error printed with `Display` on stderr
/// (`error: database directory ./data is already open by another Db`), and exit
/// code 1; or exit code 0. Examples use it as `fn main() -> ExitCode`.
pub fn report<E: std::fmt::Display>(result: Result<(), E>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
