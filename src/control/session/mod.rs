//! The session state machine: command lines and data-channel events in, replies and
//! actions out (pyftpdlib's `FTPHandler.ftp_*` methods, without the sockets).
//!
//! Before working on this module read RFC 959 (FTP), RFC 1123 section 4.1 (FTP requirements),
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
//! The session makes no call that may block. Storage calls and password checks leave as
//! [`Action::Request`]s ([`request`]): the session reads no further command until its owner
//! hands back the [`Completion`] ([`handle_completion`](Session::handle_completion)), so
//! replies stay in order. A file to transfer is opened by such a request and handed over in
//! the [`Transfer`], so a later command can never change which file a pending transfer
//! uses.
//!
//! # Layout
//!
//! This file holds the state, the outputs and the inputs. `dispatch.rs` takes a command
//! line through the checks every command passes (argument, login, path, permission) to its
//! handler, and a completion back to the half that finishes it. The handlers live by
//! command family, each file an `impl Session` block: `login.rs` (USER, PASS, QUIT),
//! `tls.rs` (AUTH, PBSZ, PROT, CCC and the TLS policy checks), `info.rs` (HELP, FEAT, OPTS,
//! STAT), `paths.rs` (CWD, MKD, RNFR/RNTO, SIZE, MLST, MFMT, SITE, ...), `transfers.rs`
//! (TYPE, REST, PASV/PORT and their extended forms, ABOR, RETR, STOR, STOU, the listings).
//! `data.rs` takes the data side's reports, `parse.rs` has the argument parsers,
//! `contract.rs` the types exchanged with the data side ([`Action`], [`Transfer`], ...),
//! `request.rs` the requests and completions, `tests.rs` the harness and the unit tests.

use std::collections::VecDeque;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use crate::config::Config;
use crate::control::command::{self, Verb};
use crate::control::reply::Reply;
use crate::filesystem::Filesystem;
use crate::hooks::{Hooks, SessionInfo};
use crate::listing;
use crate::logger;
use crate::stats::ServerStats;
use log_event::Current;

mod contract;
mod data;
mod dispatch;
mod guards;
mod info;
mod log_event;
mod login;
mod parse;
mod paths;
pub mod request;

#[cfg(test)]
mod tests;
mod tls;
mod transfers;

pub use contract::{Action, DataFailure, Direction, Source, Transfer, TransferError};
pub use request::{Completion, Op, Request};

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
    /// The transfer itself while it waits for PASV/PORT, as pyftpdlib holds a transfer
    /// command sent before them; it starts once a data connection is being set up.
    held: Option<Transfer>,
}

/// A command waiting for its request's completion, with what it needs to finish.
#[derive(Debug)]
enum Then {
    Pass {
        user: String,
        /// When the PASS came: a failed login's pause counts from it.
        at: Instant,
    },
    Cwd {
        vpath: PathBuf,
        ftp: String,
    },
    Mkd {
        ftp: String,
        real: PathBuf,
    },
    Rmd {
        ftp: String,
        real: PathBuf,
    },
    Dele {
        ftp: String,
        real: PathBuf,
    },
    Rnfr {
        vpath: PathBuf,
    },
    Rnto {
        ftp: String,
        from: PathBuf,
        real: PathBuf,
    },
    Size {
        ftp: String,
    },
    Mdtm {
        ftp: String,
    },
    Mlst {
        ftp: String,
        real: PathBuf,
    },
    Mfmt {
        ftp: String,
        secs: i64,
    },
    Chmod {
        ftp: String,
    },
    Stat {
        ftp: String,
    },
    Retr {
        pending: Pending,
        offset: u64,
    },
    /// STOR/APPE: the checks on the target, then the open.
    StorCheck {
        pending: Pending,
        vpath: PathBuf,
        rest: Option<u64>,
        append: bool,
    },
    Stor {
        pending: Pending,
    },
    Stou {
        pending: Pending,
    },
    List {
        pending: Pending,
    },
}

/// The request a command waits on.
#[derive(Debug)]
struct Waiting {
    id: u64,
    then: Then,
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
    /// The session's number in this process, for the logs (`session` field).
    id: u64,
    /// The command being run and its path, for the line that logs its refusal.
    current: Option<Current>,
    peer: SocketAddr,
    /// `peer` as the log shows it, made once: every line of the session starts with it.
    peer_text: String,
    local: SocketAddr,
    auth: Auth,
    fs: Option<Arc<dyn Filesystem>>,
    /// The current directory, a virtual path; bytes, as names are.
    cwd: Vec<u8>,
    /// The request a command waits on.
    waiting: Option<Waiting>,
    /// ABORs that arrived while a request was out: each answered once it completes.
    abor_after: u32,
    attempts: u32,
    /// Unknown commands and over-long lines seen before login (see
    /// `max_unknown_commands_before_login`).
    unknown_before_login: u32,
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
    /// REST's restart marker, for the next transfer command (see `take_carried`).
    rest: Option<u64>,
    /// RNFR's source, a virtual path, for the next command if it is RNTO.
    rnfr: Option<PathBuf>,
    data: DataState,
    /// PORT/EPRT sent, connection pending: no further command until it settles, so replies
    /// stay in order.
    awaiting_connect: bool,
    /// PASV/EPSV sent, listener being opened: no further command until its 227/229 is out,
    /// so a command pipelined behind it is answered after it and acts on its result.
    awaiting_listen: bool,
    pending: Option<Pending>,
    transfer_running: bool,
    epsv_all: bool,
    /// QUIT arrived while a request was out: answered once it completes.
    quit_pending: bool,
    /// QUIT was answered during a transfer: the session closes when the transfer ends.
    close_after_transfer: bool,
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
    /// The server's counters: commands, replies and logins are only known here, parsed.
    stats: Option<Arc<ServerStats>>,
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

/// The number of the next session, for the `session` log field.
static NEXT_SESSION_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// The `default` of [`error_code`] for a command that makes a name: see there.
pub(crate) const NAMING: u16 = 553;

/// The reply code for a storage error: the one place I/O errors become codes.
///
/// Running out of a resource has a code of its own, whatever the command (RFC 959, 4.2):
///
/// | error | code | RFC 959 text |
/// |---|---|---|
/// | `ENOSPC` ([`io::ErrorKind::StorageFull`]) | 452 | Insufficient storage space in system |
/// | `EDQUOT` ([`io::ErrorKind::QuotaExceeded`]), `EFBIG` ([`io::ErrorKind::FileTooLarge`]) | 552 | Exceeded storage allocation |
/// | `EMFILE`, `ENFILE`, `ENOMEM` | 451 | Local error in processing |
///
/// A storage that is a service (an object store) says it can't be reached, or did not
/// answer in time, with the network's kinds; the command can be tried again later, so the
/// code is 451 too:
///
/// | error | code |
/// |---|---|
/// | [`io::ErrorKind::TimedOut`], `ConnectionRefused`, `ConnectionReset`, `ConnectionAborted`, `NotConnected` | 451 |
///
/// A command that makes a name (STOR, APPE, MKD, RNTO) passes [`NAMING`] as `default`: a
/// name the storage can't hold is then 553, "File name not allowed" (RFC 959, 4.2, which
/// gives 553 to those commands alone): `ENAMETOOLONG`, and `EILSEQ` (an object store's keys
/// must be UTF-8). Any other error of such a command is coded as for 550.
///
/// Any other error keeps `default`: 550 for a command refused, 426 for a transfer cut
/// short. The kinds count as well as the numbers, so a back-end that is not a local disk
/// can report a full store with `io::Error::from(ErrorKind::StorageFull)`.
pub(crate) fn error_code(e: &io::Error, default: u16) -> u16 {
    match e.raw_os_error() {
        Some(libc::ENOSPC) => return 452,
        Some(libc::EDQUOT) | Some(libc::EFBIG) => return 552,
        Some(libc::EMFILE) | Some(libc::ENFILE) | Some(libc::ENOMEM) => return 451,
        Some(libc::ENAMETOOLONG) | Some(libc::EILSEQ) if default == NAMING => return 553,
        _ => {}
    }
    let default = if default == NAMING { 550 } else { default };
    match e.kind() {
        io::ErrorKind::StorageFull => 452,
        io::ErrorKind::QuotaExceeded | io::ErrorKind::FileTooLarge => 552,
        io::ErrorKind::OutOfMemory => 451,
        io::ErrorKind::TimedOut
        | io::ErrorKind::ConnectionRefused
        | io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::NotConnected
            if default == 550 || default == 426 =>
        {
            451
        }
        _ => default,
    }
}

/// The code and text of a reply for a storage error: [`error_code`], and the error's
/// message (after RFC 959's words for 452 and 552) with a full stop.
fn error_reply(e: &io::Error, default: u16) -> (u16, String) {
    let code = error_code(e, default);
    let text = match code {
        452 => format!("Insufficient storage space in system ({}).", strerror(e)),
        552 => format!("Exceeded storage allocation ({}).", strerror(e)),
        _ => format!("{}.", strerror(e)),
    };
    (code, text)
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

impl Session {
    /// A new session for a client at `peer` that reached us at `local`; queues the 220
    /// greeting.
    pub fn new(config: Arc<Config>, peer: SocketAddr, local: SocketAddr, now: Instant) -> Session {
        Session::counted(config, peer, local, now, None)
    }

    /// [`Session::new`], counting its commands, replies and logins in `stats`.
    pub(crate) fn counted(
        config: Arc<Config>,
        peer: SocketAddr,
        local: SocketAddr,
        now: Instant,
        stats: Option<Arc<ServerStats>>,
    ) -> Session {
        let mut s = Session {
            id: NEXT_SESSION_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            current: None,
            idle_deadline: config.timeout.map(|t| crate::ioloop::deadline(now, t)),
            login_deadline: config
                .login_timeout
                .map(|t| crate::ioloop::deadline(now, t)),
            rate_window: now,
            rate_count: 0,
            config,
            peer: SocketAddr::new(canonical(peer.ip()), peer.port()),
            peer_text: SocketAddr::new(canonical(peer.ip()), peer.port()).to_string(),
            local: SocketAddr::new(canonical(local.ip()), local.port()),
            auth: Auth::Anonymous,
            fs: None,
            cwd: b"/".to_vec(),
            waiting: None,
            abor_after: 0,
            attempts: 0,
            unknown_before_login: 0,
            out: Vec::new(),
            actions: VecDeque::new(),
            delayed: None,
            ascii: false,
            rest: None,
            rnfr: None,
            data: DataState::None,
            awaiting_listen: false,
            awaiting_connect: false,
            pending: None,
            transfer_running: false,
            epsv_all: false,
            quit_pending: false,
            close_after_transfer: false,
            aborting: false,
            mlst_facts: listing::MLSX_DEFAULT_FACTS.to_vec(),
            hook_panicked: std::cell::Cell::new(false),
            closed: false,
            finished: false,
            control_tls: false,
            tls_switching: false,
            pbsz: false,
            prot_private: false,
            stats,
        };
        let banner = s.config.banner.clone();
        s.reply(220, banner);
        s.log("connect", "FTP session opened (connect)");
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
        } else if self.idle_runs() {
            self.idle_deadline
        } else {
            None
        };
        match (next, self.login_deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Whether the idle timeout runs: not while a transfer or an active connection is under
    /// way, which have the data channel's timeouts. A transfer held for want of PASV/PORT
    /// has none of its own, so the idle timeout ends it.
    fn idle_runs(&self) -> bool {
        !((self.pending.is_some() && !self.holds_transfer()) || self.awaiting_connect)
    }

    /// Whether the owner should hand over the next command line now. False while a reply
    /// is held back, while an active connection is pending, and after QUIT.
    pub fn accepts_commands(&self) -> bool {
        !self.closed
            && self.delayed.is_none()
            && !self.awaiting_connect
            && !self.awaiting_listen
            && !self.quit_pending
            && !self.close_after_transfer
            && !self.aborting
            && !self.tls_switching
            && self.waiting.is_none()
    }

    /// Whether a request of the session's is out ([`Action::Request`]): a command waits
    /// for its completion.
    pub fn is_waiting(&self) -> bool {
        self.waiting.is_some()
    }

    /// Whether the owner should hand over the next line if it is ABOR or QUIT
    /// ([`command::is_urgent`]): while a request is out, those two are still heard.
    pub fn accepts_urgent(&self) -> bool {
        !self.closed && self.waiting.is_some() && !self.quit_pending
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
        self.restart_idle(now);
    }

    /// The control connection is back to plaintext after CCC.
    pub fn handle_tls_ended(&mut self, now: Instant) {
        self.tls_switching = false;
        self.control_tls = false;
        self.log("tls", "control connection back to plaintext (CCC)");
        self.restart_idle(now);
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

    fn reply(&mut self, code: u16, text: impl Into<String>) {
        let r = Reply::new(code, text);
        if let Some(stats) = &self.stats {
            stats.reply(code);
        }
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
        self.restart_idle(now);
        let req = command::parse_line(line);
        if log::log_enabled!(target: logger::LINE, log::Level::Debug) {
            let shown = if req.name == "PASS" {
                "PASS ******".to_string()
            } else {
                String::from_utf8_lossy(line).into_owned()
            };
            log::debug!(target: logger::LINE, "{} <- {shown}", self.prefix());
        }
        let index = command::lookup_index(&req.name)
            .filter(|&i| !self.config.is_disabled(command::COMMANDS[i].verb));
        if let Some(stats) = &self.stats {
            stats.command(index);
        }
        if self.http_before_login(&req) {
            return;
        }
        let Some(spec) = index.map(|i| &command::COMMANDS[i]) else {
            self.take_carried(Verb::Unknown);
            let name = req.name.chars().take(32).collect::<String>();
            self.reply(500, format!("Command \"{name}\" not understood."));
            self.count_unknown_before_login();
            return;
        };
        if self.waiting.is_some() {
            return self.urgent(now, spec.verb);
        }
        self.run(now, spec, &req.arg);
    }

    /// ABOR or QUIT while a request is out. A transfer command still waiting for its file
    /// or listing is abandoned (426; the completion is dropped when it comes, releasing
    /// the file); any other request is left to finish and the command answered after it.
    /// Other lines are not handed over while a request is out.
    fn urgent(&mut self, now: Instant, verb: Verb) {
        let transfer = matches!(
            self.waiting.as_ref().map(|w| &w.then),
            Some(
                Then::Retr { .. }
                    | Then::StorCheck { .. }
                    | Then::Stor { .. }
                    | Then::Stou { .. }
                    | Then::List { .. }
            )
        );
        match verb {
            Verb::Abor if transfer => {
                // As for a running transfer, ABOR closes the data connection: the client
                // sets up a new one for its next transfer.
                self.waiting = None;
                self.drop_data();
                self.awaiting_connect = false;
                self.reply(426, "Transfer aborted via ABOR.");
                self.reply(226, "ABOR command successful.");
            }
            Verb::Abor => self.abor_after = self.abor_after.saturating_add(1),
            Verb::Quit if transfer => {
                self.waiting = None;
                self.reply(426, "Transfer aborted; the session is ending.");
                self.cmd_quit(now);
            }
            Verb::Quit => self.quit_pending = true,
            _ => self.reply(503, "Bad sequence of commands: a command is still running."),
        }
    }

    /// Handles a line that exceeded [`command::MAX_LINE`]; the owner has dropped it.
    pub fn handle_line_too_long(&mut self, now: Instant) {
        if self.closed || self.flooding(now) {
            return;
        }
        self.restart_idle(now);
        if let Some(stats) = &self.stats {
            stats.command(None);
        }
        self.take_carried(Verb::Unknown);
        self.reply(500, "Command too long.");
        self.count_unknown_before_login();
    }

    /// Starts the idle timeout (`Config::timeout`) over from `now`; without one, nothing
    /// changes.
    fn restart_idle(&mut self, now: Instant) {
        if let Some(t) = self.config.timeout {
            self.idle_deadline = Some(crate::ioloop::deadline(now, t));
        }
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
            self.log_reason("timeout", "Login timed out.");
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
        if !self.idle_runs() {
            return;
        }
        if self.idle_deadline.is_some_and(|d| d <= now) {
            self.reply(421, "Control connection timed out.");
            self.log_reason("timeout", "Control connection timed out.");
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
        self.log("disconnect", "FTP session closed (disconnect).");
        self.auth = Auth::Anonymous;
    }

    // The inputs from the data side (handle_passive_ready, handle_data_connected,
    // handle_data_failed, handle_transfer_done, handle_data_closed) are in data.rs.

    // Dispatch (a line to its command, a completion to its finishing half) is in
    // dispatch.rs.
}
