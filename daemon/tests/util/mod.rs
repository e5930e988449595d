//! The library's test helpers (tests/util/), plus the `ftpdlib` command started on a free
//! loopback port.
#![allow(dead_code)]

pub mod procfs;
#[path = "../../../tests/util/mod.rs"]
mod shared;

pub use shared::*;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

/// The `ftpdlib` command of this build.
pub fn ftpdlib() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ftpdlib"))
}

/// Runs the command with `args`, which must fail; its standard error.
pub fn fails(args: &[&str]) -> String {
    let out = ftpdlib().args(args).output().unwrap();
    assert!(!out.status.success(), "{args:?} should fail");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

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
    let (daemon, port, _) = serve_daemon_logged(args);
    (daemon, port)
}

/// The port of a ">>> starting FTP server on 127.0.0.1:PORT..." log line.
pub fn listening_port(line: &str) -> Option<u16> {
    let rest = line.split("starting FTP server on 127.0.0.1:").nth(1)?;
    let digits = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    rest[..digits].parse().ok()
}

/// [`serve_daemon`], plus the lines the command logged up to the one that says it listens.
///
/// The command binds port 0 and the port is read from that line: a port chosen by the test
/// and bound by the daemon later could be taken in between by anything else on the machine.
pub fn serve_daemon_logged(args: &[&str]) -> (Daemon, u16, Vec<String>) {
    // Wrapped at once, so every path out of here kills and reaps it.
    let mut daemon = Daemon(
        Command::new(env!("CARGO_BIN_EXE_ftpdlib"))
            .args(["-i", "127.0.0.1", "-p", "0"])
            .args(args)
            .env("RUST_LOG", "info")
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut err = BufReader::new(daemon.0.stderr.take().unwrap());
    let end = Instant::now() + Duration::from_secs(20);
    let mut seen = Vec::new();
    let mut line = String::new();
    while Instant::now() < end {
        line.clear();
        if err.read_line(&mut line).unwrap() == 0 {
            panic!("ftpdlib {args:?} exited before listening: {seen:#?}");
        }
        seen.push(line.trim_end().to_string());
        if let Some(port) = listening_port(&line) {
            // Keep draining stderr so the daemon never blocks on a full pipe.
            std::thread::spawn(move || {
                let mut sink = String::new();
                while err.read_line(&mut sink).map(|n| n > 0).unwrap_or(false) {
                    sink.clear();
                }
            });
            return (daemon, port, seen);
        }
    }
    panic!("ftpdlib {args:?} did not start: {seen:#?}");
}

/// A running `ftpdlib` whose log lines (standard error) a test can wait for; killed when
/// dropped.
pub struct Watched {
    pub child: Child,
    lines: Receiver<String>,
    /// Every line received so far.
    pub log: Vec<String>,
}

impl Watched {
    /// Runs `cmd` (the command and its arguments) and waits until it listens.
    pub fn start(mut cmd: Command) -> Watched {
        let child = cmd.stderr(Stdio::piped()).spawn().unwrap();
        let (tx, lines) = mpsc::channel();
        let mut d = Watched {
            child,
            lines,
            log: Vec::new(),
        };
        let err = BufReader::new(d.child.stderr.take().unwrap());
        // Reads until the daemon exits, so it never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in err.lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        assert!(
            d.wait_line("starting FTP server", Duration::from_secs(20)),
            "ftpdlib did not start: {:?}",
            d.log
        );
        d
    }

    /// The port of the "starting FTP server on 127.0.0.1:PORT" line.
    pub fn port(&self) -> u16 {
        let line = self
            .log
            .iter()
            .find(|l| l.contains("starting FTP server on 127.0.0.1:"))
            .unwrap_or_else(|| panic!("not on 127.0.0.1: {:?}", self.log));
        let rest = &line[line.find("127.0.0.1:").unwrap() + 10..];
        rest[..rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len())]
            .parse()
            .unwrap()
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port()))
    }

    /// Waits until a log line contains `text`.
    pub fn wait_line(&mut self, text: &str, limit: Duration) -> bool {
        if self.log.iter().any(|l| l.contains(text)) {
            return true;
        }
        let end = Instant::now() + limit;
        while let Some(left) = end.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let hit = line.contains(text);
                    self.log.push(line);
                    if hit {
                        return true;
                    }
                }
                Err(_) => return false,
            }
        }
        false
    }

    pub fn signal(&self, sig: libc::c_int) {
        let pid = libc::pid_t::try_from(self.child.id()).unwrap();
        // SAFETY: kill(2) takes plain integers and touches no memory of ours; the pid is our
        // own child, not yet reaped (Drop reaps it), so it names no other process.
        let rc = unsafe { libc::kill(pid, sig) };
        assert_eq!(rc, 0, "kill({pid}, {sig})");
    }

    pub fn running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// Waits for the process to exit; None when it is still running after `limit`.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let end = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            if Instant::now() >= end {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Every log line up to the process's exit (call after `wait_exit`).
    pub fn whole_log(&mut self) -> String {
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(5)) {
            self.log.push(line);
        }
        self.log.join("\n")
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
