//! Commands pipelined in one write behind PASV/EPSV, and a transfer held across REIN or a
//! new USER: replies in order, no listener left without an owner, no transfer run with the
//! next user's rights. Each test says what pyftpdlib 2.2 answers to the same bytes.

mod util;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use util::*;

fn pasv_addr(r: &Reply) -> SocketAddr {
    let text = &r.lines[0];
    let inner = &text[text.find('(').unwrap() + 1..text.find(')').unwrap()];
    let n: Vec<u16> = inner.split(',').map(|x| x.parse().unwrap()).collect();
    SocketAddr::from((
        [n[0] as u8, n[1] as u8, n[2] as u8, n[3] as u8],
        n[4] * 256 + n[5],
    ))
}

/// Commands pipelined after PASV/EPSV in one write are answered before the 227/229:
/// `PASV\r\nTYPE I\r\n` comes back `200`, `227`. A client reading replies in order takes
/// the 200 for PASV's. `PASV\r\nQUIT\r\n` even sends the 227 after the 221.
/// pyftpdlib: 227 then 200; 227 then 221.
#[test]
fn replies_to_commands_pipelined_after_pasv_come_in_order() {
    let s = TestServer::start();
    for (second, code) in [("TYPE I", 200), ("NOOP", 200), ("MODE S", 200)] {
        let mut c = s.login("user");
        c.send_raw(format!("PASV\r\n{second}\r\n").as_bytes());
        let first = c.read_reply();
        assert_eq!(
            first.code, 227,
            "PASV then {second}: first reply {:?}",
            first.lines
        );
        c.expect(code);
    }
    let mut c = s.login("user");
    c.send_raw(b"EPSV\r\nQUIT\r\n");
    let first = c.read_reply();
    assert_eq!(
        first.code, 229,
        "EPSV then QUIT: first reply {:?}",
        first.lines
    );
    c.expect(221);
}

/// `PASV\r\nPORT h,p\r\n` in one write: the PORT is never answered (the data connection
/// is made, but the 200 is not sent), and the session's next reply is a 421 from the
/// forgotten passive listener 30 s later. pyftpdlib: 227, then 200.
#[test]
fn port_pipelined_after_pasv_is_answered() {
    let s = TestServer::start();
    let (listener, port_arg) = active_listener();
    let mut c = s.login("user");
    c.stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    c.send_raw(format!("PASV\r\nPORT {port_arg}\r\n").as_bytes());
    c.expect(227);
    let _data = listener.accept().unwrap();
    c.expect(200);
    c.cmd("NOOP", 200);
}

/// `PASV\r\nPASV\r\n` in one write leaves the first passive listener open and owned by no
/// one until its accept timeout (30 s): a client (one session, no login limits) can hold
/// thousands of sockets and passive ports this way, for every other user's PASV to fail.
/// The first listener should be closed once the second PASV replaces it, as pyftpdlib does
/// (connection refused).
#[test]
fn a_pasv_replaced_by_a_pipelined_pasv_closes_its_listener() {
    let s = TestServer::start();
    let mut c = s.login("user");
    c.send_raw(b"PASV\r\nPASV\r\n");
    let first = pasv_addr(&c.expect(227));
    c.expect(227);
    c.cmd("NOOP", 200);
    match TcpStream::connect(first) {
        Err(_) => {}
        Ok(mut d) => {
            // Accepted by the orphan (or closed at once): it must not stay open.
            d.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            let mut buf = [0u8; 1];
            let start = Instant::now();
            match d.read(&mut buf) {
                Ok(0) => {}
                Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
                other => panic!(
                    "the replaced listener still accepts and holds connections ({other:?} after {:?})",
                    start.elapsed()
                ),
            }
        }
    }
}

/// A transfer held for want of PASV/PORT survives REIN (and a new USER): after logging in
/// again as the read-only anonymous user, a PASV starts the held STOR and anonymous's data
/// is written to the file the first user opened, with a 226. pyftpdlib's flush_account
/// drops the queued transfer (`_in_dtp_queue = None`): nothing is written.
#[test]
fn a_held_transfer_does_not_survive_rein_or_a_new_login() {
    let s = TestServer::start();
    let mut c = s.login("user");
    c.cmd("STOR by-user", 150);
    // The STOR had its 150, so it gets its final reply (pyftpdlib sends none).
    c.cmd("REIN", 426);
    c.expect(220);
    c.login("anonymous", "pass");
    let mut data = TcpStream::connect(c.pasv()).unwrap();
    let _ = data.write_all(b"written as anonymous");
    drop(data);
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        !s.root.join("by-user").exists()
            || std::fs::read(s.root.join("by-user")).unwrap().is_empty(),
        "anonymous wrote through the previous user's held STOR"
    );
    // The same with USER instead of REIN.
    let mut c = s.login("user");
    c.cmd("STOR by-user-2", 150);
    c.cmd("USER anonymous", 426);
    c.expect(331);
    c.cmd("PASS x", 230);
    let mut data = TcpStream::connect(c.pasv()).unwrap();
    let _ = data.write_all(b"written as anonymous");
    drop(data);
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        !s.root.join("by-user-2").exists()
            || std::fs::read(s.root.join("by-user-2")).unwrap().is_empty(),
        "anonymous wrote through the previous user's held STOR"
    );
}
