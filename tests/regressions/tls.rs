//! FTPS attack classes, with Python's ftplib as the TLS client.

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
