//! System users: UnixAuthorizer logins against /etc/shadow, impersonation (file owners, the
//! ids restored after every command), the filters, and `ftpdlib --system-users`.
//!
//! These tests need root: they create throw-away accounts with useradd and chpasswd and
//! remove them afterwards, also when a check fails. Outside CI a non-root run skips them;
//! under CI (env CI set) not being root is a failure.
//!
//! Impersonation changes the ids of the calling thread only (the server's), and the checks
//! here read the ids of every thread of the process from /proc, expecting them all back at
//! root's after each command; so everything that impersonates users is one #[test], run step
//! by step, in its own test binary, with no other thread switching ids meanwhile.

mod util;

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;

use ftpdlib::{Authorizer, UnixAuthorizer, UnixOptions};
use util::{require, Client, TempDir, TestServer};

/// Whether the tests may run: root, or a skip outside CI.
fn require_root() -> bool {
    // SAFETY: geteuid cannot fail and touches no memory.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!("the system-user tests must run as root under CI");
    }
    eprintln!("skipping: the system-user tests need root (they create system accounts)");
    false
}

/// The calling thread's effective uid and gid and its supplementary groups.
fn ids() -> (u32, u32, Vec<u32>) {
    // SAFETY: plain queries; getgroups writes at most 256 entries into a buffer of 256.
    unsafe {
        let mut groups = vec![0 as libc::gid_t; 256];
        let n = libc::getgroups(256, groups.as_mut_ptr());
        groups.truncate(n.max(0) as usize);
        (libc::geteuid(), libc::getegid(), groups)
    }
}

/// The effective uid and gid and the supplementary groups of every thread of the process,
/// from /proc: impersonation is per thread, so the server's threads are read, not ours.
fn thread_ids() -> Vec<(u32, u32, Vec<u32>)> {
    let mut all = Vec::new();
    for task in std::fs::read_dir("/proc/self/task").expect("read /proc/self/task") {
        let path = task.expect("a task entry").path().join("status");
        // A thread that ended since the listing has no status left to read.
        let Ok(status) = std::fs::read_to_string(&path) else {
            continue;
        };
        let field = |name: &str| -> Vec<u32> {
            let line = status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .unwrap_or_else(|| panic!("{name} in {}", path.display()));
            line.split_whitespace()
                .map(|n| n.parse().unwrap())
                .collect()
        };
        // Uid: and Gid: list the real, effective, saved and filesystem ids.
        let mut groups = field("Groups:");
        groups.sort_unstable();
        all.push((field("Uid:")[1], field("Gid:")[1], groups));
    }
    all
}

/// Checks that every thread of the process has root's ids.
#[track_caller]
fn assert_all_root(after: &str) {
    let (uid, gid, mut groups) = root_ids();
    groups.sort_unstable();
    for t in thread_ids() {
        assert_eq!(
            t,
            (uid, gid, groups.clone()),
            "ids not restored after {after:?}"
        );
    }
}

/// A system account that exists as long as this value does.
struct SystemUser {
    name: String,
    uid: u32,
    gid: u32,
    home: PathBuf,
}

impl SystemUser {
    fn create(tag: &str, shell: &str, password: &str, method: &str) -> SystemUser {
        let name = format!("ftpdlibt{}{tag}", std::process::id());
        // A leftover of a killed run with the same pid would make useradd fail.
        let _ = Command::new("userdel").args(["-r", &name]).output();
        let out = Command::new("useradd")
            .args(["--create-home", "--user-group", "--shell", shell, &name])
            .output()
            .expect("run useradd");
        assert!(
            out.status.success(),
            "useradd {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // From here on the account is removed on every path out, panics included.
        let mut user = SystemUser {
            name,
            uid: 0,
            gid: 0,
            home: PathBuf::new(),
        };
        let mut child = Command::new("chpasswd")
            .args(["-c", method])
            .stdin(Stdio::piped())
            .spawn()
            .expect("run chpasswd");
        {
            use std::io::Write;
            let mut stdin = child.stdin.take().expect("piped stdin");
            writeln!(stdin, "{}:{password}", user.name).unwrap();
        }
        assert!(child.wait().unwrap().success(), "chpasswd {}", user.name);
        let entry = Command::new("getent")
            .args(["passwd", &user.name])
            .output()
            .unwrap();
        let entry = String::from_utf8_lossy(&entry.stdout).into_owned();
        let fields: Vec<&str> = entry.trim().split(':').collect();
        user.uid = fields[2].parse().unwrap();
        user.gid = fields[3].parse().unwrap();
        user.home = PathBuf::from(fields[5]);
        user
    }
}

impl Drop for SystemUser {
    fn drop(&mut self) {
        // If a failed check left the process under another identity, userdel would fail
        // too: get root's ids back first (the saved uid is still 0).
        // SAFETY: plain system calls on integers.
        unsafe {
            libc::seteuid(0);
            libc::setegid(0);
        }
        let out = Command::new("userdel").args(["-r", &self.name]).output();
        if !matches!(&out, Ok(o) if o.status.success()) {
            eprintln!("warning: userdel -r {} failed: {out:?}", self.name);
        }
    }
}

/// A server whose authorizer is a UnixAuthorizer.
fn unix_server(auth: UnixAuthorizer) -> TestServer {
    let auth = Arc::new(auth);
    TestServer::start_with(move |config, _| config.authorizer = auth)
}

/// Sends a command, checks the reply code, then that the server is back to root's ids.
#[track_caller]
fn step(c: &mut Client, line: &str, code: u16) {
    c.cmd(line, code);
    assert_all_root(line);
}

fn root_ids() -> (u32, u32, Vec<u32>) {
    static ROOT: std::sync::OnceLock<(u32, u32, Vec<u32>)> = std::sync::OnceLock::new();
    ROOT.get_or_init(ids).clone()
}

#[test]
fn system_users() {
    if !require_root() {
        return;
    }
    util::init();
    root_ids();
    let alice = SystemUser::create("a", "/bin/bash", "alice-pw 1", "YESCRYPT");
    let shell_less = SystemUser::create("f", "/bin/false", "false-pw", "SHA512");
    let public = TempDir::new("unix-public");
    std::fs::write(public.join("readme"), b"hello").unwrap();

    impersonation_is_per_thread(&alice);
    logins_uploads_and_ids(&alice, &shell_less, &public);
    filters(&alice, &shell_less);
    command_line(&alice, &public);
    not_root_is_a_clear_error();
}

/// Impersonating a user on one thread leaves the others root meanwhile, as a pool of
/// workers serving different users at once needs.
fn impersonation_is_per_thread(alice: &SystemUser) {
    let auth = Arc::new(
        UnixAuthorizer::new(UnixOptions {
            require_valid_shell: false,
            ..UnixOptions::default()
        })
        .expect("root may build a UnixAuthorizer"),
    );
    let (to_main, from_worker) = std::sync::mpsc::channel();
    let (to_worker, from_main) = std::sync::mpsc::channel::<()>();
    let worker = std::thread::spawn({
        let auth = Arc::clone(&auth);
        let name = alice.name.clone();
        move || {
            auth.impersonate_user(&name).expect("impersonate");
            to_main.send(ids()).unwrap();
            // Stay switched until the main thread has looked at its own ids.
            let _ = from_main.recv();
            auth.terminate_impersonation(&name).expect("terminate");
            ids()
        }
    });
    let (uid, gid, groups) = from_worker.recv().expect("the worker impersonated");
    assert_eq!(
        (uid, gid),
        (alice.uid, alice.gid),
        "the worker runs as the user"
    );
    assert!(
        groups.contains(&alice.gid) && !groups.contains(&0),
        "{groups:?}"
    );
    // At the same time, this thread is still root: geteuid reads the calling thread's.
    // SAFETY: geteuid cannot fail and touches no memory.
    assert_eq!(unsafe { libc::geteuid() }, 0);
    assert_eq!(ids(), root_ids());
    let switched = thread_ids().iter().filter(|t| t.0 == alice.uid).count();
    assert_eq!(switched, 1, "only the worker thread runs as the user");
    to_worker.send(()).unwrap();
    let after = worker.join().expect("the worker ended cleanly");
    assert_eq!(
        after,
        root_ids(),
        "terminate brings the worker back to root's ids"
    );
    assert_all_root("impersonation on another thread");
}

fn logins_uploads_and_ids(alice: &SystemUser, shell_less: &SystemUser, public: &TempDir) {
    let mut auth = UnixAuthorizer::new(UnixOptions {
        require_valid_shell: true,
        anonymous: true,
        anonymous_home: Some(public.path().to_path_buf()),
        ..UnixOptions::default()
    })
    .expect("root may build a UnixAuthorizer");
    // Anonymous may try to write: only the impersonation stands in the way.
    auth.override_user("anonymous", None, Some("elradfmw"))
        .unwrap();
    let server = unix_server(auth);

    // A wrong password, then the right one (hashed with yescrypt by chpasswd).
    let mut c = server.client();
    step(&mut c, &format!("USER {}", alice.name), 331);
    step(&mut c, "PASS alice-pw 2", 530);
    step(&mut c, &format!("USER {}", alice.name), 331);
    step(&mut c, "PASS alice-pw 1", 230);
    let pwd = c.cmd("PWD", 257).text();
    assert!(pwd.contains("\"/\""), "{pwd}");

    // An upload belongs to the user.
    c.stor("STOR mine.txt", b"by alice");
    assert_all_root("STOR");
    let meta = std::fs::metadata(alice.home.join("mine.txt")).unwrap();
    assert_eq!(meta.uid(), alice.uid, "the upload belongs to its user");
    step(&mut c, "MKD dir", 257);
    assert_eq!(
        std::fs::metadata(alice.home.join("dir")).unwrap().uid(),
        alice.uid
    );
    assert_eq!(c.retr("RETR mine.txt"), b"by alice");
    // Failed operations restore the ids too.
    step(&mut c, "RETR nothere", 550);
    step(&mut c, "DELE nothere", 550);
    step(&mut c, "RMD nothere", 550);
    step(&mut c, "CWD /nothere", 550);
    step(&mut c, "SIZE dir", 550);
    step(&mut c, "RNFR nothere", 550);
    step(&mut c, "DELE mine.txt", 250);
    step(&mut c, "QUIT", 221);

    // A user whose shell is not in /etc/shells, with the right password.
    let mut c = server.client();
    step(&mut c, &format!("USER {}", shell_less.name), 331);
    let r = c.cmd("PASS false-pw", 530);
    assert!(r.text().contains("valid shell"), "{:?}", r.lines);
    assert_all_root("PASS");

    // Anonymous runs as nobody: it reads, but cannot write into a root-owned folder.
    let mut c = server.client();
    step(&mut c, "USER anonymous", 331);
    step(&mut c, "PASS guest@example.com", 230);
    assert_eq!(c.retr("RETR readme"), b"hello");
    assert_all_root("RETR");
    c.pasv();
    step(&mut c, "STOR upload.txt", 550);
    step(&mut c, "MKD newdir", 550);
    step(&mut c, "DELE readme", 550);
    step(&mut c, "RNFR readme", 350);
    step(&mut c, "RNTO renamed", 550);
    assert!(!public.join("upload.txt").exists());
    assert!(!public.join("newdir").exists());
    assert!(public.join("readme").exists());
    step(&mut c, "QUIT", 221);
}

fn filters(alice: &SystemUser, shell_less: &SystemUser) {
    // Rejected users are refused with the right password; without the shell rule, the
    // shell-less account gets in.
    let auth = UnixAuthorizer::new(UnixOptions {
        rejected_users: vec![alice.name.clone()],
        require_valid_shell: false,
        ..UnixOptions::default()
    })
    .unwrap();
    let server = unix_server(auth);
    let mut c = server.client();
    step(&mut c, &format!("USER {}", alice.name), 331);
    let r = c.cmd("PASS alice-pw 1", 530);
    assert!(r.text().contains("not allowed"), "{:?}", r.lines);
    step(&mut c, &format!("USER {}", shell_less.name), 331);
    step(&mut c, "PASS false-pw", 230);
    step(&mut c, "USER anonymous", 331);
    step(&mut c, "PASS x", 530);
    drop(server);

    // allowed_users admits only the listed accounts.
    let auth = UnixAuthorizer::new(UnixOptions {
        allowed_users: vec![shell_less.name.clone()],
        require_valid_shell: false,
        ..UnixOptions::default()
    })
    .unwrap();
    let server = unix_server(auth);
    let mut c = server.client();
    step(&mut c, &format!("USER {}", alice.name), 331);
    step(&mut c, "PASS alice-pw 1", 530);
    step(&mut c, "USER nosuchuser-ftpdlib", 331);
    step(&mut c, "PASS x", 530);
    drop(server);

    // Option errors at construction.
    let both = UnixAuthorizer::new(UnixOptions {
        allowed_users: vec![alice.name.clone()],
        rejected_users: vec!["root".into()],
        ..UnixOptions::default()
    });
    assert!(both.is_err());
    let shell = UnixAuthorizer::new(UnixOptions {
        allowed_users: vec![shell_less.name.clone()],
        ..UnixOptions::default()
    });
    assert!(shell.unwrap_err().to_string().contains("valid shell"));
    let unknown = UnixAuthorizer::new(UnixOptions {
        rejected_users: vec!["nosuchuser-ftpdlib".into()],
        ..UnixOptions::default()
    });
    assert!(unknown.is_err());
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
