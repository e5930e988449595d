//! `ftpdlib --proxy-protocol` behind a real HAProxy (Debian's `haproxy` package): curl and
//! lftp through `send-proxy` (version 1) and `send-proxy-v2`, their passive data
//! connections going straight to ftpdlib, files compared byte for byte; and a direct
//! connection without the header refused.
//!
//! HAProxy connects to ftpdlib from 127.0.0.2 while the clients are on 127.0.0.1, so the
//! transfers only work if ftpdlib takes the client's address from the header: a passive data
//! connection from 127.0.0.1 would otherwise be refused as foreign. Outside CI a machine
//! without haproxy skips these tests with a message; under CI (env CI set) that fails them.

mod util;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use util::{
    assert_same, free_port, have, random_bytes, require, run, serve_daemon, wait_until, TempDir,
};

/// A running haproxy, killed and reaped when dropped.
struct Haproxy(Child);

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The haproxy program: on the PATH, or in /usr/sbin where Debian puts it (not on a plain
/// user's PATH). `None` (after saying so) when it is missing outside CI.
fn find_haproxy() -> Option<PathBuf> {
    if have("haproxy") {
        return Some("haproxy".into());
    }
    let sbin = Path::new("/usr/sbin/haproxy");
    if sbin.is_file() {
        return Some(sbin.into());
    }
    require("haproxy");
    None
}

/// Starts haproxy in the foreground on a free loopback port, relaying to ftpdlib on
/// `backend` with `send` (`send-proxy` or `send-proxy-v2`) from 127.0.0.2; returns it and
/// its port once it accepts connections.
fn haproxy(bin: &Path, dir: &Path, backend: u16, send: &str) -> (Haproxy, u16) {
    let front = free_port();
    let cfg = dir.join(format!("haproxy-{send}.cfg"));
    std::fs::write(
        &cfg,
        format!(
            "global
    maxconn 64
defaults
    mode tcp
    timeout connect 5s
    timeout client 60s
    timeout server 60s
listen ftp
    bind 127.0.0.1:{front}
    server ftpdlib 127.0.0.1:{backend} source 127.0.0.2 {send}
"
        ),
    )
    .unwrap();
    let mut h = Haproxy(
        Command::new(bin)
            .arg("-f")
            .arg(&cfg)
            .arg("-db")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start haproxy"),
    );
    let up = wait_until(Duration::from_secs(10), || {
        TcpStream::connect(("127.0.0.1", front)).is_ok()
    });
    if !up {
        let status = h.0.try_wait().ok().flatten();
        panic!("haproxy did not listen on {front} within 10 s (exit status {status:?})");
    }
    (h, front)
}

/// A client of ftpdlib's own port: what it reads before the server closes.
fn direct(port: u16, send: &[u8]) -> Vec<u8> {
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    c.write_all(send).unwrap();
    let mut got = Vec::new();
    match c.read_to_end(&mut got) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(e) => panic!("ftpdlib did not close a connection without a header: {e}"),
    }
    got
}

#[test]
fn curl_and_lftp_through_haproxy() {
    let Some(bin) = find_haproxy() else { return };
    if !require("curl") || !require("lftp") {
        return;
    }
    let root = TempDir::new("proxy-root");
    let local = TempDir::new("proxy-local");
    let body = random_bytes(3 << 20, 71);
    std::fs::write(root.join("down.bin"), &body).unwrap();
    std::fs::write(local.join("up.bin"), &body).unwrap();
    let xferlog = local.join("xferlog");
    let (_d, port) = serve_daemon(&[
        "-w",
        "-d",
        root.path().to_str().unwrap(),
        "-u",
        "user",
        "-P",
        "secret",
        "--proxy-protocol",
        "--proxy-trusted",
        "127.0.0.0/8",
        "--proxy-header-timeout",
        "2",
        "--xferlog",
        xferlog.to_str().unwrap(),
    ]);

    for send in ["send-proxy", "send-proxy-v2"] {
        let (_h, front) = haproxy(&bin, local.path(), port, send);
        let url = |name: &str| format!("ftp://user:secret@127.0.0.1:{front}/{name}");

        // curl, EPSV (the default) and PASV: both lead to ftpdlib's own passive port.
        for (i, epsv) in [[].as_slice(), &["--disable-epsv"]].iter().enumerate() {
            let name = format!("curl-{send}-{i}.bin");
            run(util::curl()
                .args(*epsv)
                .arg("-T")
                .arg(local.join("up.bin"))
                .arg(url(&name)));
            assert_same(&std::fs::read(root.join(&name)).unwrap(), &body);
            let out = run(util::curl().args(*epsv).arg(url("down.bin")));
            assert_same(&out.stdout, &body);
        }

        // lftp, PASV.
        let got = local.join(&format!("lftp-{send}.bin"));
        let script = format!(
            "set net:max-retries 1; set net:timeout 30; set cmd:fail-exit yes; \
             set ftp:prefer-epsv no; open -u user,secret ftp://127.0.0.1:{front}; \
             put {} -o lftp-{send}.bin; get down.bin -o {}; bye",
            local.join("up.bin").display(),
            got.display()
        );
        run(Command::new("timeout").args(["120", "lftp", "-c", &script]));
        assert_same(
            &std::fs::read(root.join(&format!("lftp-{send}.bin"))).unwrap(),
            &body,
        );
        assert_same(&std::fs::read(&got).unwrap(), &body);
    }

    // Every transfer is logged under the client's address, never HAProxy's 127.0.0.2.
    let log = std::fs::read_to_string(&xferlog).unwrap();
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.len(), 12, "{log}");
    for l in &lines {
        assert!(l.contains(" 127.0.0.1 "), "{l}");
        assert!(!l.contains("127.0.0.2"), "{l}");
    }

    // Straight to ftpdlib without a header: closed, not a byte sent.
    assert_eq!(direct(port, b"USER user\r\n"), b"");
    assert_eq!(
        direct(port, b""),
        b"",
        "a silent client is dropped at the timeout"
    );
}

#[test]
fn only_trusted_proxies_may_send_a_header() {
    let (_d, port) = serve_daemon(&["--proxy-protocol", "--proxy-trusted", "192.0.2.0/24"]);
    // A valid header, but from 127.0.0.1, which is not a trusted proxy.
    assert_eq!(
        direct(
            port,
            b"PROXY TCP4 192.0.2.9 127.0.0.1 4000 21\r\nUSER x\r\n"
        ),
        b""
    );
    let (_d, port) = serve_daemon(&["--proxy-protocol", "--proxy-header-timeout", "0.3"]);
    let mut c = util::Client::connect_raw(format!("127.0.0.1:{port}").parse().unwrap());
    c.send_raw(b"PROXY TCP4 192.0.2.9 127.0.0.1 4000 21\r\n");
    c.expect(220);
    c.login("anonymous", "guest");
}

#[test]
fn proxy_flags_need_proxy_protocol() {
    for args in [
        &["--proxy-trusted", "10.0.0.0/8"][..],
        &["--proxy-header-timeout", "3"],
        &["--proxy-passive"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_ftpdlib"))
            .args(["-p", "0"])
            .args(args)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("need --proxy-protocol"), "{err}");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_ftpdlib"))
        .args([
            "-p",
            "0",
            "--proxy-protocol",
            "--proxy-trusted",
            "10.0.0.0/33",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--proxy-trusted"));
}

/// Implicit FTPS behind HAProxy: the header comes before the TLS handshake, and the
/// ClientHello that may follow it in the same segment is left for TLS.
#[cfg(feature = "tls")]
#[test]
fn implicit_ftps_through_haproxy() {
    let Some(bin) = find_haproxy() else { return };
    if !require("curl") {
        return;
    }
    let data = |name: &str| format!("{}/../tests/data/{name}", env!("CARGO_MANIFEST_DIR"));
    let root = TempDir::new("proxy-ftps-root");
    let local = TempDir::new("proxy-ftps-local");
    let body = random_bytes(1 << 20, 72);
    std::fs::write(root.join("down.bin"), &body).unwrap();
    std::fs::write(local.join("up.bin"), &body).unwrap();
    let (_d, port) = serve_daemon(&[
        "-w",
        "-d",
        root.path().to_str().unwrap(),
        "-u",
        "user",
        "-P",
        "secret",
        "--tls-cert",
        &data("cert.pem"),
        "--tls-key",
        &data("key.pem"),
        "--tls-implicit",
        "--tls-data-required",
        "--proxy-protocol",
    ]);
    for send in ["send-proxy", "send-proxy-v2"] {
        let (_h, front) = haproxy(&bin, local.path(), port, send);
        let url = |name: &str| format!("ftps://user:secret@127.0.0.1:{front}/{name}");
        let name = format!("tls-{send}.bin");
        run(util::curl()
            .arg("-k")
            .arg("-T")
            .arg(local.join("up.bin"))
            .arg(url(&name)));
        assert_same(&std::fs::read(root.join(&name)).unwrap(), &body);
        assert_same(
            &run(util::curl().arg("-k").arg(url("down.bin"))).stdout,
            &body,
        );
    }
}

/// A range of `n` ports free on both 127.0.0.1 and ::1, for a passive range that ftpdlib
/// binds on ::1 and HAProxy on 127.0.0.1, port for port.
fn free_range_both(n: u16) -> (u16, u16) {
    use std::net::TcpListener;
    let free = |p: u16| {
        TcpListener::bind(("127.0.0.1", p)).is_ok() && TcpListener::bind(("::1", p)).is_ok()
    };
    let base = 20_000 + (std::process::id() % 400) as u16 * 20;
    for start in (base..base + 2000).step_by(usize::from(n)) {
        if (start..start + n).all(free) {
            return (start, start + n - 1);
        }
    }
    panic!("no {n} ports free on both 127.0.0.1 and ::1");
}

/// `--proxy-passive`: the passive ports behind HAProxy too, as in docs/deploy.md's scale-out
/// set-up. ftpdlib listens on [::1], HAProxy on 127.0.0.1 relays the control port and the
/// passive range (port for port) with `send-proxy-v2`. The relayed data connections come
/// from ::1 while the client is 127.0.0.1, so the transfers work only if ftpdlib takes the
/// data connection's client from its header. A proxied connection whose header names
/// another client is refused, and the port waits on for the real one.
#[test]
fn passive_ports_relayed_through_haproxy() {
    let Some(bin) = find_haproxy() else { return };
    if !require("curl") {
        return;
    }
    let root = TempDir::new("proxy-pasv-root");
    let local = TempDir::new("proxy-pasv-local");
    let body = random_bytes(2 << 20, 73);
    std::fs::write(root.join("down.bin"), &body).unwrap();
    std::fs::write(local.join("up.bin"), &body).unwrap();
    let (lo, hi) = free_range_both(4);
    let mut cmd = util::ftpdlib();
    cmd.args(["-i", "::1", "-p", "0", "-w", "-d"])
        .arg(root.path())
        .args(["-u", "user", "-P", "secret", "--proxy-protocol"])
        .args(["--proxy-trusted", "::1", "--proxy-passive"])
        .args(["--proxy-header-timeout", "2", "--nat-address", "127.0.0.1"])
        .arg("-r")
        .arg(format!("{lo}-{hi}"))
        .env("RUST_LOG", "info");
    let mut d = util::Watched::start(cmd);
    let line = d
        .log
        .iter()
        .find(|l| l.contains("starting FTP server on [::1]:"))
        .unwrap_or_else(|| panic!("not on [::1]: {:?}", d.log))
        .clone();
    let rest = &line[line.find("[::1]:").unwrap() + 6..];
    let port: u16 = rest[..rest.find(|c: char| !c.is_ascii_digit()).unwrap()]
        .parse()
        .unwrap();

    let front = free_port();
    let cfg = local.join("haproxy-passive.cfg");
    std::fs::write(
        &cfg,
        format!(
            "global
    maxconn 64
defaults
    mode tcp
    timeout connect 5s
    timeout client 60s
    timeout server 60s
listen ftp
    bind 127.0.0.1:{front}
    server ftpdlib [::1]:{port} send-proxy-v2
listen pasv
    bind 127.0.0.1:{lo}-{hi}
    server ftpdlib [::1] send-proxy-v2
"
        ),
    )
    .unwrap();
    let _h = Haproxy(
        Command::new(&bin)
            .arg("-f")
            .arg(&cfg)
            .arg("-db")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start haproxy"),
    );
    assert!(
        wait_until(Duration::from_secs(10), || {
            TcpStream::connect(("127.0.0.1", front)).is_ok()
        }),
        "haproxy did not listen on {front}"
    );

    // curl, EPSV and PASV (227 with --nat-address): every data connection through HAProxy.
    let url = |name: &str| format!("ftp://user:secret@127.0.0.1:{front}/{name}");
    for (i, epsv) in [[].as_slice(), &["--disable-epsv"]].iter().enumerate() {
        let name = format!("up-{i}.bin");
        run(util::curl()
            .args(*epsv)
            .arg("-T")
            .arg(local.join("up.bin"))
            .arg(url(&name)));
        assert_same(&std::fs::read(root.join(&name)).unwrap(), &body);
        assert_same(
            &run(util::curl().args(*epsv).arg(url("down.bin"))).stdout,
            &body,
        );
    }

    // A stranger on the proxy's address, with a header naming another client, reaches the
    // passive port first: closed without a byte; the client then gets its file.
    let mut c = util::Client::connect(std::net::SocketAddr::from(([127, 0, 0, 1], front)));
    c.login("user", "secret");
    let addr = c.epsv();
    let mut stranger = TcpStream::connect(("::1", addr.port())).unwrap();
    stranger
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stranger
        .write_all(format!("PROXY TCP4 192.0.2.9 127.0.0.1 40000 {}\r\n", addr.port()).as_bytes())
        .unwrap();
    let mut got = Vec::new();
    assert!(
        matches!(stranger.read_to_end(&mut got), Ok(0) | Err(_)),
        "the stranger got {} bytes",
        got.len()
    );
    assert!(
        d.wait_line(
            "Rejected data connection from foreign address 192.0.2.9:40000",
            Duration::from_secs(10)
        ),
        "{:?}",
        d.log
    );
    let mut data = TcpStream::connect(addr).unwrap();
    c.send("RETR down.bin");
    let r = c.read_reply();
    // 125 once the relayed connection is in, 150 while it is on its way.
    assert!(r.code == 125 || r.code == 150, "{:?}", r.lines);
    let mut got = Vec::new();
    data.read_to_end(&mut got).unwrap();
    c.expect(226);
    assert_same(&got, &body);
}
