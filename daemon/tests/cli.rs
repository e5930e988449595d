//! The `ftpdlib` command: flags, error messages, and serving a directory to curl.

mod util;

use std::net::TcpListener;
use std::process::{Command, Output, Stdio};
use std::time::Instant;

use util::{assert_same, fails, ftpdlib, random_bytes, require, serve_daemon as serve, TempDir};

#[test]
fn help_and_version() {
    let out = ftpdlib().arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--interface",
        "--port",
        "--write",
        "--directory",
        "--users",
        "--max-cons-per-ip",
        "--read-limit",
        "--write-limit",
        "--max-rate",
        "--login-timeout",
        "--max-login-failures",
        "--max-cmds-per-sec",
        "--shutdown-grace",
    ] {
        assert!(help.contains(flag), "{flag} missing from --help");
    }
    let out = ftpdlib().arg("-v").output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("ftpdlib {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn clear_errors() {
    assert!(fails(&["--bogus"]).contains("unexpected argument '--bogus'"));
    assert!(fails(&["-p"]).contains("a value is required for '--port"));
    assert!(fails(&["-p", "http"]).contains("invalid value 'http' for '--port"));
    assert!(fails(&["-r", "9-1"]).contains("invalid port range"));
    assert!(fails(&["-u", "bob"]).contains("go together"));
    assert!(fails(&["--write-limit", "fast"]).contains("invalid rate \"fast\""));
    assert!(fails(&["--max-rate", "10X"]).contains("invalid rate"));
    assert!(
        fails(&["--shutdown-grace", "soon"]).contains("invalid value 'soon' for '--shutdown-grace")
    );
    assert!(fails(&["-d", "/nonexistent/dir"]).contains("no such directory"));
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let msg = fails(&["-i", "127.0.0.1", "-p", &port]);
    assert!(
        msg.contains("can't listen on 127.0.0.1:") && msg.to_lowercase().contains("in use"),
        "{msg}"
    );
}

#[test]
fn users_file_errors_name_the_line() {
    let dir = TempDir::new("cli-users");
    let file = dir.join("users");
    std::fs::write(&file, "# accounts\n\nalice:pw:elr\nbroken-line\n").unwrap();
    let msg = fails(&[
        "-d",
        dir.path().to_str().unwrap(),
        "--users",
        file.to_str().unwrap(),
    ]);
    assert!(msg.contains(":4:"), "{msg}");
    std::fs::write(&file, "alice:pw:elrZ\n").unwrap();
    let msg = fails(&[
        "-d",
        dir.path().to_str().unwrap(),
        "--users",
        file.to_str().unwrap(),
    ]);
    assert!(msg.contains(":1:") && msg.contains('Z'), "{msg}");
}

#[test]
fn users_file_refuses_what_it_would_misread() {
    let dir = TempDir::new("cli-users-refused");
    let file = dir.join("users");
    let d = dir.path().to_str().unwrap().to_string();
    for (content, line, words) in [
        // An empty password.
        ("alice:pw:elr\nbob::elr\n", ":2:", "empty password"),
        // A ':' inside the password shifts the fields: the home is then not absolute.
        ("carol:pa:ss:elr\n", ":1:", "cannot contain ':'"),
        ("dave:x:elr:elr\n", ":1:", "not an absolute path"),
        // anonymous has no password and no line: --anonymous turns it on.
        ("anonymous:guest:elr\n", ":1:", "--anonymous"),
        // A truncated hash is a mistake, not a plain password to accept.
        ("erin:$y$j9T$salt$short:elr\n", ":1:", "not a crypt(3) hash"),
    ] {
        std::fs::write(&file, content).unwrap();
        let msg = fails(&["-d", &d, "--users", file.to_str().unwrap()]);
        assert!(
            msg.contains(line) && msg.contains(words),
            "{content:?}: {msg}"
        );
    }
}

#[test]
fn serves_a_directory_to_curl_with_write_access() {
    if !require("curl") {
        return;
    }
    let dir = TempDir::new("cli-serve");
    let body = random_bytes(50 << 20, 50);
    let local = TempDir::new("cli-local");
    std::fs::write(local.join("up.bin"), &body).unwrap();
    let (_d, port) = serve(&[
        "-w",
        "-d",
        dir.path().to_str().unwrap(),
        "-u",
        "user",
        "-P",
        "secret",
    ]);
    let url = format!("ftp://user:secret@127.0.0.1:{port}/up.bin");
    let st = Command::new("curl")
        .args(["-sS", "--max-time", "120", "-T"])
        .arg(local.join("up.bin"))
        .arg(&url)
        .status()
        .unwrap();
    assert!(st.success());
    assert_same(&std::fs::read(dir.join("up.bin")).unwrap(), &body);
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "120"])
        .arg(&url)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_same(&out.stdout, &body);
}

#[test]
fn anonymous_read_only_by_default_and_users_file() {
    if !require("curl") {
        return;
    }
    let dir = TempDir::new("cli-anon");
    std::fs::write(dir.join("pub.txt"), b"public").unwrap();
    let local = TempDir::new("cli-anon-local");
    std::fs::write(local.join("x"), b"x").unwrap();
    let (d, port) = serve(&["-d", dir.path().to_str().unwrap()]);
    let out = Command::new("curl")
        .args(["-sS", &format!("ftp://127.0.0.1:{port}/pub.txt")])
        .output()
        .unwrap();
    assert_eq!(out.stdout, b"public");
    let st = Command::new("curl")
        .stderr(Stdio::null())
        .args(["-sS", "-T"])
        .arg(local.join("x"))
        .arg(format!("ftp://127.0.0.1:{port}/x"))
        .status()
        .unwrap();
    assert!(!st.success(), "anonymous upload must be refused");
    drop(d);

    let users = local.join("users");
    std::fs::write(
        &users,
        "# name:password:perms\nwriter:pw:elrw\nreader:pw:elr\n",
    )
    .unwrap();
    let (_d, port) = serve(&[
        "-d",
        dir.path().to_str().unwrap(),
        "--users",
        users.to_str().unwrap(),
        "--anonymous",
    ]);
    let st = Command::new("curl")
        .stderr(Stdio::null())
        .args(["-sS", "-T"])
        .arg(local.join("x"))
        .arg(format!("ftp://writer:pw@127.0.0.1:{port}/w"))
        .status()
        .unwrap();
    assert!(st.success());
    assert_eq!(std::fs::read(dir.join("w")).unwrap(), b"x");
    let st = Command::new("curl")
        .stderr(Stdio::null())
        .args(["-sS", "-T"])
        .arg(local.join("x"))
        .arg(format!("ftp://reader:pw@127.0.0.1:{port}/r"))
        .status()
        .unwrap();
    assert!(!st.success());
    let out = Command::new("curl")
        .args(["-sS", &format!("ftp://127.0.0.1:{port}/pub.txt")])
        .output()
        .unwrap();
    assert_eq!(out.stdout, b"public", "--anonymous serves anonymous too");
}

#[test]
fn hash_password_makes_hashes_the_users_file_takes() {
    if !require("curl") {
        return;
    }
    let hash = |args: &[&str], input: &str| -> Output {
        let mut child = ftpdlib()
            .arg("hash-password")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        {
            use std::io::Write;
            let mut stdin = child.stdin.take().unwrap();
            // A child that refuses its arguments exits without reading: a closed pipe
            // then is expected, and its exit status tells the rest.
            let _ = stdin.write_all(input.as_bytes());
        }
        child.wait_with_output().unwrap()
    };
    let yes = hash(&[], "s3cret pw\n");
    assert!(yes.status.success());
    let yes = String::from_utf8(yes.stdout).unwrap().trim().to_string();
    assert!(yes.starts_with("$y$"), "{yes}");
    let sha = hash(&["--method", "sha512"], "other\r\n");
    let sha = String::from_utf8(sha.stdout).unwrap().trim().to_string();
    assert!(sha.starts_with("$6$"), "{sha}");
    let empty = hash(&[], "\n");
    assert!(!empty.status.success());
    assert!(String::from_utf8_lossy(&empty.stderr).contains("empty password"));
    let bad = hash(&["--method", "md5"], "x\n");
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown method"));

    let dir = TempDir::new("cli-hashed");
    std::fs::write(dir.join("f.txt"), b"hashed").unwrap();
    let users = dir.join("users");
    std::fs::write(&users, format!("y:{yes}:elr\ns:{sha}:elr\nplain:pw:elr\n")).unwrap();
    let (_d, port) = serve(&[
        "-d",
        dir.path().to_str().unwrap(),
        "--users",
        users.to_str().unwrap(),
        "--auth-failed-delay",
        "0",
    ]);
    let get = |userpass: &str| {
        Command::new("curl")
            .stderr(Stdio::null())
            .args(["-sS", "--max-time", "30"])
            .arg(format!("ftp://{userpass}@127.0.0.1:{port}/f.txt"))
            .output()
            .unwrap()
    };
    assert_eq!(get("y:s3cret%20pw").stdout, b"hashed");
    assert_eq!(get("s:other").stdout, b"hashed");
    assert_eq!(get("plain:pw").stdout, b"hashed");
    assert!(!get("y:s3cret").status.success());
    assert!(!get(&format!("y:{}", yes.replace('$', "%24")))
        .status
        .success());
}

#[test]
fn system_user_flags_are_checked() {
    assert!(fails(&["--allowed-users", "a"]).contains("need --system-users"));
    assert!(fails(&["--require-valid-shell"]).contains("need --system-users"));
    assert!(fails(&["--system-users", "-u", "a", "-P", "b"]).contains("can't be combined"));
    assert!(fails(&[
        "--system-users",
        "--allowed-users",
        "a",
        "--rejected-users",
        "b"
    ])
    .contains("exclude each other"));
    assert!(fails(&["--allowed-users", "a,,b", "--system-users"]).contains("invalid"));
    assert!(fails(&["-p", "0", "--xferlog", "/nonexistent/dir/xferlog"]).contains("can't open"));
    let help = String::from_utf8(ftpdlib().arg("--help").output().unwrap().stdout).unwrap();
    for flag in [
        "hash-password",
        "--system-users",
        "--allowed-users",
        "--rejected-users",
        "--require-valid-shell",
        "--xferlog",
    ] {
        assert!(help.contains(flag), "{flag} missing from --help");
    }
}

#[test]
fn write_limit_throttles_downloads() {
    let dir = TempDir::new("cli-limit");
    std::fs::write(dir.join("f"), random_bytes(192 * 1024, 5)).unwrap();
    let (_d, port) = serve(&["-d", dir.path().to_str().unwrap(), "--write-limit", "128K"]);
    let mut c = util::Client::connect(format!("127.0.0.1:{port}").parse().unwrap());
    c.login("anonymous", "guest");
    let start = Instant::now();
    let got = c.retr("RETR f");
    let secs = start.elapsed().as_secs_f64();
    assert_same(&got, &random_bytes(192 * 1024, 5));
    // 192 KiB at 128 KiB/s: 1.5 s.
    assert!((1.3..3.0).contains(&secs), "took {secs:.2} s");
}

#[cfg(feature = "tls")]
#[test]
fn tls_flags() {
    let cert = format!("{}/../tests/data/cert.pem", env!("CARGO_MANIFEST_DIR"));
    let key = format!("{}/../tests/data/key.pem", env!("CARGO_MANIFEST_DIR"));
    assert!(fails(&["--tls-cert", &cert]).contains("--tls-key"));
    assert!(fails(&["--tls-implicit"]).contains("--tls-cert"));
    for flag in [
        "--tls-session-reuse-required",
        "--tls-no-session-reuse",
        "--tls-close-notify-required",
    ] {
        assert!(fails(&[flag]).contains("--tls-cert"), "{flag}");
    }
    assert!(fails(&["--tls-cert", &key, "--tls-key", &key]).contains("no certificate"));
    assert!(fails(&[
        "--tls-cert",
        &cert,
        "--tls-key",
        &key,
        "--tls-data-required=x"
    ])
    .contains("want all or users"));
    if !require("curl") {
        return;
    }
    let dir = TempDir::new("cli-tls");
    let body = random_bytes(300_000, 31);
    std::fs::write(dir.join("f.bin"), &body).unwrap();
    let d = dir.path().to_str().unwrap();
    for (flags, scheme, extra) in [
        (
            &["--tls-control-required", "--tls-data-required"][..],
            "ftp",
            &["--ssl-reqd"][..],
        ),
        (&["--tls-implicit"][..], "ftps", &[][..]),
    ] {
        let mut args = vec![
            "-d",
            d,
            "-u",
            "u",
            "-P",
            "p",
            "--tls-cert",
            &cert,
            "--tls-key",
            &key,
        ];
        args.extend_from_slice(flags);
        let (_daemon, port) = serve(&args);
        let out = Command::new("curl")
            .args(["--silent", "--show-error", "--max-time", "60", "-k"])
            .args(extra)
            .arg(format!("{scheme}://u:p@127.0.0.1:{port}/f.bin"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_same(&out.stdout, &body);
    }
}

/// A daemon started with `args`, `env` and working directory `cwd`, without `-i`/`-p`
/// added and without RUST_LOG, so the flags alone set the address and the log level.
/// Returns it once it logs that it listens, with the address it logged and the log so far
/// (kept growing by a thread).
fn start(
    args: &[&str],
    env: &[(&str, &str)],
    cwd: Option<&std::path::Path>,
) -> (
    util::Daemon,
    std::net::SocketAddr,
    std::sync::Arc<std::sync::Mutex<Vec<String>>>,
) {
    use std::io::BufRead;
    let mut cmd = ftpdlib();
    cmd.args(args).env_remove("RUST_LOG").stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    if let Some(d) = cwd {
        cmd.current_dir(d);
    }
    let mut daemon = util::Daemon(cmd.spawn().unwrap());
    let err = std::io::BufReader::new(daemon.0.stderr.take().unwrap());
    let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let (tx, rx) = std::sync::mpsc::channel();
    let sink = log.clone();
    std::thread::spawn(move || {
        for line in err.lines().map_while(Result::ok) {
            if let Some(rest) = line.split("starting FTP server on ").nth(1) {
                let _ = tx.send(rest.split([',', ' ']).next().unwrap_or("").to_string());
            }
            sink.lock().unwrap().push(line);
        }
    });
    let addr = rx
        .recv_timeout(std::time::Duration::from_secs(20))
        .unwrap_or_else(|_| panic!("ftpdlib {args:?} did not start: {:?}", log.lock()));
    (daemon, addr.parse().unwrap(), log)
}

/// Waits up to 5 s for a log line containing `text`.
fn logged(log: &std::sync::Mutex<Vec<String>>, text: &str) -> bool {
    let end = Instant::now() + std::time::Duration::from_secs(5);
    while Instant::now() < end {
        if log.lock().unwrap().iter().any(|l| l.contains(text)) {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    false
}

#[test]
fn bundled_flags_and_attached_values() {
    let dir = TempDir::new("cli-bundled");
    let d = dir.path().to_str().unwrap();
    let port = util::free_port().to_string();
    // -wD: write access and the debug log of every command; -p2121 style.
    let p = format!("-p{port}");
    let (daemon, addr, log) = start(&["-i127.0.0.1", &p, "-wD", "-d", d], &[], None);
    assert_eq!(addr.to_string(), format!("127.0.0.1:{port}"));
    let mut c = util::Client::connect(addr);
    c.login("anonymous", "guest");
    c.stor("STOR up.txt", b"bundled");
    assert_eq!(std::fs::read(dir.join("up.txt")).unwrap(), b"bundled");
    assert!(logged(&log, "STOR up.txt"), "-D logs commands: {:?}", log);
    drop(daemon);
    // --port=N and --interface=ADDR; no -w: read-only.
    let port = util::free_port().to_string();
    let (_d, addr, _) = start(
        &["--interface=127.0.0.1", &format!("--port={port}"), "-d", d],
        &[],
        None,
    );
    assert_eq!(addr.port().to_string(), port);
    let mut c = util::Client::connect(addr);
    c.login("anonymous", "guest");
    assert_eq!(c.retr("RETR up.txt"), b"bundled");
    c.pasv();
    c.cmd("STOR no.txt", 550);
}

#[test]
fn environment_variables_set_options_and_flags_win() {
    let dir = TempDir::new("cli-env");
    std::fs::write(dir.join("f.txt"), b"from env").unwrap();
    let port = util::free_port().to_string();
    let env = [
        ("FTPDLIB_INTERFACE", "127.0.0.1"),
        ("FTPDLIB_PORT", port.as_str()),
        ("FTPDLIB_DIRECTORY", dir.path().to_str().unwrap()),
        ("FTPDLIB_WRITE", "1"),
    ];
    let (daemon, addr, _) = start(&[], &env, None);
    assert_eq!(addr.to_string(), format!("127.0.0.1:{port}"));
    let mut c = util::Client::connect(addr);
    c.login("anonymous", "guest");
    assert_eq!(c.retr("RETR f.txt"), b"from env");
    c.stor("STOR w.txt", b"w");
    drop(daemon);
    // The command line wins over the environment.
    let other = util::free_port().to_string();
    let (_d, addr, _) = start(&["-p", &other], &env, None);
    assert_eq!(addr.port().to_string(), other);
    // A bad value from the environment is refused like one from the command line.
    let out = ftpdlib().env("FTPDLIB_PORT", "http").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid value 'http' for '--port"));
}

#[test]
fn typos_get_a_suggestion_on_one_line() {
    let out = ftpdlib().args(["--prot", "2121"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "usage errors exit 2");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unexpected argument '--prot'"), "{err}");
    assert!(err.contains("a similar argument exists: '--port'"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    let err = fails(&["--certfil", "x"]);
    assert!(err.contains("'--certfile'"), "{err}");
    let err = fails(&["hash-pasword"]);
    assert!(err.contains("hash-password"), "{err}");
}

#[test]
fn pyftpdlib_options_that_are_not_supported_are_refused_clearly() {
    let out = ftpdlib().args(["--encoding", "latin1"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("\"latin1\" not supported") && err.contains("utf8"),
        "{err}"
    );
    let err = fails(&["--concurrency", "4"]);
    assert!(err.contains("\"4\" is not supported"), "{err}");
    let err = fails(&["--concurrency", "multi-thread"]);
    assert!(
        err.contains("\"multi-thread\" is not supported") && err.contains("see --workers"),
        "{err}"
    );
    let err = fails(&["-n", "no-such-host.invalid"]);
    assert!(
        err.contains("can't resolve NAT address \"no-such-host.invalid\""),
        "{err}"
    );
    let err = fails(&["-i", "no-such-host.invalid", "-p", "0"]);
    assert!(
        err.contains("can't resolve interface \"no-such-host.invalid\""),
        "{err}"
    );
    assert!(fails(&["--tls"]).contains("--tls needs --certfile and --keyfile"));
    let cert = format!("{}/../tests/data/cert.pem", env!("CARGO_MANIFEST_DIR"));
    assert!(fails(&["--tls", "--certfile", &cert]).contains("--keyfile"));
}

#[test]
fn host_names_and_the_startup_log() {
    let top = TempDir::new("cli-names");
    std::fs::create_dir(top.join("pub")).unwrap();
    std::fs::write(top.join("pub").join("f.txt"), b"by name").unwrap();
    let port = util::free_port().to_string();
    // -d relative to the daemon's working directory; -n a name; utf8 and async accepted.
    let (_d, addr, log) = start(
        &[
            "-i",
            "localhost",
            "-p",
            &port,
            "-d",
            "pub",
            "-n",
            "localhost",
            "-r",
            "60000-60100",
            "--encoding",
            "utf8",
            "--concurrency",
            "async",
        ],
        &[],
        Some(top.path()),
    );
    assert!(addr.ip().is_loopback(), "{addr}");
    assert!(
        logged(&log, "masquerade (NAT) address: 127.0.0.1"),
        "{:?}",
        log
    );
    assert!(logged(&log, "passive ports: 60000->60100"), "{:?}", log);
    let abs = std::fs::canonicalize(top.join("pub")).unwrap();
    let serving = format!("serving {} to", abs.display());
    assert!(logged(&log, &serving), "{:?}", log);
    let mut c = util::Client::connect(addr);
    c.login("anonymous", "guest");
    let pasv = c.pasv();
    assert_eq!(pasv.ip().to_string(), "127.0.0.1");
    assert!((60000..=60100).contains(&pasv.port()), "{pasv}");
    drop(std::net::TcpStream::connect(pasv).unwrap());
    c.send("ABOR");
    c.read_reply();
    c.send("TYPE I");
    c.read_reply();
    assert_eq!(c.retr("RETR f.txt"), b"by name");
}

#[test]
fn disable_sendfile_still_transfers_byte_for_byte() {
    let dir = TempDir::new("cli-nosendfile");
    let body = random_bytes(3 << 20, 77);
    std::fs::write(dir.join("big.bin"), &body).unwrap();
    let (_d, port) = serve(&["-d", dir.path().to_str().unwrap(), "--disable-sendfile"]);
    let mut c = util::Client::connect(format!("127.0.0.1:{port}").parse().unwrap());
    c.login("anonymous", "guest");
    c.cmd("TYPE I", 200);
    assert_same(&c.retr("RETR big.bin"), &body);
}

#[test]
fn use_localtime_lists_in_the_local_time_zone() {
    let dir = TempDir::new("cli-localtime");
    // Two days ago, on a whole minute: recent enough for LIST to show the time of day.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let secs = (now - 2 * 86_400) / 60 * 60;
    let f = std::fs::File::create(dir.join("f.txt")).unwrap();
    f.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs))
        .unwrap();
    drop(f);
    let (h, m) = ((secs % 86_400) / 3600, (secs % 3600) / 60);
    let list = |flags: &[&str]| {
        let port = util::free_port().to_string();
        let mut args = vec!["-i", "127.0.0.1", "-p", &port, "-d"];
        args.push(dir.path().to_str().unwrap());
        args.extend_from_slice(flags);
        // POSIX TZ: "XYZ-5" is five hours east of Greenwich, with no summer time.
        let (_d, addr, _) = start(&args, &[("TZ", "XYZ-5")], None);
        let mut c = util::Client::connect(addr);
        c.login("anonymous", "guest");
        String::from_utf8(c.retr("LIST f.txt")).unwrap()
    };
    let gmt = list(&[]);
    assert!(gmt.contains(&format!(" {h:02}:{m:02} f.txt")), "{gmt}");
    let local = list(&["--use-localtime"]);
    let lh = (h + 5) % 24;
    assert!(local.contains(&format!(" {lh:02}:{m:02} f.txt")), "{local}");
}

#[test]
fn max_login_attempts_and_privileged_ports() {
    let dir = TempDir::new("cli-attempts");
    let d = dir.path().to_str().unwrap();
    let (_a, port) = serve(&[
        "-d",
        d,
        "-u",
        "u",
        "-P",
        "p",
        "--auth-failed-delay",
        "0",
        "--max-login-attempts",
        "1",
    ]);
    let mut c = util::Client::connect(format!("127.0.0.1:{port}").parse().unwrap());
    c.cmd("USER u", 331);
    c.cmd("PASS wrong", 530);
    assert!(c.closed_by_server(), "closed after one failed login");

    let (_b, port) = serve(&["-d", d]);
    let mut c = util::Client::connect(format!("127.0.0.1:{port}").parse().unwrap());
    c.login("anonymous", "guest");
    let r = c.cmd("PORT 127,0,0,1,0,80", 501);
    assert!(r.text().contains("privileged"), "{:?}", r.lines);
    let (_c, port) = serve(&["-d", d, "--permit-privileged-ports"]);
    let mut c = util::Client::connect(format!("127.0.0.1:{port}").parse().unwrap());
    c.login("anonymous", "guest");
    // Allowed now: the server tries to connect (200, or 425 where nothing listens on 80).
    c.send("PORT 127,0,0,1,0,80");
    let r = c.read_reply();
    assert!(r.code == 200 || r.code == 425, "{:?}", r.lines);
}

#[cfg(feature = "tls")]
#[test]
fn pyftpdlib_tls_flags_serve_ftps() {
    if !require("curl") {
        return;
    }
    let cert = format!("{}/../tests/data/cert.pem", env!("CARGO_MANIFEST_DIR"));
    let key = format!("{}/../tests/data/key.pem", env!("CARGO_MANIFEST_DIR"));
    let dir = TempDir::new("cli-certfile");
    let body = random_bytes(200_000, 9);
    std::fs::write(dir.join("f.bin"), &body).unwrap();
    let (_d, port) = serve(&[
        "-d",
        dir.path().to_str().unwrap(),
        "-u",
        "u",
        "-P",
        "p",
        "--tls",
        "--certfile",
        &cert,
        "--keyfile",
        &key,
        "--tls-control-required",
        "--tls-data-required",
    ]);
    let url = format!("ftp://u:p@127.0.0.1:{port}/f.bin");
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "60", "-k", "--ssl-reqd"])
        .arg(&url)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_same(&out.stdout, &body);
    // Without TLS the same server refuses the login.
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "30"])
        .arg(&url)
        .output()
        .unwrap();
    assert!(!out.status.success());
}

/// At a terminal, `hash-password` asks with echo off: the password typed never shows.
#[test]
fn hash_password_at_a_terminal_does_not_echo() {
    if !require("python3") {
        return;
    }
    let script = format!(
        r#"
import os, pty, select, sys, time
pid, fd = pty.fork()
if pid == 0:
    os.execv({bin:?}, [{bin:?}, "hash-password"])
out = b""
def read_for(seconds):
    global out
    end = time.time() + seconds
    while time.time() < end:
        r, _, _ = select.select([fd], [], [], 0.1)
        if r:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                return False
            if not chunk:
                return False
            out += chunk
    return True
read_for(1.0)
assert b"Password:" in out, out
os.write(fd, b"typed-s3cret\n")
read_for(10.0)
os.waitpid(pid, 0)
assert b"typed-s3cret" not in out, out
assert b"$y$" in out, out
print("ok")
"#,
        bin = env!("CARGO_BIN_EXE_ftpdlib")
    );
    let out = util::run(Command::new("python3").args(["-c", &script]));
    assert!(String::from_utf8_lossy(&out.stdout).contains("ok"));
}

/// `--max-unknown-commands`: the cross-protocol limit before login, 3 by default, 0 off.
#[test]
fn max_unknown_commands_before_login() {
    let dir = TempDir::new("cli-unknown");
    let d = dir.path().to_str().unwrap();
    let (_a, port) = serve(&["-d", d]);
    let mut c = util::Client::connect(format!("127.0.0.1:{port}").parse().unwrap());
    c.cmd("GET / HTTP/1.1", 421);
    assert!(c.closed_by_server(), "an HTTP request line closes at once");
    let (_b, port) = serve(&["-d", d, "--max-unknown-commands", "1"]);
    let mut c = util::Client::connect(format!("127.0.0.1:{port}").parse().unwrap());
    c.cmd("XYZZY", 500);
    c.cmd("XYZZY", 500);
    c.expect(421);
    assert!(
        c.closed_by_server(),
        "closed after the second unknown command"
    );
    let (_c, port) = serve(&["-d", d, "--max-unknown-commands", "0"]);
    let mut c = util::Client::connect(format!("127.0.0.1:{port}").parse().unwrap());
    c.cmd("GET / HTTP/1.1", 500);
    for _ in 0..5 {
        c.cmd("XYZZY", 500);
    }
    c.login("anonymous", "guest");
}

/// A certificate that is not there says which setting named it, in one line.
#[cfg(feature = "tls")]
#[test]
fn a_missing_certificate_names_the_tls_setting() {
    let dir = TempDir::new("cli-no-cert");
    let cert = dir.join("fullchain.pem");
    let msg = fails(&[
        "-d",
        dir.path().to_str().unwrap(),
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        cert.to_str().unwrap(),
    ]);
    assert!(
        msg.contains("TLS certificate")
            && msg.contains("fullchain.pem")
            && msg.lines().count() == 1,
        "{msg}"
    );
}
