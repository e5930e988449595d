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

/// CPU time (user + system) used so far by this process's thread named `name`.
fn thread_cpu(name: &str) -> Duration {
    let tick = Duration::from_secs(1) / unsafe_clk_tck();
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

fn unsafe_clk_tck() -> u32 {
    // SAFETY: sysconf reads a constant of the system; no memory is involved.
    let n = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u32::try_from(n).unwrap_or(100)
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
        assert!(r.text().contains("refused") || r.text().contains("foreign"), "{r:?}");
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

/// Class 3, pathological globs (vsftpd CVE-2011-0762, the glibc fnmatch blow-up of
/// CVE-2010-2632 in ProFTPD and FreeBSD ftpd): no argument is globbed, so a pattern is a
/// literal name looked up once, answered at once.
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
    assert!(String::from_utf8(c.retr("LIST {b,c}")).unwrap().contains("{b,c}"));
    c.cmd("SIZE [a", 213);
}

/// Class 4, a line without end (memory exhaustion by one endless command line, as in
/// CVE-2019-12815-era ProFTPD reports and pyftpdlib's own line limit): 10 MB with no CRLF
/// leaves the process's resident memory where it was, is answered "500 Command too long."
/// and the session goes on once the line ends.
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

/// Class 5, Telnet IAC runs and unbalanced quotes (the IAC handling bugs of wu-ftpd and
/// the crashes on quoted names fuzzers find, e.g. pyftpdlib's line decoding): every such
/// line gets a reply and the session goes on.
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
        std::fs::metadata(s.root.join("f")).unwrap().permissions().mode() & 0o7777,
        0o600
    );
    c.cmd("NOOP", 200);
}
