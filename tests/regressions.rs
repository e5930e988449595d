//! Regressions: every input that once broke ftpdlib, minimal, over real sockets; each test
//! names where it came from (a fuzz target of fuzz/, or the attack class and the server it
//! hit). docs/security.md lists the classes.

mod util;

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

// ---- attack classes -----------------------------------------------------------------------
//
// One test per class of attack that has hit FTP servers, each naming its source. Where a
// class is already tested elsewhere, a line points at that test instead.

/// Loopback TCP sockets whose local port is in `ports`, as (local port, state) with the
/// state in /proc/net/tcp's hex code (0A LISTEN, 01 ESTABLISHED, 08 CLOSE_WAIT).
fn sockets_on(ports: std::ops::RangeInclusive<u16>) -> Vec<(u16, String)> {
    let mut out = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            let Some(port) = f[1].rsplit(':').next() else {
                continue;
            };
            let port = u16::from_str_radix(port, 16).unwrap();
            if ports.contains(&port) {
                out.push((port, f[3].to_string()));
            }
        }
    }
    out
}

/// Sockets on `ports` that a process holds open: listening, connected, or closed by the
/// peer and not yet by us (TIME_WAIT and the like hold no descriptor).
fn held_sockets(ports: std::ops::RangeInclusive<u16>) -> usize {
    sockets_on(ports)
        .iter()
        .filter(|(_, st)| matches!(st.as_str(), "0A" | "01" | "08" | "03"))
        .count()
}

/// A passive port range of `n` ports under the kernel's ephemeral range (32768 up), so
/// that no client socket of any test lands in it; apart per test binary and per `slot`.
fn private_ports(slot: u16, n: u16) -> std::ops::RangeInclusive<u16> {
    let base = 20000 + (std::process::id() % 40) as u16 * 300 + slot * 100;
    base..=base + n - 1
}

/// Resident memory of this process, in KiB (/proc/self/status VmRSS).
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Sends `line` and reads its reply, whatever its code.
fn ask(c: &mut Client, line: &str) -> util::Reply {
    c.send(line);
    c.read_reply()
}

/// Reads replies until one with `code` comes (other replies, such as a transfer's 426 in a
/// race with ABOR, are passed over); panics after 10 replies.
fn reply_until(c: &mut Client, code: u16) {
    for _ in 0..10 {
        if c.read_reply().code == code {
            return;
        }
    }
    panic!("no {code} in 10 replies");
}

/// Class 1, FTP bounce (Hobbit, "The FTP Bounce Attack", 1995; CERT CA-1997-27; RFC 2577):
/// PORT/EPRT naming a third host or a privileged port. Refused with 501 and no connection
/// is tried: listeners on the foreign host and, as root, on a privileged port see none.
/// (security.rs `foreign_and_privileged_port_refused_without_connecting` has the plain
/// forms; this adds the disguised ones and the trap on the privileged port.)
#[test]
fn attack_ftp_bounce_connects_nowhere() {
    let s = TestServer::start();
    let mut c = s.login("user");
    let foreign = TcpListener::bind("127.0.0.2:0").unwrap();
    foreign.set_nonblocking(true).unwrap();
    let fp = foreign.local_addr().unwrap().port();
    // A privileged port on the client's own address (binding it needs root).
    let low = (900..1024).find_map(|p| TcpListener::bind(("127.0.0.1", p)).ok());
    for l in low.iter() {
        l.set_nonblocking(true).unwrap();
    }
    let lp = low.as_ref().map_or(21, |l| l.local_addr().unwrap().port());
    for line in [
        format!("PORT 127,0,0,2,{},{}", fp >> 8, fp & 0xff),
        format!("PORT 127,000,0,02,{},{}", fp >> 8, fp & 0xff),
        format!("PORT  127,0,0,2,{},{} ", fp >> 8, fp & 0xff),
        format!("EPRT |1|127.0.0.2|{fp}|"),
        format!("EPRT !1!127.0.0.2!{fp}!"),
        format!("PORT 127,0,0,1,{},{}", lp >> 8, lp & 0xff),
        format!("EPRT |1|127.0.0.1|{lp}|"),
        format!("EPRT |1|0.0.0.0|{lp}|"),
        format!("PORT 0,0,0,0,{},{}", lp >> 8, lp & 0xff),
    ] {
        let r = c.cmd(&line, 501);
        assert!(
            r.text().contains("refused") || r.text().contains("foreign"),
            "{r:?}"
        );
    }
    // An IPv4-mapped IPv6 address on an IPv4 session is the wrong family, not a way round.
    c.cmd(format!("EPRT |2|::ffff:127.0.0.2|{fp}|"), 522);
    // A transfer after the refusals has no data connection to use.
    c.cmd("LIST", 150);
    c.cmd("ABOR", 426);
    c.expect(226);
    std::thread::sleep(Duration::from_millis(300));
    assert!(foreign.accept().is_err(), "connected to a foreign host");
    if let Some(l) = low {
        assert!(l.accept().is_err(), "connected to a privileged port");
    }
    c.cmd("NOOP", 200);
}

// Class 2, STARTTLS command injection (CVE-2011-0411, Postfix, and the FTP servers found
// alike, CVE-2011-1575 Pure-FTPd): ftps.rs `plaintext_after_auth_tls_is_discarded`.

/// Class 3, pathological globs (vsftpd CVE-2011-0762; the BSD libc glob(3) exhaustion of
/// CVE-2010-2632 behind the FreeBSD, NetBSD and OpenBSD ftpd): no argument is globbed, so a
/// pattern is a literal name looked up once, answered at once.
#[test]
fn attack_glob_patterns_are_literal_names_answered_at_once() {
    let s = TestServer::start();
    std::fs::write(s.root.join("[a"), b"x").unwrap();
    std::fs::write(s.root.join("{b,c}"), b"x").unwrap();
    std::fs::create_dir(s.root.join("d")).unwrap();
    std::fs::write(s.root.join("d/inner"), b"x").unwrap();
    let mut c = s.login("user");
    let bomb = "a*a*a*a*a*a*a*a*a*b".repeat(100);
    let nested = "*/".repeat(500) + "*";
    for arg in [
        bomb.as_str(),
        "[",
        "{",
        "*/../*",
        "{a,b}{c,d}{e,f}{g,h}{i,j}{k,l}",
        "[[[[[[[[[[[[[[[[[[[[",
        nested.as_str(),
        "-la *",
    ] {
        for verb in ["LIST", "NLST", "STAT"] {
            let start = std::time::Instant::now();
            if verb == "STAT" {
                let r = ask(&mut c, &format!("STAT {arg}"));
                assert!(matches!(r.code, 213 | 550), "{verb} {arg}: {r:?}");
            } else {
                let addr = c.pasv();
                let mut data = TcpStream::connect(addr).unwrap();
                let r = ask(&mut c, &format!("{verb} {arg}"));
                if r.code == 125 {
                    let mut out = Vec::new();
                    data.read_to_end(&mut out).unwrap();
                    c.expect(226);
                    // A literal match would be one name; a glob would list d/inner etc.
                    assert!(!out.windows(5).any(|w| w == b"inner"), "{verb} {arg}");
                } else {
                    assert_eq!(r.code, 550, "{verb} {arg}: {r:?}");
                }
            }
            assert!(
                start.elapsed() < Duration::from_secs(2),
                "{verb} {arg}: {:?}",
                start.elapsed()
            );
        }
    }
    // The names that look like patterns are found as written.
    assert!(String::from_utf8(c.retr("NLST [a")).unwrap().contains("[a"));
    assert!(String::from_utf8(c.retr("LIST {b,c}"))
        .unwrap()
        .contains("{b,c}"));
    c.cmd("SIZE [a", 213);
}

/// Class 4, a line without end (memory exhaustion by one endless command line; pyftpdlib
/// drops lines past 2048 bytes in `collect_incoming_data`): 10 MB with no CRLF leaves the
/// process's resident memory where it was, is answered "500 Command too long." and the
/// session goes on once the line ends. It once stalled the session: see the commit that
/// made the control channel read on after a full input buffer.
#[test]
fn attack_a_10_mb_line_keeps_memory_bounded() {
    let s = TestServer::start();
    let mut c = s.login("user");
    c.cmd("NOOP", 200);
    let before = rss_kib();
    let chunk = vec![b'A'; 64 * 1024];
    for _ in 0..160 {
        c.send_raw(&chunk);
    }
    c.stream.flush().unwrap();
    assert_eq!(c.expect(500).lines, ["500 Command too long."]);
    // Let the server read all of it.
    c.send_raw(b"\r\n");
    c.cmd("NOOP", 200);
    let grown = rss_kib().saturating_sub(before);
    // 10 MB kept would show as 10 240 KiB; the reader holds one line of 2 KiB.
    assert!(grown < 5 * 1024, "resident memory grew by {grown} KiB");
}

/// Class 5, Telnet IAC runs (RFC 854 commands in the command stream; the IAC IP IAC DM
/// "Synch" that RFC 959 section 4.1.3 puts before ABOR) and unbalanced quotes, the inputs
/// line parsers mishandle and fuzzers find first: every such line gets a reply and the
/// session goes on.
#[test]
fn attack_telnet_iac_runs_and_unbalanced_quotes_get_replies() {
    let s = TestServer::start();
    let mut c = s.login("user");
    let mut iacs = vec![0xff; 1000];
    iacs.extend_from_slice(b"\r\n");
    c.send_raw(&iacs);
    c.expect(500);
    c.send_raw(b"\xff\xff\xff\xff\r\n\xff\r\n");
    c.expect(500);
    c.expect(500);
    // IAC IP IAC DM before ABOR (RFC 959 section 4.1.3), with nothing to abort.
    c.send_raw(b"\xff\xf4\xff\xf2ABOR\r\n");
    c.expect(225);
    // IAC inside a name: a name like any other.
    c.send_raw(b"MKD a\xff\xffb\r\n");
    c.expect(257);
    for (line, code) in [
        ("MKD \"a", 257),
        ("CWD \"", 550),
        ("CWD \"a", 250),
        ("CWD /", 250),
        ("RNFR \"a", 350),
        ("RNTO b\"\"", 250),
        ("DELE \"", 550),
        ("SIZE \"\"\"", 550),
        ("STAT \"", 550),
        ("SITE CHMOD 755 \"", 550),
        ("MFMT 20200101000000 \"", 550),
    ] {
        c.cmd(line, code);
    }
    assert!(s.root.join("b\"\"").is_dir());
    c.cmd("NOOP", 200);
}

/// Class 6, SITE subcommands (the SITE EXEC of wu-ftpd CVE-1999-0080 and ProFTPD's
/// mod_copy SITE CPFR/CPTO, CVE-2015-3306, both usable before login or without rights):
/// before login SITE CHMOD is 530 and an unknown subcommand runs nothing; without the
/// permission SITE CHMOD is 550 and the mode stays.
#[test]
fn attack_site_subcommands_need_login_and_permission() {
    use std::os::unix::fs::PermissionsExt;
    let s = TestServer::start();
    std::fs::write(s.root.join("f"), b"x").unwrap();
    std::fs::set_permissions(s.root.join("f"), std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut c = s.client();
    c.cmd("SITE CHMOD 777 f", 530);
    c.cmd("SITE HELP", 214);
    c.cmd("SITE EXEC /bin/sh", 500);
    c.cmd("SITE CPFR f", 500);
    c.cmd("SITE X", 500);
    c.login("ro", "pass");
    c.cmd("SITE CHMOD 777 f", 550);
    c.cmd("SITE CHMOD 4777 f", 501);
    c.cmd("SITE EXEC /bin/sh", 500);
    assert_eq!(
        std::fs::metadata(s.root.join("f"))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777,
        0o600
    );
    c.cmd("NOOP", 200);
}

/// What a sentinel directory holds: every entry's name, kind, mode, size, content and
/// modification time, the directory's own mtime first.
fn snapshot(dir: &std::path::Path) -> Vec<String> {
    use std::os::unix::fs::MetadataExt;
    let mut out = vec![format!(
        "dir mtime {}",
        std::fs::symlink_metadata(dir).unwrap().mtime_nsec()
    )];
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            let body = if m.is_file() {
                std::fs::read(&p).unwrap()
            } else {
                Vec::new()
            };
            out.push(format!(
                "{} mode {:o} size {} mtime {}.{} {:?}",
                p.display(),
                m.mode(),
                m.size(),
                m.mtime(),
                m.mtime_nsec(),
                body
            ));
            if m.is_dir() {
                stack.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Class 7, path traversal (pyftpdlib's validpath and its STOU through a symlink, see
/// docs/compliance.md; the `..\` and `%2e%2e` of Windows FTP servers; ProFTPD
/// mod_site_misc CVE-2010-3867; NUL bytes that cut a name short in C servers): every path
/// command, with every way out of the root, against a sentinel directory beside the root.
/// Nothing there is read, listed, written, changed or removed.
#[test]
fn attack_no_path_command_reaches_outside_the_root() {
    let s = TestServer::start();
    let root = s.root.path().to_path_buf();
    let sname = format!("{}-sentinel", root.file_name().unwrap().to_string_lossy());
    let sentinel = root.parent().unwrap().join(&sname);
    let _cleanup = util::TempDir(sentinel.clone());
    std::fs::create_dir_all(sentinel.join("sub")).unwrap();
    std::fs::write(sentinel.join("secret"), b"SENTINEL-BYTES").unwrap();
    // Never named by a command: seen only if a listing shows the sentinel.
    std::fs::write(sentinel.join("unlisted-entry"), b"").unwrap();
    std::os::unix::fs::symlink(&sentinel, root.join("out")).unwrap();
    std::os::unix::fs::symlink(sentinel.join("secret"), root.join("secret-link")).unwrap();
    std::fs::write(root.join("mine"), b"mine").unwrap();
    let before = snapshot(&sentinel);
    let abs = sentinel.to_string_lossy().into_owned();
    let ways: Vec<Vec<u8>> = [
        format!("../{sname}"),
        format!("/../{sname}"),
        format!("../../../../../..{abs}"),
        format!("..\\{sname}"),
        format!("\\..\\{sname}"),
        format!("%2e%2e/{sname}"),
        format!("%2e%2e%2f{sname}"),
        format!("..%2f{sname}"),
        format!("....//{sname}"),
        abs.clone(),
        "out".to_string(),
        "./out/.".to_string(),
    ]
    .into_iter()
    .map(String::into_bytes)
    .chain([
        format!("../{sname}\0").into_bytes(),
        format!("\0../{sname}").into_bytes(),
    ])
    .collect();
    let mut c = s.login("user");
    c.cmd("TYPE I", 200);
    let leaked = |text: &[u8]| {
        text.windows(14).any(|w| w == b"SENTINEL-BYTES")
            || text.windows(14).any(|w| w == b"unlisted-entry")
    };
    for way in &ways {
        let at = |tail: &str| {
            let mut p = way.clone();
            p.extend_from_slice(tail.as_bytes());
            p
        };
        let line = |verb: &str, path: &[u8]| {
            let mut l = verb.as_bytes().to_vec();
            l.push(b' ');
            l.extend_from_slice(path);
            l
        };
        let shown = String::from_utf8_lossy(way).into_owned();
        // Control-only commands: whatever the code, no reply shows the sentinel's content.
        for l in [
            line("CWD", way),
            line("CWD", &at("/sub")),
            line("MLST", &at("/secret")),
            line("STAT", way),
            line("SIZE", &at("/secret")),
            line("MDTM", &at("/secret")),
            line("MFMT 20000101000000", &at("/secret")),
            line("SITE CHMOD 777", &at("/secret")),
            line("DELE", &at("/secret")),
            line("MKD", &at("/newdir")),
            line("RMD", &at("/sub")),
        ] {
            c.send(&l);
            let r = c.read_reply();
            assert!(!leaked(r.text().as_bytes()), "{shown}: {:?}", r.lines);
            if l.starts_with(b"CWD") && r.code == 250 {
                // Only names inside the root can be entered; go back.
                c.cmd("CWD /", 250);
            }
        }
        // RNFR out, and RNTO out.
        c.send(line("RNFR", &at("/secret")));
        if c.read_reply().code == 350 {
            c.cmd("RNTO stolen", 550);
        }
        c.cmd("RNFR mine", 350);
        c.send(line("RNTO", &at("/planted")));
        let r = c.read_reply();
        if r.code == 250 {
            // A literal name inside the root: put it back.
            assert!(!sentinel.join("planted").exists(), "{shown}");
            c.send(line("RNFR", &at("/planted")));
            c.expect(350);
            c.cmd("RNTO mine", 250);
        }
        // Data commands: downloads show nothing of the sentinel, uploads land nowhere
        // outside.
        for (l, upload) in [
            (line("LIST", way), false),
            (line("NLST", way), false),
            (line("MLSD", way), false),
            (line("RETR", &at("/secret")), false),
            (line("RETR", b"secret-link"), false),
            (line("STOR", &at("/new")), true),
            (line("STOR", &at("/secret")), true),
            (line("APPE", &at("/secret")), true),
            (line("STOU", &at("/x")), true),
        ] {
            let addr = c.pasv();
            let mut data = TcpStream::connect(addr).unwrap();
            c.send(&l);
            let r = c.read_reply();
            assert!(!leaked(r.text().as_bytes()), "{shown}: {:?}", r.lines);
            if r.code == 125 || r.code == 150 {
                if upload {
                    data.write_all(b"EVIL").unwrap();
                    drop(data);
                } else {
                    let mut out = Vec::new();
                    data.read_to_end(&mut out).unwrap();
                    assert!(!leaked(&out), "{shown}: {}", String::from_utf8_lossy(&l));
                }
                c.expect(226);
            }
        }
    }
    c.cmd("NOOP", 200);
    drop(c);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(snapshot(&sentinel), before, "the sentinel changed");
}

/// Class 8, the queued-transfer path race (LightFTP CVE-2023-24042: a RETR/STOR waiting for its data
/// connection took its path from session state that a later USER, CWD or RNFR changed, so
/// the transfer served or wrote another file, even as another user): the file is opened by
/// the transfer command itself, so what a held RETR sends is the file it named then.
#[test]
fn attack_a_held_transfer_keeps_its_file_whatever_comes_before_its_connection() {
    let s = TestServer::start();
    std::fs::create_dir(s.root.join("sub")).unwrap();
    std::fs::write(s.root.join("f"), b"original").unwrap();
    std::fs::write(s.root.join("sub/f"), b"the other f").unwrap();
    let mut c = s.login("user");
    c.cmd("TYPE I", 200);
    // CWD and a rename of the file behind the held RETR, then a new file by its name.
    c.cmd("RETR f", 150);
    c.cmd("CWD sub", 250);
    c.cmd("RNFR /f", 350);
    c.cmd("RNTO /moved", 250);
    std::fs::write(s.root.join("f"), b"replaced").unwrap();
    let mut data = TcpStream::connect(c.pasv()).unwrap();
    let mut got = Vec::new();
    data.read_to_end(&mut got).unwrap();
    c.expect(226);
    assert_eq!(got, b"original");
    // USER or REIN end the held transfer; the next login's data connection gets nothing.
    for cut in ["USER anonymous", "REIN"] {
        c.cmd("CWD /", 250);
        c.cmd("RETR moved", 150);
        c.cmd(cut, 426);
        c.read_reply();
        if cut == "REIN" {
            c.cmd("USER anonymous", 331);
        }
        c.cmd("PASS x", 230);
        let mut data = TcpStream::connect(c.pasv()).unwrap();
        data.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let mut buf = [0u8; 16];
        assert!(
            matches!(data.read(&mut buf), Ok(0) | Err(_)),
            "{cut}: the held RETR ran after the change of user"
        );
        c.cmd("NOOP", 200);
        c.cmd("USER user", 331);
        c.cmd("PASS pass", 230);
    }
}

/// Class 9, passive listener exhaustion (listeners left open by repeated PASV use up
/// descriptors and the passive range; pyftpdlib closes the previous listener on each PASV):
/// 1000 PASV in a row leave one listener, and a full range answers 425 at once.
#[test]
fn attack_repeated_pasv_leaks_no_listener_and_a_full_range_is_425() {
    let ports = private_ports(0, 50);
    let range = ports.clone();
    let s = TestServer::start_with(move |c, _| c.passive_ports = Some(range));
    let mut c = s.login("user");
    for _ in 0..1000 {
        c.pasv();
    }
    c.cmd("NOOP", 200);
    assert!(
        util::wait_until(Duration::from_secs(5), || held_sockets(ports.clone()) <= 1),
        "listeners left: {:?}",
        sockets_on(ports.clone())
    );
    drop(c);
    assert!(util::wait_until(Duration::from_secs(5), || held_sockets(
        ports.clone()
    ) == 0));

    let two = private_ports(1, 2);
    let range = two.clone();
    let s = TestServer::start_with(move |c, _| c.passive_ports = Some(range));
    let mut a = s.login("user");
    let mut b = s.login("user");
    let mut third = s.login("user");
    a.pasv();
    b.pasv();
    third.cmd("PASV", 425);
    third.cmd("EPSV", 425);
    // A freed port is used again.
    a.cmd("ABOR", 225);
    assert!(util::wait_until(Duration::from_secs(5), || {
        let r = ask(&mut third, "PASV");
        r.code == 227
    }));
    drop((a, b, third));
}

/// Class 11, ABOR and dropped data connections in a loop (descriptor leaks on the abort
/// path, where the data channel, a pending reply and the file all have to be let go in
/// every order; pyftpdlib's ABOR handling is the reference): 1000 rounds in one session
/// leave no socket held, the session answers, and a new session works.
#[test]
fn attack_abor_and_dropped_data_connections_repeated_leak_nothing() {
    let ports = private_ports(2, 100);
    let range = ports.clone();
    let s = TestServer::start_with(move |c, _| c.passive_ports = Some(range));
    std::fs::write(s.root.join("big"), vec![7u8; 4 << 20]).unwrap();
    let mut c = s.login("user");
    c.cmd("TYPE I", 200);
    for i in 0..1000 {
        let data = TcpStream::connect(c.pasv()).unwrap();
        c.cmd("RETR big", 125);
        if i % 2 == 0 {
            // Dropped first, then ABOR.
            drop(data);
            c.send("ABOR");
        } else {
            // ABOR first, then dropped.
            c.send("ABOR");
            drop(data);
        }
        c.send("NOOP");
        reply_until(&mut c, 200);
    }
    c.cmd("NOOP", 200);
    assert!(
        util::wait_until(Duration::from_secs(5), || held_sockets(ports.clone()) == 0),
        "sockets held: {:?}",
        sockets_on(ports.clone())
    );
    let mut fresh = s.login("user");
    assert_eq!(fresh.retr("RETR big").len(), 4 << 20);
    c.cmd("QUIT", 221);
}

/// Class 13, cross-protocol attacks (ALPACA, Brinkmann et al., USENIX Security 2021): a
/// browser led to send HTTP to the FTP port has its request lines answered one by one, and
/// the answers reflected. pyftpdlib answers every line with 500; vsftpd closes on the
/// first line that looks like HTTP. Here an HTTP line before login closes at once, and
/// more than `max_unknown_commands_before_login` (3) unknown commands before login close
/// after their 500.
#[test]
fn attack_cross_protocol_http_and_unknown_commands_before_login_close() {
    let s = TestServer::start();
    for first in [
        "GET / HTTP/1.1",
        "POST /upload HTTP/1.0",
        "Host: victim.example",
    ] {
        let mut c = s.client();
        c.send(format!("{first}\r\nHost: x\r\nUSER anonymous\r\nPASS x"));
        let r = c.expect(421);
        assert!(r.text().contains("HTTP"), "{r:?}");
        assert!(c.closed_by_server(), "{first}: still open");
    }
    // Unknown commands: three get their 500, the fourth its 500 and a 421.
    let mut c = s.client();
    for _ in 0..3 {
        c.cmd("XYZZY", 500);
    }
    c.cmd("BOGUS", 500);
    assert_eq!(c.expect(421).lines, ["421 Too many unknown commands."]);
    assert!(c.closed_by_server());
    // Known commands refused before login do not count; logged in, there is no limit.
    let mut c = s.client();
    c.cmd("XYZZY", 500);
    c.cmd("PWD", 530);
    c.cmd("XYZZY", 500);
    c.cmd("RETR x", 530);
    c.cmd("XYZZY", 500);
    c.login("user", "pass");
    for _ in 0..10 {
        c.cmd("XYZZY", 500);
    }
    c.cmd("GET / HTTP/1.1", 500);
    c.cmd("NOOP", 200);
    // 0 turns both checks off, as in pyftpdlib.
    let s = TestServer::start_with(|c, _| c.max_unknown_commands_before_login = 0);
    let mut c = s.client();
    c.cmd("GET / HTTP/1.1", 500);
    for _ in 0..10 {
        c.cmd("XYZZY", 500);
    }
    c.login("user", "pass");
}

/// Class 14, hostile restart markers (a marker past 2^63 makes a signed seek fail or wrap,
/// one past the end makes a sparse file on servers that seek blindly; pyftpdlib's `int()`
/// takes any size and checks it against the file): each gets a clear reply, the next RETR
/// or STOR neither panics nor seeks past the file, and REST+STOR never makes a sparse file
/// larger than the file was.
#[test]
fn attack_hostile_rest_markers_get_clear_replies() {
    let s = TestServer::start();
    std::fs::write(s.root.join("f"), b"0123456789").unwrap();
    let mut c = s.login("user");
    c.cmd("TYPE I", 200);
    for (arg, code) in [
        ("18446744073709551616", 501),
        ("-1", 501),
        ("1e3", 501),
        ("0x10", 501),
        ("", 501),
        ("5 5", 501),
        ("+5", 350),
    ] {
        c.cmd(format!("REST {arg}").trim_end(), code);
    }
    assert_eq!(c.retr("RETR f"), b"56789");
    for big in ["18446744073709551615", "9223372036854775808", "11"] {
        c.cmd(format!("REST {big}"), 350);
        c.pasv();
        c.cmd("RETR f", 554);
        c.cmd(format!("REST {big}"), 350);
        c.pasv();
        c.cmd("STOR f", 554);
    }
    assert_eq!(std::fs::metadata(s.root.join("f")).unwrap().len(), 10);
    // A restart inside the file writes from there, and the file ends where the upload
    // ends (docs/compliance.md, STOR); one at its end appends.
    c.cmd("REST 4", 350);
    c.stor("STOR f", b"xy");
    assert_eq!(std::fs::read(s.root.join("f")).unwrap(), b"0123xy");
    c.cmd("REST 6", 350);
    c.stor("STOR f", b"!");
    assert_eq!(std::fs::read(s.root.join("f")).unwrap(), b"0123xy!");
    // REST on a missing file, and REST before APPE or STOU: refused.
    c.cmd("REST 5", 350);
    c.pasv();
    c.cmd("STOR missing", 550);
    assert!(!s.root.join("missing").exists());
    c.cmd("REST 5", 350);
    c.cmd("APPE f", 450);
    c.cmd("REST 5", 350);
    c.cmd("STOU", 450);
    c.cmd("NOOP", 200);
}

/// FTPS attack classes, with Python's ftplib as the TLS client.
#[cfg(feature = "tls")]
mod tls {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpStream;
    use std::process::{Command, Stdio};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use ftpdlib::{Config, DummyAuthorizer, FtpServer, StopHandle, TlsConfig, TlsRequired};

    use super::util;

    /// CPU time (user + system) used so far by this process's thread named `name`.
    fn thread_cpu(name: &str) -> Duration {
        let tick = Duration::from_secs(1) / clk_tck();
        for task in std::fs::read_dir("/proc/self/task").unwrap() {
            let dir = task.unwrap().path();
            let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
            if comm.trim_end() != name {
                continue;
            }
            let stat = std::fs::read_to_string(dir.join("stat")).unwrap();
            // Fields after the ")" that ends the name: utime and stime are the 12th and 13th.
            let rest = &stat[stat.rfind(')').unwrap() + 2..];
            let f: Vec<u64> = rest
                .split_whitespace()
                .map(|x| x.parse().unwrap_or(0))
                .collect();
            return tick * (f[11] + f[12]) as u32;
        }
        panic!("no thread named {name}");
    }

    fn clk_tck() -> u32 {
        // SAFETY: sysconf reads a constant of the system; no memory is involved.
        let n = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        u32::try_from(n).unwrap_or(100)
    }

    fn tls_config() -> TlsConfig {
        let data = format!("{}/tests/data", env!("CARGO_MANIFEST_DIR"));
        TlsConfig::from_pem_files(format!("{data}/cert.pem"), format!("{data}/key.pem"))
            .expect("test certificate")
    }

    /// A server with "user"/"pass" on a thread named `name`, so that its CPU time can be
    /// read; stopped when dropped.
    struct Named {
        addr: std::net::SocketAddr,
        stop: StopHandle,
        thread: Option<std::thread::JoinHandle<()>>,
        _root: util::TempDir,
    }

    impl Named {
        fn start(name: &str, tls: TlsConfig) -> Named {
            util::init();
            let root = util::TempDir::new("tls-root");
            let mut auth = DummyAuthorizer::new();
            auth.add_user("user", "pass", root.path(), "elradfmwMT")
                .unwrap();
            let mut config = Config::new(Arc::new(auth));
            config.auth_failed_timeout = Duration::ZERO;
            config.tls = Some(tls);
            let server = FtpServer::bind("127.0.0.1:0", config).expect("bind");
            let addr = server.local_addrs()[0];
            let stop = server.stop_handle();
            let thread = std::thread::Builder::new()
                .name(name.to_string())
                .spawn(move || {
                    let mut server = server;
                    server.serve_forever(None, None).expect("serve_forever");
                })
                .unwrap();
            Named {
                addr,
                stop,
                thread: Some(thread),
                _root: root,
            }
        }
    }

    impl Drop for Named {
        fn drop(&mut self) {
            self.stop.close_all();
            if let Some(t) = self.thread.take() {
                let _ = t.join();
            }
        }
    }

    /// Runs `script` under python3 with the server's host and port as arguments.
    fn python(script: &str, addr: std::net::SocketAddr) -> std::process::Child {
        Command::new("python3")
            .args([
                "-c",
                script,
                &addr.ip().to_string(),
                &addr.port().to_string(),
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3")
    }

    const CONNECT: &str = r#"
import ftplib, socket, ssl, sys, time
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
f = ftplib.FTP_TLS(context=ctx, timeout=20)
f.connect(sys.argv[1], int(sys.argv[2]))
"#;

    /// Class 10, handshakes never finished (clients that hold a connection in the TLS
    /// handshake, the reason for ProFTPD's TLSTimeoutHandshake; a reactor must neither
    /// wait for ever nor spin on such a socket): after AUTH TLS
    /// on the control connection, and on a PROT P data connection, a client that sends
    /// nothing is closed after `handshake_timeout`, and the reactor thread stays idle
    /// meanwhile. (ftps.rs `stalled_or_failed_handshakes_end_and_free_the_slot` has the
    /// implicit-TLS control connection, without the CPU measure.)
    #[test]
    fn attack_stalled_tls_handshakes_time_out_without_spinning() {
        if !util::require("python3") {
            return;
        }
        let s = Named::start(
            "ftpd-hs",
            tls_config().with_handshake_timeout(Duration::from_secs(2)),
        );
        // Control: AUTH TLS, 234, then silence.
        let mut c = TcpStream::connect(s.addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut r = BufReader::new(c.try_clone().unwrap());
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        c.write_all(b"AUTH TLS\r\n").unwrap();
        line.clear();
        r.read_line(&mut line).unwrap();
        assert!(line.starts_with("234"), "{line}");
        let start = Instant::now();
        let cpu = thread_cpu("ftpd-hs");
        std::thread::sleep(Duration::from_millis(1500));
        let spent = thread_cpu("ftpd-hs") - cpu;
        assert!(spent < Duration::from_millis(200), "reactor used {spent:?}");
        let mut rest = Vec::new();
        let _ = r.read_to_end(&mut rest);
        let waited = start.elapsed();
        assert!(
            waited >= Duration::from_millis(1500) && waited < Duration::from_secs(6),
            "closed after {waited:?}"
        );

        // Data: PROT P, PASV, connect, send nothing. Until a transfer command comes the
        // handshake is not timed (clients such as lftp start it only after the 150; the
        // session's idle timeout covers a client that never goes on); from the command on,
        // `handshake_timeout` ends it.
        let script = format!(
            "{CONNECT}{}",
            r#"
f.login('user', 'pass')
f.prot_p()
h, p = ftplib.parse227(f.sendcmd('PASV'))
d = socket.create_connection((h, p))
print('connected', flush=True)
sys.stdin.readline()
f.putcmd('LIST')
print(f.getline(), flush=True)
t = time.time()
d.settimeout(20)
try:
    got = d.recv(1)
except OSError as e:
    got = b''
print('closed', time.time() - t, len(got), flush=True)
print(f.getline(), flush=True)
print(f.sendcmd('NOOP'), flush=True)
"#
        );
        let mut py = python(&script, s.addr);
        let mut out = BufReader::new(py.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "connected");
        for phase in ["before the transfer command", "after it"] {
            let cpu = thread_cpu("ftpd-hs");
            std::thread::sleep(Duration::from_millis(1000));
            let spent = thread_cpu("ftpd-hs") - cpu;
            assert!(
                spent < Duration::from_millis(200),
                "{phase}: reactor used {spent:?}"
            );
            if phase.starts_with("before") {
                py.stdin.as_mut().unwrap().write_all(b"go\n").unwrap();
            }
        }
        let mut rest = String::new();
        out.read_to_string(&mut rest).unwrap();
        assert!(py.wait().unwrap().success(), "{rest}");
        let lines: Vec<&str> = rest.lines().collect();
        assert!(lines[0].starts_with("125"), "{rest}");
        let closed: Vec<&str> = lines[1].split(' ').collect();
        assert_eq!(closed[0], "closed", "{rest}");
        let after: f64 = closed[1].parse().unwrap();
        assert!((0.5..6.0).contains(&after), "data closed after {after} s");
        // The transfer failed with its reply, and the session goes on.
        assert!(lines[2].starts_with("522"), "{rest}");
        assert!(lines[3].starts_with("200"), "{rest}");
    }

    /// Class 12, TLS required on the control connection (RFC 4217 section 4; the
    /// credentials-in-clear downgrade that vsftpd's `force_local_logins_ssl` and ProFTPD's
    /// TLSRequired exist for): USER in the clear is 534, a PASS after it is refused before
    /// the password is looked at, and AUTH after a protected login is 503.
    #[test]
    fn attack_tls_required_refuses_clear_logins_and_a_second_auth() {
        if !util::require("python3") {
            return;
        }
        let s = Named::start(
            "ftpd-req",
            tls_config().with_control_required(TlsRequired::Everyone),
        );
        let mut c = util::Client::connect(s.addr);
        c.cmd("USER user", 534);
        c.cmd("PASS pass", 503);
        c.cmd("USER anonymous", 534);
        c.cmd("PBSZ 0", 503);
        c.cmd("PROT P", 503);
        c.cmd("NOOP", 200);
        let script = format!(
            "{CONNECT}{}",
            r#"
f.login('user', 'pass')
for cmd in ('AUTH TLS', 'AUTH SSL'):
    try:
        print(f.sendcmd(cmd), flush=True)
    except ftplib.error_perm as e:
        print(e, flush=True)
print(f.sendcmd('PWD'), flush=True)
"#
        );
        let py = python(&script, s.addr);
        let out = py.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{text}");
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("503"), "{text}");
        assert!(lines[1].starts_with("503"), "{text}");
        assert!(lines[2].starts_with("257"), "{text}");
    }
}

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
