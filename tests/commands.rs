//! Every command over a real socket, with exact reply codes: good arguments, bad ones, and
//! before login.

mod util;

use std::io::Read;
use std::net::TcpStream;

use util::{active_listener, TestServer};

#[test]
fn greeting_and_informational_commands() {
    let s = TestServer::start();
    let mut c = s.client();
    c.cmd("NOOP", 200);
    c.cmd("noop", 200);
    c.cmd("NOOP x", 501);
    c.cmd("SYST", 215);
    let help = c.cmd("HELP", 214);
    assert!(
        help.lines.len() > 3 && help.text().contains("RETR"),
        "{:?}",
        help.lines
    );
    assert!(c.cmd("HELP retr", 214).text().contains("RETR"));
    c.cmd("HELP NOSUCH", 501);
    let feat = c.cmd("FEAT", 211);
    assert!(feat.lines.iter().any(|l| l == " EPSV"), "{:?}", feat.lines);
    c.cmd("XYZZY", 500);
    c.cmd("QUIT", 221);
    assert!(c.closed_by_server());
}

#[test]
fn everything_else_needs_login() {
    let s = TestServer::start();
    let mut c = s.client();
    for cmd in [
        "PWD",
        "XPWD",
        "CWD /",
        "XCWD /",
        "CDUP",
        "XCUP",
        "MKD x",
        "XMKD x",
        "RMD x",
        "XRMD x",
        "DELE x",
        "RNFR x",
        "RNTO x",
        "TYPE I",
        "MODE S",
        "STRU F",
        "PASV",
        "EPSV",
        "PORT 127,0,0,1,4,1",
        "EPRT |1|127.0.0.1|1025|",
        "RETR x",
        "STOR x",
        "LIST",
        "NLST",
        "SIZE x",
        "MDTM x",
        "REST 0",
        "APPE x",
        "STOU",
        "ABOR",
        "ALLO 10",
    ] {
        c.cmd(cmd, 530);
    }
    // The argument rule is checked before the login.
    c.cmd("RETR", 501);
    c.cmd("PWD x", 501);
}

#[test]
fn user_and_pass() {
    let s = TestServer::start();
    let mut c = s.client();
    c.cmd("PASS x", 503);
    c.cmd("USER", 501);
    c.cmd("USER user", 331);
    assert_eq!(
        c.cmd("PASS wrong", 530).lines,
        ["530 Authentication failed."]
    );
    c.cmd("USER user", 331);
    c.cmd("PASS pass", 230);
    c.cmd("PASS pass", 503);
    // A new USER flushes the login.
    c.cmd("USER ro", 331);
    c.cmd("PWD", 530);
    c.cmd("PASS pass", 230);
    c.cmd("MKD x", 550);
    // Anonymous accepts any password, an empty one included.
    let mut a = s.client();
    a.cmd("USER anonymous", 331);
    a.cmd("PASS", 230);
}

#[test]
fn max_login_attempts_disconnects() {
    let s = TestServer::start_with(|c, _| c.max_login_attempts = 2);
    let mut c = s.client();
    c.cmd("USER user", 331);
    c.cmd("PASS a", 530);
    c.cmd("USER user", 331);
    let r = c.cmd("PASS b", 530);
    assert!(r.text().contains("Disconnecting"), "{:?}", r.lines);
    assert!(c.closed_by_server());
}

#[test]
fn directories() {
    let s = TestServer::start();
    std::fs::create_dir_all(s.root.join("a/b")).unwrap();
    std::fs::write(s.root.join("f"), b"x").unwrap();
    let mut c = s.login("user");
    assert_eq!(
        c.cmd("PWD", 257).lines,
        ["257 \"/\" is the current directory."]
    );
    assert_eq!(
        c.cmd("CWD a", 250).lines,
        ["250 \"/a\" is the current directory."]
    );
    c.cmd("XCWD b", 250);
    assert_eq!(
        c.cmd("XPWD", 257).lines,
        ["257 \"/a/b\" is the current directory."]
    );
    c.cmd("CDUP", 250);
    c.cmd("XCUP", 250);
    c.cmd("CDUP", 250);
    assert_eq!(
        c.cmd("PWD", 257).lines,
        ["257 \"/\" is the current directory."]
    );
    c.cmd("CWD nope", 550);
    c.cmd("CWD f", 550);
    c.cmd("CDUP x", 501);
    assert_eq!(
        c.cmd("MKD new dir", 257).lines,
        ["257 \"/new dir\" directory created."]
    );
    assert!(s.root.join("new dir").is_dir());
    c.cmd("XMKD /a/c", 257);
    c.cmd("MKD a", 550);
    c.cmd("MKD", 501);
    c.cmd("RMD a", 550); // not empty
    c.cmd("RMD /a/c", 250);
    c.cmd("XRMD new dir", 250);
    c.cmd("RMD nope", 550);
    c.cmd("RMD /", 550);
    c.cmd("RMD .", 550);
    assert!(s.root.path().is_dir());
}

#[test]
fn files_rename_and_delete() {
    let s = TestServer::start();
    std::fs::write(s.root.join("f"), b"12345").unwrap();
    std::fs::create_dir(s.root.join("d")).unwrap();
    let mut c = s.login("user");
    c.cmd("RNTO g", 503);
    c.cmd("RNFR nope", 550);
    c.cmd("RNFR f", 350);
    c.cmd("RNTO d/g", 250);
    assert!(s.root.join("d/g").is_file());
    c.cmd("RNFR d", 350);
    c.cmd("RNTO e", 250);
    assert!(s.root.join("e/g").is_file());
    c.cmd("RNFR /", 550);
    // RNTO right after RNFR only.
    c.cmd("RNFR e", 350);
    c.cmd("NOOP", 200);
    c.cmd("RNTO x", 503);
    c.cmd("DELE e/g", 250);
    c.cmd("DELE e/g", 550);
    c.cmd("DELE e", 550);
    c.cmd("DELE", 501);
}

#[test]
fn read_only_user_is_refused_writes() {
    let s = TestServer::start();
    std::fs::write(s.root.join("f"), b"x").unwrap();
    let mut c = s.login("ro");
    for cmd in [
        "MKD x", "RMD x", "DELE f", "RNFR f", "STOR y", "APPE f", "STOU",
    ] {
        let r = c.cmd(cmd, 550);
        assert_eq!(r.lines, ["550 Not enough privileges."], "{cmd}");
    }
    assert!(s.root.join("f").exists());
    c.cmd("CWD /", 250);
    c.cmd("SIZE f", 213);
}

#[test]
fn type_mode_stru() {
    let s = TestServer::start();
    let mut c = s.login("user");
    assert_eq!(c.cmd("TYPE A", 200).lines, ["200 Type set to: ASCII."]);
    c.cmd("TYPE A N", 200);
    assert_eq!(c.cmd("TYPE I", 200).lines, ["200 Type set to: Binary."]);
    c.cmd("TYPE L 8", 200);
    c.cmd("type i", 200);
    c.cmd("TYPE E", 504);
    c.cmd("TYPE", 501);
    c.cmd("MODE S", 200);
    c.cmd("MODE B", 504);
    c.cmd("MODE C", 504);
    c.cmd("MODE X", 501);
    c.cmd("STRU F", 200);
    c.cmd("STRU R", 504);
    c.cmd("STRU P", 504);
    c.cmd("STRU X", 501);
}

#[test]
fn pasv_and_epsv_replies() {
    let s = TestServer::start();
    let mut c = s.login("user");
    let a = c.pasv();
    assert_eq!(a.ip(), s.addr.ip());
    let b = c.epsv();
    assert_ne!(a, b);
    // The first listener is gone once a second PASV replaces it.
    assert!(
        TcpStream::connect(a).is_err() || {
            // A connect that raced the close must see EOF at once.
            let mut t = TcpStream::connect(a).unwrap();
            let mut buf = [0u8; 1];
            matches!(t.read(&mut buf), Ok(0) | Err(_))
        }
    );
    c.cmd("EPSV 1", 229);
    c.cmd("EPSV 2", 522);
    c.cmd("EPSV 3", 501);
    c.cmd("PASV x", 501);
    c.cmd("EPSV ALL", 200);
    c.cmd("PASV", 501);
    c.cmd("PORT 127,0,0,1,4,1", 501);
    c.cmd("EPRT |1|127.0.0.1|1025|", 501);
    c.cmd("EPSV", 229);
}

#[test]
fn port_and_eprt() {
    let s = TestServer::start();
    let mut c = s.login("user");
    let (l, spec) = active_listener();
    c.cmd(format!("PORT {spec}"), 200);
    let (mut conn, _) = l.accept().unwrap();
    let port = l.local_addr().unwrap().port();
    c.cmd(format!("EPRT |1|127.0.0.1|{port}|"), 200);
    // The previous data connection was closed when the new one replaced it.
    let mut buf = [0u8; 1];
    assert_eq!(conn.read(&mut buf).unwrap_or(0), 0);
    c.cmd("PORT 1,2,3", 501);
    c.cmd("PORT 127,0,0,1,4,256", 501);
    c.cmd("PORT a,b,c,d,e,f", 501);
    c.cmd("EPRT |1|127.0.0.1|", 501);
    c.cmd("EPRT |1|nonsense|2000|", 501);
    c.cmd("EPRT |2|::1|2000|", 522);
    c.cmd("EPRT |9|x|2000|", 522);
    c.cmd("PORT", 501);
    // Nothing listens here: the connection fails with 425 and the session goes on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    c.cmd(format!("EPRT |1|127.0.0.1|{port}|"), 425);
    c.cmd("NOOP", 200);
}

#[test]
fn abor_without_transfer() {
    let s = TestServer::start();
    let mut c = s.login("user");
    assert_eq!(c.cmd("ABOR", 225).lines, ["225 No transfer to abort."]);
    c.pasv();
    c.cmd("ABOR", 225);
    c.cmd("ABOR", 225);
}

#[test]
fn pipelined_commands_in_one_write() {
    let s = TestServer::start();
    let mut c = s.client();
    c.send_raw(b"USER user\r\nPASS pass\r\nPWD\r\nNOOP\r\nSYST\r\n");
    c.expect(331);
    c.expect(230);
    c.expect(257);
    c.expect(200);
    c.expect(215);
    // Bare LF line endings and split writes are accepted too.
    c.send_raw(b"NO");
    std::thread::sleep(std::time::Duration::from_millis(50));
    c.send_raw(b"OP\nNOOP\n");
    c.expect(200);
    c.expect(200);
}

#[test]
fn stat_shows_session_and_listing() {
    let s = TestServer::start();
    std::fs::write(s.root.join("file.txt"), b"abc").unwrap();
    let mut c = s.client();
    let r = c.cmd("STAT", 211);
    assert!(r.lines.len() > 2, "{:?}", r.lines);
    c.login("user", "pass");
    let r = c.cmd("STAT /", 213);
    assert!(r.text().contains("file.txt"), "{:?}", r.lines);
    c.cmd("STAT nope", 550);
}
