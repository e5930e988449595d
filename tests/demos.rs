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

/// The server beside a tokio runtime: an upload reaches the async side through a hook, and
/// the async side stops the server; the program ends cleanly.
#[test]
fn tokio_beside_hears_an_upload_and_stops_the_server() {
    let dir = util::TempDir::new("demo-tokio");
    let mut child = Command::new(example("tokio_beside"))
        .env("FTPD_DIR", dir.path())
        .env("FTPD_ADDR", "127.0.0.1:0")
        .env("FTPD_EXIT_AFTER", "1")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let addr: std::net::SocketAddr = line
        .trim_end()
        .rsplit(" on ")
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
    let mut c = util::Client::connect(addr);
    c.login("user", "12345");
    c.stor("STOR hello.txt", b"hello from ftp");
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}; said {rest:?}");
    assert!(rest.contains("hello.txt from user"), "{rest:?}");
    assert!(rest.contains("stopped after 1 uploads"), "{rest:?}");
    assert_eq!(
        std::fs::read(dir.join("hello.txt")).unwrap(),
        b"hello from ftp"
    );
}

/// The multi-core demo: sessions land on more than one reactor thread, and the group stops
/// from a hook once the sessions it waited for are gone.
#[test]
fn multicore_ftpd_spreads_sessions_over_its_reactors() {
    let dir = util::TempDir::new("demo-multicore");
    let sessions = 24;
    let mut child = Command::new(example("multicore_ftpd"))
        .env("FTPD_DIR", dir.path())
        .env("FTPD_ADDR", "127.0.0.1:0")
        .env("FTPD_WORKERS", "2")
        .env("FTPD_EXIT_AFTER", sessions.to_string())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert!(line.contains("with 2 reactors on"), "{line:?}");
    let addr: std::net::SocketAddr = line
        .trim_end()
        .rsplit(" on ")
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
    for i in 0..sessions {
        let mut c = util::Client::connect(addr);
        c.login("user", "12345");
        c.stor(format!("STOR f{i}"), b"x");
        c.cmd("QUIT", 221);
    }
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}; said {rest:?}");
    assert!(
        rest.contains(&format!("stopped after {sessions} sessions")),
        "{rest:?}"
    );
    // 24 connections hashed over two listeners: both get some but with odds of 2^-23.
    for r in ["ftpd-reactor-0", "ftpd-reactor-1"] {
        assert!(
            rest.contains(&format!("user logged in on {r}")),
            "{r}: {rest:?}"
        );
    }
}
