//! What one command leaves for the next, and transfers around QUIT, ABOR and a missing
//! PASV/PORT, against pyftpdlib 2.2's behaviour (checked side by side on the same inputs;
//! each test names where ftpdlib follows it and where it deliberately does not).

mod util;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::time::Duration;

use util::*;

/// pyftpdlib: QUIT during an upload is answered 221 at once, the upload ends with 226, then
/// the session closes. A client that waits for the 221 before finishing must not hang.
#[test]
fn quit_during_an_upload_is_answered_at_once() {
    let s = TestServer::start();
    let mut c = s.login("user");
    let mut data = TcpStream::connect(c.pasv()).unwrap();
    c.cmd("STOR up", 125);
    data.write_all(b"first half, ").unwrap();
    c.cmd("QUIT", 221);
    data.write_all(b"second half").unwrap();
    data.shutdown(Shutdown::Write).unwrap();
    drop(data);
    c.expect(226);
    assert!(c.closed_by_server());
    assert_eq!(
        std::fs::read(s.root.join("up")).unwrap(),
        b"first half, second half"
    );
}

/// pyftpdlib: RETR, STOR and STOU before any PASV/PORT answer 150 and wait for the data
/// connection the client then sets up. The file is opened at the command, so a command in
/// between (a rename, say) cannot change which file moves.
#[test]
fn a_transfer_before_pasv_or_port_is_held_until_one_comes() {
    let s = TestServer::start();
    std::fs::write(s.root.join("f"), b"original").unwrap();
    let mut c = s.login("user");
    // RETR, then PASV.
    c.cmd("RETR f", 150);
    // Another transfer meanwhile is refused; other commands go on.
    c.cmd("RETR f", 425);
    c.cmd("RNFR f", 350);
    c.cmd("RNTO g", 250);
    std::fs::write(s.root.join("f"), b"impostor").unwrap();
    let mut data = TcpStream::connect(c.pasv()).unwrap();
    let mut got = Vec::new();
    data.read_to_end(&mut got).unwrap();
    c.expect(226);
    assert_eq!(got, b"original");
    // STOR, then EPSV.
    c.cmd("STOR up", 150);
    let mut data = TcpStream::connect(c.epsv()).unwrap();
    data.write_all(b"uploaded").unwrap();
    drop(data);
    c.expect(226);
    assert_eq!(std::fs::read(s.root.join("up")).unwrap(), b"uploaded");
    // STOU, then PORT (active): the 200 for the connection, then the 226.
    let r = c.cmd("STOU", 150);
    let name = r.text()["150 FILE: ".len()..].to_string();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    c.send(format!("PORT 127,0,0,1,{},{}", port >> 8, port & 0xff));
    let (mut data, _) = listener.accept().unwrap();
    c.expect(200);
    data.write_all(b"unique").unwrap();
    drop(data);
    c.expect(226);
    assert_eq!(std::fs::read(s.root.join(&name)).unwrap(), b"unique");
    // A listing too.
    c.cmd("NLST", 150);
    let mut data = TcpStream::connect(c.pasv()).unwrap();
    let mut got = Vec::new();
    data.read_to_end(&mut got).unwrap();
    c.expect(226);
    assert!(got.windows(4).any(|w| w == b"up\r\n"), "{got:?}");
}

/// A held transfer ends with the right replies: ABOR gives 426 then 226 (the 150 went
/// out), and without ABOR the idle timeout ends the session.
#[test]
fn a_held_transfer_ends_on_abor_or_the_idle_timeout() {
    let s = TestServer::start_with(|c, _| c.timeout = Some(Duration::from_millis(600)));
    std::fs::write(s.root.join("f"), b"x").unwrap();
    let mut c = s.login("user");
    for cmd in ["RETR f", "STOR g"] {
        c.cmd(cmd, 150);
        c.send("ABOR");
        c.expect(426);
        c.expect(226);
    }
    // Nothing is left held: a PASV now starts nothing.
    let mut data = TcpStream::connect(c.pasv()).unwrap();
    c.cmd("NOOP", 200);
    data.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut buf = [0u8; 8];
    assert!(data.read(&mut buf).is_err(), "a transfer ran after ABOR");
    c.cmd("ABOR", 225);
    drop(data);
    c.cmd("STOR g", 150);
    assert_eq!(c.read_reply().code, 421);
    assert!(c.closed_by_server());
}

/// pyftpdlib answers ABOR of a RETR whose passive connection never came with a lone 225:
/// the RETR never gets its final reply. Here: 426 for the RETR, 226 for the ABOR. The same
/// for PORT whose connection is up but whose transfer has not begun, and for QUIT.
#[test]
fn abor_after_150_without_a_data_connection_ends_the_command() {
    let s = TestServer::start();
    std::fs::write(s.root.join("f"), b"x").unwrap();
    let mut c = s.login("user");
    c.pasv(); // never connected
    c.cmd("RETR f", 150);
    c.send("ABOR");
    c.expect(426);
    c.expect(226);
    c.cmd("NOOP", 200);
    c.pasv();
    c.cmd("LIST", 150);
    c.send("QUIT");
    c.expect(426);
    c.expect(221);
    assert!(c.closed_by_server());
}

/// What RNFR set up is for the very next command, if it is RNTO; a failed RNFR, an unknown
/// verb, a refused argument or permission, or any other command cancels it. pyftpdlib
/// renames keep.txt after `RNFR keep.txt`, `RNFR missing.txt` (550), `RNTO renamed.txt`.
#[test]
fn a_failed_or_other_command_cancels_rnfr() {
    let s = TestServer::start();
    std::fs::write(s.root.join("keep.txt"), b"k").unwrap();
    let mut c = s.login("user");
    let mut ro = s.login("ro");
    for between in [
        "RNFR missing.txt", // fails: 550
        "BOGUS",            // unknown: 500
        "MKD",              // no argument: 501
        "NOOP",             // succeeds, but is not RNTO
    ] {
        c.cmd("RNFR keep.txt", 350);
        c.send(between);
        c.read_reply();
        c.cmd("RNTO renamed.txt", 503);
        assert!(s.root.join("keep.txt").exists(), "after {between}");
    }
    // A user who may not rename gets 550 for both, and nothing moves.
    ro.cmd("RNFR keep.txt", 550);
    ro.cmd("RNTO renamed.txt", 550);
    assert!(s.root.join("keep.txt").exists());
    // RNTO uses it up, succeeding or failing.
    c.cmd("RNFR keep.txt", 350);
    c.cmd("RNTO /", 550);
    c.cmd("RNTO renamed.txt", 503);
    c.cmd("RNFR keep.txt", 350);
    c.cmd("RNTO renamed.txt", 250);
    assert!(s.root.join("renamed.txt").exists());
}

/// REST's marker is for the next transfer command, with only data-connection setup and
/// settings in between; a failed transfer command uses it up too. REST then STOR of a
/// file that does not exist is 550 (a restart needs the file), as in pyftpdlib.
#[test]
fn the_restart_marker_lasts_one_transfer_command() {
    let s = TestServer::start();
    std::fs::write(s.root.join("f"), b"0123456789").unwrap();
    let mut c = s.login("user");
    // Kept across PASV, TYPE and NOOP, as ftplib and lftp send them in between.
    c.cmd("REST 4", 350);
    c.cmd("TYPE I", 200);
    c.cmd("NOOP", 200);
    assert_eq!(c.retr("RETR f"), b"456789");
    // Used up by a RETR that fails.
    c.cmd("REST 4", 350);
    c.pasv();
    c.cmd("RETR missing", 550);
    assert_eq!(c.retr("RETR f"), b"0123456789");
    // Dropped by any other command: the STOR overwrites instead of resuming.
    c.cmd("REST 4", 350);
    c.cmd("PWD", 257);
    c.stor("STOR f", b"new");
    assert_eq!(std::fs::read(s.root.join("f")).unwrap(), b"new");
    // Dropped by a refused REST.
    c.cmd("REST 2", 350);
    c.cmd("REST x", 501);
    c.stor("STOR f", b"newer");
    assert_eq!(std::fs::read(s.root.join("f")).unwrap(), b"newer");
    // A restart of a file that is not there.
    c.cmd("REST 10", 350);
    c.cmd("STOR missing-file", 550);
    assert!(!s.root.join("missing-file").exists());
}
