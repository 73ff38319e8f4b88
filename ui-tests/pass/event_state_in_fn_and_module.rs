#![deny(warnings)]

mod domain {
    pub mod legacy {
        use foldkit::prelude::*;

        #[derive(Event, Serialize, Deserialize, Clone, Debug)]
        #[event(name = "Counter", version = 1)]
        pub enum CounterV1 {
            Added(u32),
        }
    }

    use foldkit::prelude::*;

    #[derive(Event, Serialize, Deserialize, Clone, Debug)]
    #[event(name = "Counter", version = 2, previous = legacy::CounterV1)]
    pub enum Counter {
        Added { by: u64 },
        Reset,
        Empty {},
        Nothing(),
    }

    impl From<legacy::CounterV1> for Counter {
        fn from(old: legacy::CounterV1) -> Self {
            match old {
                legacy::CounterV1::Added(by) => Counter::Added { by: u64::from(by) },
            }
        }
    }

    #[derive(State, Default, Serialize, Deserialize)]
    #[state(event = Counter, version = 4, name = "totals")]
    pub struct Totals {
        pub sum: u64,
    }

    impl Apply<Counter> for Totals {
        fn apply(&mut self, event: Counter, _: &Meta) -> Result<(), FoldError> {
            if let Counter::Added { by } = event {
                self.sum += by;
            }
            Ok(())
        }
    }
}

/// A generic state: the derive's impl requires what `State` needs of `T`.
#[derive(foldkit::State, Default, serde::Serialize, serde::Deserialize)]
#[state(event = domain::Counter)]
struct Latest<T> {
    values: Vec<T>,
}

impl<T: From<u64>> foldkit::Apply<domain::Counter> for Latest<T> {
    fn apply(&mut self, event: domain::Counter, _: &foldkit::Meta) -> Result<(), foldkit::FoldError> {
        if let domain::Counter::Added { by } = event {
            self.values.push(T::from(by));
        }
        Ok(())
    }
}

fn main() {
    use foldkit::{Event, State};

    #[derive(foldkit::Event, serde::Serialize, serde::Deserialize)]
    enum Local {
        Ping,
    }

    assert_eq!(Local::Ping.variant_name(), "Ping");
    assert_eq!(<domain::Totals as State>::NAME, "totals");
    assert_eq!(<domain::Counter as Event>::VERSION, 2);
    let old = domain::legacy::CounterV1::Added(3).encode().unwrap();
    assert!(matches!(domain::Counter::decode(1, &old).unwrap(), domain::Counter::Added { by: 3 }));
    let mut latest = Latest::<u64>::default();
    let recorded = foldkit::store::RecordedEvent::encode(1, 0, &domain::Counter::Added { by: 5 }).unwrap();
    assert!(latest.apply_recorded(&recorded, &foldkit::Meta::of(&recorded)).unwrap());
    assert_eq!(latest.values, vec![5]);
}
