//! One test per class of attack that has hit FTP servers, each naming its source.

use super::*;

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
