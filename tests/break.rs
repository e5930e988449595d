//! Defects found by trying to break the request seam (storage and logins on the worker
//! pool): each test shows one, and fails until it is fixed.

mod util;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
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
