//! The generic store contract (`foldkit::store::contract`) on `PgStore`: one
//! throwaway server per case, one database per store name the case opens.

use std::collections::HashSet;

use foldkit::store::StoreError;
use foldkit::store::contract::StoreFactory;
use foldkit_postgres::PgStore;
use foldkit_postgres::testing::{PgServer, ServerOptions, server_or_skip};
use futures::future::BoxFuture;
use parking_lot::Mutex;
use tokio_postgres::NoTls;

/// Stores in databases of one server: a new database the first time a name is
/// used, the same database when it is opened again.
struct Databases {
    server: PgServer,
    created: Mutex<HashSet<String>>,
}

impl StoreFactory for Databases {
    type Store = PgStore;

    fn open(&self, name: &str) -> BoxFuture<'_, Result<PgStore, StoreError>> {
        let name = name.to_owned();
        Box::pin(async move {
            let db = format!("c_{}", name.to_lowercase());
            if self.created.lock().insert(db.clone()) {
                let (client, connection) =
                    tokio_postgres::connect(&self.server.url("postgres"), NoTls)
                        .await
                        .map_err(|e| StoreError::backend("connect to create a database", e))?;
                let driver = tokio::spawn(connection);
                client
                    .batch_execute(&format!("CREATE DATABASE \"{db}\""))
                    .await
                    .map_err(|e| StoreError::backend(format!("create database {db}"), e))?;
                drop(client);
                let _ = driver.await;
            }
            PgStore::connect(&self.server.url(&db)).await
        })
    }
}

// Skips (one printed line) when the machine has no PostgreSQL server binaries.
foldkit::store_contract_tests!(optional server_or_skip(ServerOptions::default().fsync(false))
    .map(|server| Databases { server, created: Mutex::new(HashSet::new()) }));
