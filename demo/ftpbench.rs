//! ftpbench: a benchmark client for FTP servers.
//!
//! It points at any FTP server (ftpdlib or another) and measures a fixed set
//! of workloads: single-stream STOR/RETR throughput, many clients logging in,
//! transfers with many idle sessions, many concurrent RETR/STOR/QUIT, small
//! operations (logins and LIST per second) and, with `--pid`, the server's
//! resident memory.  With `--loopback-limit` it instead measures how fast this
//! machine can move a file over 127.0.0.1 with sendfile(2), the ceiling that
//! any server's RETR is compared with.
//!
//! Concurrent workloads run on one thread with a mio event loop, non-blocking
//! sockets and a shared 1 MiB buffer, so the client stays cheap next to the
//! server.  Single-stream workloads use plain blocking sockets.  Every loop is
//! bounded in count and in time: each workload has a deadline (`--timeout`,
//! 120 s by default) after which it is reported as failed and the next one
//! starts.
//!
//! Run `cargo run --release --example ftpbench -- --help` for the flags.

use mio::net::TcpStream as MioStream;
use mio::{Events, Interest, Poll, Token};
use std::collections::HashMap;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::os::unix::io::AsRawFd;
use std::process;
use std::thread;
use std::time::{Duration, Instant};

const MIB: u64 = 1024 * 1024;
/// Size of the buffers used to read and write data connections.
const IO_BUF: usize = 1024 * 1024;
/// Small-operation loops stop after this long or after as many operations
/// as `LOGIN_MAX_OPS` / `LIST_MAX_OPS`, whichever comes first.
const SMALL_SECS: f64 = 2.0;
const LOGIN_MAX_OPS: usize = 2000;
const LIST_MAX_OPS: usize = 500;
/// Single-stream transfers repeat until they took this long in total, and at
/// least / at most this many times.
const STREAM_MIN_SECS: f64 = 1.0;
const STREAM_MIN_REPS: u64 = 3;
const STREAM_MAX_REPS: u64 = 50;
/// Number of files in the directory listed by the LIST workload.
const LIST_FILES: usize = 1000;
/// How often the server's memory is sampled during concurrent transfers.
const RSS_SAMPLE: Duration = Duration::from_millis(250);

type Res<T> = Result<T, String>;

// ---------------------------------------------------------------------------
// Command line
// ---------------------------------------------------------------------------

const USAGE: &str = "\
ftpbench: benchmark an FTP server over 127.0.0.1 (or another host you run)

USAGE: ftpbench [OPTIONS]

OPTIONS:
  --host HOST          server address (default 127.0.0.1)
  --port PORT          server port (default 21)
  --user USER          user name (default anonymous)
  --pass PASS          password (default ftpbench@)
  -n, --clients N      sessions for the concurrent workloads (default 200)
  --size-mb MB         file size of the single-stream workloads in MiB (default 100)
  --conc-size-mb MB    file size of the concurrent RETR/STOR workloads in MiB (default 10)
  --connect-window K   at most K sessions connecting and not yet greeted at a
                       time while logging in (default 32; keeps the client from
                       overrunning a small listen backlog)
  --dir PATH           remote directory (relative to the login directory) for test files
  --pid PID            server process id; its memory (VmRSS, summed over the
                       process and its children) is reported
  --only LIST          comma-separated workloads to run (default: all):
                         stor(1) retr(2) login(3) idle(4) cretr(5) cstor(6)
                         quit(7) small(8) rss(9); small = logins + list
  --timeout SECS       deadline of each workload (default 120)
  --json               print one JSON object per line instead of a table
  --loopback-limit     measure sendfile() throughput over 127.0.0.1 to a local
                       reader (uses --size-mb) and exit; no server is needed
  -v, --verbose        log progress to stderr
  -h, --help           show this text
";

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum W {
    Stor,
    Retr,
    Login,
    Idle,
    CRetr,
    CStor,
    Quit,
    Logins,
    List,
    Rss,
}

const ALL: [W; 10] = [
    W::Stor,
    W::Retr,
    W::Login,
    W::Idle,
    W::CRetr,
    W::CStor,
    W::Quit,
    W::Logins,
    W::List,
    W::Rss,
];

#[derive(Clone, Debug)]
struct Config {
    host: String,
    port: u16,
    user: String,
    pass: String,
    clients: usize,
    size_mb: u64,
    conc_size_mb: u64,
    connect_window: usize,
    dir: Option<String>,
    pid: Option<u32>,
    only: Vec<W>,
    timeout: Duration,
    json: bool,
    loopback_limit: bool,
    verbose: bool,
}

fn parse_workloads(s: &str) -> Res<Vec<W>> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let ws: &[W] = match part {
            "1" | "stor" => &[W::Stor],
            "2" | "retr" => &[W::Retr],
            "3" | "login" => &[W::Login],
            "4" | "idle" => &[W::Idle],
            "5" | "cretr" => &[W::CRetr],
            "6" | "cstor" => &[W::CStor],
            "7" | "quit" => &[W::Quit],
            "8" | "small" => &[W::Logins, W::List],
            "logins" => &[W::Logins],
            "list" => &[W::List],
            "9" | "rss" => &[W::Rss],
            "all" => &ALL,
            other => return Err(format!("unknown workload {other:?}")),
        };
        out.extend_from_slice(ws);
    }
    if out.is_empty() {
        return Err("--only needs at least one workload".into());
    }
    Ok(out)
}

fn parse_args(args: Vec<String>) -> Res<Config> {
    let mut cfg = Config {
        host: "127.0.0.1".into(),
        port: 21,
        user: "anonymous".into(),
        pass: "ftpbench@".into(),
        clients: 200,
        size_mb: 100,
        conc_size_mb: 10,
        connect_window: 32,
        dir: None,
        pid: None,
        only: ALL.to_vec(),
        timeout: Duration::from_secs(120),
        json: false,
        loopback_limit: false,
        verbose: false,
    };
    let mut it = args.into_iter();
    while let Some(arg) = it.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        let mut value = |name: &str| -> Res<String> {
            match inline.clone() {
                Some(v) => Ok(v),
                None => it.next().ok_or_else(|| format!("{name} needs a value")),
            }
        };
        fn num<T: std::str::FromStr>(name: &str, v: String) -> Res<T> {
            v.parse().map_err(|_| format!("{name}: bad number {v:?}"))
        }
        match flag.as_str() {
            "-h" | "--help" => {
                print!("{USAGE}");
                process::exit(0);
            }
            "--host" => cfg.host = value("--host")?,
            "--port" => cfg.port = num("--port", value("--port")?)?,
            "--user" => cfg.user = value("--user")?,
            "--pass" => cfg.pass = value("--pass")?,
            "-n" | "--clients" => cfg.clients = num("--clients", value("--clients")?)?,
            "--size-mb" => cfg.size_mb = num("--size-mb", value("--size-mb")?)?,
            "--conc-size-mb" => cfg.conc_size_mb = num("--conc-size-mb", value("--conc-size-mb")?)?,
            "--connect-window" => {
                cfg.connect_window = num("--connect-window", value("--connect-window")?)?
            }
            "--dir" => cfg.dir = Some(value("--dir")?.trim_end_matches('/').to_string()),
            "--pid" => cfg.pid = Some(num("--pid", value("--pid")?)?),
            "--only" => cfg.only = parse_workloads(&value("--only")?)?,
            "--timeout" => {
                let secs: f64 = num("--timeout", value("--timeout")?)?;
                if !(secs > 0.0 && secs < 86_400.0) {
                    return Err("--timeout must be between 0 and 86400 seconds".into());
                }
                cfg.timeout = Duration::from_secs_f64(secs);
            }
            "--json" => cfg.json = true,
            "--loopback-limit" => cfg.loopback_limit = true,
            "-v" | "--verbose" => cfg.verbose = true,
            other => return Err(format!("unknown argument {other:?} (try --help)")),
        }
    }
    if cfg.clients == 0 || cfg.clients > 20_000 {
        return Err("--clients must be between 1 and 20000".into());
    }
    if cfg.connect_window == 0 {
        return Err("--connect-window must be at least 1".into());
    }
    if cfg.size_mb == 0 || cfg.conc_size_mb == 0 {
        return Err("file sizes must be at least 1 MiB".into());
    }
    Ok(cfg)
}

// ---------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------

struct StderrLog;

impl log::Log for StderrLog {
    fn enabled(&self, _: &log::Metadata) -> bool {
        true
    }
    fn log(&self, r: &log::Record) {
        eprintln!("ftpbench: {}: {}", r.level(), r.args());
    }
    fn flush(&self) {}
}

static LOGGER: StderrLog = StderrLog;

/// Raises the open-file limit so that `want` descriptors fit.
fn raise_nofile(want: u64) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed in.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return;
        }
        let want = want as libc::rlim_t;
        if lim.rlim_cur >= want {
            return;
        }
        let mut new = lim;
        new.rlim_cur = want;
        if new.rlim_max < want {
            new.rlim_max = want; // works when running as root
        }
        if libc::setrlimit(libc::RLIMIT_NOFILE, &new) != 0 {
            new.rlim_max = lim.rlim_max;
            new.rlim_cur = lim.rlim_max.min(want);
            libc::setrlimit(libc::RLIMIT_NOFILE, &new);
            log::warn!(
                "could only raise the open-file limit to {}, {} wanted",
                new.rlim_cur,
                want
            );
        }
    }
}

fn remaining(deadline: Instant) -> Res<Duration> {
    let now = Instant::now();
    if now >= deadline {
        Err("workload deadline passed".into())
    } else {
        Ok(deadline - now)
    }
}

fn io_err(what: &str, e: io::Error) -> String {
    match e.kind() {
        ErrorKind::WouldBlock | ErrorKind::TimedOut => format!("{what}: timed out"),
        _ => format!("{what}: {e}"),
    }
}

/// A buffer of non-zero bytes used as upload content.
fn pattern() -> Vec<u8> {
    (0..IO_BUF).map(|i| b'a' + (i % 26) as u8).collect()
}

fn mib_per_s(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / MIB as f64 / d.as_secs_f64().max(1e-9)
}

/// Takes one complete reply (single or multi-line) off the front of `buf`.
fn take_reply(buf: &mut Vec<u8>) -> Option<(u16, String)> {
    let mut start = 0;
    let mut code: Option<[u8; 3]> = None;
    while let Some(nl) = buf[start..].iter().position(|&b| b == b'\n') {
        let line = &buf[start..start + nl];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let end = start + nl + 1;
        let digits = line.len() >= 3 && line[..3].iter().all(u8::is_ascii_digit);
        match code {
            None => {
                if !digits {
                    // Not an FTP reply: hand it back as code 0 so it fails.
                    let text = String::from_utf8_lossy(line).into_owned();
                    buf.drain(..end);
                    return Some((0, text));
                }
                let c = [line[0], line[1], line[2]];
                if line.get(3) == Some(&b'-') {
                    code = Some(c);
                } else {
                    return Some(finish_reply(buf, end, c));
                }
            }
            Some(c) => {
                if digits && line[..3] == c && line.get(3).is_none_or(|&b| b == b' ') {
                    return Some(finish_reply(buf, end, c));
                }
            }
        }
        start = end;
    }
    None
}

fn finish_reply(buf: &mut Vec<u8>, end: usize, c: [u8; 3]) -> (u16, String) {
    let text = String::from_utf8_lossy(&buf[..end]).trim_end().to_string();
    buf.drain(..end);
    let code = (c[0] - b'0') as u16 * 100 + (c[1] - b'0') as u16 * 10 + (c[2] - b'0') as u16;
    (code, text)
}

/// Port from a 227 reply: "227 Entering Passive Mode (h1,h2,h3,h4,p1,p2)".
fn parse_pasv(text: &str) -> Res<u16> {
    let body = text.get(4..).unwrap_or("");
    let nums: Vec<u32> = body
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .filter_map(|s| s.parse().ok())
        .collect();
    if nums.len() < 6 || nums[nums.len() - 2] > 255 || nums[nums.len() - 1] > 255 {
        return Err(format!("cannot parse PASV reply {text:?}"));
    }
    let (p1, p2) = (nums[nums.len() - 2], nums[nums.len() - 1]);
    Ok((p1 * 256 + p2) as u16)
}

/// Port from a 229 reply: "229 Entering Extended Passive Mode (|||port|)".
fn parse_epsv(text: &str) -> Res<u16> {
    let inner = text
        .split_once('(')
        .and_then(|(_, r)| r.split_once(')'))
        .map(|(i, _)| i)
        .ok_or_else(|| format!("cannot parse EPSV reply {text:?}"))?;
    let d = inner.chars().next().unwrap_or('|');
    inner
        .split(d)
        .nth(3)
        .and_then(|p| p.parse().ok())
        .ok_or_else(|| format!("cannot parse EPSV reply {text:?}"))
}

// ---------------------------------------------------------------------------
// Server memory
// ---------------------------------------------------------------------------

fn vm_rss_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// `pid` and all its descendants.
fn process_tree(pid: u32) -> Vec<u32> {
    let mut parent_of: HashMap<u32, u32> = HashMap::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for ent in dir.flatten() {
            let Some(p) = ent.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else {
                continue;
            };
            // The command name may hold spaces and parentheses; fields after
            // the last ')' are: state ppid ...
            if let Some((_, rest)) = stat.rsplit_once(')') {
                if let Some(ppid) = rest.split_whitespace().nth(1).and_then(|x| x.parse().ok()) {
                    parent_of.insert(p, ppid);
                }
            }
        }
    }
    let mut tree = vec![pid];
    for &p in parent_of.keys() {
        let mut cur = p;
        let mut hops = 0;
        while let Some(&pp) = parent_of.get(&cur) {
            if pp == pid {
                tree.push(p);
                break;
            }
            cur = pp;
            hops += 1;
            if pp <= 1 || hops > 64 {
                break;
            }
        }
    }
    tree
}

/// VmRSS of `pids` summed, in KiB; `None` when the first (the server) is gone.
/// For servers that fork a process per session this counts every process
/// whole, so pages they share are counted once per process.
fn sum_rss_kib(pids: &[u32]) -> Option<u64> {
    let own = vm_rss_kib(*pids.first()?)?;
    Some(own + pids[1..].iter().filter_map(|&p| vm_rss_kib(p)).sum::<u64>())
}

/// VmRSS of `pid` plus all its descendants, in KiB.
fn tree_rss_kib(pid: u32) -> Option<u64> {
    sum_rss_kib(&process_tree(pid))
}

// ---------------------------------------------------------------------------
// Blocking control connection (single-stream workloads, setup and cleanup)
// ---------------------------------------------------------------------------

struct Ctrl {
    sock: TcpStream,
    buf: Vec<u8>,
    deadline: Instant,
    ip: IpAddr,
    epsv: bool,
}

impl Ctrl {
    fn open(addr: SocketAddr, deadline: Instant) -> Res<Ctrl> {
        let left = remaining(deadline)?;
        let sock = TcpStream::connect_timeout(&addr, left.min(Duration::from_secs(30)))
            .map_err(|e| io_err("connect", e))?;
        sock.set_nodelay(true).ok();
        let mut c = Ctrl {
            sock,
            buf: Vec::with_capacity(512),
            deadline,
            ip: addr.ip(),
            epsv: false,
        };
        let (code, text) = c.reply()?;
        if code != 220 {
            return Err(format!("greeting: {text}"));
        }
        Ok(c)
    }

    fn login(addr: SocketAddr, cfg: &Config, deadline: Instant) -> Res<Ctrl> {
        let mut c = Ctrl::open(addr, deadline)?;
        let (code, text) = c.cmd(&format!("USER {}", cfg.user))?;
        match code {
            230 => {}
            331 => {
                c.expect(&format!("PASS {}", cfg.pass), &[230, 202])?;
            }
            _ => return Err(format!("USER: {text}")),
        }
        c.expect("TYPE I", &[200])?;
        Ok(c)
    }

    fn send(&mut self, line: &str) -> Res<()> {
        let left = remaining(self.deadline)?;
        self.sock.set_write_timeout(Some(left)).ok();
        log::debug!("> {line}");
        self.sock
            .write_all(format!("{line}\r\n").as_bytes())
            .map_err(|e| io_err("control write", e))
    }

    fn reply(&mut self) -> Res<(u16, String)> {
        let mut tmp = [0u8; 4096];
        loop {
            if let Some(r) = take_reply(&mut self.buf) {
                log::debug!("< {}", r.1);
                return Ok(r);
            }
            if self.buf.len() > 1 << 20 {
                return Err("control reply too long".into());
            }
            let left = remaining(self.deadline)?;
            self.sock.set_read_timeout(Some(left)).ok();
            match self.sock.read(&mut tmp) {
                Ok(0) => return Err("server closed the control connection".into()),
                Ok(n) => self.buf.extend_from_slice(&tmp[..n]),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(io_err("control read", e)),
            }
        }
    }

    fn cmd(&mut self, line: &str) -> Res<(u16, String)> {
        self.send(line)?;
        self.reply()
    }

    fn expect(&mut self, line: &str, ok: &[u16]) -> Res<String> {
        let (code, text) = self.cmd(line)?;
        if ok.contains(&code) {
            Ok(text)
        } else {
            let verb = line.split(' ').next().unwrap_or(line);
            Err(format!("{verb}: {text}"))
        }
    }

    /// Opens a passive data connection (PASV, or EPSV where PASV is refused).
    /// The server's address in the reply is ignored: data connections go to
    /// the host of the control connection only.
    fn data(&mut self) -> Res<TcpStream> {
        let mut port = None;
        if !self.epsv {
            let (code, text) = self.cmd("PASV")?;
            if code == 227 {
                port = Some(parse_pasv(&text)?);
            } else if code >= 500 {
                self.epsv = true;
            } else {
                return Err(format!("PASV: {text}"));
            }
        }
        let port = match port {
            Some(p) => p,
            None => parse_epsv(&self.expect("EPSV", &[229])?)?,
        };
        let left = remaining(self.deadline)?;
        let s = TcpStream::connect_timeout(
            &SocketAddr::new(self.ip, port),
            left.min(Duration::from_secs(30)),
        )
        .map_err(|e| io_err("data connect", e))?;
        s.set_read_timeout(Some(left)).ok();
        s.set_write_timeout(Some(left)).ok();
        Ok(s)
    }

    fn quit(mut self) {
        if self.send("QUIT").is_ok() {
            let _ = self.reply();
        }
    }
}

/// Uploads `size` bytes to `path`; returns the time from STOR to the final reply.
fn stor_stream(c: &mut Ctrl, path: &str, size: u64, pat: &[u8]) -> Res<Duration> {
    let mut data = c.data()?;
    let t0 = Instant::now();
    let (code, text) = c.cmd(&format!("STOR {path}"))?;
    if code != 150 && code != 125 {
        return Err(format!("STOR: {text}"));
    }
    let mut sent = 0u64;
    while sent < size {
        let n = ((size - sent) as usize).min(pat.len());
        data.write_all(&pat[..n])
            .map_err(|e| io_err("STOR data", e))?;
        sent += n as u64;
    }
    data.shutdown(Shutdown::Write).ok();
    drop(data);
    let (code, text) = c.reply()?;
    if code != 226 && code != 250 {
        return Err(format!("STOR: {text}"));
    }
    Ok(t0.elapsed())
}

/// Downloads `path`, checking that exactly `size` bytes arrive.
fn retr_stream(c: &mut Ctrl, path: &str, size: u64, buf: &mut [u8]) -> Res<Duration> {
    let mut data = c.data()?;
    let t0 = Instant::now();
    let (code, text) = c.cmd(&format!("RETR {path}"))?;
    if code != 150 && code != 125 {
        return Err(format!("RETR: {text}"));
    }
    let mut got = 0u64;
    loop {
        match data.read(buf) {
            Ok(0) => break,
            Ok(n) => got += n as u64,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(io_err("RETR data", e)),
        }
        if got > size {
            return Err(format!("RETR returned more than the {size} bytes expected"));
        }
    }
    drop(data);
    let (code, text) = c.reply()?;
    if code != 226 && code != 250 {
        return Err(format!("RETR: {text}"));
    }
    if got != size {
        return Err(format!("RETR returned {got} bytes, {size} expected"));
    }
    Ok(t0.elapsed())
}

/// Lists `path`; returns the number of entries (lines other than "total N").
fn list_stream(c: &mut Ctrl, path: &str, buf: &mut [u8]) -> Res<usize> {
    let mut data = c.data()?;
    let (code, text) = c.cmd(&format!("LIST {path}"))?;
    if code != 150 && code != 125 {
        return Err(format!("LIST: {text}"));
    }
    let mut body = Vec::new();
    loop {
        match data.read(buf) {
            Ok(0) => break,
            Ok(n) => body.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(io_err("LIST data", e)),
        }
        if body.len() > 64 << 20 {
            return Err("LIST output too long".into());
        }
    }
    let (code, text) = c.reply()?;
    if code != 226 && code != 250 {
        return Err(format!("LIST: {text}"));
    }
    Ok(body
        .split(|&b| b == b'\n')
        .filter(|l| !l.iter().all(u8::is_ascii_whitespace) && !l.starts_with(b"total "))
        .count())
}

/// Runs one single-stream transfer again and again until together they took
/// `STREAM_MIN_SECS` and ran at least `STREAM_MIN_REPS` times (at most
/// `STREAM_MAX_REPS`): one short transfer on loopback is mostly noise.
/// Returns how many ran and their summed duration.
fn repeat_stream(
    deadline: Instant,
    mut once: impl FnMut() -> Res<Duration>,
) -> Res<(u64, Duration)> {
    let mut n = 0u64;
    let mut total = Duration::ZERO;
    while n < STREAM_MAX_REPS && (n < STREAM_MIN_REPS || total.as_secs_f64() < STREAM_MIN_SECS) {
        remaining(deadline)?;
        total += once()?;
        n += 1;
    }
    Ok((n, total))
}

// ---------------------------------------------------------------------------
// Many sessions on one mio event loop
// ---------------------------------------------------------------------------

#[derive(Clone, Debug)]
enum Op {
    /// Connect, read the greeting, USER, PASS.
    Login,
    /// Every session downloads `path`, which must be `size` bytes long.
    Retr { path: String, size: u64 },
    /// Session i uploads `size` bytes to `{prefix}{i}.bin`.
    Stor { prefix: String, size: u64 },
    /// QUIT and wait for 221.
    Quit,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum St {
    Greeting,
    User,
    Pass,
    Idle,
    Type,
    Pasv,
    Epsv,
    Prelim,
    Transfer,
    Quit,
    Closed,
    Failed,
}

struct Data {
    sock: MioStream,
    upload: bool,
    want: u64,
    moved: u64,
}

struct Sess {
    ctrl: MioStream,
    connected: bool,
    inbuf: Vec<u8>,
    out: Vec<u8>,
    st: St,
    busy: bool,
    typed: bool,
    data: Option<Data>,
    data_done: bool,
    final_ok: bool,
    err: Option<String>,
}

struct PhaseOut {
    elapsed: Duration,
    peak_rss_kib: Option<u64>,
}

struct Fleet {
    poll: Poll,
    sess: Vec<Sess>,
    addr: SocketAddr,
    user: String,
    pass: String,
    epsv: bool,
    op: Op,
    pending: usize,
    /// Sessions still to be opened in a login phase.
    to_open: usize,
    /// Sessions connected or connecting that have not been greeted yet.
    greeting: usize,
    /// Upper bound for `greeting` (see `--connect-window`).
    window: usize,
    rbuf: Vec<u8>,
    pat: Vec<u8>,
}

fn ctrl_token(i: usize) -> Token {
    Token(i * 2)
}

fn data_token(i: usize) -> Token {
    Token(i * 2 + 1)
}

impl Fleet {
    fn new(addr: SocketAddr, cfg: &Config) -> Res<Fleet> {
        Ok(Fleet {
            poll: Poll::new().map_err(|e| io_err("poll", e))?,
            sess: Vec::new(),
            addr,
            user: cfg.user.clone(),
            pass: cfg.pass.clone(),
            epsv: false,
            op: Op::Login,
            pending: 0,
            to_open: 0,
            greeting: 0,
            window: cfg.connect_window,
            rbuf: vec![0; IO_BUF],
            pat: pattern(),
        })
    }

    fn live(&self) -> usize {
        self.sess.iter().filter(|s| s.st == St::Idle).count()
    }

    /// Runs `op` on every session (for `Op::Login`, opens `n` new ones) and
    /// returns when all have finished, or fails at `deadline`.
    fn run(&mut self, op: Op, n: usize, deadline: Instant, rss: Option<u32>) -> Res<PhaseOut> {
        self.op = op.clone();
        self.pending = 0;
        let start = Instant::now();
        match op {
            Op::Login => {
                self.to_open = n;
                self.pending = n;
                self.top_up()?;
            }
            _ => {
                for i in 0..self.sess.len() {
                    if self.sess[i].st != St::Idle {
                        continue;
                    }
                    let s = &mut self.sess[i];
                    s.busy = true;
                    s.final_ok = false;
                    s.data_done = false;
                    self.pending += 1;
                    let r = match op {
                        Op::Quit => {
                            self.sess[i].st = St::Quit;
                            self.send(i, "QUIT")
                        }
                        _ => self.begin_transfer(i),
                    };
                    if let Err(e) = r {
                        self.fail(i, e);
                    }
                }
            }
        }
        let mut events = Events::with_capacity(2048);
        let mut peak: Option<u64> = None;
        // Sessions neither start nor end during a transfer phase, so the
        // server's process tree is looked up once.
        let tree = rss.map(process_tree);
        let mut next_sample = start;
        while self.pending > 0 {
            let now = Instant::now();
            if let Some(tree) = &tree {
                if now >= next_sample {
                    if let Some(k) = sum_rss_kib(tree) {
                        peak = Some(peak.unwrap_or(0).max(k));
                    }
                    next_sample = now + RSS_SAMPLE;
                }
            }
            if now >= deadline {
                self.pending -= self.to_open;
                self.to_open = 0;
                for i in 0..self.sess.len() {
                    if self.sess[i].busy {
                        self.fail(
                            i,
                            format!("{:?} did not finish before the deadline", self.op),
                        );
                    }
                }
                break;
            }
            let wait = (deadline - now).min(Duration::from_millis(100));
            if let Err(e) = self.poll.poll(&mut events, Some(wait)) {
                if e.kind() == ErrorKind::Interrupted {
                    continue;
                }
                return Err(io_err("poll", e));
            }
            for ev in events.iter() {
                let i = ev.token().0 / 2;
                if i >= self.sess.len() {
                    continue;
                }
                let r = if ev.token().0 % 2 == 0 {
                    self.ctrl_io(i)
                } else {
                    self.data_io(i)
                };
                if let Err(e) = r {
                    self.fail(i, e);
                }
            }
            self.top_up()?;
        }
        let elapsed = start.elapsed();
        let failed: Vec<&Sess> = self.sess.iter().filter(|s| s.st == St::Failed).collect();
        if let Some(first) = failed.first() {
            return Err(format!(
                "{} of {} sessions failed; first error: {}",
                failed.len(),
                self.sess.len(),
                first.err.as_deref().unwrap_or("?")
            ));
        }
        Ok(PhaseOut {
            elapsed,
            peak_rss_kib: peak,
        })
    }

    /// Opens new sessions while fewer than `window` wait for their greeting.
    /// Connecting everything at once would overrun a small listen backlog;
    /// with SYN cookies the kernel then drops connections that the client
    /// believes are open, and a server that speaks first never greets them.
    fn top_up(&mut self) -> Res<()> {
        while self.to_open > 0 && self.greeting < self.window {
            let i = self.sess.len();
            let mut ctrl = MioStream::connect(self.addr).map_err(|e| io_err("connect", e))?;
            self.poll
                .registry()
                .register(
                    &mut ctrl,
                    ctrl_token(i),
                    Interest::READABLE | Interest::WRITABLE,
                )
                .map_err(|e| io_err("register", e))?;
            self.sess.push(Sess {
                ctrl,
                connected: false,
                inbuf: Vec::new(),
                out: Vec::new(),
                st: St::Greeting,
                busy: true,
                typed: false,
                data: None,
                data_done: false,
                final_ok: false,
                err: None,
            });
            self.to_open -= 1;
            self.greeting += 1;
        }
        Ok(())
    }

    fn send(&mut self, i: usize, line: &str) -> Res<()> {
        let s = &mut self.sess[i];
        s.out.extend_from_slice(line.as_bytes());
        s.out.extend_from_slice(b"\r\n");
        self.flush(i)
    }

    fn flush(&mut self, i: usize) -> Res<()> {
        let s = &mut self.sess[i];
        while s.connected && !s.out.is_empty() {
            match s.ctrl.write(&s.out) {
                Ok(0) => return Err("control connection closed".into()),
                Ok(n) => {
                    s.out.drain(..n);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(io_err("control write", e)),
            }
        }
        Ok(())
    }

    fn fail(&mut self, i: usize, err: String) {
        let s = &mut self.sess[i];
        if matches!(s.st, St::Failed | St::Closed) {
            return;
        }
        log::debug!("session {i} failed: {err}");
        if s.st == St::Greeting {
            self.greeting -= 1;
        }
        if s.busy {
            s.busy = false;
            self.pending -= 1;
        }
        s.st = St::Failed;
        s.err = Some(err);
        if let Some(mut d) = s.data.take() {
            let _ = self.poll.registry().deregister(&mut d.sock);
        }
        let _ = self.poll.registry().deregister(&mut s.ctrl);
        let _ = s.ctrl.shutdown(Shutdown::Both);
    }

    fn finish(&mut self, i: usize, st: St) {
        let s = &mut self.sess[i];
        s.st = st;
        if s.busy {
            s.busy = false;
            self.pending -= 1;
        }
    }

    fn begin_transfer(&mut self, i: usize) -> Res<()> {
        if !self.sess[i].typed {
            self.sess[i].st = St::Type;
            return self.send(i, "TYPE I");
        }
        self.ask_port(i)
    }

    fn ask_port(&mut self, i: usize) -> Res<()> {
        if self.epsv {
            self.sess[i].st = St::Epsv;
            self.send(i, "EPSV")
        } else {
            self.sess[i].st = St::Pasv;
            self.send(i, "PASV")
        }
    }

    fn ctrl_io(&mut self, i: usize) -> Res<()> {
        let s = &mut self.sess[i];
        if matches!(s.st, St::Failed | St::Closed) {
            return Ok(());
        }
        if !s.connected {
            match s.ctrl.take_error() {
                Ok(Some(e)) | Err(e) => return Err(io_err("connect", e)),
                Ok(None) => {}
            }
            match s.ctrl.peer_addr() {
                Ok(_) => {
                    s.connected = true;
                    s.ctrl.set_nodelay(true).ok();
                }
                Err(e) if e.kind() == ErrorKind::NotConnected => return Ok(()),
                Err(e) => return Err(io_err("connect", e)),
            }
        }
        self.flush(i)?;
        let s = &mut self.sess[i];
        let mut tmp = [0u8; 4096];
        let mut eof = false;
        loop {
            match s.ctrl.read(&mut tmp) {
                Ok(0) => {
                    eof = true;
                    break;
                }
                Ok(n) => s.inbuf.extend_from_slice(&tmp[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(io_err("control read", e)),
            }
            if s.inbuf.len() > 1 << 20 {
                return Err("control reply too long".into());
            }
        }
        while let Some((code, text)) = take_reply(&mut self.sess[i].inbuf) {
            self.on_reply(i, code, &text)?;
            if matches!(self.sess[i].st, St::Failed | St::Closed) {
                return Ok(());
            }
        }
        self.flush(i)?;
        if eof {
            return Err("server closed the control connection".into());
        }
        Ok(())
    }

    fn on_reply(&mut self, i: usize, code: u16, text: &str) -> Res<()> {
        let st = self.sess[i].st;
        match (st, code) {
            (St::Greeting, 220) => {
                self.greeting -= 1;
                self.sess[i].st = St::User;
                let line = format!("USER {}", self.user);
                self.send(i, &line)
            }
            (St::Greeting, 120) => Ok(()),
            (St::User, 331) => {
                self.sess[i].st = St::Pass;
                let line = format!("PASS {}", self.pass);
                self.send(i, &line)
            }
            (St::User, 230) | (St::Pass, 230) | (St::Pass, 202) => {
                self.finish(i, St::Idle);
                Ok(())
            }
            (St::Type, 200) => {
                self.sess[i].typed = true;
                self.ask_port(i)
            }
            (St::Pasv, 227) => {
                let port = parse_pasv(text)?;
                self.open_data(i, port)
            }
            (St::Pasv, c) if c >= 500 => {
                self.epsv = true;
                self.ask_port(i)
            }
            (St::Epsv, 229) => {
                let port = parse_epsv(text)?;
                self.open_data(i, port)
            }
            (St::Prelim, 150) | (St::Prelim, 125) => {
                self.sess[i].st = St::Transfer;
                if self.sess[i].data.as_ref().is_some_and(|d| d.upload) {
                    self.data_io(i)?;
                }
                Ok(())
            }
            (St::Transfer, 226) | (St::Transfer, 250) => {
                self.sess[i].final_ok = true;
                if !self.sess[i].data_done {
                    if self.sess[i].data.as_ref().is_some_and(|d| d.upload) {
                        return Err(format!(
                            "server ended STOR before the upload finished: {text}"
                        ));
                    }
                    return Ok(()); // wait for the rest of the download
                }
                self.finish(i, St::Idle);
                Ok(())
            }
            (St::Quit, 221) => {
                self.finish(i, St::Closed);
                let s = &mut self.sess[i];
                let _ = self.poll.registry().deregister(&mut s.ctrl);
                let _ = s.ctrl.shutdown(Shutdown::Both);
                Ok(())
            }
            (St::Idle, c) if c < 400 => Ok(()),
            _ => Err(format!("unexpected reply in state {st:?}: {text}")),
        }
    }

    fn open_data(&mut self, i: usize, port: u16) -> Res<()> {
        let addr = SocketAddr::new(self.addr.ip(), port);
        let mut sock = MioStream::connect(addr).map_err(|e| io_err("data connect", e))?;
        self.poll
            .registry()
            .register(
                &mut sock,
                data_token(i),
                Interest::READABLE | Interest::WRITABLE,
            )
            .map_err(|e| io_err("register", e))?;
        let (line, upload, want) = match &self.op {
            Op::Retr { path, size } => (format!("RETR {path}"), false, *size),
            Op::Stor { prefix, size } => (format!("STOR {prefix}{i}.bin"), true, *size),
            _ => return Err("no transfer in this phase".into()),
        };
        self.sess[i].data = Some(Data {
            sock,
            upload,
            want,
            moved: 0,
        });
        self.sess[i].st = St::Prelim;
        self.send(i, &line)
    }

    fn data_io(&mut self, i: usize) -> Res<()> {
        let Fleet {
            sess,
            rbuf,
            pat,
            poll,
            ..
        } = self;
        let s = &mut sess[i];
        let Some(d) = s.data.as_mut() else {
            return Ok(());
        };
        if d.upload {
            // Upload only after the server's preliminary reply.
            if s.st != St::Transfer {
                return Ok(());
            }
            while d.moved < d.want {
                let off = (d.moved % pat.len() as u64) as usize;
                let n = ((d.want - d.moved) as usize).min(pat.len() - off);
                match d.sock.write(&pat[off..off + n]) {
                    Ok(0) => return Err("STOR data connection closed".into()),
                    Ok(k) => d.moved += k as u64,
                    Err(e)
                        if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::NotConnected) =>
                    {
                        return Ok(())
                    }
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(e) => return Err(io_err("STOR data", e)),
                }
            }
        } else {
            loop {
                match d.sock.read(rbuf) {
                    Ok(0) => break,
                    Ok(k) => {
                        d.moved += k as u64;
                        if d.moved > d.want {
                            return Err(format!("RETR returned more than {} bytes", d.want));
                        }
                    }
                    Err(e)
                        if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::NotConnected) =>
                    {
                        return Ok(())
                    }
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(e) => return Err(io_err("RETR data", e)),
                }
            }
            if d.moved != d.want {
                return Err(format!(
                    "RETR returned {} bytes, {} expected",
                    d.moved, d.want
                ));
            }
        }
        // Transfer finished on our side: close the data connection.
        let mut d = s.data.take().expect("data connection present");
        let _ = poll.registry().deregister(&mut d.sock);
        if d.upload {
            let _ = d.sock.shutdown(Shutdown::Write);
        }
        drop(d);
        s.data_done = true;
        if s.final_ok && s.st == St::Transfer {
            self.finish(i, St::Idle);
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// The benchmark
// ---------------------------------------------------------------------------

struct Bench {
    cfg: Config,
    addr: SocketAddr,
    tag: String,
    fleet: Option<Fleet>,
    pat: Vec<u8>,
    buf: Vec<u8>,
    big_ready: bool,
    conc_ready: bool,
    rss_sessions_done: bool,
    failures: usize,
}

fn json_str(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if (c as u32) < 0x20 => o.push_str(&format!("\\u{:04x}", c as u32)),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

fn emit(json: bool, name: &str, value: &Res<f64>, unit: &str, what: &str) {
    match (json, value) {
        (true, Ok(v)) => println!(
            "{{\"workload\":{},\"value\":{:.4},\"unit\":{}}}",
            json_str(name),
            v,
            json_str(unit)
        ),
        (true, Err(e)) => println!(
            "{{\"workload\":{},\"value\":null,\"unit\":{},\"error\":{}}}",
            json_str(name),
            json_str(unit),
            json_str(e)
        ),
        (false, Ok(v)) => println!("{name:<14} {v:>12.2} {unit:<6} {what}"),
        (false, Err(e)) => println!("{name:<14} {:>12} {unit:<6} {what}: {e}", "FAILED"),
    }
}

impl Bench {
    fn report(&mut self, name: &str, value: Res<f64>, unit: &str, what: &str) {
        if value.is_err() {
            self.failures += 1;
        }
        emit(self.cfg.json, name, &value, unit, what);
    }

    fn wants(&self, w: W) -> bool {
        self.cfg.only.contains(&w)
    }

    fn deadline(&self) -> Instant {
        Instant::now() + self.cfg.timeout
    }

    fn big_path(&self) -> String {
        format!("{}-big.bin", self.tag)
    }

    fn conc_path(&self) -> String {
        format!("{}-10m.bin", self.tag)
    }

    fn login(&self, deadline: Instant) -> Res<Ctrl> {
        Ctrl::login(self.addr, &self.cfg, deadline)
    }

    fn rss_mib(&self) -> Res<f64> {
        let pid = self.cfg.pid.ok_or("no --pid given")?;
        tree_rss_kib(pid)
            .map(|k| k as f64 / 1024.0)
            .ok_or_else(|| format!("cannot read /proc/{pid}/status"))
    }

    fn upload(&mut self, path: &str, mib: u64, deadline: Instant) -> Res<Duration> {
        let mut c = self.login(deadline)?;
        let d = stor_stream(&mut c, path, mib * MIB, &self.pat)?;
        c.quit();
        Ok(d)
    }

    fn ensure_big(&mut self, deadline: Instant) -> Res<()> {
        if !self.big_ready {
            let p = self.big_path();
            self.upload(&p, self.cfg.size_mb, deadline)?;
            self.big_ready = true;
        }
        Ok(())
    }

    fn single_stor(&mut self, deadline: Instant) -> Res<f64> {
        let p = self.big_path();
        let size = self.cfg.size_mb * MIB;
        let mut c = self.login(deadline)?;
        let pat = &self.pat;
        let r = repeat_stream(deadline, || stor_stream(&mut c, &p, size, pat));
        self.big_ready = true;
        c.quit();
        let (n, d) = r?;
        Ok(mib_per_s(size * n, d))
    }

    fn single_retr(&mut self, deadline: Instant) -> Res<f64> {
        self.ensure_big(deadline)?;
        let mut c = self.login(deadline)?;
        let p = self.big_path();
        let size = self.cfg.size_mb * MIB;
        let buf = &mut self.buf;
        let r = repeat_stream(deadline, || retr_stream(&mut c, &p, size, buf));
        c.quit();
        let (n, d) = r?;
        Ok(mib_per_s(size * n, d))
    }

    fn drop_fleet(&mut self) {
        if let Some(mut f) = self.fleet.take() {
            if f.live() > 0 {
                let d = self
                    .deadline()
                    .min(Instant::now() + Duration::from_secs(30));
                let _ = f.run(Op::Quit, 0, d, None);
            }
        }
    }

    /// Logs in `--clients` sessions; returns the time it took.
    fn new_fleet(&mut self, deadline: Instant) -> Res<Duration> {
        self.drop_fleet();
        let mut f = Fleet::new(self.addr, &self.cfg)?;
        let out = f.run(Op::Login, self.cfg.clients, deadline, None)?;
        self.fleet = Some(f);
        if self.wants(W::Rss) && !self.rss_sessions_done && self.cfg.pid.is_some() {
            self.rss_sessions_done = true;
            thread::sleep(Duration::from_millis(300));
            let v = self.rss_mib();
            let what = format!("server memory with {} sessions logged in", self.cfg.clients);
            self.report("rss_sessions", v, "MiB", &what);
        }
        Ok(out.elapsed)
    }

    fn ensure_fleet(&mut self, deadline: Instant) -> Res<()> {
        if self.fleet.as_ref().map_or(0, Fleet::live) != self.cfg.clients {
            self.new_fleet(deadline)?;
        }
        Ok(())
    }

    fn fleet_op(&mut self, op: Op, deadline: Instant, rss: bool) -> Res<PhaseOut> {
        self.ensure_fleet(deadline)?;
        let pid = if rss { self.cfg.pid } else { None };
        let f = self.fleet.as_mut().expect("fleet");
        let r = f.run(op, 0, deadline, pid);
        if r.is_err() {
            self.fleet = None; // sockets close on drop; the next workload starts afresh
        }
        r
    }

    fn concurrent_retr(&mut self, deadline: Instant) -> Res<(f64, f64, Option<u64>)> {
        let size = self.cfg.conc_size_mb * MIB;
        if !self.conc_ready {
            let p = self.conc_path();
            self.upload(&p, self.cfg.conc_size_mb, deadline)?;
            self.conc_ready = true;
        }
        let rss = self.cfg.pid.is_some() && self.wants(W::Rss);
        let op = Op::Retr {
            path: self.conc_path(),
            size,
        };
        let out = self.fleet_op(op, deadline, rss)?;
        let total = size * self.cfg.clients as u64;
        Ok((
            out.elapsed.as_secs_f64(),
            mib_per_s(total, out.elapsed),
            out.peak_rss_kib,
        ))
    }

    fn concurrent_stor(&mut self, deadline: Instant) -> Res<(f64, f64)> {
        let size = self.cfg.conc_size_mb * MIB;
        let op = Op::Stor {
            prefix: format!("{}-c", self.tag),
            size,
        };
        let r = self.fleet_op(op, deadline, false);
        self.cleanup_cstor();
        let out = r?;
        let total = size * self.cfg.clients as u64;
        Ok((out.elapsed.as_secs_f64(), mib_per_s(total, out.elapsed)))
    }

    fn cleanup_cstor(&mut self) {
        let deadline = self.deadline();
        if let Ok(mut c) = self.login(deadline) {
            for i in 0..self.cfg.clients {
                if c.cmd(&format!("DELE {}-c{i}.bin", self.tag)).is_err() {
                    break;
                }
            }
            c.quit();
        }
    }

    fn logins_per_sec(&mut self, deadline: Instant) -> Res<f64> {
        let t0 = Instant::now();
        let mut n = 0;
        while n < LOGIN_MAX_OPS && t0.elapsed().as_secs_f64() < SMALL_SECS {
            let mut c = Ctrl::open(self.addr, deadline)?;
            let (code, text) = c.cmd(&format!("USER {}", self.cfg.user))?;
            if code == 331 {
                c.expect(&format!("PASS {}", self.cfg.pass), &[230, 202])?;
            } else if code != 230 {
                return Err(format!("USER: {text}"));
            }
            c.expect("QUIT", &[221])?;
            n += 1;
        }
        Ok(n as f64 / t0.elapsed().as_secs_f64())
    }

    fn list_per_sec(&mut self, deadline: Instant) -> Res<f64> {
        let dir = format!("{}-list", self.tag);
        let mut c = self.login(deadline)?;
        c.expect(&format!("MKD {dir}"), &[257])?;
        let r = (|| {
            for k in 0..LIST_FILES {
                let data = c.data()?;
                let (code, text) = c.cmd(&format!("STOR {dir}/f{k:04}"))?;
                if code != 150 && code != 125 {
                    return Err(format!("STOR: {text}"));
                }
                drop(data);
                c.expect_reply(&[226, 250])?;
            }
            let t0 = Instant::now();
            let mut n = 0;
            while n < LIST_MAX_OPS && t0.elapsed().as_secs_f64() < SMALL_SECS {
                let entries = list_stream(&mut c, &dir, &mut self.buf)?;
                if entries != LIST_FILES {
                    return Err(format!(
                        "LIST showed {entries} entries, {LIST_FILES} expected"
                    ));
                }
                n += 1;
            }
            Ok(n as f64 / t0.elapsed().as_secs_f64())
        })();
        // Clean up with a fresh deadline so a failed run still tidies up.
        c.deadline = self.deadline();
        for k in 0..LIST_FILES {
            if c.cmd(&format!("DELE {dir}/f{k:04}")).is_err() {
                break;
            }
        }
        let _ = c.cmd(&format!("RMD {dir}"));
        c.quit();
        r
    }

    fn run(&mut self) {
        let n = self.cfg.clients;
        let sz = self.cfg.size_mb;
        let csz = self.cfg.conc_size_mb;
        let rss = self.wants(W::Rss) && self.cfg.pid.is_some();
        if self.wants(W::Rss) && !rss && !self.cfg.json {
            println!("(no --pid given: server memory is not measured)");
        }
        if rss {
            let v = self.rss_mib();
            self.report("rss_idle", v, "MiB", "server memory before any session");
        }
        if self.wants(W::Stor) {
            let d = self.deadline();
            let v = self.single_stor(d);
            self.report(
                "stor_1",
                v,
                "MiB/s",
                &format!("STOR of {sz} MiB, one stream"),
            );
        }
        if self.wants(W::Retr) {
            let d = self.deadline();
            let v = self.single_retr(d);
            self.report(
                "retr_1",
                v,
                "MiB/s",
                &format!("RETR of {sz} MiB, one stream"),
            );
        }
        if self.wants(W::Login) {
            let d = self.deadline();
            let v = self.new_fleet(d).map(|e| e.as_secs_f64());
            self.report(
                "login_n",
                v,
                "s",
                &format!("{n} clients connect and log in"),
            );
        }
        if self.wants(W::Idle) {
            let d = self.deadline();
            let v = self.ensure_fleet(d).and_then(|_| self.single_stor(d));
            self.report(
                "stor_1_idle",
                v,
                "MiB/s",
                &format!("STOR of {sz} MiB, one stream, {n} idle sessions"),
            );
            let d = self.deadline();
            let v = self.ensure_fleet(d).and_then(|_| self.single_retr(d));
            self.report(
                "retr_1_idle",
                v,
                "MiB/s",
                &format!("RETR of {sz} MiB, one stream, {n} idle sessions"),
            );
        }
        if self.wants(W::CRetr) || rss {
            let d = self.deadline();
            let r = self.concurrent_retr(d);
            if self.wants(W::CRetr) {
                let what = format!("{n} clients RETR {csz} MiB at once");
                self.report(
                    "retr_n_time",
                    r.as_ref().map(|x| x.0).map_err(Clone::clone),
                    "s",
                    &what,
                );
                self.report(
                    "retr_n_rate",
                    r.as_ref().map(|x| x.1).map_err(Clone::clone),
                    "MiB/s",
                    &what,
                );
            }
            if rss {
                let v = r.and_then(|x| x.2.map(|k| k as f64 / 1024.0).ok_or("no sample".into()));
                self.report(
                    "rss_transfer",
                    v,
                    "MiB",
                    &format!("peak server memory during {n} RETRs"),
                );
            }
        }
        if self.wants(W::CStor) {
            let d = self.deadline();
            let r = self.concurrent_stor(d);
            let what = format!("{n} clients STOR {csz} MiB at once");
            self.report(
                "stor_n_time",
                r.as_ref().map(|x| x.0).map_err(Clone::clone),
                "s",
                &what,
            );
            self.report(
                "stor_n_rate",
                r.as_ref().map(|x| x.1).map_err(Clone::clone),
                "MiB/s",
                &what,
            );
        }
        if self.wants(W::Quit) {
            let d = self.deadline();
            let v = self
                .fleet_op(Op::Quit, d, false)
                .map(|o| o.elapsed.as_secs_f64());
            self.fleet = None;
            self.report("quit_n", v, "s", &format!("{n} clients QUIT at once"));
        }
        self.drop_fleet();
        if self.wants(W::Logins) {
            let d = self.deadline();
            let v = self.logins_per_sec(d);
            self.report(
                "logins_per_s",
                v,
                "1/s",
                "sequential sessions: connect, log in, QUIT",
            );
        }
        if self.wants(W::List) {
            let d = self.deadline();
            let v = self.list_per_sec(d);
            let what = format!("LIST of a {LIST_FILES}-file directory, sequential");
            self.report("list_per_s", v, "1/s", &what);
        }
        self.cleanup();
    }

    fn cleanup(&mut self) {
        if !self.big_ready && !self.conc_ready {
            return;
        }
        let d = self.deadline();
        if let Ok(mut c) = self.login(d) {
            if self.big_ready {
                let _ = c.cmd(&format!("DELE {}", self.big_path()));
            }
            if self.conc_ready {
                let _ = c.cmd(&format!("DELE {}", self.conc_path()));
            }
            c.quit();
        }
    }
}

impl Ctrl {
    fn expect_reply(&mut self, ok: &[u16]) -> Res<String> {
        let (code, text) = self.reply()?;
        if ok.contains(&code) {
            Ok(text)
        } else {
            Err(text)
        }
    }
}

// ---------------------------------------------------------------------------
// Loopback limit: sendfile() a file to a local reader over 127.0.0.1
// ---------------------------------------------------------------------------

fn loopback_limit(cfg: &Config) -> Res<f64> {
    let deadline = Instant::now() + cfg.timeout;
    let size = cfg.size_mb * MIB;
    let path = std::env::temp_dir().join(format!("ftpbench-loopback-{}.bin", process::id()));
    let r = (|| {
        {
            let mut f = std::fs::File::create(&path).map_err(|e| io_err("create", e))?;
            let pat = pattern();
            let mut left = size;
            while left > 0 {
                let n = left.min(pat.len() as u64) as usize;
                f.write_all(&pat[..n]).map_err(|e| io_err("write", e))?;
                left -= n as u64;
            }
        }
        let file = std::fs::File::open(&path).map_err(|e| io_err("open", e))?;
        // One connection per pass, as each RETR has a data connection of its
        // own; passes repeat like the single-stream workloads.
        let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| io_err("bind", e))?;
        let addr = listener.local_addr().map_err(|e| io_err("bind", e))?;
        let (tx, rx) = std::sync::mpsc::channel::<Res<u64>>();
        let reader = thread::spawn(move || {
            let mut buf = vec![0u8; IO_BUF];
            for _ in 0..=STREAM_MAX_REPS {
                let r = (|| {
                    let (mut s, _) = listener.accept().map_err(|e| io_err("accept", e))?;
                    s.set_read_timeout(Some(Duration::from_secs(60))).ok();
                    let mut got = 0u64;
                    loop {
                        match s.read(&mut buf) {
                            Ok(0) => return Ok(got),
                            Ok(n) => got += n as u64,
                            Err(e) if e.kind() == ErrorKind::Interrupted => {}
                            Err(e) => return Err(io_err("read", e)),
                        }
                    }
                })();
                // An empty connection is the signal to stop.
                let stop = !matches!(r, Ok(n) if n > 0);
                if tx.send(r).is_err() || stop {
                    return;
                }
            }
        });
        let pass = || -> Res<Duration> {
            let sock = TcpStream::connect(addr).map_err(|e| io_err("connect", e))?;
            let t0 = Instant::now();
            let mut off: libc::off_t = 0;
            while (off as u64) < size {
                remaining(deadline)?;
                let want = (size - off as u64).min(1 << 30) as usize;
                // SAFETY: both descriptors are open for the duration of the
                // call and `off` is a valid pointer to an off_t.
                let n =
                    unsafe { libc::sendfile(sock.as_raw_fd(), file.as_raw_fd(), &mut off, want) };
                if n < 0 {
                    let e = io::Error::last_os_error();
                    if e.kind() == ErrorKind::Interrupted {
                        continue;
                    }
                    return Err(io_err("sendfile", e));
                }
                if n == 0 {
                    return Err("sendfile: unexpected end of file".into());
                }
            }
            sock.shutdown(Shutdown::Write).ok();
            let got = rx
                .recv_timeout(remaining(deadline)?)
                .map_err(|_| "reader did not answer".to_string())??;
            if got != size {
                return Err(format!("reader got {got} bytes, {size} sent"));
            }
            Ok(t0.elapsed())
        };
        let r = repeat_stream(deadline, pass);
        drop(TcpStream::connect(addr));
        let _ = reader.join();
        let (n, d) = r?;
        Ok(mib_per_s(size * n, d))
    })();
    let _ = std::fs::remove_file(&path);
    r
}

// ---------------------------------------------------------------------------

fn main() {
    let cfg = match parse_args(std::env::args().skip(1).collect()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ftpbench: {e}");
            process::exit(2);
        }
    };
    if cfg.verbose {
        let _ = log::set_logger(&LOGGER);
        log::set_max_level(log::LevelFilter::Debug);
    } else {
        let _ = log::set_logger(&LOGGER);
        log::set_max_level(log::LevelFilter::Warn);
    }
    if cfg.loopback_limit {
        let r = loopback_limit(&cfg);
        let ok = r.is_ok();
        let what = format!("sendfile() of {} MiB over 127.0.0.1", cfg.size_mb);
        emit(cfg.json, "loopback_limit", &r, "MiB/s", &what);
        process::exit(if ok { 0 } else { 1 });
    }
    raise_nofile(cfg.clients as u64 * 2 + 256);
    let addr = match (cfg.host.as_str(), cfg.port)
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
    {
        Some(a) => a,
        None => {
            eprintln!("ftpbench: cannot resolve {}", cfg.host);
            process::exit(2);
        }
    };
    if !cfg.json {
        println!(
            "ftpbench: {addr}, {} clients, {} MiB single-stream, {} MiB concurrent files",
            cfg.clients, cfg.size_mb, cfg.conc_size_mb
        );
    }
    let tag = format!("ftpbench-{}", process::id());
    let tag = match &cfg.dir {
        Some(d) if !d.is_empty() => format!("{d}/{tag}"),
        _ => tag,
    };
    let mut b = Bench {
        cfg,
        addr,
        tag,
        fleet: None,
        pat: pattern(),
        buf: vec![0; IO_BUF],
        big_ready: false,
        conc_ready: false,
        rss_sessions_done: false,
        failures: 0,
    };
    b.run();
    process::exit(if b.failures > 0 { 1 } else { 0 });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies() {
        let mut b = b"220 hi\r\n230-a\r\n b\r\n230 c\r\n".to_vec();
        assert_eq!(take_reply(&mut b).unwrap().0, 220);
        let (c, t) = take_reply(&mut b).unwrap();
        assert_eq!(c, 230);
        assert!(t.ends_with("230 c"));
        assert!(b.is_empty());
        let mut p = b"150 partial".to_vec();
        assert!(take_reply(&mut p).is_none());
    }

    #[test]
    fn ports() {
        assert_eq!(
            parse_pasv("227 Entering Passive Mode (127,0,0,1,195,80).").unwrap(),
            50000
        );
        assert_eq!(
            parse_epsv("229 Entering Extended Passive Mode (|||50001|)").unwrap(),
            50001
        );
    }
}
