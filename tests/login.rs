//! Logins off the reactor: an authorizer that answers later (as one asking an LDAP or HTTP
//! service would) frees its worker, so storage work and other logins go on; one that drops
//! its reply or panics gets 451 and the session goes on.

mod util;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ftpdlib::authorizer::AuthReply;
use ftpdlib::{AuthError, Authorizer, DummyAuthorizer, Perms};
use util::*;

/// How long the made-up remote service takes to answer.
const REMOTE_DELAY: Duration = Duration::from_millis(400);

/// Users "remote" are checked by a made-up remote service answering on a thread of its own
/// after `REMOTE_DELAY`; "dropper" gets a reply dropped unanswered; "panicker" panics; the
/// others are checked at once.
#[derive(Clone)]
struct Remote(Arc<DummyAuthorizer>);

impl Authorizer for Remote {
    fn validate_authentication(&self, u: &str, p: &str) -> Result<(), AuthError> {
        self.0.validate_authentication(u, p)
    }
    fn start_authentication(&self, u: &str, p: &str, reply: AuthReply) {
        match u {
            "remote" => {
                let inner = Arc::clone(&self.0);
                let (u, p) = (u.to_string(), p.to_string());
                std::thread::spawn(move || {
                    std::thread::sleep(REMOTE_DELAY);
                    reply.send(inner.validate_authentication(&u, &p));
                });
            }
            "dropper" => drop(reply),
            "panicker" => panic!("the authorizer's service is down"),
            _ => reply.send(self.0.validate_authentication(u, p)),
        }
    }
    fn has_user(&self, u: &str) -> bool {
        self.0.has_user(u)
    }
    fn home_dir(&self, u: &str) -> Option<PathBuf> {
        self.0.home_dir(u)
    }
    fn has_perm(&self, u: &str, perm: Perms, path: &Path) -> bool {
        self.0.has_perm(u, perm, path)
    }
    fn perms(&self, u: &str) -> Perms {
        self.0.perms(u)
    }
}

fn remote_server() -> TestServer {
    TestServer::start_with(|c, _| {
        let home = c.authorizer.home_dir("user").expect("the test user's home");
        let mut auth = DummyAuthorizer::new();
        for u in ["user", "remote", "dropper", "panicker"] {
            auth.add_user(u, "pass", &home, "elradfmwMT").unwrap();
        }
        c.authorizer = Arc::new(Remote(Arc::new(auth)));
        // One worker: were it held by a pending login, nothing else could run.
        c.io_threads = 1;
    })
}

#[test]
fn a_login_answered_later_holds_no_worker() {
    let s = remote_server();
    std::fs::write(s.root.join("f"), b"12345").unwrap();
    let mut a = s.login("user");
    let start = Instant::now();
    let mut pending: Vec<Client> = (0..4)
        .map(|_| {
            let mut c = s.client();
            c.cmd("USER remote", 331);
            c.send("PASS pass");
            c
        })
        .collect();
    // Four logins are out with the service; the single worker still serves A's storage.
    for _ in 0..5 {
        assert_eq!(a.cmd("SIZE f", 213).text(), "213 5");
    }
    assert!(
        start.elapsed() < REMOTE_DELAY,
        "storage work waited {:?} behind logins that hold no worker",
        start.elapsed()
    );
    for c in &mut pending {
        c.expect(230);
        assert!(
            start.elapsed() >= REMOTE_DELAY,
            "answered before the service did"
        );
        // The storage was set up by the thread that answered: the session works.
        assert_eq!(c.cmd("SIZE f", 213).text(), "213 5");
    }
    // A wrong password answered later is a 530, and the session may try again.
    let mut c = s.client();
    c.cmd("USER remote", 331);
    c.cmd("PASS wrong", 530);
    c.cmd("USER remote", 331);
    c.cmd("PASS pass", 230);
}

#[test]
fn a_reply_dropped_or_a_panic_is_451_and_the_session_goes_on() {
    let s = remote_server();
    for user in ["dropper", "panicker"] {
        let mut c = s.client();
        c.cmd(format!("USER {user}"), 331);
        let r = c.cmd("PASS pass", 451);
        assert_eq!(
            r.text(),
            "451 Requested action aborted: local error in processing."
        );
        // Not logged in, but the session goes on.
        c.cmd("PWD", 530);
        c.cmd("USER user", 331);
        c.cmd("PASS pass", 230);
        c.cmd("PWD", 257);
    }
    // The worker that ran the panicking authorizer still works.
    let mut c = s.login("user");
    c.cmd("MKD d", 257);
}

#[test]
fn quit_while_a_login_is_out_is_answered_after_it() {
    let s = remote_server();
    let mut c = s.client();
    c.cmd("USER remote", 331);
    c.send("PASS pass");
    c.send("QUIT");
    c.expect(230);
    c.expect(221);
    assert!(c.closed_by_server());
    // A session that goes away while its login is out: the late answer is dropped.
    let mut gone = s.client();
    gone.cmd("USER remote", 331);
    gone.send("PASS pass");
    drop(gone);
    std::thread::sleep(REMOTE_DELAY + Duration::from_millis(100));
    s.login("user").cmd("NOOP", 200);
}

/// The homes of logins are kept open and shared while their path leads to them; a home
/// moved away and made again, or replaced by a link to another directory, is what the
/// logins after the next check (at most a second later) get, with no reload. A session
/// already in keeps the directory it logged into, as a process keeps its working
/// directory.
#[test]
fn a_home_replaced_while_the_server_runs_is_what_the_next_login_sees() {
    let base = TempDir::new("home-replaced");
    let home = base.join("home");
    std::fs::create_dir(&home).unwrap();
    std::fs::write(home.join("old.txt"), b"old").unwrap();
    let h = home.clone();
    let s = TestServer::start_with(move |c, _| {
        let mut a = DummyAuthorizer::new();
        a.add_user("alice", "pass", &h, "elr").unwrap();
        c.authorizer = Arc::new(a);
    });
    let login = || {
        let mut c = s.client();
        c.login("alice", "pass");
        c
    };
    let mut first = login();
    assert_eq!(first.retr("NLST"), b"old.txt\r\n");
    assert_eq!(login().retr("NLST"), b"old.txt\r\n");

    std::fs::rename(&home, base.join("home.moved")).unwrap();
    std::fs::create_dir(&home).unwrap();
    std::fs::write(home.join("new.txt"), b"new").unwrap();
    let sees = |want: &[u8]| wait_until(Duration::from_secs(5), || login().retr("NLST") == want);
    assert!(sees(b"new.txt\r\n"));
    assert_eq!(first.retr("NLST"), b"old.txt\r\n");

    let other = base.join("other");
    std::fs::create_dir(&other).unwrap();
    std::fs::write(other.join("linked.txt"), b"l").unwrap();
    std::fs::remove_file(home.join("new.txt")).unwrap();
    std::fs::remove_dir(&home).unwrap();
    std::os::unix::fs::symlink(&other, &home).unwrap();
    assert!(sees(b"linked.txt\r\n"));

    std::fs::remove_file(&home).unwrap();
    let refused = || {
        let mut c = s.client();
        c.cmd("USER alice", 331);
        c.send("PASS pass");
        let r = c.read_reply();
        r.code == 530 && r.text().contains("Home directory unavailable")
    };
    assert!(wait_until(Duration::from_secs(5), refused));
}

/// The threads the password checks of a [`Watched`] authorizer ran on, by user.
type Checks = Arc<std::sync::Mutex<Vec<(String, bool)>>>;

/// A [`DummyAuthorizer`] that notes, per check, whether it ran on a worker thread.
struct Watched(DummyAuthorizer, Checks);

impl Authorizer for Watched {
    fn validate_authentication(&self, u: &str, p: &str) -> Result<(), AuthError> {
        let on_worker = std::thread::current().name() == Some("ftpdlib-worker");
        self.1.lock().unwrap().push((u.to_string(), on_worker));
        self.0.validate_authentication(u, p)
    }
    fn is_inline(&self, u: &str) -> bool {
        self.0.is_inline(u)
    }
    fn has_user(&self, u: &str) -> bool {
        self.0.has_user(u)
    }
    fn home_dir(&self, u: &str) -> Option<PathBuf> {
        self.0.home_dir(u)
    }
    fn has_perm(&self, u: &str, perm: Perms, path: &Path) -> bool {
        self.0.has_perm(u, perm, path)
    }
    fn perms(&self, u: &str) -> Perms {
        self.0.perms(u)
    }
}

/// A plain password is checked on the reactor thread (the first login then opens its
/// home on a worker, without checking again); a crypt(3) hash always on a worker; an
/// unknown name on the reactor, like a plain password, so the time of the answer does not
/// tell them apart.
/// Every login gets the right answer and the right home either way.
#[test]
fn cheap_password_checks_are_made_on_the_reactor_and_hashes_on_a_worker() {
    let checks: Checks = Arc::default();
    let seen = Arc::clone(&checks);
    let s = TestServer::start_with(move |c, _| {
        let home = c.authorizer.home_dir("user").expect("the test user's home");
        let mut auth = DummyAuthorizer::new();
        auth.add_user("plain", "pass", &home, "elr").unwrap();
        let hash = ftpdlib::authorizer::crypt::hash_password(
            "pass",
            ftpdlib::authorizer::crypt::Method::Sha512,
        )
        .unwrap();
        auth.add_user_hashed("hashed", &hash, &home, "elr").unwrap();
        c.authorizer = Arc::new(Watched(auth, seen));
    });
    std::fs::write(s.root.join("f.txt"), b"home").unwrap();
    for user in ["plain", "plain", "hashed", "hashed"] {
        let mut c = s.client();
        c.login(user, "pass");
        assert_eq!(c.retr("RETR f.txt"), b"home");
    }
    let mut c = s.client();
    c.cmd("USER nobody", 331);
    c.cmd("PASS pass", 530);
    c.cmd("USER plain", 331);
    c.cmd("PASS wrong", 530);
    let got = checks.lock().unwrap().clone();
    let on_worker = |user: &str| -> Vec<bool> {
        got.iter()
            .filter(|(u, _)| u == user)
            .map(|(_, w)| *w)
            .collect()
    };
    assert_eq!(on_worker("plain"), [false, false, false], "{got:?}");
    assert_eq!(on_worker("hashed"), [true, true], "{got:?}");
    assert_eq!(on_worker("nobody"), [false], "{got:?}");
}

/// A wrong password for a name that exists is refused on the reactor thread even when no
/// login has opened that user's home in the last second, as it is for a name that does
/// not exist: a trip through the worker pool for one and not the other would tell an
/// attacker, by the time of the 530, which names exist. The right password still opens
/// the home on a worker, checked once.
#[test]
fn a_wrong_password_is_refused_on_the_reactor_whatever_the_home() {
    let checks: Checks = Arc::default();
    let seen = Arc::clone(&checks);
    let s = TestServer::start_with(move |c, _| {
        let home = c.authorizer.home_dir("user").expect("the test user's home");
        let mut auth = DummyAuthorizer::new();
        auth.add_user("plain", "pass", &home, "elr").unwrap();
        c.authorizer = Arc::new(Watched(auth, seen));
    });
    std::fs::write(s.root.join("f.txt"), b"home").unwrap();
    let mut c = s.client();
    // No login has opened the home yet.
    c.cmd("USER plain", 331);
    c.cmd("PASS wrong", 530);
    c.cmd("USER nobody", 331);
    c.cmd("PASS wrong", 530);
    c.login("plain", "pass");
    assert_eq!(c.retr("RETR f.txt"), b"home");
    let got = checks.lock().unwrap().clone();
    assert_eq!(
        got,
        [
            ("plain".to_string(), false),
            ("nobody".to_string(), false),
            ("plain".to_string(), false),
        ],
        "(user, checked on a worker) for each check"
    );
}
