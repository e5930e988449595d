//! The sans-IO session core driven like its owner drives it: command lines (and lines too
//! long), clock steps, storage completions, data-channel and TLS events in any order the
//! owner could produce, over the in-memory storage.
//!
//! Invariants, checked after every step:
//! - every reply is well-formed: three digits, then a space or (multi-line) a hyphen, and
//!   the text, ending in CRLF with no LF inside and any other CR followed by NUL (RFC 854);
//!   a multi-line reply ends with a line of the same code and a space;
//! - every line handed to the session gets exactly one final (2xx to 5xx) reply, in order,
//!   once the session has nothing left to wait for (fewer only if the session closed);
//! - every path handed to the storage is absolute and normalised (no `.`, `..` or empty
//!   parts): nothing outside the user's root is ever reached;
//! - an active data connection only ever goes to the client's own address, on a port
//!   above 1023 (no FTP bounce);
//! - nothing panics.
#![no_main]

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use ftpdlib::control::command::is_urgent;
use ftpdlib::control::session::{Action, DataFailure, Direction, Request, Source, TransferError};
use ftpdlib::filesystem::{
    ftpnorm, DirStream, FileReader, FileWriter, Filesystem, MemoryStore, Stat, WriteMode,
};
use ftpdlib::{Config, DummyAuthorizer, Session, TlsConfig};
use libfuzzer_sys::fuzz_target;

/// One thing the owner does next.
///
/// The input is a script of lines (split at LF). A line is a command line for the
/// session, except one that starts with NUL: then its next byte is an owner event and the
/// rest its argument:
///
/// | byte | event |
/// |---|---|
/// | `h` / `a` | hold: the events below come only when the script says; auto (the start): after each line every request completes, the data connection comes and the transfer ends with a few bytes |
/// | `c` | the oldest storage request completes |
/// | `t` digits | the clock moves on by that many milliseconds (`T`: times 64) |
/// | `p` / `s` | the client (or a stranger) connects to the passive listener |
/// | `k` / `K` | the active connection succeeds / fails |
/// | `x` | nobody came to the passive listener in time |
/// | `f` bytes | the transfer ends, having received these bytes (`F`: reset, `S`: stalled) |
/// | `l` | the TLS switch the session asked for is done |
/// | `L` | a line longer than the server takes |
/// | `q` | the client goes away |
///
/// So the seed corpus is plain FTP sessions (fuzz/seeds/session/), and the fuzzer mutates
/// them into orderings only a hostile client or a slow storage would produce.
#[derive(Debug)]
enum Step {
    Line(Vec<u8>),
    Hold(bool),
    TooLong,
    Tick(u64),
    Complete,
    Accept { stranger: bool },
    Connected { ok: bool },
    AcceptTimeout,
    Finish { data: Vec<u8>, fail: u8 },
    TlsDone,
    Hangup,
}

fn parse_step(line: &[u8]) -> Step {
    let Some(rest) = line.strip_prefix(b"\0") else {
        return Step::Line(line.to_vec());
    };
    let arg = rest.get(1..).unwrap_or(&[]);
    let number = || {
        arg.iter()
            .take_while(|b| b.is_ascii_digit())
            .fold(0u64, |n, &b| (n * 10 + u64::from(b - b'0')).min(1 << 32))
    };
    match rest.first() {
        Some(b'h') => Step::Hold(true),
        Some(b'a') => Step::Hold(false),
        Some(b'c') => Step::Complete,
        Some(b't') => Step::Tick(number()),
        Some(b'T') => Step::Tick(number() * 64),
        Some(b'p') => Step::Accept { stranger: false },
        Some(b's') => Step::Accept { stranger: true },
        Some(b'k') => Step::Connected { ok: true },
        Some(b'K') => Step::Connected { ok: false },
        Some(b'x') => Step::AcceptTimeout,
        Some(b'f') => Step::Finish {
            data: arg.to_vec(),
            fail: 0,
        },
        Some(b'F') => Step::Finish {
            data: arg.to_vec(),
            fail: 1,
        },
        Some(b'S') => Step::Finish {
            data: arg.to_vec(),
            fail: 2,
        },
        Some(b'l') => Step::TlsDone,
        Some(b'L') => Step::TooLong,
        Some(b'q') => Step::Hangup,
        _ => Step::Line(line.to_vec()),
    }
}

/// What the owner holds for the session: the data channel and what it waits for.
#[derive(Debug, PartialEq)]
enum Data {
    None,
    Listening,
    Connecting,
    Connected,
}

struct Owner {
    s: Session,
    now: Instant,
    data: Data,
    transfer: Option<Direction>,
    requests: VecDeque<Request>,
    tls_switch: bool,
    /// Whether events wait for the script (else they follow each line at once).
    hold: bool,
    /// Lines handed to the session, and final replies seen.
    lines: usize,
    finals: usize,
    /// A multi-line reply being read: its code.
    open_multiline: Option<[u8; 3]>,
    /// Output not yet a whole line.
    partial: Vec<u8>,
    closed: bool,
}

fn peer() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 50000))
}

/// A storage that checks every path it is handed, then asks the in-memory one.
#[derive(Debug)]
struct Checked(Box<dyn Filesystem>);

fn check(path: &Path) {
    use std::os::unix::ffi::OsStrExt;
    let bytes = path.as_os_str().as_bytes();
    assert_eq!(
        bytes.first(),
        Some(&b'/'),
        "relative path {path:?} reached the storage"
    );
    assert_eq!(
        ftpnorm(b"/", bytes),
        bytes,
        "path {path:?} reached the storage unnormalised"
    );
}

impl Filesystem for Checked {
    fn stat(&self, p: &Path) -> io::Result<Stat> {
        check(p);
        self.0.stat(p)
    }
    fn lstat(&self, p: &Path) -> io::Result<Stat> {
        check(p);
        self.0.lstat(p)
    }
    fn read_dir(&self, p: &Path) -> io::Result<Box<dyn DirStream>> {
        check(p);
        self.0.read_dir(p)
    }
    fn open_read(&self, p: &Path, offset: u64) -> io::Result<Box<dyn FileReader>> {
        check(p);
        self.0.open_read(p, offset)
    }
    fn open_write(&self, p: &Path, mode: WriteMode) -> io::Result<Box<dyn FileWriter>> {
        check(p);
        self.0.open_write(p, mode)
    }
    fn mkdir(&self, p: &Path) -> io::Result<()> {
        check(p);
        self.0.mkdir(p)
    }
    fn rmdir(&self, p: &Path) -> io::Result<()> {
        check(p);
        self.0.rmdir(p)
    }
    fn remove(&self, p: &Path) -> io::Result<()> {
        check(p);
        self.0.remove(p)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        check(from);
        check(to);
        self.0.rename(from, to)
    }
    fn chmod(&self, p: &Path, mode: u32) -> io::Result<()> {
        check(p);
        self.0.chmod(p, mode)
    }
    fn set_mtime(&self, p: &Path, secs: i64) -> io::Result<()> {
        check(p);
        self.0.set_mtime(p, secs)
    }
    fn real_path(&self, p: &Path) -> PathBuf {
        check(p);
        self.0.real_path(p)
    }
    fn is_inline(&self) -> bool {
        self.0.is_inline()
    }
}

/// The settings every run shares: users `user` (everything), `ro` (read) and anonymous,
/// FTPS offered with the test certificate.
fn config() -> Arc<Config> {
    static CONFIG: OnceLock<Arc<Config>> = OnceLock::new();
    Arc::clone(CONFIG.get_or_init(|| {
        let home = std::env::temp_dir();
        let mut auth = DummyAuthorizer::new();
        auth.add_user("user", "pw", &home, "elradfmwMT")
            .expect("temp dir exists");
        auth.add_user("ro", "pw", &home, "elr")
            .expect("temp dir exists");
        auth.add_anonymous(&home, "elr").expect("temp dir exists");
        let data = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/data/");
        let tls = TlsConfig::from_pem_files(format!("{data}cert.pem"), format!("{data}key.pem"))
            .expect("the test certificate loads");
        let mut config = Config::new(Arc::new(auth));
        config.tls = Some(tls);
        Arc::new(config)
    }))
}

impl Owner {
    fn new() -> Owner {
        let mut config = (*config()).clone();
        // A fresh store per run, so runs do not depend on each other.
        let store = MemoryStore::new();
        config.filesystem = Arc::new(move |home: &Path| {
            Ok(Arc::new(Checked(Box::new(store.filesystem(home)?))) as Arc<dyn Filesystem>)
        });
        let now = Instant::now();
        let local = SocketAddr::from(([127, 0, 0, 1], 21));
        let mut o = Owner {
            s: Session::new(Arc::new(config), peer(), local, now),
            now,
            data: Data::None,
            transfer: None,
            requests: VecDeque::new(),
            tls_switch: false,
            hold: false,
            lines: 0,
            finals: 0,
            open_multiline: None,
            partial: Vec::new(),
            closed: false,
        };
        o.settle();
        assert_eq!(o.finals, 1, "one greeting");
        o.finals = 0;
        o
    }

    /// Hands a line over if the channel would: when the session takes commands, or takes
    /// this urgent one (ABOR, QUIT) while busy.
    fn line(&mut self, line: &[u8]) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if self.closed {
            return;
        }
        if self.s.accepts_commands() || (self.s.accepts_urgent() && is_urgent(line)) {
            if std::env::var_os("FUZZ_DEBUG").is_some() {
                eprintln!("-> {:?}", String::from_utf8_lossy(line));
            }
            self.lines += 1;
            self.s.handle_line(self.now, line);
        }
    }

    fn step(&mut self, step: Step) {
        match step {
            Step::Line(l) => {
                self.line(&l);
                if !self.hold {
                    self.settle();
                    self.cooperate();
                }
            }
            Step::Hold(h) => self.hold = h,
            Step::TooLong => {
                if !self.closed && self.s.accepts_commands() {
                    self.lines += 1;
                    self.s.handle_line_too_long(self.now);
                }
            }
            Step::Tick(ms) => {
                self.now += Duration::from_millis(ms);
                if self.s.poll_timeout().is_some_and(|t| t <= self.now) {
                    self.s.handle_timeout(self.now);
                }
            }
            Step::Complete => {
                if let Some(r) = self.requests.pop_front() {
                    let id = r.id;
                    let c = r.run();
                    self.s.handle_completion(self.now, id, c);
                }
            }
            Step::Accept { stranger } => {
                if self.data == Data::Listening {
                    if stranger {
                        let from = SocketAddr::from(([10, 9, 8, 7], 40000));
                        self.s
                            .handle_data_failed(self.now, DataFailure::ForeignPeer(from));
                    } else {
                        self.data = Data::Connected;
                    }
                }
            }
            Step::Connected { ok } => {
                if self.data == Data::Connecting {
                    if ok {
                        self.data = Data::Connected;
                        self.s.handle_data_connected(self.now);
                    } else {
                        self.data = Data::None;
                        self.transfer = None;
                        let e = io::Error::from(io::ErrorKind::ConnectionRefused);
                        self.s
                            .handle_data_failed(self.now, DataFailure::ConnectFailed(e));
                    }
                }
            }
            Step::AcceptTimeout => {
                if self.data == Data::Listening {
                    self.data = Data::None;
                    self.transfer = None;
                    self.s
                        .handle_data_failed(self.now, DataFailure::AcceptTimeout);
                }
            }
            Step::Finish { data, fail } => self.finish(&data, fail),
            Step::TlsDone => self.tls_done(),
            Step::Hangup => {
                if !self.closed {
                    self.s.handle_closed(self.now, None);
                    self.closed = true;
                }
            }
        }
        self.settle();
    }

    fn tls_done(&mut self) {
        if std::mem::take(&mut self.tls_switch) {
            if self.s.control_tls() {
                self.s.handle_tls_ended(self.now);
            } else {
                self.s.handle_tls_started(self.now);
            }
        }
    }

    /// Runs the attached transfer to its end, as the data channel would.
    fn finish(&mut self, data: &[u8], fail: u8) {
        if self.data != Data::Connected {
            return;
        }
        let Some(direction) = self.transfer.take() else {
            return;
        };
        self.data = Data::None;
        let mut moved = 0u64;
        let result = match direction {
            Direction::Receive(mut w) => w
                .write_all(data)
                .and_then(|()| w.finish())
                .map(|()| moved = data.len() as u64)
                .map_err(TransferError::File),
            Direction::Send(Source::File { mut file, .. }) => {
                let mut buf = Vec::new();
                let r = file.by_ref().take(1 << 20).read_to_end(&mut buf);
                moved = buf.len() as u64;
                r.map(|_| ()).map_err(TransferError::File)
            }
            Direction::Send(Source::Listing(mut listing)) => {
                let mut r = Ok(());
                for _ in 0..64 {
                    match listing.next_chunk(1 << 16) {
                        Ok(Some(chunk)) => moved += chunk.len() as u64,
                        Ok(None) => break,
                        Err(e) => {
                            r = Err(TransferError::File(e));
                            break;
                        }
                    }
                }
                r
            }
        };
        let result = match fail % 4 {
            1 => Err(TransferError::Connection(
                io::ErrorKind::ConnectionReset.into(),
            )),
            2 => Err(TransferError::Stalled),
            _ => result,
        };
        self.s.handle_transfer_done(self.now, moved, result);
    }

    /// Takes the session's actions as the owner would, and checks its output.
    fn settle(&mut self) {
        while let Some(a) = self.s.poll_action() {
            match a {
                Action::CloseData => {
                    let running = self.data == Data::Connected && self.transfer.is_some();
                    self.data = Data::None;
                    self.transfer = None;
                    self.s.handle_data_closed(self.now, running.then_some(0));
                }
                Action::Listen { extended } => {
                    self.data = Data::Listening;
                    let addr = SocketAddr::from(([127, 0, 0, 1], 40001));
                    self.s.handle_passive_ready(self.now, Ok(addr), extended);
                }
                Action::Connect(addr) => {
                    assert_eq!(addr.ip(), peer().ip(), "bounce: connect to {addr}");
                    assert!(addr.port() >= 1024, "connect to privileged port {addr}");
                    self.data = Data::Connecting;
                }
                Action::Transfer(t) => {
                    if self.data == Data::None {
                        let e = io::Error::from(io::ErrorKind::NotConnected);
                        self.s
                            .handle_transfer_done(self.now, 0, Err(TransferError::Connection(e)));
                    } else {
                        self.transfer = Some(t.direction);
                    }
                }
                Action::Close => self.closed = true,
                Action::LoginFailed => {}
                Action::StartTls | Action::EndTls => self.tls_switch = true,
                Action::Request(r) => self.requests.push_back(r),
            }
        }
        let n = self.s.output().len();
        let out = self.s.output().to_vec();
        self.s.consume_output(n);
        self.read_replies(&out);
        assert!(
            self.finals <= self.lines + 1,
            "{} final replies to {} lines",
            self.finals,
            self.lines
        );
    }

    /// Checks the framing of the replies in `out` and counts the final ones.
    fn read_replies(&mut self, out: &[u8]) {
        self.partial.extend_from_slice(out);
        while let Some(end) = self.partial.windows(2).position(|w| w == b"\r\n") {
            let line: Vec<u8> = self.partial.drain(..end + 2).collect();
            let line = &line[..line.len() - 2];
            if std::env::var_os("FUZZ_DEBUG").is_some() {
                eprintln!("<- {:?}", String::from_utf8_lossy(line));
            }
            let bare_cr = line
                .iter()
                .enumerate()
                .any(|(i, &b)| b == b'\r' && line.get(i + 1) != Some(&0));
            assert!(
                !line.contains(&b'\n') && !bare_cr,
                "LF or a bare CR inside a reply line: {:?}",
                String::from_utf8_lossy(line)
            );
            let head = line.get(..4);
            let code_sep = head.filter(|h| h[..3].iter().all(u8::is_ascii_digit));
            match (self.open_multiline, code_sep) {
                (Some(code), Some(h)) if h[..3] == code && h[3] == b' ' => {
                    self.open_multiline = None;
                    self.count(code);
                }
                (Some(_), _) => {}
                (None, Some(h)) if h[3] == b' ' => self.count([h[0], h[1], h[2]]),
                (None, Some(h)) if h[3] == b'-' => self.open_multiline = Some([h[0], h[1], h[2]]),
                (None, _) => panic!("malformed reply line {:?}", String::from_utf8_lossy(line)),
            }
        }
        assert!(
            !self.partial.contains(&b'\n'),
            "LF without CR in {:?}",
            self.partial
        );
    }

    fn count(&mut self, code: [u8; 3]) {
        assert!((b'1'..=b'5').contains(&code[0]), "reply code {:?}", code);
        if code[0] != b'1' {
            self.finals += 1;
        }
    }

    /// What a well-behaved client and a quick storage do next: every request completes,
    /// the TLS switch happens, the data connection comes and the transfer moves a few bytes.
    fn cooperate(&mut self) {
        for _ in 0..16 {
            self.step(Step::Complete);
            self.step(Step::TlsDone);
            self.step(Step::Accept { stranger: false });
            self.step(Step::Connected { ok: true });
            self.step(Step::Finish {
                data: b"data\r\n".to_vec(),
                fail: 0,
            });
        }
    }

    /// Lets everything outstanding finish, then checks one final reply per line.
    fn quiesce(&mut self) {
        self.cooperate();
        // Delayed replies (a failed login's 530) come out; the idle timeout is not reached.
        self.step(Step::Tick(10_000));
        self.cooperate();
        if self.closed || self.s.is_closed() {
            return;
        }
        if self.requests.is_empty() && self.s.accepts_commands() {
            assert!(self.open_multiline.is_none() && self.partial.is_empty());
            // A transfer command given before PASV or PORT waits for one, its 150 sent.
            let waiting = usize::from(self.s.transfer_pending());
            assert_eq!(
                self.finals + waiting,
                self.lines,
                "one final reply per command"
            );
        }
    }
}

fuzz_target!(|script: &[u8]| {
    let mut o = Owner::new();
    for line in script.split(|&b| b == b'\n').take(200) {
        o.step(parse_step(line));
    }
    o.quiesce();
});
