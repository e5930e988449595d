//! The session harness (a made-up clock, a real temporary directory) and the session's
//! unit tests, grouped by state.

use std::path::Path;
use std::time::Duration;

use crate::DummyAuthorizer;

use super::parse::parse_eprt;
use super::*;
use crate::authorizer::Perms;
use crate::testutil::TempDir;

struct Harness {
    s: Session,
    now: Instant,
    dir: TempDir,
    /// Actions other than requests, for `actions` to return.
    held: VecDeque<Action>,
    /// Run requests as they come (else they wait in `requests`).
    auto: bool,
    requests: VecDeque<Request>,
}

/// Runs a request as the pool does: a panic becomes the panicked completion.
fn run_request(req: Request) -> Completion {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| req.run()))
        .unwrap_or_else(|_| Completion::panicked())
}

impl Harness {
    fn new(name: &str, tweak: impl FnOnce(&mut Config)) -> Harness {
        let dir = TempDir::new(&format!("session-{name}"));
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        std::fs::write(dir.join("file.txt"), b"hello\n").unwrap();
        let mut auth = DummyAuthorizer::new();
        auth.add_user("user", "pw", &dir, "elradfmwMT").unwrap();
        auth.add_user("ro", "pw", &dir, "elr").unwrap();
        auth.add_anonymous(&dir, "elr").unwrap();
        let mut config = Config::new(Arc::new(auth));
        config.auth_failed_timeout = Duration::ZERO;
        tweak(&mut config);
        let now = Instant::now();
        let peer: SocketAddr = "127.0.0.1:50000".parse().unwrap();
        let local: SocketAddr = "127.0.0.1:21".parse().unwrap();
        let mut h = Harness {
            s: Session::new(Arc::new(config), peer, local, now),
            now,
            dir,
            held: VecDeque::new(),
            auto: true,
            requests: VecDeque::new(),
        };
        assert!(h.take().starts_with("220 ftpdlib "));
        h
    }

    fn take(&mut self) -> String {
        let s = String::from_utf8(self.s.output().to_vec()).unwrap();
        let n = self.s.output().len();
        self.s.consume_output(n);
        s
    }

    fn send(&mut self, line: &str) -> String {
        self.s.handle_line(self.now, line.as_bytes());
        self.pump();
        self.take()
    }

    /// Collects the session's actions: requests are run and completed at once (unless
    /// `auto` is off), the rest kept for `actions`.
    fn pump(&mut self) {
        while let Some(a) = self.s.poll_action() {
            match a {
                Action::Request(r) => self.requests.push_back(r),
                a => self.held.push_back(a),
            }
            while self.auto {
                let Some(r) = self.requests.pop_front() else {
                    break;
                };
                let id = r.id;
                let c = run_request(r);
                self.s.handle_completion(self.now, id, c);
            }
        }
    }

    fn login(&mut self, user: &str) {
        assert_eq!(
            self.send(&format!("USER {user}")),
            "331 Username ok, send password.\r\n"
        );
        assert!(self.send("PASS pw").starts_with("230 "));
    }

    fn actions(&mut self) -> Vec<Action> {
        self.pump();
        self.held.drain(..).collect()
    }
}

macro_rules! expect {
    ($h:expr, $line:expr, $code:expr) => {{
        let r = $h.send($line);
        assert!(
            r.starts_with(concat!($code, " ")) || r.starts_with(concat!($code, "-")),
            "{} -> {r:?}",
            $line
        );
        r
    }};
}

// Tests for the not-logged-in state.

#[test]
fn commands_before_login() {
    let mut h = Harness::new("prelogin", |_| {});
    expect!(h, "PWD", "530");
    expect!(h, "RETR x", "530");
    expect!(h, "STAT /", "530");
    expect!(h, "STAT", "211");
    expect!(h, "NOOP", "200");
    expect!(h, "SYST", "215");
    expect!(h, "FEAT", "211");
    expect!(h, "PASS x", "503");
    expect!(h, "FOO", "500");
    expect!(h, "USER", "501");
    expect!(h, "NOOP x", "501");
    expect!(h, "", "500");
}

#[test]
fn login_and_failures() {
    let mut h = Harness::new("login", |c| c.max_login_attempts = 2);
    expect!(h, "USER user", "331");
    let r = expect!(h, "PASS nope", "530");
    assert_eq!(r, "530 Authentication failed.\r\n");
    expect!(h, "USER user", "331");
    let r = expect!(h, "PASS nope", "530");
    assert!(r.contains("Disconnecting."), "{r}");
    assert!(h.s.is_closed());
}

#[test]
fn failed_logins_are_reported_to_the_owner() {
    let mut h = Harness::new("report", |_| {});
    expect!(h, "USER user", "331");
    expect!(h, "PASS nope", "530");
    assert!(matches!(h.actions()[..], [Action::LoginFailed]));
    h.login("user");
    assert!(h.actions().is_empty());
}

#[test]
fn login_timeout_runs_from_connect_until_login() {
    let mut h = Harness::new("login-timeout", |c| {
        c.login_timeout = Some(Duration::from_secs(5));
        c.timeout = Some(Duration::from_secs(60));
    });
    assert_eq!(h.s.poll_timeout(), Some(h.now + Duration::from_secs(5)));
    // Commands do not push it back.
    h.now += Duration::from_secs(3);
    expect!(h, "NOOP", "200");
    assert_eq!(
        h.s.poll_timeout(),
        Some(h.now - Duration::from_secs(3) + Duration::from_secs(5))
    );
    h.s.handle_timeout(h.now + Duration::from_secs(2));
    assert_eq!(h.take(), "421 Login timed out.\r\n");
    assert!(h.s.is_closed());

    // Logged in in time: only the idle timeout is left.
    let mut h = Harness::new("login-in-time", |c| {
        c.login_timeout = Some(Duration::from_secs(5));
        c.timeout = Some(Duration::from_secs(60));
    });
    h.login("user");
    assert_eq!(h.s.poll_timeout(), Some(h.now + Duration::from_secs(60)));
    h.s.handle_timeout(h.now + Duration::from_secs(10));
    assert_eq!(h.take(), "");
    assert!(!h.s.is_closed());
}

#[test]
fn command_rate_limit_closes_the_session() {
    let mut h = Harness::new("rate", |c| c.flood.max_commands_per_sec = 3);
    for _ in 0..3 {
        expect!(h, "NOOP", "200");
    }
    // A new second, a new count.
    h.now += Duration::from_secs(1);
    for _ in 0..3 {
        expect!(h, "NOOP", "200");
    }
    assert_eq!(h.send("NOOP"), "421 Too many commands per second.\r\n");
    assert!(h.s.is_closed());
    assert_eq!(h.send("NOOP"), "");
}

#[test]
fn failed_login_reply_is_delayed() {
    let mut h = Harness::new("delay", |c| c.auth_failed_timeout = Duration::from_secs(3));
    expect!(h, "USER user", "331");
    assert_eq!(h.send("PASS nope"), "");
    assert!(!h.s.accepts_commands());
    assert_eq!(h.s.poll_timeout(), Some(h.now + Duration::from_secs(3)));
    h.s.handle_timeout(h.now + Duration::from_secs(2));
    assert_eq!(h.take(), "");
    h.s.handle_timeout(h.now + Duration::from_secs(3));
    assert_eq!(h.take(), "530 Authentication failed.\r\n");
    assert!(h.s.accepts_commands());
}

/// The pause counts from the PASS, not from the password check's answer: a check that
/// takes time (a crypt(3) hash for a name that exists, none for one that does not) ends
/// inside the pause, so the time of the 530 says nothing about which names exist.
#[test]
fn failed_login_delay_counts_from_the_pass() {
    let mut h = Harness::new("delay-from-pass", |c| {
        c.auth_failed_timeout = Duration::from_secs(3)
    });
    h.auto = false;
    expect!(h, "USER user", "331");
    assert_eq!(h.send("PASS nope"), "");
    let r = h.requests.pop_front().expect("the login request");
    let id = r.id;
    let c = run_request(r);
    // The check took a second.
    h.s.handle_completion(h.now + Duration::from_secs(1), id, c);
    assert_eq!(h.s.poll_timeout(), Some(h.now + Duration::from_secs(3)));
    h.s.handle_timeout(h.now + Duration::from_secs(3));
    assert_eq!(h.take(), "530 Authentication failed.\r\n");
    // A check longer than the pause is answered as soon as it is done.
    expect!(h, "USER user", "331");
    assert_eq!(h.send("PASS nope"), "");
    let r = h.requests.pop_front().expect("the login request");
    let id = r.id;
    let c = run_request(r);
    h.s.handle_completion(h.now + Duration::from_secs(5), id, c);
    h.s.handle_timeout(h.now + Duration::from_secs(5));
    assert_eq!(h.take(), "530 Authentication failed.\r\n");
}

#[test]
fn anonymous_takes_any_password() {
    let mut h = Harness::new("anon", |_| {});
    expect!(h, "USER anonymous", "331");
    expect!(h, "PASS me@example.com", "230");
    expect!(h, "PASS again", "503");
    expect!(h, "MKD x", "550");
}

// Tests for the logged-in state.

#[test]
fn navigation_and_traversal() {
    let mut h = Harness::new("nav", |_| {});
    h.login("user");
    assert_eq!(h.send("PWD"), "257 \"/\" is the current directory.\r\n");
    assert_eq!(
        h.send("CWD sub"),
        "250 \"/sub\" is the current directory.\r\n"
    );
    assert_eq!(
        h.send("CWD ../.."),
        "250 \"/\" is the current directory.\r\n"
    );
    expect!(h, "CWD nothere", "550");
    expect!(h, "CWD file.txt", "550");
    expect!(h, "CWD sub", "250");
    assert_eq!(h.send("CDUP"), "250 \"/\" is the current directory.\r\n");
    assert_eq!(h.send("XPWD"), "257 \"/\" is the current directory.\r\n");
    std::os::unix::fs::symlink("/etc", h.dir.join("etc")).unwrap();
    // An absolute link is resolved inside the home (as under chroot): /etc here is the
    // link itself again, a loop, never the machine's /etc.
    expect!(h, "CWD etc", "550");
    assert_eq!(h.send("PWD"), "257 \"/\" is the current directory.\r\n");
    expect!(h, "SIZE etc/passwd", "550");
}

#[test]
fn file_operations() {
    let mut h = Harness::new("fileops", |_| {});
    h.login("user");
    assert_eq!(h.send("MKD new"), "257 \"/new\" directory created.\r\n");
    expect!(h, "MKD new", "550");
    expect!(h, "RMD new", "250");
    expect!(h, "RMD /", "550");
    expect!(h, "RNTO x", "503");
    expect!(h, "RNFR nothere", "550");
    expect!(h, "RNFR /", "550");
    expect!(h, "RNFR file.txt", "350");
    expect!(h, "RNTO renamed.txt", "250");
    assert!(h.dir.join("renamed.txt").exists());
    assert_eq!(h.send("SIZE renamed.txt"), "213 6\r\n");
    expect!(h, "SIZE sub", "550");
    assert!(h.send("MDTM renamed.txt").starts_with("213 20"));
    expect!(h, "DELE renamed.txt", "250");
    expect!(h, "DELE renamed.txt", "550");
}

#[test]
fn permissions_are_checked() {
    let mut h = Harness::new("perms", |_| {});
    h.login("ro");
    assert_eq!(h.send("MKD x"), "550 Not enough privileges.\r\n");
    expect!(h, "DELE file.txt", "550");
    expect!(h, "RNFR file.txt", "550");
    expect!(h, "STOR y", "550");
    expect!(h, "SIZE file.txt", "213");
}

#[test]
fn type_mode_stru() {
    let mut h = Harness::new("tms", |_| {});
    h.login("user");
    assert_eq!(h.send("TYPE A"), "200 Type set to: ASCII.\r\n");
    assert_eq!(h.send("TYPE L 8"), "200 Type set to: Binary.\r\n");
    expect!(h, "TYPE X", "504");
    expect!(h, "MODE S", "200");
    expect!(h, "MODE B", "504");
    expect!(h, "MODE Z", "501");
    expect!(h, "STRU F", "200");
    expect!(h, "STRU R", "504");
    expect!(h, "STRU Q", "501");
}

// Tests for data connection setup.

#[test]
fn port_checks_happen_before_connecting() {
    let mut h = Harness::new("port", |_| {});
    h.login("user");
    expect!(h, "PORT 10,0,0,1,200,10", "501");
    expect!(h, "PORT 127,0,0,1,0,21", "501");
    expect!(h, "PORT 127,0,0,1,300,1", "501");
    expect!(h, "PORT junk", "501");
    expect!(h, "EPRT |1|10.0.0.1|5000|", "501");
    expect!(h, "EPRT |2|::1|5000|", "522");
    expect!(h, "EPRT |3|x|5000|", "522");
    expect!(h, "EPRT junk", "501");
    assert!(h.actions().is_empty(), "no connection may be tried");
    assert_eq!(h.send("PORT 127,0,0,1,200,10"), "");
    assert!(matches!(h.actions()[..], [Action::Connect(a)] if a.port() == 200 * 256 + 10));
    assert!(!h.s.accepts_commands());
    h.s.handle_data_connected(h.now);
    assert_eq!(h.take(), "200 Active data connection established.\r\n");
    assert!(h.s.accepts_commands());
}

#[test]
fn pasv_reply_and_transfer_flow() {
    let mut h = Harness::new("pasv", |_| {});
    h.login("user");
    // A transfer command before PASV/PORT is accepted and held (pyftpdlib does the same).
    assert_eq!(
        h.send("RETR file.txt"),
        "150 File status okay. About to open data connection.\r\n"
    );
    assert!(h.actions().is_empty(), "nothing to transfer over yet");
    // The held transfer has no data timeouts of its own: the idle timer stays on.
    assert!(h.s.poll_timeout().is_some());
    assert_eq!(h.send("PASV"), "");
    assert!(matches!(
        h.actions()[..],
        [Action::Listen { extended: false }]
    ));
    h.s.handle_passive_ready(h.now, Ok("127.0.0.1:5001".parse().unwrap()), false);
    assert_eq!(
        h.take(),
        "227 Entering passive mode (127,0,0,1,19,137).\r\n"
    );
    // Now it starts, on the new passive connection.
    assert!(matches!(h.actions()[..], [Action::Transfer(_)]));
    expect!(h, "RETR file.txt", "425");
    assert_eq!(
        h.s.poll_timeout(),
        None,
        "idle timer is off during a transfer"
    );
    h.s.handle_data_connected(h.now);
    h.s.handle_transfer_done(h.now, 6, Ok(()));
    assert_eq!(h.take(), "226 Transfer complete.\r\n");
    assert!(h.s.poll_timeout().is_some());
    // The usual order: PASV, then RETR.
    h.send("PASV");
    h.actions();
    h.s.handle_passive_ready(h.now, Ok("127.0.0.1:5001".parse().unwrap()), false);
    h.take();
    assert_eq!(
        h.send("RETR file.txt"),
        "150 File status okay. About to open data connection.\r\n"
    );
    assert!(matches!(h.actions()[..], [Action::Transfer(_)]));
}

#[test]
fn quit_is_answered_at_once_and_the_transfer_finishes() {
    let mut h = Harness::new("quit", |_| {});
    h.login("user");
    h.send("EPSV");
    h.actions();
    h.s.handle_passive_ready(h.now, Ok("127.0.0.1:5001".parse().unwrap()), true);
    assert_eq!(
        h.take(),
        "229 Entering extended passive mode (|||5001|).\r\n"
    );
    h.s.handle_data_connected(h.now);
    expect!(h, "RETR file.txt", "125");
    // pyftpdlib's order: 221 at once, 226 when the transfer ends, then the close.
    assert_eq!(h.send("QUIT"), "221 Goodbye.\r\n");
    assert!(!h.s.is_closed());
    assert!(!h.s.accepts_commands());
    h.s.handle_transfer_done(h.now, 6, Ok(()));
    assert_eq!(h.take(), "226 Transfer complete.\r\n");
    assert!(h.s.is_closed());
    // A transfer whose data connection never came up is ended by QUIT: 426, then 221.
    let mut h = Harness::new("quit-held", |_| {});
    h.login("user");
    h.send("PASV");
    h.actions();
    h.s.handle_passive_ready(h.now, Ok("127.0.0.1:5001".parse().unwrap()), false);
    h.take();
    expect!(h, "RETR file.txt", "150");
    assert_eq!(
        h.send("QUIT"),
        "426 Transfer aborted; the session is ending.\r\n221 Goodbye.\r\n"
    );
    assert!(h.s.is_closed());
}

#[test]
fn abor_variants() {
    let mut h = Harness::new("abor", |_| {});
    h.login("user");
    expect!(h, "ABOR", "225");
    h.send("PASV");
    h.s.handle_passive_ready(h.now, Ok("127.0.0.1:5001".parse().unwrap()), false);
    h.take();
    expect!(h, "ABOR", "225");
    h.send("PASV");
    h.s.handle_passive_ready(h.now, Ok("127.0.0.1:5001".parse().unwrap()), false);
    h.s.handle_data_connected(h.now);
    h.take();
    expect!(h, "RETR file.txt", "125");
    h.actions();
    assert_eq!(h.send("ABOR"), "");
    assert!(matches!(h.actions()[..], [Action::CloseData]));
    assert!(!h.s.accepts_commands());
    h.s.handle_data_closed(h.now, Some(65536));
    assert_eq!(
        h.take(),
        "426 Transfer aborted via ABOR.\r\n226 ABOR command successful.\r\n"
    );
    assert!(h.s.accepts_commands());
}

#[test]
fn idle_timeout() {
    let mut h = Harness::new("idle", |c| c.timeout = Some(Duration::from_secs(10)));
    assert_eq!(h.s.poll_timeout(), Some(h.now + Duration::from_secs(10)));
    h.s.handle_timeout(h.now + Duration::from_secs(10));
    assert_eq!(h.take(), "421 Control connection timed out.\r\n");
    assert!(h.s.is_closed());
}

/// An authorizer that records whether the session is impersonating and can be told to
/// fail either half of the switch.
#[derive(Default)]
struct Recording {
    inner: DummyAuthorizer,
    switched: std::sync::atomic::AtomicBool,
    terminations: std::sync::atomic::AtomicUsize,
    fail_impersonate: std::sync::atomic::AtomicBool,
    fail_terminate: std::sync::atomic::AtomicBool,
}

impl crate::Authorizer for Recording {
    fn validate_authentication(&self, u: &str, p: &str) -> Result<(), crate::AuthError> {
        self.inner.validate_authentication(u, p)
    }
    fn has_user(&self, u: &str) -> bool {
        self.inner.has_user(u)
    }
    fn home_dir(&self, u: &str) -> Option<PathBuf> {
        self.inner.home_dir(u)
    }
    fn has_perm(&self, u: &str, perm: Perms, path: &Path) -> bool {
        self.inner.has_perm(u, perm, path)
    }
    fn perms(&self, u: &str) -> Perms {
        self.inner.perms(u)
    }
    fn impersonate_user(&self, _u: &str) -> Result<(), crate::AuthError> {
        use std::sync::atomic::Ordering::SeqCst;
        // A failure after a partial switch, as a real one could be.
        self.switched.store(true, SeqCst);
        if self.fail_impersonate.load(SeqCst) {
            return Err(crate::AuthError::Refused("no".into()));
        }
        Ok(())
    }
    fn terminate_impersonation(&self, _u: &str) -> Result<(), crate::AuthError> {
        use std::sync::atomic::Ordering::SeqCst;
        self.terminations.fetch_add(1, SeqCst);
        if self.fail_terminate.load(SeqCst) {
            return Err(crate::AuthError::Refused("stuck".into()));
        }
        self.switched.store(false, SeqCst);
        Ok(())
    }
}

/// An inline storage (memory) may answer on the reactor thread, which never takes a user's
/// ids: its calls are not impersonated.
#[test]
fn an_inline_storage_is_not_impersonated() {
    use std::sync::atomic::Ordering::SeqCst;
    let home = TempDir::new("impersonation-inline");
    let mut inner = DummyAuthorizer::new();
    inner.add_user("user", "pw", &home, "elrm").unwrap();
    let auth = Arc::new(Recording {
        inner,
        ..Recording::default()
    });
    let (a, store) = (Arc::clone(&auth), crate::MemoryStore::new());
    let mut h = Harness::new("impersonation-inline", move |c| {
        c.authorizer = a;
        c.filesystem = Arc::new(move |root: &Path| {
            Ok(Arc::new(store.filesystem(root)?) as Arc<dyn Filesystem>)
        });
    });
    h.login("user");
    expect!(h, "MKD d", "257");
    expect!(h, "CWD d", "250");
    assert!(!auth.switched.load(SeqCst));
    assert_eq!(auth.terminations.load(SeqCst), 0);
}

/// A filesystem whose `stat` panics, to show a panicking request is undone too.
#[derive(Debug)]
struct PanickyFs(crate::OsFilesystem);

impl Filesystem for PanickyFs {
    fn stat(&self, _path: &Path) -> io::Result<crate::filesystem::Stat> {
        panic!("stat panicked");
    }
    fn lstat(&self, p: &Path) -> io::Result<crate::filesystem::Stat> {
        self.0.lstat(p)
    }
    fn read_dir(&self, p: &Path) -> io::Result<Box<dyn crate::filesystem::DirStream>> {
        self.0.read_dir(p)
    }
    fn open_read(&self, p: &Path, o: u64) -> io::Result<Box<dyn crate::filesystem::FileReader>> {
        self.0.open_read(p, o)
    }
    fn open_write(
        &self,
        p: &Path,
        m: crate::filesystem::WriteMode,
    ) -> io::Result<Box<dyn crate::filesystem::FileWriter>> {
        self.0.open_write(p, m)
    }
    fn mkdir(&self, p: &Path) -> io::Result<()> {
        self.0.mkdir(p)
    }
    fn rmdir(&self, p: &Path) -> io::Result<()> {
        self.0.rmdir(p)
    }
    fn remove(&self, p: &Path) -> io::Result<()> {
        self.0.remove(p)
    }
    fn rename(&self, a: &Path, b: &Path) -> io::Result<()> {
        self.0.rename(a, b)
    }
    fn chmod(&self, p: &Path, m: u32) -> io::Result<()> {
        self.0.chmod(p, m)
    }
    fn set_mtime(&self, p: &Path, t: i64) -> io::Result<()> {
        self.0.set_mtime(p, t)
    }
    fn real_path(&self, p: &Path) -> PathBuf {
        self.0.real_path(p)
    }
}

#[test]
fn impersonation_is_always_undone() {
    use std::sync::atomic::Ordering::SeqCst;
    let home = TempDir::new("impersonation-home");
    let mut inner = DummyAuthorizer::new();
    inner.add_user("user", "pw", &home, "elrm").unwrap();
    let auth = Arc::new(Recording {
        inner,
        ..Recording::default()
    });
    let a = Arc::clone(&auth);
    let mut h = Harness::new("impersonation", move |c| {
        c.authorizer = a;
        c.filesystem = Arc::new(|root: &Path| {
            Ok(Arc::new(PanickyFs(crate::OsFilesystem::new(root)?)) as Arc<dyn Filesystem>)
        });
    });
    h.login("user");
    expect!(h, "MKD ftpdlib-imp-d", "257");
    assert!(!auth.switched.load(SeqCst));
    // A switch that fails half-way is undone before the 550.
    auth.fail_impersonate.store(true, SeqCst);
    let r = expect!(h, "MKD ftpdlib-imp-e", "550");
    assert!(r.contains("identity"), "{r}");
    assert!(!auth.switched.load(SeqCst));
    auth.fail_impersonate.store(false, SeqCst);
    // A request that panics is undone by the guard, and answered 451; the session goes on.
    let before = auth.terminations.load(SeqCst);
    expect!(h, "SIZE x", "451");
    assert!(!auth.switched.load(SeqCst));
    assert_eq!(auth.terminations.load(SeqCst), before + 1);
    expect!(h, "NOOP", "200");
    // Failing to switch back ends the session.
    auth.fail_terminate.store(true, SeqCst);
    let r = h.send("MKD ftpdlib-imp-f");
    assert!(
        r.ends_with("421 Internal error; closing the connection.\r\n"),
        "{r}"
    );
    assert!(h.s.is_closed());
}

/// Requests are answered in order, a late or foreign completion is dropped, and ABOR and
/// QUIT are still heard while a request is out.
#[test]
fn requests_and_completions_by_hand() {
    let mut h = Harness::new("requests", |_| {});
    h.login("user");
    h.auto = false;
    assert_eq!(h.send("SIZE file.txt"), "");
    assert!(!h.s.accepts_commands());
    let req = h.requests.pop_front().unwrap();
    assert!(matches!(&req.op, Op::Stat { path } if path == Path::new("/file.txt")));
    // A completion for another id changes nothing.
    h.s.handle_completion(h.now, req.id + 1000, Completion::Done(Ok(())));
    assert_eq!(h.take(), "");
    let id = req.id;
    let c = run_request(req);
    h.s.handle_completion(h.now, id, c);
    assert_eq!(h.take(), "213 6\r\n");
    assert!(h.s.accepts_commands());
    // The same id again is dropped.
    h.s.handle_completion(h.now, id, Completion::Done(Ok(())));
    assert_eq!(h.take(), "");
    // A storage error is a reply and the session goes on.
    h.send("MKD x");
    let req = h.requests.pop_front().unwrap();
    let eio = io::Error::from_raw_os_error(libc::EIO);
    h.s.handle_completion(h.now, req.id, Completion::Done(Err(eio)));
    assert!(h.take().starts_with("550 Input/output error."));
    // ABOR while a RETR waits for its file: 426 for the RETR, 226 for the ABOR; the file
    // arriving later is dropped.
    h.send("PASV");
    h.actions();
    h.s.handle_passive_ready(h.now, Ok("127.0.0.1:5001".parse().unwrap()), false);
    h.take();
    h.send("RETR file.txt");
    let req = h.requests.pop_front().unwrap();
    assert!(h.s.accepts_urgent());
    assert_eq!(
        h.send("ABOR"),
        "426 Transfer aborted via ABOR.\r\n226 ABOR command successful.\r\n"
    );
    let id = req.id;
    let c = run_request(req);
    h.s.handle_completion(h.now, id, c);
    assert_eq!(h.take(), "");
    assert!(h
        .actions()
        .iter()
        .all(|a| !matches!(a, Action::Transfer(_))));
    // QUIT while a MKD is out: the MKD is answered, then 221.
    h.send("MKD y");
    let req = h.requests.pop_front().unwrap();
    assert_eq!(h.send("QUIT"), "");
    let id = req.id;
    let c = run_request(req);
    h.s.handle_completion(h.now, id, c);
    let r = h.take();
    assert!(r.starts_with("257 ") && r.contains("\r\n221 "), "{r}");
    assert!(h.s.is_closed());
}

#[cfg(feature = "tls")]
fn with_tls(c: &mut Config, f: impl FnOnce(&mut crate::TlsConfig)) {
    let here = env!("CARGO_MANIFEST_DIR");
    let mut t = crate::TlsConfig::from_pem_files(
        format!("{here}/tests/data/cert.pem"),
        format!("{here}/tests/data/key.pem"),
    )
    .unwrap();
    f(&mut t);
    c.tls = Some(t);
}

#[cfg(feature = "tls")]
#[test]
fn auth_switches_and_holds_commands() {
    let mut h = Harness::new("auth", |c| with_tls(c, |_| {}));
    expect!(h, "PBSZ 0", "503");
    expect!(h, "PROT P", "503");
    expect!(h, "AUTH GSSAPI", "504");
    assert_eq!(h.send("AUTH TLS"), "234 AUTH TLS successful.\r\n");
    assert!(matches!(h.actions()[..], [Action::StartTls]));
    // Nothing is taken until the owner has switched the socket.
    assert!(!h.s.accepts_commands());
    h.s.handle_tls_started(h.now);
    assert!(h.s.accepts_commands() && h.s.control_tls());
    expect!(h, "AUTH TLS", "503");
    expect!(h, "PROT P", "503");
    expect!(h, "PBSZ 0", "200");
    expect!(h, "PROT S", "536");
    expect!(h, "PROT Q", "504");
    expect!(h, "PROT P", "200");
    expect!(h, "CCC", "534");
    h.login("user");
    h.send("PASV");
    h.actions();
    h.s.handle_passive_ready(h.now, Ok("127.0.0.1:5001".parse().unwrap()), false);
    h.s.handle_data_connected(h.now);
    h.take();
    expect!(h, "RETR file.txt", "125");
    let Some(Action::Transfer(t)) = h.actions().into_iter().next() else {
        panic!("no transfer")
    };
    assert!(t.tls && !t.use_sendfile);
    h.s.handle_transfer_done(h.now, 0, Err(TransferError::Tls("handshake failed".into())));
    assert_eq!(h.take(), "522 handshake failed.\r\n");
}

#[cfg(feature = "tls")]
#[test]
fn tls_policies() {
    use crate::TlsRequired;
    let mut h = Harness::new("tlspolicy", |c| {
        with_tls(c, |t| {
            t.control_required = TlsRequired::ExceptAnonymous;
            t.data_required = TlsRequired::Everyone;
        })
    });
    expect!(h, "USER user", "534");
    expect!(h, "USER anonymous", "331");
    expect!(h, "PASS x", "230");
    expect!(h, "PASV", "521");
    expect!(h, "EPRT |1|127.0.0.1|5000|", "521");
    assert!(h.actions().is_empty());
    // AUTH SSL protects data at once, as its draft said.
    expect!(h, "AUTH SSL", "234");
    h.actions();
    h.s.handle_tls_started(h.now);
    expect!(h, "PBSZ 0", "200");
    expect!(h, "PROT C", "534");
    assert_eq!(h.send("PASV"), "");
    assert!(matches!(h.actions()[..], [Action::Listen { .. }]));
}

#[test]
fn auth_without_tls_is_not_supported() {
    let mut h = Harness::new("notls", |_| {});
    expect!(h, "AUTH TLS", "502");
    expect!(h, "PBSZ 0", "503");
    let feat = expect!(h, "FEAT", "211");
    assert!(!feat.contains("AUTH"), "{feat}");
}

#[test]
fn ls_flags_come_off_one_word_at_a_time() {
    use super::parse::strip_ls_flag;
    assert_eq!(strip_ls_flag(b"-la"), Some(&b""[..]));
    assert_eq!(strip_ls_flag(b"-la /x y"), Some(&b"/x y"[..]));
    assert_eq!(strip_ls_flag(b" -1 -a sub"), Some(&b"-a sub"[..]));
    assert_eq!(strip_ls_flag(b"sub"), None);
    assert_eq!(strip_ls_flag(b""), None);
}

#[test]
fn eprt_parsing() {
    assert_eq!(
        parse_eprt("|1|127.0.0.1|5000|"),
        Ok(("1".into(), Some("127.0.0.1:5000".parse().unwrap())))
    );
    assert_eq!(
        parse_eprt("!2!::1!5000!"),
        Ok(("2".into(), Some("[::1]:5000".parse().unwrap())))
    );
    assert_eq!(parse_eprt("|1|::1|5000|"), Err(()));
    assert_eq!(parse_eprt("|1|127.0.0.1|0|"), Err(()));
    assert_eq!(parse_eprt("|1|127.0.0.1|5000"), Err(()));
}

// Storage errors and their reply codes.

#[test]
fn exhaustion_errors_have_their_own_codes() {
    let os = io::Error::from_raw_os_error;
    assert_eq!(error_code(&os(libc::ENOSPC), 550), 452);
    assert_eq!(error_code(&os(libc::EDQUOT), 550), 552);
    assert_eq!(error_code(&os(libc::EFBIG), 426), 552);
    assert_eq!(error_code(&os(libc::EMFILE), 550), 451);
    assert_eq!(error_code(&os(libc::ENFILE), 550), 451);
    assert_eq!(error_code(&os(libc::ENOENT), 550), 550);
    assert_eq!(error_code(&os(libc::EIO), 426), 426);
    // A back-end that is not a disk says it with the kind.
    assert_eq!(error_code(&io::ErrorKind::StorageFull.into(), 550), 452);
    assert_eq!(error_code(&io::ErrorKind::QuotaExceeded.into(), 550), 552);
    assert_eq!(
        error_reply(&os(libc::ENOSPC), 550).1,
        "Insufficient storage space in system (No space left on device)."
    );
    assert_eq!(error_reply(&os(libc::EACCES), 550).1, "Permission denied.");
}

#[test]
fn unreachable_storage_is_451_and_names_it_cannot_hold_553() {
    let os = io::Error::from_raw_os_error;
    for kind in [
        io::ErrorKind::TimedOut,
        io::ErrorKind::ConnectionRefused,
        io::ErrorKind::ConnectionReset,
        io::ErrorKind::ConnectionAborted,
        io::ErrorKind::NotConnected,
    ] {
        assert_eq!(error_code(&kind.into(), 550), 451, "{kind:?}");
        assert_eq!(error_code(&kind.into(), 426), 451, "{kind:?}");
        // Not for a data connection that could not be opened: that stays 425.
        assert_eq!(error_code(&kind.into(), 425), 425, "{kind:?}");
    }
    // Only commands that make a name (STOR, APPE, MKD, RNTO) answer 553 for it.
    assert_eq!(error_code(&os(libc::ENAMETOOLONG), NAMING), 553);
    assert_eq!(error_code(&os(libc::EILSEQ), NAMING), 553);
    assert_eq!(error_code(&os(libc::ENOENT), NAMING), 550);
    assert_eq!(error_code(&os(libc::ENOSPC), NAMING), 452);
    assert_eq!(error_code(&io::ErrorKind::TimedOut.into(), NAMING), 451);
    assert_eq!(error_code(&os(libc::ENAMETOOLONG), 550), 550);
    // A transfer cut short keeps its code whatever the name.
    assert_eq!(error_code(&os(libc::ENAMETOOLONG), 426), 426);
    assert_eq!(error_code(&io::ErrorKind::Unsupported.into(), 550), 550);
}

mod durations;

#[test]
fn disabled_commands_are_unknown_and_not_offered() {
    let mut h = Harness::new("disabled", |c| {
        c.disabled_commands = vec!["MFMT".into(), "xmkd".into()];
    });
    h.login("user");
    let r = expect!(h, "MFMT 20200101000000 x", "500");
    assert!(r.contains("not understood"), "{r}");
    // An alias turns off the command it names, under every name.
    expect!(h, "MKD d", "500");
    expect!(h, "XMKD d", "500");
    let feat = expect!(h, "FEAT", "211");
    assert!(!feat.contains("MFMT"), "{feat}");
    assert!(feat.contains(" MDTM"), "{feat}");
    let help = expect!(h, "HELP", "214");
    assert!(!help.contains("MFMT") && !help.contains(" MKD "), "{help}");
    expect!(h, "HELP MFMT", "501");
    expect!(h, "MDTM nothing", "550");
}
