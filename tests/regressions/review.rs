//! Found by reviewing the daemon as an admin and an attacker would.

use super::*;

// ---- found by review ----------------------------------------------------------------------

/// Review finding: `Instant + Duration` panics on overflow, so a configured duration too
/// long to add (the daemon's `--timeout 9223372036854775807`, `Duration::MAX` here) killed
/// the server at the first connection, login failure or ban. Every timeout at
/// `Duration::MAX` now means "never": the server connects, logs in, lists, transfers both
/// ways, passive and active, and bans after failed logins, all without panicking.
#[test]
fn review_duration_max_timeouts_never_panic() {
    let s = TestServer::start_with(|c, server| {
        c.timeout = Some(Duration::MAX);
        c.login_timeout = Some(Duration::MAX);
        c.dtp.timeout = Some(Duration::MAX);
        c.dtp.accept_timeout = Duration::MAX;
        c.dtp.connect_timeout = Duration::MAX;
        c.flood.max_failed_logins = 2;
        c.flood.failed_login_window = Duration::MAX;
        c.flood.ban_duration = Duration::MAX;
        server.call_later(Duration::MAX, |_| {});
        server.call_every(Duration::MAX, |_| {});
    });
    std::fs::write(s.root.join("f.txt"), b"hello\n").unwrap();
    let mut c = s.login("user");
    assert_eq!(fetch(&mut c, "RETR f.txt"), b"hello\n");
    let listing = fetch(&mut c, "NLST");
    assert!(String::from_utf8_lossy(&listing).contains("f.txt"));
    c.stor("STOR up.txt", b"uploaded\n");
    assert_eq!(std::fs::read(s.root.join("up.txt")).unwrap(), b"uploaded\n");
    // Active mode: the connect timeout is on the timer heap too.
    let (l, port) = util::active_listener();
    c.cmd(format!("PORT {port}"), 200);
    c.send("RETR f.txt");
    let (mut data, _) = l.accept().unwrap();
    let mut got = Vec::new();
    data.read_to_end(&mut got).unwrap();
    assert_eq!(got, b"hello\n");
    assert!(matches!(c.read_reply().code, 125 | 150));
    c.expect(226);

    // Two failures ban the address for Duration::MAX: refused, and the server lives on.
    for _ in 0..2 {
        let mut bad = s.client();
        bad.cmd("USER user", 331);
        bad.cmd("PASS wrong", 530);
    }
    let mut banned = Client::connect_raw(s.addr);
    assert_eq!(banned.read_reply().code, 421);
    c.cmd("NOOP", 200);
    c.cmd("QUIT", 221);
}

/// Review finding, the failed-login delay: at `Duration::MAX` the 530 is held "forever" (the
/// client waits, as it would for any long delay) and the server goes on serving others.
#[test]
fn review_duration_max_failed_login_delay_holds_the_reply() {
    let s = TestServer::start_with(|c, _| {
        c.auth_failed_timeout = Duration::MAX;
        c.timeout = Some(Duration::MAX);
    });
    let mut bad = s.client();
    bad.cmd("USER user", 331);
    bad.send("PASS wrong");
    bad.stream
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut buf = [0u8; 64];
    let held = bad.stream.read(&mut buf);
    assert!(
        matches!(&held, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock
            || e.kind() == std::io::ErrorKind::TimedOut),
        "{held:?}"
    );
    let mut c = s.login("user");
    c.cmd("NOOP", 200);
    c.cmd("QUIT", 221);
}

/// Review finding, the PROXY header timeout: at `Duration::MAX` a connection still gets its
/// session once its header comes, and a silent one does not hold up the next.
#[cfg(feature = "proxy-protocol")]
#[test]
fn review_duration_max_proxy_header_timeout() {
    let s = TestServer::start_with(|c, _| {
        c.timeout = Some(Duration::MAX);
        c.proxy_protocol =
            Some(ftpdlib::proxy::ProxyProtocol::default().with_header_timeout(Duration::MAX));
    });
    let _silent = TcpStream::connect(s.addr).unwrap();
    let mut c = Client::connect_raw(s.addr);
    c.send_raw(b"PROXY TCP4 192.0.2.7 127.0.0.1 40000 21\r\n");
    c.expect(220);
    c.login("user", "pass");
    c.cmd("NOOP", 200);
}

/// Review finding, the TLS handshake timeout: at `Duration::MAX` (with the data timeouts)
/// a client that says AUTH TLS and then nothing does not crash the server, and curl still
/// logs in and downloads over FTPS, control and data protected.
#[cfg(feature = "tls")]
#[test]
fn review_duration_max_tls_handshake_timeout() {
    if !util::require("curl") {
        return;
    }
    let s = TestServer::start_with(|c, _| {
        let data = format!("{}/tests/data", env!("CARGO_MANIFEST_DIR"));
        let tls = ftpdlib::TlsConfig::from_pem_files(
            format!("{data}/cert.pem"),
            format!("{data}/key.pem"),
        )
        .expect("test certificate");
        c.tls = Some(tls.with_handshake_timeout(Duration::MAX));
        c.timeout = Some(Duration::MAX);
        c.dtp.timeout = Some(Duration::MAX);
        c.dtp.accept_timeout = Duration::MAX;
    });
    std::fs::write(s.root.join("f.txt"), b"over tls\n").unwrap();
    let mut stalled = s.client();
    stalled.cmd("AUTH TLS", 234);
    let out = util::run(util::curl().args(["--ssl-reqd", "--insecure", &s.url("user", "f.txt")]));
    assert_eq!(out.stdout, b"over tls\n");
    let mut c = s.login("user");
    c.cmd("NOOP", 200);
}
