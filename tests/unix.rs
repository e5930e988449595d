//! System users: UnixAuthorizer logins against /etc/shadow, impersonation (file owners, the
//! ids restored after every command) and the filters; `ftpdlib --system-users` is tested in
//! daemon/tests/system_users.rs.
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

use std::sync::Arc;

use ftpdlib::{Authorizer, UnixAuthorizer, UnixOptions};
use util::accounts::{require_root, SystemUser};
use util::{Client, TempDir, TestServer};

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
}

/// Impersonating a user on one thread leaves the others root meanwhile, as a pool of
/// workers serving different users at once needs.
fn impersonation_is_per_thread(alice: &SystemUser) {
    let auth = Arc::new(
        UnixAuthorizer::new(UnixOptions::default().with_require_valid_shell(false))
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
    let mut auth = UnixAuthorizer::new(
        UnixOptions::default()
            .with_require_valid_shell(true)
            .with_anonymous(true)
            .with_anonymous_home(public.path().to_path_buf()),
    )
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
    let auth = UnixAuthorizer::new(
        UnixOptions::default()
            .with_rejected_users(vec![alice.name.clone()])
            .with_require_valid_shell(false),
    )
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
    let auth = UnixAuthorizer::new(
        UnixOptions::default()
            .with_allowed_users(vec![shell_less.name.clone()])
            .with_require_valid_shell(false),
    )
    .unwrap();
    let server = unix_server(auth);
    let mut c = server.client();
    step(&mut c, &format!("USER {}", alice.name), 331);
    step(&mut c, "PASS alice-pw 1", 530);
    step(&mut c, "USER nosuchuser-ftpdlib", 331);
    step(&mut c, "PASS x", 530);
    drop(server);

    // Option errors at construction.
    let both = UnixAuthorizer::new(
        UnixOptions::default()
            .with_allowed_users(vec![alice.name.clone()])
            .with_rejected_users(vec!["root".into()]),
    );
    assert!(both.is_err());
    let shell = UnixAuthorizer::new(
        UnixOptions::default().with_allowed_users(vec![shell_less.name.clone()]),
    );
    assert!(shell.unwrap_err().to_string().contains("valid shell"));
    let unknown = UnixAuthorizer::new(
        UnixOptions::default().with_rejected_users(vec!["nosuchuser-ftpdlib".into()]),
    );
    assert!(unknown.is_err());
}
