//! The README's embedding snippet is code that compiles: its lines are those of the
//! doctest in src/lib.rs's "Embedding in your mio loop" section, which `cargo test` builds.

/// The lines of the first fenced block in `text` whose opening fence starts with `fence`.
fn block(text: &str, fence: &str) -> Vec<String> {
    let mut lines = text
        .lines()
        .skip_while(|l| !l.trim_start().starts_with(fence));
    lines.next().expect("the opening fence");
    lines
        .take_while(|l| l.trim() != "```")
        .map(str::to_string)
        .collect()
}

#[test]
fn the_readme_snippet_is_the_compiled_doctest() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let lib = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/src/lib.rs"))
        .expect("src/lib.rs");
    let snippet = block(&readme, "```rust");
    assert!(snippet.len() > 5, "no rust block in README.md");
    // The doctest after the embedding heading, as rustdoc compiles it: the `//! ` taken off.
    let docs: String = lib
        .lines()
        .filter_map(|l| l.strip_prefix("//!"))
        .map(|l| l.strip_prefix(' ').unwrap_or(l))
        .collect::<Vec<_>>()
        .join("\n");
    let section = docs
        .split("# Embedding in your mio loop")
        .nth(1)
        .expect("the embedding section of src/lib.rs");
    let doctest = block(section, "```no_run");
    assert!(
        doctest
            .windows(snippet.len())
            .any(|w| w == snippet.as_slice()),
        "README.md's snippet is not in src/lib.rs's compiled doctest:\n{}",
        snippet.join("\n")
    );
}
