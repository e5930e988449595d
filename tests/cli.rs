//! The `ftpdlib` command: flags, error messages, and serving a directory to curl.

mod util;

use std::net::TcpListener;
use std::process::{Command, Output, Stdio};
use std::time::Instant;

use util::{assert_same, random_bytes, require, serve_daemon as serve, TempDir};

fn ftpdlib() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ftpdlib"))
}

fn fails(args: &[&str]) -> String {
    let out: Output = ftpdlib().args(args).output().unwrap();
    assert!(!out.status.success(), "{args:?} should fail");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

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
    let cert = format!("{}/tests/data/cert.pem", env!("CARGO_MANIFEST_DIR"));
    let key = format!("{}/tests/data/key.pem", env!("CARGO_MANIFEST_DIR"));
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
