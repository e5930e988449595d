//! `ftpdlib --system-users`: logins against /etc/shadow, uploads owned by the user, the
//! xferlog naming them, root refused; and a clear error when not run as root.
//!
//! These tests need root: they create a throw-away account with useradd and chpasswd and
//! remove it afterwards, also when a check fails. Outside CI a non-root run skips them;
//! under CI (env CI set) not being root is a failure.

mod util;

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use util::accounts::{require_root, SystemUser};
use util::{procfs, random_bytes, require, Client, TempDir, Watched};

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
    // A child that another test of this binary forks while the copy is open for writing
    // holds that descriptor until it runs its own program: executing the copy meanwhile
    // fails with ETXTBSY. Try again for a while.
    let mut tries = 0;
    let out = loop {
        let out = Command::new("setpriv")
            .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"])
            .arg(&exe)
            .args(["-i", "127.0.0.1", "-p", "0", "--system-users"])
            .output()
            .expect("run setpriv");
        tries += 1;
        if tries == 50 || !String::from_utf8_lossy(&out.stderr).contains("Text file busy") {
            break out;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("needs root") && err.lines().count() == 1,
        "{err:?}"
    );
}

/// What the sampler of [`two_users_upload_at_once_on_two_reactors`] saw.
#[derive(Default, Debug)]
struct Seen {
    rounds: usize,
    /// Each user's samples of a worker thread running as that user, by index.
    as_user: [usize; 2],
    /// Names of the threads seen, and how often.
    names: BTreeMap<String, usize>,
    /// What should not have been (at most the first few).
    wrong: Vec<String>,
}

/// Reads every thread of `pid` in rounds until `stop` (or a minute): the daemon's own
/// threads (main, signals, reactors) must always be root with root's groups, and a worker
/// thread may run as one of `users` only with that user's gid and groups, keeping root as
/// its real and saved ids. Sets `hit[i]` once a worker was seen as `users[i]`.
fn sample(
    pid: u32,
    users: [(u32, u32); 2],
    root_groups: Vec<u32>,
    stop: Arc<AtomicBool>,
    hit: Arc<[AtomicBool; 2]>,
) -> Seen {
    let mut seen = Seen::default();
    let end = Instant::now() + Duration::from_secs(60);
    while !stop.load(Ordering::SeqCst) && Instant::now() < end {
        seen.rounds += 1;
        for t in procfs::tasks(pid) {
            *seen.names.entry(t.name.clone()).or_insert(0) += 1;
            let mut wrong = |what: &str| {
                if seen.wrong.len() < 10 {
                    seen.wrong.push(format!("{what}: {t:?}"));
                }
            };
            if t.uid[0] != 0 || t.uid[2] != 0 || t.gid[0] != 0 || t.gid[2] != 0 {
                wrong("real or saved id not root");
            }
            if t.name != "ftpdlib-worker" {
                if t.uid != [0; 4] || t.gid != [0; 4] || t.groups != root_groups {
                    wrong("not a worker, yet not root");
                }
                continue;
            }
            if t.uid[1] == 0 {
                // Root, or switching groups and gid before the uid: nothing to check.
                continue;
            }
            match users.iter().position(|(uid, _)| *uid == t.uid[1]) {
                Some(i) => {
                    let (uid, gid) = users[i];
                    if t.uid[3] != uid || t.gid[1] != gid || t.gid[3] != gid || t.groups != [gid] {
                        wrong("a user's uid without that user's gid and groups");
                    }
                    seen.as_user[i] += 1;
                    hit[i].store(true, Ordering::SeqCst);
                }
                None => wrong("a worker as nobody we know"),
            }
        }
    }
    seen
}

/// Two throw-away system users and their passwords; `tag` keeps each test's apart.
fn two_users(tag: &str) -> [(SystemUser, &'static str); 2] {
    [
        (
            SystemUser::create(&format!("{tag}1"), "/bin/bash", "one-pw", "YESCRYPT"),
            "one-pw",
        ),
        (
            SystemUser::create(&format!("{tag}2"), "/bin/bash", "two-pw", "YESCRYPT"),
            "two-pw",
        ),
    ]
}

/// `ftpdlib -w --system-users --workers 2` plus `args`, its two reactors started.
fn two_reactors(args: &[&str]) -> (Watched, TempDir) {
    let public = TempDir::new("unix-workers");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ftpdlib"));
    cmd.args(["-i", "127.0.0.1", "-p", "0", "-w", "--system-users"])
        .args(["--workers", "2", "-d", public.path().to_str().unwrap()])
        .args(args)
        .env("RUST_LOG", "info");
    let d = Watched::start(cmd);
    assert_eq!(procfs::reactors_started(d.child.id(), 2), 2);
    (d, public)
}

/// A thread running [`sample`] on `pid` for `users`; stop it with the flag.
struct Sampler {
    stop: Arc<AtomicBool>,
    /// Whether a worker was seen as each user.
    hit: Arc<[AtomicBool; 2]>,
    thread: std::thread::JoinHandle<Seen>,
}

impl Sampler {
    fn start(pid: u32, users: &[(SystemUser, &str); 2]) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let hit = Arc::new([AtomicBool::new(false), AtomicBool::new(false)]);
        let ids = [
            (users[0].0.uid, users[0].0.gid),
            (users[1].0.uid, users[1].0.gid),
        ];
        let (groups, s, h) = (procfs::own_groups(), Arc::clone(&stop), Arc::clone(&hit));
        let thread = std::thread::spawn(move || sample(pid, ids, groups, s, h));
        Sampler { stop, hit, thread }
    }

    /// Stops it; what it saw, which must be nothing wrong, with every one of the daemon's
    /// own threads seen.
    fn finish(self) -> Seen {
        self.stop.store(true, Ordering::SeqCst);
        let seen = self.thread.join().unwrap();
        assert!(seen.wrong.is_empty(), "{:#?}", seen.wrong);
        assert!(seen.rounds > 100, "{seen:?}");
        for name in [
            "ftpdlib",
            "ftpd-signals",
            "ftpd-reactor-0",
            "ftpd-reactor-1",
        ] {
            assert!(seen.names.contains_key(name), "{name} never seen: {seen:?}");
        }
        seen
    }
}

/// Logs each user in on each reactor of daemon `pid`: (user, reactor, client) four times.
fn sessions_on_both_reactors(
    pid: u32,
    addr: std::net::SocketAddr,
    users: &[(SystemUser, &str); 2],
) -> Vec<(usize, usize, Client)> {
    let mut sessions = Vec::new();
    for (u, (user, password)) in users.iter().enumerate() {
        let mut on = [false; 2];
        for _ in 0..40 {
            if on.iter().all(|x| *x) {
                break;
            }
            let (r, mut c) = procfs::on_reactor(pid, || {
                let mut c = Client::connect(addr);
                c.login(&user.name, password);
                c
            });
            match r {
                Some(r) if !on[r] => {
                    on[r] = true;
                    sessions.push((u, r, c));
                }
                _ => {
                    c.cmd("QUIT", 221);
                    assert!(c.closed_by_server());
                }
            }
        }
        assert_eq!(
            on, [true; 2],
            "{} has no session on some reactor",
            user.name
        );
    }
    sessions
}

/// Every thread of `pid` runs with root's ids and groups.
fn all_root(pid: u32) {
    let root_groups = procfs::own_groups();
    for t in procfs::tasks(pid) {
        assert!(
            t.uid == [0; 4] && t.gid == [0; 4] && t.groups == root_groups,
            "{t:?}"
        );
    }
}

const FILES: usize = 20;

/// The bytes of upload `i` of user `u`'s session on reactor `r`.
fn body(u: usize, r: usize, i: usize) -> Vec<u8> {
    random_bytes(3000 + 97 * i, (u * 100 + r * 10 + i) as u64)
}

/// Uploads [`FILES`] files, then asks for their sizes while `more(asked)` says so; QUIT.
/// How many SIZE commands it sent.
fn uploads(u: usize, r: usize, mut c: Client, more: impl Fn(usize) -> bool) -> usize {
    c.cmd("TYPE I", 200);
    for i in 0..FILES {
        c.stor(format!("STOR up-{r}-{i}.bin"), &body(u, r, i));
    }
    let mut asked = 0;
    while more(asked) {
        let i = asked % FILES;
        let reply = c.cmd(format!("SIZE up-{r}-{i}.bin"), 213);
        assert_eq!(reply.lines[0], format!("213 {}", body(u, r, i).len()));
        asked += 1;
    }
    c.cmd("QUIT", 221);
    assert!(c.closed_by_server());
    asked
}

/// Two system users uploading at once, each with a session on each of two reactors: every
/// file belongs to its user, while the reactor threads, the signal thread and the main
/// thread never leave root's ids; only the worker threads that run storage calls switch,
/// each to one user at a time with that user's gid and groups, and all are root again
/// afterwards. A thread sampler reads /proc/PID/task/*/status all along.
#[test]
fn two_users_upload_at_once_on_two_reactors() {
    if !require_root() {
        return;
    }
    let users = two_users("w");
    let (mut d, _public) = two_reactors(&[]);
    let (pid, addr) = (d.child.id(), d.addr());
    let sampler = Sampler::start(pid, &users);
    let sessions = sessions_on_both_reactors(pid, addr, &users);

    // The four sessions upload at once; then each asks for sizes until the sampler has
    // seen a worker under its user (bounded), which the uploads alone usually show.
    let threads: Vec<_> = sessions
        .into_iter()
        .map(|(u, r, c)| {
            let hit = Arc::clone(&sampler.hit);
            let end = Instant::now() + Duration::from_secs(20);
            std::thread::spawn(move || {
                uploads(u, r, c, |_| {
                    !hit[u].load(Ordering::SeqCst) && Instant::now() < end
                })
            })
        })
        .collect();
    let asked: Vec<usize> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let seen = sampler.finish();
    eprintln!("sampler: {seen:?}; SIZE commands after the uploads: {asked:?}");
    assert!(
        seen.as_user.iter().all(|n| *n > 0),
        "no worker seen under each user: {seen:?}"
    );
    // Every session has ended, each reply after its storage call: all root again.
    all_root(pid);
    for (u, (user, _)) in users.iter().enumerate() {
        for r in 0..2 {
            for i in 0..FILES {
                let path = user.home.join(format!("up-{r}-{i}.bin"));
                let meta = std::fs::metadata(&path).unwrap();
                assert_eq!((meta.uid(), meta.gid()), (user.uid, user.gid), "{path:?}");
                assert_eq!(std::fs::read(&path).unwrap(), body(u, r, i), "{path:?}");
            }
        }
    }
    d.signal(libc::SIGTERM);
    assert!(d
        .wait_exit(Duration::from_secs(10))
        .is_some_and(|s| s.success()));
}
/// `--memory` storage answers on the reactor thread itself: system users or not, that
/// thread keeps root's ids (the memory holds nothing the kernel checks ids against).
#[test]
fn memory_storage_of_system_users_keeps_the_reactors_root() {
    if !require_root() {
        return;
    }
    let users = two_users("m");
    let (mut d, _public) = two_reactors(&["--memory"]);
    let (pid, addr) = (d.child.id(), d.addr());
    let sampler = Sampler::start(pid, &users);
    let sessions = sessions_on_both_reactors(pid, addr, &users);
    let threads: Vec<_> = sessions
        .into_iter()
        .map(|(u, r, c)| std::thread::spawn(move || uploads(u, r, c, |n| n < 1500)))
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let seen = sampler.finish();
    eprintln!("sampler: {seen:?}");
    // Not even a worker switches: the memory has nothing the ids would guard.
    assert_eq!(seen.as_user, [0, 0], "{seen:?}");
    all_root(pid);
    d.signal(libc::SIGTERM);
    assert!(d
        .wait_exit(Duration::from_secs(10))
        .is_some_and(|s| s.success()));
}

/// A listing's entries are read as the user, like every other storage call: a directory
/// the user may read but not search (`r--` for others) gives its names (NLST needs no
/// stat) but not their details, which only root could read. Each later piece of a listing
/// runs on a worker thread apart from the request that opened it; it switches too.
#[test]
fn listings_read_entry_details_as_the_user() {
    if !require_root() || !require("curl") {
        return;
    }
    let alice = SystemUser::create("l", "/bin/bash", "alice-pw", "YESCRYPT");
    let dir = alice.home.join("unsearchable");
    std::fs::create_dir(&dir).unwrap();
    // More than one piece of a listing (256 entries each).
    for i in 0..600 {
        std::fs::write(dir.join(format!("inside{i:03}.txt")), b"x").unwrap();
    }
    // Owned by root: others may read the names, not search the directory.
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o744)).unwrap();
    let public = TempDir::new("unix-list-public");
    let (daemon, port) =
        util::serve_daemon(&["--system-users", "-d", public.path().to_str().unwrap()]);
    let curl = |extra: &[&str], path: &str| {
        let out = Command::new("curl")
            .args(["-sS", "--max-time", "30"])
            .args(extra)
            .arg(format!(
                "ftp://{}:alice-pw@127.0.0.1:{port}/{path}",
                alice.name
            ))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let names = curl(&["-l"], "unsearchable/");
    assert_eq!(names.lines().count(), 600, "{names}");
    // LIST stats each entry: as alice that fails, and unreadable entries are left out.
    let list = curl(&[], "unsearchable/");
    assert!(!list.contains("inside"), "entries read as root: {list}");
    let mlsd = curl(&["-X", "MLSD"], "unsearchable/");
    assert!(!mlsd.contains("inside"), "entries read as root: {mlsd}");
    // The same directory searchable: every entry with its details.
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let list = curl(&[], "unsearchable/");
    assert_eq!(list.matches("inside").count(), 600, "{list}");
    drop(daemon);
}
