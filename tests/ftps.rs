//! FTPS (RFC 4217): explicit and implicit TLS, PROT P data connections, the policies, the
//! STARTTLS injection, truncation and handshake failures; then curl, Python's ftplib and
//! lftp, files compared byte for byte.
//!
//! The server uses the test-only certificate in tests/data (see docs/ftps.md for how it
//! was made); clients do not verify it.
#![cfg(feature = "tls")]

mod ftps_client;
mod util;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use ftpdlib::{Config, TlsRequired};
use rustls::ClientConfig;

use ftps_client::{
    client_config, client_config_for, read_reply, tls_config, tls_over, with_tls, Ftps,
    NO_REUSE_522, VERSIONS,
};
use util::{assert_same, random_bytes, require, run, text_and_crlf, TempDir, TestServer};

// ---- protocol ---------------------------------------------------------------------------

#[test]
fn feat_auth_pbsz_prot_replies() {
    let s = with_tls(|_| {});
    let mut c = s.client();
    let feat = c.cmd("FEAT", 211).text();
    for f in [" AUTH TLS", " PBSZ", " PROT"] {
        assert!(feat.lines().any(|l| l == f), "{feat}");
    }
    c.cmd("PBSZ 0", 503);
    c.cmd("PROT P", 503);
    c.cmd("AUTH KERBEROS_V4", 504);
    c.cmd("CCC", 534);
    c.login("user", "pass");
    // Plain data still works when nothing requires TLS.
    assert_eq!(c.retr("LIST"), b"");

    let mut t = Ftps::explicit(s.addr);
    t.cmd("AUTH TLS", 503);
    t.cmd("PROT P", 503);
    t.cmd("PBSZ 0", 200);
    t.cmd("PROT S", 536);
    t.cmd("PROT E", 536);
    t.cmd("PROT X", 504);
    t.cmd("PROT C", 200);
    t.cmd("PROT P", 200);
    t.cmd("CCC", 534);
    let stat = t.cmd("STAT", 211);
    assert!(
        stat.contains("Control connection: TLS; data protection: P"),
        "{stat}"
    );
    t.cmd("QUIT", 221);
}

#[test]
fn auth_without_certificate_is_502() {
    let s = TestServer::start();
    let mut c = s.client();
    c.cmd("AUTH TLS", 502);
    let feat = c.cmd("FEAT", 211).text();
    assert!(!feat.contains("AUTH"), "{feat}");
}

#[test]
fn plaintext_after_auth_tls_is_discarded() {
    // CVE-2011-1575 class: a man in the middle appends a command to AUTH TLS in the same
    // segment; it must never run, before or after the switch.
    let s = with_tls(|_| {});
    let tcp = TcpStream::connect(s.addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut plain = BufReader::new(tcp.try_clone().unwrap());
    assert_eq!(read_reply(&mut plain).0, 220);
    (&tcp)
        .write_all(b"AUTH TLS\r\nNOOP\r\nUSER evil\r\n")
        .unwrap();
    assert_eq!(read_reply(&mut plain).0, 234);
    assert!(plain.buffer().is_empty(), "plain bytes after 234");
    let config = client_config();
    let mut c = Ftps {
        r: BufReader::new(tls_over(&config, tcp)),
        config,
    };
    // The first reply over TLS answers our SYST, not the injected NOOP or USER.
    let (code, text) = {
        c.send("SYST");
        c.reply()
    };
    assert_eq!(code, 215, "{text}");
    c.cmd("PASS x", 503);
}

#[test]
fn control_and_data_policies() {
    let s = with_tls(|t| {
        t.control_required = TlsRequired::ExceptAnonymous;
        t.data_required = TlsRequired::ExceptAnonymous;
    });
    std::fs::write(s.root.join("f.txt"), b"data").unwrap();
    let mut c = s.client();
    c.cmd("USER user", 534);
    c.cmd("USER anonymous", 331);
    c.cmd("PASS a@b", 230);
    assert_eq!(c.retr("RETR f.txt"), b"data");

    let mut t = Ftps::explicit(s.addr);
    t.cmd("USER user", 331);
    t.cmd("PASS pass", 230);
    t.cmd("EPSV", 521);
    t.cmd("PASV", 521);
    t.cmd("PORT 127,0,0,1,200,10", 521);
    t.cmd("PBSZ 0", 200);
    t.cmd("PROT C", 534);
    t.cmd("PROT P", 200);
    assert_eq!(t.retr("RETR f.txt"), b"data");

    let s = with_tls(|t| t.control_required = TlsRequired::Everyone);
    let mut c = s.client();
    c.cmd("USER anonymous", 534);
}

#[test]
fn prot_p_transfers_passive_and_active() {
    let s = with_tls(|_| {});
    let body = random_bytes(3 << 20, 61);
    std::fs::write(s.root.join("big.bin"), &body).unwrap();
    std::fs::write(s.root.join("text.txt"), b"a\nb\n").unwrap();
    let mut c = Ftps::explicit(s.addr);
    c.login_private("user");
    assert_same(&c.retr("RETR big.bin"), &body);
    c.stor("STOR up.bin", &body);
    assert_same(&std::fs::read(s.root.join("up.bin")).unwrap(), &body);
    let list = String::from_utf8(c.retr("LIST")).unwrap();
    assert!(
        list.contains("big.bin") && list.contains("up.bin"),
        "{list}"
    );
    // REST and TYPE A under TLS.
    c.cmd("REST 1000", 350);
    assert_same(&c.retr("RETR big.bin"), &body[1000..]);
    c.cmd("TYPE A", 200);
    assert_eq!(c.retr("RETR text.txt"), b"a\r\nb\r\n");
    // A text of several file reads (each of half the TLS chunk, converted), and a binary
    // file that ends inside the second.
    let (long, long_crlf) = text_and_crlf(700_000, 62);
    std::fs::write(s.root.join("long.txt"), &long).unwrap();
    assert_same(&c.retr("RETR long.txt"), &long_crlf);
    c.cmd("TYPE I", 200);
    assert_same(&c.retr("RETR long.txt"), &long);

    // Active: PORT and EPRT; the server connects, the client is still the TLS client.
    for extended in [false, true] {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        if extended {
            c.cmd(&format!("EPRT |1|127.0.0.1|{port}|"), 200);
        } else {
            c.cmd(
                &format!("PORT 127,0,0,1,{},{}", port >> 8, port & 0xff),
                200,
            );
        }
        let (tcp, _) = l.accept().unwrap();
        c.send("RETR big.bin");
        assert!(matches!(c.reply().0, 125 | 150));
        let mut data = c.data(tcp);
        let mut got = Vec::new();
        data.read_to_end(&mut got).unwrap();
        c.cmd_reply(226);
        assert_same(&got, &body);
    }
}

#[test]
fn abor_under_tls() {
    let s = with_tls(|_| {});
    std::fs::write(s.root.join("big.bin"), random_bytes(32 << 20, 12)).unwrap();
    std::fs::write(s.root.join("small.txt"), b"small").unwrap();
    let mut c = Ftps::explicit(s.addr);
    c.login_private("user");
    let tcp = TcpStream::connect(c.pasv()).unwrap();
    c.send("RETR big.bin");
    assert!(matches!(c.reply().0, 125 | 150));
    let mut data = c.data(tcp);
    let mut first = vec![0u8; 1 << 20];
    data.read_exact(&mut first).unwrap();
    // ftplib's FTP_TLS sends ABOR in band over TLS (no urgent data).
    c.send("ABOR");
    assert_eq!(c.reply().0, 426);
    assert_eq!(c.reply().0, 226);
    drop(data);
    c.cmd("NOOP", 200);
    assert_eq!(c.retr("RETR small.txt"), b"small");
}

#[test]
fn implicit_tls() {
    let s = with_tls(|t| t.implicit = true);
    std::fs::write(s.root.join("f.bin"), random_bytes(100_000, 3)).unwrap();
    let mut c = Ftps::implicit(s.addr);
    // Implicit sessions start with protected data; PBSZ/PROT are still accepted.
    c.cmd("USER user", 331);
    c.cmd("PASS pass", 230);
    assert_same(
        &c.retr("RETR f.bin"),
        &std::fs::read(s.root.join("f.bin")).unwrap(),
    );
    c.cmd("PBSZ 0", 200);
    c.cmd("PROT P", 200);
    c.cmd("QUIT", 221);
}

#[test]
fn data_connection_must_resume_the_control_session() {
    let s = with_tls(|_| {});
    std::fs::write(s.root.join("f.txt"), b"data").unwrap();
    let mut c = Ftps::explicit(s.addr);
    c.login_private("user");
    // A data connection from a client configuration of its own cannot resume: refused.
    let tcp = TcpStream::connect(c.pasv()).unwrap();
    c.send("RETR f.txt");
    assert!(matches!(c.reply().0, 125 | 150));
    let mut stranger = tls_over(&client_config(), tcp);
    let mut out = Vec::new();
    assert!(stranger.read_to_end(&mut out).is_err() || out.is_empty());
    let text = c.cmd_reply(522);
    assert_eq!(text, NO_REUSE_522);
    // The session goes on.
    assert_eq!(c.retr("RETR f.txt"), b"data");

    // Relaxed: the same is accepted.
    let s = with_tls(|t| t.data_session_reuse_required = false);
    std::fs::write(s.root.join("f.txt"), b"data").unwrap();
    let mut c = Ftps::explicit(s.addr);
    c.login_private("user");
    let tcp = TcpStream::connect(c.pasv()).unwrap();
    c.send("RETR f.txt");
    assert!(matches!(c.reply().0, 125 | 150));
    let mut stranger = tls_over(&client_config(), tcp);
    let mut out = Vec::new();
    stranger.read_to_end(&mut out).unwrap();
    assert_eq!(out, b"data");
    c.cmd_reply(226);
}

/// Starts `line` (a download) on a data connection of `c` that handshakes with
/// `data_config`, reading it on a thread: the thread returns what the download read, or
/// `None` if the connection failed.
fn download_with(
    c: &mut Ftps,
    data_config: &Arc<ClientConfig>,
    line: &str,
) -> std::thread::JoinHandle<Option<Vec<u8>>> {
    let tcp = TcpStream::connect(c.pasv()).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    c.send(line);
    let (code, text) = c.reply();
    assert!(code == 125 || code == 150, "{line}: {text}");
    let mut data = tls_over(data_config, tcp);
    std::thread::spawn(move || {
        let mut out = Vec::new();
        data.read_to_end(&mut out).ok().map(|_| out)
    })
}

#[test]
fn data_connections_resume_sessions_of_the_same_users_other_control_connections() {
    // Go's clients (rclone) keep one session cache for all their connections to a host and
    // resume a data connection with the newest ticket of any control connection.
    let s = with_tls(|_| {});
    let body = random_bytes(200_000, 17);
    std::fs::write(s.root.join("f.bin"), &body).unwrap();
    for (version, versions) in VERSIONS {
        let mut a = Ftps::explicit_with(s.addr, client_config_for(versions));
        a.login_private("user");
        // B: the same user from the same address, on a configuration of its own.
        let other = client_config_for(versions);
        let mut b = Ftps::explicit_with(s.addr, Arc::clone(&other));
        b.login_private("user");
        let got = download_with(&mut a, &other, "RETR f.bin").join().unwrap();
        assert_eq!(a.cmd_reply(226), "226 Transfer complete.\r\n", "{version}");
        assert_same(&got.expect("download"), &body);
        // Once B has ended, its tickets still resume A's data connections.
        b.cmd("QUIT", 221);
        let got = download_with(&mut a, &other, "RETR f.bin").join().unwrap();
        a.cmd_reply(226);
        assert_same(&got.expect("download"), &body);

        // Another user's session, from the same address: refused.
        let stranger = client_config_for(versions);
        let mut ro = Ftps::explicit_with(s.addr, Arc::clone(&stranger));
        ro.login_private("ro");
        let got = download_with(&mut a, &stranger, "RETR f.bin")
            .join()
            .unwrap();
        assert_eq!(a.cmd_reply(522), NO_REUSE_522, "{version}");
        assert!(got.unwrap_or_default().is_empty(), "{version}: data leaked");
        // A session that never logs in and ends: refused as soon as it ends.
        let anon = client_config_for(versions);
        let mut idle = Ftps::explicit_with(s.addr, Arc::clone(&anon));
        idle.cmd("FEAT", 211);
        let start = std::time::Instant::now();
        let reader = download_with(&mut a, &anon, "RETR f.bin");
        std::thread::sleep(Duration::from_millis(200));
        idle.cmd("QUIT", 221);
        assert_eq!(a.cmd_reply(522), NO_REUSE_522, "{version}");
        assert!(start.elapsed() < Duration::from_secs(10));
        assert!(reader.join().unwrap().unwrap_or_default().is_empty());
        a.cmd("NOOP", 200);
    }
}

#[test]
fn a_resumption_waits_for_the_login_of_the_control_connection_it_came_from() {
    // rclone's newest control connection may hand its ticket to another connection's data
    // connection before its own PASS has been answered.
    let s = with_tls(|_| {});
    let body = random_bytes(100_000, 19);
    std::fs::write(s.root.join("f.bin"), &body).unwrap();
    for (version, versions) in VERSIONS {
        let mut a = Ftps::explicit_with(s.addr, client_config_for(versions));
        a.login_private("user");
        let other = client_config_for(versions);
        let mut b = Ftps::explicit_with(s.addr, Arc::clone(&other));
        // Read a reply over TLS, so the client has taken the TLS 1.3 tickets.
        b.cmd("FEAT", 211);
        let reader = download_with(&mut a, &other, "RETR f.bin");
        std::thread::sleep(Duration::from_millis(300));
        assert!(
            !reader.is_finished(),
            "{version}: decided before the owner logged in"
        );
        b.cmd("USER user", 331);
        b.cmd("PASS pass", 230);
        let got = reader.join().unwrap();
        a.cmd_reply(226);
        assert_same(&got.expect("download after the login"), &body);
    }
}

#[test]
fn a_refused_data_connection_closes_after_the_522() {
    let s = with_tls(|_| {});
    std::fs::write(s.root.join("f.txt"), b"data").unwrap();
    let mut c = Ftps::explicit(s.addr);
    c.login_private("user");
    let tcp = TcpStream::connect(c.pasv()).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    c.send("RETR f.txt");
    assert!(matches!(c.reply().0, 125 | 150));
    let mut stranger = tls_over(&client_config(), tcp);
    let mut out = Vec::new();
    let _ = stranger.read_to_end(&mut out);
    assert!(
        out.is_empty(),
        "data sent to a connection that did not resume"
    );
    // Wait for the TCP close of the data connection (its FIN, or a reset) ...
    let tcp = &mut stranger.sock;
    let mut rest = [0u8; 256];
    while matches!(tcp.read(&mut rest), Ok(n) if n > 0) {}
    // ... by then the 522 is waiting on the control connection.
    let control = &c.r.get_ref().sock;
    control.set_nonblocking(true).unwrap();
    let mut peek = [0u8; 1];
    assert!(
        matches!(control.peek(&mut peek), Ok(1)),
        "the data connection closed before the 522 was sent"
    );
    control.set_nonblocking(false).unwrap();
    assert_eq!(c.cmd_reply(522), NO_REUSE_522);
    c.cmd("NOOP", 200);
}

#[test]
fn plain_data_connection_under_prot_p_is_refused() {
    let s = with_tls(|t| t.handshake_timeout = Duration::from_millis(500));
    let mut c = Ftps::explicit(s.addr);
    c.login_private("user");
    // An upload that skips TLS: the bytes are no handshake, nothing is stored.
    let mut tcp = TcpStream::connect(c.pasv()).unwrap();
    c.send("STOR plain.bin");
    assert!(matches!(c.reply().0, 125 | 150));
    let _ = tcp.write_all(&random_bytes(100_000, 9));
    let text = c.cmd_reply(522);
    assert!(text.contains("TLS"), "{text}");
    assert_eq!(std::fs::read(s.root.join("plain.bin")).unwrap(), b"");
    // A download that waits for plain bytes: the handshake times out, the session lives.
    std::fs::write(s.root.join("f.txt"), b"data").unwrap();
    let mut tcp = TcpStream::connect(c.pasv()).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.send("RETR f.txt");
    assert!(matches!(c.reply().0, 125 | 150));
    let text = c.cmd_reply(522);
    assert!(text.contains("timed out"), "{text}");
    let mut out = Vec::new();
    let _ = tcp.read_to_end(&mut out);
    assert!(!out.windows(4).any(|w| w == b"data"), "plaintext leaked");
    c.cmd("NOOP", 200);
    // A data connection closed before its handshake ends at once, not at the timeout.
    let s = with_tls(|t| t.handshake_timeout = Duration::from_secs(60));
    std::fs::write(s.root.join("f.txt"), b"data").unwrap();
    let mut c = Ftps::explicit(s.addr);
    c.login_private("user");
    let tcp = TcpStream::connect(c.pasv()).unwrap();
    c.send("RETR f.txt");
    assert!(matches!(c.reply().0, 125 | 150));
    let start = std::time::Instant::now();
    drop(tcp);
    let text = c.cmd_reply(522);
    assert!(text.contains("closed during the handshake"), "{text}");
    assert!(start.elapsed() < Duration::from_secs(10));
}

#[test]
fn upload_cut_without_close_notify_is_426_when_close_notify_is_required() {
    let s = with_tls(|t| t.data_close_notify_required = true);
    let mut c = Ftps::explicit(s.addr);
    c.login_private("user");
    let tcp = TcpStream::connect(c.pasv()).unwrap();
    c.send("STOR cut.bin");
    assert!(matches!(c.reply().0, 125 | 150));
    let mut data = c.data(tcp);
    data.write_all(&random_bytes(200_000, 5)).unwrap();
    data.flush().unwrap();
    // TCP FIN without a TLS close_notify: a truncation attack or a crashed client.
    data.sock.shutdown(Shutdown::Write).unwrap();
    let text = c.cmd_reply(426);
    assert!(
        text.contains("close_notify") || text.contains("EOF"),
        "{text}"
    );
}

/// How an upload's client ends its data connection.
#[derive(Debug, Clone, Copy)]
enum UploadEnd {
    /// Every record, then a TCP FIN without close_notify.
    FinAfterRecords,
    /// A TCP FIN in the middle of the last record.
    FinInsideRecord,
    /// Every record, then a reset.
    Reset,
}

/// Uploads `body` as `name` over a data connection of `c` that ends as `end`; the reply.
fn upload_ending(c: &mut Ftps, name: &str, body: &[u8], end: UploadEnd) -> String {
    let tcp = TcpStream::connect(c.pasv()).unwrap();
    c.send(&format!("STOR {name}"));
    let (code, text) = c.reply();
    assert!(code == 125 || code == 150, "{text}");
    let mut data = c.data(tcp);
    while data.conn.is_handshaking() {
        data.conn.complete_io(&mut data.sock).unwrap();
    }
    // The records of the whole body, written to the socket by hand.
    data.conn.set_buffer_limit(None);
    data.conn.writer().write_all(body).unwrap();
    let mut records = Vec::new();
    while data.conn.wants_write() {
        data.conn.write_tls(&mut records).unwrap();
    }
    let sent = match end {
        UploadEnd::FinInsideRecord => &records[..records.len() - 100],
        _ => &records[..],
    };
    data.sock.write_all(sent).unwrap();
    match end {
        UploadEnd::Reset => {
            // Let the server read the records, then reset: SO_LINGER with a zero timeout.
            std::thread::sleep(Duration::from_millis(300));
            let linger = libc::linger {
                l_onoff: 1,
                l_linger: 0,
            };
            use std::os::fd::AsRawFd;
            // SAFETY: a valid socket descriptor and a pointer to a local of the size given.
            let rc = unsafe {
                libc::setsockopt(
                    data.sock.as_raw_fd(),
                    libc::SOL_SOCKET,
                    libc::SO_LINGER,
                    (&linger as *const libc::linger).cast(),
                    std::mem::size_of::<libc::linger>() as libc::socklen_t,
                )
            };
            assert_eq!(rc, 0);
            drop(data);
        }
        _ => data.sock.shutdown(Shutdown::Write).unwrap(),
    }
    let (_, text) = c.reply();
    text
}

#[test]
fn uploads_from_a_client_with_nagle_on_end_without_a_delayed_ack() {
    // A client that leaves Nagle's algorithm on and waits for the server's close_notify
    // before closing (Python's ftplib) holds its own close_notify, a small record, until its
    // data is acknowledged. The server acknowledges once it has drained the socket, not at
    // the kernel's delayed-ACK timer (40 ms on Linux), which about every second upload
    // waited for.
    let s = with_tls(|_| {});
    let body = random_bytes(1 << 20, 64);
    let mut c = Ftps::explicit(s.addr);
    c.login_private("user");
    let mut slow = 0;
    for i in 0..8 {
        let tcp = TcpStream::connect(c.pasv()).unwrap();
        c.send(&format!("STOR nagle{i}.bin"));
        let (code, text) = c.reply();
        assert!(code == 125 || code == 150, "{text}");
        let mut data = c.data(tcp);
        data.write_all(&body).unwrap();
        data.flush().unwrap();
        let sent = std::time::Instant::now();
        data.conn.send_close_notify();
        data.flush().unwrap();
        // Up to the server's close_notify, which answers ours.
        let mut rest = Vec::new();
        data.read_to_end(&mut rest).unwrap();
        if sent.elapsed() > Duration::from_millis(30) {
            slow += 1;
        }
        drop(data);
        c.cmd_reply(226);
        assert_same(
            &std::fs::read(s.root.join(&format!("nagle{i}.bin"))).unwrap(),
            &body,
        );
    }
    assert!(slow <= 1, "{slow} of 8 uploads ended after a delayed ACK");
}

#[test]
fn upload_ended_by_a_fin_between_records_is_226() {
    // Many OpenSSL- and Go-based clients close an upload without close_notify. A FIN
    // after whole records is taken for the end of the file, as pyftpdlib and proftpd do;
    // a FIN inside a record, or a reset, is a cut connection.
    let s = with_tls(|_| {});
    for (version, versions) in VERSIONS {
        let mut c = Ftps::explicit_with(s.addr, client_config_for(versions));
        c.login_private("user");
        for (i, n) in [1usize, 70_000, 3 << 20].into_iter().enumerate() {
            let body = random_bytes(n, 40 + i as u64);
            let text = upload_ending(&mut c, "fin.bin", &body, UploadEnd::FinAfterRecords);
            assert_eq!(text, "226 Transfer complete.\r\n", "{version}, {n} bytes");
            assert_same(&std::fs::read(s.root.join("fin.bin")).unwrap(), &body);
        }
        let body = random_bytes(300_000, 45);
        for end in [UploadEnd::FinInsideRecord, UploadEnd::Reset] {
            let text = upload_ending(&mut c, "cut.bin", &body, end);
            assert!(text.starts_with("426 "), "{version}, {end:?}: {text}");
        }
        c.cmd("NOOP", 200);
    }
}

#[test]
fn stalled_or_failed_handshakes_end_and_free_the_slot() {
    let s = TestServer::start_with(|c, server| {
        let mut t = tls_config();
        t.implicit = true;
        t.handshake_timeout = Duration::from_millis(300);
        c.tls = Some(t);
        server.max_cons = 1;
    });
    // A client that connects and never says hello is closed after the timeout.
    let mut silent = TcpStream::connect(s.addr).unwrap();
    silent
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buf = [0u8; 64];
    assert!(matches!(silent.read(&mut buf), Ok(0) | Err(_)));
    // The slot is free again: the next client gets in (retry while the close settles).
    assert!(util::wait_until(Duration::from_secs(5), || {
        let tcp = TcpStream::connect(s.addr).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let config = client_config();
        let mut r = BufReader::new(tls_over(&config, tcp));
        let mut line = String::new();
        r.read_line(&mut line).is_ok() && line.starts_with("220")
    }));
    // Garbage instead of a ClientHello: closed, no panic, and the server still serves.
    let mut junk = TcpStream::connect(s.addr).unwrap();
    junk.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    junk.write_all(b"USER anonymous\r\n").unwrap();
    let mut out = Vec::new();
    let _ = junk.read_to_end(&mut out);
    assert!(
        !out.starts_with(b"331"),
        "plaintext answered on an implicit port"
    );
    drop(junk);
    let mut c = {
        let mut tries = 0;
        loop {
            let tcp = TcpStream::connect(s.addr).unwrap();
            tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let config = client_config();
            let mut c = Ftps {
                r: BufReader::new(tls_over(&config, tcp)),
                config,
            };
            let mut line = String::new();
            if c.r.read_line(&mut line).is_ok() && line.starts_with("220") {
                break c;
            }
            tries += 1;
            assert!(tries < 50, "server does not serve after a failed handshake");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    c.cmd("NOOP", 200);
}

// ---- real clients -----------------------------------------------------------------------

/// curl that accepts the self-signed test certificate.
fn curl() -> Command {
    let mut c = util::curl();
    c.arg("-k");
    c
}

const SIZES: [usize; 4] = [0, 1, 64 * 1024, 20 << 20];

#[test]
fn curl_explicit_and_implicit() {
    if !require("curl") {
        return;
    }
    let local = TempDir::new("curl-tls");
    for implicit in [false, true] {
        let s = with_tls(move |t| {
            t.implicit = implicit;
            t.data_required = TlsRequired::Everyone;
            t.control_required = TlsRequired::Everyone;
        });
        let files = util::write_files(s.root.path(), &SIZES, 400);
        let (scheme, extra): (&str, &[&str]) = if implicit {
            ("ftps", &[])
        } else {
            ("ftp", &["--ssl-reqd"])
        };
        let url = |p: &str| format!("{scheme}://user:pass@127.0.0.1:{}/{p}", s.addr.port());
        for (name, body) in &files {
            let got = run(curl().args(extra).arg(url(name))).stdout;
            assert_same(&got, body);
            // Active mode is left to the other clients: curl 7.87 and 7.88 accept the
            // server's connection but never start TLS on it (fixed in curl 8.0).
            // Uploads: curl closes without reading anything after the handshake; no byte
            // may be lost (TLS 1.3 tickets are not sent on data connections).
            let src = local.join(name);
            std::fs::write(&src, body).unwrap();
            run(curl()
                .args(extra)
                .arg("-T")
                .arg(&src)
                .arg(url(&format!("up-{name}"))));
            assert_same(
                &std::fs::read(s.root.join(&format!("up-{name}"))).unwrap(),
                body,
            );
        }
        let list = String::from_utf8(run(curl().args(extra).arg(url(""))).stdout).unwrap();
        for (name, _) in &files {
            assert!(list.contains(name.as_str()), "{list}");
        }
        // Forcing TLS 1.2 works too (session ids and tickets of 1.2).
        let (name, body) = &files[2];
        let got = run(curl()
            .args(extra)
            .arg("--tls-max")
            .arg("1.2")
            .arg(url(name)))
        .stdout;
        assert_same(&got, body);
    }
}

const PY_FTPS: &str = r#"
import ftplib, io, ssl, sys
host, port, reuse, name = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1", sys.argv[4]
active = len(sys.argv) > 5
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE

class ReuseFTP_TLS(ftplib.FTP_TLS):
    """ftplib does not resume the control session on data connections; this does."""
    def ntransfercmd(self, cmd, rest=None):
        conn, size = ftplib.FTP.ntransfercmd(self, cmd, rest)
        if self._prot_p:
            conn = self.context.wrap_socket(conn, server_hostname=self.host,
                                            session=self.sock.session)
        return conn, size

cls = ReuseFTP_TLS if reuse else ftplib.FTP_TLS
ftp = cls(context=ctx, timeout=60)
ftp.connect(host, port)
ftp.login("user", "pass")
ftp.prot_p()
ftp.set_pasv(not active)
body = sys.stdin.buffer.read()
ftp.storbinary("STOR py-" + name, io.BytesIO(body))
got = io.BytesIO()
ftp.retrbinary("RETR py-" + name, got.write)
assert got.getvalue() == body, (len(got.getvalue()), len(body))
names = ftp.nlst()
assert "py-" + name in names, names
lines = []
ftp.retrlines("LIST", lines.append)
assert any(l.endswith("py-" + name) for l in lines), lines
ftp.quit()
print("ok")
"#;

#[test]
fn python_ftplib_prot_p() {
    if !require("python3") {
        return;
    }
    for reuse in [true, false] {
        let s = with_tls(move |t| t.data_session_reuse_required = reuse);
        for (i, n) in [0usize, 1, 100_000, 5 << 20, 70_000]
            .into_iter()
            .enumerate()
        {
            let body = random_bytes(n, 700 + i as u64);
            let name = format!("{n}.bin");
            // The last one in active mode (PORT).
            let active: &[&str] = if i == 4 { &["active"] } else { &[] };
            let mut child = Command::new("python3")
                .args(["-c", PY_FTPS, "127.0.0.1"])
                .arg(s.addr.port().to_string())
                .arg(if reuse { "1" } else { "0" })
                .arg(&name)
                .args(active)
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            child.stdin.take().unwrap().write_all(&body).unwrap();
            let out = child.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "python (reuse={reuse}, {n} bytes): {}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert_same(
                &std::fs::read(s.root.join(&format!("py-{name}"))).unwrap(),
                &body,
            );
        }
    }
}

#[test]
fn lftp_ssl_force() {
    if !require("lftp") {
        return;
    }
    let s = with_tls(|t| {
        t.control_required = TlsRequired::Everyone;
        t.data_required = TlsRequired::Everyone;
    });
    let local = TempDir::new("lftp");
    let body = random_bytes(3 << 20, 77);
    std::fs::write(s.root.join("down.bin"), &body).unwrap();
    std::fs::write(local.join("up.bin"), &body).unwrap();
    let script = format!(
        "set ftp:ssl-force true; set ftp:ssl-protect-data true; set ftp:ssl-protect-list true; \
         set ssl:verify-certificate no; set net:max-retries 1; set net:timeout 20; \
         get down.bin -o {dir}/down.bin; put {dir}/up.bin -o up.bin; cls -1; bye",
        dir = local.path().display()
    );
    let out = run(Command::new("lftp")
        .arg("-u")
        .arg("user,pass")
        .arg("-e")
        .arg(&script)
        .arg(format!("ftp://127.0.0.1:{}", s.addr.port())));
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(listing.contains("down.bin"), "{listing}");
    assert_same(&std::fs::read(local.join("down.bin")).unwrap(), &body);
    assert_same(&std::fs::read(s.root.join("up.bin")).unwrap(), &body);
}

#[test]
fn throttling_holds_under_tls() {
    // Per-transfer limits apply to the bytes of the file, not the TLS records around them.
    let limit = 1 << 20;
    let s = TestServer::start_with(move |c: &mut Config, _| {
        c.tls = Some(tls_config());
        c.dtp.write_limit = limit;
        c.dtp.read_limit = limit;
    });
    let len = 5 * limit / 2;
    let body = random_bytes(len as usize, 71);
    std::fs::write(s.root.join("f.bin"), &body).unwrap();
    let mut c = Ftps::explicit(s.addr);
    c.login_private("user");
    let start = std::time::Instant::now();
    assert_same(&c.retr("RETR f.bin"), &body);
    let down = start.elapsed().as_secs_f64();
    let start = std::time::Instant::now();
    c.stor("STOR up.bin", &body);
    let up = start.elapsed().as_secs_f64();
    assert_same(&std::fs::read(s.root.join("up.bin")).unwrap(), &body);
    let want = len as f64 / limit as f64;
    for (what, secs) in [("RETR", down), ("STOR", up)] {
        let err = (secs - want) / want;
        eprintln!(
            "{what} under TLS at 1 MiB/s: {secs:.2} s for {want:.2} s ({:+.1}%)",
            err * 100.0
        );
        assert!(err.abs() < 0.10, "{what}: {secs:.2} s, want {want:.2} s");
    }
}

#[test]
fn data_handshake_completes_before_the_transfer_command() {
    // curl's order under PROT P: connect the data connection, finish the TLS handshake,
    // and only then send RETR or STOR. The server must answer the handshake at once.
    let s = with_tls(|_| {});
    let body = random_bytes(300_000, 81);
    std::fs::write(s.root.join("f.bin"), &body).unwrap();
    let mut c = Ftps::explicit(s.addr);
    c.login_private("user");
    for _ in 0..2 {
        let tcp = TcpStream::connect(c.pasv()).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut data = c.data(tcp);
        while data.conn.is_handshaking() {
            data.conn
                .complete_io(&mut data.sock)
                .expect("the handshake completes before any transfer command");
        }
        c.send("RETR f.bin");
        assert!(matches!(c.reply().0, 125 | 150));
        let mut got = Vec::new();
        data.read_to_end(&mut got).unwrap();
        c.cmd_reply(226);
        assert_same(&got, &body);
    }
    // The same for an upload: the early handshake sends no ticket that could be reset away.
    let tcp = TcpStream::connect(c.pasv()).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut data = c.data(tcp);
    while data.conn.is_handshaking() {
        data.conn.complete_io(&mut data.sock).unwrap();
    }
    c.send("STOR up.bin");
    assert!(matches!(c.reply().0, 125 | 150));
    data.write_all(&body).unwrap();
    data.conn.send_close_notify();
    data.flush().unwrap();
    data.sock.shutdown(Shutdown::Write).unwrap();
    c.cmd_reply(226);
    assert_same(&std::fs::read(s.root.join("up.bin")).unwrap(), &body);
}

#[test]
fn ccc_returns_the_control_connection_to_plaintext_when_allowed() {
    let s = with_tls(|t| t.ccc_allowed = true);
    let body = random_bytes(200_000, 91);
    std::fs::write(s.root.join("f.bin"), &body).unwrap();
    let mut c = Ftps::explicit(s.addr);
    c.login_private("user");
    c.cmd("CCC", 200);
    // The server's close_notify ends its TLS stream.
    let mut rest = Vec::new();
    assert_eq!(
        c.r.read_to_end(&mut rest).unwrap(),
        0,
        "no data after the 200"
    );
    // Ours, and a plaintext command right behind it in the same write: the server must
    // stop reading TLS exactly at the end of the close_notify record.
    let tls = c.r.get_mut();
    tls.conn.send_close_notify();
    let mut out = Vec::new();
    while tls.conn.wants_write() {
        tls.conn.write_tls(&mut out).unwrap();
    }
    out.extend_from_slice(b"PWD\r\n");
    tls.sock.write_all(&out).unwrap();
    let mut plain = BufReader::new(tls.sock.try_clone().unwrap());
    let (code, text) = read_reply(&mut plain);
    assert_eq!(code, 257, "{text}");
    // Plain commands go on, and data connections keep PROT P.
    (&tls.sock).write_all(b"EPSV\r\n").unwrap();
    let (code, text) = read_reply(&mut plain);
    assert_eq!(code, 229, "{text}");
    let port: u16 = text[text.find("(|||").unwrap() + 4..text.rfind("|)").unwrap()]
        .parse()
        .unwrap();
    let data_tcp = TcpStream::connect(SocketAddr::new(s.addr.ip(), port)).unwrap();
    (&tls.sock).write_all(b"RETR f.bin\r\n").unwrap();
    assert!(matches!(read_reply(&mut plain).0, 125 | 150));
    data_tcp
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut data = tls_over(&c.config, data_tcp);
    let mut got = Vec::new();
    data.read_to_end(&mut got).unwrap();
    assert_eq!(read_reply(&mut plain).0, 226);
    assert_same(&got, &body);
}

#[test]
fn ccc_is_refused_by_default_and_where_tls_is_required() {
    let s = with_tls(|_| {});
    let mut c = Ftps::explicit(s.addr);
    c.login_private("user");
    c.cmd("CCC", 534);
    c.cmd("PWD", 257);
    let s = with_tls(|t| {
        t.ccc_allowed = true;
        t.control_required = TlsRequired::Everyone;
    });
    let mut c = Ftps::explicit(s.addr);
    c.login_private("user");
    c.cmd("CCC", 534);
    c.cmd("NOOP", 200);
}

#[test]
fn python_ftplib_ccc() {
    if !require("python3") {
        return;
    }
    // ftplib's ccc() runs a full TLS shutdown and goes on in plaintext; its data
    // connections do not resume the control session, so reuse is relaxed here.
    let s = with_tls(|t| {
        t.ccc_allowed = true;
        t.data_session_reuse_required = false;
    });
    let body = random_bytes(300_000, 95);
    std::fs::write(s.root.join("f.bin"), &body).unwrap();
    let script = format!(
        r#"
import ftplib, io, ssl
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
f = ftplib.FTP_TLS(context=ctx)
f.connect("127.0.0.1", {port}, timeout=30)
f.login("user", "pass")
f.prot_p()
assert f.ccc().startswith("200")
assert f.pwd() == "/"
buf = io.BytesIO()
f.retrbinary("RETR f.bin", buf.write)
assert len(buf.getvalue()) == {len}, len(buf.getvalue())
f.quit()
print("ok")
"#,
        port = s.addr.port(),
        len = body.len()
    );
    let out = run(Command::new("python3").arg("-c").arg(&script));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ok");
}
