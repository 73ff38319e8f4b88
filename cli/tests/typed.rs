//! `foldkit::cli::Cli::new().event::<E>()`: a user's own tool shows the
//! registered event types as JSON.

mod common;

use common::{Counter, healthy};
use foldkit::cli::Cli;

fn run(cli: Cli, args: &[&str]) -> (u8, String, String) {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = cli.run_with_output(
        std::iter::once("my-tool").chain(args.iter().copied()),
        &mut out,
        &mut err,
    );
    (
        code,
        String::from_utf8_lossy(&out).into_owned(),
        String::from_utf8_lossy(&err).into_owned(),
    )
}

#[tokio::test]
async fn registered_events_show_as_json() {
    let dir = healthy().await;
    let dir_arg = dir.path().to_str().expect("utf-8");
    let (code, out, err) = run(
        Cli::new().event::<Counter>(),
        &["events", "--to", "2", dir_arg],
    );
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2);
    assert!(lines[0].ends_with(r#"{"Added":{"n":1}}"#), "{}", lines[0]);

    let (_, out, _) = run(
        Cli::new().event::<Counter>(),
        &[
            "events", "--json", "--stream", "acct-1", "--to", "151", dir_arg,
        ],
    );
    let value: serde_json::Value = serde_json::from_str(out.trim()).expect("JSON");
    assert_eq!(value["data"], serde_json::json!({"Added": {"n": 0}}));
    assert!(value.get("payload").is_none());

    // Without the registration the same event is hex.
    let (_, out, _) = run(Cli::new(), &["events", "--to", "1", dir_arg]);
    assert!(out.trim_end().ends_with("0001"), "{out}");
}

#[tokio::test]
async fn an_unknown_type_names_the_known_ones() {
    let dir = healthy().await;
    let (code, out, err) = run(
        Cli::new().event::<Counter>(),
        &[
            "events",
            "--type",
            "Countr",
            dir.path().to_str().expect("utf-8"),
        ],
    );
    assert_eq!(code, 2);
    assert!(out.is_empty());
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("no event type named `Countr`") && err.contains("known: Counter"),
        "{err}"
    );
}
