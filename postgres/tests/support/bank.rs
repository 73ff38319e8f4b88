//! A small bank for the Db-level tests: wallets (aggregates) and a read model.

use std::collections::BTreeMap;

use foldkit::prelude::*;
use foldkit::{DbError, ExecuteError};

/// What happens to a wallet.
#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "WalletEvent", version = 1)]
pub enum WalletEvent {
    /// Opened with a first deposit.
    Opened { amount: u64 },
    /// Money in.
    Deposited { amount: u64 },
    /// Money out.
    Withdrawn { amount: u64 },
}

/// What a client asks of a wallet.
#[derive(Clone, Debug)]
pub enum WalletCommand {
    Open(u64),
    Deposit(u64),
    Withdraw(u64),
}

/// Why a command was refused.
#[derive(Clone, Debug, PartialEq)]
pub enum WalletError {
    AlreadyOpen,
    NotOpen,
    Insufficient { balance: u64 },
}

impl std::fmt::Display for WalletError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WalletError::AlreadyOpen => f.write_str("the wallet is already open"),
            WalletError::NotOpen => f.write_str("the wallet is not open"),
            WalletError::Insufficient { balance } => write!(f, "insufficient funds: {balance}"),
        }
    }
}

impl std::error::Error for WalletError {}

/// The write side of one wallet.
#[derive(Default, Clone, Debug, PartialEq)]
pub struct Wallet {
    pub open: bool,
    pub balance: u64,
}

impl Aggregate for Wallet {
    const NAME: &'static str = "wallet";
    type Event = WalletEvent;
    type Command = WalletCommand;
    type Error = WalletError;

    fn handle(&self, command: WalletCommand) -> Result<Vec<WalletEvent>, WalletError> {
        match command {
            WalletCommand::Open(_) if self.open => Err(WalletError::AlreadyOpen),
            WalletCommand::Open(amount) => Ok(vec![WalletEvent::Opened { amount }]),
            _ if !self.open => Err(WalletError::NotOpen),
            WalletCommand::Deposit(amount) => Ok(vec![WalletEvent::Deposited { amount }]),
            WalletCommand::Withdraw(amount) if amount > self.balance => {
                Err(WalletError::Insufficient {
                    balance: self.balance,
                })
            }
            WalletCommand::Withdraw(amount) => Ok(vec![WalletEvent::Withdrawn { amount }]),
        }
    }

    fn apply(&mut self, event: &WalletEvent) {
        match event {
            WalletEvent::Opened { amount } => {
                self.open = true;
                self.balance = *amount;
            }
            WalletEvent::Deposited { amount } => self.balance += amount,
            WalletEvent::Withdrawn { amount } => self.balance -= amount,
        }
    }
}

/// One wallet as the read model sees it.
#[derive(Entity, Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct WalletRow {
    #[entity(id)]
    pub id: String,
    pub balance: u64,
    pub version: u64,
}

/// The read model: every wallet.
#[derive(State, Default, Serialize, Deserialize)]
#[state(event = WalletEvent)]
pub struct Balances {
    pub wallets: Table<WalletRow>,
}

impl Apply<WalletEvent> for Balances {
    fn apply(&mut self, event: WalletEvent, meta: &Meta) -> Result<(), FoldError> {
        let Some(id) = meta.stream_id().and_then(|s| s.strip_prefix("wallet/")) else {
            return Err(FoldError::new(format!(
                "event {} has no wallet stream",
                meta.seq
            )));
        };
        let id = id.to_owned();
        match event {
            WalletEvent::Opened { amount } => {
                self.wallets.insert(WalletRow {
                    id,
                    balance: amount,
                    version: 1,
                });
            }
            WalletEvent::Deposited { amount } => {
                self.wallets.update(&id, |w| {
                    w.balance += amount;
                    w.version += 1;
                });
            }
            WalletEvent::Withdrawn { amount } => {
                self.wallets.update(&id, |w| {
                    w.balance -= amount;
                    w.version += 1;
                });
            }
        }
        Ok(())
    }
}

impl Balances {
    /// id -> (balance, version), for comparing instances.
    pub fn summary(&self) -> BTreeMap<String, (u64, u64)> {
        self.wallets
            .iter()
            .map(|w| (w.id.clone(), (w.balance, w.version)))
            .collect()
    }
}

/// Runs `command`, running it again after a conflict (another instance wrote
/// the wallet in between). Returns the last seq written, if any.
pub async fn execute(
    db: &Db,
    id: &str,
    command: WalletCommand,
) -> Result<Option<u64>, ExecuteError<WalletError>> {
    let wallets = db.aggregate::<Wallet>();
    loop {
        match wallets.execute(id, command.clone()).await {
            Ok(done) => return Ok(done.seqs.map(|s| *s.end())),
            Err(ExecuteError::Db(DbError::Conflict { .. })) => continue,
            Err(e) => return Err(e),
        }
    }
}
