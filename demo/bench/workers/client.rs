//! Many FTP sessions on one mio event loop: each logs in (over explicit FTPS when asked:
//! AUTH TLS, then PBSZ 0 and PROT P after PASS), and RETRs one file again and again
//! (`Plan::cycle` off), or runs whole sessions one after another: connect, log in,
//! `Plan::retrs_per_session` RETRs, QUIT (`Plan::cycle` on).

use crate::conn::{base_tls, session_tls, Conn, Hs, Res};
use mio::{Events, Poll, Token};
use rustls::ClientConfig;
use std::collections::VecDeque;
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What the sessions do.
#[derive(Clone, Debug)]
pub struct Plan {
    pub tls: bool,
    pub user: String,
    pub pass: String,
    /// The file each RETR asks for, and its size in bytes.
    pub file: Option<(String, u64)>,
    /// Whole sessions one after another (connect ... QUIT), instead of RETRs on sessions
    /// that stay logged in.
    pub cycle: bool,
    /// RETRs per session when `cycle` is set.
    pub retrs_per_session: u32,
    /// Start TLS on a data connection after the 150 reply, as Python's ftplib does,
    /// instead of right after connecting, as curl does.
    pub late_hello: bool,
    /// At most this many sessions connected and not yet greeted at a time: connecting
    /// everything at once overruns a small listen backlog (pyftpdlib's is 100).
    pub window: usize,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum St {
    /// Not connected, waiting for its turn in the connect window (or not queued at all).
    Waiting,
    Greeting,
    Auth,
    User,
    Pass,
    Pbsz,
    Prot,
    Type,
    /// Logged in, nothing under way.
    Idle,
    Pasv,
    Prelim,
    Transfer,
    Quit,
    /// 221 received: waiting for the server to close the control connection.
    Closing,
    Done,
    Failed,
}

struct Client {
    ctrl: Option<Conn>,
    data: Option<Conn>,
    st: St,
    inbuf: Vec<u8>,
    tls: Option<Arc<ClientConfig>>,
    got: u64,
    data_done: bool,
    reply_ok: bool,
    retrs_this_session: u32,
}

/// What happened so far; the measurement takes the difference of two copies.
#[derive(Clone, Copy, Debug, Default)]
pub struct Counters {
    /// Bytes of file data received, counted as they arrive.
    pub bytes: u64,
    pub retrs: u64,
    /// Whole sessions ended with 221.
    pub sessions: u64,
    pub logins: u64,
    pub errors: u64,
    pub ctrl_full: u64,
    pub ctrl_resumed: u64,
    pub data_full: u64,
    pub data_resumed: u64,
}

pub struct Load {
    poll: Poll,
    events: Events,
    addr: SocketAddr,
    plan: Plan,
    base: Option<Arc<ClientConfig>>,
    clients: Vec<Client>,
    /// New RETRs and sessions may start.
    pub running: bool,
    greeting: usize,
    queue: VecDeque<usize>,
    pub c: Counters,
    pub first_error: Option<String>,
    /// The first control connection's TLS version and cipher suite.
    pub tls_desc: Option<String>,
    rbuf: Vec<u8>,
}

fn ctrl_token(i: usize) -> Token {
    Token(i * 2)
}

fn data_token(i: usize) -> Token {
    Token(i * 2 + 1)
}

impl Load {
    pub fn new(addr: SocketAddr, plan: Plan, n: usize) -> Res<Load> {
        let clients = (0..n)
            .map(|_| Client {
                ctrl: None,
                data: None,
                st: St::Waiting,
                inbuf: Vec::new(),
                tls: None,
                got: 0,
                data_done: false,
                reply_ok: false,
                retrs_this_session: 0,
            })
            .collect();
        Ok(Load {
            poll: Poll::new().map_err(|e| format!("poll: {e}"))?,
            events: Events::with_capacity(4096),
            addr,
            base: plan.tls.then(base_tls),
            plan,
            clients,
            running: false,
            greeting: 0,
            queue: VecDeque::new(),
            c: Counters::default(),
            first_error: None,
            tls_desc: None,
            rbuf: vec![0; 256 * 1024],
        })
    }

    /// Queues every session to connect.
    pub fn connect_all(&mut self) {
        for i in 0..self.clients.len() {
            self.clients[i].st = St::Waiting;
            self.queue.push_back(i);
        }
    }

    /// Sessions still logging in (connect window included).
    pub fn logging_in(&self) -> usize {
        let q = self.queue.len();
        q + self
            .clients
            .iter()
            .filter(|c| {
                matches!(
                    c.st,
                    St::Greeting | St::Auth | St::User | St::Pass | St::Pbsz | St::Prot | St::Type
                )
            })
            .count()
    }

    /// Sessions with a RETR under way.
    pub fn transferring(&self) -> usize {
        self.clients
            .iter()
            .filter(|c| matches!(c.st, St::Pasv | St::Prelim | St::Transfer))
            .count()
    }

    pub fn idle(&self) -> usize {
        self.clients.iter().filter(|c| c.st == St::Idle).count()
    }

    /// Sessions with a connection open or about to be.
    pub fn open(&self) -> usize {
        self.queue.len()
            + self
                .clients
                .iter()
                .filter(|c| !matches!(c.st, St::Waiting | St::Done | St::Failed))
                .count()
    }

    /// Starts a RETR on every idle session (`running` must be set).
    pub fn kick_idle(&mut self) {
        for i in 0..self.clients.len() {
            if self.clients[i].st == St::Idle {
                if let Err(e) = self.next_step(i) {
                    self.fail(i, e);
                }
            }
        }
    }

    /// Sends QUIT on every idle session.
    pub fn quit_idle(&mut self) {
        for i in 0..self.clients.len() {
            if self.clients[i].st == St::Idle {
                self.clients[i].st = St::Quit;
                if let Err(e) = self.send(i, "QUIT") {
                    self.fail(i, e);
                }
            }
        }
    }

    /// Forgets the sessions waiting to connect.
    pub fn drop_queue(&mut self) {
        while let Some(i) = self.queue.pop_front() {
            self.clients[i].st = St::Done;
        }
    }

    /// Closes everything still open.
    pub fn close_all(&mut self) {
        for i in 0..self.clients.len() {
            self.close(i);
        }
    }

    /// One turn of the loop: waits up to `wait` for events and handles them.
    pub fn turn(&mut self, wait: Duration) -> Res<()> {
        self.top_up();
        if let Err(e) = self.poll.poll(&mut self.events, Some(wait)) {
            if e.kind() == ErrorKind::Interrupted {
                return Ok(());
            }
            return Err(format!("poll: {e}"));
        }
        let tokens: Vec<Token> = self.events.iter().map(|e| e.token()).collect();
        for t in tokens {
            let i = t.0 / 2;
            if i >= self.clients.len() {
                continue;
            }
            let r = if t.0 % 2 == 0 {
                self.ctrl_io(i)
            } else {
                self.data_io(i)
            };
            if let Err(e) = r {
                self.fail(i, e);
            }
        }
        self.top_up();
        Ok(())
    }

    /// Turns the loop while `busy` says so, until `deadline`; Err past it.
    pub fn run_while(&mut self, busy: impl Fn(&Load) -> bool, deadline: Instant) -> Res<()> {
        while busy(self) {
            let now = Instant::now();
            if now >= deadline {
                return Err("deadline passed".into());
            }
            self.turn((deadline - now).min(Duration::from_millis(100)))?;
        }
        Ok(())
    }

    fn top_up(&mut self) {
        while self.greeting < self.plan.window {
            let Some(i) = self.queue.pop_front() else {
                break;
            };
            let cl = &mut self.clients[i];
            cl.inbuf.clear();
            cl.retrs_this_session = 0;
            cl.tls = self.base.as_ref().map(session_tls);
            match Conn::connect(self.addr, self.poll.registry(), ctrl_token(i)) {
                Ok(c) => {
                    cl.ctrl = Some(c);
                    cl.st = St::Greeting;
                    self.greeting += 1;
                }
                Err(e) => self.fail(i, e),
            }
        }
    }

    fn close(&mut self, i: usize) {
        let cl = &mut self.clients[i];
        if let Some(d) = cl.data.take() {
            d.close(self.poll.registry());
        }
        if let Some(c) = cl.ctrl.take() {
            c.close(self.poll.registry());
        }
    }

    fn fail(&mut self, i: usize, err: String) {
        if matches!(self.clients[i].st, St::Failed | St::Done) {
            return;
        }
        if self.clients[i].st == St::Greeting {
            self.greeting -= 1;
        }
        self.c.errors += 1;
        if self.first_error.is_none() {
            self.first_error = Some(format!("{:?}: {err}", self.clients[i].st));
        }
        self.close(i);
        if self.plan.cycle && self.running {
            // A new session takes its place, as a new client would.
            self.clients[i].st = St::Waiting;
            self.queue.push_back(i);
        } else {
            self.clients[i].st = St::Failed;
        }
    }

    fn send(&mut self, i: usize, line: &str) -> Res<()> {
        let ctrl = self.clients[i]
            .ctrl
            .as_mut()
            .ok_or("no control connection")?;
        ctrl.send(format!("{line}\r\n").as_bytes())
    }

    fn ctrl_io(&mut self, i: usize) -> Res<()> {
        let Load {
            clients,
            rbuf,
            c,
            tls_desc,
            ..
        } = self;
        let cl = &mut clients[i];
        let Some(ctrl) = cl.ctrl.as_mut() else {
            return Ok(());
        };
        let inbuf = &mut cl.inbuf;
        let eof = ctrl.read(rbuf, &mut |b| inbuf.extend_from_slice(b))?;
        match ctrl.take_handshake() {
            Some(Hs::Full) => c.ctrl_full += 1,
            Some(Hs::Resumed) => c.ctrl_resumed += 1,
            None => {}
        }
        if tls_desc.is_none() {
            *tls_desc = ctrl.describe();
        }
        if inbuf.len() > 1 << 20 {
            return Err("control reply too long".into());
        }
        while let Some((code, text)) = take_reply(&mut self.clients[i].inbuf) {
            self.on_reply(i, code, &text)?;
        }
        match (eof, self.clients[i].st) {
            (true, St::Closing) => {
                self.session_ended(i);
                Ok(())
            }
            (true, _) => Err("server closed the control connection".into()),
            _ => Ok(()),
        }
    }

    fn data_io(&mut self, i: usize) -> Res<()> {
        let Load {
            clients, rbuf, c, ..
        } = self;
        let cl = &mut clients[i];
        let Some(data) = cl.data.as_mut() else {
            return Ok(());
        };
        let got = &mut cl.got;
        let mut bytes = 0u64;
        let eof = data.read(rbuf, &mut |b| {
            *got += b.len() as u64;
            bytes += b.len() as u64;
        })?;
        c.bytes += bytes;
        match data.take_handshake() {
            Some(Hs::Full) => c.data_full += 1,
            Some(Hs::Resumed) => c.data_resumed += 1,
            None => {}
        }
        let want = self.plan.file.as_ref().map_or(0, |f| f.1);
        if cl.got > want {
            return Err(format!("RETR returned more than the {want} bytes expected"));
        }
        if !eof {
            return Ok(());
        }
        if cl.got != want {
            return Err(format!("RETR returned {} bytes, {want} expected", cl.got));
        }
        if let Some(d) = cl.data.take() {
            d.close(self.poll.registry());
        }
        cl.data_done = true;
        if cl.reply_ok {
            self.retr_done(i)?;
        }
        Ok(())
    }

    /// The server closed the control connection after its 221.
    fn session_ended(&mut self, i: usize) {
        self.close(i);
        if self.plan.cycle {
            self.c.sessions += 1;
            if self.running {
                self.clients[i].st = St::Waiting;
                self.queue.push_back(i);
                return;
            }
        }
        self.clients[i].st = St::Done;
    }

    fn retr_done(&mut self, i: usize) -> Res<()> {
        self.c.retrs += 1;
        self.clients[i].retrs_this_session += 1;
        self.next_step(i)
    }

    /// A logged-in session with nothing under way: RETR, QUIT or wait.
    fn next_step(&mut self, i: usize) -> Res<()> {
        let retr = self.plan.file.is_some()
            && if self.plan.cycle {
                self.clients[i].retrs_this_session < self.plan.retrs_per_session
            } else {
                self.running
            };
        if retr {
            self.clients[i].st = St::Pasv;
            return self.send(i, "PASV");
        }
        if self.plan.cycle {
            self.clients[i].st = St::Quit;
            return self.send(i, "QUIT");
        }
        self.clients[i].st = St::Idle;
        Ok(())
    }

    fn logged_in(&mut self, i: usize) -> Res<()> {
        self.c.logins += 1;
        if self.plan.tls {
            self.clients[i].st = St::Pbsz;
            return self.send(i, "PBSZ 0");
        }
        self.after_login(i)
    }

    fn after_login(&mut self, i: usize) -> Res<()> {
        if self.plan.file.is_some() {
            self.clients[i].st = St::Type;
            return self.send(i, "TYPE I");
        }
        self.next_step(i)
    }

    fn on_reply(&mut self, i: usize, code: u16, text: &str) -> Res<()> {
        let st = self.clients[i].st;
        match (st, code) {
            (St::Greeting, 120) => Ok(()),
            (St::Greeting, 220) => {
                self.greeting -= 1;
                if self.plan.tls {
                    self.clients[i].st = St::Auth;
                    self.send(i, "AUTH TLS")
                } else {
                    self.clients[i].st = St::User;
                    let line = format!("USER {}", self.plan.user);
                    self.send(i, &line)
                }
            }
            (St::Auth, 234) => {
                let cfg = self.clients[i].tls.clone().ok_or("no TLS settings")?;
                self.clients[i]
                    .ctrl
                    .as_mut()
                    .ok_or("no control connection")?
                    .start_tls(cfg)?;
                self.clients[i].st = St::User;
                let line = format!("USER {}", self.plan.user);
                self.send(i, &line)
            }
            (St::User, 331) => {
                self.clients[i].st = St::Pass;
                let line = format!("PASS {}", self.plan.pass);
                self.send(i, &line)
            }
            (St::User, 230) | (St::Pass, 230) | (St::Pass, 202) => self.logged_in(i),
            (St::Pbsz, 200) => {
                self.clients[i].st = St::Prot;
                self.send(i, "PROT P")
            }
            (St::Prot, 200) => self.after_login(i),
            (St::Type, 200) => self.next_step(i),
            (St::Pasv, 227) => {
                let port = parse_pasv(text)?;
                let mut data = Conn::connect(
                    SocketAddr::new(self.addr.ip(), port),
                    self.poll.registry(),
                    data_token(i),
                )?;
                if !self.plan.late_hello {
                    if let Some(cfg) = self.clients[i].tls.clone() {
                        data.start_tls(cfg)?;
                    }
                }
                let cl = &mut self.clients[i];
                cl.data = Some(data);
                cl.got = 0;
                cl.data_done = false;
                cl.reply_ok = false;
                cl.st = St::Prelim;
                let line = format!("RETR {}", self.plan.file.as_ref().map_or("", |f| &f.0));
                self.send(i, &line)
            }
            (St::Prelim, 125) | (St::Prelim, 150) => {
                let cl = &mut self.clients[i];
                cl.st = St::Transfer;
                match (&cl.tls, cl.data.as_mut()) {
                    (Some(cfg), Some(data)) if self.plan.late_hello => data.start_tls(cfg.clone()),
                    _ => Ok(()),
                }
            }
            (St::Transfer, 226) | (St::Transfer, 250) => {
                self.clients[i].reply_ok = true;
                if self.clients[i].data_done {
                    self.retr_done(i)
                } else {
                    Ok(()) // the rest of the file is still on its way
                }
            }
            (St::Quit, 221) => {
                self.clients[i].st = St::Closing;
                Ok(())
            }
            _ => Err(format!("unexpected reply: {text}")),
        }
    }
}

/// Takes one complete reply (single or multi-line) off the front of `buf`.
pub fn take_reply(buf: &mut Vec<u8>) -> Option<(u16, String)> {
    let mut start = 0;
    let mut code: Option<[u8; 3]> = None;
    while let Some(nl) = buf[start..].iter().position(|&b| b == b'\n') {
        let line = &buf[start..start + nl];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let end = start + nl + 1;
        let digits = line.len() >= 3 && line[..3].iter().all(u8::is_ascii_digit);
        let last = match code {
            None if !digits => {
                let text = String::from_utf8_lossy(line).into_owned();
                buf.drain(..end);
                return Some((0, text)); // not an FTP reply: code 0 fails
            }
            None if line.get(3) == Some(&b'-') => {
                code = Some([line[0], line[1], line[2]]);
                false
            }
            None => true,
            Some(c) => digits && line[..3] == c && line.get(3).is_none_or(|&b| b == b' '),
        };
        if last {
            let c = &line[..3];
            let n = c.iter().fold(0u16, |a, &d| a * 10 + (d - b'0') as u16);
            let text = String::from_utf8_lossy(&buf[..end]).trim_end().to_string();
            buf.drain(..end);
            return Some((n, text));
        }
        start = end;
    }
    None
}

/// Port from a 227 reply: "227 Entering Passive Mode (h1,h2,h3,h4,p1,p2)".
pub fn parse_pasv(text: &str) -> Res<u16> {
    let nums: Vec<u32> = text
        .get(4..)
        .unwrap_or("")
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|s| s.parse().ok())
        .collect();
    match nums[..] {
        [.., p1, p2] if nums.len() >= 6 && p1 < 256 && p2 < 256 => Ok((p1 * 256 + p2) as u16),
        _ => Err(format!("cannot parse PASV reply {text:?}")),
    }
}
