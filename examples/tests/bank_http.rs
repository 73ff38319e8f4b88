//! The bank over HTTP (`foldkit_examples::bank_http`), driven by a real HTTP client
//! against the router bound on a loopback port: the RustAPI bank's documented
//! request sequence with its exact answers, every error status, `If-Match`,
//! concurrent commands, the watch stream (server-sent events) and a restart.

use std::path::Path;
use std::time::Duration;

use foldkit::Db;
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

fn open(owner: &str, initial_balance: f64) -> Value {
    json!({"type": "OpenAccount", "owner": owner, "initial_balance": initial_balance})
}

fn deposit(amount: f64) -> Value {
    json!({"type": "Deposit", "amount": amount})
}

fn withdraw(amount: f64) -> Value {
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

/// A history without foldkit's extra `meta` field: the RustAPI shape.
fn without_meta(history: &Value) -> Value {
    let mut history = history.clone();
    for event in history.as_array_mut().expect("an array") {
        event.as_object_mut().expect("an object").remove("meta");
    }
    history
}

fn etag(response: &Response) -> Option<&str> {
    response.headers().get("etag").and_then(|v| v.to_str().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rustapi_bank_requests_get_its_answers() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;

    // The README of the RustAPI event-sourcing example, request by request.
    let opened = server
        .post_raw(
            "/accounts/acc-001",
            r#"{"type":"OpenAccount","owner":"Alice","initial_balance":1000.0}"#,
        )
        .await;
    let opened = ok(opened).await;
    let deposited = server
        .post_raw("/accounts/acc-001", r#"{"type":"Deposit","amount":500.0}"#)
        .await;
    let deposited = ok(deposited).await;
    let withdrawn = server
        .post_raw("/accounts/acc-001", r#"{"type":"Withdraw","amount":200.0}"#)
        .await;
    let withdrawn = ok(withdrawn).await;

    let account = server.get("/accounts/acc-001").await;
    assert_eq!(etag(&account), Some("\"3\""));
    let account_text = account.text().await.unwrap();
    assert_eq!(
        account_text,
        r#"{"id":"acc-001","owner":"Alice","balance":1300.0,"version":3}"#
    );

    let history = server.get("/accounts/acc-001/events").await;
    assert_eq!(etag(&history), Some("\"3\""));
    let text = history.text().await.unwrap();
    // The RustAPI shape, in its field order, with foldkit's `meta` after each event.
    assert!(
        text.starts_with(
            r#"[{"type":"AccountOpened","owner":"Alice","initial_balance":1000.0,"meta":{"#
        ),
        "{text}"
    );
    let history: Value = serde_json::from_str(&text).unwrap();
    let rustapi: Value = serde_json::from_str(
        r#"[{"type":"AccountOpened","owner":"Alice","initial_balance":1000.0},{"type":"MoneyDeposited","amount":500.0},{"type":"MoneyWithdrawn","amount":200.0}]"#,
    )
    .unwrap();
    assert_eq!(without_meta(&history), rustapi);

    // foldkit's extras: event metadata, and what each command wrote.
    let metas: Vec<_> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["meta"]["version"].as_u64(), e["meta"]["seq"].as_u64()))
        .collect();
    let seqs = [&opened, &deposited, &withdrawn].map(|a| Some(last_seq(a)));
    assert_eq!(
        metas,
        [(Some(1), seqs[0]), (Some(2), seqs[1]), (Some(3), seqs[2])]
    );
    assert!(
        history
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["meta"]["timestamp"].as_u64() > Some(0))
    );
    assert_eq!(
        opened,
        json!({
            "id": "acc-001", "owner": "Alice", "balance": 1000.0, "version": 1,
            "seqs": {"first": seqs[0], "last": seqs[0]},
            "events": [{"type": "AccountOpened", "owner": "Alice", "initial_balance": 1000.0}],
        })
    );
    assert_eq!(
        (&deposited["balance"], &deposited["version"]),
        (&json!(1500.0), &json!(2))
    );
    assert_eq!(
        withdrawn["events"],
        json!([{"type": "MoneyWithdrawn", "amount": 200.0}])
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cents_stay_exact_and_queries_read_your_writes() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;

    server.command("alice", open("Alice", 0.1)).await;
    // Ten times 0.1 plus 0.2 is 1.2 in cents, where doubles would drift.
    for _ in 0..10 {
        server.command("alice", deposit(0.1)).await;
    }
    let last = server.command("alice", deposit(0.2)).await;
    assert_eq!(last["balance"], json!(1.3));
    let withdrawn = server.command("alice", withdraw(0.29)).await;
    assert_eq!(withdrawn["balance"], json!(1.01));
    server.command("bob", open("Bob", 50.0)).await;
    let carol = server.command("carol", open("Carol", 5_000.55)).await;

    // Read-your-writes: `min_seq` waits for the fold inside the service.
    let last = last_seq(&carol);
    let rich = ok(server
        .get(&format!("/accounts?min_balance=50&min_seq={last}"))
        .await)
    .await;
    assert_eq!(ids(&rich), ["bob", "carol"]);
    assert!(rich["applied_seq"].as_u64() >= Some(last));
    assert_eq!(
        rich["accounts"][1],
        json!({"id": "carol", "owner": "Carol", "balance": 5000.55, "version": 1})
    );
    let by_owner = ok(server.get("/accounts?owner=Alice").await).await;
    assert_eq!(
        by_owner["accounts"],
        json!([{"id": "alice", "owner": "Alice", "balance": 1.01, "version": 13}])
    );
    let both = "/accounts?owner=Carol&min_balance=1000.5";
    assert_eq!(ids(&ok(server.get(both).await).await), ["carol"]);
    let none = "/accounts?owner=Alice&min_balance=1000";
    assert!(ids(&ok(server.get(none).await).await).is_empty());
    let capped = "/accounts?max_balance=50.00&limit=1";
    assert_eq!(ids(&ok(server.get(capped).await).await), ["alice"]);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_error_has_its_status_and_a_json_body() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    server.command("alice", open("Alice", 100.0)).await;

    // 400: malformed JSON, an unknown command type, a missing field, a bad amount.
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
    for (amount, says) in [
        ("1.005", "at most two decimal places"),
        ("-5", "must not be negative"),
        ("-0.01", "must not be negative"),
        ("NaN", "NaN and Infinity are not JSON numbers"),
        ("Infinity", "NaN and Infinity are not JSON numbers"),
        ("1e20", "at most 9999999999999.99"),
        ("10000000000000", "at most 9999999999999.99"),
        ("\"lots\"", "a decimal number such as 1000.0"),
        ("true", "an amount"),
    ] {
        let body = format!(r#"{{"type":"Deposit","amount":{amount}}}"#);
        let response = server
            .client
            .post(server.url("/accounts/alice"))
            .body(body)
            .send()
            .await
            .unwrap();
        let answer = error(response, bad).await;
        let message = answer["error"].as_str().unwrap();
        assert!(message.contains(says), "{amount}: {message}");
    }
    // 400: bad query parameters and ids.
    let body = error(server.get("/accounts?min_balance=lots").await, bad).await;
    assert!(body["error"].as_str().unwrap().contains("lots"), "{body}");
    error(server.get("/accounts?min_balance=0.001").await, bad).await;
    error(server.get("/accounts?colour=red").await, bad).await;
    error(server.get("/accounts?min_seq=1000000").await, bad).await;
    error(
        server
            .post("/accounts/alice?expected_version=x", deposit(1.0))
            .await,
        bad,
    )
    .await;
    error(
        server.post("/accounts/a%20b", open("Space", 1.0)).await,
        bad,
    )
    .await;
    error(server.get("/accounts/a%2Fb").await, bad).await;

    // 404 and 405: JSON too, for routes and methods the service does not have.
    let missing = StatusCode::NOT_FOUND;
    let body = error(server.get("/accounts/nobody").await, missing).await;
    assert_eq!(
        (&body["kind"], &body["id"]),
        (&json!("not_found"), &json!("nobody"))
    );
    error(server.get("/accounts/nobody/events").await, missing).await;
    error(server.post("/accounts/nobody", deposit(5.0)).await, missing).await;
    let body = error(server.get("/nowhere").await, missing).await;
    assert_eq!(body["error"], "no route for GET /nowhere");
    let deleted = server
        .client
        .delete(server.url("/accounts/alice"))
        .send()
        .await
        .unwrap();
    let body = error(deleted, StatusCode::METHOD_NOT_ALLOWED).await;
    assert_eq!(body["kind"], "method_not_allowed");

    // 409: a stale `expected_version`; nothing is written.
    let conflict = StatusCode::CONFLICT;
    server.command("alice", deposit(10.0)).await; // version 2
    let body = error(
        server
            .post("/accounts/alice?expected_version=5", withdraw(1.0))
            .await,
        conflict,
    )
    .await;
    assert_eq!((&body["expected"], &body["actual"]), (&json!(5), &json!(2)));
    assert_eq!(body["kind"], "conflict");
    let body = error(
        server
            .post("/accounts/bob?expected_version=1", open("Bob", 1.0))
            .await,
        conflict,
    )
    .await;
    assert_eq!((&body["expected"], &body["actual"]), (&json!(1), &json!(0)));
    let done = server
        .command("alice?expected_version=2", withdraw(10.0))
        .await;
    assert_eq!(
        (&done["version"], &done["balance"]),
        (&json!(3), &json!(100.0))
    );
    server
        .command("bob?expected_version=0", open("Bob", 1.0))
        .await;

    // 422: refused by the domain; nothing is written.
    let refused = StatusCode::UNPROCESSABLE_ENTITY;
    let body = error(
        server.post("/accounts/alice", withdraw(100.01)).await,
        refused,
    )
    .await;
    assert_eq!(body["kind"], "rejected");
    assert_eq!(body["reason"], "InsufficientFunds");
    assert_eq!(
        (&body["balance"], &body["requested"]),
        (&json!(100.0), &json!(100.01))
    );
    let body = error(
        server.post("/accounts/alice", open("Alice", 1.0)).await,
        refused,
    )
    .await;
    assert_eq!(body["reason"], "AlreadyOpen");
    let body = error(server.post("/accounts/alice", deposit(0.0)).await, refused).await;
    assert_eq!(body["reason"], "ZeroAmount");
    let body = error(
        server
            .post("/accounts/alice", deposit(9_999_999_999_999.99))
            .await,
        refused,
    )
    .await;
    assert_eq!(body["reason"], "Overflow");
    let alice = ok(server.get("/accounts/alice").await).await;
    assert_eq!(
        (&alice["version"], &alice["balance"]),
        (&json!(3), &json!(100.0))
    );
    let history = ok(server.get("/accounts/alice/events").await).await;
    assert_eq!(history.as_array().map(Vec::len), Some(3));

    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn if_match_takes_a_star_and_strong_or_weak_tags_as_rfc_9110_says() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    let if_match = |id: &str, value: &'static str, command: Value| {
        server
            .client
            .post(server.url(&format!("/accounts/{id}")))
            .header("if-match", value)
            .json(&command)
            .send()
    };
    let failed = StatusCode::PRECONDITION_FAILED;

    // `*`: the account must exist.
    let body = error(
        if_match("alice", "*", open("Alice", 10.0)).await.unwrap(),
        failed,
    )
    .await;
    assert_eq!(
        (&body["kind"], &body["actual"]),
        (&json!("precondition_failed"), &json!(0))
    );
    server.command("alice", open("Alice", 10.0)).await; // version 1
    let done = ok(if_match("alice", "*", deposit(1.0)).await.unwrap()).await;
    assert_eq!(done["version"], 2);

    // The ETag GET answers, sent back as it is, goes through once.
    let current = server.get("/accounts/alice").await;
    let tag = etag(&current).unwrap().to_owned();
    let send_tag = |tag: String| {
        server
            .client
            .post(server.url("/accounts/alice"))
            .header("if-match", tag)
            .json(&deposit(1.0))
            .send()
    };
    assert_eq!(ok(send_tag(tag.clone()).await.unwrap()).await["version"], 3);
    let stale = send_tag(tag.clone()).await.unwrap();
    assert_eq!(etag(&stale), Some("\"3\""), "a 412 tells the current ETag");
    let body = error(stale, failed).await;
    assert_eq!(body["actual"], 3);

    // A list matches when one strong tag does; a weak tag never does (strong comparison).
    let done = ok(if_match("alice", "\"1\", \"3\"", deposit(1.0))
        .await
        .unwrap())
    .await;
    assert_eq!(done["version"], 4);
    error(
        if_match("alice", "W/\"4\"", deposit(1.0)).await.unwrap(),
        failed,
    )
    .await;
    let done = ok(if_match("alice", "W/\"4\", \"4\"", deposit(1.0))
        .await
        .unwrap())
    .await;
    assert_eq!(done["version"], 5);

    // Malformed: 400, and the message shows the syntax, not a tag to copy.
    for bad in ["5", "\"5", "*, \"5\"", "w/\"5\""] {
        let body = error(
            if_match("alice", bad, deposit(1.0)).await.unwrap(),
            StatusCode::BAD_REQUEST,
        )
        .await;
        let message = body["error"].as_str().unwrap();
        assert!(message.contains("RFC 9110"), "{message}");
        assert!(
            !message.contains("\"5\"") && !message.contains("\"3\""),
            "{message}"
        );
    }
    // Both ways at once is ambiguous.
    let both = server
        .client
        .post(server.url("/accounts/alice?expected_version=5"))
        .header("if-match", "\"5\"")
        .json(&deposit(1.0))
        .send()
        .await
        .unwrap();
    error(both, StatusCode::BAD_REQUEST).await;

    let alice = ok(server.get("/accounts/alice").await).await;
    assert_eq!(
        (&alice["version"], &alice["balance"]),
        (&json!(5), &json!(14.0))
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_deposits_all_count() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    server.command("pot", open("Pot", 0.0)).await;

    let deposits =
        (1..=50u32).map(|cents| server.post("/accounts/pot", deposit(f64::from(cents) / 100.0)));
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

    // 1 + 2 + ... + 50 cents.
    let pot = ok(server.get("/accounts/pot").await).await;
    assert_eq!(
        (&pot["balance"], &pot["version"]),
        (&json!(12.75), &json!(51))
    );
    let history = ok(server.get("/accounts/pot/events").await).await;
    assert_eq!(history.as_array().map(Vec::len), Some(51));
    let rows = ok(server.get(&format!("/accounts?min_seq={last}")).await).await;
    assert_eq!(
        rows["accounts"],
        json!([{"id": "pot", "owner": "Pot", "balance": 12.75, "version": 51}])
    );

    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_commands_at_one_etag_let_exactly_one_through() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    server.command("race", open("Race", 0.0)).await;

    // Twenty writers all read version 1; only one may write at it.
    let attempts = (1..=20u32).map(|amount| {
        server
            .client
            .post(server.url("/accounts/race"))
            .header("if-match", "\"1\"")
            .json(&deposit(f64::from(amount)))
            .send()
    });
    let mut won = Vec::new();
    let mut failed = 0;
    for answer in futures::future::join_all(attempts).await {
        let answer = answer.expect("POST");
        match answer.status() {
            StatusCode::OK => won.push(ok(answer).await),
            StatusCode::PRECONDITION_FAILED => {
                let body = error(answer, StatusCode::PRECONDITION_FAILED).await;
                assert_eq!(body["actual"], 2);
                failed += 1;
            }
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!((won.len(), failed), (1, 19));
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
    server.command("alice", open("Alice", 500.0)).await;
    let small = server.command("bob", open("Bob", 20.0)).await;

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
        json!([{"id": "alice", "owner": "Alice", "balance": 500.0, "version": 1}])
    );

    // Bob enters the result, then Alice leaves it: each change is one event.
    server.command("bob", deposit(200.5)).await;
    let (_, rows) = events.next().await;
    assert_eq!(
        rows,
        json!([
            {"id": "alice", "owner": "Alice", "balance": 500.0, "version": 1},
            {"id": "bob", "owner": "Bob", "balance": 220.5, "version": 2},
        ])
    );
    server.command("alice", withdraw(450.0)).await;
    let (_, rows) = events.next().await;
    assert_eq!(
        rows,
        json!([{"id": "bob", "owner": "Bob", "balance": 220.5, "version": 2}])
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
    server.command("alice", open("Alice", 1_000.0)).await;
    server.command("alice", withdraw(300.0)).await;
    server.command("bob", open("Bob", 5.0)).await;
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
    let next = server
        .command("alice?expected_version=2", deposit(1.0))
        .await;
    assert_eq!(
        (&next["version"], &next["balance"]),
        (&json!(3), &json!(701.0))
    );
    error(
        server
            .post("/accounts/alice?expected_version=2", deposit(1.0))
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
    assert_eq!(rows["accounts"][0]["balance"], 701.0);
    server.stop().await;
}
