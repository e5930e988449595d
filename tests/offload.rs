//! Files whose contents wait on the network (an object store): their readers and writers
//! say they are not inline, and the data channel moves them a piece of 1 MiB at a time on
//! the worker pool (src/data/transfer/piece.rs). The storage here is the local disk behind
//! a wrapper that sleeps in every read, write and finish, records the thread each ran on
//! and counts finished and abandoned uploads (tests/util/offloaded.rs).
//!
//! Shown with curl, Python's ftplib and a raw client: every size around the piece size
//! byte for byte, both types (line endings converted across piece boundaries), REST, APPE;
//! no read, write or finish on the reactor thread; other sessions answered while slow
//! transfers run; ABOR and a reset never finish an upload and leave nothing open; a failed
//! read, write or finish is a failed reply and the session goes on; bandwidth limits hold.

mod util;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::process::Command;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ftpdlib::Config;
use util::offloaded::{Op, Probe};
use util::*;

/// The data channel's piece: what one trip to the pool reads or writes.
const PIECE: usize = 1 << 20;
/// 3.5 MiB: three whole pieces and a half one.
const BIG: usize = 7 << 19;

/// A server whose storage is the offloaded wrapper over its root, `probe` watching.
fn server(probe: &Arc<Probe>, tweak: impl FnOnce(&mut Config) + Send + 'static) -> TestServer {
    let p = Arc::clone(probe);
    TestServer::start_with(move |c, _| {
        c.filesystem = p.factory();
        c.hooks = p.hooks();
        tweak(c);
    })
}

/// The settled state after a test's transfers: nothing open, no call on the reactor.
#[track_caller]
fn settled(probe: &Probe) {
    assert!(
        probe.all_closed(),
        "readers {} and writers {} still open",
        probe.readers_open.load(Ordering::SeqCst),
        probe.writers_open.load(Ordering::SeqCst)
    );
    assert!(probe.assert_off_reactor() > 0, "no file call was made");
}

/// [`settled`], and every upload finished once, none abandoned.
#[track_caller]
fn every_upload_finished(probe: &Probe) {
    settled(probe);
    assert_eq!(probe.aborted.load(Ordering::SeqCst), 0);
    assert_eq!(
        probe.finished.load(Ordering::SeqCst),
        probe.writers_opened.load(Ordering::SeqCst)
    );
}

/// TYPE A on the way out, as RFC 959 wants it: every LF not already after a CR gets one.
fn lf_to_crlf(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() * 2);
    for (i, &b) in text.iter().enumerate() {
        if b == b'\n' && (i == 0 || text[i - 1] != b'\r') {
            out.push(b'\r');
        }
        out.push(b);
    }
    out
}

/// TYPE A on the way in: each CRLF, left to right, becomes LF; lone CRs stay.
fn crlf_to_lf(wire: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(wire.len());
    let mut i = 0;
    while i < wire.len() {
        if wire[i] == b'\r' && wire.get(i + 1) == Some(&b'\n') {
            out.push(b'\n');
            i += 2;
        } else {
            out.push(wire[i]);
            i += 1;
        }
    }
    out
}

/// Letters and bare LFs: no CR anywhere, so no CRLF before the bytes a test places.
fn letters(len: usize, seed: u64) -> Vec<u8> {
    random_bytes(len, seed)
        .into_iter()
        .map(|b| if b % 13 == 0 { b'\n' } else { b'a' + b % 26 })
        .collect()
}

/// Starts a transfer command over PASV: the data connection and the 150.
fn open(c: &mut Client, line: &str) -> TcpStream {
    let addr = c.pasv();
    let data = TcpStream::connect(addr).expect("data connect");
    data.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    data.set_write_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    c.send(line);
    let r = c.read_reply();
    assert!(r.code == 150 || r.code == 125, "{line}: {:?}", r.lines);
    data
}

/// Sends `body` from a thread, ignoring write errors (the server may end the transfer
/// first), then closes; returns what the client managed to send.
fn send_in_thread(mut data: TcpStream, body: Vec<u8>) -> std::thread::JoinHandle<usize> {
    std::thread::spawn(move || {
        let mut sent = 0;
        for chunk in body.chunks(64 << 10) {
            if data.write_all(chunk).is_err() {
                return sent;
            }
            sent += chunk.len();
        }
        let _ = data.shutdown(Shutdown::Write);
        let _ = data.read_to_end(&mut Vec::new());
        sent
    })
}

/// Every size around the piece: both ways with curl and with ftplib, byte for byte; each
/// upload finished once, none abandoned.
#[test]
fn binary_transfers_of_every_size_with_curl_and_ftplib() {
    let probe = Probe::new(Duration::from_millis(2));
    let s = server(&probe, |_| {});
    let sizes = [0, 1, PIECE - 1, PIECE, PIECE + 1, BIG];
    let files = write_files(s.root.path(), &sizes, 100);
    let src = TempDir::new("offload-src");
    for (name, body) in &files {
        std::fs::write(src.join(name), body).unwrap();
    }
    let mut uploads = 0;
    if require("curl") {
        for (name, body) in &files {
            let out = run(curl().arg(s.url("user", name)));
            assert_same(&out.stdout, body);
            run(curl()
                .arg("-T")
                .arg(src.join(name))
                .arg(s.url("user", &format!("curl-{name}"))));
            uploads += 1;
            let stored = std::fs::read(s.root.join(&format!("curl-{name}"))).unwrap();
            assert_same(&stored, body);
        }
    }
    if require("python3") {
        let script = r#"
import ftplib, io, sys
port, src, names = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
f = ftplib.FTP()
f.connect("127.0.0.1", port, timeout=30)
f.login("user", "pass")
for name in names:
    want = open(src + "/" + name, "rb").read()
    got = io.BytesIO()
    f.retrbinary("RETR " + name, got.write, blocksize=300000)
    assert got.getvalue() == want, (name, len(got.getvalue()), len(want))
    f.storbinary("STOR py-" + name, io.BytesIO(want), blocksize=1 << 16)
f.quit()
"#;
        let mut cmd = Command::new("python3");
        cmd.arg("-c")
            .arg(script)
            .arg(s.addr.port().to_string())
            .arg(src.path());
        for (name, _) in &files {
            cmd.arg(name);
        }
        run(&mut cmd);
        for (name, body) in &files {
            let stored = std::fs::read(s.root.join(&format!("py-{name}"))).unwrap();
            assert_same(&stored, body);
            uploads += 1;
        }
    }
    settled(&probe);
    assert_eq!(probe.finished.load(Ordering::SeqCst), uploads);
    assert_eq!(probe.finish_calls.load(Ordering::SeqCst), uploads);
    assert_eq!(probe.aborted.load(Ordering::SeqCst), 0);
    // The largest file went through in pieces: at least one read per piece.
    assert!(probe.count(Op::Read) >= BIG / PIECE);
}

/// TYPE A: a CRLF cut in two by the piece boundary stays one CRLF, a bare LF at a boundary
/// gets its CR, a lone CR at a boundary (and at the very end) stays a lone CR; both ways,
/// with the raw client, ftplib and curl.
#[test]
fn ascii_transfers_convert_line_endings_across_piece_boundaries() {
    let probe = Probe::new(Duration::from_millis(1));
    let s = server(&probe, |_| {});
    let mut c = s.login("user");
    c.cmd("TYPE A", 200);

    // Downloads: the file's pieces are cut at file offsets PIECE, 2 * PIECE, ...
    let mut text = letters(3 * PIECE + 5000, 7);
    text[PIECE - 1] = b'\r';
    text[PIECE] = b'\n';
    text[2 * PIECE - 1] = b'x';
    text[2 * PIECE] = b'\n';
    text[3 * PIECE - 1] = b'\r';
    text[3 * PIECE] = b'y';
    std::fs::write(s.root.join("t.txt"), &text).unwrap();
    let want = lf_to_crlf(&text);
    assert_same(&c.retr("RETR t.txt"), &want);

    // Uploads: pieces are cut after PIECE converted bytes. No CRLF before PIECE - 1 on the
    // wire, so wire and file offsets agree up to there.
    let mut across = letters(2 * PIECE + 3000, 8);
    across[PIECE - 1] = b'\r';
    across[PIECE] = b'\n';
    // Later CRLFs as a client sends them.
    for at in (PIECE + 100..across.len() - 1).step_by(77) {
        across[at] = b'\r';
        across[at + 1] = b'\n';
    }
    let mut lone = letters(PIECE + 3000, 9);
    lone[PIECE - 1] = b'\r';
    lone[PIECE] = b'z';
    *lone.last_mut().unwrap() = b'\r';
    for (name, wire) in [("across.txt", &across), ("lone.txt", &lone)] {
        c.stor(format!("STOR {name}"), wire);
        let stored = std::fs::read(s.root.join(name)).unwrap();
        assert_same(&stored, &crlf_to_lf(wire));
    }

    let src = TempDir::new("offload-ascii");
    std::fs::write(src.join("across.txt"), &across).unwrap();
    std::fs::write(src.join("lone.txt"), &lone).unwrap();
    std::fs::write(src.join("want.txt"), &want).unwrap();
    if require("python3") {
        // transfercmd keeps TYPE A (retrbinary and storbinary would send TYPE I).
        let script = r#"
import ftplib, sys
port, src = int(sys.argv[1]), sys.argv[2]
f = ftplib.FTP()
f.connect("127.0.0.1", port, timeout=30)
f.login("user", "pass")
f.voidcmd("TYPE A")
conn = f.transfercmd("RETR t.txt")
got = bytearray()
while True:
    b = conn.recv(1 << 16)
    if not b:
        break
    got += b
conn.close()
f.voidresp()
assert bytes(got) == open(src + "/want.txt", "rb").read(), len(got)
for name in ("across.txt", "lone.txt"):
    conn = f.transfercmd("STOR py-" + name)
    conn.sendall(open(src + "/" + name, "rb").read())
    conn.close()
    f.voidresp()
f.quit()
"#;
        run(Command::new("python3")
            .arg("-c")
            .arg(script)
            .arg(s.addr.port().to_string())
            .arg(src.path()));
        for (name, wire) in [("across.txt", &across), ("lone.txt", &lone)] {
            let stored = std::fs::read(s.root.join(&format!("py-{name}"))).unwrap();
            assert_same(&stored, &crlf_to_lf(wire));
        }
    }
    if require("curl") {
        // --use-ascii sends TYPE A, and curl turns what arrives back into local text:
        // CRLF to LF, then a bare CR to LF too (its convert_lineends).
        let out = run(curl().arg("--use-ascii").arg(s.url("user", "t.txt")));
        let local: Vec<u8> = crlf_to_lf(&want)
            .into_iter()
            .map(|b| if b == b'\r' { b'\n' } else { b })
            .collect();
        assert_same(&out.stdout, &local);
        // Uploading, curl sends each LF of local text as CRLF: the LF at PIECE - 1 makes
        // the CRLF the boundary cuts.
        let local = crlf_to_lf(&across);
        assert_eq!(local[PIECE - 1], b'\n');
        std::fs::write(src.join("local.txt"), &local).unwrap();
        run(curl()
            .arg("--use-ascii")
            .arg("-T")
            .arg(src.join("local.txt"))
            .arg(s.url("user", "curl-local.txt")));
        let stored = std::fs::read(s.root.join("curl-local.txt")).unwrap();
        assert_same(&stored, &local);
    }
    c.cmd("QUIT", 221);
    every_upload_finished(&probe);
}

/// REST then RETR from inside the first piece and from past it; APPE onto a file; REST
/// then STOR; with the raw client and ftplib.
#[test]
fn rest_and_appe() {
    let probe = Probe::new(Duration::from_millis(1));
    let s = server(&probe, |_| {});
    let body = random_bytes(BIG, 11);
    std::fs::write(s.root.join("f"), &body).unwrap();
    let mut c = s.login("user");
    c.cmd("TYPE I", 200);
    for at in [100, PIECE - 1, PIECE + 12345, BIG - 1, BIG] {
        c.cmd(format!("REST {at}"), 350);
        assert_same(&c.retr("RETR f"), &body[at..]);
    }

    c.stor("STOR a", &body[..PIECE + 7]);
    c.stor("APPE a", &body[PIECE + 7..]);
    assert_same(&std::fs::read(s.root.join("a")).unwrap(), &body);

    if require("python3") {
        let script = r#"
import ftplib, io, sys
port, path = int(sys.argv[1]), sys.argv[2]
data = open(path, "rb").read()
f = ftplib.FTP()
f.connect("127.0.0.1", port, timeout=30)
f.login("user", "pass")
got = io.BytesIO()
f.retrbinary("RETR f", got.write, rest=1500000)
assert got.getvalue() == data[1500000:]
f.storbinary("STOR r", io.BytesIO(data[:2000000]))
f.storbinary("STOR r", io.BytesIO(data[1234567:]), rest=1234567)
f.storbinary("STOR p", io.BytesIO(data[:10]))
f.storbinary("APPE p", io.BytesIO(data[10:]))
f.quit()
"#;
        run(Command::new("python3")
            .arg("-c")
            .arg(script)
            .arg(s.addr.port().to_string())
            .arg(s.root.join("f")));
        assert_same(&std::fs::read(s.root.join("r")).unwrap(), &body);
        assert_same(&std::fs::read(s.root.join("p")).unwrap(), &body);
    }
    c.cmd("QUIT", 221);
    every_upload_finished(&probe);
}

/// A back-end with a descriptor behind its file that still says its contents wait (a slow
/// network filesystem): the kernel's copies (sendfile, splice) would read and write it on
/// the reactor thread, so the contents go through the pool like any other's.
#[test]
fn a_file_with_a_descriptor_that_is_not_inline_still_goes_through_the_pool() {
    let probe = Probe::new(Duration::from_millis(1));
    probe.forward_fd(true);
    let s = server(&probe, |_| {});
    let body = random_bytes(BIG, 12);
    std::fs::write(s.root.join("f"), &body).unwrap();
    let mut c = s.login("user");
    c.cmd("TYPE I", 200);
    assert_same(&c.retr("RETR f"), &body);
    assert!(
        probe.count(Op::Read) >= BIG / PIECE,
        "the download was not read through the file: {} reads",
        probe.count(Op::Read)
    );
    c.stor("STOR g", &body);
    assert_same(&std::fs::read(s.root.join("g")).unwrap(), &body);
    assert!(probe.count(Op::Write) >= BIG / PIECE);
    c.cmd("QUIT", 221);
    settled(&probe);
}

/// Reads and writes of 50 ms each, a download and an upload at once: another session's
/// NOOPs are answered at once all along.
#[test]
fn noop_answers_while_slow_transfers_run() {
    let probe = Probe::new(Duration::from_millis(50));
    let s = server(&probe, |_| {});
    let body = random_bytes(BIG, 13);
    std::fs::write(s.root.join("f"), &body).unwrap();
    let addr = s.addr;
    let down_body = body.clone();
    let down = std::thread::spawn(move || {
        let mut c = Client::connect(addr);
        c.login("user", "pass");
        c.cmd("TYPE I", 200);
        assert_same(&c.retr("RETR f"), &down_body);
    });
    let up_body = body.clone();
    let up = std::thread::spawn(move || {
        let mut c = Client::connect(addr);
        c.login("user", "pass");
        c.cmd("TYPE I", 200);
        c.stor("STOR g", &up_body);
    });
    let mut b = s.login("user");
    let start = Instant::now();
    let mut worst = Duration::ZERO;
    let mut noops = 0;
    while !(down.is_finished() && up.is_finished()) && start.elapsed() < Duration::from_secs(20) {
        let t = Instant::now();
        b.cmd("NOOP", 200);
        worst = worst.max(t.elapsed());
        noops += 1;
    }
    let took = start.elapsed();
    down.join().unwrap();
    up.join().unwrap();
    assert_same(&std::fs::read(s.root.join("g")).unwrap(), &body);
    eprintln!("{noops} NOOPs in {took:?} of slow transfers, worst {worst:?}");
    // Four reads and four writes and a finish of 50 ms each at the least.
    assert!(took >= Duration::from_millis(200), "{took:?}");
    assert!(worst < Duration::from_millis(50), "worst NOOP {worst:?}");
    settled(&probe);
}

/// ABOR while an upload's piece is being written: 426 and 226, the file is never finished
/// (its writer is dropped, which an object store takes as the abort), the session goes on
/// and nothing stays open.
#[test]
fn abor_mid_upload_never_finishes_the_file() {
    let probe = Probe::new(Duration::from_millis(50));
    let s = server(&probe, |_| {});
    let mut c = s.login("user");
    c.cmd("TYPE I", 200);
    let data = open(&mut c, "STOR x");
    let sender = send_in_thread(data, random_bytes(16 << 20, 14));
    assert!(wait_until(Duration::from_secs(10), || {
        probe.writes.load(Ordering::SeqCst) >= 1
    }));
    c.send("ABOR");
    c.expect(426);
    c.expect(226);
    c.cmd("NOOP", 200);
    let sent = sender.join().unwrap();
    assert!(sent < 16 << 20, "the whole upload went in: {sent}");
    settled(&probe);
    assert_eq!(probe.finish_calls.load(Ordering::SeqCst), 0);
    assert_eq!(probe.aborted.load(Ordering::SeqCst), 1);

    // ABOR during a download: the reader is closed too.
    std::fs::write(s.root.join("f"), random_bytes(BIG, 15)).unwrap();
    let mut data = open(&mut c, "RETR f");
    let mut first = [0u8; 1000];
    data.read_exact(&mut first).unwrap();
    c.send("ABOR");
    c.expect(426);
    c.expect(226);
    drop(data);
    // A whole transfer works afterwards.
    c.stor("STOR y", b"after");
    assert_eq!(std::fs::read(s.root.join("y")).unwrap(), b"after");
    settled(&probe);
    assert_eq!(probe.finished.load(Ordering::SeqCst), 1);
}

/// The client resets its data connection in the middle of an upload: 426, the file is never
/// finished, the session goes on, nothing stays open.
#[test]
fn a_reset_mid_upload_never_finishes_the_file() {
    let probe = Probe::new(Duration::from_millis(20));
    let s = server(&probe, |_| {});
    let mut c = s.login("user");
    c.cmd("TYPE I", 200);
    let mut data = open(&mut c, "STOR x");
    data.write_all(&random_bytes(PIECE + PIECE / 2, 16))
        .unwrap();
    assert!(wait_until(Duration::from_secs(10), || {
        probe.writes.load(Ordering::SeqCst) >= 1
    }));
    reset_close(data);
    let r = c.expect(426);
    assert!(r.text().contains("reset"), "{:?}", r.lines);
    c.cmd("NOOP", 200);
    settled(&probe);
    assert_eq!(probe.finish_calls.load(Ordering::SeqCst), 0);
    assert_eq!(probe.aborted.load(Ordering::SeqCst), 1);
    c.stor("STOR y", b"after");
    assert_eq!(probe.finished.load(Ordering::SeqCst), 1);
}

/// A read that fails on the second piece: the first piece arrives, then 426 with the
/// storage's error; the session goes on.
#[test]
fn a_read_failing_mid_download_is_426() {
    let probe = Probe::new(Duration::from_millis(1));
    probe.fail_read_call(2);
    let s = server(&probe, |_| {});
    let body = random_bytes(BIG, 17);
    std::fs::write(s.root.join("f"), &body).unwrap();
    let mut c = s.login("user");
    c.cmd("TYPE I", 200);
    let mut data = open(&mut c, "RETR f");
    let mut got = Vec::new();
    let _ = data.read_to_end(&mut got);
    let r = c.expect(426);
    assert!(
        r.text().contains("injected storage failure"),
        "{:?}",
        r.lines
    );
    assert!(got.len() < body.len());
    assert_same(&got, &body[..got.len()]);
    // The same with EIO: its own words.
    probe.fail_errno(libc::EIO);
    let mut data = open(&mut c, "RETR f");
    let _ = data.read_to_end(&mut Vec::new());
    let r = c.expect(426);
    assert!(r.text().contains("Input/output error"), "{:?}", r.lines);
    probe.fail_read_call(0);
    assert_same(&c.retr("RETR f"), &body);
    settled(&probe);
}

/// A read and a write that panic (a back-end's bug) on the worker: the transfer fails with
/// a reply, the writer is gone unfinished, the session goes on.
#[test]
fn a_panicking_read_or_write_is_a_failed_reply() {
    let probe = Probe::new(Duration::from_millis(1));
    probe.fail_panics(true);
    let s = server(&probe, |_| {});
    let body = random_bytes(BIG, 25);
    std::fs::write(s.root.join("f"), &body).unwrap();
    let mut c = s.login("user");
    c.cmd("TYPE I", 200);
    probe.fail_read_call(2);
    let mut data = open(&mut c, "RETR f");
    let mut got = Vec::new();
    let _ = data.read_to_end(&mut got);
    let r = c.read_reply();
    assert!(r.code == 426 || r.code == 451, "{:?}", r.lines);
    assert_same(&got, &body[..got.len()]);
    probe.fail_read_call(0);
    probe.fail_write_call(2);
    let data = open(&mut c, "STOR x");
    let sender = send_in_thread(data, body.clone());
    let r = c.read_reply();
    assert!(r.code == 426 || r.code == 451, "{:?}", r.lines);
    sender.join().unwrap();
    c.cmd("NOOP", 200);
    probe.fail_write_call(0);
    c.stor("STOR y", &body);
    assert_same(&std::fs::read(s.root.join("y")).unwrap(), &body);
    settled(&probe);
    assert_eq!(probe.aborted.load(Ordering::SeqCst), 1);
    assert_eq!(probe.finished.load(Ordering::SeqCst), 1);
}

/// Under TLS (PROT P) too, with curl and ftplib: the pieces go through the TLS stream.
#[cfg(feature = "tls")]
#[test]
fn tls_transfers_with_curl_and_ftplib() {
    let probe = Probe::new(Duration::from_millis(1));
    let s = server(&probe, |c| {
        let file = |n: &str| format!("{}/tests/data/{n}", env!("CARGO_MANIFEST_DIR"));
        let mut t = ftpdlib::TlsConfig::from_pem_files(file("cert.pem"), file("key.pem"))
            .expect("test certificate");
        t.data_required = ftpdlib::TlsRequired::Everyone;
        c.tls = Some(t);
    });
    let body = random_bytes(BIG, 26);
    std::fs::write(s.root.join("f"), &body).unwrap();
    let src = TempDir::new("offload-tls");
    std::fs::write(src.join("f"), &body).unwrap();
    let mut uploads = 0;
    if require("curl") {
        let out = run(curl().args(["-k", "--ssl-reqd"]).arg(s.url("user", "f")));
        assert_same(&out.stdout, &body);
        run(curl()
            .args(["-k", "--ssl-reqd", "-T"])
            .arg(src.join("f"))
            .arg(s.url("user", "curl-f")));
        assert_same(&std::fs::read(s.root.join("curl-f")).unwrap(), &body);
        uploads += 1;
    }
    if require("python3") {
        let script = r#"
import ftplib, io, ssl, sys
port, path = int(sys.argv[1]), sys.argv[2]
data = open(path, "rb").read()
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
f = ftplib.FTP_TLS(context=ctx)
f.connect("127.0.0.1", port, timeout=30)
f.login("user", "pass")
f.prot_p()
got = io.BytesIO()
f.retrbinary("RETR f", got.write)
assert got.getvalue() == data, len(got.getvalue())
f.storbinary("STOR py-f", io.BytesIO(data))
f.quit()
"#;
        run(Command::new("python3")
            .arg("-c")
            .arg(script)
            .arg(s.addr.port().to_string())
            .arg(src.join("f")));
        assert_same(&std::fs::read(s.root.join("py-f")).unwrap(), &body);
        uploads += 1;
    }
    settled(&probe);
    assert_eq!(probe.finished.load(Ordering::SeqCst), uploads);
    assert_eq!(probe.aborted.load(Ordering::SeqCst), 0);
}

/// A write that fails on the second piece: 426 with the storage's error, the file is never
/// finished, the session goes on.
#[test]
fn a_write_failing_mid_upload_is_426() {
    let probe = Probe::new(Duration::from_millis(1));
    probe.fail_write_call(2);
    let s = server(&probe, |_| {});
    let mut c = s.login("user");
    c.cmd("TYPE I", 200);
    let data = open(&mut c, "STOR x");
    let sender = send_in_thread(data, random_bytes(BIG, 18));
    let r = c.expect(426);
    assert!(
        r.text().contains("injected storage failure"),
        "{:?}",
        r.lines
    );
    sender.join().unwrap();
    c.cmd("NOOP", 200);
    settled(&probe);
    assert_eq!(probe.finish_calls.load(Ordering::SeqCst), 0);
    assert_eq!(probe.aborted.load(Ordering::SeqCst), 1);
}

/// Out of room in the second piece: as for a file on the local disk, the rest of the upload
/// is read and dropped, the data connection closes cleanly, and the client reads 452
/// (ftplib: error_temp, not a reset).
#[test]
fn no_space_mid_upload_is_452_after_a_clean_close() {
    let probe = Probe::new(Duration::from_millis(1));
    probe.fail_write_call(2);
    probe.fail_errno(libc::ENOSPC);
    let s = server(&probe, |_| {});
    let body = random_bytes(BIG, 19);
    let mut c = s.login("user");
    c.cmd("TYPE I", 200);
    let mut data = open(&mut c, "STOR x");
    data.write_all(&body).expect("the upload is taken whole");
    data.shutdown(Shutdown::Write).unwrap();
    data.read_to_end(&mut Vec::new()).expect("a clean close");
    let r = c.expect(452);
    assert!(
        r.text().starts_with("452 Insufficient storage space"),
        "{:?}",
        r.lines
    );
    c.cmd("NOOP", 200);
    if require("python3") {
        let script = r#"
import ftplib, io, sys
f = ftplib.FTP()
f.connect("127.0.0.1", int(sys.argv[1]), timeout=30)
f.login("user", "pass")
try:
    f.storbinary("STOR y", io.BytesIO(b"x" * 3500000))
except ftplib.error_temp as e:
    print(e)
print(f.voidcmd("NOOP"))
f.quit()
"#;
        let out = run(Command::new("python3")
            .arg("-c")
            .arg(script)
            .arg(s.addr.port().to_string()));
        let out = String::from_utf8_lossy(&out.stdout).to_string();
        let mut lines = out.lines();
        assert!(
            lines.next().unwrap_or("").starts_with("452 Insufficient"),
            "{out}"
        );
        assert!(lines.next().unwrap_or("").starts_with("200"), "{out}");
    }
    settled(&probe);
    assert_eq!(probe.finish_calls.load(Ordering::SeqCst), 0);
    assert_eq!(probe.aborted.load(Ordering::SeqCst), 2);
}

/// The commit fails: the client gets the error, never 226, and the writer is dropped.
#[test]
fn a_failing_finish_is_not_226() {
    let probe = Probe::new(Duration::from_millis(1));
    probe.fail_finish(true);
    let s = server(&probe, |_| {});
    let mut c = s.login("user");
    c.cmd("TYPE I", 200);
    for len in [0, PIECE + 1] {
        let mut data = open(&mut c, "STOR x");
        data.write_all(&random_bytes(len, 20)).unwrap();
        data.shutdown(Shutdown::Write).unwrap();
        let _ = data.read_to_end(&mut Vec::new());
        let r = c.expect(426);
        assert!(
            r.text().contains("injected storage failure"),
            "{:?}",
            r.lines
        );
    }
    if require("curl") {
        let src = TempDir::new("offload-finish");
        std::fs::write(src.join("b"), random_bytes(BIG, 21)).unwrap();
        let out = curl()
            .arg("-T")
            .arg(src.join("b"))
            .arg(s.url("user", "b"))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "curl took a failed commit: {err}");
        assert!(err.contains("426"), "{err}");
    }
    c.cmd("NOOP", 200);
    settled(&probe);
    assert_eq!(probe.finished.load(Ordering::SeqCst), 0);
    assert_eq!(
        probe.aborted.load(Ordering::SeqCst),
        probe.finish_calls.load(Ordering::SeqCst)
    );
}

/// A download of `len` bytes: (seconds from the 150 to the end of the data, reads that
/// returned data).
fn timed_retr(c: &mut Client, name: &str, len: usize) -> (f64, usize) {
    let mut data = open(c, &format!("RETR {name}"));
    let start = Instant::now();
    let mut buf = vec![0u8; 256 << 10];
    let (mut total, mut reads) = (0, 0);
    loop {
        let n = data.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        total += n;
        reads += 1;
    }
    let secs = start.elapsed().as_secs_f64();
    c.expect(226);
    assert_eq!(total, len);
    (secs, reads)
}

/// Bandwidth limits hold for offloaded files, both ways (within 20%: a rough bound, the
/// exact ones are in tests/throttle.rs); a throttled download moves in the limit's quanta
/// as a download of a local file does, not in a trickle of timer wake-ups (compared with
/// a local file's in the same run).
#[test]
fn throttled_offloaded_transfers_keep_their_rate() {
    const LIMIT: usize = 1 << 20;
    const LEN: usize = 3 * LIMIT / 2;
    let probe = Probe::new(Duration::from_millis(2));
    let s = server(&probe, |c| {
        c.dtp.write_limit = LIMIT as u64;
        c.dtp.read_limit = LIMIT as u64;
    });
    let local = TestServer::start_with(|c, _| c.dtp.write_limit = LIMIT as u64);
    let body = random_bytes(LEN, 22);
    std::fs::write(s.root.join("f"), &body).unwrap();
    std::fs::write(local.root.join("f"), &body).unwrap();

    let mut c = s.login("user");
    c.cmd("TYPE I", 200);
    let (secs, reads) = timed_retr(&mut c, "f", LEN);
    let rate = LEN as f64 / secs;
    let mut l = local.login("user");
    l.cmd("TYPE I", 200);
    let (local_secs, local_reads) = timed_retr(&mut l, "f", LEN);
    eprintln!(
        "RETR at {LIMIT} B/s: offloaded {rate:.0} B/s in {reads} reads, local {:.0} B/s in \
         {local_reads} reads",
        LEN as f64 / local_secs
    );
    assert!(
        (rate - LIMIT as f64).abs() < 0.2 * LIMIT as f64,
        "offloaded RETR at {rate:.0} B/s"
    );
    assert!(
        reads <= 4 * local_reads.max(10),
        "offloaded RETR in {reads} reads, local in {local_reads}"
    );

    let mut data = open(&mut c, "STOR g");
    let start = Instant::now();
    data.write_all(&body).unwrap();
    data.shutdown(Shutdown::Write).unwrap();
    drop(data);
    c.expect(226);
    let rate = LEN as f64 / start.elapsed().as_secs_f64();
    eprintln!("STOR at {LIMIT} B/s: offloaded {rate:.0} B/s");
    assert!(
        (rate - LIMIT as f64).abs() < 0.2 * LIMIT as f64,
        "offloaded STOR at {rate:.0} B/s"
    );
    assert_same(&std::fs::read(s.root.join("g")).unwrap(), &body);
    c.cmd("QUIT", 221);
    settled(&probe);
}

/// The data connection's stall timeout is the client's silence, not the storage's: an
/// upload whose commit takes longer than the timeout still completes (226), and so does a
/// download whose pieces each take longer.
#[test]
fn slow_storage_is_not_a_stalled_client() {
    let probe = Probe::new(Duration::from_millis(1));
    let s = server(&probe, |c| c.dtp.timeout = Some(Duration::from_millis(300)));
    let mut c = s.login("user");
    c.cmd("TYPE I", 200);
    probe.set_delays(
        Duration::from_millis(500),
        Duration::from_millis(1),
        Duration::from_millis(500),
    );
    let body = random_bytes(10, 23);
    c.stor("STOR x", &body);
    assert_same(&std::fs::read(s.root.join("x")).unwrap(), &body);
    assert_same(&c.retr("RETR x"), &body);
    c.cmd("NOOP", 200);
    settled(&probe);

    // A client that does stall is still timed out: one that stops reading a download
    // larger than the sockets hold, one that stops sending an upload.
    probe.set_delays(Duration::ZERO, Duration::ZERO, Duration::ZERO);
    let f = std::fs::File::create(s.root.join("sparse")).unwrap();
    f.set_len(32 << 20).unwrap();
    let data = open(&mut c, "RETR sparse");
    let r = c.expect(421);
    assert!(r.text().contains("timed out"), "{:?}", r.lines);
    assert!(c.closed_by_server());
    drop(data);
    let mut c = s.login("user");
    c.cmd("TYPE I", 200);
    let mut data = open(&mut c, "STOR y");
    data.write_all(&random_bytes(PIECE + 1000, 24)).unwrap();
    let r = c.expect(421);
    assert!(r.text().contains("timed out"), "{:?}", r.lines);
    assert!(c.closed_by_server());
    drop(data);
    settled(&probe);
    assert_eq!(probe.aborted.load(Ordering::SeqCst), 1);
}

/// ABOR after the client sent the whole upload, while its file is being completed (an
/// object store's commit takes a while): the commit is not cut. The upload's own reply
/// (226) comes, then the ABOR's 226, and the file is finished once. Before, the ABOR got
/// 426 while the commit went on and completed the file anyway.
#[test]
fn abor_during_the_commit_waits_for_it() {
    let probe = Probe::new(Duration::from_millis(1));
    probe.set_delays(
        Duration::from_millis(1),
        Duration::from_millis(1),
        Duration::from_millis(600),
    );
    let s = server(&probe, |_| {});
    let mut c = s.login("user");
    c.cmd("TYPE I", 200);
    let body = random_bytes(PIECE + 7, 30);
    let mut data = open(&mut c, "STOR committed");
    data.write_all(&body).unwrap();
    data.shutdown(Shutdown::Write).unwrap();
    assert!(wait_until(Duration::from_secs(10), || {
        probe.finish_calls.load(Ordering::SeqCst) >= 1
    }));
    c.send("ABOR");
    let done = c.expect(226);
    assert!(
        done.text().contains("Transfer complete"),
        "{:?}",
        done.lines
    );
    let abor = c.expect(226);
    assert!(abor.text().contains("ABOR"), "{:?}", abor.lines);
    let _ = data.read_to_end(&mut Vec::new());
    c.cmd("NOOP", 200);
    assert_eq!(std::fs::read(s.root.join("committed")).unwrap(), body);
    settled(&probe);
    assert_eq!(probe.finished.load(Ordering::SeqCst), 1);
    assert_eq!(probe.aborted.load(Ordering::SeqCst), 0);
}

/// File pieces have a pool of their own: with one worker per pool and every piece of a
/// running download holding its worker, a new session still logs in and lists at once.
/// On one shared pool the login waited behind the pieces (an object store under 50
/// transfers: half a second to three seconds per login).
#[test]
fn logins_and_storage_calls_never_wait_behind_file_pieces() {
    let probe = Probe::new(Duration::from_millis(1));
    let s = server(&probe, |c| c.io_threads = 1);
    std::fs::write(s.root.join("big"), random_bytes(6 * PIECE, 40)).unwrap();
    let mut c = s.login("user");
    c.cmd("TYPE I", 200);
    // Each read now holds the piece pool's one worker for 400 ms.
    probe.set_delays(
        Duration::from_millis(400),
        Duration::from_millis(1),
        Duration::from_millis(1),
    );
    let data = open(&mut c, "RETR big");
    assert!(wait_until(Duration::from_secs(10), || {
        probe.reads.load(Ordering::SeqCst) >= 1
    }));
    for _ in 0..3 {
        let t = Instant::now();
        let mut other = s.login("user");
        other.cmd("SIZE big", 213);
        other.cmd("MKD d", 257);
        other.cmd("RMD d", 250);
        assert!(
            t.elapsed() < Duration::from_millis(300),
            "a login and three storage calls took {:?} behind the pieces",
            t.elapsed()
        );
    }
    c.send("ABOR");
    drop(data);
    let r = c.read_reply();
    assert!(r.code == 426 || r.code == 226, "{:?}", r.lines);
}
