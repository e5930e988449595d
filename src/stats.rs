//! Server counters: what the server did since it started, as lock-free atomics that any
//! thread can read while the reactor runs.
//!
//! An [`FtpServer`](crate::FtpServer) counts into one [`ServerStats`], shared through an
//! `Arc` ([`FtpServer::stats`](crate::FtpServer::stats)). Every counter is a plain
//! `AtomicU64` moved with `Relaxed` ordering: one uncontended atomic add where the event
//! happens, no lock and no allocation, so several reactors on several threads may share one
//! instance ([`FtpServer::set_stats`](crate::FtpServer::set_stats)). A reader sees each
//! counter exact, but not a consistent cut across counters (a scrape may see a transfer's
//! bytes before its file count).
//!
//! Counters only go up; the two gauges ([`sessions_open`](ServerStats::sessions_open),
//! [`transfers_running`](ServerStats::transfers_running)) go up and down with the sessions
//! and transfers they count. Every value is a count since the instance was made.
//!
//! | counter | unit | moves when |
//! | --- | --- | --- |
//! | [`sessions_open`](ServerStats::sessions_open) | sessions (gauge) | a control connection is accepted / removed |
//! | [`sessions_total`](ServerStats::sessions_total) | sessions | a control connection is accepted (past the limits) |
//! | [`connections_refused`](ServerStats::connections_refused) | connections | a connection is answered 421 at accept, by [`Refusal`] |
//! | [`logins_succeeded`](ServerStats::logins_succeeded) | logins | PASS is answered 230 |
//! | [`logins_failed`](ServerStats::logins_failed) | logins | PASS is refused by the authorizer (530) |
//! | [`login_bans`](ServerStats::login_bans) | bans | an address reaches `max_failed_logins` and is banned |
//! | [`command_flood_closes`](ServerStats::command_flood_closes) | sessions | a session is closed for passing `max_commands_per_sec` |
//! | [`commands`](ServerStats::commands) | commands | the session takes a command line, by verb (unknown ones and over-long lines as `"other"`) |
//! | [`replies`](ServerStats::replies) | replies | the session queues a reply, by code |
//! | [`bytes_sent`](ServerStats::bytes_sent), [`bytes_received`](ServerStats::bytes_received) | bytes | payload bytes move on a data connection (files and listings; after TYPE A conversion, before TLS) |
//! | [`files_sent`](ServerStats::files_sent), [`files_received`](ServerStats::files_received) | files | a RETR, or a STOR/APPE/STOU, ends with its whole data moved (226) |
//! | [`transfers_running`](ServerStats::transfers_running) | transfers (gauge) | a transfer (file or listing) is handed to its data connection / ends |
//! | [`transfers_throttled`](ServerStats::transfers_throttled) | transfers | a transfer first waits for a bandwidth limit (once per transfer) |
//! | [`data_failures`](ServerStats::data_failures) | connections | a data connection fails, by [`DataConnFailure`] |
//! | [`tls_handshakes`](ServerStats::tls_handshakes) | handshakes | a TLS handshake (control or data) completes or fails |
//! | [`lock_waits`](ServerStats::lock_waits) | waits | a reactor of a [`ServerGroup`](crate::ServerGroup) finds a lock on the shared limits taken by another |
//! | [`reactor_panics`](ServerStats::reactor_panics) | reactors | a reactor thread of a [`ServerGroup`](crate::ServerGroup) panics (its sessions are closed) |

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::control::command::COMMANDS;

/// Commands counted by verb: the known verbs of the command table, then `"other"`.
const VERB_SLOTS: usize = COMMANDS.len() + 1;
/// Reply codes counted: 100 to 599 (RFC 959 section 4.2 codes are three digits, 1xx-5xx).
const REPLY_LOW: u16 = 100;
const REPLY_SLOTS: usize = 500;

/// Why a connection was answered 421 and closed at accept, before it became a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Refusal {
    /// The address is banned for failed logins ([`FloodConfig`](crate::FloodConfig)).
    Banned,
    /// `max_cons` sessions were open.
    MaxCons,
    /// `max_cons_per_ip` sessions were open from the address.
    MaxConsPerIp,
    /// The server's token range was used up.
    Busy,
}

impl Refusal {
    /// Every reason, in table order.
    pub const ALL: [Refusal; 4] = [
        Refusal::Banned,
        Refusal::MaxCons,
        Refusal::MaxConsPerIp,
        Refusal::Busy,
    ];

    /// A short snake_case name, e.g. for a metric label: `banned`, `max_cons`,
    /// `max_cons_per_ip`, `busy`.
    pub fn name(self) -> &'static str {
        match self {
            Refusal::Banned => "banned",
            Refusal::MaxCons => "max_cons",
            Refusal::MaxConsPerIp => "max_cons_per_ip",
            Refusal::Busy => "busy",
        }
    }
}

/// How a data connection failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DataConnFailure {
    /// Nobody connected to the passive listener within `accept_timeout` (PASV/EPSV).
    AcceptTimeout,
    /// The active connection did not complete within `connect_timeout` (PORT/EPRT).
    ConnectTimeout,
    /// The client refused the active connection (ECONNREFUSED).
    ConnectRefused,
    /// The active connection failed otherwise (unreachable, no route, ...).
    ConnectError,
    /// A connection to a passive listener came from an address other than the client's;
    /// it was dropped and the listener kept.
    ForeignPeer,
    /// The connection was reset or closed early during a transfer (the 426 replies that
    /// name the connection).
    Reset,
    /// No byte moved for the data timeout (the 421 "Data connection timed out").
    Stalled,
    /// The server could not accept the connection to its passive listener: out of file
    /// descriptors or memory (the waiting transfer gets 425).
    AcceptError,
}

impl DataConnFailure {
    /// Every kind, in table order.
    pub const ALL: [DataConnFailure; 8] = [
        DataConnFailure::AcceptTimeout,
        DataConnFailure::ConnectTimeout,
        DataConnFailure::ConnectRefused,
        DataConnFailure::ConnectError,
        DataConnFailure::ForeignPeer,
        DataConnFailure::Reset,
        DataConnFailure::Stalled,
        DataConnFailure::AcceptError,
    ];

    /// A short snake_case name, e.g. for a metric label: `accept_timeout`,
    /// `connect_timeout`, `connect_refused`, `connect_error`, `foreign_peer`, `reset`,
    /// `stalled`, `accept_error`.
    pub fn name(self) -> &'static str {
        match self {
            DataConnFailure::AcceptTimeout => "accept_timeout",
            DataConnFailure::ConnectTimeout => "connect_timeout",
            DataConnFailure::ConnectRefused => "connect_refused",
            DataConnFailure::ConnectError => "connect_error",
            DataConnFailure::ForeignPeer => "foreign_peer",
            DataConnFailure::Reset => "reset",
            DataConnFailure::Stalled => "stalled",
            DataConnFailure::AcceptError => "accept_error",
        }
    }
}

/// Which connection a TLS handshake ran on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Conn {
    /// The control connection (AUTH TLS, or implicit FTPS at connect).
    Control,
    /// A data connection under PROT P.
    Data,
}

impl Conn {
    /// Both, in table order.
    pub const ALL: [Conn; 2] = [Conn::Control, Conn::Data];

    /// `control` or `data`.
    pub fn name(self) -> &'static str {
        match self {
            Conn::Control => "control",
            Conn::Data => "data",
        }
    }
}

/// The server's counters (see the [module docs](self) for what moves each one).
///
/// # Examples
///
/// ```no_run
/// use std::sync::Arc;
/// use ftpdlib::{Config, DummyAuthorizer, FtpServer};
///
/// let mut auth = DummyAuthorizer::new();
/// auth.add_anonymous(".", "elr").unwrap();
/// let server = FtpServer::bind("127.0.0.1:2121", Config::new(Arc::new(auth))).unwrap();
/// let stats = server.stats();
/// std::thread::spawn(move || loop {
///     std::thread::sleep(std::time::Duration::from_secs(10));
///     println!("{} sessions, {} bytes sent", stats.sessions_open(), stats.bytes_sent());
/// });
/// ```
pub struct ServerStats {
    sessions_open: AtomicU64,
    sessions_total: AtomicU64,
    refused: [AtomicU64; Refusal::ALL.len()],
    logins_succeeded: AtomicU64,
    logins_failed: AtomicU64,
    login_bans: AtomicU64,
    command_flood_closes: AtomicU64,
    commands: [AtomicU64; VERB_SLOTS],
    replies: [AtomicU64; REPLY_SLOTS],
    bytes_sent: AtomicU64,
    bytes_received: AtomicU64,
    files_sent: AtomicU64,
    files_received: AtomicU64,
    transfers_running: AtomicU64,
    transfers_throttled: AtomicU64,
    data_failures: [AtomicU64; DataConnFailure::ALL.len()],
    /// Control then data; succeeded then failed.
    tls: [[AtomicU64; 2]; 2],
    lock_waits: AtomicU64,
    reactor_panics: AtomicU64,
}

impl std::fmt::Debug for ServerStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerStats")
            .field("sessions_open", &self.sessions_open())
            .field("sessions_total", &self.sessions_total())
            .field("bytes_sent", &self.bytes_sent())
            .field("bytes_received", &self.bytes_received())
            .finish_non_exhaustive()
    }
}

impl Default for ServerStats {
    fn default() -> Self {
        ServerStats::new()
    }
}

fn read(a: &AtomicU64) -> u64 {
    a.load(Relaxed)
}

fn bump(a: &AtomicU64) {
    a.fetch_add(1, Relaxed);
}

impl ServerStats {
    /// Every counter at zero.
    pub const fn new() -> ServerStats {
        ServerStats {
            sessions_open: AtomicU64::new(0),
            sessions_total: AtomicU64::new(0),
            refused: [const { AtomicU64::new(0) }; Refusal::ALL.len()],
            logins_succeeded: AtomicU64::new(0),
            logins_failed: AtomicU64::new(0),
            login_bans: AtomicU64::new(0),
            command_flood_closes: AtomicU64::new(0),
            commands: [const { AtomicU64::new(0) }; VERB_SLOTS],
            replies: [const { AtomicU64::new(0) }; REPLY_SLOTS],
            bytes_sent: AtomicU64::new(0),
            bytes_received: AtomicU64::new(0),
            files_sent: AtomicU64::new(0),
            files_received: AtomicU64::new(0),
            transfers_running: AtomicU64::new(0),
            transfers_throttled: AtomicU64::new(0),
            data_failures: [const { AtomicU64::new(0) }; DataConnFailure::ALL.len()],
            tls: [const { [const { AtomicU64::new(0) }; 2] }; 2],
            lock_waits: AtomicU64::new(0),
            reactor_panics: AtomicU64::new(0),
        }
    }

    // ---- reading -----------------------------------------------------------------------

    /// Sessions (control connections) open now.
    pub fn sessions_open(&self) -> u64 {
        read(&self.sessions_open)
    }

    /// Sessions accepted since the start.
    pub fn sessions_total(&self) -> u64 {
        read(&self.sessions_total)
    }

    /// Connections answered 421 at accept for `why`.
    pub fn connections_refused(&self, why: Refusal) -> u64 {
        read(&self.refused[why as usize])
    }

    /// Logins that succeeded (230 to PASS).
    pub fn logins_succeeded(&self) -> u64 {
        read(&self.logins_succeeded)
    }

    /// Logins the authorizer refused.
    pub fn logins_failed(&self) -> u64 {
        read(&self.logins_failed)
    }

    /// Addresses banned for failed logins (each ban counted once, when it starts).
    pub fn login_bans(&self) -> u64 {
        read(&self.login_bans)
    }

    /// Sessions closed for sending more than `max_commands_per_sec` commands in a second.
    pub fn command_flood_closes(&self) -> u64 {
        read(&self.command_flood_closes)
    }

    /// Commands taken with verb `verb` (case-insensitive); `"other"` for unknown verbs and
    /// over-long lines. 0 for a name that is neither a known verb nor `"other"`.
    pub fn commands(&self, verb: &str) -> u64 {
        match crate::control::command::lookup_index(verb) {
            Some(i) => read(&self.commands[i]),
            None if verb.eq_ignore_ascii_case("other") => read(&self.commands[COMMANDS.len()]),
            None => 0,
        }
    }

    /// Every verb of the command table and `"other"`, in table order, with its count (zeros
    /// included, so the set of names never changes).
    pub fn commands_by_verb(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        COMMANDS
            .iter()
            .map(|c| c.name)
            .chain(std::iter::once("other"))
            .zip(self.commands.iter().map(read))
    }

    /// Replies sent with `code` (100 to 599; 0 for any other).
    pub fn replies(&self, code: u16) -> u64 {
        reply_slot(code).map_or(0, |i| read(&self.replies[i]))
    }

    /// The reply codes sent at least once, ascending, with their counts.
    pub fn replies_by_code(&self) -> impl Iterator<Item = (u16, u64)> + '_ {
        (REPLY_LOW..)
            .zip(self.replies.iter().map(read))
            .filter(|(_, n)| *n > 0)
    }

    /// Payload bytes sent on data connections (downloads and listings).
    pub fn bytes_sent(&self) -> u64 {
        read(&self.bytes_sent)
    }

    /// Payload bytes received on data connections (uploads).
    pub fn bytes_received(&self) -> u64 {
        read(&self.bytes_received)
    }

    /// Files sent whole (RETR answered 226).
    pub fn files_sent(&self) -> u64 {
        read(&self.files_sent)
    }

    /// Files received whole (STOR, APPE, STOU answered 226).
    pub fn files_received(&self) -> u64 {
        read(&self.files_received)
    }

    /// Transfers (files and listings) running on a data connection now.
    pub fn transfers_running(&self) -> u64 {
        read(&self.transfers_running)
    }

    /// Transfers that waited for a bandwidth limit (per transfer, per user or the whole
    /// server's) at least once; each counted once.
    pub fn transfers_throttled(&self) -> u64 {
        read(&self.transfers_throttled)
    }

    /// Data connections that failed as `kind`.
    pub fn data_failures(&self, kind: DataConnFailure) -> u64 {
        read(&self.data_failures[kind as usize])
    }

    /// TLS handshakes on `conn` that succeeded (`ok`) or failed (`!ok`: a TLS error, a
    /// timeout, a refused session reuse, or the peer leaving before the end).
    pub fn tls_handshakes(&self, conn: Conn, ok: bool) -> u64 {
        read(&self.tls[conn as usize][usize::from(!ok)])
    }

    /// Times a reactor found a lock on the state a [`ServerGroup`](crate::ServerGroup)'s
    /// reactors share (connection counts, the flood table, the user and server bandwidth
    /// buckets) held by another and waited for it: the cost of sharing the limits. A lone
    /// server's locks are never contended.
    pub fn lock_waits(&self) -> u64 {
        read(&self.lock_waits)
    }

    /// Reactor threads of a [`ServerGroup`](crate::ServerGroup) that panicked; each closed
    /// its sessions and stopped while the others went on.
    pub fn reactor_panics(&self) -> u64 {
        read(&self.reactor_panics)
    }

    // ---- counting (the server's) -------------------------------------------------------

    pub(crate) fn lock_waited(&self) {
        bump(&self.lock_waits);
    }

    pub(crate) fn reactor_panicked(&self) {
        bump(&self.reactor_panics);
    }

    pub(crate) fn session_opened(&self) {
        bump(&self.sessions_open);
        bump(&self.sessions_total);
    }

    pub(crate) fn session_closed(&self) {
        self.sessions_open.fetch_sub(1, Relaxed);
    }

    pub(crate) fn refused(&self, why: Refusal) {
        bump(&self.refused[why as usize]);
    }

    pub(crate) fn login(&self, ok: bool) {
        bump(if ok {
            &self.logins_succeeded
        } else {
            &self.logins_failed
        });
    }

    pub(crate) fn login_banned(&self) {
        bump(&self.login_bans);
    }

    pub(crate) fn command_flood_closed(&self) {
        bump(&self.command_flood_closes);
    }

    /// A command of the command table's row `index`, or `None` for "other".
    pub(crate) fn command(&self, index: Option<usize>) {
        let i = index.filter(|i| *i < COMMANDS.len());
        bump(&self.commands[i.unwrap_or(COMMANDS.len())]);
    }

    pub(crate) fn reply(&self, code: u16) {
        if let Some(i) = reply_slot(code) {
            bump(&self.replies[i]);
        }
    }

    pub(crate) fn moved(&self, sent: bool, bytes: u64) {
        if bytes > 0 {
            let a = if sent {
                &self.bytes_sent
            } else {
                &self.bytes_received
            };
            a.fetch_add(bytes, Relaxed);
        }
    }

    pub(crate) fn file_done(&self, sent: bool) {
        bump(if sent {
            &self.files_sent
        } else {
            &self.files_received
        });
    }

    pub(crate) fn throttled(&self) {
        bump(&self.transfers_throttled);
    }

    pub(crate) fn data_failed(&self, kind: DataConnFailure) {
        bump(&self.data_failures[kind as usize]);
    }

    pub(crate) fn handshake(&self, conn: Conn, ok: bool) {
        bump(&self.tls[conn as usize][usize::from(!ok)]);
    }
}

fn reply_slot(code: u16) -> Option<usize> {
    let i = usize::from(code.checked_sub(REPLY_LOW)?);
    (i < REPLY_SLOTS).then_some(i)
}

/// Counts one running transfer in [`ServerStats::transfers_running`] for as long as it
/// lives: made when a transfer is handed to its data connection, dropped with it however
/// it ends.
#[derive(Debug)]
pub(crate) struct TransferGauge(std::sync::Arc<ServerStats>);

impl TransferGauge {
    pub fn new(stats: &std::sync::Arc<ServerStats>) -> TransferGauge {
        bump(&stats.transfers_running);
        TransferGauge(std::sync::Arc::clone(stats))
    }
}

impl Drop for TransferGauge {
    fn drop(&mut self) {
        self.0.transfers_running.fetch_sub(1, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_cover_every_verb_and_reply_code() {
        let s = ServerStats::new();
        let retr = crate::control::command::lookup_index("RETR");
        s.command(retr);
        s.command(None);
        s.command(None);
        assert_eq!(s.commands("retr"), 1);
        assert_eq!(s.commands("other"), 2);
        assert_eq!(s.commands("XYZZY"), 0);
        assert_eq!(s.commands_by_verb().count(), COMMANDS.len() + 1);
        assert_eq!(s.commands_by_verb().map(|(_, n)| n).sum::<u64>(), 3);

        for code in [100, 226, 226, 599, 99, 600] {
            s.reply(code);
        }
        assert_eq!(
            s.replies_by_code().collect::<Vec<_>>(),
            vec![(100, 1), (226, 2), (599, 1)]
        );
        assert_eq!(s.replies(600), 0);
    }

    #[test]
    fn gauges_follow_their_guards() {
        let s = std::sync::Arc::new(ServerStats::new());
        let a = TransferGauge::new(&s);
        let b = TransferGauge::new(&s);
        assert_eq!(s.transfers_running(), 2);
        drop(a);
        assert_eq!(s.transfers_running(), 1);
        drop(b);
        assert_eq!(s.transfers_running(), 0);
        s.session_opened();
        s.session_closed();
        assert_eq!((s.sessions_open(), s.sessions_total()), (1 - 1, 1));
    }
}
