//! A [`ServerGroup`] of two reactors on a thread, seen from outside, with hooks that tell
//! which reactor owns a session: the harness of `tests/group.rs`.

use std::io::{self, Read};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ftpdlib::{
    AuthError, Authorizer, Config, DummyAuthorizer, GroupHandle, Hooks, Perms, ServerGroup,
    ServerStats, SessionInfo,
};

use super::{Client, TempDir};

/// Reactors in every group.
pub const REACTORS: usize = 2;
/// Bound of every wait for the server to catch up.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// Hook calls: (client address, hook, name of the thread it ran on).
#[derive(Default)]
pub struct Spy {
    pub events: Mutex<Vec<(SocketAddr, &'static str, String)>>,
}

impl Spy {
    fn record(&self, peer: SocketAddr, hook: &'static str) {
        let thread = std::thread::current().name().unwrap_or("?").to_string();
        self.events.lock().unwrap().push((peer, hook, thread));
    }

    /// The reactor that ran the on_connect hook of the latest session from `peer` (a
    /// client port may come back once its earlier session is gone).
    pub fn reactor_of(&self, peer: SocketAddr) -> usize {
        let events = self.events.lock().unwrap();
        let (_, _, thread) = events
            .iter()
            .rev()
            .find(|(p, h, _)| *p == peer && *h == "connect")
            .unwrap_or_else(|| panic!("no on_connect for {peer}"));
        reactor_index(thread)
    }

    pub fn count(&self, hook: &str) -> usize {
        let events = self.events.lock().unwrap();
        events.iter().filter(|(_, h, _)| *h == hook).count()
    }
}

/// N of a thread named `ftpd-reactor-N`.
pub fn reactor_index(thread: &str) -> usize {
    thread
        .strip_prefix("ftpd-reactor-")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("a hook ran on thread {thread:?}, not on a reactor"))
}

pub struct SpyHooks(pub Arc<Spy>);

impl Hooks for SpyHooks {
    fn on_connect(&self, s: SessionInfo<'_>) {
        self.0.record(s.peer, "connect");
    }
    fn on_login(&self, s: SessionInfo<'_>) {
        self.0.record(s.peer, "login");
    }
    fn on_login_failed(&self, s: SessionInfo<'_>, _username: &str) {
        self.0.record(s.peer, "login_failed");
    }
    fn on_logout(&self, s: SessionInfo<'_>) {
        self.0.record(s.peer, "logout");
    }
    fn on_disconnect(&self, s: SessionInfo<'_>) {
        self.0.record(s.peer, "disconnect");
    }
}

/// A DummyAuthorizer whose 230 text for user "boom" panics: a bug in code the server calls
/// on the reactor thread. (A hook's panic would not do: it ends only its own session.)
pub struct Bomb(pub DummyAuthorizer);

impl Authorizer for Bomb {
    fn validate_authentication(&self, user: &str, password: &str) -> Result<(), AuthError> {
        self.0.validate_authentication(user, password)
    }
    fn has_user(&self, user: &str) -> bool {
        self.0.has_user(user)
    }
    fn home_dir(&self, user: &str) -> Option<PathBuf> {
        self.0.home_dir(user)
    }
    fn has_perm(&self, user: &str, perm: Perms, path: &Path) -> bool {
        self.0.has_perm(user, perm, path)
    }
    fn perms(&self, user: &str) -> Perms {
        self.0.perms(user)
    }
    fn msg_login(&self, user: &str) -> String {
        if user == "boom" {
            panic!("the authorizer fails on purpose for user boom");
        }
        self.0.msg_login(user)
    }
}

/// A group of two reactors serving a fresh directory on a thread: users "user" (every
/// permission) and "boom", both with password "pass"; no failed-login delay.
pub struct Group {
    pub addr: SocketAddr,
    pub handle: GroupHandle,
    pub stats: Arc<ServerStats>,
    pub spy: Arc<Spy>,
    /// The client addresses of the connections the test opened.
    mine: Mutex<Vec<SocketAddr>>,
    pub root: TempDir,
    thread: Option<JoinHandle<io::Result<()>>>,
}

impl Group {
    pub fn start(config: impl FnOnce(&mut Config), group: impl FnOnce(&mut ServerGroup)) -> Group {
        super::init();
        let root = TempDir::new("group");
        let mut auth = DummyAuthorizer::new();
        auth.add_user("user", "pass", root.path(), "elradfmwMT")
            .unwrap();
        auth.add_user("boom", "pass", root.path(), "elr").unwrap();
        let spy = Arc::new(Spy::default());
        let mut c = Config::new(Arc::new(Bomb(auth)));
        c.auth_failed_timeout = Duration::ZERO;
        c.hooks = Arc::new(SpyHooks(Arc::clone(&spy)));
        config(&mut c);
        let mut g = ServerGroup::bind("127.0.0.1:0", c, REACTORS).expect("bind");
        group(&mut g);
        let addr = g.local_addrs()[0];
        let (handle, stats) = (g.handle(), g.stats());
        let thread = std::thread::spawn(move || g.serve_forever(None));
        Group {
            addr,
            handle,
            stats,
            spy,
            mine: Mutex::new(Vec::new()),
            root,
            thread: Some(thread),
        }
    }

    /// Notes `c` as opened by the test.
    pub fn mine(&self, c: Client) -> Client {
        let addr = c.stream.local_addr().unwrap();
        self.mine.lock().unwrap().push(addr);
        c
    }

    /// Sessions the group started for connections the test did not open (another
    /// program's stray connection to the port): they take slots too, so a failed count
    /// names them.
    pub fn strays(&self) -> Vec<SocketAddr> {
        let mine = self.mine.lock().unwrap();
        let events = self.spy.events.lock().unwrap();
        events
            .iter()
            .filter(|(p, h, _)| *h == "connect" && !mine.contains(p))
            .map(|e| e.0)
            .collect()
    }

    /// A connection, nothing read yet.
    pub fn raw(&self) -> Client {
        self.mine(Client::connect_raw(self.addr))
    }

    /// A connection from the loopback address `src`; nothing read yet.
    pub fn raw_from(&self, src: [u8; 4]) -> Client {
        self.mine(Client::from_stream(super::connect_from(src, self.addr)))
    }

    /// A connection past its 220.
    pub fn connect(&self) -> Client {
        let mut c = self.raw();
        c.expect(220);
        c
    }

    pub fn login(&self, user: &str) -> Client {
        let mut c = self.connect();
        c.login(user, "pass");
        c
    }

    /// The reactor that owns the session of `c`.
    pub fn reactor(&self, c: &Client) -> usize {
        self.spy.reactor_of(c.stream.local_addr().unwrap())
    }

    /// Sessions made by `open` until each reactor holds `each`, by reactor; the spares
    /// quit at once.
    pub fn spread(&self, each: usize, mut open: impl FnMut() -> Client) -> Vec<Vec<Client>> {
        let mut by: Vec<Vec<Client>> = (0..REACTORS).map(|_| Vec::new()).collect();
        for _ in 0..40 * each {
            if by.iter().all(|v| v.len() >= each) {
                break;
            }
            let mut c = open();
            let r = self.reactor(&c);
            if by[r].len() < each {
                by[r].push(c);
            } else {
                c.cmd("QUIT", 221);
            }
        }
        let got: Vec<usize> = by.iter().map(Vec::len).collect();
        assert!(
            got.iter().all(|n| *n >= each),
            "sessions per reactor: {got:?}"
        );
        by
    }

    /// Whether serve_forever is still running.
    pub fn serving(&self) -> bool {
        self.thread.as_ref().is_some_and(|t| !t.is_finished())
    }

    /// Waits, bounded, for serve_forever to return, and gives what it returned.
    pub fn join(&mut self) -> io::Result<()> {
        let t = self.thread.take().expect("joined once");
        assert!(
            super::wait_until(Duration::from_secs(30), || t.is_finished()),
            "serve_forever did not return"
        );
        t.join().expect("serve thread")
    }

    pub fn stop(mut self) -> io::Result<()> {
        self.handle.close_all();
        self.join()
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        self.handle.close_all();
        if let Some(t) = self.thread.take() {
            if super::wait_until(Duration::from_secs(30), || t.is_finished()) {
                let _ = t.join();
            }
        }
    }
}

/// Opens `n` connections at once (from `src` if given) and reads each one's first reply:
/// the admitted ones (220), and the refusals' texts (421, then closed).
pub fn knock(g: &Group, n: usize, src: Option<[u8; 4]>) -> (Vec<Client>, Vec<String>) {
    let clients: Vec<Client> = (0..n)
        .map(|_| match src {
            Some(s) => g.raw_from(s),
            None => g.raw(),
        })
        .collect();
    let (mut inside, mut refused) = (Vec::new(), Vec::new());
    for mut c in clients {
        let r = c.read_reply();
        match r.code {
            220 => inside.push(c),
            421 => {
                assert!(c.closed_by_server(), "{:?} left open", r.lines);
                refused.push(r.lines[0].clone());
            }
            _ => panic!("first reply {:?}", r.lines),
        }
    }
    (inside, refused)
}

#[track_caller]
pub fn assert_sessions_open(g: &Group, n: u64) {
    assert!(
        super::wait_until(PATIENCE, || g.stats.sessions_open() == n),
        "sessions_open {} instead of {n}; stray sessions {:?}",
        g.stats.sessions_open(),
        g.strays()
    );
}

/// A connection's first reply line, or None when the connection is refused or reset (as
/// those queued at the listener of a reactor that stopped are). Reads byte by byte, so
/// nothing past the line is lost to a buffer.
pub fn try_connect(g: &Group) -> Option<(Client, String)> {
    let s = TcpStream::connect(g.addr).ok()?;
    s.set_read_timeout(Some(PATIENCE)).ok()?;
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while !line.ends_with(b"\r\n") {
        match (&s).read(&mut byte) {
            Ok(1) => line.push(byte[0]),
            _ => return None,
        }
    }
    let line = String::from_utf8_lossy(&line).trim_end().to_string();
    Some((g.mine(Client::from_stream(s)), line))
}

/// A connection past its 220, trying again while connections are reset; the refusal's
/// text when one comes instead.
pub fn connect_retrying(g: &Group) -> Result<Client, String> {
    for _ in 0..20 {
        match try_connect(g) {
            Some((c, line)) if line.starts_with("220 ") => return Ok(c),
            Some((_, line)) => return Err(line),
            None => std::thread::sleep(Duration::from_millis(50)),
        }
    }
    panic!("no reply from {} in 20 tries", g.addr);
}

/// Descriptors the test process holds.
pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// The descriptor count once it has held still for a second. The worker threads of the
/// groups of earlier tests end on their own time (nobody waits for them), each releasing
/// a descriptor as it goes; the caller sees to it that nothing else runs meanwhile.
pub fn settled_fds() -> usize {
    let end = Instant::now() + PATIENCE;
    let mut last = open_fds();
    let mut since = Instant::now();
    while since.elapsed() < Duration::from_secs(1) && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(50));
        let n = open_fds();
        if n != last {
            (last, since) = (n, Instant::now());
        }
    }
    last
}

#[track_caller]
pub fn assert_fds(before: usize) {
    assert!(
        super::wait_until(PATIENCE, || open_fds() == before),
        "{before} descriptors before, {} after",
        open_fds()
    );
}
