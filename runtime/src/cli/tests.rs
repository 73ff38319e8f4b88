//! Argument handling without a process (the binary's tests run real directories).

use super::{Cli, Io};

fn run(args: &[&str]) -> (u8, String, String) {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let mut input: &[u8] = b"";
    let mut io = Io {
        out: &mut out,
        err: &mut err,
        input: &mut input,
        tty: false,
    };
    let code = Cli::new().run_with(
        std::iter::once("foldkit").chain(args.iter().copied()),
        &mut io,
    );
    (
        code,
        String::from_utf8_lossy(&out).into_owned(),
        String::from_utf8_lossy(&err).into_owned(),
    )
}

#[test]
fn a_missing_directory_is_one_line_and_exit_2() {
    let (code, out, err) = run(&["info", "/nonexistent/foldkit-dir"]);
    assert_eq!(code, 2);
    assert!(out.is_empty());
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("is not a directory"), "{err}");
}

#[test]
fn a_bad_argument_is_exit_2() {
    let (code, _, err) = run(&["events"]);
    assert_eq!(code, 2);
    assert!(err.contains("DIR"), "{err}");
}

#[test]
fn postgres_without_an_opener_names_the_way_to_get_one() {
    let (code, out, err) = run(&["info", "--postgres", "postgres://db/shop"]);
    assert_eq!(code, 2);
    assert!(out.is_empty());
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("cannot open PostgreSQL") && err.contains("Cli::postgres"),
        "{err}"
    );
}

#[test]
fn dead_letters_needs_a_directory_or_a_database() {
    let (code, _, err) = run(&["dead-letters"]);
    assert_eq!(code, 2);
    assert!(err.contains("<DIR|--postgres <URL>>"), "{err}");
}
