//! Unit tests: configuration, id and header checks, and the status of every refusal.

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::PathBuf;

use super::routes::{check_id, if_match};
use super::*;
use crate::bank::AccountError;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};

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
fn ids_and_if_match() {
    assert!(check_id("alice-1_b.c").is_ok());
    for bad in ["", "watch", "a/b", "ä", "x".repeat(MAX_ID_LEN + 1).as_str()] {
        assert_eq!(
            check_id(bad).map_err(|e| e.status),
            Err(StatusCode::BAD_REQUEST)
        );
    }
    let mut headers = HeaderMap::new();
    assert_eq!(if_match(&headers), Ok(None));
    headers.insert(header::IF_MATCH, HeaderValue::from_static("\"3\""));
    assert_eq!(if_match(&headers), Ok(Some(3)));
    headers.insert(header::IF_MATCH, HeaderValue::from_static("7"));
    assert_eq!(if_match(&headers), Ok(Some(7)));
    headers.insert(header::IF_MATCH, HeaderValue::from_static("*"));
    assert!(if_match(&headers).is_err());
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
    assert_eq!(e.body["balance"], 1);
    assert_eq!(e.body["requested"], 2);
    assert_eq!(
        ApiError::from(DbError::Closed).status,
        StatusCode::SERVICE_UNAVAILABLE
    );
}
