//! Unit tests: configuration, id and header checks, and the status of every refusal.

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::PathBuf;

use super::routes::{check_id, parse_command};
use super::*;
use crate::bank::AccountError;
use axum::http::StatusCode;

fn parse(args: &[&str], env: &[(&str, &str)]) -> Result<Option<Config>, String> {
    let env: HashMap<String, OsString> = env
        .iter()
        .map(|(k, v)| ((*k).to_owned(), OsString::from(v)))
        .collect();
    Config::parse(args.iter().map(OsString::from), |key| env.get(key).cloned())
}

#[test]
fn flags_override_env_which_overrides_defaults() {
    let defaults = parse(&[], &[]).unwrap().unwrap();
    assert_eq!(defaults.data_dir, PathBuf::from("./bank-data"));
    assert_eq!(defaults.addr.to_string(), "127.0.0.1:3000");

    let env = [("FOLDKIT_DATA_DIR", "/env"), ("FOLDKIT_ADDR", "0.0.0.0:80")];
    let from_env = parse(&[], &env).unwrap().unwrap();
    assert_eq!(from_env.data_dir, PathBuf::from("/env"));
    assert_eq!(from_env.addr.to_string(), "0.0.0.0:80");

    let flags = parse(&["--data-dir", "/flag", "--addr=127.0.0.1:9"], &env)
        .unwrap()
        .unwrap();
    assert_eq!(flags.data_dir, PathBuf::from("/flag"));
    assert_eq!(flags.addr.to_string(), "127.0.0.1:9");
}

#[test]
fn bad_flags_are_errors() {
    assert_eq!(parse(&["--help"], &[]), Ok(None));
    assert!(parse(&["--port", "1"], &[]).is_err());
    assert!(parse(&["--addr"], &[]).is_err());
    assert!(parse(&["--addr", "nowhere"], &[]).is_err());
    assert!(parse(&[], &[("FOLDKIT_ADDR", "x")]).is_err());
}

#[test]
fn ids() {
    assert!(check_id("alice-1_b.c").is_ok());
    for bad in ["", "watch", "a/b", "ä", "x".repeat(MAX_ID_LEN + 1).as_str()] {
        assert_eq!(
            check_id(bad).map_err(|e| e.status),
            Err(StatusCode::BAD_REQUEST)
        );
    }
}

#[test]
fn commands_read_decimal_amounts_as_exact_cents() {
    use crate::bank::AccountCommand;
    let parse = |body: &str| parse_command(body.as_bytes());
    assert_eq!(
        parse(r#"{"type":"OpenAccount","owner":"Alice","initial_balance":1000.0}"#),
        Ok(AccountCommand::OpenAccount {
            owner: "Alice".into(),
            initial_balance: 100_000
        })
    );
    assert_eq!(
        parse(r#"{"type":"Deposit","amount":0.29}"#),
        Ok(AccountCommand::Deposit { amount: 29 })
    );
    let message = |body: &str| {
        parse(body).unwrap_err().body["error"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert!(message(r#"{"type":"Deposit","amount":1.005}"#).contains("at most two decimal places"));
    assert!(message(r#"{"type":"Deposit","amount":-5}"#).contains("must not be negative"));
    assert!(
        message(r#"{"type":"Deposit","amount":NaN}"#)
            .contains("NaN and Infinity are not JSON numbers")
    );
    assert!(message(r#"{"type":"Deposit","amount":1e20}"#).contains("at most 9999999999999.99"));
    assert!(message(r#"{"type":"Steal","amount":5}"#).contains("unknown variant `Steal`"));
}

#[test]
fn every_refusal_has_its_status() {
    let status = |e: AccountError| ApiError::rejected("a", &e).status;
    assert_eq!(status(AccountError::NotOpen), StatusCode::NOT_FOUND);
    assert_eq!(
        status(AccountError::AlreadyOpen),
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(
        status(AccountError::ZeroAmount),
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(
        status(AccountError::Overflow),
        StatusCode::UNPROCESSABLE_ENTITY
    );
    let e = ApiError::rejected(
        "a",
        &AccountError::InsufficientFunds {
            balance: 1,
            requested: 2,
        },
    );
    assert_eq!(e.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(e.body["balance"], 0.01);
    assert_eq!(e.body["requested"], 0.02);
    assert_eq!(
        ApiError::from(DbError::Closed).status,
        StatusCode::SERVICE_UNAVAILABLE
    );
}
