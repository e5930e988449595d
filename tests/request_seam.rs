//! The request seam (storage and logins on the worker pool) under hostile use: ABOR and
//! QUIT at awkward moments, named pipes, names that are not UTF-8, huge listings on the
//! memory back-end, concurrent appends. Each test is a defect found by trying to break it.

mod util;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use ftpdlib::{Filesystem, MemoryStore, OsFilesystem};
use util::faulty::{Faulty, Mode};
use util::*;

fn slow_server(ms: u64) -> TestServer {
    TestServer::start_with(move |c, _| {
        c.filesystem = Arc::new(move |home: &Path| {
            let fs = OsFilesystem::new(home)?;
            Ok(
                Arc::new(Faulty::new(fs, Mode::Sleep(Duration::from_millis(ms))))
                    as Arc<dyn Filesystem>,
            )
        });
    })
}

fn memory_server() -> TestServer {
    TestServer::start_with(|c, _| {
        let store = MemoryStore::new();
        c.filesystem = Arc::new(move |home: &Path| {
            Ok(Arc::new(store.filesystem(home)?) as Arc<dyn Filesystem>)
        });
    })
}

/// Reads the data connection to its end, or fails after `limit`.
fn read_to_eof(data: &mut TcpStream, limit: Duration) -> Result<Vec<u8>, String> {
    data.set_read_timeout(Some(limit)).unwrap();
    let mut out = Vec::new();
    match data.read_to_end(&mut out) {
        Ok(_) => Ok(out),
        Err(e) => Err(format!(
            "no EOF within {limit:?} ({e}), {} bytes",
            out.len()
        )),
    }
}

/// ABOR of a RETR still waiting for its file answers "426 Transfer aborted" and "226 ABOR
/// command successful", but leaves the data connection open: RFC 959 has ABOR close it,
/// as the ABOR of a running transfer does. A client that drains the data connection after
/// ABOR waits for an EOF that never comes, and the next RETR (without PASV) silently goes
/// over the connection the client believed aborted.
#[test]
fn abor_of_a_transfer_waiting_on_storage_closes_the_data_connection() {
    let s = slow_server(400);
    std::fs::write(s.root.join("f"), b"0123456789").unwrap();
    let mut c = s.login("user");
    let addr = c.pasv();
    let mut data = TcpStream::connect(addr).unwrap();
    c.send("RETR f");
    c.send("ABOR");
    c.expect(426);
    c.expect(226);
    // The data connection of the aborted transfer must be gone.
    let r = read_to_eof(&mut data, Duration::from_secs(3));
    // And a later transfer must not reuse it without a new PASV/PORT.
    c.send("RETR f");
    let next = c.read_reply();
    assert!(
        r.is_ok(),
        "data connection still open after 426/226 ABOR: {}; the next RETR got {:?}",
        r.unwrap_err(),
        next.lines
    );
    // Held for a new PASV/PORT (as pyftpdlib holds it), never 125 over the old one.
    assert_eq!(next.code, 150, "RETR after ABOR: {:?}", next.lines);
}

/// Two ABORs sent while a (non-transfer) request is out get one 225 between them: the
/// second ABOR is swallowed and a client waiting for its reply hangs.
#[test]
fn every_abor_sent_while_a_request_is_out_is_answered() {
    let s = slow_server(300);
    let mut c = s.login("user");
    c.send_raw(b"DELE missing\r\nABOR\r\nABOR\r\nNOOP\r\n");
    c.expect(550);
    c.expect(225);
    // The second ABOR's reply; the defect answers the NOOP here instead.
    let r = c.read_reply();
    assert_eq!(r.code, 225, "second ABOR: {:?}", r.lines);
    c.expect(200);
}

/// QUIT sent while a DELE is out during a transfer: when the transfer ends, the session
/// answers 226 and 221 and closes, dropping the DELE's reply although the file is removed
/// afterwards. A QUIT while a request is out is documented to wait for that request.
#[test]
fn quit_during_a_transfer_still_answers_a_command_that_is_out() {
    let s = slow_server(500);
    let body = random_bytes(8 << 20, 7);
    std::fs::write(s.root.join("big"), &body).unwrap();
    std::fs::write(s.root.join("victim"), b"x").unwrap();
    let mut c = s.login("user");
    let addr = c.pasv();
    let mut data = TcpStream::connect(addr).unwrap();
    c.send("RETR big");
    c.expect(125);
    // The transfer is held by the unread data connection; DELE goes to the (slow) pool.
    c.send_raw(b"DELE victim\r\nQUIT\r\n");
    std::thread::sleep(Duration::from_millis(100));
    let got = read_to_eof(&mut data, Duration::from_secs(10)).unwrap();
    assert_same(&got, &body);
    // Everything the server says until it closes (nothing was buffered past the 125).
    let mut rest = Vec::new();
    c.stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let _ = c.stream.read_to_end(&mut rest);
    let codes = String::from_utf8_lossy(&rest).into_owned();
    wait_until(Duration::from_secs(3), || !s.root.join("victim").exists());
    assert!(!s.root.join("victim").exists(), "DELE was not carried out");
    assert!(
        codes.contains("250 "),
        "DELE removed the file but its reply never came: {codes:?}"
    );
}

/// --memory: two APPEs to the same file at once keep only one upload. Each writer starts at
/// the end of the file as it was when it opened, not at the end at each write (O_APPEND on
/// the disk), so the second overwrites the first's bytes.
#[test]
fn concurrent_appends_to_a_memory_file_keep_both_uploads() {
    let s = memory_server();
    let mut c0 = s.login("user");
    c0.stor("STOR log", b"");
    let mut a = s.login("user");
    let mut b = s.login("user");
    let da = a.pasv();
    let mut da = TcpStream::connect(da).unwrap();
    a.cmd("APPE log", 125);
    let db = b.pasv();
    let mut db = TcpStream::connect(db).unwrap();
    b.cmd("APPE log", 125);
    da.write_all(&[b'A'; 1000]).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    db.write_all(&[b'B'; 1000]).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    da.shutdown(Shutdown::Write).unwrap();
    db.shutdown(Shutdown::Write).unwrap();
    drop((da, db));
    a.expect(226);
    b.expect(226);
    let got = c0.retr("RETR log");
    let n_a = got.iter().filter(|&&x| x == b'A').count();
    let n_b = got.iter().filter(|&&x| x == b'B').count();
    assert_eq!(
        (got.len(), n_a, n_b),
        (2000, 1000, 1000),
        "appended bytes lost"
    );
}

/// ABOR while a RETR is running and a second transfer command waits for its file: the
/// session answers 426 and 226 for the waiting command, but the running transfer is not
/// aborted. It goes on to the end and a "226 Transfer complete." follows later, a reply the
/// client did not expect (it answers its next command, desynchronising the session).
#[test]
fn abor_aborts_the_running_transfer_when_another_transfer_command_waits() {
    let s = slow_server(400);
    let body = random_bytes(16 << 20, 3);
    std::fs::write(s.root.join("big"), &body).unwrap();
    std::fs::write(s.root.join("f"), b"x").unwrap();
    let mut c = s.login("user");
    let addr = c.pasv();
    let mut data = TcpStream::connect(addr).unwrap();
    c.send("RETR big");
    c.expect(125);
    // The transfer is held by the unread data connection. The second RETR is refused at
    // once (it never asks for its file); the ABOR aborts the running one.
    c.send_raw(b"RETR f\r\nABOR\r\n");
    c.expect(425);
    c.expect(426);
    c.expect(226);
    let got = read_to_eof(&mut data, Duration::from_secs(10)).unwrap_or_default();
    c.send("NOOP");
    let next = c.read_reply();
    assert!(
        got.len() < body.len() && next.code == 200,
        "ABOR answered 426/226 but the running RETR sent {} of {} bytes, and NOOP got {:?}",
        got.len(),
        body.len(),
        next.lines
    );
}

/// A named pipe in the served tree: each RETR of it holds a worker in open(2) until someone
/// writes to the pipe, so as many RETRs as there are workers stop every login and every
/// storage call of every session, for good (even after those clients leave). Opening a
/// regular file never blocks; a pipe should be refused or opened without blocking.
#[test]
fn retr_of_a_named_pipe_does_not_stop_the_worker_pool() {
    let s = TestServer::start_with(|c, _| c.io_threads = 2);
    let fifo = s.root.join("fifo");
    let c_path = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o644) }, 0);
    std::fs::write(s.root.join("f"), b"12345").unwrap();
    let mut holders = Vec::new();
    for _ in 0..2 {
        let mut c = s.login("ro");
        let addr = c.pasv();
        let data = TcpStream::connect(addr).unwrap();
        c.send("RETR fifo");
        holders.push((c, data));
    }
    std::thread::sleep(Duration::from_millis(300));
    drop(holders);
    // Another user, another session: a login and a SIZE.
    let mut c = s.client();
    c.stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    c.cmd("USER user", 331);
    c.send("PASS pass");
    let mut line = String::new();
    let got = {
        use std::io::BufRead;
        let mut r = std::io::BufReader::new(c.stream.try_clone().unwrap());
        r.read_line(&mut line)
    };
    // Release the workers before asserting, so the server can stop.
    for _ in 0..2 {
        let _ = std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&fifo);
    }
    assert!(
        got.is_ok() && line.starts_with("230"),
        "login hung behind two RETRs of a named pipe: {got:?} {line:?}"
    );
}

/// A command naming a file with bytes that are not UTF-8 acts on another file: the bytes
/// are replaced with U+FFFD, so `DELE a\xff` removes `a\u{fffd}`. docs/compliance.md says
/// such a name "cannot be addressed by a command"; it is worse, it addresses a different one.
#[test]
fn a_name_that_is_not_utf8_never_addresses_another_file() {
    use std::os::unix::ffi::OsStrExt;
    let s = TestServer::start();
    let raw = s.root.path().join(std::ffi::OsStr::from_bytes(b"a\xff"));
    std::fs::write(&raw, b"not utf-8").unwrap();
    std::fs::write(s.root.join("a\u{fffd}"), b"the replacement character").unwrap();
    let mut c = s.login("user");
    c.send_raw(b"DELE a\xff\r\n");
    let r = c.read_reply();
    assert!(
        s.root.join("a\u{fffd}").exists(),
        "DELE a\\xff removed the file a\\u{{fffd}} ({:?})",
        r.lines
    );
}

/// A named pipe with an idle writer (a log pipe, say) in the served tree: `TYPE A` then
/// `RETR pipe` reads it on the reactor thread with a blocking read(2) (the binary path's
/// sendfile fails at once with "Illegal seek"), so every session of the server stops until
/// the writer writes or closes. Any read-only user can do it.
#[test]
fn an_ascii_retr_of_a_named_pipe_does_not_stop_the_server() {
    let s = TestServer::start();
    let fifo = s.root.join("logpipe");
    let c_path = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o644) }, 0);
    // An idle writer (read-write: the open does not wait for a reader).
    let writer = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&fifo)
        .unwrap();
    let mut other = s.login("user");
    let mut c = s.login("ro");
    c.cmd("TYPE A", 200);
    let addr = c.pasv();
    let _data = TcpStream::connect(addr).unwrap();
    c.send("RETR logpipe");
    std::thread::sleep(Duration::from_millis(500));
    other
        .stream
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    other.send("NOOP");
    let mut line = String::new();
    let r = {
        use std::io::BufRead;
        let mut r = std::io::BufReader::new(other.stream.try_clone().unwrap());
        r.read_line(&mut line)
    };
    // Let the server go before asserting.
    drop(writer);
    assert!(
        r.is_ok() && line.starts_with("200"),
        "NOOP of another session unanswered while a RETR reads an idle pipe: {r:?} {line:?}"
    );
}

/// --memory runs every storage call and every listing piece on the reactor thread
/// (`is_inline`). Opening a listing copies every name of the directory (and scans every key
/// below it in the store), and the first piece of a LIST reads ahead and sorts up to 10,001
/// entries, all inline: 40 sessions listing a 50,000-entry directory at once hold the loop
/// for hundreds of milliseconds (200 sessions: over 3 s, and 1 GB of RSS), during which
/// no session gets any reply.
#[test]
fn memory_listings_of_a_large_directory_do_not_hold_the_loop() {
    let s = memory_server();
    let mut c = s.login("user");
    c.cmd("MKD /huge", 257);
    for base in (0..50_000).step_by(1000) {
        let mut batch = Vec::new();
        for i in base..base + 1000 {
            batch.extend_from_slice(
                format!("MKD /huge/dir-{i:06}-with-a-longish-name\r\n").as_bytes(),
            );
        }
        c.send_raw(&batch);
        for _ in 0..1000 {
            c.expect(257);
        }
    }
    let mut listers = Vec::new();
    for _ in 0..40 {
        let mut l = s.login("user");
        let addr = l.pasv();
        let d = TcpStream::connect(addr).unwrap();
        listers.push((l, d));
    }
    let mut noop = s.login("user");
    for (l, _) in &mut listers {
        l.send("LIST /huge");
    }
    let start = std::time::Instant::now();
    let mut worst = Duration::ZERO;
    while start.elapsed() < Duration::from_secs(2) {
        let t = std::time::Instant::now();
        noop.cmd("NOOP", 200);
        worst = worst.max(t.elapsed());
    }
    drop(listers);
    assert!(
        worst < Duration::from_millis(100),
        "a NOOP waited {worst:?} behind memory listings"
    );
}

/// REST beyond the end of the file is a 554 (docs/compliance.md, and the memory back-end
/// answers so), but on the disk a REST past i64::MAX makes the open's seek fail first:
/// "550 Invalid argument.".
#[test]
fn rest_beyond_the_end_is_554_on_the_disk_too() {
    let s = TestServer::start();
    std::fs::write(s.root.join("f"), b"0123456789").unwrap();
    let mut c = s.login("user");
    c.cmd("REST 18446744073709551615", 350);
    c.pasv();
    c.cmd("RETR f", 554);
}

/// The same ABOR (of a RETR still waiting for its file) after PASV with no connection yet:
/// the passive listener is left open, and when its accept timeout passes the session sends
/// an unsolicited "421 Passive data channel timed out.", which the client takes as the
/// reply to its next command.
#[test]
fn abor_of_a_waiting_transfer_leaves_no_listener_to_time_out_later() {
    let s = TestServer::start_with(|c, _| {
        c.dtp.accept_timeout = Duration::from_millis(800);
        c.filesystem = Arc::new(|home: &Path| {
            let fs = OsFilesystem::new(home)?;
            Ok(
                Arc::new(Faulty::new(fs, Mode::Sleep(Duration::from_millis(300))))
                    as Arc<dyn Filesystem>,
            )
        });
    });
    std::fs::write(s.root.join("f"), b"x").unwrap();
    let mut c = s.login("user");
    c.pasv();
    c.send("RETR f");
    c.send("ABOR");
    c.expect(426);
    c.expect(226);
    std::thread::sleep(Duration::from_millis(1500));
    c.send("NOOP");
    let r = c.read_reply();
    assert_eq!(r.code, 200, "NOOP after ABOR got {:?}", r.lines);
}
