//! How the control connection reads: one read per command, and the cases where a short
//! read does not mean the socket is empty (urgent data, a FIN queued with the command).
//! Each test sends its bytes in one TCP segment (TCP_CORK), so they are all queued when
//! the server's single readiness event for them comes.

mod util;

use std::io::Read;
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::time::Duration;

use util::*;

/// Holds what is written until `uncork`, then sends it as one segment.
fn cork(s: &TcpStream, on: bool) {
    let v: libc::c_int = on.into();
    // SAFETY: setsockopt(2) on the test's own open socket, with a valid c_int and its size.
    let rc = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_CORK,
            (&v as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "TCP_CORK: {}", std::io::Error::last_os_error());
}

/// Sends `bytes` as TCP urgent data: the last byte carries the urgent mark.
fn send_urgent(s: &TcpStream, bytes: &[u8]) {
    // SAFETY: send(2) on the test's own open socket from a live slice of its length.
    let n = unsafe {
        libc::send(
            s.as_raw_fd(),
            bytes.as_ptr().cast(),
            bytes.len(),
            libc::MSG_OOB,
        )
    };
    assert_eq!(
        n,
        bytes.len() as isize,
        "{}",
        std::io::Error::last_os_error()
    );
}

/// Python's ftplib aborts by sending all of `ABOR\r\n` as urgent data: a read stops at the
/// mark, before the LF, with the LF already queued. The reply must come at once.
#[test]
fn abor_sent_as_urgent_data_like_ftplib_is_answered() {
    let s = TestServer::start();
    let mut c = s.login("user");
    c.stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    for _ in 0..3 {
        send_urgent(&c.stream, b"ABOR\r\n");
        assert_eq!(c.read_reply().lines, ["225 No transfer to abort."]);
        c.cmd("NOOP", 200);
    }
}

/// BSD ftp and tnftp send Telnet IP and Synch: `IAC IP IAC` with the last IAC urgent, then
/// `DM ABOR\r\n`; here all of it in one segment, behind a NOOP of the same segment.
#[test]
fn abor_behind_a_telnet_synch_in_one_segment_is_answered() {
    let s = TestServer::start();
    let mut c = s.login("user");
    c.stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    cork(&c.stream, true);
    c.send_raw(b"NOOP\r\n");
    send_urgent(&c.stream, b"\xff\xf4\xff");
    c.send_raw(b"\xf2ABOR\r\n");
    cork(&c.stream, false);
    c.expect(200);
    assert_eq!(c.read_reply().lines, ["225 No transfer to abort."]);
    c.cmd("NOOP", 200);
}

/// A command and the client's FIN in one segment: the reply is sent and the session ends
/// at once, not at the idle timeout.
#[test]
fn a_command_with_the_fin_behind_it_is_answered_and_the_session_ends() {
    let s = TestServer::start();
    for line in [&b"NOOP\r\n"[..], b"QUIT\r\n", b"NOOP\r\nNOOP\r\n"] {
        let mut c = s.login("user");
        cork(&c.stream, true);
        c.send_raw(line);
        c.stream.shutdown(std::net::Shutdown::Write).unwrap();
        cork(&c.stream, false);
        let mut rest = Vec::new();
        c.stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        // EOF within the timeout: the server closed its side.
        let got = c.stream.read_to_end(&mut rest);
        assert!(got.is_ok(), "{line:?}: not closed: {got:?}");
        let text = String::from_utf8_lossy(&rest);
        let want = line
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .count();
        assert_eq!(text.matches("\r\n").count(), want, "{line:?}: {text:?}");
    }
}

/// A command cut across two segments: the short first read (no line end) and the second
/// both land.
#[test]
fn a_command_split_across_segments_is_answered() {
    let s = TestServer::start();
    let mut c = s.login("user");
    for cut in 1..6 {
        let line = b"NOOP\r\n";
        c.send_raw(&line[..cut]);
        std::thread::sleep(Duration::from_millis(20));
        c.send_raw(&line[cut..]);
        c.expect(200);
    }
}

/// More commands in one write than one read takes (4 KiB): every one is answered.
#[test]
fn a_write_of_many_commands_is_answered_whole() {
    let s = TestServer::start();
    let mut c = s.login("user");
    c.send_raw(&b"NOOP\r\n".repeat(1500));
    for _ in 0..1500 {
        c.expect(200);
    }
    c.cmd("NOOP", 200);
}

/// A server on a listener the caller made (`FtpServer::from_listeners`) sets the control
/// connection's options on each connection itself: urgent data still arrives in line, for
/// the first connection too, made before the server runs.
#[test]
fn urgent_abor_reaches_a_server_on_the_callers_listener() {
    util::init();
    let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    std_listener.set_nonblocking(true).unwrap();
    let addr = std_listener.local_addr().unwrap();
    let root = TempDir::new("control-reads-own");
    let mut auth = ftpdlib::DummyAuthorizer::new();
    auth.add_user("user", "pass", root.path(), "elr").unwrap();
    let mut config = ftpdlib::Config::new(std::sync::Arc::new(auth));
    config.auth_failed_timeout = Duration::ZERO;
    let listener = mio::net::TcpListener::from_std(std_listener);
    // Connected before the server exists: the connection is already in the backlog.
    let early = std::net::TcpStream::connect(addr).unwrap();
    let mut server = ftpdlib::FtpServer::from_listeners(vec![listener], config).unwrap();
    let stop = server.stop_handle();
    let thread = std::thread::spawn(move || server.serve_forever(None, None));
    let mut c = Client::from_stream(early);
    c.stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    c.expect(220);
    c.login("user", "pass");
    send_urgent(&c.stream, b"ABOR\r\n");
    assert_eq!(c.read_reply().lines, ["225 No transfer to abort."]);
    stop.close_all();
    thread.join().unwrap().unwrap();
}

/// A login and more commands with the FIN behind them, the login's home not yet open (so
/// its check goes to the worker pool): every command before the FIN is answered, as when
/// the work is done at once, and then the session ends.
#[test]
fn commands_with_the_fin_behind_a_login_on_the_pool_are_all_answered() {
    let s = TestServer::start_with(|c, _| c.auth_failed_timeout = Duration::ZERO);
    for round in 0..2 {
        let mut c = s.client();
        c.stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        // A wrong password first, then the right one: both go out before any answer.
        let bytes: &[u8] = if round == 0 {
            b"USER user\r\nPASS pass\r\nPWD\r\nQUIT\r\n"
        } else {
            b"USER ro\r\nPASS nope\r\nUSER ro\r\nPASS pass\r\nPWD\r\n"
        };
        cork(&c.stream, true);
        c.send_raw(bytes);
        c.stream.shutdown(std::net::Shutdown::Write).unwrap();
        cork(&c.stream, false);
        let mut rest = Vec::new();
        let got = c.stream.read_to_end(&mut rest);
        assert!(got.is_ok(), "not closed: {got:?}");
        let codes: Vec<&str> = std::str::from_utf8(&rest)
            .unwrap()
            .lines()
            .map(|l| &l[..3])
            .collect();
        let want: &[&str] = if round == 0 {
            &["331", "230", "257", "221"]
        } else {
            &["331", "530", "331", "230", "257"]
        };
        assert_eq!(codes, want, "{:?}", String::from_utf8_lossy(&rest));
    }
}
