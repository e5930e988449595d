//! The `ftpdlib` command under signals: SIGINT and SIGTERM stop it gracefully (transfers
//! finish within `--shutdown-grace`, exit 0), SIGHUP reloads `--users` and never kills it;
//! with `--workers 2` the same holds for sessions on both reactors (which reactor serves a
//! connection is learnt from /proc, `util::procfs::on_reactor`).

mod util;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use util::procfs::{on_reactor, reactors_started};
use util::{assert_same, random_bytes, Client, TempDir, Watched};

type Daemon = Watched;

/// The command on a loopback port of the kernel's choice with `args`, logging at info.
fn start(args: &[&str]) -> Daemon {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ftpdlib"));
    cmd.args(["-i", "127.0.0.1", "-p", "0"])
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
    let (data, got) = begin_retr(&mut c, name);
    (c, data, got)
}

/// Starts `RETR name` over PASV on a logged-in client and reads the first bytes; returns
/// the data connection and the bytes read so far.
fn begin_retr(c: &mut Client, name: &str) -> (TcpStream, Vec<u8>) {
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
    (data, got)
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

/// Logs `per` sessions in as `user` on each of the two reactors of `d`: the clients of
/// reactor 0, then those of reactor 1. Connections that land where there are enough
/// already are closed again.
fn sessions_on_each_reactor(d: &Daemon, per: usize, user: (&str, &str)) -> [Vec<Client>; 2] {
    let (pid, addr) = (d.child.id(), d.addr());
    assert_eq!(reactors_started(pid, 2), 2);
    let mut on: [Vec<Client>; 2] = [Vec::new(), Vec::new()];
    for _ in 0..20 * per {
        if on.iter().all(|v| v.len() == per) {
            break;
        }
        let (r, mut c) = on_reactor(pid, || {
            let mut c = Client::connect(addr);
            c.login(user.0, user.1);
            c
        });
        match r {
            Some(r) if on[r].len() < per => on[r].push(c),
            _ => {
                c.cmd("QUIT", 221);
                assert!(c.closed_by_server());
            }
        }
    }
    let counts = [on[0].len(), on[1].len()];
    assert_eq!(counts, [per, per], "sessions by reactor");
    on
}

/// Whether no connection reaches `addr`: tried a number of times, since each try comes
/// from another port, which the kernel may hash to another reactor's listener.
fn refused_everywhere(addr: SocketAddr) -> bool {
    (0..20).all(|_| TcpStream::connect(addr).is_err())
}

/// Starts `STOR name` over PASV on a logged-in client and sends the first `sent` bytes of
/// `body`; returns the data connection.
fn begin_stor(c: &mut Client, name: &str, body: &[u8], sent: usize) -> TcpStream {
    c.cmd("TYPE I", 200);
    let mut data = TcpStream::connect(c.pasv()).unwrap();
    c.send(format!("STOR {name}"));
    let r = c.read_reply();
    assert!(r.code == 150 || r.code == 125, "{:?}", r.lines);
    data.write_all(&body[..sent]).unwrap();
    data
}

/// SIGTERM with two reactors, each with three slow downloads and an upload under way: the
/// listeners of both are closed once the log says so, every transfer runs to its end
/// (downloads byte for byte with their 226, uploads whole on disk with theirs), and the
/// process exits 0 as soon as the last one has ended.
#[test]
fn sigterm_with_two_reactors_lets_every_transfer_finish() {
    let dir = TempDir::new("sig-two");
    // 320 KiB at 128 KiB/s: about two and a half seconds each.
    let want = write_file(dir.path(), "big.bin", 320 * 1024);
    let mut d = start(&[
        "-d",
        dir.path().to_str().unwrap(),
        "-w",
        "-u",
        "user",
        "-P",
        "pass",
        "--workers",
        "2",
        "--write-limit",
        "128K",
        "--shutdown-grace",
        "30",
    ]);
    let addr = d.addr();
    let [down0, down1] = sessions_on_each_reactor(&d, 3, ("user", "pass"));
    let [mut up0, mut up1] = sessions_on_each_reactor(&d, 1, ("user", "pass"));
    let mut uploads = Vec::new();
    for (r, c) in [up0.remove(0), up1.remove(0)].into_iter().enumerate() {
        let mut c = c;
        let body = random_bytes(200_000 + r, 40 + r as u64);
        let data = begin_stor(&mut c, &format!("up-{r}.bin"), &body, 50_000);
        uploads.push((c, data, body, r));
    }
    let downloads: Vec<_> = down0
        .into_iter()
        .chain(down1)
        .map(|mut c| {
            let (data, got) = begin_retr(&mut c, "big.bin");
            (c, data, got)
        })
        .collect();

    d.signal(libc::SIGTERM);
    assert!(
        d.wait_line(
            ">>> shutting down FTP server (8 sessions) <<<",
            Duration::from_secs(5)
        ),
        "{:?}",
        d.log
    );
    assert!(refused_everywhere(addr), "a listener is still open");

    // The uploads go on after the signal, in pieces, then end.
    let up_threads: Vec<_> = uploads
        .into_iter()
        .map(|(mut c, mut data, body, r)| {
            std::thread::spawn(move || {
                for piece in body[50_000..].chunks(50_000) {
                    std::thread::sleep(Duration::from_millis(100));
                    data.write_all(piece).unwrap();
                }
                data.shutdown(std::net::Shutdown::Write).unwrap();
                drop(data);
                c.expect(226);
                (r, body)
            })
        })
        .collect();
    let down_threads: Vec<_> = downloads
        .into_iter()
        .map(|(mut c, mut data, mut got)| {
            std::thread::spawn(move || {
                read_rest(&mut data, &mut got);
                c.expect(226);
                got
            })
        })
        .collect();
    for t in up_threads {
        let (r, body) = t.join().unwrap();
        assert_same(
            &std::fs::read(dir.join(&format!("up-{r}.bin"))).unwrap(),
            &body,
        );
    }
    // The downloads are still running: so is the server.
    assert!(d.running(), "{:?}", d.log);
    for t in down_threads {
        assert_same(&t.join().unwrap(), &want);
    }
    let last = Instant::now();
    exited_zero(&mut d, Duration::from_secs(10));
    assert!(
        last.elapsed() < Duration::from_secs(3),
        "{:?}",
        last.elapsed()
    );
    let log = d.log.join("\n");
    assert!(!log.contains("grace period over"), "{log}");
    assert!(log.contains("FTP server stopped"), "{log}");
}

/// With two reactors a second SIGTERM still ends everything at once: the downloads of
/// both reactors are cut and the process exits 0.
#[test]
fn a_second_sigterm_ends_both_reactors_at_once() {
    let dir = TempDir::new("sig-two-twice");
    let len = 4 * 1024 * 1024;
    write_file(dir.path(), "big.bin", len);
    let mut d = start(&[
        "-d",
        dir.path().to_str().unwrap(),
        "--workers",
        "2",
        "--write-limit",
        "64K",
        "--shutdown-grace",
        "60",
    ]);
    let [on0, on1] = sessions_on_each_reactor(&d, 1, ("anonymous", "x@y"));
    let downloads: Vec<_> = on0
        .into_iter()
        .chain(on1)
        .map(|mut c| {
            let (data, got) = begin_retr(&mut c, "big.bin");
            (c, data, got)
        })
        .collect();
    d.signal(libc::SIGTERM);
    assert!(d.wait_line(
        ">>> shutting down FTP server (2 sessions) <<<",
        Duration::from_secs(5)
    ));
    let start = Instant::now();
    d.signal(libc::SIGTERM);
    exited_zero(&mut d, Duration::from_secs(5));
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
    assert!(
        d.log
            .join("\n")
            .contains(">>> second SIGTERM during shutdown: closing 2 sessions now <<<"),
        "{:?}",
        d.log
    );
    for (mut c, mut data, mut got) in downloads {
        read_rest(&mut data, &mut got);
        assert!(got.len() < len, "{} bytes", got.len());
        assert!(c.closed_by_server());
    }
}

/// SIGHUP with two reactors: once the log says "reloaded", every reactor has the new
/// accounts: a user added logs in on both, a user removed is refused on both, and the
/// sessions already open on both go on.
#[test]
fn sighup_reaches_every_reactor() {
    let dir = TempDir::new("sig-hup-two");
    let home = dir.join("home");
    std::fs::create_dir(&home).unwrap();
    let users = dir.join("users.txt");
    std::fs::write(&users, "alice:wonder:elr\ncarol:singer:elr\n").unwrap();
    let mut d = start(&[
        "-d",
        home.to_str().unwrap(),
        "--users",
        users.to_str().unwrap(),
        "--auth-failed-delay",
        "0",
        "--workers",
        "2",
    ]);
    let (pid, addr) = (d.child.id(), d.addr());
    let [mut alice0, mut alice1] = sessions_on_each_reactor(&d, 1, ("alice", "wonder"));
    let mut bob = Client::connect(addr);
    bob.cmd("USER bob", 331);
    bob.cmd("PASS builder", 530);
    drop(bob);

    std::fs::write(&users, "alice:wonder:elr\nbob:builder:elr\n").unwrap();
    d.signal(libc::SIGHUP);
    assert!(
        d.wait_line("SIGHUP: reloaded 2 accounts", Duration::from_secs(5)),
        "{:?}",
        d.log
    );
    // At least ten logins as bob, and until each reactor has taken three.
    let mut bob_on = [0usize; 2];
    let mut logins = 0;
    while (logins < 10 || bob_on.iter().any(|n| *n < 3)) && logins < 60 {
        let (r, ()) = on_reactor(pid, || {
            let mut c = Client::connect(addr);
            c.login("bob", "builder");
            c.cmd("QUIT", 221);
            assert!(c.closed_by_server());
        });
        if let Some(r) = r {
            bob_on[r] += 1;
        }
        logins += 1;
    }
    assert!(
        bob_on.iter().all(|n| *n >= 3),
        "bob's logins by reactor: {bob_on:?}"
    );
    let mut carol_on = [0usize; 2];
    for _ in 0..40 {
        if carol_on.iter().all(|n| *n > 0) {
            break;
        }
        let (r, ()) = on_reactor(pid, || {
            let mut c = Client::connect(addr);
            c.cmd("USER carol", 331);
            c.cmd("PASS singer", 530);
            c.cmd("QUIT", 221);
            assert!(c.closed_by_server());
        });
        if let Some(r) = r {
            carol_on[r] += 1;
        }
    }
    assert!(
        carol_on.iter().all(|n| *n > 0),
        "carol refused by reactor: {carol_on:?}"
    );
    alice0[0].cmd("NOOP", 200);
    alice1[0].cmd("NOOP", 200);
    d.signal(libc::SIGTERM);
    exited_zero(&mut d, Duration::from_secs(5));
}
