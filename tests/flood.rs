//! Flood limits: bans for addresses that keep failing to log in (across sessions, with a
//! capped table that empties itself on the heap) and the per-session command rate.
//!
//! Clients come from several loopback addresses (127.0.0.2, 127.0.0.3, ...) to stand for
//! different hosts.

mod util;

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream};
use std::os::fd::FromRawFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use util::{Client, TestServer};

/// Connects to `to` from the loopback address `from`.
fn connect_from(from: Ipv4Addr, to: SocketAddr) -> TcpStream {
    // SAFETY: plain socket calls on a descriptor this function owns until it hands it to
    // TcpStream; the sockaddr structures are locals of the right size.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0);
        let stream = TcpStream::from_raw_fd(fd);
        let sa = |a: SocketAddrV4| libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: a.port().to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from(*a.ip()).to_be(),
            },
            sin_zero: [0; 8],
        };
        let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        let local = sa(SocketAddrV4::new(from, 0));
        assert_eq!(
            libc::bind(fd, (&local as *const libc::sockaddr_in).cast(), len),
            0,
            "bind {from}: {}",
            std::io::Error::last_os_error()
        );
        let SocketAddr::V4(to) = to else {
            panic!("IPv4 server expected")
        };
        let remote = sa(to);
        assert_eq!(
            libc::connect(fd, (&remote as *const libc::sockaddr_in).cast(), len),
            0,
            "connect: {}",
            std::io::Error::last_os_error()
        );
        stream
    }
}

fn client_from(from: Ipv4Addr, s: &TestServer) -> Client {
    Client::from_stream(connect_from(from, s.addr))
}

fn fail_login(c: &mut Client) {
    c.cmd("USER user", 331);
    c.cmd("PASS wrong", 530);
}

/// Publishes the size of the server's flood table every 20 ms.
fn watch_table(server: &mut ftpdlib::FtpServer) -> Arc<AtomicUsize> {
    let len = Arc::new(AtomicUsize::new(usize::MAX));
    let out = Arc::clone(&len);
    server.call_every(Duration::from_millis(20), move |s| {
        out.store(s.flood_table_len(), Ordering::SeqCst)
    });
    len
}

#[test]
fn failing_address_is_banned_across_sessions_then_let_back() {
    let table = Arc::new(std::sync::Mutex::new(None));
    let t2 = Arc::clone(&table);
    let s = TestServer::start_with(move |c, server| {
        c.flood.max_failed_logins = 3;
        c.flood.failed_login_window = Duration::from_secs(10);
        c.flood.ban_duration = Duration::from_millis(800);
        *t2.lock().unwrap() = Some(watch_table(server));
    });
    let table = table.lock().unwrap().take().unwrap();
    let bad = Ipv4Addr::new(127, 0, 0, 2);
    let good = Ipv4Addr::new(127, 0, 0, 3);
    // Two failures in one session, the third in another: the count is per address.
    let mut c = client_from(bad, &s);
    c.expect(220);
    fail_login(&mut c);
    fail_login(&mut c);
    drop(c);
    let mut c = client_from(bad, &s);
    c.expect(220);
    fail_login(&mut c);

    let mut refused = client_from(bad, &s);
    let r = refused.read_reply();
    assert_eq!(r.lines, ["421 Too many failed logins; try again later."]);
    assert!(refused.closed_by_server());

    // Other addresses are not affected.
    let mut other = client_from(good, &s);
    other.expect(220);
    other.login("user", "pass");

    // The ban ends, and the table forgets the address on its own. A reading taken before
    // the failures (the watch ticks every 20 ms, the steps above can take less) must not
    // count: wait for a reading made from now on.
    table.store(usize::MAX, Ordering::SeqCst);
    assert!(util::wait_until(Duration::from_secs(5), || {
        table.load(Ordering::SeqCst) == 0
    }));
    let mut back = client_from(bad, &s);
    back.expect(220);
    back.login("user", "pass");
}

#[test]
fn ban_table_is_capped() {
    let table = Arc::new(std::sync::Mutex::new(None));
    let t2 = Arc::clone(&table);
    let s = TestServer::start_with(move |c, server| {
        c.max_login_attempts = 100;
        c.flood.max_failed_logins = 2;
        c.flood.failed_login_window = Duration::from_secs(30);
        c.flood.ban_duration = Duration::from_secs(30);
        c.flood.max_tracked = 3;
        *t2.lock().unwrap() = Some(watch_table(server));
    });
    let table = table.lock().unwrap().take().unwrap();
    // Ten addresses fail once each: the table never holds more than three.
    for i in 0..10u8 {
        let mut c = client_from(Ipv4Addr::new(127, 0, 1, 10 + i), &s);
        c.expect(220);
        fail_login(&mut c);
        c.cmd("NOOP", 200);
        std::thread::sleep(Duration::from_millis(30));
        let n = table.load(Ordering::SeqCst);
        assert!(n <= 3 || n == usize::MAX, "table holds {n}");
    }
    assert!(util::wait_until(Duration::from_secs(2), || {
        table.load(Ordering::SeqCst) == 3
    }));
    // The first address was pushed out, so its next failure counts as its first.
    let first = Ipv4Addr::new(127, 0, 1, 10);
    let mut c = client_from(first, &s);
    c.expect(220);
    fail_login(&mut c);
    let mut again = client_from(first, &s);
    again.expect(220);
    // The second failure within the window bans it.
    fail_login(&mut again);
    let mut refused = client_from(first, &s);
    assert_eq!(refused.read_reply().code, 421);
}

#[test]
fn bans_are_off_by_default() {
    let s = TestServer::start();
    for _ in 0..4 {
        let mut c = s.client();
        fail_login(&mut c);
        fail_login(&mut c);
    }
    s.login("user");
}

#[test]
fn command_flood_closes_the_session() {
    let s = TestServer::start_with(|c, _| c.flood.max_commands_per_sec = 20);
    let mut c = s.login("user");
    // Under the rate: fine, second after second.
    for _ in 0..2 {
        std::thread::sleep(Duration::from_millis(1050));
        for _ in 0..15 {
            c.cmd("NOOP", 200);
        }
    }
    // Fifty commands in one write: twenty answered, then 421 and the close.
    std::thread::sleep(Duration::from_millis(1050));
    c.send_raw("NOOP\r\n".repeat(50).as_bytes());
    for _ in 0..20 {
        c.expect(200);
    }
    let r = c.read_reply();
    assert_eq!(r.lines, ["421 Too many commands per second."]);
    assert!(c.closed_by_server());
    // Other sessions are not affected.
    s.login("user").cmd("NOOP", 200);
}

/// Sessions opened before a ban cannot go on guessing: once the address is banned, a
/// PASS on any of them, right or wrong, gets the ban's 421 without a password check and
/// the session closes. Another address is not affected.
#[test]
fn a_ban_stops_the_sessions_already_open_from_guessing() {
    let s = TestServer::start_with(|c, _| {
        c.max_login_attempts = 100;
        c.flood.max_failed_logins = 3;
        c.flood.failed_login_window = Duration::from_secs(30);
        c.flood.ban_duration = Duration::from_secs(30);
    });
    let bad = Ipv4Addr::new(127, 0, 0, 4);
    // Ten sessions open first, as someone guessing would.
    let mut open: Vec<Client> = (0..10)
        .map(|_| {
            let mut c = client_from(bad, &s);
            c.expect(220);
            c
        })
        .collect();
    for c in open.iter_mut().take(3) {
        fail_login(c);
    }
    // Banned now: the right password on an open session is not even checked.
    for c in open.iter_mut().skip(3) {
        c.cmd("USER user", 331);
        let r = c.cmd("PASS pass", 421);
        assert_eq!(r.lines, ["421 Too many failed logins; try again later."]);
        assert!(c.closed_by_server());
    }
    let mut other = client_from(Ipv4Addr::new(127, 0, 0, 5), &s);
    other.expect(220);
    other.login("user", "pass");
}
