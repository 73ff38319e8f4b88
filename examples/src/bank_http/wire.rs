//! The JSON shapes of the API, as clients of the RustAPI event-sourcing bank know
//! them: commands and events tagged by `"type"`, amounts and balances as decimal
//! numbers (`1000.0`). The domain ([`crate::bank`]) keeps integer cents; these
//! types convert at the edge, so the stored events never depend on the wire.

use foldkit::Seq;
use serde::{Deserialize, Serialize};

use super::money::{Amount, Decimal};
use crate::bank::{AccountCommand, AccountEvent, AccountRow};

/// A command as a client sends it:
/// `{"type":"OpenAccount","owner":"Alice","initial_balance":1000.0}`,
/// `{"type":"Deposit","amount":500.0}`, `{"type":"Withdraw","amount":200.0}`.
#[derive(Debug, Deserialize)]
#[serde(tag = "type")]
pub enum CommandJson {
    /// Open the account with a first balance.
    OpenAccount {
        /// Who owns it.
        owner: String,
        /// The first balance.
        initial_balance: Amount,
    },
    /// Put money in.
    Deposit {
        /// How much.
        amount: Amount,
    },
    /// Take money out.
    Withdraw {
        /// How much.
        amount: Amount,
    },
}

impl From<CommandJson> for AccountCommand {
    fn from(command: CommandJson) -> Self {
        match command {
            CommandJson::OpenAccount {
                owner,
                initial_balance,
            } => AccountCommand::OpenAccount {
                owner,
                initial_balance: initial_balance.0,
            },
            CommandJson::Deposit { amount } => AccountCommand::Deposit { amount: amount.0 },
            CommandJson::Withdraw { amount } => AccountCommand::Withdraw { amount: amount.0 },
        }
    }
}

/// An event as clients read it: `{"type":"MoneyDeposited","amount":500.0}`.
#[derive(Debug, Serialize)]
#[serde(tag = "type")]
pub enum EventJson {
    /// The account was opened.
    AccountOpened {
        /// Who owns it.
        owner: String,
        /// The first balance.
        initial_balance: Decimal,
    },
    /// Money came in.
    MoneyDeposited {
        /// How much.
        amount: Decimal,
    },
    /// Money went out.
    MoneyWithdrawn {
        /// How much.
        amount: Decimal,
    },
}

impl From<AccountEvent> for EventJson {
    fn from(event: AccountEvent) -> Self {
        match event {
            AccountEvent::Opened {
                owner,
                initial_balance,
            } => EventJson::AccountOpened {
                owner,
                initial_balance: Decimal(initial_balance),
            },
            AccountEvent::Deposited { amount } => EventJson::MoneyDeposited {
                amount: Decimal(amount),
            },
            AccountEvent::Withdrawn { amount } => EventJson::MoneyWithdrawn {
                amount: Decimal(amount),
            },
        }
    }
}

/// foldkit's metadata of one stored event: an extra field, `"meta"`, beside the
/// event's own fields.
#[derive(Debug, Serialize)]
pub struct EventMeta {
    /// The account's version after this event (1 for the first).
    pub version: u64,
    /// The event's seq in the log.
    pub seq: Seq,
    /// When it was appended (the log's clock).
    pub timestamp: u64,
}

/// One element of `GET /accounts/{id}/events`.
#[derive(Debug, Serialize)]
pub struct HistoryItem {
    /// The event, tagged by `"type"`.
    #[serde(flatten)]
    pub event: EventJson,
    /// foldkit's extra: where and when it was stored.
    pub meta: EventMeta,
}

/// An account: `{"id":"acc-001","owner":"Alice","balance":1300.0,"version":3}`. The
/// same shape for `GET /accounts/{id}`, the rows of `GET /accounts` and the watch.
#[derive(Debug, Serialize)]
pub struct AccountJson {
    /// The account id.
    pub id: String,
    /// Who owns it.
    pub owner: String,
    /// The balance.
    pub balance: Decimal,
    /// How many events it has.
    pub version: u64,
}

impl From<AccountRow> for AccountJson {
    fn from(row: AccountRow) -> Self {
        Self {
            id: row.id,
            owner: row.owner,
            balance: Decimal(row.balance),
            version: row.version,
        }
    }
}

/// The seqs a command wrote.
#[derive(Debug, Serialize)]
pub struct Seqs {
    /// The first event's seq.
    pub first: Seq,
    /// The last event's seq: `min_seq` for a read of your write.
    pub last: Seq,
}

/// What `POST /accounts/{id}` answers: the account after the command, with
/// foldkit's extras (the seqs written, the events) as extra fields.
#[derive(Debug, Serialize)]
pub struct ExecutedJson {
    /// The account after the command.
    #[serde(flatten)]
    pub account: AccountJson,
    /// The seqs the command wrote (`null`: it wrote nothing).
    pub seqs: Option<Seqs>,
    /// The events it wrote.
    pub events: Vec<EventJson>,
}
