//! The bank over HTTP (`foldkit_examples::bank_http`), driven by a real HTTP client
//! against the router bound on a loopback port: the happy path, every error status,
//! concurrent commands, the watch stream (server-sent events) and a restart.

use std::path::Path;
use std::time::Duration;

use foldkit::Db;
use foldkit_examples::bank::Bank;
use foldkit_examples::bank_http::{AppState, open_db};
use reqwest::{Client, Response, StatusCode};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// How long any single step may take before the test fails instead of hanging.
const STEP: Duration = Duration::from_secs(20);

/// A running service over a Db in `dir`.
struct Server {
    base: String,
    client: Client,
    db: Db,
    app: AppState,
    stop: oneshot::Sender<()>,
    task: JoinHandle<std::io::Result<()>>,
}

impl Server {
    async fn start(dir: &Path) -> Server {
        let db = open_db(dir).await.expect("open the Db");
        let app = AppState::new(db.clone());
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("local addr"));
        let (stop, stopped) = oneshot::channel::<()>();
        let router = app.router();
        let task = tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await
        });
        // Plain HTTP on loopback: never through a proxy from the environment.
        let client = Client::builder().no_proxy().build().expect("client");
        Server {
            base,
            client,
            db,
            app,
            stop,
            task,
        }
    }

    /// Graceful shutdown: end the watches, let the server drain, close the Db.
    async fn stop(self) {
        self.app.shutdown();
        let _ = self.stop.send(());
        tokio::time::timeout(STEP, self.task)
            .await
            .expect("the server stops")
            .expect("server task")
            .expect("server");
        self.db.close().await.expect("close the Db");
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn post(&self, path: &str, body: Value) -> Response {
        self.client
            .post(self.url(path))
            .json(&body)
            .send()
            .await
            .expect("POST")
    }

    async fn post_raw(&self, path: &str, body: &'static str) -> Response {
        self.client
            .post(self.url(path))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("POST")
    }

    async fn get(&self, path: &str) -> Response {
        self.client.get(self.url(path)).send().await.expect("GET")
    }

    /// POSTs a command that must succeed; its JSON answer.
    async fn command(&self, id: &str, command: Value) -> Value {
        ok(self.post(&format!("/accounts/{id}"), command).await).await
    }
}

/// The JSON body of a 200 answer.
async fn ok(response: Response) -> Value {
    let status = response.status();
    let body: Value = response.json().await.expect("a JSON body");
    assert_eq!(status, StatusCode::OK, "body: {body}");
    body
}

/// The JSON body of an error answer, checked to have `status` and an `error` message.
async fn error(response: Response, status: StatusCode) -> Value {
    assert_eq!(response.status(), status);
    assert_eq!(
        response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/json")
    );
    let body: Value = response.json().await.expect("a JSON body");
    assert!(
        body["error"].as_str().is_some_and(|m| !m.is_empty()),
        "no error message in {body}"
    );
    body
}

fn open(owner: &str, initial_balance: u64) -> Value {
    json!({"type": "OpenAccount", "owner": owner, "initial_balance": initial_balance})
}

fn deposit(amount: u64) -> Value {
    json!({"type": "Deposit", "amount": amount})
}

fn withdraw(amount: u64) -> Value {
    json!({"type": "Withdraw", "amount": amount})
}

/// The last seq a command answer reports.
fn last_seq(answer: &Value) -> u64 {
    answer["seqs"]["last"].as_u64().expect("seqs.last")
}

/// The ids of a `GET /accounts` answer.
fn ids(answer: &Value) -> Vec<&str> {
    answer["accounts"]
        .as_array()
        .expect("accounts")
        .iter()
        .map(|row| row["id"].as_str().expect("id"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_deposit_withdraw_read_and_query() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;

    let opened = server.command("alice", open("Alice", 1_000)).await;
    assert_eq!(opened["id"], "alice");
    assert_eq!(opened["version"], 1);
    assert_eq!(opened["balance"], 1_000);
    assert_eq!(opened["seqs"]["first"], opened["seqs"]["last"]);
    assert_eq!(
        opened["events"],
        json!([{"Opened": {"owner": "Alice", "initial_balance": 1000}}])
    );
    let deposited = server.command("alice", deposit(250)).await;
    assert_eq!(
        (&deposited["version"], &deposited["balance"]),
        (&json!(2), &json!(1_250))
    );
    assert!(last_seq(&deposited) > last_seq(&opened));
    let withdrawn = server.command("alice", withdraw(400)).await;
    assert_eq!(
        (&withdrawn["version"], &withdrawn["balance"]),
        (&json!(3), &json!(850))
    );
    server.command("bob", open("Bob", 50)).await;
    let carol = server.command("carol", open("Carol", 5_000)).await;

    let response = server.get("/accounts/alice").await;
    assert_eq!(
        response.headers().get("etag").and_then(|v| v.to_str().ok()),
        Some("\"3\"")
    );
    assert_eq!(
        ok(response).await,
        json!({"id": "alice", "owner": "Alice", "balance": 850, "version": 3})
    );

    let history = ok(server.get("/accounts/alice/events").await).await;
    assert_eq!(history["version"], 3);
    let events = history["events"].as_array().unwrap();
    let versions: Vec<_> = events.iter().map(|e| e["version"].as_u64()).collect();
    assert_eq!(versions, [Some(1), Some(2), Some(3)]);
    assert_eq!(events[1]["event"], json!({"Deposited": {"amount": 250}}));
    assert_eq!(events[2]["event"], json!({"Withdrawn": {"amount": 400}}));
    assert_eq!(events[2]["seq"].as_u64(), Some(last_seq(&withdrawn)));
    assert!(events.iter().all(|e| e["timestamp"].as_u64() > Some(0)));

    // Read-your-writes: the read model is queried once it has folded the last write.
    let last = last_seq(&carol);
    server.db.state::<Bank>().wait_for_seq(last).await.unwrap();
    let rich = ok(server.get("/accounts?min_balance=100").await).await;
    assert_eq!(ids(&rich), ["alice", "carol"]);
    assert_eq!(
        rich["accounts"][0],
        json!({"id": "alice", "owner": "Alice", "balance": 850, "version": 3})
    );
    // The same barrier over HTTP: `min_seq` waits for the fold inside the service.
    let by_owner = ok(server
        .get(&format!("/accounts?owner=Bob&min_seq={last}"))
        .await)
    .await;
    assert_eq!(ids(&by_owner), ["bob"]);
    assert!(by_owner["applied_seq"].as_u64() >= Some(last));
    let both = format!("/accounts?owner=Carol&min_balance=1000&min_seq={last}");
    assert_eq!(ids(&ok(server.get(&both).await).await), ["carol"]);
    let none = format!("/accounts?owner=Alice&min_balance=1000&min_seq={last}");
    assert!(ids(&ok(server.get(&none).await).await).is_empty());
    let capped = format!("/accounts?max_balance=1000&limit=1&min_seq={last}");
    assert_eq!(ids(&ok(server.get(&capped).await).await), ["alice"]);

    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_error_has_its_status_and_a_json_body() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    server.command("alice", open("Alice", 100)).await;

    // 400: malformed JSON, an unknown command type, a missing field, a wrong type.
    let bad = StatusCode::BAD_REQUEST;
    let body = error(
        server
            .post_raw("/accounts/alice", "{\"type\": \"Deposit\", ")
            .await,
        bad,
    )
    .await;
    assert_eq!(body["kind"], "bad_request");
    let body = error(
        server
            .post("/accounts/alice", json!({"type": "Steal", "amount": 5}))
            .await,
        bad,
    )
    .await;
    assert!(body["error"].as_str().unwrap().contains("Steal"), "{body}");
    error(
        server
            .post("/accounts/alice", json!({"type": "Deposit"}))
            .await,
        bad,
    )
    .await;
    error(
        server
            .post("/accounts/alice", json!({"type": "Deposit", "amount": -5}))
            .await,
        bad,
    )
    .await;
    // 400: bad query parameters, headers and ids.
    error(server.get("/accounts?min_balance=lots").await, bad).await;
    error(server.get("/accounts?colour=red").await, bad).await;
    error(server.get("/accounts?min_seq=1000000").await, bad).await;
    error(
        server
            .post("/accounts/alice?expected_version=x", deposit(1))
            .await,
        bad,
    )
    .await;
    let if_match = |value: &'static str| {
        server
            .client
            .post(server.url("/accounts/alice"))
            .header("if-match", value)
            .json(&deposit(1))
            .send()
    };
    error(if_match("*").await.unwrap(), bad).await;
    error(server.post("/accounts/a%20b", open("Space", 1)).await, bad).await;
    error(server.get("/accounts/a%2Fb").await, bad).await;

    // 404: reading, or commanding, an account that does not exist.
    let missing = StatusCode::NOT_FOUND;
    let body = error(server.get("/accounts/nobody").await, missing).await;
    assert_eq!(
        (&body["kind"], &body["id"]),
        (&json!("not_found"), &json!("nobody"))
    );
    error(server.get("/accounts/nobody/events").await, missing).await;
    error(server.post("/accounts/nobody", deposit(5)).await, missing).await;

    // 409: a stale expected version, by header or by parameter; nothing is written.
    let conflict = StatusCode::CONFLICT;
    server.command("alice", deposit(10)).await; // version 2
    let body = error(if_match("\"1\"").await.unwrap(), conflict).await;
    assert_eq!((&body["expected"], &body["actual"]), (&json!(1), &json!(2)));
    assert_eq!(body["kind"], "conflict");
    let body = error(
        server
            .post("/accounts/alice?expected_version=5", withdraw(1))
            .await,
        conflict,
    )
    .await;
    assert_eq!((&body["expected"], &body["actual"]), (&json!(5), &json!(2)));
    let body = error(
        server
            .post("/accounts/bob?expected_version=1", open("Bob", 1))
            .await,
        conflict,
    )
    .await;
    assert_eq!((&body["expected"], &body["actual"]), (&json!(1), &json!(0)));
    let alice = ok(server.get("/accounts/alice").await).await;
    assert_eq!(
        (&alice["version"], &alice["balance"]),
        (&json!(2), &json!(110))
    );
    // ... and the right version goes through.
    let done = ok(if_match("\"2\"").await.unwrap()).await;
    assert_eq!(
        (&done["version"], &done["balance"]),
        (&json!(3), &json!(111))
    );
    let done = server
        .command("alice?expected_version=3", withdraw(11))
        .await;
    assert_eq!(
        (&done["version"], &done["balance"]),
        (&json!(4), &json!(100))
    );
    server
        .command("bob?expected_version=0", open("Bob", 1))
        .await;

    // 422: refused by the domain; nothing is written.
    let refused = StatusCode::UNPROCESSABLE_ENTITY;
    let body = error(server.post("/accounts/alice", withdraw(101)).await, refused).await;
    assert_eq!(body["kind"], "rejected");
    assert_eq!(body["reason"], "InsufficientFunds");
    assert_eq!(
        (&body["balance"], &body["requested"]),
        (&json!(100), &json!(101))
    );
    // The same refusal when the expected version matches.
    let body = error(
        server
            .post("/accounts/alice?expected_version=4", withdraw(101))
            .await,
        refused,
    )
    .await;
    assert_eq!(body["reason"], "InsufficientFunds");
    let body = error(
        server.post("/accounts/alice", open("Alice", 1)).await,
        refused,
    )
    .await;
    assert_eq!(body["reason"], "AlreadyOpen");
    let body = error(server.post("/accounts/alice", deposit(0)).await, refused).await;
    assert_eq!(body["reason"], "ZeroAmount");
    let body = error(
        server.post("/accounts/alice", deposit(u64::MAX)).await,
        refused,
    )
    .await;
    assert_eq!(body["reason"], "Overflow");
    let alice = ok(server.get("/accounts/alice").await).await;
    assert_eq!(
        (&alice["version"], &alice["balance"]),
        (&json!(4), &json!(100))
    );
    let history = ok(server.get("/accounts/alice/events").await).await;
    assert_eq!(history["events"].as_array().map(Vec::len), Some(4));

    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_deposits_all_count() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    server.command("pot", open("Pot", 0)).await;

    let deposits = (1..=50u64).map(|amount| server.post("/accounts/pot", deposit(amount)));
    let answers = futures::future::join_all(deposits).await;
    let mut versions = Vec::new();
    let mut last = 0;
    for answer in answers {
        let body = ok(answer).await;
        versions.push(body["version"].as_u64().unwrap());
        last = last.max(last_seq(&body));
    }
    versions.sort_unstable();
    assert_eq!(
        versions,
        (2..=51).collect::<Vec<_>>(),
        "each deposit got its own version"
    );

    let total: u64 = (1..=50).sum();
    let pot = ok(server.get("/accounts/pot").await).await;
    assert_eq!(
        (&pot["balance"], &pot["version"]),
        (&json!(total), &json!(51))
    );
    let history = ok(server.get("/accounts/pot/events").await).await;
    assert_eq!(history["events"].as_array().map(Vec::len), Some(51));
    let rows = ok(server.get(&format!("/accounts?min_seq={last}")).await).await;
    assert_eq!(
        rows["accounts"],
        json!([{"id": "pot", "owner": "Pot", "balance": total, "version": 51}])
    );

    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_commands_at_one_expected_version_let_exactly_one_through() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    server.command("race", open("Race", 0)).await;

    // Twenty writers all read version 1; only one may write at it.
    let attempts = (1..=20u64).map(|amount| {
        server
            .client
            .post(server.url("/accounts/race"))
            .header("if-match", "\"1\"")
            .json(&deposit(amount))
            .send()
    });
    let mut won = Vec::new();
    let mut conflicts = 0;
    for answer in futures::future::join_all(attempts).await {
        let answer = answer.expect("POST");
        match answer.status() {
            StatusCode::OK => won.push(ok(answer).await),
            StatusCode::CONFLICT => {
                let body = error(answer, StatusCode::CONFLICT).await;
                assert_eq!((&body["expected"], &body["actual"]), (&json!(1), &json!(2)));
                conflicts += 1;
            }
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!((won.len(), conflicts), (1, 19));
    let race = ok(server.get("/accounts/race").await).await;
    assert_eq!(race["version"], 2);
    assert_eq!(race["balance"], won[0]["balance"]);
    server.stop().await;
}

/// Reads server-sent events off a streaming response.
struct Events {
    response: Response,
    buffer: String,
}

impl Events {
    /// The next event's name and data (keep-alive comments are skipped).
    async fn next(&mut self) -> (String, Value) {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut name = String::from("message");
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(value) = line.strip_prefix("event:") {
                        name = value.trim().to_owned();
                    } else if let Some(value) = line.strip_prefix("data:") {
                        data.push_str(value.strip_prefix(' ').unwrap_or(value));
                    }
                }
                if data.is_empty() {
                    continue; // a comment (keep-alive)
                }
                return (name, serde_json::from_str(&data).expect("JSON data"));
            }
            let chunk = tokio::time::timeout(STEP, self.response.chunk())
                .await
                .expect("an event in time")
                .expect("the stream")
                .expect("the stream ended");
            self.buffer
                .push_str(std::str::from_utf8(&chunk).expect("UTF-8"));
        }
    }

    /// Whether the stream ends (the service shut it) in time.
    async fn ends(mut self) -> bool {
        loop {
            match tokio::time::timeout(STEP, self.response.chunk()).await {
                Ok(Ok(None)) => return true,
                Ok(Ok(Some(_))) => continue,
                Ok(Err(_)) | Err(_) => return false,
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watch_streams_the_current_result_then_each_change() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    server.command("alice", open("Alice", 500)).await;
    let small = server.command("bob", open("Bob", 20)).await;

    let response = server
        .get(&format!(
            "/accounts/watch?min_balance=100&min_seq={}",
            last_seq(&small)
        ))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("text/event-stream")
    );
    let mut events = Events {
        response,
        buffer: String::new(),
    };
    let (name, rows) = events.next().await;
    assert_eq!(name, "accounts");
    assert_eq!(
        rows,
        json!([{"id": "alice", "owner": "Alice", "balance": 500, "version": 1}])
    );

    // Bob enters the result, then Alice leaves it: each change is one event.
    server.command("bob", deposit(200)).await;
    let (_, rows) = events.next().await;
    assert_eq!(
        rows,
        json!([
            {"id": "alice", "owner": "Alice", "balance": 500, "version": 1},
            {"id": "bob", "owner": "Bob", "balance": 220, "version": 2},
        ])
    );
    server.command("alice", withdraw(450)).await;
    let (_, rows) = events.next().await;
    assert_eq!(
        rows,
        json!([{"id": "bob", "owner": "Bob", "balance": 220, "version": 2}])
    );

    // A bad filter is refused before any stream starts.
    error(
        server.get("/accounts/watch?min_balance=-1").await,
        StatusCode::BAD_REQUEST,
    )
    .await;

    // Shutting down ends the stream, so the graceful shutdown completes.
    server.app.shutdown();
    assert!(events.ends().await, "the watch ends on shutdown");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_on_the_same_directory_keeps_state_and_versions() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    server.command("alice", open("Alice", 1_000)).await;
    server.command("alice", withdraw(300)).await;
    server.command("bob", open("Bob", 5)).await;
    let before = ok(server.get("/accounts/alice").await).await;
    let history = ok(server.get("/accounts/alice/events").await).await;
    server.stop().await;

    let server = Server::start(dir.path()).await;
    assert_eq!(ok(server.get("/accounts/alice").await).await, before);
    assert_eq!(before["version"], 2);
    assert_eq!(
        ok(server.get("/accounts/alice/events").await).await,
        history
    );
    // Versions go on from where they were, and the stale ones still conflict.
    let next = server.command("alice?expected_version=2", deposit(1)).await;
    assert_eq!(
        (&next["version"], &next["balance"]),
        (&json!(3), &json!(701))
    );
    error(
        server
            .post("/accounts/alice?expected_version=2", deposit(1))
            .await,
        StatusCode::CONFLICT,
    )
    .await;
    // The read model came back too (from its snapshot and the log).
    let rows = ok(server
        .get(&format!("/accounts?min_seq={}", last_seq(&next)))
        .await)
    .await;
    assert_eq!(ids(&rows), ["alice", "bob"]);
    assert_eq!(rows["accounts"][0]["balance"], 701);
    server.stop().await;
}
