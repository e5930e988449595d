//! The session state machine: command lines and data-channel events in, replies and
//! actions out (pyftpdlib's `FTPHandler.ftp_*` methods, without the sockets).
//!
//! Before working on this file read RFC 959 (FTP), RFC 1123 section 4.1 (FTP requirements),
//! RFC 2428 (EPRT, EPSV), RFC 2577 (security: PORT checks, login delays), RFC 2389 (FEAT),
//! RFC 3659 (SIZE, MDTM, REST), RFC 4217 (AUTH, PBSZ, PROT: FTP over TLS).
//!
//! A [`Session`] owns no socket and reads no clock. Its owner, the control channel, feeds it
//! complete lines ([`handle_line`](Session::handle_line)), results from the data side
//! ([`handle_passive_ready`](Session::handle_passive_ready),
//! [`handle_data_connected`](Session::handle_data_connected),
//! [`handle_transfer_done`](Session::handle_transfer_done), ...) and the current time, then
//! collects the reply bytes ([`output`](Session::output)), the [`Action`]s to carry out
//! ([`poll_action`](Session::poll_action)) and the next deadline
//! ([`poll_timeout`](Session::poll_timeout)).
//!
//! Filesystem calls are made here, synchronously, through the session's [`Filesystem`]; a
//! file to transfer is opened here and handed over in the [`Transfer`], so a later command
//! can never change which file a pending transfer uses.

use std::collections::VecDeque;
use std::fs::File;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use crate::authorizer::Perms;
use crate::config::Config;
use crate::control::command::{self, Arg, CommandSpec, Verb, COMMANDS};
use crate::control::reply::{quote_path, Reply};
use crate::filesystem::legacy::Filesystem;
use crate::hooks::{Hooks, SessionInfo, TransferRecord};
use crate::listing::{self, NameCache};
use crate::logger;

/// Something the session needs its owner to do.
#[derive(Debug)]
pub enum Action {
    /// Drop the data channel (listener, pending connection or socket) and any transfer on
    /// it, without reporting back.
    CloseData,
    /// Open a passive listener on the control connection's local address; report with
    /// [`Session::handle_passive_ready`].
    Listen {
        /// EPSV rather than PASV.
        extended: bool,
    },
    /// Connect to the client for an active transfer; report with
    /// [`Session::handle_data_connected`] or [`Session::handle_data_failed`].
    Connect(SocketAddr),
    /// Run a transfer on the data channel, now or as soon as it is connected; report with
    /// [`Session::handle_transfer_done`].
    Transfer(Transfer),
    /// Close the control connection once the queued replies are written.
    Close,
    /// A login failed: the owner counts it against the client's address (flood limits).
    LoginFailed,
    /// Switch the control connection to TLS once the queued replies (the 234 to AUTH) are
    /// written, discarding whatever plaintext the client sent after AUTH; then call
    /// [`Session::handle_tls_started`].
    StartTls,
    /// CCC: once the 200 is written, send close_notify, read up to the client's, and go on
    /// in plaintext; then call [`Session::handle_tls_ended`].
    EndTls,
}

/// A transfer for the data channel to run.
#[derive(Debug)]
pub struct Transfer {
    /// What moves, and which way.
    pub direction: Direction,
    /// TYPE A: convert line endings (LF to CRLF when sending, CRLF to LF when receiving).
    pub ascii: bool,
    /// Whether sendfile(2) may be used (binary file sends in the clear only).
    pub use_sendfile: bool,
    /// PROT P: the data connection runs TLS, the server in the server role.
    pub tls: bool,
}

/// The two directions of a transfer.
#[derive(Debug)]
pub enum Direction {
    /// Server to client.
    Send(Source),
    /// Client to server, into this file (already positioned).
    Receive(File),
}

/// What a sending transfer sends.
#[derive(Debug)]
pub enum Source {
    /// A file from `offset` to its end.
    File {
        /// The open file.
        file: File,
        /// Where to start (REST).
        offset: u64,
    },
    /// Bytes made in memory: a listing.
    Bytes(Vec<u8>),
}

/// Why a data connection could not be made or kept.
#[derive(Debug)]
pub enum DataFailure {
    /// The active connection failed.
    ConnectFailed(io::Error),
    /// The active connection did not complete in time.
    ConnectTimeout,
    /// Nobody connected to the passive listener in time.
    AcceptTimeout,
    /// A connection to the passive listener came from a foreign address; the listener stays.
    ForeignPeer(SocketAddr),
}

/// How a transfer ended.
#[derive(Debug)]
pub enum TransferError {
    /// The data connection failed or closed early.
    Connection(io::Error),
    /// Reading or writing the local file failed.
    File(io::Error),
    /// No progress for the data timeout.
    Stalled,
    /// The data connection's TLS failed: handshake, protocol error, missing session reuse.
    Tls(String),
}

/// The state of the data connection as the session sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DataState {
    None,
    Listening,
    Connecting,
    Connected,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum XferKind {
    Retr,
    Store,
    Listing,
}

/// The transfer the session is waiting on.
#[derive(Debug)]
struct Pending {
    kind: XferKind,
    verb: &'static str,
    ftp_path: String,
    real: PathBuf,
    started: Instant,
    ascii: bool,
}

/// A reply held back until a deadline (the failed-login delay).
#[derive(Debug)]
struct Delayed {
    at: Instant,
    reply: Reply,
    close: bool,
}

/// Login state.
#[derive(Debug)]
enum Auth {
    /// No USER yet, or a failed PASS.
    Anonymous,
    /// USER given, PASS awaited.
    UserGiven(String),
    /// Logged in.
    LoggedIn(String),
}

/// One FTP session, without sockets.
#[doc(alias = "FTPHandler")]
pub struct Session {
    config: Arc<Config>,
    peer: SocketAddr,
    local: SocketAddr,
    auth: Auth,
    fs: Option<Box<dyn Filesystem>>,
    attempts: u32,
    out: Vec<u8>,
    actions: VecDeque<Action>,
    idle_deadline: Option<Instant>,
    /// Connect time plus `login_timeout`, until the login succeeds.
    login_deadline: Option<Instant>,
    /// Start of the current one-second window of the command-rate limit, and the commands
    /// seen in it.
    rate_window: Instant,
    rate_count: u32,
    delayed: Option<Delayed>,
    ascii: bool,
    rest: Option<u64>,
    rnfr: Option<PathBuf>,
    data: DataState,
    /// PORT/EPRT sent, connection pending: no further command until it settles, so replies
    /// stay in order.
    awaiting_connect: bool,
    pending: Option<Pending>,
    transfer_running: bool,
    epsv_all: bool,
    quit_pending: bool,
    /// ABOR of a pending transfer sent; waiting for the data channel's report.
    aborting: bool,
    /// The facts MLSD and MLST show (OPTS MLST).
    mlst_facts: Vec<&'static str>,
    /// A hook panicked: the session ends at the next chance.
    hook_panicked: std::cell::Cell<bool>,
    closed: bool,
    /// The end-of-session hooks have run.
    finished: bool,
    /// The control connection is protected by TLS (or will be once the 234 is out).
    control_tls: bool,
    /// AUTH answered with 234; no command is taken until the owner switched to TLS.
    tls_switching: bool,
    /// PBSZ given (RFC 4217 wants it before PROT).
    pbsz: bool,
    /// PROT P: data connections run TLS.
    prot_private: bool,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("peer", &self.peer)
            .field("auth", &self.auth)
            .field("data", &self.data)
            .field("closed", &self.closed)
            .finish_non_exhaustive()
    }
}

/// An impersonation in force: [`end`](Impersonation::end) terminates it and reports the
/// outcome; dropping it unended (a panic) terminates it too.
struct Impersonation<'a> {
    authorizer: &'a dyn crate::Authorizer,
    user: &'a str,
}

impl Impersonation<'_> {
    fn end(self) -> Result<(), crate::AuthError> {
        let result = self.authorizer.terminate_impersonation(self.user);
        std::mem::forget(self);
        result
    }
}

impl Drop for Impersonation<'_> {
    fn drop(&mut self) {
        let _ = self.authorizer.terminate_impersonation(self.user);
    }
}

/// The text of an I/O error without Rust's " (os error N)" suffix.
pub fn strerror(e: &io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

/// Normalises an IPv4-mapped IPv6 address to IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}

/// Strips `ls`-style flags (`-l`, `-la`, `-1`, ...) that clients put before a LIST/NLST path.
fn strip_ls_flags(arg: &str) -> &str {
    let mut rest = arg.trim_start();
    while rest.starts_with('-') {
        match rest.find(' ') {
            Some(i) => rest = rest[i..].trim_start(),
            None => return "",
        }
    }
    rest
}

/// Parses an RFC 3659 time-val, `YYYYMMDDHHMMSS` with optional `.sss`, into Unix seconds.
fn parse_time_val(s: &str) -> Option<i64> {
    let digits = s.split_once('.').map_or(s, |(d, frac)| {
        if frac.bytes().all(|b| b.is_ascii_digit()) {
            d
        } else {
            ""
        }
    });
    if digits.len() != 14 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n = |a: usize, b: usize| digits[a..b].parse::<u32>().ok();
    let t = listing::CivilTime {
        year: i64::from(n(0, 4)?),
        month: n(4, 6)?,
        day: n(6, 8)?,
        hour: n(8, 10)?,
        minute: n(10, 12)?,
        second: n(12, 14)?,
    };
    let valid = (1..=12).contains(&t.month)
        && (1..=31).contains(&t.day)
        && t.hour < 24
        && t.minute < 60
        && t.second < 61;
    // Round-tripping rejects dates such as February 30.
    let secs = t.to_unix();
    (valid && listing::CivilTime::from_unix(secs).day == t.day).then_some(secs)
}

/// Parses PORT's `h1,h2,h3,h4,p1,p2`.
fn parse_port(arg: &str) -> Option<SocketAddr> {
    let nums: Vec<u8> = arg
        .trim()
        .split(',')
        .map(|p| p.trim().parse().ok())
        .collect::<Option<_>>()?;
    if nums.len() != 6 {
        return None;
    }
    let ip = Ipv4Addr::new(nums[0], nums[1], nums[2], nums[3]);
    let port = u16::from(nums[4]) << 8 | u16::from(nums[5]);
    Some(SocketAddr::new(IpAddr::V4(ip), port))
}

/// Parses EPRT's `|af|addr|port|`: `Ok((af, addr))`, or `Err(())` for bad syntax.
fn parse_eprt(arg: &str) -> Result<(String, Option<SocketAddr>), ()> {
    let delim = arg.chars().next().ok_or(())?;
    if !(33..=126).contains(&(delim as u32)) {
        return Err(());
    }
    let parts: Vec<&str> = arg.split(delim).collect();
    if parts.len() != 5 || !parts[0].is_empty() || !parts[4].is_empty() {
        return Err(());
    }
    let af = parts[1].to_string();
    let port: u16 = parts[3].parse().map_err(|_| ())?;
    let ip = match af.as_str() {
        "1" => parts[2].parse::<Ipv4Addr>().map(IpAddr::V4).ok(),
        "2" => parts[2].parse::<Ipv6Addr>().map(IpAddr::V6).ok(),
        _ => return Ok((af, None)),
    };
    match ip {
        Some(ip) if port != 0 => Ok((af, Some(SocketAddr::new(ip, port)))),
        _ => Err(()),
    }
}

impl Session {
    /// A new session for a client at `peer` that reached us at `local`; queues the 220
    /// greeting.
    pub fn new(config: Arc<Config>, peer: SocketAddr, local: SocketAddr, now: Instant) -> Session {
        let mut s = Session {
            idle_deadline: config.timeout.map(|t| now + t),
            login_deadline: config.login_timeout.map(|t| now + t),
            rate_window: now,
            rate_count: 0,
            config,
            peer: SocketAddr::new(canonical(peer.ip()), peer.port()),
            local: SocketAddr::new(canonical(local.ip()), local.port()),
            auth: Auth::Anonymous,
            fs: None,
            attempts: 0,
            out: Vec::new(),
            actions: VecDeque::new(),
            delayed: None,
            ascii: false,
            rest: None,
            rnfr: None,
            data: DataState::None,
            awaiting_connect: false,
            pending: None,
            transfer_running: false,
            epsv_all: false,
            quit_pending: false,
            aborting: false,
            mlst_facts: listing::MLSX_DEFAULT_FACTS.to_vec(),
            hook_panicked: std::cell::Cell::new(false),
            closed: false,
            finished: false,
            control_tls: false,
            tls_switching: false,
            pbsz: false,
            prot_private: false,
        };
        let banner = s.config.banner.clone();
        s.reply(220, banner);
        s.log("FTP session opened (connect)");
        s.hook(|h, i| h.on_connect(i));
        s
    }

    // ---- outputs -------------------------------------------------------------------

    /// Reply bytes waiting to be written; drain with [`consume_output`](Self::consume_output).
    pub fn output(&self) -> &[u8] {
        &self.out
    }

    /// Marks `n` bytes of [`output`](Self::output) as written.
    pub fn consume_output(&mut self, n: usize) {
        self.out.drain(..n.min(self.out.len()));
    }

    /// The next action for the owner to carry out.
    pub fn poll_action(&mut self) -> Option<Action> {
        // The owner collects actions after every input, so a hook that panicked during that
        // input ends the session here.
        self.check_hooks();
        self.actions.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) should next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.closed {
            return None;
        }
        let next = if let Some(d) = &self.delayed {
            Some(d.at)
        } else if self.pending.is_some() || self.awaiting_connect {
            // Idle time does not run during a transfer: the data channel has its own.
            None
        } else {
            self.idle_deadline
        };
        match (next, self.login_deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Whether the owner should hand over the next command line now. False while a reply
    /// is held back, while an active connection is pending, and after QUIT.
    pub fn accepts_commands(&self) -> bool {
        !self.closed
            && self.delayed.is_none()
            && !self.awaiting_connect
            && !self.quit_pending
            && !self.aborting
            && !self.tls_switching
    }

    /// Marks the control connection as TLS from the first byte (implicit FTPS). Data
    /// connections start protected too, as implicit FTPS clients expect.
    pub fn set_implicit_tls(&mut self) {
        self.control_tls = true;
        self.prot_private = true;
    }

    /// The owner switched the control connection to TLS after [`Action::StartTls`]; commands
    /// are taken again (from the TLS stream).
    pub fn handle_tls_started(&mut self, now: Instant) {
        self.tls_switching = false;
        if let Some(t) = self.config.timeout {
            self.idle_deadline = Some(now + t);
        }
    }

    /// The control connection is back to plaintext after CCC.
    pub fn handle_tls_ended(&mut self, now: Instant) {
        self.tls_switching = false;
        self.control_tls = false;
        self.log("control connection back to plaintext (CCC)");
        if let Some(t) = self.config.timeout {
            self.idle_deadline = Some(now + t);
        }
    }

    /// Whether the control connection is protected by TLS.
    pub fn control_tls(&self) -> bool {
        self.control_tls
    }

    /// Whether data connections are to be protected (PROT P).
    pub fn data_protected(&self) -> bool {
        self.prot_private
    }

    /// Whether the session has ended; the owner closes the connection once output is written.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// The client's address (IPv4-mapped addresses shown as IPv4).
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// The logged-in user, if any.
    pub fn username(&self) -> Option<&str> {
        match &self.auth {
            Auth::LoggedIn(u) => Some(u),
            _ => None,
        }
    }

    /// Whether a transfer has been queued or is running.
    pub fn transfer_pending(&self) -> bool {
        self.pending.is_some()
    }

    fn info(&self) -> SessionInfo<'_> {
        let username = match &self.auth {
            Auth::Anonymous => "",
            Auth::UserGiven(u) | Auth::LoggedIn(u) => u,
        };
        SessionInfo {
            peer: self.peer,
            username,
        }
    }

    /// Runs one hook. A panicking hook is caught and logged; the session then ends (see
    /// [`check_hooks`](Self::check_hooks)) and the rest of the server carries on.
    fn hook(&self, f: impl FnOnce(&dyn Hooks, SessionInfo<'_>)) {
        let hooks = Arc::clone(&self.config.hooks);
        let info = self.info();
        if catch_unwind(AssertUnwindSafe(|| f(hooks.as_ref(), info))).is_err() {
            logger::logerror(&format!(
                "{} a hook panicked; closing the session",
                self.prefix()
            ));
            self.hook_panicked.set(true);
        }
    }

    /// Ends the session if a hook panicked during the last input; called from
    /// [`poll_action`](Self::poll_action).
    fn check_hooks(&mut self) {
        if self.hook_panicked.get() && !self.closed {
            self.reply(421, "Internal error; closing the connection.");
            self.close();
        }
    }

    fn prefix(&self) -> String {
        format!("{}-[{}]", self.peer, self.username().unwrap_or(""))
    }

    fn log(&self, msg: &str) {
        if log::log_enabled!(target: logger::LOG, log::Level::Info) {
            log::info!(target: logger::LOG, "{} {msg}", self.prefix());
        }
    }

    fn reply(&mut self, code: u16, text: impl Into<String>) {
        let r = Reply::new(code, text);
        if log::log_enabled!(target: logger::LINE, log::Level::Debug) {
            log::debug!(target: logger::LINE, "{} -> {r}", self.prefix());
        }
        r.encode(&mut self.out);
    }

    fn close(&mut self) {
        if !self.closed {
            self.closed = true;
            self.actions.push_back(Action::CloseData);
            self.actions.push_back(Action::Close);
        }
    }

    // ---- inputs --------------------------------------------------------------------

    /// Handles one command line (without its CRLF).
    pub fn handle_line(&mut self, now: Instant, line: &[u8]) {
        if self.closed || self.flooding(now) {
            return;
        }
        if let Some(t) = self.config.timeout {
            self.idle_deadline = Some(now + t);
        }
        let req = command::parse_line(line);
        if log::log_enabled!(target: logger::LINE, log::Level::Debug) {
            let shown = if req.name == "PASS" {
                "PASS ******".to_string()
            } else {
                String::from_utf8_lossy(line).into_owned()
            };
            log::debug!(target: logger::LINE, "{} <- {shown}", self.prefix());
        }
        if req.name.is_empty() {
            self.reply(500, "Command \"\" not understood.");
            return;
        }
        let Some(spec) = command::lookup(&req.name) else {
            let name = req.name.chars().take(32).collect::<String>();
            self.reply(500, format!("Command \"{name}\" not understood."));
            return;
        };
        self.run(now, spec, &req.arg);
    }

    /// Handles a line that exceeded [`command::MAX_LINE`]; the owner has dropped it.
    pub fn handle_line_too_long(&mut self, now: Instant) {
        if self.closed || self.flooding(now) {
            return;
        }
        if let Some(t) = self.config.timeout {
            self.idle_deadline = Some(now + t);
        }
        self.reply(500, "Command too long.");
    }

    /// Counts a command against `max_commands_per_sec`; past the limit, answers 421 and
    /// closes the session. Returns whether it did.
    fn flooding(&mut self, now: Instant) -> bool {
        let max = self.config.flood.max_commands_per_sec;
        if max == 0 {
            return false;
        }
        if now.saturating_duration_since(self.rate_window) >= std::time::Duration::from_secs(1) {
            self.rate_window = now;
            self.rate_count = 0;
        }
        self.rate_count += 1;
        if self.rate_count <= max {
            return false;
        }
        self.reply(421, "Too many commands per second.");
        self.log("Too many commands per second; closing.");
        self.close();
        true
    }

    /// Called when deadlines from [`poll_timeout`](Self::poll_timeout) pass.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.closed {
            return;
        }
        if self.login_deadline.is_some_and(|d| d <= now) {
            // A failed-login reply still held back is dropped: the 421 says it all.
            self.delayed = None;
            self.reply(421, "Login timed out.");
            self.log("Login timed out.");
            self.close();
            return;
        }
        if let Some(d) = &self.delayed {
            if d.at <= now {
                let Some(d) = self.delayed.take() else { return };
                self.reply(d.reply.code, d.reply.text);
                if d.close {
                    self.close();
                }
            }
            return;
        }
        if self.pending.is_some() || self.awaiting_connect {
            return;
        }
        if self.idle_deadline.is_some_and(|d| d <= now) {
            self.reply(421, "Control connection timed out.");
            self.log("Control connection timed out.");
            self.close();
        }
    }

    /// The control connection is gone (the peer closed it, it failed, or the server closed
    /// it). `bytes` is what the data channel had moved of a transfer still running. Ends the
    /// session.
    pub fn handle_closed(&mut self, now: Instant, bytes: Option<u64>) {
        if let Some(p) = self.pending.take() {
            self.end_transfer(now, &p, bytes.unwrap_or(0), false);
        }
        self.finish();
    }

    /// Runs the hooks and log line of the end of a session. Idempotent.
    fn finish(&mut self) {
        if std::mem::replace(&mut self.finished, true) {
            return;
        }
        self.closed = true;
        self.delayed = None;
        if let Auth::LoggedIn(_) = self.auth {
            self.hook(|h, i| h.on_logout(i));
        }
        self.hook(|h, i| h.on_disconnect(i));
        self.log("FTP session closed (disconnect).");
        self.auth = Auth::Anonymous;
    }

    /// The passive listener is bound (or failed to be).
    pub fn handle_passive_ready(
        &mut self,
        _now: Instant,
        result: io::Result<SocketAddr>,
        extended: bool,
    ) {
        match result {
            Ok(addr) => {
                self.data = DataState::Listening;
                if extended {
                    self.reply(
                        229,
                        format!("Entering extended passive mode (|||{}|).", addr.port()),
                    );
                } else {
                    let mapped = self
                        .config
                        .masquerade_map
                        .iter()
                        .find(|r| r.matches(self.peer.ip()))
                        .map(|r| r.address);
                    let ip = match mapped.or(self.config.masquerade_address) {
                        Some(IpAddr::V4(ip)) => ip,
                        _ => match canonical(addr.ip()) {
                            IpAddr::V4(ip) => ip,
                            IpAddr::V6(_) => Ipv4Addr::UNSPECIFIED,
                        },
                    };
                    let [a, b, c, d] = ip.octets();
                    let port = addr.port();
                    self.reply(
                        227,
                        format!(
                            "Entering passive mode ({a},{b},{c},{d},{},{}).",
                            port >> 8,
                            port & 0xff
                        ),
                    );
                }
            }
            Err(e) => {
                self.data = DataState::None;
                logger::logerror(&format!(
                    "{} can't open passive listener: {e}",
                    self.prefix()
                ));
                self.reply(425, "Can't open passive connection.");
            }
        }
    }

    /// The data connection is up (passive accept or active connect).
    pub fn handle_data_connected(&mut self, _now: Instant) {
        let was = self.data;
        self.data = DataState::Connected;
        if was == DataState::Connecting && self.awaiting_connect {
            self.awaiting_connect = false;
            self.reply(200, "Active data connection established.");
        }
        if self.pending.is_some() {
            self.transfer_running = true;
        }
    }

    /// The data connection could not be made.
    pub fn handle_data_failed(&mut self, now: Instant, why: DataFailure) {
        match why {
            DataFailure::ForeignPeer(addr) => {
                self.reply(
                    425,
                    format!("Rejected data connection from foreign address {addr}."),
                );
                return;
            }
            DataFailure::ConnectFailed(e) => {
                self.log(&format!("active connection failed: {e}"));
                self.reply(425, "Can't connect to specified address.");
            }
            DataFailure::ConnectTimeout => {
                self.reply(421, "Active data channel timed out.");
                self.log("Active data channel timed out.");
            }
            DataFailure::AcceptTimeout => {
                self.reply(421, "Passive data channel timed out.");
                self.log("Passive data channel timed out.");
            }
        }
        self.awaiting_connect = false;
        self.data = DataState::None;
        if let Some(p) = self.pending.take() {
            self.end_transfer(now, &p, 0, false);
        }
        if let Some(t) = self.config.timeout {
            self.idle_deadline = Some(now + t);
        }
        self.after_transfer();
    }

    /// A transfer ended; `bytes` is what moved over the data connection.
    pub fn handle_transfer_done(
        &mut self,
        now: Instant,
        bytes: u64,
        result: Result<(), TransferError>,
    ) {
        self.data = DataState::None;
        self.transfer_running = false;
        if let Some(t) = self.config.timeout {
            self.idle_deadline = Some(now + t);
        }
        let Some(p) = self.pending.take() else {
            return;
        };
        let ok = result.is_ok();
        let stalled = matches!(result, Err(TransferError::Stalled));
        match result {
            Ok(()) => self.reply(226, "Transfer complete."),
            Err(TransferError::Connection(e)) => self.reply(
                426,
                format!(
                    "Connection closed; transfer aborted ({}, {bytes} bytes moved).",
                    strerror(&e)
                ),
            ),
            Err(TransferError::File(e)) => {
                self.reply(426, format!("{}; transfer aborted.", strerror(&e)))
            }
            Err(TransferError::Stalled) => {
                self.reply(421, "Data connection timed out.");
                self.log("Data connection timed out.");
            }
            Err(TransferError::Tls(msg)) => {
                self.log(&format!("data connection: {msg}"));
                self.reply(522, format!("{msg}."));
            }
        }
        self.end_transfer(now, &p, bytes, ok);
        if stalled {
            // As pyftpdlib does: a stalled transfer ends the session.
            self.close();
            return;
        }
        self.after_transfer();
    }

    /// The one place a file transfer ends, whichever way: the log line and the hooks.
    fn end_transfer(&self, now: Instant, p: &Pending, bytes: u64, completed: bool) {
        if p.kind == XferKind::Listing {
            return;
        }
        let seconds = now.saturating_duration_since(p.started).as_secs_f64();
        self.log(&format!(
            "{} {} completed={} bytes={bytes} seconds={seconds:.3}",
            p.verb,
            p.ftp_path,
            u8::from(completed)
        ));
        match (p.kind, completed) {
            (XferKind::Retr, true) => self.hook(|h, i| h.on_file_sent(i, &p.real)),
            (XferKind::Retr, false) => self.hook(|h, i| h.on_incomplete_file_sent(i, &p.real)),
            (_, true) => self.hook(|h, i| h.on_file_received(i, &p.real)),
            (_, false) => self.hook(|h, i| h.on_incomplete_file_received(i, &p.real)),
        }
        let record = TransferRecord {
            verb: p.verb,
            ftp_path: &p.ftp_path,
            path: &p.real,
            bytes,
            seconds,
            ascii: p.ascii,
            completed,
        };
        self.hook(|h, i| h.on_transfer_end(i, &record));
    }

    /// The data channel was closed at the session's request ([`Action::CloseData`]);
    /// `bytes` is what it had moved of a running transfer. Completes an ABOR.
    pub fn handle_data_closed(&mut self, now: Instant, bytes: Option<u64>) {
        if !std::mem::take(&mut self.aborting) {
            return;
        }
        let running = std::mem::take(&mut self.transfer_running);
        if let Some(p) = self.pending.take() {
            self.end_transfer(now, &p, bytes.unwrap_or(0), false);
        }
        if running {
            self.reply(426, "Transfer aborted via ABOR.");
            self.reply(226, "ABOR command successful.");
        } else {
            self.reply(225, "ABOR command successful; data channel closed.");
        }
        if let Some(t) = self.config.timeout {
            self.idle_deadline = Some(now + t);
        }
        self.after_transfer();
    }

    fn after_transfer(&mut self) {
        if self.quit_pending {
            self.quit_pending = false;
            let msg = self.quit_message();
            self.reply(221, msg);
            self.close();
        }
    }

    // ---- dispatch ------------------------------------------------------------------

    fn run(&mut self, now: Instant, spec: &'static CommandSpec, raw_arg: &str) {
        let arg = match spec.verb {
            Verb::List | Verb::Nlst => strip_ls_flags(raw_arg),
            _ => raw_arg,
        };
        // 1. The argument rule.
        match spec.arg {
            Arg::Required if arg.is_empty() => {
                return self.reply(501, "Syntax error: command needs an argument.")
            }
            Arg::None if !arg.is_empty() => {
                return self.reply(501, "Syntax error: command does not accept arguments.")
            }
            _ => {}
        }
        // 2. Login.
        let user = match &self.auth {
            Auth::LoggedIn(u) => Some(u.clone()),
            _ => None,
        };
        if user.is_none() && (spec.auth || (spec.verb == Verb::Stat && !arg.is_empty())) {
            return self.reply(530, "Log in with USER and PASS first.");
        }
        let Some(user) = user else {
            return self.dispatch(now, spec, arg, None);
        };
        // 3. The path, inside the root; 4. the permission.
        let mut real = None;
        if spec.path && !(spec.verb == Verb::Stat && arg.is_empty()) {
            match self.resolve(arg, spec.perm) {
                Some(r) => real = Some(r),
                None => return,
            }
        }
        let authorizer = Arc::clone(&self.config.authorizer);
        if let Err(e) = authorizer.impersonate_user(&user) {
            // Whatever part of the switch happened is undone; terminating is idempotent.
            let _ = authorizer.terminate_impersonation(&user);
            logger::logerror(&format!("{} can't impersonate {user}: {e}", self.prefix()));
            return self.reply(550, "Can't switch to the user's identity.");
        }
        // Undoes the impersonation even if the command panics, so the reactor never goes on
        // under a user's ids.
        let guard = Impersonation {
            authorizer: &*authorizer,
            user: &user,
        };
        self.dispatch(now, spec, arg, real);
        if let Err(e) = guard.end() {
            // Carrying on under the wrong identity is never safe: end the session.
            logger::logerror(&format!(
                "{} can't end impersonation of {user}: {e}",
                self.prefix()
            ));
            self.reply(421, "Internal error; closing the connection.");
            self.close();
        }
    }

    /// Maps an FTP path to a real one inside the root and checks `perm` on it; replies 550
    /// and returns `None` when either fails. Every command that names a path goes through
    /// here, the table-driven ones and those with two arguments (MFMT, SITE CHMOD) alike.
    fn resolve(&mut self, arg: &str, perm: Option<Perms>) -> Option<(String, PathBuf)> {
        let Some(fs) = self.fs.as_ref() else {
            self.reply(550, "No filesystem for this session.");
            return None;
        };
        let ftp = fs.ftpnorm(arg);
        let path = fs.ftp2fs(&ftp);
        if !fs.validpath(&path) {
            self.reply(
                550,
                format!(
                    "{} points to a path outside the user's root directory.",
                    quote_path(&ftp)
                ),
            );
            return None;
        }
        if let Some(perm) = perm {
            let user = self.username().unwrap_or("");
            if !self.config.authorizer.has_perm(user, perm, &path) {
                self.reply(550, "Not enough privileges.");
                return None;
            }
        }
        Some((ftp, path))
    }

    fn dispatch(
        &mut self,
        now: Instant,
        spec: &'static CommandSpec,
        arg: &str,
        path: Option<(String, PathBuf)>,
    ) {
        // REST is consumed by the next transfer command; clients send PASV or TYPE between
        // the two (ftplib sends REST after opening the data connection).
        let rest = match spec.verb {
            Verb::Retr | Verb::Stor | Verb::Appe | Verb::Stou => self.rest.take(),
            _ => None,
        };
        if spec.verb != Verb::Rnto && spec.verb != Verb::Rnfr {
            self.rnfr = None;
        }
        match spec.verb {
            Verb::User => self.cmd_user(arg),
            Verb::Pass => self.cmd_pass(now, arg),
            Verb::Quit => self.cmd_quit(),
            Verb::Noop => self.reply(200, "NOOP ok."),
            Verb::Syst => self.reply(215, "UNIX Type: L8"),
            Verb::Help => self.cmd_help(arg),
            Verb::Feat => self.cmd_feat(),
            Verb::Opts => self.cmd_opts(arg),
            Verb::Allo => self.reply(202, "No storage allocation necessary."),
            Verb::Pwd => {
                let cwd = self
                    .fs
                    .as_ref()
                    .map_or("/".to_string(), |f| f.cwd().to_string());
                self.reply(
                    257,
                    format!("{} is the current directory.", quote_path(&cwd)),
                );
            }
            Verb::Cwd => self.cmd_cwd(path),
            Verb::Cdup => self.cmd_cdup(spec),
            Verb::Type => self.cmd_type(arg),
            Verb::Mode => match arg.to_ascii_uppercase().as_str() {
                "S" => self.reply(200, "Transfer mode set to: S"),
                "B" | "C" => self.reply(504, "Unimplemented MODE type."),
                _ => self.reply(501, "Unrecognized MODE type."),
            },
            Verb::Stru => match arg.to_ascii_uppercase().as_str() {
                "F" => self.reply(200, "File transfer structure set to: F."),
                "P" | "R" => self.reply(504, "Unimplemented STRU type."),
                _ => self.reply(501, "Unrecognized STRU type."),
            },
            Verb::Rest => self.cmd_rest(arg),
            Verb::Pasv => self.cmd_pasv(false, ""),
            Verb::Epsv => self.cmd_pasv(true, arg),
            Verb::Port => self.cmd_port(arg, false),
            Verb::Eprt => self.cmd_port(arg, true),
            Verb::Abor => self.cmd_abor(),
            Verb::Mkd => self.with_path(path, |s, ftp, p| s.cmd_mkd(ftp, p)),
            Verb::Rmd => self.with_path(path, |s, ftp, p| s.cmd_rmd(ftp, p)),
            Verb::Dele => self.with_path(path, |s, ftp, p| s.cmd_dele(ftp, p)),
            Verb::Rnfr => self.with_path(path, |s, ftp, p| s.cmd_rnfr(ftp, p)),
            Verb::Rnto => self.with_path(path, |s, ftp, p| s.cmd_rnto(ftp, p)),
            Verb::Size => self.with_path(path, |s, ftp, p| s.cmd_size(ftp, p)),
            Verb::Mdtm => self.with_path(path, |s, ftp, p| s.cmd_mdtm(ftp, p)),
            Verb::Retr => self.with_path(path, |s, ftp, p| s.cmd_retr(now, ftp, p, rest)),
            Verb::Stor => self.with_path(path, |s, ftp, p| s.cmd_stor(now, ftp, p, rest, false)),
            Verb::Appe => {
                if rest.is_some() {
                    return self.reply(450, "Can't APPE while REST request is pending.");
                }
                self.with_path(path, |s, ftp, p| s.cmd_stor(now, ftp, p, None, true))
            }
            Verb::Stou => self.cmd_stou(now, arg, rest),
            Verb::List | Verb::Nlst => self.cmd_list(now, spec.verb, path),
            Verb::Stat => self.cmd_stat(path),
            Verb::Mlsd => self.cmd_list(now, spec.verb, path),
            Verb::Mlst => self.with_path(path, |s, ftp, p| s.cmd_mlst(ftp, p)),
            Verb::Mfmt => self.cmd_mfmt(arg),
            Verb::Site => self.cmd_site(arg),
            Verb::Rein => {
                if let Auth::LoggedIn(_) = self.auth {
                    self.flush_account();
                }
                self.auth = Auth::Anonymous;
                self.reply(220, "Ready for new user.");
            }
            Verb::Acct => self.reply(202, "No account information is needed here."),
            Verb::Smnt => self.reply(502, "SMNT not implemented."),
            Verb::Auth => self.cmd_auth(arg),
            Verb::Pbsz => self.cmd_pbsz(arg),
            Verb::Prot => self.cmd_prot(arg),
            Verb::Ccc => self.cmd_ccc(),
            Verb::Unknown => self.reply(500, "Command not understood."),
        }
    }

    fn with_path(
        &mut self,
        path: Option<(String, PathBuf)>,
        f: impl FnOnce(&mut Self, String, PathBuf),
    ) {
        match path {
            Some((ftp, p)) => f(self, ftp, p),
            None => self.reply(550, "No such file or directory."),
        }
    }

    fn fs(&self) -> Option<&dyn Filesystem> {
        self.fs.as_deref()
    }

    fn log_cmd(&self, verb: &str, arg: &str, code: u16) {
        self.log(&format!("{verb} {arg} {code}"));
    }

    // ---- login ---------------------------------------------------------------------

    /// CCC (RFC 4217 section 6): back to a plaintext control connection, where allowed.
    fn cmd_ccc(&mut self) {
        let Some(tls) = self.config.tls.as_ref() else {
            return self.reply(502, "CCC not supported: no TLS certificate configured.");
        };
        if !self.control_tls {
            return self.reply(534, "CCC refused: the control connection is not protected.");
        }
        let user = self.username().unwrap_or("");
        if !tls.ccc_allowed || tls.control_required.applies_to(user) {
            return self.reply(
                534,
                "CCC not allowed: the control connection stays protected.",
            );
        }
        self.reply(200, "CCC OK; the control connection returns to plaintext.");
        // Commands wait until the client's close_notify has been read: what follows it is
        // plaintext.
        self.tls_switching = true;
        self.actions.push_back(Action::EndTls);
    }

    /// Whether `user` must secure the control connection first; replies 534 if so.
    fn control_tls_missing(&mut self, user: &str) -> bool {
        let required = self
            .config
            .tls
            .as_ref()
            .is_some_and(|t| t.control_required.applies_to(user));
        if required && !self.control_tls {
            self.reply(
                534,
                "Request denied for policy reasons: use AUTH TLS before logging in.",
            );
            return true;
        }
        false
    }

    /// Whether the logged-in user must use PROT P for data connections and has not; replies
    /// 521 if so.
    fn data_tls_missing(&mut self) -> bool {
        let user = self.username().unwrap_or("");
        let required = self
            .config
            .tls
            .as_ref()
            .is_some_and(|t| t.data_required.applies_to(user));
        if required && !self.prot_private {
            self.reply(
                521,
                "Data connection cannot be opened with this PROT setting: use PROT P.",
            );
            return true;
        }
        false
    }

    fn cmd_auth(&mut self, arg: &str) {
        if self.config.tls.is_none() {
            return self.reply(502, "AUTH not supported: no TLS certificate configured.");
        }
        if self.control_tls {
            return self.reply(503, "Already using TLS.");
        }
        match arg.trim().to_ascii_uppercase().as_str() {
            // TLS-C of RFC 4217, and its synonym TLS-P (TLS with protected data).
            "TLS" | "TLS-C" => self.reply(234, "AUTH TLS successful."),
            // The older AUTH SSL of draft-murray-auth-ftp-ssl implied protected data, and
            // clients using it expect that: PROT P without asking.
            "SSL" | "TLS-P" => {
                self.pbsz = true;
                self.prot_private = true;
                self.reply(234, "AUTH SSL successful.");
            }
            _ => return self.reply(504, "Unrecognized AUTH type; use AUTH TLS."),
        }
        self.control_tls = true;
        self.tls_switching = true;
        self.actions.push_back(Action::StartTls);
    }

    fn cmd_pbsz(&mut self, arg: &str) {
        if !self.control_tls {
            return self.reply(503, "PBSZ not allowed on an insecure control connection.");
        }
        if arg.trim().parse::<u64>().is_err() {
            return self.reply(501, "Invalid PBSZ argument.");
        }
        // RFC 4217: TLS is a streaming protection, the buffer size is always 0.
        self.pbsz = true;
        self.reply(200, "PBSZ=0");
    }

    fn cmd_prot(&mut self, arg: &str) {
        if !self.control_tls {
            return self.reply(503, "PROT not allowed on an insecure control connection.");
        }
        if !self.pbsz {
            return self.reply(503, "You must issue the PBSZ command prior to PROT.");
        }
        match arg.trim().to_ascii_uppercase().as_str() {
            "C" => {
                let user = self.username().unwrap_or("");
                let required = self
                    .config
                    .tls
                    .as_ref()
                    .is_some_and(|t| t.data_required.applies_to(user));
                if required {
                    return self.reply(534, "Request denied for policy reasons: PROT C refused.");
                }
                self.prot_private = false;
                self.reply(200, "Protection set to Clear.");
            }
            "P" => {
                self.prot_private = true;
                self.reply(200, "Protection set to Private.");
            }
            "S" | "E" => self.reply(
                536,
                format!("PROT {} not supported with TLS; use C or P.", arg.trim()),
            ),
            _ => self.reply(504, "Unrecognized PROT type; use C or P."),
        }
    }

    fn cmd_user(&mut self, arg: &str) {
        if self.control_tls_missing(arg) {
            return;
        }
        if let Auth::LoggedIn(_) = self.auth {
            self.flush_account();
            self.reply(
                331,
                "Previous account information was flushed, send password.",
            );
        } else {
            self.reply(331, "Username ok, send password.");
        }
        self.auth = Auth::UserGiven(arg.to_string());
    }

    /// Forgets the login (a new USER): RFC 959 lets a running transfer finish.
    fn flush_account(&mut self) {
        if self.pending.is_none() && self.data != DataState::None {
            self.actions.push_back(Action::CloseData);
            self.data = DataState::None;
        }
        self.hook(|h, i| h.on_logout(i));
        self.auth = Auth::Anonymous;
        self.fs = None;
        self.rnfr = None;
        self.rest = None;
    }

    fn cmd_pass(&mut self, now: Instant, password: &str) {
        let user = match &self.auth {
            Auth::LoggedIn(_) => return self.reply(503, "User already authenticated."),
            Auth::Anonymous => return self.reply(503, "Login with USER first."),
            Auth::UserGiven(u) => u.clone(),
        };
        if self.control_tls_missing(&user) {
            return;
        }
        let authorizer = Arc::clone(&self.config.authorizer);
        let verdict = authorizer.validate_authentication(&user, password);
        let home = match verdict {
            Ok(()) => authorizer
                .home_dir(&user)
                .ok_or(crate::AuthError::BadCredentials),
            Err(e) => Err(e),
        };
        let fs = home.and_then(|h| {
            (self.config.filesystem)(&h).map_err(|e| {
                logger::logerror(&format!("{} home of {user} unusable: {e}", self.prefix()));
                crate::AuthError::Refused("Home directory unavailable.".to_string())
            })
        });
        match fs {
            Ok(fs) => {
                self.fs = Some(fs);
                self.auth = Auth::LoggedIn(user.clone());
                self.attempts = 0;
                self.login_deadline = None;
                let msg = authorizer.msg_login(&user);
                self.reply(230, msg);
                self.log(&format!("USER '{user}' logged in."));
                self.hook(|h, i| h.on_login(i));
            }
            Err(e) => {
                self.attempts += 1;
                self.actions.push_back(Action::LoginFailed);
                self.hook(|h, i| h.on_login_failed(i, &user));
                self.log(&format!("USER '{user}' failed login."));
                self.auth = Auth::Anonymous;
                let mut text = match e {
                    crate::AuthError::BadCredentials if user == "anonymous" => {
                        "Anonymous access not allowed.".to_string()
                    }
                    other => other.to_string(),
                };
                let close = self.attempts >= self.config.max_login_attempts;
                if close {
                    text.push_str(" Disconnecting.");
                }
                let reply = Reply::new(530, text);
                if self.config.auth_failed_timeout.is_zero() {
                    self.reply(reply.code, reply.text);
                    if close {
                        self.close();
                    }
                } else {
                    self.delayed = Some(Delayed {
                        at: now + self.config.auth_failed_timeout,
                        reply,
                        close,
                    });
                }
            }
        }
    }

    fn quit_message(&self) -> String {
        match &self.auth {
            Auth::LoggedIn(u) => self.config.authorizer.msg_quit(u),
            _ => "Goodbye.".to_string(),
        }
    }

    fn cmd_quit(&mut self) {
        if self.pending.is_some() {
            // RFC 959: a running transfer finishes first; its reply precedes the 221.
            self.quit_pending = true;
            return;
        }
        let msg = self.quit_message();
        self.reply(221, msg);
        self.close();
    }

    // ---- informational ---------------------------------------------------------------

    fn cmd_help(&mut self, arg: &str) {
        if !arg.is_empty() {
            let name = arg.trim().to_ascii_uppercase();
            match command::lookup(&name) {
                Some(spec) => self.reply(214, spec.help),
                None => self.reply(501, "Unrecognized command."),
            }
            return;
        }
        let mut text = String::from("The following commands are recognized:\n");
        for row in COMMANDS.chunks(8) {
            let names: Vec<String> = row.iter().map(|c| format!("{:<5}", c.name)).collect();
            text.push(' ');
            text.push_str(names.join(" ").trim_end());
            text.push('\n');
        }
        text.push_str("Help command successful.");
        self.reply(214, text);
    }

    fn mlst_feature(&self) -> String {
        let mut f = String::from(" MLST ");
        for fact in listing::MLSX_FACTS {
            f.push_str(fact);
            if self.mlst_facts.contains(&fact) {
                f.push('*');
            }
            f.push(';');
        }
        f
    }

    fn cmd_feat(&mut self) {
        let mlst = self.mlst_feature();
        let mut feats = vec![
            " EPRT",
            " EPSV",
            " MDTM",
            " MFMT",
            mlst.as_str(),
            " REST STREAM",
            " SIZE",
            " TVFS",
            " UTF8",
        ];
        if self.config.tls.is_some() {
            feats.extend([" AUTH TLS", " PBSZ", " PROT"]);
            feats.sort_unstable();
        }
        self.reply(
            211,
            format!("Features supported:\n{}\nEnd FEAT.", feats.join("\n")),
        );
    }

    fn cmd_opts(&mut self, arg: &str) {
        let mut words = arg.split_whitespace();
        let name = words.next().unwrap_or("").to_ascii_uppercase();
        let value = words.next().unwrap_or("");
        if name == "MLST" {
            // RFC 3659 section 7.9: unknown facts are dropped; the reply lists those kept.
            let wanted: Vec<String> = value.split(';').map(|f| f.to_ascii_lowercase()).collect();
            self.mlst_facts = listing::MLSX_FACTS
                .iter()
                .copied()
                .filter(|f| wanted.iter().any(|w| w == f))
                .collect();
            let list: String = self.mlst_facts.iter().map(|f| format!("{f};")).collect();
            return self.reply(200, format!("MLST OPTS {list}"));
        }
        match (name.as_str(), value.to_ascii_uppercase().as_str()) {
            // Paths are always UTF-8 here; OFF is acknowledged rather than refused, so a
            // client that sends it carries on.
            ("UTF8" | "UTF-8", _) => self.reply(200, "Always in UTF8 mode."),
            _ => self.reply(501, format!("Invalid OPTS argument {:?}.", name)),
        }
    }

    fn cmd_stat(&mut self, path: Option<(String, PathBuf)>) {
        let Some((ftp, real)) = path else {
            let mut text = String::from("FTP server status:\n");
            text.push_str(&format!(" Connected to: {}\n", self.peer));
            if self.config.tls.is_some() {
                text.push_str(&format!(
                    " Control connection: {}; data protection: {}\n",
                    if self.control_tls { "TLS" } else { "plaintext" },
                    if self.prot_private { "P" } else { "C" }
                ));
            }
            match &self.auth {
                Auth::LoggedIn(u) => text.push_str(&format!(" Logged in as: {u}\n")),
                _ => text.push_str(" Waiting for username.\n"),
            }
            text.push_str(&format!(
                " TYPE: {}; STRUcture: File; MODE: Stream\n",
                if self.ascii { "ASCII" } else { "Binary" }
            ));
            let data = match (self.data, self.pending.is_some()) {
                (_, true) => "Data connection open; transfer in progress.",
                (DataState::Listening, _) => "Passive data channel waiting for connection.",
                (DataState::Connecting, _) => "Active data channel connecting.",
                (DataState::Connected, _) => "Data connection open.",
                (DataState::None, _) => "Data connection closed.",
            };
            text.push_str(&format!(" {data}\nEnd of status."));
            return self.reply(211, text);
        };
        match self.make_listing(&real, Verb::Stat) {
            Ok(bytes) => {
                let body = String::from_utf8_lossy(&bytes).replace("\r\n", "\n");
                let mut text = format!("Status of {}:\n", quote_path(&ftp));
                for line in body.lines() {
                    text.push(' ');
                    text.push_str(line);
                    text.push('\n');
                }
                text.push_str("End of status.");
                self.reply(213, text);
            }
            Err(e) => self.reply(550, format!("{}.", strerror(&e))),
        }
    }

    // ---- navigation ------------------------------------------------------------------

    fn cmd_cwd(&mut self, path: Option<(String, PathBuf)>) {
        let Some((ftp, real)) = path else {
            return self.reply(550, "No such file or directory.");
        };
        let Some(fs) = self.fs.as_mut() else { return };
        match fs.stat(&real) {
            Ok(m) if m.is_dir() => {
                // A directory that cannot be listed may still be entered, as with cd; but it
                // must be searchable by the server process.
                if let Err(e) = std::fs::read_dir(&real) {
                    if e.kind() == io::ErrorKind::PermissionDenied {
                        return self.reply(550, format!("{}.", strerror(&e)));
                    }
                }
                fs.set_cwd(ftp.clone());
                self.reply(
                    250,
                    format!("{} is the current directory.", quote_path(&ftp)),
                );
                self.log_cmd("CWD", &ftp, 250);
            }
            Ok(_) => self.reply(550, "Not a directory."),
            Err(e) => self.reply(550, format!("{}.", strerror(&e))),
        }
    }

    fn cmd_cdup(&mut self, spec: &'static CommandSpec) {
        let Some(fs) = self.fs() else { return };
        let ftp = fs.ftpnorm("..");
        let real = fs.ftp2fs(&ftp);
        let user = self.username().unwrap_or("").to_string();
        if let Some(perm) = spec.perm {
            if !self.config.authorizer.has_perm(&user, perm, &real) {
                return self.reply(550, "Not enough privileges.");
            }
        }
        self.cmd_cwd(Some((ftp, real)));
    }

    fn cmd_type(&mut self, arg: &str) {
        let t: String = arg
            .to_ascii_uppercase()
            .chars()
            .filter(|c| *c != ' ')
            .collect();
        match t.as_str() {
            "A" | "AN" => {
                self.ascii = true;
                self.reply(200, "Type set to: ASCII.");
            }
            "I" | "L8" => {
                self.ascii = false;
                self.reply(200, "Type set to: Binary.");
            }
            _ => self.reply(504, format!("Unsupported type {:?}.", arg)),
        }
    }

    fn cmd_rest(&mut self, arg: &str) {
        match arg.trim().parse::<u64>() {
            Ok(_) if self.ascii => self.reply(501, "Resuming transfers not allowed in ASCII mode."),
            Ok(n) => {
                self.rest = Some(n);
                self.reply(350, format!("Restarting at position {n}."));
            }
            Err(_) => self.reply(501, "Invalid parameter."),
        }
    }

    // ---- file operations ---------------------------------------------------------------

    fn cmd_mkd(&mut self, ftp: String, real: PathBuf) {
        let Some(fs) = self.fs() else { return };
        match fs.mkdir(&real) {
            Ok(()) => {
                self.reply(257, format!("{} directory created.", quote_path(&ftp)));
                self.log_cmd("MKD", &ftp, 257);
                self.hook(|h, i| h.on_dir_created(i, &real));
            }
            Err(e) => self.reply(550, format!("{}.", strerror(&e))),
        }
    }

    fn is_root(&self, real: &Path) -> bool {
        self.fs().is_some_and(|fs| real == fs.root())
    }

    fn cmd_rmd(&mut self, ftp: String, real: PathBuf) {
        if self.is_root(&real) {
            return self.reply(550, "Can't remove root directory.");
        }
        let Some(fs) = self.fs() else { return };
        match fs.rmdir(&real) {
            Ok(()) => {
                self.reply(250, "Directory removed.");
                self.log_cmd("RMD", &ftp, 250);
                self.hook(|h, i| h.on_dir_removed(i, &real));
            }
            Err(e) => self.reply(550, format!("{}.", strerror(&e))),
        }
    }

    fn cmd_dele(&mut self, ftp: String, real: PathBuf) {
        let Some(fs) = self.fs() else { return };
        match fs.remove(&real) {
            Ok(()) => {
                self.reply(250, "File removed.");
                self.log_cmd("DELE", &ftp, 250);
                self.hook(|h, i| h.on_file_deleted(i, &real));
            }
            Err(e) => self.reply(550, format!("{}.", strerror(&e))),
        }
    }

    fn cmd_rnfr(&mut self, _ftp: String, real: PathBuf) {
        if self.is_root(&real) {
            return self.reply(550, "Can't rename home directory.");
        }
        let Some(fs) = self.fs() else { return };
        if fs.lstat(&real).is_err() {
            return self.reply(550, "No such file or directory.");
        }
        self.rnfr = Some(real);
        self.reply(350, "Ready for destination name.");
    }

    fn cmd_rnto(&mut self, ftp: String, real: PathBuf) {
        let Some(from) = self.rnfr.take() else {
            return self.reply(503, "Bad sequence of commands: use RNFR first.");
        };
        if self.is_root(&real) {
            return self.reply(550, "Can't overwrite the root directory.");
        }
        let Some(fs) = self.fs() else { return };
        match fs.rename(&from, &real) {
            Ok(()) => {
                let from_ftp = fs.fs2ftp(&from);
                self.reply(250, "Renaming ok.");
                self.log(&format!("RNFR {from_ftp} RNTO {ftp} 250"));
                self.hook(|h, i| h.on_file_renamed(i, &from, &real));
            }
            Err(e) => self.reply(550, format!("{}.", strerror(&e))),
        }
    }

    fn cmd_size(&mut self, ftp: String, real: PathBuf) {
        let Some(fs) = self.fs() else { return };
        match fs.stat(&real) {
            Ok(m) if m.is_file() => self.reply(213, m.len().to_string()),
            Ok(_) => self.reply(550, format!("{ftp} is not retrievable.")),
            Err(e) => self.reply(550, format!("{}.", strerror(&e))),
        }
    }

    fn cmd_mdtm(&mut self, ftp: String, real: PathBuf) {
        let Some(fs) = self.fs() else { return };
        match fs.stat(&real) {
            Ok(m) if m.is_file() => {
                let t = listing::civil(m.mtime(), self.config.use_gmt_times);
                self.reply(213, t.time_val());
            }
            Ok(_) => self.reply(550, format!("{ftp} is not retrievable.")),
            Err(e) => self.reply(550, format!("{}.", strerror(&e))),
        }
    }

    // ---- data connection setup --------------------------------------------------------

    fn drop_data(&mut self) {
        if self.data != DataState::None {
            self.actions.push_back(Action::CloseData);
            self.data = DataState::None;
        }
    }

    fn transfer_busy(&mut self) -> bool {
        if self.pending.is_some() {
            self.reply(
                425,
                "A transfer is already in progress on the data connection.",
            );
            return true;
        }
        false
    }

    fn cmd_pasv(&mut self, extended: bool, arg: &str) {
        let v4 = self.local.is_ipv4();
        if extended {
            match arg.trim().to_ascii_uppercase().as_str() {
                "" => {}
                "1" if !v4 => return self.reply(522, "Network protocol not supported (use 2)."),
                "2" if v4 => return self.reply(522, "Network protocol not supported (use 1)."),
                "1" | "2" => {}
                "ALL" => {
                    self.epsv_all = true;
                    return self.reply(200, "Other commands other than EPSV are now disabled.");
                }
                _ if v4 => return self.reply(501, "Unknown network protocol (use 1)."),
                _ => return self.reply(501, "Unknown network protocol (use 2)."),
            }
        } else {
            if self.epsv_all {
                return self.reply(501, "PASV not allowed after EPSV ALL.");
            }
            if !v4 && self.config.masquerade_address.is_none() {
                return self.reply(
                    425,
                    "You cannot use PASV on IPv6 connections. Use EPSV instead.",
                );
            }
        }
        if self.transfer_busy() || self.data_tls_missing() {
            return;
        }
        self.drop_data();
        self.actions.push_back(Action::Listen { extended });
    }

    fn cmd_port(&mut self, arg: &str, extended: bool) {
        let verb = if extended { "EPRT" } else { "PORT" };
        if self.epsv_all {
            return self.reply(501, format!("{verb} not allowed after EPSV ALL."));
        }
        let v4 = self.peer.is_ipv4();
        let addr = if extended {
            match parse_eprt(arg.trim()) {
                Err(()) => return self.reply(501, "Invalid EPRT format."),
                Ok((af, _)) if af == "1" && !v4 => {
                    return self.reply(522, "Network protocol not supported (use 2).")
                }
                Ok((af, _)) if af == "2" && v4 => {
                    return self.reply(522, "Network protocol not supported (use 1).")
                }
                Ok((_, None)) if v4 => {
                    return self.reply(522, "Network protocol not supported (use 1).")
                }
                Ok((_, None)) => return self.reply(522, "Network protocol not supported (use 2)."),
                Ok((_, Some(a))) => a,
            }
        } else {
            if !v4 {
                return self.reply(
                    425,
                    "You cannot use PORT on IPv6 connections. Use EPRT instead.",
                );
            }
            match parse_port(arg) {
                Some(a) => a,
                None => return self.reply(501, "Invalid PORT format."),
            }
        };
        // lftp sends the unspecified address (`EPRT |2|::|port|`) in IPv6 active mode,
        // meaning "where I am": that is the control connection's peer.
        let addr = if addr.ip().is_unspecified() {
            SocketAddr::new(self.peer.ip(), addr.port())
        } else {
            addr
        };
        // RFC 2577: no bouncing to third hosts, no privileged ports; checked before any
        // connection is attempted.
        if canonical(addr.ip()) != self.peer.ip() && !self.config.permit_foreign_addresses {
            return self.reply(
                501,
                format!("Rejected data connection to foreign address {addr}."),
            );
        }
        if addr.port() < 1024 && !self.config.permit_privileged_ports {
            return self.reply(
                501,
                format!(
                    "PORT against the privileged port \"{}\" refused.",
                    addr.port()
                ),
            );
        }
        if self.transfer_busy() || self.data_tls_missing() {
            return;
        }
        self.drop_data();
        self.data = DataState::Connecting;
        self.awaiting_connect = true;
        self.actions.push_back(Action::Connect(addr));
    }

    fn cmd_abor(&mut self) {
        if self.data == DataState::None && self.pending.is_none() {
            return self.reply(225, "No transfer to abort.");
        }
        if self.pending.is_some() {
            // The replies wait for the data channel to report what it moved, in
            // handle_data_closed.
            self.aborting = true;
            self.actions.push_back(Action::CloseData);
            self.data = DataState::None;
            return;
        }
        self.drop_data();
        self.awaiting_connect = false;
        self.reply(225, "ABOR command successful; data channel closed.");
    }

    /// Queues a transfer and sends the preliminary reply.
    fn start_transfer(
        &mut self,
        pending: Pending,
        direction: Direction,
        preliminary: Option<String>,
    ) {
        let text = preliminary.unwrap_or_else(|| match self.data {
            DataState::Connected => "Data connection already open. Transfer starting.".to_string(),
            _ => "File status okay. About to open data connection.".to_string(),
        });
        let code = if self.data == DataState::Connected {
            125
        } else {
            150
        };
        self.reply(code, text);
        self.transfer_running = self.data == DataState::Connected;
        let kind = pending.kind;
        let mut pending = pending;
        pending.ascii = self.ascii && kind != XferKind::Listing;
        self.pending = Some(pending);
        let ascii = self.ascii && kind != XferKind::Listing;
        let tls = self.prot_private;
        self.actions.push_back(Action::Transfer(Transfer {
            direction,
            ascii,
            use_sendfile: self.config.use_sendfile && !ascii && !tls,
            tls,
        }));
    }

    fn need_data(&mut self) -> bool {
        if self.transfer_busy() {
            return false;
        }
        if self.data == DataState::None {
            self.reply(425, "Use PORT, EPRT, PASV or EPSV first.");
            return false;
        }
        true
    }

    fn cmd_retr(&mut self, now: Instant, ftp: String, real: PathBuf, rest: Option<u64>) {
        let Some(fs) = self.fs() else { return };
        let file = match fs.stat(&real) {
            Ok(m) if m.is_dir() => return self.reply(550, "Is a directory."),
            Ok(_) => fs.open_read(&real),
            Err(e) => Err(e),
        };
        let file = match file {
            Ok(f) => f,
            Err(e) => return self.reply(550, format!("{}.", strerror(&e))),
        };
        if !self.need_data() {
            return;
        }
        let offset = rest.unwrap_or(0);
        if offset > 0 {
            let size = file.metadata().map(|m| m.len()).unwrap_or(0);
            if offset > size {
                return self.reply(
                    554,
                    format!("REST position ({offset}) > file size ({size})."),
                );
            }
        }
        self.start_transfer(
            Pending {
                kind: XferKind::Retr,
                verb: "RETR",
                ftp_path: ftp,
                real,
                started: now,
                ascii: false,
            },
            Direction::Send(Source::File { file, offset }),
            None,
        );
    }

    fn cmd_stor(
        &mut self,
        now: Instant,
        ftp: String,
        real: PathBuf,
        rest: Option<u64>,
        append: bool,
    ) {
        let Some(fs) = self.fs() else { return };
        if let Some(off) = rest {
            let size = fs.stat(&real).map(|m| m.len()).unwrap_or(0);
            if off > size {
                return self.reply(554, format!("REST position ({off}) > file size ({size})."));
            }
        }
        if fs.isdir(&real) {
            return self.reply(550, "Is a directory.");
        }
        // Before the file is opened: a STOR without a data connection must not truncate it.
        if !self.need_data() {
            return;
        }
        let Some(fs) = self.fs() else { return };
        let file = match fs.open_write(&real, append, rest) {
            Ok(f) => f,
            Err(e) => return self.reply(550, format!("{}.", strerror(&e))),
        };
        let verb = if append { "APPE" } else { "STOR" };
        self.start_transfer(
            Pending {
                kind: XferKind::Store,
                verb,
                ftp_path: ftp,
                real,
                started: now,
                ascii: false,
            },
            Direction::Receive(file),
            None,
        );
    }

    fn cmd_stou(&mut self, now: Instant, arg: &str, rest: Option<u64>) {
        if rest.is_some() {
            return self.reply(450, "Can't STOU while REST request is pending.");
        }
        let Some(fs) = self.fs() else { return };
        // The name is made here from the last part of the argument, in the current
        // directory: a client cannot aim STOU through another path.
        let base = arg
            .rsplit('/')
            .next()
            .filter(|b| !b.is_empty() && *b != "." && *b != "..")
            .unwrap_or("ftpd");
        let dir_ftp = fs.cwd().to_string();
        let dir = fs.ftp2fs(&dir_ftp);
        if !fs.validpath(&dir) {
            return self.reply(
                550,
                format!(
                    "{} points to a path outside the user's root directory.",
                    quote_path(&dir_ftp)
                ),
            );
        }
        let user = self.username().unwrap_or("").to_string();
        if !self.config.authorizer.has_perm(&user, Perms::STORE, &dir) {
            return self.reply(550, "Not enough privileges.");
        }
        if !self.need_data() {
            return;
        }
        let Some(fs) = self.fs() else { return };
        let mut made = None;
        for n in 0..100u32 {
            let name = if n == 0 {
                base.to_string()
            } else {
                format!("{base}.{n}")
            };
            let real = dir.join(&name);
            if !fs.validpath(&real) {
                continue;
            }
            match fs.create_new(&real) {
                Ok(f) => {
                    made = Some((name, real, f));
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return self.reply(450, format!("{}.", strerror(&e))),
            }
        }
        let Some((name, real, file)) = made else {
            return self.reply(450, "No usable unique file name found.");
        };
        let ftp = fs.fs2ftp(&real);
        self.start_transfer(
            Pending {
                kind: XferKind::Store,
                verb: "STOU",
                ftp_path: ftp,
                real,
                started: now,
                ascii: false,
            },
            Direction::Receive(file),
            Some(format!("FILE: {name}")),
        );
    }

    /// Builds a listing of a directory, or of one file, in the format `verb` asks for
    /// (LIST and STAT: `ls -l` lines; NLST: names; MLSD: RFC 3659 facts).
    fn make_listing(&self, real: &Path, verb: Verb) -> io::Result<Vec<u8>> {
        let fs = self
            .fs()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no filesystem"))?;
        let now = listing::unix_secs(SystemTime::now());
        let gmt = self.config.use_gmt_times;
        let mut names = NameCache::default();
        let mut out = Vec::new();
        let meta = fs.stat(real)?;
        let entries: Vec<(Vec<u8>, PathBuf)> = if meta.is_dir() {
            fs.listdir(real)?
                .into_iter()
                .map(|n| (n.as_bytes().to_vec(), real.join(&n)))
                .collect()
        } else if verb == Verb::Mlsd {
            // RFC 3659 section 7.2.1: MLSD names a directory; a file is a 501.
            return Err(io::Error::new(
                io::ErrorKind::NotADirectory,
                "Not a directory",
            ));
        } else {
            let name = real
                .file_name()
                .map(|n| n.as_bytes().to_vec())
                .unwrap_or_default();
            vec![(name, real.to_path_buf())]
        };
        for (name, path) in entries {
            match verb {
                Verb::Nlst => {
                    out.extend_from_slice(&name);
                    out.extend_from_slice(b"\r\n");
                }
                Verb::Mlsd => {
                    // Facts describe what a client would get, so links are followed; an
                    // entry that vanished or is a dangling link is left out.
                    let Ok(m) = fs.stat(&path) else { continue };
                    let perm = self.mlsx_perm(&path, m.is_dir());
                    listing::push_mlsx_line(&mut out, &name, &m, &self.mlst_facts, &perm);
                }
                _ => {
                    // An entry that vanished or cannot be read is left out rather than
                    // failing the whole listing.
                    let Ok(lmeta) = fs.lstat(&path) else { continue };
                    let target = if lmeta.file_type().is_symlink() {
                        fs.readlink(&path)
                            .ok()
                            .map(|t| t.as_os_str().as_bytes().to_vec())
                    } else {
                        None
                    };
                    listing::push_list_line(
                        &mut out,
                        &name,
                        &lmeta,
                        target.as_deref(),
                        &mut names,
                        now,
                        gmt,
                    );
                }
            }
        }
        Ok(out)
    }

    /// The MLSx `perm` fact of a real path for this session's user.
    fn mlsx_perm(&self, path: &Path, is_dir: bool) -> String {
        let user = self.username().unwrap_or("");
        let auth = &self.config.authorizer;
        listing::mlsx_perm(is_dir, |p| auth.has_perm(user, p, path))
    }

    fn cmd_mlst(&mut self, ftp: String, real: PathBuf) {
        let Some(fs) = self.fs() else { return };
        match fs.stat(&real) {
            Ok(m) => {
                let perm = self.mlsx_perm(&real, m.is_dir());
                let mut line = Vec::new();
                listing::push_mlsx_line(&mut line, ftp.as_bytes(), &m, &self.mlst_facts, &perm);
                let fact_line = String::from_utf8_lossy(&line).trim_end().to_string();
                self.reply(250, format!("Listing {ftp}\n {fact_line}\nEnd MLST."));
            }
            Err(e) => self.reply(550, format!("{}.", strerror(&e))),
        }
    }

    fn cmd_mfmt(&mut self, arg: &str) {
        // MFMT YYYYMMDDHHMMSS[.sss] path (draft-somers-ftp-mfxx): the time is UTC.
        let Some((timeval, target)) = arg.split_once(' ') else {
            return self.reply(501, "Syntax error: MFMT needs a time and a path.");
        };
        let Some(secs) = parse_time_val(timeval) else {
            return self.reply(501, "Invalid time format; expected YYYYMMDDHHMMSS.");
        };
        let Some((ftp, real)) = self.resolve(target, Some(Perms::MFMT)) else {
            return;
        };
        let Some(fs) = self.fs() else { return };
        match fs.stat(&real) {
            Ok(m) if m.is_file() => {}
            Ok(_) => return self.reply(550, format!("{ftp} is not a regular file.")),
            Err(e) => return self.reply(550, format!("{}.", strerror(&e))),
        }
        match fs.set_mtime(&real, secs) {
            Ok(()) => {
                let t = listing::CivilTime::from_unix(secs).time_val();
                self.reply(213, format!("Modify={t}; {ftp}."));
                self.log_cmd("MFMT", &ftp, 213);
            }
            Err(e) => self.reply(550, format!("{}.", strerror(&e))),
        }
    }

    fn cmd_site(&mut self, arg: &str) {
        let (sub, rest) = arg.split_once(' ').unwrap_or((arg, ""));
        match sub.to_ascii_uppercase().as_str() {
            "CHMOD" => {
                let Some((mode, target)) = rest.split_once(' ') else {
                    return self.reply(501, "Syntax error: SITE CHMOD needs a mode and a path.");
                };
                // Permission bits only: set-id and sticky bits are not a client's to set.
                let mode = match u32::from_str_radix(mode, 8) {
                    Ok(m) if m <= 0o777 => m,
                    _ => return self.reply(501, "Invalid SITE CHMOD format; expected an octal mode up to 777."),
                };
                let Some((ftp, real)) = self.resolve(target, Some(Perms::CHMOD)) else { return };
                let Some(fs) = self.fs() else { return };
                match fs.chmod(&real, mode) {
                    Ok(()) => {
                        self.reply(200, "SITE CHMOD successful.");
                        self.log_cmd("SITE CHMOD", &ftp, 200);
                    }
                    Err(e) => self.reply(550, format!("{}.", strerror(&e))),
                }
            }
            "HELP" => self.reply(214, "The following SITE commands are recognized:\n CHMOD\n HELP\nHelp SITE command successful."),
            _ => self.reply(501, "Unrecognized SITE command."),
        }
    }

    fn cmd_list(&mut self, now: Instant, verb: Verb, path: Option<(String, PathBuf)>) {
        let Some((ftp, real)) = path else {
            return self.reply(550, "No such file or directory.");
        };
        match self.make_listing(&real, verb) {
            Ok(_) if !self.need_data() => {}
            Ok(bytes) => {
                let name = match verb {
                    Verb::Nlst => "NLST",
                    Verb::Mlsd => "MLSD",
                    _ => "LIST",
                };
                self.log_cmd(name, &ftp, 125);
                self.start_transfer(
                    Pending {
                        kind: XferKind::Listing,
                        verb: name,
                        ftp_path: ftp,
                        real,
                        started: now,
                        ascii: false,
                    },
                    Direction::Send(Source::Bytes(bytes)),
                    None,
                );
            }
            Err(e) if e.kind() == io::ErrorKind::NotADirectory => {
                self.reply(501, "No such directory.")
            }
            Err(e) => self.reply(550, format!("{}.", strerror(&e))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DummyAuthorizer;
    use std::time::Duration;

    struct Harness {
        s: Session,
        now: Instant,
        dir: PathBuf,
    }

    impl Harness {
        fn new(name: &str, tweak: impl FnOnce(&mut Config)) -> Harness {
            let dir =
                std::env::temp_dir().join(format!("ftpdlib-session-{}-{name}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
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
            self.take()
        }

        fn login(&mut self, user: &str) {
            assert_eq!(
                self.send(&format!("USER {user}")),
                "331 Username ok, send password.\r\n"
            );
            assert!(self.send("PASS pw").starts_with("230 "));
        }

        fn actions(&mut self) -> Vec<Action> {
            std::iter::from_fn(|| self.s.poll_action()).collect()
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
        let r = expect!(h, "CWD etc", "550");
        assert!(r.contains("outside"), "{r}");
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
        expect!(h, "RETR file.txt", "425");
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
        assert_eq!(
            h.send("RETR file.txt"),
            "150 File status okay. About to open data connection.\r\n"
        );
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
    }

    #[test]
    fn quit_waits_for_the_transfer() {
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
        assert_eq!(h.send("QUIT"), "");
        h.s.handle_transfer_done(h.now, 6, Ok(()));
        assert_eq!(h.take(), "226 Transfer complete.\r\n221 Goodbye.\r\n");
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

    /// A filesystem whose `stat` panics, to show a panicking command is undone too.
    struct PanickyFs(crate::OsFilesystem);

    impl Filesystem for PanickyFs {
        fn root(&self) -> &Path {
            self.0.root()
        }
        fn cwd(&self) -> &str {
            self.0.cwd()
        }
        fn set_cwd(&mut self, ftppath: String) {
            self.0.set_cwd(ftppath)
        }
        fn stat(&self, _path: &Path) -> io::Result<std::fs::Metadata> {
            panic!("stat panicked");
        }
    }

    #[test]
    fn impersonation_is_always_undone() {
        use std::sync::atomic::Ordering::SeqCst;
        let mut inner = DummyAuthorizer::new();
        inner
            .add_user("user", "pw", std::env::temp_dir(), "elr")
            .unwrap();
        let auth = Arc::new(Recording {
            inner,
            ..Recording::default()
        });
        let a = Arc::clone(&auth);
        let mut h = Harness::new("impersonation", move |c| {
            c.authorizer = a;
            c.filesystem = Arc::new(|root: &Path| {
                Ok(Box::new(PanickyFs(crate::OsFilesystem::new(root)?)) as Box<dyn Filesystem>)
            });
        });
        h.login("user");
        expect!(h, "PWD", "257");
        assert!(!auth.switched.load(SeqCst));
        // A switch that fails half-way is undone before the 550.
        auth.fail_impersonate.store(true, SeqCst);
        let r = expect!(h, "PWD", "550");
        assert!(r.contains("identity"), "{r}");
        assert!(!auth.switched.load(SeqCst));
        auth.fail_impersonate.store(false, SeqCst);
        // A command that panics is undone by the guard.
        let before = auth.terminations.load(SeqCst);
        let now = h.now;
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            h.s.handle_line(now, b"SIZE x");
        }));
        assert!(caught.is_err());
        assert!(!auth.switched.load(SeqCst));
        assert_eq!(auth.terminations.load(SeqCst), before + 1);
        // Failing to switch back ends the session.
        auth.fail_terminate.store(true, SeqCst);
        let r = h.send("NOOP");
        assert!(
            r.ends_with("421 Internal error; closing the connection.\r\n"),
            "{r}"
        );
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
        let Some(Action::Transfer(t)) = h.s.poll_action() else {
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
    fn ls_flags_are_ignored() {
        assert_eq!(strip_ls_flags("-la"), "");
        assert_eq!(strip_ls_flags("-la /x y"), "/x y");
        assert_eq!(strip_ls_flags("-1 -a sub"), "sub");
        assert_eq!(strip_ls_flags("sub"), "sub");
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
}
