//! `ftpdlib --system-users`: logins against /etc/shadow, uploads owned by the user, the
//! xferlog naming them, root refused; and a clear error when not run as root.
//!
//! These tests need root: they create a throw-away account with useradd and chpasswd and
//! remove it afterwards, also when a check fails. Outside CI a non-root run skips them;
//! under CI (env CI set) not being root is a failure.

mod util;

use std::os::unix::fs::MetadataExt;
use std::process::{Command, Stdio};

use util::accounts::{require_root, SystemUser};
use util::{require, TempDir};

#[test]
fn system_users_from_the_command_line() {
    if !require_root() {
        return;
    }
    let alice = SystemUser::create("c", "/bin/bash", "alice-pw 1", "YESCRYPT");
    let public = TempDir::new("unix-public");
    std::fs::write(public.join("readme"), b"hello").unwrap();
    command_line(&alice, &public);
    not_root_is_a_clear_error();
}

fn command_line(alice: &SystemUser, public: &TempDir) {
    if !require("curl") {
        return;
    }
    let logs = TempDir::new("unix-xferlog");
    let xferlog = logs.join("xferlog");
    let (daemon, port) = util::serve_daemon(&[
        "-w",
        "--system-users",
        "--anonymous",
        "--require-valid-shell",
        "-d",
        public.path().to_str().unwrap(),
        "--xferlog",
        xferlog.to_str().unwrap(),
    ]);

    let local = TempDir::new("unix-local");
    std::fs::write(local.join("up.txt"), b"via curl").unwrap();
    let url = format!(
        "ftp://{}:alice-pw%201@127.0.0.1:{port}/up%20load.txt",
        alice.name
    );
    let st = Command::new("curl")
        .args(["-sS", "--max-time", "30", "-T"])
        .arg(local.join("up.txt"))
        .arg(&url)
        .status()
        .unwrap();
    assert!(st.success());
    let meta = std::fs::metadata(alice.home.join("up load.txt")).unwrap();
    assert_eq!(meta.uid(), alice.uid, "the daemon impersonates too");
    // Root is refused by default.
    let st = Command::new("curl")
        .stderr(Stdio::null())
        .args(["-sS", "--max-time", "30"])
        .arg(format!("ftp://root:x@127.0.0.1:{port}/"))
        .status()
        .unwrap();
    assert!(!st.success());
    drop(daemon);

    let log = std::fs::read_to_string(&xferlog).unwrap();
    let want = format!(
        " 127.0.0.1 8 {}/up_load.txt b _ i r {} ftp 0 * c",
        alice.home.display(),
        alice.name
    );
    assert!(log.lines().any(|l| l.ends_with(&want)), "{log:?}");
}

fn not_root_is_a_clear_error() {
    // The binary may sit where nobody cannot reach it; run a copy from a public place.
    let dir = TempDir::new("unix-nobody");
    let exe = dir.join("ftpdlib");
    std::fs::copy(env!("CARGO_BIN_EXE_ftpdlib"), &exe).unwrap();
    let out = Command::new("setpriv")
        .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"])
        .arg(&exe)
        .args(["-i", "127.0.0.1", "-p", "0", "--system-users"])
        .output()
        .expect("run setpriv");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("needs root") && err.lines().count() == 1,
        "{err:?}"
    );
}
