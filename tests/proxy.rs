//! The PROXY protocol (HAProxy's versions 1 and 2) on control connections, with raw headers
//! over loopback: the client the header names is the one the server serves (hooks,
//! `max_cons_per_ip`, bans, the PORT and passive-connection address checks); headers split
//! across segments or followed by a pipelined USER work; a missing, malformed, late or
//! untrusted header closes the connection with nothing sent; `UNKNOWN` and `LOCAL` keep
//! the socket's address.
//!
//! Needs the library's `proxy-protocol` feature, which the workspace's `cargo test` turns on
//! (the daemon crate depends on it); daemon/tests/proxy.rs runs real HAProxy in front.

mod util;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ftpdlib::proxy::{ProxyNetwork, ProxyProtocol};
use ftpdlib::{Config, FtpServer, Hooks, SessionInfo};
use util::{active_listener, Client, TestServer};

/// Records the peer of every session that starts.
#[derive(Default)]
struct Peers(Mutex<Vec<SocketAddr>>);

impl Hooks for Peers {
    fn on_connect(&self, s: SessionInfo<'_>) {
        self.0.lock().unwrap().push(s.peer);
    }
}

impl Peers {
    fn last(&self) -> Option<SocketAddr> {
        self.0.lock().unwrap().last().copied()
    }
}

/// A server that requires the header, recording session peers, adjusted by `tweak`.
fn start(
    tweak: impl FnOnce(&mut ProxyProtocol, &mut Config, &mut FtpServer) + Send + 'static,
) -> (TestServer, Arc<Peers>) {
    let peers = Arc::new(Peers::default());
    let hooks = Arc::clone(&peers);
    let s = TestServer::start_with(move |config, server| {
        let mut proxy = ProxyProtocol::default();
        config.hooks = hooks;
        tweak(&mut proxy, config, server);
        config.proxy_protocol = Some(proxy);
    });
    (s, peers)
}

fn v1(client: &str, port: u16) -> Vec<u8> {
    let family = if client.contains(':') { "TCP6" } else { "TCP4" };
    let server = if client.contains(':') {
        "::1"
    } else {
        "127.0.0.1"
    };
    format!("PROXY {family} {client} {server} {port} 21\r\n").into_bytes()
}

/// A version 2 header: PROXY command for `client`, or LOCAL when `None`.
fn v2(client: Option<SocketAddr>) -> Vec<u8> {
    let mut h = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    let mut body = Vec::new();
    match client {
        None => h.extend_from_slice(&[0x20, 0x00]),
        Some(SocketAddr::V4(a)) => {
            h.extend_from_slice(&[0x21, 0x11]);
            body.extend_from_slice(&a.ip().octets());
            body.extend_from_slice(&[127, 0, 0, 1]);
            body.extend_from_slice(&a.port().to_be_bytes());
            body.extend_from_slice(&21u16.to_be_bytes());
        }
        Some(SocketAddr::V6(a)) => {
            h.extend_from_slice(&[0x21, 0x21]);
            body.extend_from_slice(&a.ip().octets());
            body.extend_from_slice(&std::net::Ipv6Addr::LOCALHOST.octets());
            body.extend_from_slice(&a.port().to_be_bytes());
            body.extend_from_slice(&21u16.to_be_bytes());
        }
    }
    // A TLV (PP2_TYPE_NOOP) after the addresses, as proxies may send: part of the header.
    body.extend_from_slice(&[0x04, 0x00, 0x01, 0x00]);
    h.extend_from_slice(&(body.len() as u16).to_be_bytes());
    h.extend_from_slice(&body);
    h
}

/// Connects, sends `header` and expects the greeting.
fn proxied(s: &TestServer, header: &[u8]) -> Client {
    let mut c = Client::connect_raw(s.addr);
    c.send_raw(header);
    c.expect(220);
    c
}

/// Reads until the server closes; returns what it sent meanwhile and how long it took.
fn read_to_close(stream: &mut TcpStream) -> (Vec<u8>, Duration) {
    let start = Instant::now();
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 512];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("the server did not close the connection: {e}"),
        }
    }
    (got, start.elapsed())
}

/// The connection is closed without a byte: no greeting, no 421.
fn assert_closed_silently(mut stream: TcpStream) {
    let (got, _) = read_to_close(&mut stream);
    assert!(
        got.is_empty(),
        "expected a silent close, got {:?}",
        String::from_utf8_lossy(&got)
    );
}

fn sock(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

// ---- the address in the header ----------------------------------------------------

#[test]
fn v1_header_names_the_client() {
    let (s, peers) = start(|_, _, _| {});
    let mut c = proxied(&s, &v1("192.0.2.7", 40000));
    assert_eq!(peers.last(), Some(sock("192.0.2.7:40000")));
    c.login("user", "pass");
    c.cmd("NOOP", 200);

    let mut c = proxied(&s, &v1("2001:db8::7", 40001));
    assert_eq!(peers.last(), Some(sock("[2001:db8::7]:40001")));
    c.login("user", "pass");
}

#[test]
fn v2_header_names_the_client() {
    let (s, peers) = start(|_, _, _| {});
    let mut c = proxied(&s, &v2(Some(sock("198.51.100.20:50000"))));
    assert_eq!(peers.last(), Some(sock("198.51.100.20:50000")));
    c.login("user", "pass");

    let mut c = proxied(&s, &v2(Some(sock("[2001:db8::20]:50001"))));
    assert_eq!(peers.last(), Some(sock("[2001:db8::20]:50001")));
    c.login("user", "pass");
}

#[test]
fn unknown_and_local_keep_the_socket_address() {
    let (s, peers) = start(|_, _, _| {});
    for header in [b"PROXY UNKNOWN\r\n".to_vec(), v2(None)] {
        let mut c = proxied(&s, &header);
        let own = c.stream.local_addr().unwrap();
        assert_eq!(peers.last(), Some(own), "{header:?}");
        c.login("user", "pass");
    }
}

// ---- reading the header -----------------------------------------------------------

#[test]
fn a_header_split_across_segments_is_put_together() {
    let (s, peers) = start(|_, _, _| {});
    for header in [v1("192.0.2.31", 1031), v2(Some(sock("192.0.2.32:1032")))] {
        let mut c = Client::connect_raw(s.addr);
        c.stream.set_nodelay(true).unwrap();
        // Cut at every byte, with a pause between: each piece is its own segment and read.
        for b in &header {
            c.send_raw(std::slice::from_ref(b));
            std::thread::sleep(Duration::from_millis(5));
        }
        c.expect(220);
        c.login("user", "pass");
    }
    let seen = peers.0.lock().unwrap().clone();
    assert_eq!(seen, [sock("192.0.2.31:1031"), sock("192.0.2.32:1032")]);
}

#[test]
fn commands_pipelined_after_the_header_are_kept() {
    let (s, peers) = start(|_, _, _| {});
    for header in [v1("192.0.2.41", 1041), v2(Some(sock("192.0.2.42:1042")))] {
        let mut c = Client::connect_raw(s.addr);
        let mut all = header.clone();
        all.extend_from_slice(b"USER user\r\nPASS pass\r\nPWD\r\n");
        c.send_raw(&all);
        c.expect(220);
        c.expect(331);
        c.expect(230);
        c.expect(257);
    }
    let seen = peers.0.lock().unwrap().clone();
    assert_eq!(seen, [sock("192.0.2.41:1041"), sock("192.0.2.42:1042")]);
}

#[test]
fn a_missing_or_malformed_header_closes_with_nothing_sent() {
    let (s, peers) = start(|_, _, _| {});
    for bad in [
        &b"USER anonymous\r\n"[..],
        b"PROXY TCP4 192.0.2.1\r\n",
        b"PROXY TCP4 192.0.2.1 127.0.0.1 99999 21\r\n",
        b"PROXY TCP6 192.0.2.1 127.0.0.1 1 21\r\n",
        b"PROXY TCP4 192.0.2.1 127.0.0.1 1 21\n",
        b"\r\n\r\n\0\r\nQUIT\n\x31\x11\x00\x0c",
        b"\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x04\x01\x02\x03\x04",
        &[b'A'; 200],
    ] {
        let mut c = TcpStream::connect(s.addr).unwrap();
        c.write_all(bad).unwrap();
        assert_closed_silently(c);
    }
    assert!(peers.0.lock().unwrap().is_empty(), "no session started");
    // The server serves proper headers meanwhile.
    proxied(&s, &v1("192.0.2.50", 1050)).login("user", "pass");
}

#[test]
fn a_late_header_is_cut_off_without_holding_up_others() {
    let (s, peers) = start(|p, _, _| p.header_timeout = Duration::from_millis(500));
    // Half a header, then silence; and a connection that sends nothing.
    let mut half = TcpStream::connect(s.addr).unwrap();
    half.write_all(b"PROXY TCP4 192.0.2.60 127.0").unwrap();
    let mut silent = TcpStream::connect(s.addr).unwrap();
    // Meanwhile the reactor serves everyone else.
    proxied(&s, &v1("192.0.2.61", 1061)).login("user", "pass");
    for stream in [&mut half, &mut silent] {
        let (got, took) = read_to_close(stream);
        assert!(got.is_empty(), "{:?}", String::from_utf8_lossy(&got));
        assert!(took < Duration::from_secs(5), "closed after {took:?}");
    }
    assert_eq!(peers.0.lock().unwrap().clone(), [sock("192.0.2.61:1061")]);
}

#[test]
fn an_untrusted_source_is_refused_before_its_header() {
    let (s, peers) = start(|p, _, _| p.trusted = vec![ProxyNetwork::parse("10.0.0.0/8").unwrap()]);
    let mut c = TcpStream::connect(s.addr).unwrap();
    c.write_all(&v1("192.0.2.70", 1070)).unwrap();
    assert_closed_silently(c);
    assert!(peers.0.lock().unwrap().is_empty());

    let (s, peers) = start(|p, _, _| p.trusted = vec![ProxyNetwork::parse("127.0.0.1").unwrap()]);
    proxied(&s, &v1("192.0.2.71", 1071)).login("user", "pass");
    assert_eq!(peers.last(), Some(sock("192.0.2.71:1071")));
}

// ---- limits and checks on the header's address --------------------------------------

#[test]
fn max_cons_per_ip_counts_the_header_address() {
    let (s, _) = start(|_, _, server| server.max_cons_per_ip = 1);
    // All from 127.0.0.1, but two clients by their headers.
    let _a = proxied(&s, &v1("192.0.2.80", 1080));
    let _b = proxied(&s, &v2(Some(sock("192.0.2.81:1081"))));
    let mut again = Client::connect_raw(s.addr);
    again.send_raw(&v1("192.0.2.80", 1082));
    let r = again.expect(421);
    assert!(r.text().contains("same IP"), "{r:?}");
}

#[test]
fn bans_fall_on_the_header_address() {
    let (s, _) = start(|_, config, _| {
        config.flood.max_failed_logins = 2;
        config.flood.ban_duration = Duration::from_secs(60);
    });
    let mut c = proxied(&s, &v1("192.0.2.90", 1090));
    c.cmd("USER user", 331);
    c.cmd("PASS wrong", 530);
    c.cmd("USER user", 331);
    c.cmd("PASS wrong", 530);
    drop(c);
    let mut banned = Client::connect_raw(s.addr);
    banned.send_raw(&v1("192.0.2.90", 1091));
    let r = banned.expect(421);
    assert!(r.text().contains("failed logins"), "{r:?}");
    // The proxy's own address, and other clients behind it, are not banned.
    proxied(&s, &v1("192.0.2.91", 1092)).login("user", "pass");
}

#[test]
fn data_connections_must_come_from_the_header_address() {
    let (s, _) = start(|_, _, _| {});
    // The client is 127.0.0.1 by its header: PORT to it and a passive connection from it
    // work.
    let mut c = proxied(&s, &v1("127.0.0.1", 1100));
    c.login("user", "pass");
    let (l, port) = active_listener();
    c.cmd(format!("PORT {port}"), 200);
    c.send("LIST");
    let (mut data, _) = l.accept().unwrap();
    // The server connected first: 125.
    c.expect(125);
    let mut listing = Vec::new();
    data.read_to_end(&mut listing).unwrap();
    c.expect(226);
    let addr = c.pasv();
    let mut data = TcpStream::connect(addr).unwrap();
    c.send("LIST");
    // Already connected: 125.
    c.expect(125);
    data.read_to_end(&mut listing).unwrap();
    c.expect(226);

    // Another client by its header: this host is a foreign address to PORT, and a
    // passive connection from here is someone else's.
    let mut c = proxied(&s, &v1("192.0.2.110", 1110));
    c.login("user", "pass");
    let (_l, port) = active_listener();
    c.cmd(format!("PORT {port}"), 501);
    let addr = c.pasv();
    // Dropped with nothing sent, and the client is told nothing (an unasked reply would
    // answer its next command): its next reply is NOOP's own.
    let mut intruder = TcpStream::connect(addr).unwrap();
    intruder
        .set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    let mut buf = [0u8; 8];
    assert!(
        matches!(intruder.read(&mut buf), Ok(0) | Err(_)),
        "the intruder got data"
    );
    c.cmd("NOOP", 200);
}

/// `ProxyProtocol::passive`: the proxies relay the passive ports too, so a connection to a
/// passive port from a proxy must open with a header naming the session's client. One
/// without a header in time, with a LOCAL header or with another client's is closed with
/// nothing sent and the port waits on; the client's own, with the start of its upload in
/// the same segment, is the data connection from the byte after the header.
#[test]
fn passive_connections_from_a_proxy_open_with_the_clients_header() {
    let (s, _) = start(|p, _, _| {
        p.passive = true;
        p.header_timeout = Duration::from_secs(1);
    });
    let mut c = proxied(&s, &v1("192.0.2.120", 1120));
    c.login("user", "pass");
    let addr = c.pasv();

    // No header: cut off at the header timeout.
    let (got, took) = read_to_close(&mut TcpStream::connect(addr).unwrap());
    assert!(got.is_empty(), "{got:?}");
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(10),
        "{took:?}"
    );
    // A health check's LOCAL header names no client; another client's header is a
    // stranger's.
    for header in [
        v2(None),
        v1("192.0.2.121", 1121),
        v2(Some(sock("192.0.2.122:1122"))),
    ] {
        let mut stranger = TcpStream::connect(addr).unwrap();
        stranger.write_all(&header).unwrap();
        assert_closed_silently(stranger);
    }
    // The session heard nothing of them: its next reply is NOOP's.
    c.cmd("NOOP", 200);

    c.send("STOR up.bin");
    c.expect(150);
    let mut data = TcpStream::connect(addr).unwrap();
    let mut segment = v2(Some(sock("192.0.2.120:40001")));
    segment.extend_from_slice(b"payload after the header");
    data.write_all(&segment).unwrap();
    drop(data);
    c.expect(226);
    assert_eq!(
        std::fs::read(s.root.join("up.bin")).unwrap(),
        b"payload after the header"
    );
}
