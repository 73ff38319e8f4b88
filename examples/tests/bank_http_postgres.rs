//! Two bank_http instances over one PostgreSQL database (`open_postgres`): a
//! deposit on one is seen by a watch on the other, and a command on the second
//! sees the first one's writes (no stale aggregate).

use std::time::Duration;

use foldkit_examples::bank_http::{AppState, Config, open_configured};
use foldkit_postgres::testing::{ServerOptions, server_or_skip};
use reqwest::{Client, Response, StatusCode};
use serde_json::{Value, json};
use tokio::net::TcpListener;

const STEP: Duration = Duration::from_secs(20);

/// One instance: its base URL (the server task runs until the runtime ends).
async fn instance(url: &str) -> (String, foldkit::Db) {
    let config = Config::parse(["--postgres".into(), url.into()], |_| None)
        .expect("config")
        .expect("not --help");
    let db = open_configured(&config)
        .await
        .expect("open over PostgreSQL");
    let app = AppState::new(db.clone());
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app.router()).await });
    (base, db)
}

async fn post(client: &Client, url: String, body: Value) -> Value {
    let response = client.post(url).json(&body).send().await.expect("POST");
    let status = response.status();
    let body: Value = response.json().await.expect("JSON");
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// The next server-sent event's JSON data.
async fn next_event(response: &mut Response, buffer: &mut String) -> Value {
    loop {
        if let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            let data: String = block
                .lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .map(|d| d.strip_prefix(' ').unwrap_or(d))
                .collect();
            if !data.is_empty() {
                return serde_json::from_str(&data).expect("JSON data");
            }
            continue;
        }
        let chunk = tokio::time::timeout(STEP, response.chunk())
            .await
            .expect("an event in time")
            .expect("chunk")
            .expect("the stream goes on");
        buffer.push_str(std::str::from_utf8(&chunk).expect("UTF-8"));
    }
}

#[test]
fn a_deposit_on_one_instance_is_seen_by_a_watch_on_the_other() {
    let Some(server) = server_or_skip(ServerOptions::default().fsync(false)) else {
        return;
    };
    let url = server.url("postgres");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let (a, db_a) = instance(&url).await;
        let (b, db_b) = instance(&url).await;
        let client = Client::builder().no_proxy().build().expect("client");

        let mut watch = client
            .get(format!("{b}/accounts/watch?min_balance=0"))
            .send()
            .await
            .expect("watch on b");
        assert_eq!(watch.status(), StatusCode::OK);
        let mut buffer = String::new();
        assert_eq!(next_event(&mut watch, &mut buffer).await, json!([]));

        post(
            &client,
            format!("{a}/accounts/alice"),
            json!({"type": "OpenAccount", "owner": "Alice", "initial_balance": 100}),
        )
        .await;
        post(
            &client,
            format!("{a}/accounts/alice"),
            json!({"type": "Deposit", "amount": 50}),
        )
        .await;
        let deadline = tokio::time::Instant::now() + STEP;
        loop {
            let rows = tokio::time::timeout_at(deadline, next_event(&mut watch, &mut buffer))
                .await
                .expect("the deposit reaches the watch on the other instance");
            // (Balances are JSON numbers; compare them as numbers.)
            if rows[0]["balance"].as_f64() == Some(150.0) {
                assert_eq!(rows[0]["id"], json!("alice"), "{rows}");
                break;
            }
        }
        // b's aggregate is not stale: it sees a's writes.
        let done = post(
            &client,
            format!("{b}/accounts/alice"),
            json!({"type": "Withdraw", "amount": 150}),
        )
        .await;
        assert_eq!(done["balance"].as_f64(), Some(0.0), "{done}");
        drop(watch);
        db_a.close().await.expect("close a");
        db_b.close().await.expect("close b");
    });
}
