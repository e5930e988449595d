//! Shared pieces of the integration tests: a temporary directory, a server on a thread,
//! and a raw-line FTP client that checks exact reply codes.
#![allow(dead_code)]

pub mod accounts;
pub mod ceph;
pub mod faulty;
pub mod group;
pub mod offloaded;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Once};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ftpdlib::{Config, DummyAuthorizer, FtpServer, StopHandle};

/// Installs a logger once per test binary (`RUST_LOG=ftpdlib=debug` to see the wire).
pub fn init() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = env_logger::builder().is_test(true).try_init();
    });
}

/// A directory removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        Self::new_in(&std::env::temp_dir(), tag)
    }

    /// A directory under `base` (say a tmpfs, to keep the disk out of a measurement).
    pub fn new_in(base: &Path, tag: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::SeqCst);
        let p = base.join(format!("ftpdlib-it-{}-{tag}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("create temp dir");
        TempDir(p.canonicalize().expect("canonical temp dir"))
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn join(&self, p: &str) -> PathBuf {
        self.0.join(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Deterministic pseudo-random bytes (xorshift), so failures reproduce.
pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A text of `len` bytes with bare LFs, CRLFs and lone CRs, and what TYPE A makes of it (bare
/// LF to CRLF). Buffered downloads read files in chunks of a power of two of 4 KiB or more:
/// at every multiple of 8 KiB a CRLF is cut in two, and at every other multiple of 4 KiB a
/// bare LF opens the chunk.
pub fn text_and_crlf(len: usize, seed: u64) -> (Vec<u8>, Vec<u8>) {
    let mut text: Vec<u8> = random_bytes(len, seed)
        .into_iter()
        .map(|b| match b % 16 {
            0 => b'\n',
            1 => b'\r',
            _ => b'a' + b % 26,
        })
        .collect();
    for at in (4096..len).step_by(4096) {
        text[at - 1] = if at % 8192 == 0 { b'\r' } else { b'x' };
        text[at] = b'\n';
    }
    let mut crlf = Vec::with_capacity(len * 2);
    let mut prev = 0u8;
    for &b in &text {
        if b == b'\n' && prev != b'\r' {
            crlf.push(b'\r');
        }
        crlf.push(b);
        prev = b;
    }
    (text, crlf)
}

/// Asserts two byte strings are equal without printing megabytes when they are not.
#[track_caller]
pub fn assert_same(got: &[u8], want: &[u8]) {
    if got != want {
        let first = got
            .iter()
            .zip(want)
            .position(|(a, b)| a != b)
            .unwrap_or(got.len().min(want.len()));
        panic!(
            "bytes differ: got {} bytes, want {}, first difference at {first}",
            got.len(),
            want.len()
        );
    }
}

/// A server running on its own thread; stopped and joined when dropped.
pub struct TestServer {
    pub addr: SocketAddr,
    pub root: TempDir,
    stop: StopHandle,
    thread: Option<JoinHandle<()>>,
}

impl TestServer {
    /// The standard setup: "user"/"pass" with every permission, "ro"/"pass" read-only, and
    /// anonymous read-only, all rooted in a fresh directory; no failed-login delay.
    pub fn start() -> TestServer {
        Self::start_with(|_, _| {})
    }

    /// Like [`start`], letting the test adjust the settings and the server.
    pub fn start_with(
        tweak: impl FnOnce(&mut Config, &mut FtpServer) + Send + 'static,
    ) -> TestServer {
        Self::start_at("127.0.0.1:0", tweak)
    }

    pub fn start_at(
        addr: &str,
        tweak: impl FnOnce(&mut Config, &mut FtpServer) + Send + 'static,
    ) -> TestServer {
        Self::start_in(addr, TempDir::new("root"), tweak)
    }

    /// Like [`start_at`], serving `root`.
    pub fn start_in(
        addr: &str,
        root: TempDir,
        tweak: impl FnOnce(&mut Config, &mut FtpServer) + Send + 'static,
    ) -> TestServer {
        init();
        let mut auth = DummyAuthorizer::new();
        auth.add_user("user", "pass", root.path(), "elradfmwMT")
            .unwrap();
        auth.add_user("ro", "pass", root.path(), "elr").unwrap();
        auth.add_anonymous(root.path(), "elr").unwrap();
        let mut config = Config::new(Arc::new(auth));
        config.auth_failed_timeout = Duration::ZERO;
        let mut server = FtpServer::bind(addr, Config::default()).expect("bind");
        tweak(&mut config, &mut server);
        server.set_config(config);
        let addr = server.local_addrs()[0];
        let stop = server.stop_handle();
        let thread = std::thread::spawn(move || {
            server.serve_forever(None, None).expect("serve_forever");
        });
        TestServer {
            addr,
            root,
            stop,
            thread: Some(thread),
        }
    }

    pub fn url(&self, user: &str, path: &str) -> String {
        format!(
            "ftp://{user}:pass@{}:{}/{path}",
            self.addr.ip(),
            self.addr.port()
        )
    }

    pub fn client(&self) -> Client {
        Client::connect(self.addr)
    }

    pub fn login(&self, user: &str) -> Client {
        let mut c = self.client();
        c.login(user, "pass");
        c
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop.close_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A reply read from the control connection.
#[derive(Debug, Clone)]
pub struct Reply {
    pub code: u16,
    /// Every line, CRLF removed.
    pub lines: Vec<String>,
}

impl Reply {
    pub fn text(&self) -> String {
        self.lines.join("\n")
    }
}

/// A raw FTP client: write exact bytes, read whole replies.
pub struct Client {
    pub stream: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let reader = BufReader::new(stream.try_clone().unwrap());
        let mut c = Client { stream, reader };
        c.expect(220);
        c
    }

    /// A client over a stream the test made itself; reads nothing on connect.
    pub fn from_stream(stream: TcpStream) -> Client {
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let reader = BufReader::new(stream.try_clone().unwrap());
        Client { stream, reader }
    }

    /// A client that reads nothing on connect (for refused connections).
    pub fn connect_raw(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let reader = BufReader::new(stream.try_clone().unwrap());
        Client { stream, reader }
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write");
    }

    /// Sends one command line: text or raw bytes (names that are not UTF-8), CRLF added.
    pub fn send(&mut self, line: impl AsRef<[u8]>) {
        let mut bytes = line.as_ref().to_vec();
        bytes.extend_from_slice(b"\r\n");
        self.send_raw(&bytes);
    }

    /// Reads one whole reply (multi-line ones included).
    pub fn read_reply(&mut self) -> Reply {
        let mut lines = Vec::new();
        let mut first = String::new();
        self.reader.read_line(&mut first).expect("read reply");
        assert!(
            first.ends_with("\r\n"),
            "reply line without CRLF: {first:?}"
        );
        let first = first.trim_end_matches("\r\n").to_string();
        assert!(first.len() >= 4, "short reply line {first:?}");
        let code: u16 = first[..3]
            .parse()
            .unwrap_or_else(|_| panic!("bad reply {first:?}"));
        let multi = first.as_bytes()[3] == b'-';
        lines.push(first);
        if multi {
            loop {
                let mut l = String::new();
                let n = self.reader.read_line(&mut l).expect("read reply line");
                assert!(n > 0, "connection closed inside a multi-line reply");
                let l = l.trim_end_matches("\r\n").to_string();
                let done = l.starts_with(&format!("{code} "));
                lines.push(l);
                if done {
                    break;
                }
            }
        }
        Reply { code, lines }
    }

    /// Reads a reply and checks its code.
    pub fn expect(&mut self, code: u16) -> Reply {
        let r = self.read_reply();
        assert_eq!(r.code, code, "expected {code}, got {:?}", r.lines);
        r
    }

    /// Sends a command and checks the reply code.
    pub fn cmd(&mut self, line: impl AsRef<[u8]>, code: u16) -> Reply {
        let line = line.as_ref();
        self.send(line);
        let r = self.read_reply();
        let shown = String::from_utf8_lossy(line);
        assert_eq!(
            r.code, code,
            "{shown:?}: expected {code}, got {:?}",
            r.lines
        );
        r
    }

    pub fn login(&mut self, user: &str, pass: &str) {
        self.cmd(format!("USER {user}"), 331);
        self.cmd(format!("PASS {pass}"), 230);
    }

    /// PASV: returns the address to connect to.
    pub fn pasv(&mut self) -> SocketAddr {
        let r = self.cmd("PASV", 227);
        let text = &r.lines[0];
        let inner = &text[text.find('(').unwrap() + 1..text.find(')').unwrap()];
        let n: Vec<u16> = inner.split(',').map(|x| x.parse().unwrap()).collect();
        let ip = Ipv4Addr::new(n[0] as u8, n[1] as u8, n[2] as u8, n[3] as u8);
        SocketAddr::new(IpAddr::V4(ip), n[4] * 256 + n[5])
    }

    /// EPSV: returns the address to connect to (the control peer with the given port).
    pub fn epsv(&mut self) -> SocketAddr {
        let r = self.cmd("EPSV", 229);
        let text = &r.lines[0];
        let inner = &text[text.find("(|||").unwrap() + 4..text.rfind("|)").unwrap()];
        SocketAddr::new(
            self.stream.peer_addr().unwrap().ip(),
            inner.parse().unwrap(),
        )
    }

    /// Runs a download-type command over PASV and returns the bytes.
    pub fn retr(&mut self, line: impl AsRef<[u8]>) -> Vec<u8> {
        let line = line.as_ref();
        let addr = self.pasv();
        let mut data = TcpStream::connect(addr).expect("data connect");
        self.send(line);
        let r = self.read_reply();
        let shown = String::from_utf8_lossy(line);
        assert!(r.code == 150 || r.code == 125, "{shown}: {:?}", r.lines);
        let mut out = Vec::new();
        data.read_to_end(&mut out).expect("read data");
        self.expect(226);
        out
    }

    /// Runs an upload-type command over PASV.
    pub fn stor(&mut self, line: impl AsRef<[u8]>, bytes: &[u8]) -> Reply {
        let line = line.as_ref();
        let addr = self.pasv();
        let mut data = TcpStream::connect(addr).expect("data connect");
        self.send(line);
        let r = self.read_reply();
        let shown = String::from_utf8_lossy(line);
        assert!(r.code == 150 || r.code == 125, "{shown}: {:?}", r.lines);
        data.write_all(bytes).expect("write data");
        data.shutdown(Shutdown::Write).unwrap();
        drop(data);
        let done = self.expect(226);
        let _ = r;
        done
    }

    /// Whether the server closed the control connection (EOF within the timeout).
    pub fn closed_by_server(&mut self) -> bool {
        self.stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut buf = [0u8; 256];
        loop {
            match self.reader.read(&mut buf) {
                Ok(0) => return true,
                Ok(_) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
                Err(_) => return false,
            }
        }
    }
}

/// Listens on a loopback port for an active (PORT) connection.
pub fn active_listener() -> (TcpListener, String) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    (l, format!("127,0,0,1,{},{}", port >> 8, port & 0xff))
}

/// Runs a client and fails the test, with its output, unless it succeeds.
pub fn run(cmd: &mut Command) -> std::process::Output {
    let out = cmd.output().expect("run client");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// curl, quiet but for errors, bounded in time.
pub fn curl() -> Command {
    let mut c = Command::new("curl");
    c.args(["--silent", "--show-error", "--max-time", "120"]);
    c
}

/// Writes one random file per size into `dir` (`file-<size>.bin`) and returns the names
/// with their bytes; `seed` keeps the files of different tests apart.
pub fn write_files(dir: &Path, sizes: &[usize], seed: u64) -> Vec<(String, Vec<u8>)> {
    sizes
        .iter()
        .enumerate()
        .map(|(i, &n)| {
            let name = format!("file-{n}.bin");
            let body = random_bytes(n, i as u64 + seed);
            std::fs::write(dir.join(&name), &body).unwrap();
            (name, body)
        })
        .collect()
}

/// A port free on 127.0.0.1 for a server a test starts on a port number of its own choosing
/// (a command-line flag, a config file), where binding port 0 and asking is not possible.
///
/// Taken below the kernel's ephemeral range (32768 and up on Linux), so no outgoing
/// connection and no passive listener bound to port 0, in this process or another, can be
/// handed it between this check and the server's bind. Each test process draws from its
/// own window of 200 ports (by process id), in turn, so two tests never draw the same one.
/// The window stops under 20000, where tests/group.rs takes its passive port ranges.
pub fn free_port() -> u16 {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    const WINDOW: usize = 200;
    let base = 10_000 + (std::process::id() as usize % 50) * WINDOW;
    for _ in 0..WINDOW {
        let port = base + NEXT.fetch_add(1, Ordering::Relaxed) % WINDOW;
        // Under 20000, so it fits a u16.
        let port = port as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port in 127.0.0.1:{base}..{}", base + WINDOW);
}

/// Whether a command-line tool is on the PATH.
pub fn have(tool: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// Fails under CI (env CI set) when a tool is missing; elsewhere says so and returns false.
pub fn require(tool: &str) -> bool {
    if have(tool) {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!("{tool} is required under CI; .ci/run installs it");
    }
    eprintln!("skipping: {tool} is not installed (.ci/run installs it)");
    false
}

/// Waits until `f` holds or `limit` passes.
pub fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    f()
}

/// Connects to `dst` from the loopback address `src`.
pub fn connect_from(src: [u8; 4], dst: SocketAddr) -> TcpStream {
    // SAFETY: plain socket calls on a descriptor this function owns until it is handed to
    // TcpStream, which then closes it.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0);
        let mut sa: libc::sockaddr_in = std::mem::zeroed();
        sa.sin_family = libc::AF_INET as libc::sa_family_t;
        sa.sin_addr.s_addr = u32::from_ne_bytes(src);
        let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        assert_eq!(
            libc::bind(fd, &sa as *const _ as *const libc::sockaddr, len),
            0,
            "bind {src:?}"
        );
        let SocketAddr::V4(d) = dst else {
            panic!("IPv4 only")
        };
        sa.sin_addr.s_addr = u32::from_ne_bytes(d.ip().octets());
        sa.sin_port = d.port().to_be();
        assert_eq!(
            libc::connect(fd, &sa as *const _ as *const libc::sockaddr, len),
            0,
            "connect {dst}"
        );
        std::os::fd::FromRawFd::from_raw_fd(fd)
    }
}

/// Closes `stream` with a reset (SO_LINGER of zero), as a client that crashes or gives up
/// does.
pub fn reset_close(stream: std::net::TcpStream) {
    use std::os::fd::AsRawFd;
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid socket of `stream` and a pointer to a local of the size given.
    let rc = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &linger as *const libc::linger as *const libc::c_void,
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "SO_LINGER: {}", std::io::Error::last_os_error());
    drop(stream);
}
