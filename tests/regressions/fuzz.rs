//! Inputs the fuzz targets of fuzz/ found, each minimal, over real sockets.

use super::*;

// ---- found by fuzz/ -----------------------------------------------------------------------

/// fuzz target `session`: a CR inside a line came back bare in the 500 that echoes the
/// verb. A lone CR now goes as CR NUL (RFC 854), so only CRLF ends a reply line.
#[test]
fn fuzz_session_a_lone_cr_echoed_goes_as_cr_nul() {
    let s = TestServer::start();
    let mut raw = TcpStream::connect(s.addr).unwrap();
    let greeting = read_bytes(&mut raw, 1);
    assert!(greeting.starts_with(b"220 "), "{greeting:?}");
    raw.write_all(b"C\r\x1d\r\n").unwrap();
    let want = b"500 Command \"C\r\0\x1d\" not understood.\r\n";
    assert_eq!(read_bytes(&mut raw, want.len()), want);
    raw.write_all(b"NOOP\r\n").unwrap();
    assert!(read_bytes(&mut raw, 5).starts_with(b"200 "));
}

/// fuzz target `listing`: a name with LF in it ended its LIST line early, so a local user
/// could forge directory entries in every client's view. CR and LF are listed as `?`.
#[test]
fn fuzz_listing_a_name_with_lf_cannot_forge_an_entry() {
    let s = TestServer::start();
    let forged = "x\n-rw-r--r--   1 root     root     999 Jan 01 00:00 fake\r";
    std::fs::write(s.root.join(forged), b"").unwrap();
    let mut c = s.login("user");
    c.cmd("TYPE I", 200);
    for (cmd, tail) in [
        (
            "LIST",
            "x?-rw-r--r--   1 root     root     999 Jan 01 00:00 fake?\r\n",
        ),
        (
            "NLST",
            "x?-rw-r--r--   1 root     root     999 Jan 01 00:00 fake?\r\n",
        ),
        (
            "MLSD",
            " x?-rw-r--r--   1 root     root     999 Jan 01 00:00 fake?\r\n",
        ),
    ] {
        let out = fetch(&mut c, cmd);
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text.matches("\r\n").count(), 1, "{cmd}: {text:?}");
        assert_eq!(text.matches('\n').count(), 1, "{cmd}: {text:?}");
        assert!(text.ends_with(tail), "{cmd}: {text:?}");
    }
}

/// fuzz target `session`: a stranger reaching the passive port first got the client an
/// unasked `425`, which the client took as the answer to its next command (RETR), putting
/// every later reply one off. Now the stranger is dropped and the client hears nothing.
#[test]
fn fuzz_session_a_stranger_on_the_passive_port_sends_the_client_nothing() {
    let s = TestServer::start();
    std::fs::write(s.root.join("f"), b"payload").unwrap();
    let mut c = s.login("user");
    let addr = c.pasv();
    // 127.0.0.2 is another host as far as the server knows.
    let mut stranger = util::connect_from([127, 0, 0, 2], addr);
    stranger
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut buf = [0u8; 8];
    assert!(
        matches!(stranger.read(&mut buf), Ok(0) | Err(_)),
        "the stranger got data"
    );
    let mut data = TcpStream::connect(addr).unwrap();
    c.cmd("RETR f", 125);
    let mut got = Vec::new();
    data.read_to_end(&mut got).unwrap();
    c.expect(226);
    assert_eq!(got, b"payload");
    c.cmd("NOOP", 200);
}

/// fuzz target `session`: STOR before any PORT got its 150 and waited; then the PORT's
/// connection failed. PORT got its 425, but STOR never got a final reply, and the client
/// waited on it for ever. Now each gets one, in order.
#[test]
fn fuzz_session_a_held_transfer_and_a_failed_port_both_get_replies() {
    let s = TestServer::start();
    let mut c = s.login("user");
    c.cmd("STOR up.bin", 150);
    // A port nobody listens on: bind one, note it, close it.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    c.cmd(format!("PORT 127,0,0,1,{},{}", port >> 8, port & 0xff), 425);
    c.expect(425);
    c.cmd("NOOP", 200);
}

/// fuzz target `session`: a passive listener that nobody reached in time sent an unasked
/// `421` when no transfer command waited for it (pyftpdlib does), which the client took
/// as the answer to its next command.
#[test]
fn fuzz_session_a_passive_timeout_with_nothing_waiting_sends_nothing() {
    let s = TestServer::start_with(|c, _| c.dtp.accept_timeout = Duration::from_millis(200));
    let mut c = s.login("user");
    c.pasv();
    std::thread::sleep(Duration::from_millis(600));
    c.cmd("NOOP", 200);
    c.cmd("PWD", 257);
}
