//! The library's test helpers (tests/util/), plus the `ftpdlib` command started on a free
//! loopback port.
#![allow(dead_code)]

#[path = "../../../tests/util/mod.rs"]
mod shared;

pub use shared::*;

use std::io::{BufRead, BufReader};
use std::process::Command;
use std::time::{Duration, Instant};

/// A running `ftpdlib` process, killed when dropped.
pub struct Daemon(pub std::process::Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the `ftpdlib` command on a free loopback port with `args` and waits until it
/// logs that it is listening.
pub fn serve_daemon(args: &[&str]) -> (Daemon, u16) {
    let port = free_port();
    // Wrapped at once, so every path out of here kills and reaps it.
    let mut daemon = Daemon(
        Command::new(env!("CARGO_BIN_EXE_ftpdlib"))
            .args(["-i", "127.0.0.1", "-p", &port.to_string()])
            .args(args)
            .env("RUST_LOG", "info")
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut err = BufReader::new(daemon.0.stderr.take().unwrap());
    let end = Instant::now() + Duration::from_secs(20);
    let mut line = String::new();
    while Instant::now() < end {
        line.clear();
        if err.read_line(&mut line).unwrap() == 0 {
            panic!("ftpdlib exited before listening");
        }
        if line.contains("starting FTP server") {
            // Keep draining stderr so the daemon never blocks on a full pipe.
            std::thread::spawn(move || {
                let mut sink = String::new();
                while err.read_line(&mut sink).map(|n| n > 0).unwrap_or(false) {
                    sink.clear();
                }
            });
            return (daemon, port);
        }
    }
    panic!("ftpdlib did not start");
}
