//! The control connection (pyftpdlib's `FTPHandler` as a channel): a socket, its line
//! buffer, and the [`Session`] that interprets the lines.
//!
//! The channel reads until `WouldBlock` (mio delivers readiness edges, so a read left short
//! would never be signalled again), splits the input into lines of at most
//! [`command::MAX_LINE`] bytes, hands them to the session one by one while it accepts
//! commands, and writes the session's replies back. It drives itself: the server calls
//! `drive(now)` on each event and gets back the [`Action`]s that need the
//! server (data channels, the flood table), or word that the connection is done; it hands
//! the answers back through the channel's `handle_*` methods, which pass them to the session.
//!
//! The socket is a `tls::Stream`: plain, or TLS from the first byte (implicit FTPS) or from the
//! moment the 234 reply to AUTH has been written. At that moment every byte already read is
//! dropped: the client sent it before it could have seen the 234, so it is not the TLS
//! handshake, and executing it would let a man in the middle inject commands into the
//! protected session (the STARTTLS injection of CVE-2011-1575).

pub mod command;
pub mod reply;
pub mod session;

use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Interest, Registry, Token};

use crate::data::DataEvent;
use crate::logger;
use crate::stats::{Conn, ServerStats};
use crate::tls::{self, DataTls, SessionTls, Stream, TlsConfig};
use session::{Action, Completion, DataFailure, TransferError};

pub use session::Session;

/// Stop reading from a client that sends faster than it lets us answer.
const MAX_BUFFERED_INPUT: usize = 64 * 1024;
/// Stop handing commands to the session while this much output is unsent.
const MAX_BUFFERED_OUTPUT: usize = 256 * 1024;
/// How long a closed session may take to flush its last replies.
const LINGER: Duration = Duration::from_secs(5);

/// What [`ControlChannel::drive`] leaves to the server.
#[derive(Debug)]
pub(crate) enum Drive {
    /// The session asked for these; apply them, then drive the channel again.
    Apply(Vec<Action>),
    /// The connection is over (the peer left, or the session ended and its replies are
    /// out): remove the channel.
    Close,
    /// Nothing to do until the next event or timer.
    Wait,
}

/// The most one read of a control connection takes.
const READ_CHUNK: usize = 4096;

thread_local! {
    /// What control connections read through, one per reactor thread: zeroed once, not
    /// per read (a 4 KiB memset was half the instructions of a NOOP).
    static READ_BUFFER: std::cell::RefCell<[u8; READ_CHUNK]> =
        const { std::cell::RefCell::new([0; READ_CHUNK]) };
}

/// What the control socket is registered for: both directions, and urgent data where the
/// poll reports it apart (see [`ControlChannel::fill`]).
fn interest() -> Interest {
    let both = Interest::READABLE | Interest::WRITABLE;
    #[cfg(any(target_os = "linux", target_os = "android"))]
    let both = both | Interest::PRIORITY;
    both
}

/// A line taken from the input buffer.
#[derive(Debug, PartialEq, Eq)]
enum Line {
    /// A complete line without its line ending.
    Complete(Vec<u8>),
    /// A line longer than the limit was dropped.
    TooLong,
}

/// The line splitter, apart from the socket so it can be tested alone.
#[derive(Debug, Default)]
struct LineBuffer {
    buf: Vec<u8>,
    /// Inside an over-long line: drop bytes up to the next LF.
    discarding: bool,
}

impl LineBuffer {
    pub fn extend(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Whether the next complete line is ABOR or QUIT (see [`command::is_urgent`]).
    pub fn urgent_next(&self) -> bool {
        if self.discarding {
            return false;
        }
        let Some(i) = self.buf.iter().position(|&b| b == b'\n') else {
            return false;
        };
        // The line as `next_line` would give it: without its CR.
        let line = &self.buf[..i];
        command::is_urgent(line.strip_suffix(b"\r").unwrap_or(line))
    }

    /// Whether [`next_line`](Self::next_line) would return something.
    pub fn has_line(&self) -> bool {
        // While the rest of an over-long line is being dropped, nothing comes out until its
        // end arrives: saying otherwise made the channel spin on a client in mid-line.
        if self.discarding {
            return self.buf.contains(&b'\n');
        }
        self.buf.len() >= command::MAX_LINE || self.buf.contains(&b'\n')
    }

    /// The next line, if one is complete (or an over-long line has to be reported).
    pub fn next_line(&mut self) -> Option<Line> {
        loop {
            let nl = self.buf.iter().position(|&b| b == b'\n');
            if self.discarding {
                match nl {
                    Some(i) => {
                        self.buf.drain(..=i);
                        self.discarding = false;
                        continue;
                    }
                    None => {
                        self.buf.clear();
                        return None;
                    }
                }
            }
            return match nl {
                Some(i) if i + 1 > command::MAX_LINE => {
                    self.buf.drain(..=i);
                    Some(Line::TooLong)
                }
                Some(i) => {
                    let mut line: Vec<u8> = self.buf.drain(..=i).collect();
                    line.pop();
                    if line.last() == Some(&b'\r') {
                        line.pop();
                    }
                    Some(Line::Complete(line))
                }
                None if self.buf.len() >= command::MAX_LINE => {
                    self.buf.clear();
                    self.discarding = true;
                    Some(Line::TooLong)
                }
                None => None,
            };
        }
    }
}

/// One client's control connection.
#[doc(alias = "FTPHandler")]
#[derive(Debug)]
pub(crate) struct ControlChannel {
    stream: Stream,
    session: Session,
    input: LineBuffer,
    /// Slab key of the data channel, if any.
    data: Option<usize>,
    /// When the session closed, for the lingering flush of its last replies.
    closed_at: Option<Instant>,
    peer: SocketAddr,
    /// The socket failed, or the session can't go on with it.
    eof: bool,
    /// The peer sent its FIN: nothing more to read, but the lines it sent before and a
    /// request still out get their replies before the session ends (see
    /// [`drive`](Self::drive)).
    peer_done: bool,
    /// The socket may have bytes to read: set by every event on it, cleared when a read
    /// finds none or, on a plain socket, comes back short (see [`fill`](Self::fill)). A
    /// turn that is not a socket event (a completion, actions applied, a timer) then costs
    /// no read(2) that can only come back empty.
    readable: bool,
    /// An event said a short read may not mean an empty socket: the peer shut down its
    /// side, the socket failed, or urgent data came (see [`fill`](Self::fill)). Reads go on
    /// to `WouldBlock` until then.
    read_on: bool,
    /// The last `fill` stopped because the input buffer was full, with bytes possibly
    /// left in the socket.
    input_full: bool,
    /// FTPS settings, if the server has a certificate.
    tls: Option<TlsConfig>,
    /// The session's TLS keys, shared with its data connections.
    keys: SessionTls,
    /// AUTH answered: switch to TLS once the reply is written.
    tls_pending: bool,
    /// CCC accepted; our close_notify goes once the 200 is written.
    ccc_pending: bool,
    /// CCC under way: reading up to the client's close_notify.
    ccc_draining: bool,
    /// A TLS handshake on this connection must be done by then.
    handshake_deadline: Option<Instant>,
    /// close_notify queued after the session ended.
    closing: bool,
    /// A TLS handshake has started and not yet been counted as done or failed.
    handshake_counted: bool,
    /// The server's counters: this session is one of `sessions_open` while the channel
    /// lives.
    stats: Arc<ServerStats>,
}

impl ControlChannel {
    /// A control channel; with implicit FTPS its TLS handshake starts at once.
    pub fn new(
        stream: TcpStream,
        mut session: Session,
        peer: SocketAddr,
        tls: Option<TlsConfig>,
        now: Instant,
        stats: Arc<ServerStats>,
    ) -> ControlChannel {
        stats.session_opened();
        let implicit = tls.as_ref().is_some_and(|t| t.implicit);
        if implicit {
            session.set_implicit_tls();
        }
        let mut c = ControlChannel {
            stream: Stream::Plain(stream),
            session,
            input: LineBuffer::default(),
            data: None,
            closed_at: None,
            peer,
            eof: false,
            peer_done: false,
            readable: true,
            read_on: false,
            input_full: false,
            tls,
            keys: SessionTls::default(),
            tls_pending: false,
            ccc_pending: false,
            ccc_draining: false,
            handshake_deadline: None,
            closing: false,
            handshake_counted: false,
            stats,
        };
        if implicit {
            c.switch_to_tls(now);
        }
        c
    }

    /// The session accepted CCC ([`Action::EndTls`](session::Action::EndTls)).
    fn request_plain(&mut self) {
        self.ccc_pending = true;
        self.stream.cut_records();
    }

    /// Drives CCC: sends our close_notify once the 200 is out, and switches to plaintext
    /// once the client's close_notify is read; true when it switched.
    fn end_tls_if_due(&mut self, now: Instant) -> bool {
        if self.ccc_pending && self.session.output().is_empty() && !self.stream.wants_write() {
            self.ccc_pending = false;
            self.ccc_draining = true;
            self.stream.begin_ccc();
            // The client's close_notify may already be here.
            self.readable = true;
            self.fill();
        }
        if !self.ccc_draining || !self.stream.ccc_done() {
            return false;
        }
        self.ccc_draining = false;
        let tls = std::mem::replace(&mut self.stream, Stream::Switching);
        let (plain, rest) = tls.end_tls();
        self.stream = plain;
        self.input = LineBuffer::default();
        self.input.extend(&rest);
        self.session.handle_tls_ended(now);
        // More plaintext may sit in the socket behind what was already read.
        self.readable = true;
        self.fill();
        true
    }

    /// The session asked for TLS ([`Action::StartTls`](session::Action::StartTls)).
    fn request_tls(&mut self) {
        self.tls_pending = true;
    }

    /// Switches to TLS once the 234 is out; true when it did.
    fn start_tls_if_due(&mut self, now: Instant) -> bool {
        if !self.tls_pending || !self.session.output().is_empty() || self.eof || self.peer_done {
            return false;
        }
        self.tls_pending = false;
        if self.input.len() > 0 {
            log::warn!(
                target: logger::LOG,
                "{} discarded {} plaintext bytes sent after AUTH",
                self.peer,
                self.input.len()
            );
        }
        self.input = LineBuffer::default();
        self.switch_to_tls(now);
        if !self.eof {
            self.session.handle_tls_started(now);
        }
        true
    }

    fn switch_to_tls(&mut self, now: Instant) {
        self.readable = true;
        let Some(config) = self.tls.as_ref() else {
            self.eof = true;
            return;
        };
        let plain = std::mem::replace(&mut self.stream, Stream::Switching);
        let ip = self.client_ip();
        match plain.start_control_tls(config, &mut self.keys, ip) {
            Ok(s) => {
                self.stream = s;
                self.handshake_deadline =
                    Some(crate::ioloop::deadline(now, config.handshake_timeout));
                self.handshake_counted = true;
            }
            Err((s, e)) => {
                self.stats.handshake(Conn::Control, false);
                logger::logerror(&format!("{} can't start TLS: {e}", self.peer));
                self.stream = s;
                self.eof = true;
            }
        }
    }

    /// The next deadline of the channel: the session's, or the handshake's; once the
    /// session has ended, the end of the time its last replies get to go out.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.closed_at {
            Some(t) => Some(t + LINGER),
            None => tls::earliest(self.session.poll_timeout(), self.handshake_deadline),
        }
    }

    /// Whether the session ended so long ago that the channel should go even with replies
    /// unsent (the client does not read them).
    pub fn linger_over(&self, now: Instant) -> bool {
        self.closed_at.is_some_and(|t| t + LINGER <= now)
    }

    /// A deadline of the channel passed: the TLS handshake's or the session's. Drive the
    /// channel afterwards.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.handshake_expired(now);
        self.session.handle_timeout(now);
    }

    /// Ends a connection whose TLS handshake did not finish in time; true if it did so.
    fn handshake_expired(&mut self, now: Instant) -> bool {
        match self.handshake_deadline {
            Some(d) if d <= now && self.stream.is_handshaking() => {
                log::info!(target: logger::LOG, "{} TLS handshake timed out", self.peer);
                self.eof = true;
                true
            }
            _ => false,
        }
    }

    fn note_handshake(&mut self) {
        if self.handshake_deadline.is_some() && !self.stream.is_handshaking() {
            self.handshake_deadline = None;
        }
        if self.handshake_counted && !self.stream.is_handshaking() {
            self.handshake_counted = false;
            self.stats
                .handshake(Conn::Control, !self.stream.tls_failed());
        }
    }

    /// Whether every reply, TLS records included, is on the wire.
    fn drained(&self) -> bool {
        self.session.output().is_empty() && !self.stream.wants_write()
    }

    /// Reads what the socket has, unless enough is already waiting.
    ///
    /// One read per command: on a plain TCP socket a read that comes back short found the
    /// receive queue empty (epoll(7): "for stream-oriented files ... if read returns less
    /// than requested, you can be sure you've drained the buffer"), so the read that could
    /// only say `WouldBlock` is skipped. The edge-triggered contract holds: a byte that
    /// arrives after this read is a new edge, hence a new event. Two cases where a short
    /// read does not mean empty are told by the event ([`note_event`](Self::note_event))
    /// and read on to `WouldBlock`:
    /// - urgent data (`EPOLLPRI`): a read stops at TCP's urgent mark (the Telnet Synch a
    ///   client sends with ABOR) with the urgent byte and the command behind it queued;
    /// - the peer's FIN or a socket error (`EPOLLRDHUP`, `EPOLLERR`): the FIN that came
    ///   with the bytes spent its edge with theirs, so the end must be read now.
    ///
    /// Under TLS a short read means rustls had no more plaintext, not that the socket is
    /// empty: TLS reads always go on to `WouldBlock`. So do reads where the event cannot
    /// tell urgent data (mio reports `EPOLLPRI` on Linux and Android only).
    fn fill(&mut self) {
        READ_BUFFER.with_borrow_mut(|chunk| self.fill_through(chunk));
    }

    /// [`fill`](Self::fill), reading through `chunk`.
    fn fill_through(&mut self, chunk: &mut [u8; READ_CHUNK]) {
        const SHORT_READ_DRAINS: bool = cfg!(any(target_os = "linux", target_os = "android"));
        while self.readable && !self.eof && !self.peer_done && self.input.len() < MAX_BUFFERED_INPUT
        {
            match self.stream.read(chunk) {
                // During CCC the client's close_notify ends the TLS stream, not the session.
                Ok(0) if self.ccc_pending || self.ccc_draining => break,
                Ok(0) => self.peer_done = true,
                Ok(n) => {
                    self.input.extend(&chunk[..n]);
                    if SHORT_READ_DRAINS
                        && n < chunk.len()
                        && !self.read_on
                        && !self.stream.is_tls()
                    {
                        self.readable = false;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.readable = false;
                    self.read_on = false;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    if let Some(why) = tls::tls_failure(&e) {
                        log::info!(target: logger::LOG, "{} {why}", self.peer);
                    }
                    self.eof = true;
                }
            }
        }
        self.input_full =
            self.readable && !self.eof && !self.peer_done && self.input.len() >= MAX_BUFFERED_INPUT;
        self.note_handshake();
    }

    /// Whether the session may be handed another line now.
    fn wants_line(&self) -> bool {
        self.session.accepts_commands() && self.session.output().len() < MAX_BUFFERED_OUTPUT
    }

    /// Writes pending replies until the socket blocks.
    fn flush(&mut self) {
        while !self.session.output().is_empty() {
            match self.stream.write(self.session.output()) {
                Ok(0) => {
                    self.eof = true;
                    break;
                }
                Ok(n) => self.session.consume_output(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    self.eof = true;
                    break;
                }
            }
        }
        if self.session.is_closed() && self.session.output().is_empty() && !self.closing {
            self.closing = true;
            if self.stream.close_notify().is_err() {
                self.eof = true;
            }
        }
        // TLS records queued earlier go out on this writable edge.
        match self.stream.flush() {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(_) => self.eof = true,
        }
        // Writing during a TLS handshake reads the peer's handshake messages, and the
        // client's first command may have come in the same segment: take it now, its
        // readiness edge is spent.
        if self.stream.is_tls() {
            self.fill();
        }
        self.note_handshake();
    }

    /// The next line for the session, if it wants one.
    fn next_line(&mut self) -> Option<Line> {
        if self.wants_line() || (self.session.accepts_urgent() && self.input.urgent_next()) {
            return self.input.next_line();
        }
        None
    }

    /// The socket had an event: it may have bytes to read. `read_on` if the event said a
    /// short read may leave bytes behind: urgent data, the peer's FIN or a socket error
    /// (mio's [`Event::is_priority`](mio::event::Event::is_priority),
    /// [`is_read_closed`](mio::event::Event::is_read_closed),
    /// [`is_error`](mio::event::Event::is_error)).
    pub fn note_event(&mut self, read_on: bool) {
        self.readable = true;
        self.read_on |= read_on;
    }

    /// A request of the session's is done ([`Action::Request`]).
    pub fn handle_completion(&mut self, now: Instant, id: u64, c: Completion) {
        self.session.handle_completion(now, id, c);
    }

    /// One turn of the channel on an event or timer: reads what the socket has, hands the
    /// session its lines, and writes its replies, until either the session asks for
    /// something only the server can do, the connection is over, or nothing is left to
    /// do. TLS switches (AUTH, CCC) are the channel's own and never reach the server.
    pub fn drive(&mut self, now: Instant) -> Drive {
        loop {
            self.fill();
            while let Some(line) = self.next_line() {
                match line {
                    Line::Complete(l) => self.session.handle_line(now, &l),
                    Line::TooLong => self.session.handle_line_too_long(now),
                }
            }
            // A login (or a new one) makes this user's data connections from this address
            // welcome to resume the TLS sessions of this control connection.
            self.keys.note_user(self.session.username());
            let mut actions = Vec::new();
            let mut handled = false;
            while let Some(a) = self.session.poll_action() {
                match a {
                    Action::StartTls => self.request_tls(),
                    Action::EndTls => self.request_plain(),
                    a => actions.push(a),
                }
                handled = true;
            }
            if !actions.is_empty() {
                return Drive::Apply(actions);
            }
            if handled {
                // A TLS request may have let more lines through or changed what to write.
                continue;
            }
            self.flush();
            if self.start_tls_if_due(now) || self.end_tls_if_due(now) {
                continue;
            }
            if self.session.is_closed() && self.closed_at.is_none() {
                self.closed_at = Some(now);
            }
            if self.eof || (self.session.is_closed() && self.drained()) {
                return Drive::Close;
            }
            // After the peer's FIN the session ends once the commands sent before it are
            // answered: a request out (a login on the worker pool) and the lines the
            // session takes now. A client that sends its last commands and half-closes
            // gets every reply, as it would if the work were done at once.
            if self.peer_done
                && !self.session.is_waiting()
                && !(self.wants_line() && self.input.has_line())
                && self.drained()
            {
                return Drive::Close;
            }
            // Output drained below the limit may let a waiting line through.
            if self.wants_line() && self.input.has_line() {
                continue;
            }
            // `fill` stopped at a full buffer, not at an empty socket, and lines (or the
            // dropped rest of an over-long one) have since made room: read on, since the
            // socket's readiness edge is spent and no new one comes for bytes already
            // there. Without this, a client sending one endless line stalled for ever.
            if self.input_full && self.input.len() < MAX_BUFFERED_INPUT {
                continue;
            }
            return Drive::Wait;
        }
    }

    /// Registers the socket for both directions under `token`.
    ///
    /// The first turn then reads nothing: registering (`EPOLL_CTL_ADD`) reports bytes
    /// already queued as an event of its own, so a read now could only find the socket
    /// empty (a client waits for the greeting before it sends).
    pub fn register(&mut self, registry: &Registry, token: Token) -> io::Result<()> {
        registry.register(&mut self.stream, token, interest())?;
        self.readable = false;
        Ok(())
    }

    /// Deregisters the socket; a failure means it was never registered.
    pub fn deregister(&mut self, registry: &Registry) {
        let _ = registry.deregister(&mut self.stream);
    }

    /// The client's address as accepted, IPv4-mapped addresses shown as IPv4: the key of
    /// the per-address limits.
    pub fn peer_ip(&self) -> IpAddr {
        self.peer.ip().to_canonical()
    }

    /// The client's address as the session sees it: the only one that may connect to a
    /// passive listener.
    pub fn client_ip(&self) -> IpAddr {
        self.session.peer().ip()
    }

    /// The address the client reached us on: where passive listeners bind.
    pub fn local_ip(&self) -> io::Result<IpAddr> {
        self.stream.local_addr().map(|a| a.ip())
    }

    /// The logged-in user, if any.
    pub fn username(&self) -> Option<&str> {
        self.session.username()
    }

    /// Slab key of the session's data channel, if it has one.
    pub fn data(&self) -> Option<usize> {
        self.data
    }

    /// Records the session's data channel (`None` once it is gone).
    pub fn set_data(&mut self, key: Option<usize>) {
        self.data = key;
    }

    /// Forgets the session's data channel and returns its key.
    pub fn take_data(&mut self) -> Option<usize> {
        self.data.take()
    }

    /// The TLS settings for a data connection of this session under `config`, sending or
    /// receiving; `None` before the control connection runs TLS.
    pub fn data_tls(&self, config: &TlsConfig, sending: bool) -> Option<DataTls> {
        self.keys.data(config, Some(sending), self.client_ip())
    }

    /// The TLS settings a new data connection starts with at once, under PROT P: the
    /// direction is told later, by the transfer (see `DataChannel::set_early_tls`).
    pub fn early_data_tls(&self, config: &TlsConfig) -> Option<DataTls> {
        if !self.session.data_protected() {
            return None;
        }
        self.keys.data(config, None, self.client_ip())
    }

    // The server's answers to the session's actions, passed on.

    /// What the session's data channel reported.
    pub fn handle_data_events(&mut self, now: Instant, events: Vec<DataEvent>) {
        for ev in events {
            match ev {
                DataEvent::Connected => self.session.handle_data_connected(now),
                DataEvent::Failed(f) => self.session.handle_data_failed(now, f),
                DataEvent::Done(bytes, result) => {
                    self.session.handle_transfer_done(now, bytes, result)
                }
            }
        }
    }

    /// The data channel could not be made ([`Action::Connect`]).
    pub fn handle_data_failed(&mut self, now: Instant, why: DataFailure) {
        self.session.handle_data_failed(now, why);
    }

    /// The data channel was dropped on request ([`Action::CloseData`]).
    pub fn handle_data_closed(&mut self, now: Instant, bytes: Option<u64>) {
        self.session.handle_data_closed(now, bytes);
    }

    /// The passive listener is up, or not ([`Action::Listen`]).
    pub fn handle_passive_ready(
        &mut self,
        now: Instant,
        result: io::Result<SocketAddr>,
        extended: bool,
    ) {
        self.session.handle_passive_ready(now, result, extended);
    }

    /// A transfer could not start ([`Action::Transfer`]).
    pub fn handle_transfer_failed(&mut self, now: Instant, why: TransferError) {
        self.session.handle_transfer_done(now, 0, Err(why));
    }

    /// The connection is being removed; `bytes` of a transfer under way were moved.
    pub fn handle_closed(&mut self, now: Instant, bytes: Option<u64>) {
        self.session.handle_closed(now, bytes);
    }
}

impl Drop for ControlChannel {
    fn drop(&mut self) {
        // A handshake still under way when the connection goes (timed out, or the peer
        // left) failed.
        if self.handshake_counted {
            self.stats.handshake(Conn::Control, false);
        }
        self.stats.session_closed();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_lines_and_drops_long_ones() {
        let mut b = LineBuffer::default();
        b.extend(b"NOOP\r\nUSER a\nPA");
        assert_eq!(b.next_line(), Some(Line::Complete(b"NOOP".to_vec())));
        assert_eq!(b.next_line(), Some(Line::Complete(b"USER a".to_vec())));
        assert_eq!(b.next_line(), None);
        b.extend(b"SS x\r\n");
        assert_eq!(b.next_line(), Some(Line::Complete(b"PASS x".to_vec())));

        b.extend(&vec![b'A'; 5000]);
        assert_eq!(b.next_line(), Some(Line::TooLong));
        assert_eq!(b.next_line(), None);
        // Mid-way through dropping the rest, no line is due until the end comes.
        b.extend(b"AAAA");
        assert!(!b.has_line());
        assert_eq!(b.next_line(), None);
        b.extend(b"AAAA\r\nNOOP\r\n");
        assert!(b.has_line());
        assert_eq!(b.next_line(), Some(Line::Complete(b"NOOP".to_vec())));

        // A long line that arrives whole is reported once too.
        let mut long = vec![b'B'; 3000];
        long.extend_from_slice(b"\r\nSYST\r\n");
        b.extend(&long);
        assert_eq!(b.next_line(), Some(Line::TooLong));
        assert_eq!(b.next_line(), Some(Line::Complete(b"SYST".to_vec())));
    }

    #[test]
    fn abor_and_quit_are_seen_ahead() {
        let mut b = LineBuffer::default();
        b.extend(b"AB");
        assert!(!b.urgent_next());
        b.extend(b"OR\r\nNOOP\r\n");
        assert!(b.urgent_next());
        assert_eq!(b.next_line(), Some(Line::Complete(b"ABOR".to_vec())));
        assert!(!b.urgent_next());
        b.next_line();
        for line in [&b"quit\n"[..], b"\xff\xf4\xff\xf2ABOR\r\n"] {
            b.extend(line);
            assert!(b.urgent_next(), "{line:?}");
            b.next_line();
        }
        b.extend(b"QUIT now\r\n");
        assert!(!b.urgent_next());
    }

    #[test]
    fn limit_is_inclusive_of_crlf() {
        let mut b = LineBuffer::default();
        let mut ok = vec![b'N'; command::MAX_LINE - 2];
        ok.extend_from_slice(b"\r\n");
        b.extend(&ok);
        assert!(matches!(b.next_line(), Some(Line::Complete(_))));
        let mut long = vec![b'N'; command::MAX_LINE - 1];
        long.extend_from_slice(b"\r\n");
        b.extend(&long);
        assert_eq!(b.next_line(), Some(Line::TooLong));
    }
}
