//! `ftpdlib --metrics`: the real command under a known workload (curl uploads and
//! downloads, a failed login, a raw client's commands and a download held open while
//! scraping), scraped with curl during and after, every counter checked against what the
//! test did; `/health` and the other paths; a busy metrics port at start-up; the TLS
//! handshake counters with curl over FTPS; the metrics listener out of descriptors.

mod util;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use util::{free_port, random_bytes, require, run, Client, TempDir};

/// The command serving `root` to "user"/"pass" with metrics on a free port, plus `flags`;
/// the daemon, its FTP port and its metrics address.
fn serve_with_metrics(root: &TempDir, flags: &[&str]) -> (util::Daemon, u16, String) {
    let mut args = vec![
        "-d",
        root.path().to_str().unwrap(),
        "-w",
        "-u",
        "user",
        "-P",
        "pass",
        "--auth-failed-delay",
        "0",
        "--metrics",
        "127.0.0.1:0",
    ];
    args.extend_from_slice(flags);
    let (daemon, port, log) = util::serve_daemon_logged(&args);
    (daemon, port, metrics_address(&log))
}

/// The address of the "metrics on http://ADDR/metrics" line in `log`.
fn metrics_address(log: &[String]) -> String {
    log.iter()
        .find_map(|l| l.split("metrics on http://").nth(1))
        .and_then(|rest| rest.split("/metrics").next())
        .unwrap_or_else(|| panic!("no metrics address logged: {log:#?}"))
        .to_string()
}

/// GETs `path` from the metrics server with curl: (status, body).
fn http_get(metrics: &str, path: &str, extra: &[&str]) -> (u16, String) {
    let out = run(util::curl()
        .args(["--max-time", "10", "-w", "\n%{http_code}"])
        .args(extra)
        .arg(format!("http://{metrics}{path}")));
    let text = String::from_utf8(out.stdout).unwrap();
    let (body, code) = text.rsplit_once('\n').unwrap();
    (code.parse().unwrap(), body.to_string())
}

/// Scrapes `/metrics`: every sample line as `name{labels}` -> value.
fn scrape(metrics: &str) -> HashMap<String, u64> {
    let (code, body) = http_get(metrics, "/metrics", &[]);
    assert_eq!(code, 200, "{body}");
    body.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (name, value) = l.rsplit_once(' ').unwrap();
            (name.to_string(), value.parse().unwrap())
        })
        .collect()
}

fn get(m: &HashMap<String, u64>, name: &str) -> u64 {
    *m.get(name)
        .unwrap_or_else(|| panic!("{name} missing from the scrape: {m:?}"))
}

fn ftp_url(port: u16, user: &str, path: &str) -> String {
    format!("ftp://{user}@127.0.0.1:{port}/{path}")
}

/// Waits (bounded) until a scrape satisfies `f`; returns that scrape.
fn scrape_until(metrics: &str, f: impl Fn(&HashMap<String, u64>) -> bool) -> HashMap<String, u64> {
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let m = scrape(metrics);
        if f(&m) || Instant::now() > end {
            return m;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn counters_match_a_known_workload() {
    if !require("curl") {
        return;
    }
    let root = TempDir::new("metrics");
    let down = random_bytes(54_321, 1);
    std::fs::write(root.join("down.bin"), &down).unwrap();
    let big_len = 48usize << 20;
    std::fs::File::create(root.join("big.bin"))
        .unwrap()
        .set_len(big_len as u64)
        .unwrap();
    let up = random_bytes(123_456, 2);
    let up_file = TempDir::new("metrics-client");
    std::fs::write(up_file.join("up.bin"), &up).unwrap();
    let got_file = up_file.join("got.bin");
    let (_daemon, port, metrics) = serve_with_metrics(&root, &[]);

    let before = scrape(&metrics);
    assert_eq!(get(&before, "ftpdlib_sessions_total"), 0);
    assert_eq!(get(&before, "ftpdlib_sessions_open"), 0);

    // One failed login, one upload, one download, with curl (a session each).
    let out = util::curl()
        .args(["--user", "user:wrong"])
        .arg(ftp_url(port, "", "down.bin"))
        .output()
        .unwrap();
    assert!(!out.status.success(), "a wrong password must fail");
    run(util::curl()
        .args(["--user", "user:pass", "-T"])
        .arg(up_file.join("up.bin"))
        .arg(ftp_url(port, "", "up.bin")));
    run(util::curl()
        .args(["--user", "user:pass", "-o"])
        .arg(&got_file)
        .arg(ftp_url(port, "", "down.bin")));
    assert_eq!(std::fs::read(&got_file).unwrap(), down);
    assert_eq!(std::fs::read(root.join("up.bin")).unwrap(), up);

    // A raw client: a few commands, an unknown verb, and a download held open.
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut c = Client::connect(addr);
    c.login("user", "pass");
    c.cmd("NOOP", 200);
    c.cmd("NOOP", 200);
    c.cmd("XYZZY", 500);
    c.cmd("TYPE I", 200);
    let data_addr = c.pasv();
    let mut data = TcpStream::connect(data_addr).unwrap();
    c.send("RETR big.bin");
    let r = c.read_reply();
    assert!(r.code == 125 || r.code == 150, "{:?}", r.lines);

    // While it runs: the client reads nothing, so the transfer waits on full buffers.
    let during = scrape_until(&metrics, |m| {
        m.get("ftpdlib_transfers_running") == Some(&1)
            && m.get("ftpdlib_bytes_sent_total")
                .is_some_and(|b| *b > 54_321)
    });
    assert_eq!(get(&during, "ftpdlib_transfers_running"), 1);
    assert_eq!(get(&during, "ftpdlib_sessions_open"), 1);
    let sent = get(&during, "ftpdlib_bytes_sent_total");
    assert!(
        sent > 54_321 && sent < (54_321 + big_len) as u64,
        "{sent} bytes sent mid-transfer"
    );
    assert_eq!(get(&during, "ftpdlib_files_sent_total"), 1);

    let mut got = Vec::new();
    data.read_to_end(&mut got).unwrap();
    assert_eq!(got.len(), big_len);
    c.expect(226);
    c.cmd("QUIT", 221);
    drop(c);

    let m = scrape_until(&metrics, |m| m.get("ftpdlib_sessions_open") == Some(&0));
    assert_eq!(get(&m, "ftpdlib_sessions_open"), 0);
    assert_eq!(get(&m, "ftpdlib_transfers_running"), 0);
    assert_eq!(get(&m, "ftpdlib_sessions_total"), 4);
    assert_eq!(get(&m, "ftpdlib_logins_total{result=\"ok\"}"), 3);
    assert_eq!(get(&m, "ftpdlib_logins_total{result=\"failed\"}"), 1);
    assert_eq!(
        get(&m, "ftpdlib_bytes_sent_total"),
        (down.len() + big_len) as u64
    );
    assert_eq!(get(&m, "ftpdlib_bytes_received_total"), up.len() as u64);
    assert_eq!(get(&m, "ftpdlib_files_sent_total"), 2);
    assert_eq!(get(&m, "ftpdlib_files_received_total"), 1);
    assert_eq!(get(&m, "ftpdlib_commands_total{verb=\"USER\"}"), 4);
    assert_eq!(get(&m, "ftpdlib_commands_total{verb=\"PASS\"}"), 4);
    assert_eq!(get(&m, "ftpdlib_commands_total{verb=\"NOOP\"}"), 2);
    assert_eq!(get(&m, "ftpdlib_commands_total{verb=\"other\"}"), 1);
    assert_eq!(get(&m, "ftpdlib_commands_total{verb=\"RETR\"}"), 2);
    assert_eq!(get(&m, "ftpdlib_commands_total{verb=\"STOR\"}"), 1);
    // Every verb has its series, at 0 when unused.
    assert_eq!(get(&m, "ftpdlib_commands_total{verb=\"MLSD\"}"), 0);
    assert_eq!(get(&m, "ftpdlib_replies_total{code=\"220\"}"), 4);
    assert_eq!(get(&m, "ftpdlib_replies_total{code=\"230\"}"), 3);
    assert_eq!(get(&m, "ftpdlib_replies_total{code=\"530\"}"), 1);
    assert_eq!(get(&m, "ftpdlib_replies_total{code=\"500\"}"), 1);
    assert_eq!(get(&m, "ftpdlib_replies_total{code=\"226\"}"), 3);
    // The commands and replies add up: one reply per command (USER 331, PASS 230/530,
    // ...) plus the greetings, apart from the transfers' 150/125 marks.
    let commands: u64 = m
        .iter()
        .filter(|(k, _)| k.starts_with("ftpdlib_commands_total"))
        .map(|(_, v)| v)
        .sum();
    let replies: u64 = m
        .iter()
        .filter(|(k, _)| k.starts_with("ftpdlib_replies_total"))
        .map(|(_, v)| v)
        .sum();
    let marks = get(&m, "ftpdlib_replies_total{code=\"125\"}")
        + m.get("ftpdlib_replies_total{code=\"150\"}").unwrap_or(&0);
    assert_eq!(marks, 3);
    // The failed curl left without QUIT: every other command got exactly one reply.
    assert_eq!(replies, commands + 4 + marks);
    assert_eq!(get(&m, "ftpdlib_login_bans_total"), 0);
    assert_eq!(get(&m, "ftpdlib_transfers_throttled_total"), 0);
    assert_eq!(
        get(
            &m,
            "ftpdlib_data_connection_failures_total{reason=\"accept_timeout\"}"
        ),
        0
    );
}

#[test]
fn health_is_ok_and_other_paths_are_not_found() {
    if !require("curl") {
        return;
    }
    let root = TempDir::new("metrics-health");
    let (_daemon, _port, metrics) = serve_with_metrics(&root, &[]);
    assert_eq!(
        http_get(&metrics, "/health", &[]),
        (200, "OK\n".to_string())
    );
    assert_eq!(http_get(&metrics, "/", &[]).0, 404);
    assert_eq!(http_get(&metrics, "/metricsx", &[]).0, 404);
    assert_eq!(http_get(&metrics, "/health/x", &[]).0, 404);
    assert_eq!(http_get(&metrics, "/metrics", &["-X", "POST"]).0, 405);
    let (code, body) = http_get(&metrics, "/metrics", &["-i"]);
    assert_eq!(code, 200);
    assert!(
        body.to_ascii_lowercase()
            .contains("content-type: text/plain; version=0.0.4"),
        "{body}"
    );
    // The reactor turns at least every second while idle, so health stays OK.
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(http_get(&metrics, "/health", &[]).0, 200);
}

#[test]
fn a_busy_metrics_port_is_a_start_up_error() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let metrics = taken.local_addr().unwrap().to_string();
    let root = TempDir::new("metrics-busy");
    let mut child = Command::new(env!("CARGO_BIN_EXE_ftpdlib"))
        .args(["-i", "127.0.0.1", "-p", &free_port().to_string()])
        .args(["-d", root.path().to_str().unwrap(), "--metrics", &metrics])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let end = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > end {
            let _ = child.kill();
            let _ = child.wait();
            panic!("ftpdlib kept running with its metrics port taken");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert_eq!(status.code(), Some(1), "{err}");
    let last = err.lines().last().unwrap_or("");
    assert!(
        last.starts_with(&format!("ftpdlib: can't serve metrics on {metrics}: ")),
        "{err}"
    );
    assert!(!err.contains("starting FTP server"), "{err}");
}

#[test]
fn a_bad_metrics_address_is_a_usage_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_ftpdlib"))
        .args(["--metrics", "nonsense"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--metrics"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
}

#[cfg(feature = "tls")]
#[test]
fn tls_handshakes_are_counted() {
    if !require("curl") {
        return;
    }
    let data = format!("{}/../tests/data", env!("CARGO_MANIFEST_DIR"));
    let cert = format!("{data}/cert.pem");
    let key = format!("{data}/key.pem");
    let root = TempDir::new("metrics-tls");
    std::fs::write(root.join("f.txt"), b"over TLS\n").unwrap();
    let (_daemon, port, metrics) =
        serve_with_metrics(&root, &["--tls-cert", &cert, "--tls-key", &key]);

    // curl: AUTH TLS on the control connection, PROT P on the data connection.
    let out = run(util::curl()
        .args(["-k", "--ssl-reqd", "--user", "user:pass"])
        .arg(ftp_url(port, "", "f.txt")));
    assert_eq!(out.stdout, b"over TLS\n");
    // A client that asks for TLS and then sends plaintext: a failed handshake.
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut c = Client::connect(addr);
    c.cmd("AUTH TLS", 234);
    c.send("USER user");
    assert!(c.closed_by_server());
    drop(c);

    let m = scrape_until(&metrics, |m| m.get("ftpdlib_sessions_open") == Some(&0));
    let hs = |conn: &str, result: &str| {
        get(
            &m,
            &format!("ftpdlib_tls_handshakes_total{{connection=\"{conn}\",result=\"{result}\"}}"),
        )
    };
    assert_eq!(hs("control", "ok"), 1);
    assert_eq!(hs("control", "failed"), 1);
    assert_eq!(hs("data", "ok"), 1);
    assert_eq!(hs("data", "failed"), 0);
    assert_eq!(get(&m, "ftpdlib_files_sent_total"), 1);
    assert_eq!(get(&m, "ftpdlib_bytes_sent_total"), 9);
}

#[test]
fn health_turns_503_during_the_graceful_shutdown() {
    if !require("curl") {
        return;
    }
    let root = TempDir::new("metrics-stop");
    std::fs::File::create(root.join("big.bin"))
        .unwrap()
        .set_len(48 << 20)
        .unwrap();
    let (mut daemon, port, metrics) = serve_with_metrics(&root, &["--shutdown-grace", "30"]);
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut c = Client::connect(addr);
    c.login("user", "pass");
    let mut data = TcpStream::connect(c.pasv()).unwrap();
    c.send("RETR big.bin");
    let r = c.read_reply();
    assert!(r.code == 125 || r.code == 150, "{:?}", r.lines);
    assert_eq!(http_get(&metrics, "/health", &[]).0, 200);
    let pid = i32::try_from(daemon.0.id()).unwrap();
    // SAFETY: kill(2) on the pid of a child this test started and has not reaped.
    let rc = unsafe { libc::kill(pid, libc::SIGTERM) };
    assert_eq!(rc, 0);
    // The transfer holds the shutdown in its grace period; health says it is going.
    let end = Instant::now() + Duration::from_secs(10);
    let mut last = http_get(&metrics, "/health", &[]);
    while last.0 != 503 && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(50));
        last = http_get(&metrics, "/health", &[]);
    }
    assert_eq!(last, (503, "shutting down\n".to_string()));
    let mut got = Vec::new();
    data.read_to_end(&mut got).unwrap();
    assert_eq!(got.len(), 48 << 20);
    // The last transfer over, the command exits, the metrics thread stopped and joined.
    let end = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = daemon.0.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < end,
            "ftpdlib still running after its last transfer"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status:?}");
}

/// The daemon's open descriptors.
fn fds(daemon: &util::Daemon) -> usize {
    std::fs::read_dir(format!("/proc/{}/fd", daemon.0.id()))
        .unwrap()
        .count()
}

#[test]
fn held_partial_requests_keep_descriptors_bounded_and_ftp_working() {
    if !require("curl") {
        return;
    }
    let root = TempDir::new("metrics-hold");
    let body = random_bytes(200_000, 3);
    std::fs::write(root.join("f.bin"), &body).unwrap();
    let (daemon, port, metrics) = serve_with_metrics(&root, &[]);
    assert_eq!(http_get(&metrics, "/health", &[]).0, 200);
    let baseline = fds(&daemon);
    // 300 connections that start a request and never finish it, all held open.
    let mut held = Vec::new();
    let mut most = baseline;
    for i in 0..300 {
        let Ok(mut s) = TcpStream::connect(&metrics) else {
            continue;
        };
        // The server may already have closed it (over its cap): that is the point.
        let _ = s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n");
        held.push(s);
        if i % 25 == 0 {
            most = most.max(fds(&daemon));
        }
    }
    // FTP works meanwhile: a download over a passive data connection.
    let got = TempDir::new("metrics-hold-client");
    run(util::curl()
        .args(["--max-time", "20", "--user", "user:pass", "-o"])
        .arg(got.join("f.bin"))
        .arg(ftp_url(port, "", "f.bin")));
    assert_eq!(std::fs::read(got.join("f.bin")).unwrap(), body);
    for _ in 0..20 {
        most = most.max(fds(&daemon));
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        most <= baseline + 16,
        "{most} descriptors open with {} connections held (baseline {baseline})",
        held.len()
    );
    drop(held);
    // Once they are gone (and the held ones timed out), health answers again.
    let end = Instant::now() + Duration::from_secs(10);
    let mut last = http_get(&metrics, "/health", &[]);
    while last.0 != 200 && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(100));
        last = http_get(&metrics, "/health", &[]);
    }
    assert_eq!(last, (200, "OK\n".to_string()));
    eprintln!("descriptors: baseline {baseline}, at most {most} with 300 held");
}

#[test]
fn a_pipelining_client_that_never_reads_does_not_block_health() {
    if !require("curl") {
        return;
    }
    let root = TempDir::new("metrics-pipe");
    let (_daemon, _port, metrics) = serve_with_metrics(&root, &[]);
    let mut pipe = TcpStream::connect(&metrics).unwrap();
    let requests = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n".repeat(2000);
    let mut writer = pipe.try_clone().unwrap();
    // The server may close before taking it all; the writer then fails, which is fine.
    let w = std::thread::spawn(move || {
        let _ = writer.write_all(requests.as_bytes());
    });
    std::thread::sleep(Duration::from_millis(200));
    for _ in 0..5 {
        let t = Instant::now();
        let (code, body) = http_get(&metrics, "/health", &["--max-time", "3"]);
        assert_eq!((code, body.as_str()), (200, "OK\n"));
        assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    }
    // The pipelining connection got one answer, then was closed.
    pipe.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut got = Vec::new();
    let _ = pipe.read_to_end(&mut got);
    let got = String::from_utf8_lossy(&got);
    assert!(got.starts_with("HTTP/1.1 200 OK\r\n"), "{got}");
    assert!(got.contains("Connection: close\r\n"), "{got}");
    assert_eq!(got.matches("HTTP/1.1 ").count(), 1, "{got}");
    w.join().unwrap();
}

#[test]
fn metrics_on_port_0_logs_the_port_bound() {
    if !require("curl") {
        return;
    }
    let root = TempDir::new("metrics-port0");
    let daemon = util::Daemon(
        Command::new(env!("CARGO_BIN_EXE_ftpdlib"))
            .args(["-i", "127.0.0.1", "-p", &free_port().to_string()])
            .args(["-d", root.path().to_str().unwrap()])
            .args(["--metrics", "127.0.0.1:0"])
            .env("RUST_LOG", "info")
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut daemon = daemon;
    let mut err = std::io::BufReader::new(daemon.0.stderr.take().unwrap());
    let mut line = String::new();
    let mut addr = None;
    for _ in 0..50 {
        line.clear();
        if std::io::BufRead::read_line(&mut err, &mut line).unwrap() == 0 {
            break;
        }
        if let Some(rest) = line.split("metrics on http://").nth(1) {
            addr = rest.split("/metrics").next().map(str::to_string);
            break;
        }
    }
    std::thread::spawn(move || std::io::copy(&mut err, &mut std::io::sink()));
    let addr = addr.unwrap_or_else(|| panic!("no metrics address logged: {line}"));
    let parsed: SocketAddr = addr.parse().unwrap();
    assert_ne!(parsed.port(), 0, "{line}");
    assert_eq!(http_get(&addr, "/health", &[]), (200, "OK\n".to_string()));
}

#[test]
fn over_long_and_malformed_heads_are_refused() {
    let root = TempDir::new("metrics-bad");
    let (_daemon, _port, metrics) = serve_with_metrics(&root, &[]);
    let exchange = |req: &[u8]| {
        let mut s = TcpStream::connect(&metrics).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let _ = s.write_all(req);
        let mut got = Vec::new();
        let _ = s.read_to_end(&mut got);
        String::from_utf8_lossy(&got).into_owned()
    };
    let long = format!("GET /health HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(9000));
    let got = exchange(long.as_bytes());
    assert!(got.starts_with("HTTP/1.1 431 "), "{got}");
    let got = exchange(b"NOT HTTP AT ALL\r\n\r\n");
    assert!(got.starts_with("HTTP/1.1 400 "), "{got}");
    let got = exchange(b"HEAD /health HTTP/1.0\r\n\r\n");
    assert!(got.starts_with("HTTP/1.0 200 OK\r\n"), "{got}");
    assert!(
        got.ends_with("\r\n\r\n"),
        "a HEAD answer has no body: {got}"
    );
    // A client that starts a request and stops is closed after the 2 s budget.
    let mut s = TcpStream::connect(&metrics).unwrap();
    s.write_all(b"GET /health HTTP/1.1\r\n").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let t = Instant::now();
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    assert!(got.is_empty(), "{}", String::from_utf8_lossy(&got));
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(1500) && took < Duration::from_secs(5),
        "{took:?}"
    );
}

/// The descriptors a [`Limited`] daemon may open (RLIMIT_NOFILE).
const FD_LIMIT: usize = 40;

/// Waits (bounded) until `cond` holds; whether it did.
fn until(cond: impl Fn() -> bool) -> bool {
    let end = Instant::now() + Duration::from_secs(10);
    while !cond() {
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

/// The command serving `root` anonymously, with metrics, allowed [`FD_LIMIT`] descriptors
/// and logging at info, every line it logs gathered by a thread.
struct Limited {
    daemon: util::Daemon,
    ftp: SocketAddr,
    metrics: String,
    log: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Limited {
    fn start(root: &TempDir) -> Limited {
        let ftp_port = free_port();
        let metrics = format!("127.0.0.1:{}", free_port());
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ftpdlib"));
        cmd.args(["-i", "127.0.0.1", "-p", &ftp_port.to_string()])
            .args(["-d", root.path().to_str().unwrap(), "--metrics", &metrics])
            .env("RUST_LOG", "info")
            .stderr(std::process::Stdio::piped());
        // SAFETY: setrlimit(2) is async-signal-safe and touches only the child's own
        // limits; the closure allocates nothing.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
                let lim = libc::rlimit {
                    rlim_cur: FD_LIMIT as libc::rlim_t,
                    rlim_max: FD_LIMIT as libc::rlim_t,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) == 0 {
                    Ok(())
                } else {
                    Err(std::io::Error::last_os_error())
                }
            });
        }
        let mut daemon = util::Daemon(cmd.spawn().unwrap());
        let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let mut err = std::io::BufReader::new(daemon.0.stderr.take().unwrap());
        let sink = std::sync::Arc::clone(&log);
        std::thread::spawn(move || {
            let mut line = String::new();
            while std::io::BufRead::read_line(&mut err, &mut line).is_ok_and(|n| n > 0) {
                sink.lock().unwrap().push_str(&line);
                line.clear();
            }
        });
        let d = Limited {
            daemon,
            ftp: format!("127.0.0.1:{ftp_port}").parse().unwrap(),
            metrics,
            log,
        };
        assert!(d.logged("starting FTP server"), "{}", d.log());
        d
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Waits (bounded) until the daemon has logged `what`.
    fn logged(&self, what: &str) -> bool {
        until(|| self.log.lock().unwrap().contains(what))
    }

    /// The daemon's descriptors numbered below [`FD_LIMIT`]: the only ones it may take.
    /// Descriptors inherited above the limit are open too, but leave every number below
    /// it free: only when this is `FD_LIMIT` are the daemon's descriptors exhausted.
    fn slots_taken(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.daemon.0.id()))
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<usize>().ok())
            .filter(|&fd| fd < FD_LIMIT)
            .count()
    }

    /// The connections accepted on the metrics port that the daemon still holds: a
    /// worker closes one once its client has closed too, so maybe after the client saw
    /// its answer.
    fn metrics_connections(&self) -> usize {
        let pid = self.daemon.0.id();
        let inodes: std::collections::HashSet<String> =
            std::fs::read_dir(format!("/proc/{pid}/fd"))
                .unwrap()
                .filter_map(|e| {
                    let link = std::fs::read_link(e.ok()?.path()).ok()?;
                    let link = link.to_str()?;
                    Some(
                        link.strip_prefix("socket:[")?
                            .strip_suffix(']')?
                            .to_string(),
                    )
                })
                .collect();
        let port = format!(
            "{:04X}",
            self.metrics
                .rsplit_once(':')
                .unwrap()
                .1
                .parse::<u16>()
                .unwrap()
        );
        let table = std::fs::read_to_string(format!("/proc/{pid}/net/tcp")).unwrap();
        table
            .lines()
            .skip(1)
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            // local address, state (0A: listening) and inode.
            .filter(|f| f[1].ends_with(&format!(":{port}")) && f[3] != "0A")
            .filter(|f| inodes.contains(f[9]))
            .count()
    }
}

#[test]
fn the_metrics_listener_recovers_from_running_out_of_descriptors() {
    if !require("curl") {
        return;
    }
    let root = TempDir::new("metrics-emfile");
    let d = Limited::start(&root);
    assert_eq!(http_get(&d.metrics, "/health", &[]).0, 200);
    // A descriptor that connection's worker frees after the table is full would let the
    // waiting connection below be accepted at once: wait until it is closed.
    assert!(until(|| d.metrics_connections() == 0), "{}", d.log());

    // FTP sessions take every descriptor the process may open (the reactor accepts the
    // rest as soon as one is free).
    let mut sessions = Vec::new();
    for _ in 0..FD_LIMIT {
        if let Ok(s) = TcpStream::connect(d.ftp) {
            sessions.push(s);
        }
    }
    assert!(until(|| d.slots_taken() == FD_LIMIT), "{}", d.log());
    // A connection to the metrics port now fails to be accepted: logged, not fatal, and
    // left waiting (three retries later still unanswered).
    let mut waiting = TcpStream::connect(&d.metrics).unwrap();
    waiting
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    assert!(
        d.logged("metrics: accept failed, retrying every 100 ms"),
        "{}",
        d.log()
    );
    waiting
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let early = waiting.read(&mut [0u8; 64]);
    assert!(
        early.as_ref().is_err_and(|e| matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        )),
        "{early:?}\n{}",
        d.log()
    );
    // Descriptors free again: the waiting request is answered, and so are new ones.
    drop(sessions);
    waiting
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut got = Vec::new();
    let _ = waiting.read_to_end(&mut got);
    let got = String::from_utf8_lossy(&got);
    assert!(got.starts_with("HTTP/1.1 200 OK\r\n"), "{got}");
    assert!(d.logged("metrics: accepting again"), "{}", d.log());
    assert_eq!(
        http_get(&d.metrics, "/health", &[]),
        (200, "OK\n".to_string())
    );
}

/// Linux takes a descriptor before it looks for a connection: once the listener has taken
/// the last one, its next accept fails with no connection waiting. That is logged, and so
/// is accepting again once a descriptor is free, though no connection waits then either.
#[test]
fn the_metrics_listener_recovers_with_no_connection_waiting() {
    if !require("curl") {
        return;
    }
    let root = TempDir::new("metrics-emfile-idle");
    let d = Limited::start(&root);
    assert_eq!(http_get(&d.metrics, "/health", &[]).0, 200);
    assert!(until(|| d.metrics_connections() == 0), "{}", d.log());

    // FTP sessions, each greeted (so accepted) before the next, until one descriptor is
    // left.
    let mut sessions = Vec::new();
    while d.slots_taken() < FD_LIMIT - 1 && sessions.len() < FD_LIMIT {
        let s = TcpStream::connect(d.ftp).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut greeting = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(&s), &mut greeting).unwrap();
        assert!(greeting.starts_with("220"), "{greeting}\n{}", d.log());
        sessions.push(s);
    }
    assert_eq!(d.slots_taken(), FD_LIMIT - 1, "{}", d.log());
    // The request takes the last descriptor and is answered; the accept after it fails.
    let mut waiting = TcpStream::connect(&d.metrics).unwrap();
    waiting
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    waiting
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut got = Vec::new();
    let _ = waiting.read_to_end(&mut got);
    let got = String::from_utf8_lossy(&got);
    assert!(got.starts_with("HTTP/1.1 200 OK\r\n"), "{got}");
    assert!(
        d.logged("metrics: accept failed, retrying every 100 ms"),
        "{}",
        d.log()
    );
    // Descriptors free again, with no connection waiting: the listener says it accepts
    // again, and does.
    drop(waiting);
    drop(sessions);
    assert!(d.logged("metrics: accepting again"), "{}", d.log());
    assert_eq!(
        http_get(&d.metrics, "/health", &[]),
        (200, "OK\n".to_string())
    );
}
