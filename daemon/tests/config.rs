//! The `--config` file: the example in dist/ serves its accounts to curl and Python's
//! ftplib; every long flag is a key; the command line and the environment win over the
//! file; errors name the line; SIGHUP reloads the file and refuses a broken one.

mod util;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use ftpdlib::authorizer::crypt::{hash_password, Method};
use util::{assert_same, free_port, random_bytes, require, Client, TempDir, Watched};

/// The command with no FTPDLIB_* variable of the test's own environment.
fn ftpdlib() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ftpdlib"));
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("FTPDLIB_") {
            c.env_remove(name);
        }
    }
    c.env("RUST_LOG", "info");
    c
}

type Daemon = Watched;

/// The command with `args` and `env` (and no other FTPDLIB_ variable), started.
fn start(args: &[&str], env: &[(&str, &str)]) -> Daemon {
    let mut cmd = ftpdlib();
    cmd.args(args).envs(env.iter().copied());
    Watched::start(cmd)
}

/// Runs the command, which must exit within 10 s (a server that starts is killed and
/// fails the test); its status and standard error.
fn exits(args: &[&str], env: &[(&str, &str)]) -> (ExitStatus, String) {
    let mut child = ftpdlib()
        .args(args)
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
            return (status, err);
        }
        if Instant::now() >= end {
            let _ = child.kill();
            let _ = child.wait();
            panic!("ftpdlib {args:?} did not exit");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The greeting of a server.
fn greeting(addr: SocketAddr) -> String {
    let mut c = Client::connect_raw(addr);
    c.expect(220).text()
}

fn dist(name: &str) -> String {
    std::fs::read_to_string(format!("{}/../dist/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

fn data_file(name: &str) -> String {
    format!("{}/../tests/data/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// `text` with `from` replaced, which must be there.
fn subst(text: &str, from: &str, to: &str) -> String {
    assert!(text.contains(from), "the example config has no {from:?}");
    text.replace(from, to)
}

/// dist/ftpdlib.toml made to run here: its /srv/ftp tree, log and port in `dir`, the test
/// certificate for Let's Encrypt's, loopback, and alice's password "wonderland".
fn example_config(dir: &TempDir, port: u16) -> PathBuf {
    let srv = dir.join("srv");
    for d in ["pub", "alice", "uploads"] {
        std::fs::create_dir_all(srv.join(d)).unwrap();
    }
    std::fs::create_dir_all(dir.join("log")).unwrap();
    let mut text = dist("ftpdlib.toml");
    text = subst(&text, "/srv/ftp", srv.to_str().unwrap());
    text = subst(&text, "/var/log/ftpdlib", dir.join("log").to_str().unwrap());
    text = subst(&text, "port = 21\n", &format!("port = {port}\n"));
    text = subst(
        &text,
        "interface = \"0.0.0.0\"",
        "interface = \"127.0.0.1\"",
    );
    let live = "/etc/letsencrypt/live/ftp.example.com";
    text = subst(
        &text,
        &format!("{live}/fullchain.pem"),
        &data_file("cert.pem"),
    );
    text = subst(&text, &format!("{live}/privkey.pem"), &data_file("key.pem"));
    if cfg!(not(feature = "tls")) {
        text = text
            .lines()
            .filter(|l| !l.starts_with("tls-"))
            .collect::<Vec<_>>()
            .join("\n");
    }
    // Alice's password: the first `password` after her name.
    let hash = hash_password("wonderland", Method::Sha512).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let at = lines.iter().position(|l| l == "name = \"alice\"").unwrap();
    let pw = at
        + lines[at..]
            .iter()
            .position(|l| l.starts_with("password = "))
            .unwrap();
    lines[pw] = format!("password = \"{hash}\"");
    let path = dir.join("ftpdlib.toml");
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    path
}

/// Logs in as alice with ftplib (FTP_TLS with PROT P when built with TLS), uploads, reads
/// back, quits; prints the login and quit replies.
const PY_ALICE: &str = r#"
import ftplib, io, ssl, sys
port, tls = int(sys.argv[1]), sys.argv[2] == "1"
if tls:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ftp = ftplib.FTP_TLS(context=ctx, timeout=30)
else:
    ftp = ftplib.FTP(timeout=30)
ftp.connect("127.0.0.1", port)
print(ftp.login("alice", "wonderland"))
if tls:
    ftp.prot_p()
ftp.storbinary("STOR from-ftplib.txt", io.BytesIO(b"ftplib was here"))
got = io.BytesIO()
ftp.retrbinary("RETR from-ftplib.txt", got.write)
assert got.getvalue() == b"ftplib was here", got.getvalue()
print(ftp.quit())
"#;

#[test]
fn the_example_config_serves_its_accounts_to_curl_and_ftplib() {
    let dir = TempDir::new("config-example");
    let path = example_config(&dir, free_port());
    let srv = dir.join("srv");
    std::fs::write(srv.join("pub/readme.txt"), b"public file\n").unwrap();
    let mut d = start(&["--config", path.to_str().unwrap()], &[]);
    let port = d.port();
    assert!(greeting(d.addr()).contains("ftp.example.com ready."));
    let tls = cfg!(feature = "tls");

    // Alice with curl: FTPS (the file requires TLS of accounts), into her own home.
    let body = random_bytes(300_000, 7);
    let local = dir.join("upload.bin");
    std::fs::write(&local, &body).unwrap();
    let url = format!("ftp://alice:wonderland@127.0.0.1:{port}/curl.bin");
    let mut up = util::curl();
    if tls {
        up.args(["-k", "--ssl-reqd"]);
    }
    util::run(up.arg("-T").arg(&local).arg(&url));
    assert_same(&std::fs::read(srv.join("alice/curl.bin")).unwrap(), &body);
    let mut down = util::curl();
    if tls {
        down.args(["-k", "--ssl-reqd"]);
    }
    let out = util::run(down.arg(&url));
    assert_same(&out.stdout, &body);
    if tls {
        // Without TLS her login is refused.
        let out = util::curl().arg(&url).output().unwrap();
        assert!(!out.status.success());
    }

    // Alice with ftplib: her login and quit messages from the file.
    if require("python3") {
        let out = util::run(Command::new("python3").args([
            "-c",
            PY_ALICE,
            &port.to_string(),
            if tls { "1" } else { "0" },
        ]));
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(said.contains("230 Hello alice."), "{said}");
        assert!(said.contains("221 Bye alice."), "{said}");
        assert_eq!(
            std::fs::read(srv.join("alice/from-ftplib.txt")).unwrap(),
            b"ftplib was here"
        );
    }

    // Anonymous: plain FTP, read-only, in pub/, with its own message.
    let anon = format!("ftp://127.0.0.1:{port}/readme.txt");
    let out = util::run(util::curl().arg(&anon));
    assert_eq!(out.stdout, b"public file\n");
    let out = util::curl()
        .arg("-T")
        .arg(&local)
        .arg(format!("ftp://127.0.0.1:{port}/up.bin"))
        .output()
        .unwrap();
    assert!(!out.status.success(), "anonymous may not upload");
    let mut c = Client::connect(d.addr());
    c.cmd("USER anonymous", 331);
    let r = c.cmd("PASS x@y", 230);
    assert!(r.text().contains("Welcome, anonymous"), "{:?}", r.lines);
    // PASV announces the NAT address of the file, from its passive range.
    let pasv = c.pasv();
    assert_eq!(pasv.ip(), IpAddr::V4(Ipv4Addr::new(203, 0, 113, 7)));
    assert!((60000..=60199).contains(&pasv.port()), "{pasv}");
    c.cmd("ABOR", 225);

    // The xferlog of the file has alice's transfers.
    let xferlog = dir.join("log/xferlog");
    assert!(
        util::wait_until(Duration::from_secs(5), || {
            std::fs::read_to_string(&xferlog).is_ok_and(|t| t.contains("curl.bin"))
        }),
        "{:?}",
        std::fs::read_to_string(&xferlog)
    );

    // SIGHUP with the file unchanged: the certificate and accounts read again, nothing
    // reported as changed, alice still in.
    d.signal(libc::SIGHUP);
    let want = if tls {
        "SIGHUP: reloaded TLS certificate"
    } else {
        "SIGHUP: reloaded 2 accounts"
    };
    assert!(d.wait_line(want, Duration::from_secs(5)), "{:?}", d.log);
    let line = d.log.iter().find(|l| l.contains(want)).unwrap();
    assert!(line.contains("no option changed"), "{line}");
    let mut again = util::curl();
    if tls {
        again.args(["-k", "--ssl-reqd"]);
    }
    assert_same(&util::run(again.arg(&url)).stdout, &body);
}

/// Every long option of `--help` is a key of the file: with a value no option takes (a
/// date), each is refused for its value, at its line, and never as an unknown key.
#[test]
fn every_long_flag_of_help_is_a_config_key() {
    let out = util::run(ftpdlib().arg("--help"));
    let help = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut names: Vec<String> = help
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
        .filter_map(|w| w.strip_prefix("--"))
        .filter(|w| w.len() > 1 && w.chars().next().is_some_and(|c| c.is_ascii_lowercase()))
        .map(str::to_string)
        .collect();
    names.sort();
    names.dedup();
    names.retain(|n| !["help", "version", "config"].contains(&n.as_str()));
    assert!(names.len() >= 50, "{names:?}");
    let dir = TempDir::new("config-keys");
    let path = dir.join("f.toml");
    for name in &names {
        std::fs::write(&path, format!("# {name}\n{name} = 1979-05-27T07:32:00Z\n")).unwrap();
        let (status, err) = exits(&["--config", path.to_str().unwrap()], &[]);
        assert_eq!(status.code(), Some(2), "{name}: {err}");
        assert!(
            err.contains("f.toml:2: ") && !err.contains("unknown key"),
            "{name}: {err}"
        );
    }
    // And a name that is no option is refused as such.
    std::fs::write(&path, "port = 2121\nno-such-option = 1\n").unwrap();
    let (status, err) = exits(&["--config", path.to_str().unwrap()], &[]);
    assert_eq!(status.code(), Some(2));
    assert!(
        err.contains("f.toml:2: unknown key `no-such-option`"),
        "{err}"
    );
}

/// A clap default does not override the file; the environment does; the command line
/// overrides both.
#[test]
fn command_line_and_environment_override_the_file() {
    let dir = TempDir::new("config-precedence");
    let path = dir.join("f.toml");
    let port = free_port();
    std::fs::write(
        &path,
        format!(
            "interface = \"127.0.0.1\"\nport = {port}\ndirectory = {:?}\n\
             banner = \"from the file\"\n",
            dir.path().to_str().unwrap()
        ),
    )
    .unwrap();
    let config = path.to_str().unwrap();

    // The file's port, not --port's default of 2121.
    let d = start(&["--config", config], &[]);
    assert_eq!(d.port(), port);
    assert!(greeting(d.addr()).contains("from the file"));
    drop(d);

    let d = start(
        &["--config", config, "--banner", "from the command line"],
        &[],
    );
    assert!(greeting(d.addr()).contains("from the command line"));
    drop(d);

    // FTPDLIB_CONFIG names the file too.
    let other = free_port().to_string();
    let d = start(
        &[],
        &[
            ("FTPDLIB_CONFIG", config),
            ("FTPDLIB_BANNER", "from the environment"),
            ("FTPDLIB_PORT", &other),
        ],
    );
    assert_eq!(d.port().to_string(), other);
    assert!(greeting(d.addr()).contains("from the environment"));
    drop(d);

    let d = start(
        &["--config", config, "--banner=from the command line"],
        &[("FTPDLIB_BANNER", "from the environment")],
    );
    assert!(greeting(d.addr()).contains("from the command line"));
}

#[test]
fn an_unknown_key_is_a_one_line_error_with_its_line() {
    let dir = TempDir::new("config-unknown");
    let path = dir.join("bad.toml");
    let cases = [
        (
            "port = 2121\n\n# comment\nmax_cons = 5\n",
            "bad.toml:4: unknown key `max_cons`; did you mean `max-cons`?",
        ),
        (
            "port = 2121\n[[users]]\nname = \"a\"\npassword = \"b\"\nhomedir = \"/\"\n",
            "bad.toml:5: unknown field `homedir`",
        ),
        (
            "[anonymous]\nperms = \"elr\"\n",
            "bad.toml:2: unknown field `perms`",
        ),
    ];
    for (text, want) in cases {
        std::fs::write(&path, text).unwrap();
        let (status, err) = exits(&["--config", path.to_str().unwrap()], &[]);
        assert_eq!(status.code(), Some(2), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.starts_with("ftpdlib: ") && err.contains(want),
            "{want}: {err}"
        );
    }
}

#[test]
fn a_bad_value_is_a_one_line_error_with_its_line() {
    let dir = TempDir::new("config-bad-value");
    let path = dir.join("bad.toml");
    let cases = [
        (
            "port = 2121\nrange = \"60100-60000\"\n",
            "bad.toml:2: invalid value '60100-60000'",
        ),
        ("port = \"high\"\n", "bad.toml:1: invalid value 'high'"),
        (
            "port = 2121\nwrite = \"yes\"\n",
            "bad.toml:2: `write` wants true or false",
        ),
        (
            "\nbanner = [\"a\", \"b\"]\n",
            "bad.toml:2: `banner` wants one value",
        ),
        ("port = 2121\nport = 2122\n", "bad.toml:2:"),
        ("port = 2121\nbanner = \"unclosed\n", "bad.toml:2:"),
        (
            "[[users]]\nname = \"a\"\npassword = \"b\"\nread-limit = \"fast\"\n",
            "bad.toml:4:",
        ),
        (
            "[[users]]\nname = \"a\"\npassword = \"b\"\nhome = \"relative/dir\"\n",
            "is not an absolute path",
        ),
    ];
    for (text, want) in cases {
        std::fs::write(&path, text).unwrap();
        let (status, err) = exits(&["--config", path.to_str().unwrap()], &[]);
        assert_eq!(status.code(), Some(2), "{text}: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(want), "{want}: {err}");
    }
    let (status, err) = exits(
        &["--config", dir.join("missing.toml").to_str().unwrap()],
        &[],
    );
    assert_eq!(status.code(), Some(2));
    assert!(
        err.contains("can't read") && err.contains("missing.toml"),
        "{err}"
    );
}

/// The reloaded file: an account added can log in, a changed message is sent, a changed
/// port needs a restart; a broken file is refused and the old accounts still work.
#[test]
fn sighup_reloads_the_config_file_and_refuses_a_broken_one() {
    let dir = TempDir::new("config-sighup");
    let home = dir.join("home");
    std::fs::create_dir(&home).unwrap();
    let path = dir.join("f.toml");
    let port = free_port();
    let head = format!(
        "interface = \"127.0.0.1\"\nport = {port}\ndirectory = {:?}\nauth-failed-delay = 0\n",
        home.to_str().unwrap()
    );
    let alice = "[[users]]\nname = \"alice\"\npassword = \"wonder\"\nmsg-login = \"Hi alice.\"\n";
    std::fs::write(&path, format!("{head}{alice}")).unwrap();
    let mut d = start(&["--config", path.to_str().unwrap()], &[]);
    let mut c = Client::connect(d.addr());
    c.cmd("USER alice", 331);
    assert!(c.cmd("PASS wonder", 230).text().contains("Hi alice."));
    let mut bob = Client::connect(d.addr());
    bob.cmd("USER bob", 331);
    bob.cmd("PASS builder", 530);

    // Bob added, alice's message changed, the port changed.
    let alice2 = alice.replace("Hi alice.", "Hello again, alice.");
    let bob_entry = "[[users]]\nname = \"bob\"\npassword = \"builder\"\nperm = \"elrw\"\n";
    let moved = head.replace(
        &format!("port = {port}"),
        &format!("port = {}", free_port()),
    );
    std::fs::write(&path, format!("{moved}{alice2}{bob_entry}")).unwrap();
    d.signal(libc::SIGHUP);
    assert!(
        d.wait_line("SIGHUP: reloaded", Duration::from_secs(5)),
        "{:?}",
        d.log
    );
    assert!(
        d.log
            .iter()
            .any(|l| l.contains("port changed: needs a restart")),
        "{:?}",
        d.log
    );
    assert!(
        d.log
            .iter()
            .any(|l| l.contains("changed: [[users]] (changed alice, added bob)")),
        "{:?}",
        d.log
    );
    Client::connect(d.addr()).login("bob", "builder");
    let mut c2 = Client::connect(d.addr());
    c2.cmd("USER alice", 331);
    assert!(c2
        .cmd("PASS wonder", 230)
        .text()
        .contains("Hello again, alice."));
    // The session from before runs on.
    c.cmd("NOOP", 200);

    // A broken file (after [[users]], a key belongs to the last account): refused with
    // its line, the accounts of before stay.
    std::fs::write(
        &path,
        format!("{moved}{alice2}{bob_entry}colour = \"blue\"\n"),
    )
    .unwrap();
    d.signal(libc::SIGHUP);
    assert!(
        d.wait_line(
            "reload refused, keeping the old settings",
            Duration::from_secs(5)
        ),
        "{:?}",
        d.log
    );
    assert!(
        d.log
            .iter()
            .any(|l| l.contains("f.toml:13: unknown field `colour`")),
        "{:?}",
        d.log
    );
    Client::connect(d.addr()).login("alice", "wonder");
    Client::connect(d.addr()).login("bob", "builder");
    assert!(d.running());
}

/// The `read-limit`/`write-limit` of an account hold back that account alone.
#[test]
fn per_user_limits_of_the_file_throttle_that_user() {
    let dir = TempDir::new("config-limits");
    let home = dir.join("home");
    std::fs::create_dir(&home).unwrap();
    let body = random_bytes(300 * 1024, 3);
    std::fs::write(home.join("f.bin"), &body).unwrap();
    let path = dir.join("f.toml");
    std::fs::write(
        &path,
        format!(
            "interface = \"127.0.0.1\"\nport = {}\ndirectory = {:?}\n\
             [[users]]\nname = \"slow\"\npassword = \"s\"\nwrite-limit = \"100K\"\n\
             [[users]]\nname = \"fast\"\npassword = \"f\"\n",
            free_port(),
            home.to_str().unwrap()
        ),
    )
    .unwrap();
    let d = start(&["--config", path.to_str().unwrap()], &[]);
    let fetch = |user: &str| {
        let start = Instant::now();
        let out = util::run(util::curl().arg(format!(
            "ftp://{user}:{}@127.0.0.1:{}/f.bin",
            &user[..1],
            d.port()
        )));
        assert_same(&out.stdout, &body);
        start.elapsed()
    };
    let fast = fetch("fast");
    let slow = fetch("slow");
    // 300 KiB at 100 KiB/s after a full bucket of one second: at least 2 s.
    assert!(slow >= Duration::from_millis(1800), "{slow:?}");
    assert!(fast < Duration::from_millis(1500), "{fast:?}");
}

/// A duration no server can use (`auth-failed-delay = 1e300`, a `timeout` past i64) is a
/// one-line error with its line at start-up, and on SIGHUP a refused reload: the daemon
/// stays up with the delay of before, where it used to panic and end every session.
#[test]
fn sighup_with_an_absurd_duration_keeps_the_old_settings() {
    let dir = TempDir::new("config-durations");
    let home = dir.join("home");
    std::fs::create_dir(&home).unwrap();
    let path = dir.join("d.toml");
    for (text, want) in [
        (
            "port = 2121\nauth-failed-delay = 1e300\n",
            "d.toml:2: invalid value '1e300' for '--auth-failed-delay <SECS>'",
        ),
        (
            "timeout = 9223372036854775807\n",
            "d.toml:1: invalid value '9223372036854775807' for '--timeout <SECS>'",
        ),
        (
            "ban-time = -1\n",
            "d.toml:1: invalid value '-1' for '--ban-time <SECS>'",
        ),
        (
            "shutdown-grace = nan\n",
            "d.toml:1: invalid value 'NaN' for '--shutdown-grace <SECS>'",
        ),
    ] {
        std::fs::write(&path, text).unwrap();
        let (status, err) = exits(&["--config", path.to_str().unwrap()], &[]);
        assert_eq!(status.code(), Some(2), "{text}: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(want), "{want}: {err}");
    }

    let head = format!(
        "interface = \"127.0.0.1\"\nport = {}\ndirectory = {:?}\n",
        free_port(),
        home.to_str().unwrap()
    );
    let users = "[[users]]\nname = \"alice\"\npassword = \"wonder\"\n";
    std::fs::write(&path, format!("{head}auth-failed-delay = 0\n{users}")).unwrap();
    let mut d = start(&["--config", path.to_str().unwrap()], &[]);
    let addr = d.addr();
    let mut c = Client::connect(addr);
    c.login("alice", "wonder");
    for bad in ["auth-failed-delay = 1e300", "timeout = 9223372036854775807"] {
        std::fs::write(&path, format!("{head}{bad}\n{users}")).unwrap();
        d.log.clear();
        d.signal(libc::SIGHUP);
        assert!(
            d.wait_line(
                "reload refused, keeping the old settings",
                Duration::from_secs(5)
            ),
            "{bad}: {:?}",
            d.log
        );
        assert!(
            d.log.iter().any(|l| l.contains("d.toml:4: invalid value")),
            "{bad}: {:?}",
            d.log
        );
        assert!(d.running(), "{bad}");
        // The delay of before: a failed login is answered at once, not in 1e300 s.
        let mut f = Client::connect(addr);
        f.cmd("USER alice", 331);
        let t0 = std::time::Instant::now();
        f.cmd("PASS wrong", 530);
        assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
        Client::connect(addr).login("alice", "wonder");
        c.cmd("NOOP", 200);
    }
    assert!(d.running());
}
