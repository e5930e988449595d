//! The demos, run as the README says (`cargo run --example basic_ftpd`), serve a directory
//! of their own, never the one they were started from: a demo user may write.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};

mod util;

/// An example binary, built by `cargo test` along with the examples.
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(|d| d.parent()).unwrap().to_path_buf();
    let bin = dir.join("examples").join(name);
    if !bin.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let st = Command::new(cargo)
            .args(["build", "--example", name])
            .status()
            .unwrap();
        assert!(st.success());
    }
    bin
}

#[test]
fn basic_ftpd_serves_its_own_directory_not_the_current_one() {
    let cwd = util::TempDir::new("demo-cwd");
    let mut child = Command::new(example("basic_ftpd"))
        .current_dir(cwd.path())
        .env_remove("FTPD_DIR")
        .env("FTPD_ADDR", "127.0.0.1:0")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    let read = BufReader::new(child.stdout.take().unwrap()).read_line(&mut line);
    let _ = child.kill();
    let _ = child.wait();
    read.unwrap();
    let served = line
        .strip_prefix("serving ")
        .and_then(|l| l.split(" on ").next())
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
    let want = std::env::temp_dir()
        .join("ftpdlib-demo")
        .canonicalize()
        .unwrap();
    assert_eq!(PathBuf::from(served), want);
    assert_ne!(PathBuf::from(served), cwd.path());
}
