//! Bandwidth limits measured with a raw client over loopback: per transfer (RETR through
//! sendfile, STOR, listings), per user and for the whole server. Each measurement runs
//! 2 to 3 seconds and must land within 10% of the limit.

mod util;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

use ftpdlib::Limits;
use util::TestServer;

const KIB: u64 = 1024;
const MIB: u64 = 1024 * 1024;
/// How long each measured transfer should take at its limit.
const SECONDS: f64 = 2.5;

/// A server whose files live in memory when the machine has /dev/shm: uploads of 100 MiB/s
/// would otherwise measure the disk's write-back as much as the limit.
fn server(tweak: impl FnOnce(&mut ftpdlib::Config) + Send + 'static) -> TestServer {
    let shm = std::path::Path::new("/dev/shm");
    let root = if shm.is_dir() {
        util::TempDir::new_in(shm, "throttle")
    } else {
        util::TempDir::new("throttle")
    };
    TestServer::start_in("127.0.0.1:0", root, move |c, _| tweak(c))
}

/// A file of `len` bytes that costs no disk: sparse, read back as zeros.
fn sparse_file(s: &TestServer, name: &str, len: u64) {
    let f = std::fs::File::create(s.root.join(name)).unwrap();
    f.set_len(len).unwrap();
}

/// Downloads `name` and returns (bytes, seconds from the 150 reply to the end of data).
fn timed_retr(c: &mut util::Client, name: &str) -> (u64, f64) {
    let addr = c.pasv();
    let mut data = TcpStream::connect(addr).unwrap();
    c.send(format!("RETR {name}"));
    expect_start(c);
    let start = Instant::now();
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    loop {
        let n = data.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        total += n as u64;
    }
    let secs = start.elapsed().as_secs_f64();
    c.expect(226);
    (total, secs)
}

/// Uploads `len` zero bytes; returns seconds from the 150 reply to the 226 (the server's
/// view: the client's writes finish early into the socket buffers).
fn timed_stor(c: &mut util::Client, name: &str, len: u64) -> f64 {
    let addr = c.pasv();
    let mut data = TcpStream::connect(addr).unwrap();
    c.send(format!("STOR {name}"));
    expect_start(c);
    let start = Instant::now();
    let chunk = vec![0u8; 256 * 1024];
    let mut left = len;
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        data.write_all(&chunk[..n]).unwrap();
        left -= n as u64;
    }
    data.shutdown(Shutdown::Write).unwrap();
    drop(data);
    c.expect(226);
    start.elapsed().as_secs_f64()
}

/// Reads the preliminary reply: 125 when the data connection is already up, else 150.
fn expect_start(c: &mut util::Client) {
    let r = c.read_reply();
    assert!(r.code == 125 || r.code == 150, "{:?}", r.lines);
}

/// The error of a measured rate against its limit, in percent, printed for the record.
fn error_pct(what: &str, bytes: u64, secs: f64, limit: u64) -> f64 {
    let rate = bytes as f64 / secs;
    let err = (rate - limit as f64) / limit as f64 * 100.0;
    eprintln!(
        "{what}: limit {limit} B/s, measured {rate:.0} B/s over {secs:.2} s, error {err:+.1}%"
    );
    err
}

#[track_caller]
fn assert_rate(what: &str, bytes: u64, secs: f64, limit: u64) {
    let err = error_pct(what, bytes, secs, limit);
    assert!(
        err.abs() <= 10.0,
        "{what}: {:.0} B/s is {err:+.1}% off the limit {limit}",
        bytes as f64 / secs
    );
}

/// Runs a measurement up to three times. Going faster than the limit fails at once; going
/// slower is retried, because on a loaded machine a debug build's client or server may
/// simply not get the CPU for 100 MiB/s, which says nothing about the limit.
#[track_caller]
fn assert_rate_within_tries(what: &str, limit: u64, mut measure: impl FnMut() -> (u64, f64)) {
    let mut last = 0.0;
    for _ in 0..3 {
        let (bytes, secs) = measure();
        last = error_pct(what, bytes, secs, limit);
        assert!(last <= 10.0, "{what}: {last:+.1}% above the limit {limit}");
        if last >= -10.0 {
            return;
        }
    }
    panic!("{what}: {last:+.1}% below the limit {limit}, three times");
}

fn retr_at(limit: u64) {
    let s = server(move |c| c.dtp.write_limit = limit);
    let len = (limit as f64 * SECONDS) as u64;
    sparse_file(&s, "f", len);
    let mut c = s.login("user");
    assert_rate_within_tries("RETR", limit, || {
        let (bytes, secs) = timed_retr(&mut c, "f");
        assert_eq!(bytes, len);
        (bytes, secs)
    });
}

fn stor_at(limit: u64) {
    let s = server(move |c| c.dtp.read_limit = limit);
    let len = (limit as f64 * SECONDS) as u64;
    let mut c = s.login("user");
    assert_rate_within_tries("STOR", limit, || {
        let secs = timed_stor(&mut c, "up", len);
        assert_eq!(std::fs::metadata(s.root.join("up")).unwrap().len(), len);
        (len, secs)
    });
}

#[test]
fn retr_64k() {
    retr_at(64 * KIB);
}

#[test]
fn retr_1m() {
    retr_at(MIB);
}

#[test]
fn retr_10m() {
    retr_at(10 * MIB);
}

#[test]
fn retr_100m() {
    retr_at(100 * MIB);
}

#[test]
fn stor_64k() {
    stor_at(64 * KIB);
}

#[test]
fn stor_1m() {
    stor_at(MIB);
}

#[test]
fn stor_10m() {
    stor_at(10 * MIB);
}

#[test]
fn stor_100m() {
    stor_at(100 * MIB);
}

#[test]
fn ascii_retr_is_throttled_too() {
    // TYPE A goes through the buffered path, not sendfile.
    let limit = 256 * KIB;
    let s = server(move |c| c.dtp.write_limit = limit);
    let line = b"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\n";
    let lines = (limit as f64 * SECONDS / 65.0) as usize;
    std::fs::write(s.root.join("t"), line.repeat(lines)).unwrap();
    let mut c = s.login("user");
    c.cmd("TYPE A", 200);
    let (bytes, secs) = timed_retr(&mut c, "t");
    assert_eq!(bytes, (lines * 65) as u64);
    assert_rate("RETR (TYPE A)", bytes, secs, limit);
}

#[test]
fn listings_are_throttled() {
    let limit = 16 * KIB;
    let s = server(move |c| c.dtp.write_limit = limit);
    for i in 0..600 {
        std::fs::write(s.root.join(&format!("a-rather-long-file-name-{i:04}")), b"").unwrap();
    }
    let mut c = s.login("user");
    let addr = c.pasv();
    let mut data = TcpStream::connect(addr).unwrap();
    c.send("LIST");
    expect_start(&mut c);
    let start = Instant::now();
    let mut out = Vec::new();
    data.read_to_end(&mut out).unwrap();
    let secs = start.elapsed().as_secs_f64();
    c.expect(226);
    assert!(out.len() > 30_000, "listing of {} bytes", out.len());
    assert_rate("LIST", out.len() as u64, secs, limit);
}

#[test]
fn whole_server_limit_is_shared() {
    // Two downloads at once under a server-wide 1 MiB/s: together they get 1 MiB/s.
    let limit = MIB;
    let s = server(move |c| c.max_rate = Limits::new(0, limit));
    let len = (limit as f64 * SECONDS / 2.0) as u64;
    sparse_file(&s, "a", len);
    sparse_file(&s, "b", len);
    let start = Instant::now();
    let threads: Vec<_> = ["a", "b"]
        .into_iter()
        .map(|name| {
            let mut c = s.login("user");
            std::thread::spawn(move || timed_retr(&mut c, name))
        })
        .collect();
    let done: Vec<(u64, f64)> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let secs = start.elapsed().as_secs_f64();
    let total: u64 = done.iter().map(|d| d.0).sum();
    assert_eq!(total, 2 * len);
    assert_rate("server-wide, two RETRs", total, secs, limit);
    // Shared fairly: neither finished long before the other.
    let (a, b) = (done[0].1, done[1].1);
    eprintln!("the two downloads took {a:.2} s and {b:.2} s");
    assert!(a.min(b) > 0.8 * a.max(b), "{a:.2} s and {b:.2} s");
}

#[test]
fn user_limit_is_shared_by_the_users_sessions_and_the_tightest_wins() {
    let limit = 512 * KIB;
    let s = server(move |c| {
        c.user_limits
            .insert("user".into(), Limits::new(limit, limit));
        // Looser than the user's: the user's limit decides.
        c.dtp.write_limit = 4 * limit;
        c.max_rate.write_limit = 8 * limit;
    });
    let len = (limit as f64 * SECONDS / 2.0) as u64;
    sparse_file(&s, "a", len);
    sparse_file(&s, "b", len);
    let start = Instant::now();
    let threads: Vec<_> = ["a", "b"]
        .into_iter()
        .map(|name| {
            let mut c = s.login("user");
            std::thread::spawn(move || timed_retr(&mut c, name))
        })
        .collect();
    let done: Vec<(u64, f64)> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let secs = start.elapsed().as_secs_f64();
    let total: u64 = done.iter().map(|d| d.0).sum();
    assert_rate("per-user, two sessions", total, secs, limit);
    let (a, b) = (done[0].1, done[1].1);
    eprintln!("the user's two downloads took {a:.2} s and {b:.2} s");
    assert!(a.min(b) > 0.8 * a.max(b), "{a:.2} s and {b:.2} s");

    // Another user has no per-user limit: only the per-transfer one (4x) applies.
    let mut c = s.login("ro");
    let t = Instant::now();
    let (bytes, _) = timed_retr(&mut c, "a");
    assert_eq!(bytes, len);
    let fast = t.elapsed().as_secs_f64();
    assert!(
        fast < secs / 3.0,
        "unlimited user took {fast:.2} s, limited ones {secs:.2} s"
    );
}

#[test]
fn a_throttled_transfer_is_not_a_stall_and_the_session_stays_usable() {
    // The data stall timeout is shorter than the throttle's pauses would allow if waiting
    // for bandwidth counted as a stall; the idle timeout is shorter than the transfer.
    // At 8 KiB/s the channel sleeps half a second between bursts of 4 KiB.
    let s = server(|c| {
        c.dtp.write_limit = 8 * KIB;
        c.dtp.timeout = Some(Duration::from_millis(300));
        c.timeout = Some(Duration::from_millis(300));
    });
    sparse_file(&s, "f", 12 * KIB);
    let mut c = s.login("user");
    let (bytes, secs) = timed_retr(&mut c, "f");
    assert_eq!(bytes, 12 * KIB);
    assert!(secs > 1.2, "took {secs:.2} s");
    c.cmd("NOOP", 200);
}
