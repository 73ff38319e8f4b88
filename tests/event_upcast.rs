//! `#[derive(Event)]` and `#[derive(State)]`: a three-version schema chain read
//! back from payloads written by "old binaries", typed decode errors, variant
//! names, fingerprints, and the fold through `apply_event`.

use foldkit::CodecError;
use foldkit::prelude::*;

/// The schemas an older binary wrote. They stay in the code base, unchanged.
mod legacy {
    use foldkit::prelude::*;

    #[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
    #[event(name = "Account", version = 1)]
    pub enum AccountV1 {
        Opened { owner: String },
        Deposited { cents: u64 },
    }

    #[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
    #[event(name = "Account", version = 2, previous = AccountV1)]
    pub enum AccountV2 {
        Opened { owner: String, currency: String },
        Deposited { cents: u64 },
        Closed,
    }

    impl From<AccountV1> for AccountV2 {
        fn from(old: AccountV1) -> Self {
            match old {
                AccountV1::Opened { owner } => AccountV2::Opened {
                    owner,
                    currency: "EUR".into(),
                },
                AccountV1::Deposited { cents } => AccountV2::Deposited { cents },
            }
        }
    }
}

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "Account", version = 3, previous = legacy::AccountV2)]
pub enum Account {
    Opened { owner: String, currency: String },
    Deposited { amount: Money },
    Closed { reason: Option<String> },
    Frozen(u8),
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Money {
    pub cents: u64,
    pub currency: String,
}

impl From<legacy::AccountV2> for Account {
    fn from(old: legacy::AccountV2) -> Self {
        match old {
            legacy::AccountV2::Opened { owner, currency } => Account::Opened { owner, currency },
            legacy::AccountV2::Deposited { cents } => Account::Deposited {
                amount: Money {
                    cents,
                    currency: "EUR".into(),
                },
            },
            legacy::AccountV2::Closed => Account::Closed { reason: None },
        }
    }
}

#[test]
fn names_versions_and_variants() {
    assert_eq!((Account::NAME, Account::VERSION), ("Account", 3));
    assert_eq!(
        (legacy::AccountV1::NAME, legacy::AccountV1::VERSION),
        ("Account", 1)
    );
    assert_eq!(Account::Frozen(1).variant_name(), "Frozen");
    assert_eq!(Account::Closed { reason: None }.variant_name(), "Closed");
}

#[test]
fn old_payloads_are_upcast_through_the_chain() {
    let v1 = legacy::AccountV1::Opened {
        owner: "ann".into(),
    }
    .encode()
    .expect("encode v1");
    assert_eq!(
        Account::decode(1, &v1).expect("v1 -> v3"),
        Account::Opened {
            owner: "ann".into(),
            currency: "EUR".into()
        }
    );
    let v1_deposit = legacy::AccountV1::Deposited { cents: 250 }
        .encode()
        .expect("encode");
    assert_eq!(
        Account::decode(1, &v1_deposit).expect("v1 -> v3"),
        Account::Deposited {
            amount: Money {
                cents: 250,
                currency: "EUR".into()
            }
        }
    );
    let v2 = legacy::AccountV2::Closed.encode().expect("encode v2");
    assert_eq!(
        Account::decode(2, &v2).expect("v2 -> v3"),
        Account::Closed { reason: None }
    );
    let v3 = Account::Frozen(7);
    assert_eq!(
        Account::decode(3, &v3.encode().expect("encode")).expect("v3"),
        v3
    );
}

#[test]
fn unknown_versions_and_garbage_are_typed_errors() {
    let bytes = Account::Frozen(1).encode().expect("encode");
    assert!(matches!(
        Account::decode(4, &bytes),
        Err(CodecError::NewerVersion {
            event: "Account",
            found: 4,
            current: 3
        })
    ));
    assert!(matches!(
        Account::decode(0, &bytes),
        Err(CodecError::UnknownOldVersion {
            found: 0,
            oldest: 1,
            ..
        })
    ));
    let message = Account::decode(9, &bytes).expect_err("newer").to_string();
    assert!(
        message.contains("version 9") && message.contains("version 3"),
        "{message}"
    );
    for garbage in [&[][..], &[0xff; 3][..], &[9, 1, 2][..]] {
        assert!(
            matches!(
                Account::decode(3, garbage),
                Err(CodecError::Decode { version: 3, .. })
            ),
            "{garbage:?}"
        );
        assert!(
            matches!(
                Account::decode(1, garbage),
                Err(CodecError::Decode { version: 1, .. })
            ),
            "{garbage:?}"
        );
    }
    // Trailing bytes are not silently ignored.
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(matches!(
        Account::decode(3, &longer),
        Err(CodecError::Decode { .. })
    ));
}

mod v1 {
    use foldkit::prelude::*;

    #[derive(State, Default, Serialize, Deserialize)]
    #[state(event = super::Account, name = "Ledger")]
    pub struct Ledger {
        pub balance: u64,
        pub owners: Vec<String>,
    }

    impl Apply<super::Account> for Ledger {
        fn apply(&mut self, event: super::Account, _: &Meta) -> Result<(), FoldError> {
            match event {
                super::Account::Opened { owner, .. } => self.owners.push(owner),
                super::Account::Deposited { amount } => self.balance += amount.cents,
                super::Account::Closed { .. } => {}
                super::Account::Frozen(_) => {
                    return Err(FoldError::new("frozen accounts take no events"));
                }
            }
            Ok(())
        }
    }
}

/// The same definition in another module: the same fingerprint.
mod v1_again {
    use foldkit::prelude::*;

    #[derive(State, Default, Serialize, Deserialize)]
    #[state(event = super::Account, name = "Ledger")]
    pub struct Ledger {
        /// Doc comments and formatting do not count.
        pub balance: u64,
        pub owners: Vec<String>,
    }

    impl Apply<super::Account> for Ledger {
        fn apply(&mut self, _: super::Account, _: &Meta) -> Result<(), FoldError> {
            Ok(())
        }
    }
}

macro_rules! ledger_variant {
    ($module:ident, $($field:ident : $ty:ty),* ; $($attr:tt)*) => {
        mod $module {
            use foldkit::prelude::*;
            #[derive(State, Default, Serialize, Deserialize)]
            #[state(event = super::Account, name = "Ledger" $($attr)*)]
            pub struct Ledger { $(pub $field: $ty),* }
            impl Apply<super::Account> for Ledger {
                fn apply(&mut self, _: super::Account, _: &Meta) -> Result<(), FoldError> { Ok(()) }
            }
        }
    };
}
ledger_variant!(retyped, balance: i64, owners: Vec<String>;);
ledger_variant!(renamed, cents: u64, owners: Vec<String>;);
ledger_variant!(reordered, owners: Vec<String>, balance: u64;);
ledger_variant!(added, balance: u64, owners: Vec<String>, closed: bool;);
ledger_variant!(bumped, balance: u64, owners: Vec<String>; , version = 2);

#[test]
fn fingerprints_follow_the_definition() {
    let base = v1::Ledger::FINGERPRINT;
    assert_eq!(
        v1_again::Ledger::FINGERPRINT,
        base,
        "same definition, same fingerprint"
    );
    for (what, other) in [
        ("retyped", retyped::Ledger::FINGERPRINT),
        ("renamed", renamed::Ledger::FINGERPRINT),
        ("reordered", reordered::Ledger::FINGERPRINT),
        ("added", added::Ledger::FINGERPRINT),
        ("bumped", bumped::Ledger::FINGERPRINT),
    ] {
        assert_ne!(other, base, "{what} must change the fingerprint");
    }
    assert_eq!(
        (
            v1::Ledger::NAME,
            v1::Ledger::VERSION,
            bumped::Ledger::VERSION
        ),
        ("Ledger", 1, 2)
    );
}

#[test]
fn the_state_folds_through_apply_recorded() {
    use foldkit::store::RecordedEvent;
    let mut ledger = v1::Ledger::default();
    let mut fold = |position, event: &Account| {
        let recorded = RecordedEvent::encode(position, 0, event).expect("encode");
        ledger.apply_recorded(&recorded, &Meta::of(&recorded))
    };
    let opened = Account::Opened {
        owner: "ann".into(),
        currency: "EUR".into(),
    };
    let deposited = Account::Deposited {
        amount: Money {
            cents: 5,
            currency: "EUR".into(),
        },
    };
    assert!(fold(1, &opened).expect("apply"));
    assert!(fold(2, &deposited).expect("apply"));
    let error = fold(3, &Account::Frozen(0)).expect_err("apply fails");
    assert!(
        matches!(&error, foldkit::FoldCause::Apply(e) if e.message() == "frozen accounts take no events"),
        "{error:?}"
    );
    assert_eq!(
        (ledger.balance, ledger.owners.clone()),
        (5, vec!["ann".to_owned()])
    );
}
