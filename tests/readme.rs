//! The README's tour compiles: each of its `rust` code blocks must be a verbatim
//! excerpt (up to indentation) of `examples/tour.rs`, which `cargo test` builds.

/// The `rust` fenced blocks of a markdown text, in order.
fn rust_blocks(markdown: &str) -> Vec<Vec<&str>> {
    let mut blocks = Vec::new();
    let mut current: Option<Vec<&str>> = None;
    for line in markdown.lines() {
        match (&mut current, line.trim_end()) {
            (None, "```rust") => current = Some(Vec::new()),
            (Some(_), "```") => blocks.extend(current.take()),
            (Some(block), line) => block.push(line),
            (None, _) => {}
        }
    }
    blocks
}

/// Whether `block` appears as consecutive lines of `source`, ignoring indentation.
fn is_excerpt(block: &[&str], source: &[&str]) -> bool {
    let trim = |line: &&str| line.trim().to_owned();
    let block: Vec<String> = block.iter().map(trim).collect();
    let source: Vec<String> = source.iter().map(trim).collect();
    !block.is_empty() && source.windows(block.len()).any(|window| window == block)
}

#[test]
fn every_tour_block_is_cut_from_the_tour_example() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let readme = std::fs::read_to_string(format!("{root}/README.md")).expect("README.md");
    let tour = std::fs::read_to_string(format!("{root}/examples/tour.rs")).expect("tour.rs");
    let tour: Vec<&str> = tour.lines().collect();
    let blocks = rust_blocks(&readme);
    assert!(
        blocks.len() >= 8,
        "the tour has a block per step, found {}",
        blocks.len()
    );
    for block in &blocks {
        assert!(
            is_excerpt(block, &tour),
            "this README block is not in examples/tour.rs (update one from the other):\n{}",
            block.join("\n")
        );
    }
}

#[test]
fn the_check_notices_a_changed_block() {
    let source = ["fn main() {", "    let x = 1;", "}"];
    assert!(is_excerpt(&["let x = 1;", "}"], &source));
    assert!(!is_excerpt(&["let x = 2;"], &source));
    assert!(!is_excerpt(&[], &source));
    let blocks = rust_blocks("text\n```rust\na\nb\n```\n```sh\nc\n```\n");
    assert_eq!(blocks, vec![vec!["a", "b"]]);
}
