//! Timeouts on the timer heap, at small values: idle control connection, passive accept,
//! active connect, stalled transfer, login, and the failed-login delay.

mod util;

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use util::{random_bytes, TestServer};

#[test]
fn idle_control_connection_is_closed() {
    let s = TestServer::start_with(|c, _| c.timeout = Some(Duration::from_millis(500)));
    let mut c = s.client();
    c.cmd("NOOP", 200);
    let start = Instant::now();
    let r = c.read_reply();
    assert_eq!(r.lines, ["421 Control connection timed out."]);
    assert!(start.elapsed() >= Duration::from_millis(400));
    assert!(c.closed_by_server());
}

#[test]
fn commands_reset_the_idle_timer() {
    let s = TestServer::start_with(|c, _| c.timeout = Some(Duration::from_millis(600)));
    let mut c = s.client();
    for _ in 0..5 {
        std::thread::sleep(Duration::from_millis(300));
        c.cmd("NOOP", 200);
    }
}

/// A passive listener nobody connects to is closed after the accept timeout. With no
/// transfer command waiting, nothing is sent: an unasked reply would answer the client's
/// next command (pyftpdlib sends "421 Passive data channel timed out." here).
#[test]
fn passive_listener_times_out() {
    let s = TestServer::start_with(|c, _| c.dtp.accept_timeout = Duration::from_millis(300));
    let mut c = s.login("user");
    let addr = c.pasv();
    // (Probing the port before the timeout would be the awaited connection.)
    std::thread::sleep(Duration::from_millis(900));
    assert!(
        TcpStream::connect(addr).is_err(),
        "the listener outlived its timeout"
    );
    // The next reply is NOOP's own.
    c.cmd("NOOP", 200);
    // A transfer command then waits for a new PASV or PORT, as it would before any.
    std::fs::write(s.root.join("f"), b"x").unwrap();
    c.cmd("RETR f", 150);
    let addr = c.pasv();
    let mut data = TcpStream::connect(addr).unwrap();
    let mut got = Vec::new();
    data.read_to_end(&mut got).unwrap();
    assert_eq!(got, b"x");
    c.expect(226);
}

/// When a transfer command waits for the client to connect, the accept timeout answers it.
#[test]
fn passive_listener_times_out_under_a_waiting_transfer() {
    let s = TestServer::start_with(|c, _| c.dtp.accept_timeout = Duration::from_millis(300));
    std::fs::write(s.root.join("f"), b"x").unwrap();
    let mut c = s.login("user");
    c.pasv();
    c.cmd("RETR f", 150);
    let r = c.read_reply();
    assert_eq!(r.lines, ["421 Passive data channel timed out."]);
    c.cmd("NOOP", 200);
}

#[test]
fn stalled_transfer_is_aborted() {
    let s = TestServer::start_with(|c, _| {
        c.dtp.timeout = Some(Duration::from_millis(500));
        c.timeout = Some(Duration::from_millis(200));
    });
    std::fs::write(s.root.join("big"), random_bytes(64 << 20, 8)).unwrap();
    let mut c = s.login("user");
    let addr = c.pasv();
    // Connect and never read: the socket buffers fill and the transfer stalls. The control
    // idle timeout (shorter) must not fire while the transfer is pending.
    let _data = TcpStream::connect(addr).unwrap();
    c.cmd("RETR big", 125);
    let r = c.read_reply();
    assert_eq!(r.lines, ["421 Data connection timed out."]);
    assert!(c.closed_by_server());
}

#[test]
fn failed_login_reply_is_delayed_and_commands_wait() {
    let s = TestServer::start_with(|c, _| c.auth_failed_timeout = Duration::from_millis(400));
    let mut c = s.client();
    c.cmd("USER user", 331);
    let start = Instant::now();
    // The NOOP sent during the delay is answered after the 530, in order.
    c.send_raw(b"PASS wrong\r\nNOOP\r\n");
    c.expect(530);
    assert!(
        start.elapsed() >= Duration::from_millis(350),
        "{:?}",
        start.elapsed()
    );
    c.expect(200);
    c.login("user", "pass");
}

#[test]
fn login_timeout_closes_a_session_that_never_logs_in() {
    let s = TestServer::start_with(|c, _| {
        c.login_timeout = Some(Duration::from_millis(500));
        c.timeout = Some(Duration::from_secs(60));
    });
    let start = Instant::now();
    let mut c = s.client();
    c.cmd("USER user", 331);
    c.cmd("PASS wrong", 530);
    // Commands do not push the deadline back.
    std::thread::sleep(Duration::from_millis(250));
    c.cmd("NOOP", 200);
    let r = c.read_reply();
    assert_eq!(r.lines, ["421 Login timed out."]);
    assert!(
        start.elapsed() >= Duration::from_millis(450),
        "{:?}",
        start.elapsed()
    );
    assert!(c.closed_by_server());

    // A session that logged in in time is left alone.
    let mut c = s.login("user");
    std::thread::sleep(Duration::from_millis(700));
    c.cmd("NOOP", 200);
}

/// A loopback listener that completes no connection: its accept queue (backlog 0) is
/// filled with one connection that is never accepted, so the kernel drops further SYNs
/// and a connect to it hangs until it times out.
fn black_hole() -> (TcpListener, Vec<TcpStream>, String) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    // SAFETY: listen(2) on a socket we own and keep open; it only changes the backlog.
    assert_eq!(unsafe { libc::listen(l.as_raw_fd(), 0) }, 0);
    let addr = l.local_addr().unwrap();
    let mut fill = Vec::new();
    for _ in 0..8 {
        match TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
            Ok(s) => fill.push(s),
            Err(_) => break,
        }
    }
    assert!(
        TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err(),
        "the accept queue did not fill"
    );
    let port = addr.port();
    (l, fill, format!("127,0,0,1,{},{}", port >> 8, port & 0xff))
}

#[test]
fn active_connect_times_out() {
    let s = TestServer::start_with(|c, _| c.dtp.connect_timeout = Duration::from_millis(400));
    let (_l, _fill, spec) = black_hole();
    let mut c = s.login("user");
    let start = Instant::now();
    c.send(format!("PORT {spec}"));
    let r = c.read_reply();
    assert_eq!(r.lines, ["421 Active data channel timed out."]);
    assert!(
        start.elapsed() >= Duration::from_millis(350),
        "{:?}",
        start.elapsed()
    );
    // The session carries on.
    c.cmd("NOOP", 200);
}
