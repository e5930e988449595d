//! Every option of the `ftpdlib` command that takes seconds: one parser, absurd values
//! refused in one line, the longest allowed ones served without a panic.

mod util;

use util::{fails, ftpdlib, serve_daemon as serve, TempDir};

/// Every option taking seconds goes through one parser: negative, NaN, infinite and
/// longer-than-ten-years values are a one-line error naming the flag, never a panic at
/// start-up, at the first connection or at the first ban.
#[test]
fn duration_flags_refuse_absurd_values() {
    let flags = [
        "--timeout",
        "--login-timeout",
        "--auth-failed-delay",
        "--ban-time",
        "--shutdown-grace",
        "--proxy-header-timeout",
    ];
    let values = [
        "-1",
        "-0.5",
        "nan",
        "NaN",
        "inf",
        "-inf",
        "1e300",
        "9223372036854775807",
        "18446744073709551616",
        "315360000.5",
        "315360001",
        "ten",
        "",
    ];
    for flag in flags {
        for v in values {
            let arg = format!("{flag}={v}");
            let mut args = vec![arg.as_str()];
            if flag == "--proxy-header-timeout" {
                args.push("--proxy-protocol");
            }
            let err = fails(&args);
            assert_eq!(err.lines().count(), 1, "{arg}: {err}");
            assert!(
                err.contains(&format!("invalid value '{v}' for '{flag} <SECS>'")),
                "{arg}: {err}"
            );
            assert!(!err.contains("panicked"), "{arg}: {err}");
        }
    }
    let help =
        String::from_utf8_lossy(&ftpdlib().arg("--help").output().unwrap().stdout).into_owned();
    assert!(help.contains("315360000 (10 years)"), "{help}");
}

/// At the longest values allowed (ten years each; the failed-login delay at its
/// fractional floor), the daemon serves, bans after failed logins and stops on SIGTERM.
#[test]
fn longest_durations_serve_ban_and_stop() {
    let dir = TempDir::new("cli-long-durations");
    std::fs::write(dir.join("f.txt"), b"hello\n").unwrap();
    let d = dir.path().to_str().unwrap();
    let max = "315360000";
    let (daemon, port) = serve(&[
        "-d",
        d,
        "-u",
        "u",
        "-P",
        "p",
        "--timeout",
        max,
        "--login-timeout",
        max,
        "--ban-time",
        max,
        "--shutdown-grace",
        max,
        "--auth-failed-delay",
        "0.001",
        "--max-login-failures",
        "2",
    ]);
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut c = util::Client::connect(addr);
    c.login("u", "p");
    let out = util::run(util::curl().arg(format!("ftp://u:p@127.0.0.1:{port}/f.txt")));
    assert_eq!(out.stdout, b"hello\n");
    for _ in 0..2 {
        let mut bad = util::Client::connect(addr);
        bad.cmd("USER u", 331);
        bad.cmd("PASS wrong", 530);
    }
    let mut banned = util::Client::connect_raw(addr);
    assert_eq!(banned.read_reply().code, 421);
    c.cmd("NOOP", 200);
    c.cmd("QUIT", 221);
    // SIGTERM with a ten-year grace and no transfer running: the daemon exits at once.
    let mut child = daemon;
    let pid = child.0.id() as i32;
    // SAFETY: kill(2) takes plain integers and touches no memory of ours; the pid is our
    // own child, not yet reaped.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let mut status = None;
    util::wait_until(std::time::Duration::from_secs(10), || {
        status = child.0.try_wait().unwrap();
        status.is_some()
    });
    assert!(
        status.is_some_and(|s| s.success()),
        "after SIGTERM: {status:?}"
    );
}
