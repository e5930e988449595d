//! The `ftpdlib` command's logs: `--log-file` (reopened on SIGHUP), `--log-format json`,
//! `--syslog`, `-D` and `--use-localtime`, with the real binary and real clients.

mod util;

use std::io::{BufRead, BufReader};
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use util::{free_port, wait_until, Client, Daemon, TempDir};

/// A running daemon, its port and what it wrote to standard error, line by line.
struct Started {
    daemon: Daemon,
    port: u16,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl Started {
    fn client(&self) -> Client {
        Client::connect(([127, 0, 0, 1], self.port).into())
    }

    fn login(&self) -> Client {
        let mut c = self.client();
        c.login("user", "pass");
        c
    }

    fn pid(&self) -> i32 {
        i32::try_from(self.daemon.0.id()).unwrap()
    }

    fn stderr(&self) -> Vec<String> {
        self.stderr.lock().unwrap().clone()
    }

    /// Sends SIGHUP.
    fn hup(&self) {
        // SAFETY: kill(2) on the pid of a child this test started and has not reaped.
        assert_eq!(unsafe { libc::kill(self.pid(), libc::SIGHUP) }, 0);
    }
}

/// Starts `ftpdlib` serving `root` to "user"/"pass" with write access and `args`, with
/// `env` and without RUST_LOG; returns once `ready` says it is listening.
fn start(
    root: &TempDir,
    args: &[&str],
    env: &[(&str, &str)],
    ready: impl Fn(&[String]) -> bool,
) -> Started {
    let port = free_port();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ftpdlib"));
    cmd.args(["-i", "127.0.0.1", "-p", &port.to_string(), "-w"])
        .args(["-u", "user", "-P", "pass", "-d"])
        .arg(root.path())
        .args(args)
        .env_remove("RUST_LOG")
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut daemon = Daemon(cmd.spawn().unwrap());
    let err = BufReader::new(daemon.0.stderr.take().unwrap());
    let stderr = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&stderr);
    std::thread::spawn(move || {
        for line in err.lines().map_while(Result::ok) {
            sink.lock().unwrap().push(line);
        }
    });
    let s = Started {
        daemon,
        port,
        stderr,
    };
    assert!(
        wait_until(Duration::from_secs(20), || ready(&s.stderr())),
        "ftpdlib {args:?} did not start: {:?}",
        s.stderr()
    );
    s
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// Waits up to 5 s for `path` to contain `text` (the file buffer is written out every
/// second).
fn file_has(path: &Path, text: &str) -> bool {
    wait_until(Duration::from_secs(5), || read(path).contains(text))
}

fn started_in(path: &Path) -> impl Fn(&[String]) -> bool + '_ {
    move |_| read(path).contains("starting FTP server")
}

#[test]
fn log_file_gets_the_lines_and_is_reopened_after_a_rename_and_sighup() {
    let root = TempDir::new("logs-root");
    let logs = TempDir::new("logs-file");
    let log = logs.join("ftpd.log");
    let rotated = logs.join("ftpd.log.1");
    let d = start(
        &root,
        &["--log-file", log.to_str().unwrap()],
        &[],
        started_in(&log),
    );
    let mut c = d.login();
    c.stor("STOR first.bin", b"0123456789");
    assert!(
        file_has(&log, "-[user] STOR /first.bin completed=1 bytes=10"),
        "{}",
        read(&log)
    );
    assert!(read(&log).contains("USER 'user' logged in."));
    // Text lines keep their layout: [time LEVEL target] message.
    let first = read(&log).lines().next().unwrap().to_string();
    assert!(
        first.starts_with('[') && first.contains("Z INFO  ftpdlib] >>> starting"),
        "{first}"
    );
    // Nothing went to standard error.
    assert!(d.stderr().is_empty(), "{:?}", d.stderr());

    // logrotate without copytruncate: rename, then SIGHUP.
    std::fs::rename(&log, &rotated).unwrap();
    d.hup();
    assert!(
        file_has(&log, "SIGHUP: reopened"),
        "new file: {}",
        read(&log)
    );
    c.cmd("MKD after", 257);
    assert!(file_has(&log, "-[user] MKD /after 257"), "{}", read(&log));
    let old = read(&rotated);
    let new = read(&log);
    assert!(
        old.contains("STOR /first.bin") && !old.contains("MKD /after"),
        "{old}"
    );
    assert!(
        !new.contains("STOR /first.bin") && !new.contains("starting FTP server"),
        "{new}"
    );
    drop(c);

    // A reopen that fails keeps the old file: the directory moved away with it.
    let moved = TempDir::new("logs-moved");
    let moved_log = moved.join("ftpd.log");
    std::fs::remove_dir(moved.path()).unwrap();
    std::fs::rename(logs.path(), moved.path()).unwrap();
    d.hup();
    assert!(
        file_has(&moved_log, "logging on to the old file"),
        "{}",
        read(&moved_log)
    );
    let mut c = d.login();
    c.cmd("MKD still", 257);
    assert!(
        file_has(&moved_log, "-[user] MKD /still 257"),
        "{}",
        read(&moved_log)
    );
    assert!(!log.exists());
}

#[test]
fn a_log_file_that_cannot_be_opened_is_one_line_and_exit_1() {
    let root = TempDir::new("logs-bad");
    let out = Command::new(env!("CARGO_BIN_EXE_ftpdlib"))
        .args(["-i", "127.0.0.1", "-p", &free_port().to_string(), "-d"])
        .arg(root.path())
        .args(["--log-file", "/nonexistent-ftpdlib-dir/ftpd.log"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("ftpdlib: can't open the log file /nonexistent-ftpdlib-dir/ftpd.log: "),
        "{err}"
    );
}

/// The JSON lines of `path`, each parsed.
fn json_lines(path: &Path) -> Vec<serde_json::Value> {
    read(path)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn find<'a>(lines: &'a [serde_json::Value], event: &str) -> &'a serde_json::Value {
    lines
        .iter()
        .find(|l| l["event"] == event)
        .unwrap_or_else(|| panic!("no {event} in {lines:#?}"))
}

#[test]
fn json_lines_carry_the_fields_of_login_upload_and_refusal() {
    let root = TempDir::new("logs-json");
    let logs = TempDir::new("logs-json-file");
    let log = logs.join("ftpd.json");
    let d = start(
        &root,
        &["--log-file", log.to_str().unwrap(), "--log-format", "json"],
        &[],
        started_in(&log),
    );
    let mut c = d.login();
    let client = c.stream.local_addr().unwrap().to_string();
    c.stor("STOR up.bin", &[7u8; 1234]);
    c.cmd("DELE missing.txt", 550);
    c.cmd("QUIT", 221);
    assert!(file_has(&log, "\"disconnect\""), "{}", read(&log));
    let lines = json_lines(&log);
    for l in &lines {
        assert!(l["time"].as_str().unwrap().ends_with('Z'), "{l}");
        assert!(l["level"].is_string() && l["target"].is_string(), "{l}");
        assert!(l["message"].is_string(), "{l}");
    }
    let login = find(&lines, "login");
    assert_eq!(login["user"], "user");
    assert_eq!(login["client"], client.as_str());
    assert_eq!(login["level"], "INFO");
    assert_eq!(login["target"], "ftpdlib");
    let session = login["session"].as_u64().unwrap();
    assert!(login["message"]
        .as_str()
        .unwrap()
        .ends_with("USER 'user' logged in."));

    let upload = find(&lines, "transfer");
    assert_eq!(upload["command"], "STOR");
    assert_eq!(upload["path"], "/up.bin");
    assert_eq!(upload["bytes"], 1234);
    assert!(upload["seconds"].as_f64().unwrap() >= 0.0, "{upload}");
    assert_eq!(upload["completed"], true);
    assert_eq!(upload["session"], session);

    let refused = find(&lines, "refused");
    assert_eq!(refused["command"], "DELE");
    assert_eq!(refused["path"], "/missing.txt");
    assert_eq!(refused["code"], 550);
    assert_eq!(refused["reason"], "No such file or directory.");
    assert_eq!(refused["user"], "user");
    assert!(refused["message"]
        .as_str()
        .unwrap()
        .ends_with("DELE /missing.txt 550 'No such file or directory.'"));
    assert_eq!(find(&lines, "disconnect")["session"], session);
    assert_eq!(find(&lines, "connect")["client"], client.as_str());
}

#[cfg(feature = "tls")]
/// The target of a text line: `[time LEVEL target] message`.
fn target(line: &str) -> Option<&str> {
    let head = line.strip_prefix('[')?.split(']').next()?;
    head.split_whitespace().nth(2)
}

#[cfg(feature = "tls")]
#[test]
fn debug_shows_ftpdlibs_lines_and_no_other_crates() {
    if !util::require("python3") {
        return;
    }
    let cert = format!("{}/../tests/data/cert.pem", env!("CARGO_MANIFEST_DIR"));
    let key = format!("{}/../tests/data/key.pem", env!("CARGO_MANIFEST_DIR"));
    let tls = ["--tls-cert", &cert, "--tls-key", &key];
    let started = |lines: &[String]| lines.iter().any(|l| l.contains("starting FTP server"));
    // A TLS login and listing: rustls has debug lines to give.
    let session = |d: &Started, marker: &str| {
        let script = format!(
            "import ftplib, ssl\n\
             ctx = ssl.create_default_context(); ctx.check_hostname = False\n\
             ctx.verify_mode = ssl.CERT_NONE\n\
             f = ftplib.FTP_TLS(context=ctx); f.connect('127.0.0.1', {}, timeout=10)\n\
             f.login('user', 'pass'); f.prot_p(); f.nlst(); f.mkd('{marker}'); f.quit()\n",
            d.port
        );
        let out = util::run(Command::new("python3").args(["-c", &script]));
        assert!(out.status.success(), "{out:?}");
        assert!(wait_until(Duration::from_secs(5), || d
            .stderr()
            .iter()
            .any(|l| l.contains("FTP session closed"))));
    };
    let root = TempDir::new("logs-debug");
    let mut args = vec!["-D"];
    args.extend(tls);
    let d = start(&root, &args, &[], started);
    session(&d, "debug-run");
    let lines = d.stderr();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("ftpdlib::line] ") && l.contains("<- MKD debug-run")),
        "{lines:#?}"
    );
    for l in &lines {
        let t = target(l).unwrap_or_else(|| panic!("not a log line: {l}"));
        assert!(t == "ftpdlib" || t.starts_with("ftpdlib::"), "{l}");
    }
    drop(d);
    // RUST_LOG still opens every crate: the same session then shows rustls' debug lines,
    // which -D kept out.
    let d = start(&root, &tls, &[("RUST_LOG", "debug")], started);
    session(&d, "rust-log-run");
    assert!(
        d.stderr()
            .iter()
            .any(|l| target(l).is_some_and(|t| t.starts_with("rustls"))),
        "{:#?}",
        d.stderr()
    );
}

#[test]
fn use_localtime_stamps_lines_in_the_local_zone() {
    let root = TempDir::new("logs-tz");
    let started = |lines: &[String]| lines.iter().any(|l| l.contains("starting FTP server"));
    // POSIX TZ: "Etc/GMT-5" is five hours east of UTC.
    let tz = [("TZ", "Etc/GMT-5")];
    let d = start(&root, &["--use-localtime"], &tz, started);
    let line = d.stderr()[0].clone();
    let stamp = line.strip_prefix('[').unwrap().split(' ').next().unwrap();
    assert!(stamp.ends_with("+05:00"), "{line}");
    drop(d);
    let d = start(&root, &[], &tz, started);
    let line = d.stderr()[0].clone();
    assert!(
        line.split(' ').next().unwrap().ends_with('Z'),
        "UTC by default: {line}"
    );
}

#[test]
fn syslog_lines_reach_the_socket() {
    let dir = TempDir::new("logs-syslog");
    let path = dir.join("log.sock");
    let sock = UnixDatagram::bind(&path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let root = TempDir::new("logs-syslog-root");
    let got = Arc::new(Mutex::new(Vec::<String>::new()));
    let sink = Arc::clone(&got);
    let reader = sock.try_clone().unwrap();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 65536];
        while let Ok(n) = reader.recv(&mut buf) {
            sink.lock()
                .unwrap()
                .push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    });
    let has = |text: &str| {
        wait_until(Duration::from_secs(5), || {
            got.lock().unwrap().iter().any(|m| m.contains(text))
        })
    };
    let d = start(
        &root,
        &["--syslog", "--syslog-socket", path.to_str().unwrap()],
        &[],
        |_| {
            got.lock()
                .unwrap()
                .iter()
                .any(|m| m.contains("starting FTP server"))
        },
    );
    let mut c = d.login();
    c.cmd("DELE gone.txt", 550);
    assert!(
        has("DELE /gone.txt 550 'No such file or directory.'"),
        "{:?}",
        got.lock()
    );
    let pid = d.pid();
    let messages = got.lock().unwrap().clone();
    let login = messages
        .iter()
        .find(|m| m.contains("USER 'user' logged in."))
        .unwrap_or_else(|| panic!("{messages:?}"));
    // RFC 3164: <facility ftp (11) * 8 + severity info (6)>, then the time, the tag and
    // the pid, then the target and pyftpdlib's line; no time stamp of our own.
    assert!(login.starts_with("<94>"), "{login}");
    assert!(
        login.contains(&format!(" ftpdlib[{pid}]: ftpdlib: 127.0.0.1:")),
        "{login}"
    );
    assert!(d.stderr().is_empty(), "{:?}", d.stderr());
    drop(d);

    // JSON over syslog: the message after the tag is one object.
    got.lock().unwrap().clear();
    let d = start(
        &root,
        &[
            "--syslog",
            "--syslog-socket",
            path.to_str().unwrap(),
            "--log-format",
            "json",
        ],
        &[],
        |_| {
            got.lock()
                .unwrap()
                .iter()
                .any(|m| m.contains("starting FTP server"))
        },
    );
    drop(d.login());
    assert!(has("\"event\":\"login\""), "{:?}", got.lock());
    let messages = got.lock().unwrap().clone();
    let login = messages
        .iter()
        .find(|m| m.contains("\"event\":\"login\""))
        .unwrap();
    let json = login.split_once("]: ").unwrap().1;
    let v: serde_json::Value = serde_json::from_str(json).unwrap();
    assert_eq!(v["user"], "user");
    assert!(v.get("time").is_none(), "{v}");
}

#[test]
fn a_missing_syslog_socket_is_one_line_and_exit_1() {
    let dir = TempDir::new("logs-nosyslog");
    let out = Command::new(env!("CARGO_BIN_EXE_ftpdlib"))
        .args(["-i", "127.0.0.1", "-p", &free_port().to_string(), "-d"])
        .arg(dir.path())
        .args(["--syslog", "--syslog-socket"])
        .arg(dir.join("none.sock"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("ftpdlib: can't reach syslog at "), "{err}");
}

// ---- found by the soak ----

/// lftp sends the server's IP address as SNI on every FTPS connection; rustls warns
/// about each ("Illegal SNI extension"), and any client may ask for such a line per
/// connection: 7,327 of them in a ten-minute soak (demo/bench/soak.sh). The default
/// filter holds rustls to errors, -D too; RUST_LOG still opens it.
#[cfg(feature = "tls")]
#[test]
fn an_ip_address_as_sni_is_not_a_warning_per_connection() {
    if !util::require("lftp") {
        return;
    }
    let cert = format!("{}/../tests/data/cert.pem", env!("CARGO_MANIFEST_DIR"));
    let key = format!("{}/../tests/data/key.pem", env!("CARGO_MANIFEST_DIR"));
    let started = |lines: &[String]| lines.iter().any(|l| l.contains("starting FTP server"));
    let root = TempDir::new("logs-sni");
    std::fs::write(root.join("seen.txt"), b"x").unwrap();
    let session = |d: &Started| {
        let out = util::run(
            Command::new("timeout")
                .args(["60", "lftp", "-u", "user,pass", "-p", &d.port.to_string()])
                .args([
                    "-e",
                    "set net:max-retries 1; set ssl:verify-certificate no; \
                            set ftp:ssl-force yes; set ftp:ssl-protect-data yes; cls -1; quit",
                ])
                .arg("127.0.0.1")
                .stdin(Stdio::null()),
        );
        assert!(out.status.success(), "{out:?}");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("seen.txt"),
            "{out:?}"
        );
        assert!(wait_until(Duration::from_secs(5), || d
            .stderr()
            .iter()
            .any(|l| l.contains("FTP session closed"))));
    };
    let rustls_lines = |d: &Started| {
        d.stderr()
            .into_iter()
            .filter(|l| target(l).is_some_and(|t| t.starts_with("rustls")))
            .collect::<Vec<_>>()
    };
    let tls = ["--tls-cert", &cert, "--tls-key", &key];
    // RUST_LOG=info shows that this session makes rustls warn ...
    let d = start(&root, &tls, &[("RUST_LOG", "info")], started);
    session(&d);
    assert!(
        rustls_lines(&d).iter().any(|l| l.contains("WARN")),
        "{:#?}",
        d.stderr()
    );
    drop(d);
    // ... and neither the default filter nor -D passes it on.
    for debug in [false, true] {
        let mut args = tls.to_vec();
        if debug {
            args.push("-D");
        }
        let d = start(&root, &args, &[], started);
        session(&d);
        assert_eq!(rustls_lines(&d), Vec::<String>::new(), "-D: {debug}");
    }
}

/// With two reactors writing at once, every line of the log file and of the xferlog is
/// whole: 8 clients at a time log in, upload and download, and each of the 160 transfers
/// has one well-formed JSON line and one xferlog line.
#[test]
fn two_reactors_write_whole_log_and_xferlog_lines() {
    let root = TempDir::new("logs-workers");
    let logs = TempDir::new("logs-workers-file");
    let log = logs.join("ftpd.json");
    let xferlog = logs.join("xferlog");
    let d = start(
        &root,
        &[
            "--workers",
            "2",
            "--log-file",
            log.to_str().unwrap(),
            "--log-format",
            "json",
            "--xferlog",
            xferlog.to_str().unwrap(),
        ],
        &[],
        started_in(&log),
    );
    let (clients, rounds) = (8, 10);
    let port = d.port;
    let threads: Vec<_> = (0..clients)
        .map(|t| {
            std::thread::spawn(move || {
                for r in 0..rounds {
                    let mut c = Client::connect(([127, 0, 0, 1], port).into());
                    c.login("user", "pass");
                    let body = vec![b'a' + (t as u8); 1000 + r * 37];
                    c.stor(format!("STOR t{t}-r{r}.bin"), &body);
                    assert_eq!(c.retr(format!("RETR t{t}-r{r}.bin")), body);
                    c.cmd("QUIT", 221);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let transfers = 2 * clients * rounds;
    assert!(
        wait_until(Duration::from_secs(10), || {
            json_lines(&log)
                .iter()
                .filter(|l| l["event"] == "disconnect")
                .count()
                == clients * rounds
        }),
        "{}",
        read(&log)
    );
    // json_lines fails on any line that is not one whole JSON object.
    let lines = json_lines(&log);
    let done: Vec<_> = lines.iter().filter(|l| l["event"] == "transfer").collect();
    assert_eq!(done.len(), transfers);
    assert!(done.iter().all(|l| l["completed"] == true), "{done:#?}");
    let xfer = read(&xferlog);
    let xlines: Vec<&str> = xfer.lines().collect();
    assert_eq!(xlines.len(), transfers, "{xfer}");
    for l in &xlines {
        // "<date> 0 127.0.0.1 <bytes> <path> b _ <i|o> r user ftp 0 * c"
        let f: Vec<&str> = l.split_whitespace().collect();
        assert_eq!(f.len(), 18, "{l}");
        assert!(f[8].contains("/t") && f[8].ends_with(".bin"), "{l}");
        assert!(matches!(f[11], "i" | "o"), "{l}");
        assert_eq!(&f[12..], ["r", "user", "ftp", "0", "*", "c"], "{l}");
    }
}

/// The count of write(2)-family calls the process has made, all threads together
/// (`syscw` of /proc/PID/io).
fn write_calls(pid: u32) -> u64 {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).unwrap();
    io.lines()
        .find_map(|l| l.strip_prefix("syscw: "))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// Standard error redirected to a file is buffered like `--log-file`: logins cost no
/// write(2) per line, the lines land within the flush period, and every one is there once
/// the daemon has exited.
#[test]
fn standard_error_to_a_file_is_buffered_and_flushed() {
    let root = TempDir::new("logs-stderr-root");
    let logs = TempDir::new("logs-stderr");
    let path = logs.join("err.log");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ftpdlib"));
    cmd.args(["-i", "127.0.0.1", "-p", "0", "-u", "user", "-P", "pass"])
        .args(["--auth-failed-delay", "0", "-d"])
        .arg(root.path())
        .env_remove("RUST_LOG")
        .stderr(std::fs::File::create(&path).unwrap());
    let mut d = Daemon(cmd.spawn().unwrap());
    assert!(file_has(&path, "starting FTP server"), "{}", read(&path));
    let port = read(&path).lines().find_map(util::listening_port).unwrap();
    let pid = d.0.id();
    let before = write_calls(pid);
    const LOGINS: u64 = 40;
    for _ in 0..LOGINS {
        let mut c = Client::connect(([127, 0, 0, 1], port).into());
        c.login("user", "pass");
        c.cmd("QUIT", 221);
        assert!(c.closed_by_server());
    }
    let writes = write_calls(pid) - before;
    // Three lines a login (opened, logged in, closed) written one by one would be 120
    // calls; the worker pool's wake-up of the reactor is one a login.
    assert!(
        writes < LOGINS + 10,
        "{writes} write calls for {LOGINS} logins"
    );
    assert!(wait_until(Duration::from_secs(5), || {
        read(&path).matches("logged in").count() == LOGINS as usize
    }));
    // SAFETY: kill(2) on the pid of a child this test started and has not reaped.
    assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGTERM) }, 0);
    assert!(d.0.wait().unwrap().success());
    let text = read(&path);
    assert!(
        text.lines().last().unwrap().contains("FTP server stopped"),
        "{text}"
    );
}
