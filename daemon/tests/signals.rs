//! The `ftpdlib` command under signals: SIGINT and SIGTERM stop it gracefully (transfers
//! finish within `--shutdown-grace`, exit 0), SIGHUP reloads `--users` and never kills it.

mod util;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use util::{assert_same, free_port, random_bytes, Client, TempDir, Watched};

type Daemon = Watched;

/// The command on a free loopback port with `args`, logging at info.
fn start(args: &[&str]) -> Daemon {
    let port = free_port();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ftpdlib"));
    cmd.args(["-i", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .env("RUST_LOG", "info");
    Watched::start(cmd)
}

fn exited_zero(d: &mut Daemon, limit: Duration) {
    let status = d.wait_exit(limit);
    let log = d.whole_log();
    let status = status.unwrap_or_else(|| panic!("still running after {limit:?}; log:\n{log}"));
    assert!(status.success(), "{status:?}; log:\n{log}");
}

/// Logs in anonymously, starts `RETR name` over PASV and reads the first bytes; returns the
/// control client, the data connection and the bytes read so far.
fn start_download(addr: SocketAddr, name: &str) -> (Client, TcpStream, Vec<u8>) {
    let mut c = Client::connect(addr);
    c.login("anonymous", "x@y");
    c.cmd("TYPE I", 200);
    let pasv = c.pasv();
    let mut data = TcpStream::connect(pasv).unwrap();
    data.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    c.send(format!("RETR {name}"));
    let r = c.read_reply();
    assert!(r.code == 150 || r.code == 125, "{:?}", r.lines);
    let mut got = vec![0u8; 4096];
    let n = data.read(&mut got).unwrap();
    assert!(n > 0);
    got.truncate(n);
    (c, data, got)
}

/// Reads the data connection to its end; a reset counts as the end.
fn read_rest(data: &mut TcpStream, got: &mut Vec<u8>) {
    let mut buf = [0u8; 16384];
    loop {
        match data.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
}

fn write_file(dir: &Path, name: &str, len: usize) -> Vec<u8> {
    let bytes = random_bytes(len, 7);
    std::fs::write(dir.join(name), &bytes).unwrap();
    bytes
}

#[test]
fn sigterm_without_sessions_exits_zero_at_once() {
    let dir = TempDir::new("sig-idle");
    let mut d = start(&["-d", dir.path().to_str().unwrap()]);
    let start = Instant::now();
    d.signal(libc::SIGTERM);
    exited_zero(&mut d, Duration::from_secs(5));
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
    // In this order: the reactors stop as soon as they are closed, before the signal
    // thread that closed them has logged it, and the process must wait for that thread.
    logged_in_order(
        &d,
        &[
            ">>> shutting down FTP server (0 sessions) <<<",
            ">>> FTP server stopped (0 sessions closed) <<<",
        ],
    );
}

/// Every one of `lines` was logged, in that order.
fn logged_in_order(d: &Daemon, lines: &[&str]) {
    let at: Vec<Option<usize>> = lines
        .iter()
        .map(|want| d.log.iter().position(|l| l.contains(want)))
        .collect();
    assert!(
        at.iter().all(Option::is_some) && at.windows(2).all(|w| w[0] < w[1]),
        "{lines:?} at {at:?} in {:#?}",
        d.log
    );
}

#[test]
fn sigterm_closes_idle_sessions_without_waiting_for_the_grace_period() {
    let dir = TempDir::new("sig-idle-session");
    let mut d = start(&["-d", dir.path().to_str().unwrap()]);
    let mut c = Client::connect(d.addr());
    c.login("anonymous", "x@y");
    c.cmd("NOOP", 200);
    let start = Instant::now();
    d.signal(libc::SIGTERM);
    exited_zero(&mut d, Duration::from_secs(5));
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
    assert!(c.closed_by_server());
    logged_in_order(
        &d,
        &[
            ">>> shutting down FTP server (1 sessions) <<<",
            ">>> FTP server stopped (1 sessions closed) <<<",
        ],
    );
    // No new session once shutting down.
    assert!(TcpStream::connect(d.addr()).is_err());
}

#[test]
fn sigint_lets_a_slow_download_finish() {
    let dir = TempDir::new("sig-slow");
    // 384 KiB at 128 KiB/s: about three seconds.
    let want = write_file(dir.path(), "big.bin", 384 * 1024);
    let mut d = start(&["-d", dir.path().to_str().unwrap(), "--write-limit", "128K"]);
    let (mut c, mut data, mut got) = start_download(d.addr(), "big.bin");
    let start = Instant::now();
    d.signal(libc::SIGINT);
    assert!(d.wait_line(
        ">>> shutting down FTP server (1 sessions) <<<",
        Duration::from_secs(5)
    ));
    // Listeners are closed while the transfer runs on.
    assert!(TcpStream::connect(d.addr()).is_err());
    read_rest(&mut data, &mut got);
    assert_same(&got, &want);
    c.expect(226);
    // Default grace period 10 s, plus a margin for a busy machine.
    exited_zero(&mut d, Duration::from_secs(15));
    assert!(start.elapsed() < Duration::from_secs(15));
}

#[test]
fn a_second_sigterm_ends_at_once() {
    let dir = TempDir::new("sig-twice");
    write_file(dir.path(), "big.bin", 4 * 1024 * 1024);
    let mut d = start(&[
        "-d",
        dir.path().to_str().unwrap(),
        "--write-limit",
        "64K",
        "--shutdown-grace",
        "60",
    ]);
    let (_c, mut data, mut got) = start_download(d.addr(), "big.bin");
    d.signal(libc::SIGTERM);
    assert!(d.wait_line("shutting down FTP server", Duration::from_secs(5)));
    let start = Instant::now();
    d.signal(libc::SIGTERM);
    exited_zero(&mut d, Duration::from_secs(5));
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
    assert!(d.log.join("\n").contains("second SIGTERM"), "{:?}", d.log);
    read_rest(&mut data, &mut got);
    assert!(got.len() < 4 * 1024 * 1024);
}

#[test]
fn the_grace_period_cuts_an_unfinished_transfer() {
    let dir = TempDir::new("sig-grace");
    write_file(dir.path(), "big.bin", 4 * 1024 * 1024);
    let mut d = start(&[
        "-d",
        dir.path().to_str().unwrap(),
        "--write-limit",
        "64K",
        "--shutdown-grace",
        "1",
    ]);
    let (_c, mut data, mut got) = start_download(d.addr(), "big.bin");
    let start = Instant::now();
    d.signal(libc::SIGTERM);
    exited_zero(&mut d, Duration::from_secs(8));
    let took = start.elapsed();
    assert!(took >= Duration::from_millis(900), "{took:?}");
    assert!(took < Duration::from_secs(6), "{took:?}");
    assert!(
        d.log
            .join("\n")
            .contains("grace period over: cutting 1 transfers"),
        "{:?}",
        d.log
    );
    read_rest(&mut data, &mut got);
    assert!(got.len() < 4 * 1024 * 1024);
}

#[test]
fn shutdown_grace_zero_closes_transfers_at_once() {
    let dir = TempDir::new("sig-grace0");
    write_file(dir.path(), "big.bin", 4 * 1024 * 1024);
    let mut d = start(&[
        "-d",
        dir.path().to_str().unwrap(),
        "--write-limit",
        "64K",
        "--shutdown-grace=0",
    ]);
    let (_c, _data, _got) = start_download(d.addr(), "big.bin");
    let start = Instant::now();
    d.signal(libc::SIGINT);
    exited_zero(&mut d, Duration::from_secs(5));
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn sighup_without_files_keeps_serving() {
    let dir = TempDir::new("sig-hup-plain");
    let mut d = start(&["-d", dir.path().to_str().unwrap()]);
    d.signal(libc::SIGHUP);
    assert!(
        d.wait_line("nothing to reload", Duration::from_secs(5)),
        "{:?}",
        d.log
    );
    assert!(d.wait_exit(Duration::from_millis(300)).is_none());
    Client::connect(d.addr()).login("anonymous", "x@y");
}

#[test]
fn sighup_reloads_the_users_file_and_refuses_a_bad_one() {
    let dir = TempDir::new("sig-hup-users");
    let home = dir.join("home");
    std::fs::create_dir(&home).unwrap();
    let users = dir.join("users.txt");
    std::fs::write(&users, "alice:wonder:elr\n").unwrap();
    let mut d = start(&[
        "-d",
        home.to_str().unwrap(),
        "--users",
        users.to_str().unwrap(),
        "--auth-failed-delay",
        "0",
    ]);
    let mut alice = Client::connect(d.addr());
    alice.login("alice", "wonder");

    let mut bob = Client::connect(d.addr());
    bob.cmd("USER bob", 331);
    bob.cmd("PASS builder", 530);

    // Bob added: he can log in after SIGHUP; alice's session runs on.
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&users)
        .unwrap();
    f.write_all(b"bob:builder:elr\n").unwrap();
    drop(f);
    d.signal(libc::SIGHUP);
    assert!(
        d.wait_line("SIGHUP: reloaded 2 accounts", Duration::from_secs(5)),
        "{:?}",
        d.log
    );
    Client::connect(d.addr()).login("bob", "builder");
    alice.cmd("NOOP", 200);

    // A broken file is refused: the old accounts stay.
    std::fs::write(&users, "carol\n").unwrap();
    d.signal(libc::SIGHUP);
    assert!(
        d.wait_line(
            "reload refused, keeping the old settings",
            Duration::from_secs(5)
        ),
        "{:?}",
        d.log
    );
    assert!(
        d.log.iter().any(|l| l.contains("users.txt:1")),
        "the reason names the line: {:?}",
        d.log
    );
    Client::connect(d.addr()).login("alice", "wonder");
    Client::connect(d.addr()).login("bob", "builder");
    assert!(d.wait_exit(Duration::from_millis(100)).is_none());

    // And the server still stops cleanly.
    d.signal(libc::SIGTERM);
    exited_zero(&mut d, Duration::from_secs(5));
}

#[cfg(feature = "tls")]
#[test]
fn sighup_reloads_the_tls_certificate_and_refuses_a_bad_one() {
    let dir = TempDir::new("sig-hup-tls");
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data");
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::copy(data.join("cert.pem"), &cert).unwrap();
    std::fs::copy(data.join("key.pem"), &key).unwrap();
    let mut d = start(&[
        "-d",
        dir.path().to_str().unwrap(),
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ]);
    d.signal(libc::SIGHUP);
    assert!(
        d.wait_line("SIGHUP: reloaded TLS certificate", Duration::from_secs(5)),
        "{:?}",
        d.log
    );
    std::fs::write(&cert, "not a certificate\n").unwrap();
    d.signal(libc::SIGHUP);
    assert!(
        d.wait_line(
            "reload refused, keeping the old settings",
            Duration::from_secs(5)
        ),
        "{:?}",
        d.log
    );
    // New sessions still get the certificate loaded before.
    Client::connect(d.addr()).cmd("AUTH TLS", 234);
    d.signal(libc::SIGTERM);
    exited_zero(&mut d, Duration::from_secs(5));
}
