//! RETR, STOR, APPE, STOU, LIST and NLST over every kind of data connection, byte for byte.

mod util;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};

use util::{active_listener, random_bytes, text_and_crlf, Client, TestServer};

fn active_retr(c: &mut Client, line: &str, eprt: bool) -> Vec<u8> {
    let (l, spec) = active_listener();
    if eprt {
        let port = l.local_addr().unwrap().port();
        c.cmd(format!("EPRT |1|127.0.0.1|{port}|"), 200);
    } else {
        c.cmd(format!("PORT {spec}"), 200);
    }
    let (mut data, _) = l.accept().unwrap();
    c.send(line);
    let r = c.read_reply();
    assert_eq!(r.code, 125, "{:?}", r.lines);
    let mut out = Vec::new();
    data.read_to_end(&mut out).unwrap();
    c.expect(226);
    out
}

#[test]
fn retr_and_stor_over_pasv_epsv_port_eprt() {
    let s = TestServer::start();
    let body = random_bytes(3 << 20, 11);
    let mut c = s.login("user");
    c.cmd("TYPE I", 200);
    c.stor("STOR up.bin", &body);
    util::assert_same(&std::fs::read(s.root.join("up.bin")).unwrap(), &body);
    util::assert_same(&c.retr("RETR up.bin"), &body);
    // EPSV
    let addr = c.epsv();
    let mut data = TcpStream::connect(addr).unwrap();
    c.cmd("RETR up.bin", 125);
    let mut got = Vec::new();
    data.read_to_end(&mut got).unwrap();
    c.expect(226);
    util::assert_same(&got, &body);
    // PORT and EPRT
    assert_eq!(active_retr(&mut c, "RETR up.bin", false), body);
    assert_eq!(active_retr(&mut c, "RETR up.bin", true), body);
    // STOR over PORT
    let (l, spec) = active_listener();
    c.cmd(format!("PORT {spec}"), 200);
    let (mut data, _) = l.accept().unwrap();
    c.cmd("STOR active.bin", 125);
    data.write_all(&body).unwrap();
    drop(data);
    c.expect(226);
    util::assert_same(&std::fs::read(s.root.join("active.bin")).unwrap(), &body);
}

#[test]
fn empty_and_tiny_files() {
    let s = TestServer::start();
    let mut c = s.login("user");
    c.stor("STOR empty", b"");
    assert_eq!(std::fs::metadata(s.root.join("empty")).unwrap().len(), 0);
    assert_eq!(c.retr("RETR empty"), b"");
    c.stor("STOR one", b"x");
    assert_eq!(c.retr("RETR one"), b"x");
    // STOR replaces the whole file.
    c.stor("STOR one", b"");
    assert_eq!(c.retr("RETR one"), b"");
}

#[test]
fn ipv6_transfers() {
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        eprintln!("skipping: no IPv6 loopback on this machine");
        return;
    }
    let s = TestServer::start_at("[::1]:0", |_, _| {});
    let body = random_bytes(200_000, 5);
    let mut c = s.login("user");
    c.cmd("PASV", 425);
    c.cmd("PORT 127,0,0,1,4,1", 425);
    c.cmd("EPSV 1", 522);
    let addr = c.epsv();
    let mut data = TcpStream::connect(addr).unwrap();
    c.cmd("STOR v6", 125);
    data.write_all(&body).unwrap();
    drop(data);
    c.expect(226);
    let l = TcpListener::bind("[::1]:0").unwrap();
    let port = l.local_addr().unwrap().port();
    c.cmd(format!("EPRT |2|::1|{port}|"), 200);
    c.cmd(format!("EPRT |1|127.0.0.1|{port}|"), 522);
    let (mut data, _) = l.accept().unwrap();
    c.cmd("RETR v6", 125);
    let mut got = Vec::new();
    data.read_to_end(&mut got).unwrap();
    c.expect(226);
    assert_eq!(got, body);
    // lftp's form: the unspecified address stands for the client itself.
    c.cmd(format!("EPRT |2|::|{port}|"), 200);
    let (mut data, _) = l.accept().unwrap();
    c.cmd("RETR v6", 125);
    let mut got = Vec::new();
    data.read_to_end(&mut got).unwrap();
    c.expect(226);
    util::assert_same(&got, &body);
}

#[test]
fn ascii_type_converts_line_endings() {
    let s = TestServer::start();
    std::fs::write(s.root.join("unix.txt"), b"one\ntwo\r\nthree\n").unwrap();
    let mut c = s.login("user");
    c.cmd("TYPE A", 200);
    assert_eq!(c.retr("RETR unix.txt"), b"one\r\ntwo\r\nthree\r\n");
    c.stor("STOR dos.txt", b"a\r\nb\r\nc\rd\r\n");
    assert_eq!(
        std::fs::read(s.root.join("dos.txt")).unwrap(),
        b"a\nb\nc\rd\n"
    );
    c.cmd("TYPE I", 200);
    assert_eq!(c.retr("RETR unix.txt"), b"one\ntwo\r\nthree\n");
}

#[test]
fn buffered_downloads_of_many_chunks_are_whole() {
    // Without sendfile every download goes through the transfer's buffer, refilled from the
    // file chunk after chunk: binary from any offset, and TYPE A converted across the cuts.
    let s = TestServer::start_with(|c, _| c.use_sendfile = false);
    let body = random_bytes((1 << 20) + 12_345, 21);
    std::fs::write(s.root.join("bin"), &body).unwrap();
    let (text, crlf) = text_and_crlf(300_000, 22);
    std::fs::write(s.root.join("text"), &text).unwrap();
    let mut c = s.login("user");
    util::assert_same(&c.retr("RETR bin"), &body);
    c.cmd("REST 70000", 350);
    util::assert_same(&c.retr("RETR bin"), &body[70000..]);
    c.cmd("TYPE A", 200);
    util::assert_same(&c.retr("RETR text"), &crlf);
    c.cmd("TYPE I", 200);
    util::assert_same(&c.retr("RETR text"), &text);
}

#[test]
fn rest_resumes_retr_and_stor() {
    let s = TestServer::start();
    let body = random_bytes(100_000, 9);
    std::fs::write(s.root.join("f"), &body).unwrap();
    let mut c = s.login("user");
    c.cmd("REST 40000", 350);
    util::assert_same(&c.retr("RETR f"), &body[40000..]);
    // REST is used up by the RETR.
    util::assert_same(&c.retr("RETR f"), &body);
    c.cmd("REST 200000", 350);
    c.pasv();
    c.cmd("RETR f", 554);
    c.cmd("REST x", 501);
    c.cmd("REST -1", 501);
    // Resume an upload: the first part is there, send the rest.
    std::fs::write(s.root.join("g"), &body[..30000]).unwrap();
    c.cmd("REST 30000", 350);
    c.stor("STOR g", &body[30000..]);
    util::assert_same(&std::fs::read(s.root.join("g")).unwrap(), &body);
    c.cmd("TYPE A", 200);
    c.cmd("REST 10", 501);
}

#[test]
fn appe_and_stou() {
    let s = TestServer::start();
    let mut c = s.login("user");
    c.stor("APPE log", b"one\n");
    c.stor("APPE log", b"two\n");
    assert_eq!(std::fs::read(s.root.join("log")).unwrap(), b"one\ntwo\n");
    c.cmd("REST 1", 350);
    c.cmd("APPE log", 450);
    // STOU picks a fresh name and announces it.
    let addr = c.pasv();
    let mut data = TcpStream::connect(addr).unwrap();
    let r = c.cmd("STOU log", 125);
    let name = r.lines[0]
        .strip_prefix("125 FILE: ")
        .expect("STOU reply names the file")
        .to_string();
    assert_ne!(name, "log");
    data.write_all(b"unique").unwrap();
    data.shutdown(Shutdown::Write).unwrap();
    drop(data);
    c.expect(226);
    assert_eq!(std::fs::read(s.root.join(&name)).unwrap(), b"unique");
    assert_eq!(std::fs::read(s.root.join("log")).unwrap(), b"one\ntwo\n");
}

#[test]
fn list_and_nlst() {
    let s = TestServer::start();
    std::fs::create_dir(s.root.join("dir")).unwrap();
    std::fs::write(s.root.join("file.txt"), b"12345").unwrap();
    std::fs::write(s.root.join("dir/inner"), b"").unwrap();
    std::fs::write(s.root.join("with space"), b"").unwrap();
    let mut c = s.login("user");
    let list = String::from_utf8(c.retr("LIST")).unwrap();
    let lines: Vec<&str> = list.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert_eq!(lines.len(), 3, "{list:?}");
    assert!(list.ends_with("\r\n"));
    let file = lines
        .iter()
        .find(|l| l.ends_with(" file.txt"))
        .expect("file line");
    let cols: Vec<&str> = file.split_whitespace().collect();
    assert!(cols[0].starts_with("-rw"), "{file}");
    assert_eq!(cols[4], "5", "{file}");
    assert!(lines
        .iter()
        .any(|l| l.starts_with('d') && l.ends_with(" dir")));
    assert!(lines.iter().any(|l| l.ends_with(" with space")));
    // ls-style flags are accepted and ignored.
    assert_eq!(
        String::from_utf8(c.retr("LIST -la"))
            .unwrap()
            .lines()
            .count(),
        3
    );
    assert_eq!(c.retr("LIST -la dir").len(), c.retr("LIST dir").len());
    // LIST and NLST of a directory of at most listing::SORT_LIMIT entries are sorted by
    // name, as pyftpdlib sorts them.
    assert_eq!(
        String::from_utf8(c.retr("NLST")).unwrap(),
        "dir\r\nfile.txt\r\nwith space\r\n"
    );
    assert!(
        lines[0].ends_with(" dir")
            && lines[1].ends_with(" file.txt")
            && lines[2].ends_with(" with space"),
        "{list:?}"
    );
    assert_eq!(
        String::from_utf8(c.retr("NLST -1 dir")).unwrap(),
        "inner\r\n"
    );
    // LIST of a file gives that file's line.
    assert!(String::from_utf8(c.retr("LIST file.txt"))
        .unwrap()
        .ends_with(" file.txt\r\n"));
    c.cmd("LIST nope", 550);
    c.cmd("NLST nope", 550);
    c.cmd("CWD dir", 250);
    assert_eq!(String::from_utf8(c.retr("NLST")).unwrap(), "inner\r\n");
}

#[test]
fn abor_during_retr_and_session_goes_on() {
    let s = TestServer::start();
    let body = random_bytes(64 << 20, 21);
    std::fs::write(s.root.join("big"), &body).unwrap();
    let mut c = s.login("user");
    let addr = c.pasv();
    let mut data = TcpStream::connect(addr).unwrap();
    c.cmd("RETR big", 125);
    let mut buf = vec![0u8; 65536];
    data.read_exact(&mut buf).unwrap();
    // ftplib's abort: Telnet IP and Synch, then ABOR.
    c.send_raw(b"\xff\xf4\xff\xf2ABOR\r\n");
    let first = c.read_reply();
    assert!(first.code == 426 || first.code == 226, "{:?}", first.lines);
    if first.code == 426 {
        c.expect(226);
    }
    drop(data);
    c.cmd("NOOP", 200);
    assert_eq!(c.retr("RETR big").len(), body.len());
}

#[test]
fn quit_during_a_download_is_answered_at_once_and_the_download_completes() {
    let s = TestServer::start();
    let body = random_bytes(8 << 20, 13);
    std::fs::write(s.root.join("f"), &body).unwrap();
    let mut c = s.login("user");
    let addr = c.pasv();
    let mut data = TcpStream::connect(addr).unwrap();
    c.cmd("RETR f", 125);
    // 221 first, as pyftpdlib sends it; the transfer still runs to its end and its 226.
    c.cmd("QUIT", 221);
    let mut got = Vec::new();
    data.read_to_end(&mut got).unwrap();
    util::assert_same(&got, &body);
    c.expect(226);
    assert!(c.closed_by_server());
}

#[test]
fn a_transfer_command_while_one_runs_is_refused() {
    let s = TestServer::start();
    std::fs::write(s.root.join("f"), random_bytes(32 << 20, 1)).unwrap();
    let mut c = s.login("user");
    let addr = c.pasv();
    let mut data = TcpStream::connect(addr).unwrap();
    c.cmd("RETR f", 125);
    // The running transfer keeps its file: a second RETR or a rename cannot redirect it.
    // A second transfer command is refused before it looks for its file.
    c.cmd("RETR other", 425);
    c.cmd("PASV", 425);
    c.cmd("RNFR f", 350);
    c.cmd("RNTO g", 250);
    let mut got = Vec::new();
    data.read_to_end(&mut got).unwrap();
    c.expect(226);
    assert_eq!(got.len(), 32 << 20);
}

#[test]
fn commands_before_the_data_connection_cannot_redirect_the_transfer() {
    // The LightFTP race: RETR is accepted (150) but the client has not connected yet; a
    // second transfer command or a rename in that window must not change what is sent.
    let s = TestServer::start();
    std::fs::write(s.root.join("first"), b"the first file").unwrap();
    std::fs::write(s.root.join("second"), b"the second file").unwrap();
    let mut c = s.login("user");
    let addr = c.pasv();
    c.cmd("RETR first", 150);
    c.cmd("RETR second", 425);
    c.cmd("STOR first", 425);
    c.cmd("RNFR second", 350);
    c.cmd("RNTO first", 250);
    let mut data = TcpStream::connect(addr).unwrap();
    let mut got = Vec::new();
    data.read_to_end(&mut got).unwrap();
    c.expect(226);
    assert_eq!(got, b"the first file");
}

/// Large binary uploads from real clients arrive byte for byte: curl -T, and ftplib's
/// storbinary, whole and then resumed with REST (on Linux these go socket to pipe to file
/// with splice(2); TYPE A and TLS uploads are covered by their own tests).
#[test]
fn large_uploads_from_curl_and_ftplib_arrive_whole() {
    let s = TestServer::start();
    let src = util::TempDir::new("src");
    let body = random_bytes(8 << 20, 31);
    std::fs::write(src.join("big"), &body).unwrap();
    if util::require("curl") {
        util::run(
            util::curl()
                .arg("-T")
                .arg(src.join("big"))
                .arg(s.url("user", "curl.bin")),
        );
        util::assert_same(&std::fs::read(s.root.join("curl.bin")).unwrap(), &body);
    }
    if util::require("python3") {
        let script = format!(
            r#"
import ftplib, sys
data = open(sys.argv[1], "rb").read()
f = ftplib.FTP()
f.connect("127.0.0.1", {port}, timeout=30)
f.login("user", "pass")
f.storbinary("STOR py.bin", open(sys.argv[1], "rb"), blocksize=1 << 20)
import io
f.storbinary("STOR resumed.bin", io.BytesIO(data[:5000000]))
f.storbinary("STOR resumed.bin", io.BytesIO(data[5000000:]), rest=5000000)
f.quit()
"#,
            port = s.addr.port()
        );
        util::run(
            std::process::Command::new("python3")
                .arg("-c")
                .arg(script)
                .arg(src.join("big")),
        );
        util::assert_same(&std::fs::read(s.root.join("py.bin")).unwrap(), &body);
        util::assert_same(&std::fs::read(s.root.join("resumed.bin")).unwrap(), &body);
    }
}

/// Records the bytes each upload ended with, as the xferlog would.
#[derive(Default)]
struct Ends(std::sync::Mutex<Vec<(bool, u64)>>);

impl ftpdlib::Hooks for Ends {
    fn on_transfer_end(&self, _s: ftpdlib::SessionInfo<'_>, t: &ftpdlib::TransferRecord<'_>) {
        self.0.lock().unwrap().push((t.completed, t.bytes));
    }
}

/// ABOR in the middle of an upload: the partial file holds exactly the bytes the server
/// took off the data connection, as many as it reports, and the session goes on.
#[test]
fn abor_during_stor_keeps_exactly_the_bytes_received() {
    let ends = std::sync::Arc::new(Ends::default());
    let hooks = ends.clone();
    let s = TestServer::start_with(move |c, _| c.hooks = hooks);
    let body = random_bytes(3 << 20, 32);
    let mut c = s.login("user");
    c.cmd("TYPE I", 200);
    let mut data = TcpStream::connect(c.pasv()).unwrap();
    c.cmd("STOR part", 125);
    data.write_all(&body[..2 << 20]).unwrap();
    let path = s.root.join("part");
    assert!(util::wait_until(std::time::Duration::from_secs(10), || {
        std::fs::metadata(&path).is_ok_and(|m| m.len() == 2 << 20)
    }));
    c.send_raw(b"\xff\xf4\xff\xf2ABOR\r\n");
    let first = c.read_reply();
    assert!(first.code == 426 || first.code == 226, "{:?}", first.lines);
    if first.code == 426 {
        c.expect(226);
    }
    drop(data);
    assert_eq!(ends.0.lock().unwrap().as_slice(), [(false, 2 << 20)]);
    util::assert_same(&std::fs::read(&path).unwrap(), &body[..2 << 20]);
    c.cmd("NOOP", 200);
    c.stor("STOR part", &body);
    util::assert_same(&std::fs::read(&path).unwrap(), &body);
}
