//! Regressions: every input that once broke ftpdlib, minimal, over real sockets; each test
//! names where it came from (a fuzz target of fuzz/, or the attack class and the server it
//! hit). docs/security.md lists the classes. One file per origin: fuzz.rs (the fuzz
//! targets' findings), attacks.rs and tls.rs (attack classes), review.rs (found by review).

#[path = "../util/mod.rs"]
mod util;

mod attacks;
mod fuzz;
mod review;
#[cfg(feature = "tls")]
mod tls;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use util::{Client, TestServer};

/// Reads from `s` until `want` bytes came or 5 s passed.
fn read_bytes(s: &mut TcpStream, want: usize) -> Vec<u8> {
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while got.len() < want {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    got
}

/// A data connection's whole content.
fn fetch(c: &mut Client, line: &str) -> Vec<u8> {
    let addr = c.pasv();
    let mut data = TcpStream::connect(addr).unwrap();
    c.send(line);
    let r = c.read_reply();
    assert!(matches!(r.code, 125 | 150), "{line}: {:?}", r.lines);
    let mut got = Vec::new();
    data.read_to_end(&mut got).unwrap();
    c.expect(226);
    got
}
