//! A bank: accounts are aggregates (commands checked against the balance), and a
//! read model (`Bank`) folds every account's events into a queryable table.

use foldkit::prelude::*;
use std::fmt;

/// Everything that can happen to an account.
#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "AccountEvent", version = 1)]
pub enum AccountEvent {
    /// The account was opened.
    Opened {
        /// Who owns it.
        owner: String,
        /// The first deposit, in cents.
        initial_balance: u64,
    },
    /// Money came in.
    Deposited {
        /// Cents.
        amount: u64,
    },
    /// Money went out.
    Withdrawn {
        /// Cents.
        amount: u64,
    },
}

/// What a client may ask of an account, in cents (`{"type": "Deposit", "amount": 5}`).
/// The HTTP service reads decimal amounts instead (`crate::bank_http::wire`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(tag = "type")]
pub enum AccountCommand {
    /// Open the account.
    OpenAccount {
        /// Who owns it.
        owner: String,
        /// The first deposit, in cents.
        initial_balance: u64,
    },
    /// Put money in.
    Deposit {
        /// Cents (more than 0).
        amount: u64,
    },
    /// Take money out, if the balance covers it.
    Withdraw {
        /// Cents (more than 0).
        amount: u64,
    },
}

/// The largest balance (and amount) an account holds, in cents: 9,999,999,999,999.99,
/// 15 digits, so a balance written as a decimal double is exact.
pub const MAX_BALANCE: u64 = 999_999_999_999_999;

/// Why the bank refused a command.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum AccountError {
    /// The account exists already.
    AlreadyOpen,
    /// The account does not exist.
    NotOpen,
    /// An amount of zero.
    ZeroAmount,
    /// The balance does not cover the withdrawal.
    InsufficientFunds {
        /// The balance, in cents.
        balance: u64,
        /// The amount asked for, in cents.
        requested: u64,
    },
    /// The balance would exceed [`MAX_BALANCE`].
    Overflow,
}

impl fmt::Display for AccountError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AccountError::AlreadyOpen => f.write_str("the account is already open"),
            AccountError::NotOpen => f.write_str("the account does not exist"),
            AccountError::ZeroAmount => f.write_str("the amount must be more than 0"),
            AccountError::InsufficientFunds { balance, requested } => {
                write!(
                    f,
                    "insufficient funds: balance {balance}, requested {requested}"
                )
            }
            AccountError::Overflow => f.write_str("the balance would exceed the maximum"),
        }
    }
}

impl std::error::Error for AccountError {}

/// One account: the write side's state.
#[derive(Default, Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Account {
    /// The owner, once opened.
    pub owner: Option<String>,
    /// The balance, in cents.
    pub balance: u64,
}

impl Aggregate for Account {
    const NAME: &'static str = "account";
    type Event = AccountEvent;
    type Command = AccountCommand;
    type Error = AccountError;

    fn handle(&self, command: AccountCommand) -> Result<Vec<AccountEvent>, AccountError> {
        let open = self.owner.is_some();
        match command {
            AccountCommand::OpenAccount { .. } if open => Err(AccountError::AlreadyOpen),
            AccountCommand::OpenAccount {
                initial_balance, ..
            } if initial_balance > MAX_BALANCE => Err(AccountError::Overflow),
            AccountCommand::OpenAccount {
                owner,
                initial_balance,
            } => Ok(vec![AccountEvent::Opened {
                owner,
                initial_balance,
            }]),
            _ if !open => Err(AccountError::NotOpen),
            AccountCommand::Deposit { amount: 0 } | AccountCommand::Withdraw { amount: 0 } => {
                Err(AccountError::ZeroAmount)
            }
            AccountCommand::Deposit { amount } => {
                self.balance
                    .checked_add(amount)
                    .filter(|&balance| balance <= MAX_BALANCE)
                    .ok_or(AccountError::Overflow)?;
                Ok(vec![AccountEvent::Deposited { amount }])
            }
            AccountCommand::Withdraw { amount } if amount > self.balance => {
                Err(AccountError::InsufficientFunds {
                    balance: self.balance,
                    requested: amount,
                })
            }
            AccountCommand::Withdraw { amount } => Ok(vec![AccountEvent::Withdrawn { amount }]),
        }
    }

    fn apply(&mut self, event: &AccountEvent) {
        match event {
            AccountEvent::Opened {
                owner,
                initial_balance,
            } => {
                self.owner = Some(owner.clone());
                self.balance = *initial_balance;
            }
            AccountEvent::Deposited { amount } => self.balance += amount,
            AccountEvent::Withdrawn { amount } => self.balance -= amount,
        }
    }
}

/// One account as the read model sees it.
#[derive(Entity, Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct AccountRow {
    /// The account id (the aggregate instance id, without the `account/` prefix).
    #[entity(id)]
    pub id: String,
    /// The owner.
    #[entity(index)]
    pub owner: String,
    /// The balance, in cents.
    pub balance: u64,
    /// How many events the account has.
    pub version: u64,
}

/// The read model: every account, folded from the same log the aggregates write.
#[derive(State, Default, Serialize, Deserialize)]
#[state(event = AccountEvent)]
pub struct Bank {
    /// All accounts.
    pub accounts: Table<AccountRow>,
}

impl Apply<AccountEvent> for Bank {
    fn apply(&mut self, event: AccountEvent, meta: &Meta) -> Result<(), FoldError> {
        let Some(id) = meta.stream_id().and_then(|s| s.strip_prefix("account/")) else {
            return Err(FoldError::new(format!(
                "event {} belongs to no account stream",
                meta.seq
            )));
        };
        match event {
            AccountEvent::Opened {
                owner,
                initial_balance,
            } => {
                self.accounts.insert(AccountRow {
                    id: id.to_owned(),
                    owner,
                    balance: initial_balance,
                    version: 1,
                });
            }
            AccountEvent::Deposited { amount } => {
                self.accounts.update(&id.to_owned(), |row| {
                    row.balance += amount;
                    row.version += 1;
                });
            }
            AccountEvent::Withdrawn { amount } => {
                self.accounts.update(&id.to_owned(), |row| {
                    row.balance = row.balance.saturating_sub(amount);
                    row.version += 1;
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use foldkit::testing::AggregateTest;

    fn opened(balance: u64) -> AccountEvent {
        AccountEvent::Opened {
            owner: "Alice".into(),
            initial_balance: balance,
        }
    }

    #[test]
    fn opening_an_account() {
        AggregateTest::<Account>::given([])
            .when(AccountCommand::OpenAccount {
                owner: "Alice".into(),
                initial_balance: 10,
            })
            .then_expect_events([opened(10)]);
        AggregateTest::<Account>::given([opened(0)])
            .when(AccountCommand::OpenAccount {
                owner: "Bob".into(),
                initial_balance: 0,
            })
            .then_expect_error(AccountError::AlreadyOpen);
    }

    #[test]
    fn deposits_and_withdrawals() {
        let state =
            AggregateTest::<Account>::given([opened(10), AccountEvent::Deposited { amount: 5 }])
                .when(AccountCommand::Withdraw { amount: 15 })
                .then_expect_events([AccountEvent::Withdrawn { amount: 15 }]);
        assert_eq!(state.balance, 0);
        AggregateTest::<Account>::given([])
            .when(AccountCommand::Deposit { amount: 1 })
            .then_expect_error(AccountError::NotOpen);
        AggregateTest::<Account>::given([opened(1)])
            .when(AccountCommand::Deposit { amount: 0 })
            .then_expect_error(AccountError::ZeroAmount);
    }

    #[test]
    fn a_withdrawal_beyond_the_balance_is_refused() {
        AggregateTest::<Account>::given([opened(10)])
            .when(AccountCommand::Withdraw { amount: 11 })
            .then_expect_error(AccountError::InsufficientFunds {
                balance: 10,
                requested: 11,
            });
        AggregateTest::<Account>::given([opened(MAX_BALANCE)])
            .when(AccountCommand::Deposit { amount: 1 })
            .then_expect_error(AccountError::Overflow);
        AggregateTest::<Account>::given([])
            .when(AccountCommand::OpenAccount {
                owner: "Midas".into(),
                initial_balance: MAX_BALANCE + 1,
            })
            .then_expect_error(AccountError::Overflow);
    }
}
