//! The jail, the data-connection checks of RFC 2577, connection limits, and hostile or
//! broken clients. Foreign addresses are other loopback addresses (127.0.0.2), so no
//! traffic leaves the machine even if a check failed.

mod util;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use util::{random_bytes, TempDir, TestServer};

#[test]
fn traversal_stays_in_the_root() {
    let s = TestServer::start();
    std::fs::write(s.root.join("inside"), b"ok").unwrap();
    let mut c = s.login("user");
    assert_eq!(
        c.cmd("CWD ../..", 250).lines,
        ["250 \"/\" is the current directory."]
    );
    assert_eq!(
        c.cmd("CWD /../../..", 250).lines,
        ["250 \"/\" is the current directory."]
    );
    c.cmd("RETR ../../etc/passwd", 550);
    c.cmd("SIZE ../../../../etc/passwd", 550);
    c.cmd("MDTM /../etc/passwd", 550);
    // ".." collapses inside the root: this is /inside.
    c.cmd("SIZE ../../inside", 213);
}

#[test]
fn symlinks_out_of_the_root_are_closed() {
    let s = TestServer::start();
    let outside = TempDir::new("outside");
    std::fs::write(outside.join("secret"), b"secret").unwrap();
    std::os::unix::fs::symlink("/etc", s.root.join("etc")).unwrap();
    std::os::unix::fs::symlink(outside.path(), s.root.join("out")).unwrap();
    std::os::unix::fs::symlink(outside.join("secret"), s.root.join("secret-link")).unwrap();
    let mut c = s.login("user");
    // An absolute link resolves inside the root, as under chroot: "etc" -> "/etc" is the
    // link itself again (a loop), never the machine's /etc.
    c.cmd("CWD etc", 550);
    c.cmd("PWD", 257);
    c.cmd("RETR etc/passwd", 550);
    c.cmd("RETR secret-link", 550);
    c.cmd("SIZE out/secret", 550);
    c.cmd("LIST out", 550);
    c.cmd("NLST etc", 550);
    c.cmd("STAT out", 550);
    c.cmd("STOR out/new", 550);
    c.cmd("MKD out/newdir", 550);
    c.cmd("DELE out/secret", 550);
    c.cmd("RNFR out/secret", 550);
    c.cmd("RNFR inside-nothing", 550);
    std::fs::write(s.root.join("mine"), b"m").unwrap();
    c.cmd("RNFR mine", 350);
    c.cmd("RNTO out/moved", 550);
    c.cmd("CWD out", 550);
    assert_eq!(
        std::fs::read_dir(outside.path()).unwrap().count(),
        1,
        "nothing written outside"
    );
    assert!(outside.join("secret").exists());
    // The listing of the root shows the links but does not follow them.
    let list = String::from_utf8(c.retr("LIST")).unwrap();
    assert!(list.contains("etc -> /etc"), "{list}");
}

#[test]
fn foreign_and_privileged_port_refused_without_connecting() {
    let s = TestServer::start();
    let mut c = s.login("user");
    let trap = TcpListener::bind("127.0.0.2:0").unwrap();
    trap.set_nonblocking(true).unwrap();
    let port = trap.local_addr().unwrap().port();
    let r = c.cmd(format!("PORT 127,0,0,2,{},{}", port >> 8, port & 0xff), 501);
    assert!(r.text().contains("foreign"), "{:?}", r.lines);
    c.cmd(format!("EPRT |1|127.0.0.2|{port}|"), 501);
    c.cmd("PORT 127,0,0,1,0,21", 501);
    c.cmd("EPRT |1|127.0.0.1|1023|", 501);
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        trap.accept().is_err(),
        "the server connected to a foreign address"
    );
}

/// A stranger that reaches the passive port first is dropped, and the client hears nothing
/// of it: a reply it did not ask for would be taken as the answer to its next command
/// (here RETR), and every later reply would be one off.
#[test]
fn passive_connection_from_a_foreign_address_is_refused() {
    let s = TestServer::start();
    std::fs::write(s.root.join("f"), b"payload").unwrap();
    let mut c = s.login("user");
    let addr = c.pasv();
    let mut intruder = util::connect_from([127, 0, 0, 2], addr);
    let mut buf = [0u8; 16];
    intruder
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    assert!(
        matches!(intruder.read(&mut buf), Ok(0) | Err(_)),
        "intruder got data"
    );
    // The listener is still there for the real client.
    let mut data = TcpStream::connect(addr).unwrap();
    c.cmd("RETR f", 125);
    let mut got = Vec::new();
    data.read_to_end(&mut got).unwrap();
    c.expect(226);
    assert_eq!(got, b"payload");
}

#[test]
fn max_cons_is_enforced() {
    let s = TestServer::start_with(|_, srv| srv.max_cons = 2);
    let a = s.client();
    let mut b = s.client();
    let mut third = util::Client::connect_raw(s.addr);
    let r = third.read_reply();
    assert_eq!(r.code, 421, "{:?}", r.lines);
    assert!(third.closed_by_server());
    b.cmd("QUIT", 221);
    assert!(b.closed_by_server());
    // The slot is free again once the server saw the close.
    assert!(util::wait_until(Duration::from_secs(5), || {
        let mut c = util::Client::connect_raw(s.addr);
        c.read_reply().code == 220
    }));
    drop(a);
}

#[test]
fn max_cons_per_ip_is_enforced() {
    let s = TestServer::start_with(|_, srv| srv.max_cons_per_ip = 1);
    let _a = s.client();
    let mut second = util::Client::connect_raw(s.addr);
    let r = second.read_reply();
    assert_eq!(r.code, 421);
    assert!(r.text().contains("same IP"), "{:?}", r.lines);
}

#[test]
fn over_long_lines_are_refused_and_the_session_goes_on() {
    let s = TestServer::start();
    let mut c = s.client();
    let mut long = vec![b'A'; 3000];
    long.extend_from_slice(b"\r\n");
    c.send_raw(&long);
    assert_eq!(c.expect(500).lines, ["500 Command too long."]);
    c.cmd("NOOP", 200);
    // A long line split over writes, without CRLF for a while.
    c.send_raw(&vec![b'B'; 2500]);
    assert_eq!(c.expect(500).lines, ["500 Command too long."]);
    c.send_raw(&vec![b'B'; 2500]);
    c.send_raw(b"\r\nNOOP\r\n");
    c.expect(200);
    // Exactly at the limit is fine: 2046 bytes plus CRLF.
    let mut line = b"NOOP ".to_vec();
    line.resize(2046, b'x');
    line.extend_from_slice(b"\r\n");
    c.send_raw(&line);
    c.expect(501);
    c.cmd("NOOP", 200);
}

/// A client that stops in the middle of an over-long line must not hold the server: the
/// rest of its line is being dropped, and until its end comes nothing is due.
#[test]
fn a_client_stopped_inside_a_long_line_holds_nobody() {
    let s = TestServer::start();
    let mut a = s.client();
    a.send_raw(&vec![b'B'; 3000]);
    assert_eq!(a.expect(500).lines, ["500 Command too long."]);
    // A waits mid-line; B is served meanwhile, promptly.
    let mut b = s.client();
    b.stream
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    for _ in 0..3 {
        b.cmd("NOOP", 200);
    }
    a.send_raw(b"BBB\r\nNOOP\r\n");
    a.expect(200);
}

#[test]
fn binary_garbage_gets_replies_not_a_crash() {
    let s = TestServer::start();
    let mut c = s.client();
    c.send_raw(b"\x00\x01\x02\xff\xfe\r\n");
    c.expect(500);
    c.send_raw(b"USER \xc3\x28\xa0\xa1\r\n");
    c.expect(331);
    c.send_raw(b"\r\n");
    c.expect(500);
    c.cmd("NOOP", 200);
}

#[test]
fn client_that_vanishes_mid_transfer_does_not_hurt_the_server() {
    let s = TestServer::start();
    let big = random_bytes(16 << 20, 7);
    std::fs::write(s.root.join("big"), &big).unwrap();
    for _ in 0..3 {
        let mut c = s.login("user");
        let addr = c.pasv();
        let mut data = TcpStream::connect(addr).unwrap();
        c.cmd("RETR big", 125);
        let mut buf = vec![0u8; 65536];
        data.read_exact(&mut buf).unwrap();
        drop(data);
        drop(c);
    }
    // An upload cut short by dropping the control connection is aborted: what reached the
    // file is an exact prefix of what was sent, and the server stays up.
    let mut c = s.login("user");
    let addr = c.pasv();
    let mut data = TcpStream::connect(addr).unwrap();
    c.cmd("STOR partial", 125);
    data.write_all(&big[..100_000]).unwrap();
    drop(c);
    drop(data);
    let mut c = s.login("user");
    util::assert_same(&c.retr("RETR big"), &big);
    let partial = std::fs::read(s.root.join("partial")).unwrap();
    assert!(partial.len() <= 100_000);
    util::assert_same(&partial, &big[..partial.len()]);
}

#[test]
fn data_connection_closed_during_retr_gives_426() {
    let s = TestServer::start();
    std::fs::write(s.root.join("big"), random_bytes(32 << 20, 3)).unwrap();
    let mut c = s.login("user");
    let addr = c.pasv();
    let mut data = TcpStream::connect(addr).unwrap();
    c.cmd("RETR big", 125);
    let mut buf = vec![0u8; 4096];
    data.read_exact(&mut buf).unwrap();
    drop(data);
    let r = c.read_reply();
    assert_eq!(r.code, 426, "{:?}", r.lines);
    c.cmd("NOOP", 200);
}
