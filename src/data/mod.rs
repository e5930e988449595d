//! Data channels (pyftpdlib's `DTPHandler`, `PassiveDTP` and `ActiveDTP`): one slab entry
//! per data connection, from listener or pending connect to the socket that carries a
//! transfer.
//!
//! A [`DataChannel`] keeps one token for its whole life. It starts [`listening`](DataChannel::listen)
//! (PASV/EPSV) or [`connecting`](DataChannel::connect) (PORT/EPRT), becomes connected, runs at
//! most one [`Transfer`] and is then dropped, as stream mode wants (RFC 959 section 3.4.1: the
//! end of the file is the close of the connection).
//!
//! Under PROT P the connected socket becomes TLS (the server in the server role) as soon as
//! it is connected, before the transfer command (see [`DataChannel::set_early_tls`]); the
//! handshake is finished inside the transfer's steps, under the handshake timeout rather
//! than the stall timeout. The transfer tells the TLS stream its direction, which decides
//! whether the connection issues a session ticket.
//!
//! The channel reports what happened as [`DataEvent`]s; the server hands them to the owning
//! session. It does not read the clock: `now` comes in with every call.

mod passive;
mod splice;
mod transfer;
#[cfg(test)]
mod upload_tests;

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Interest, Registry, Token};

use crate::config::DtpConfig;
use crate::control::session::{DataFailure, Direction, Transfer, TransferError};
use crate::stats::{Conn, ServerStats, TransferGauge};
use crate::throttle::{Buckets, Limits, Share, Throttle, Way};
use crate::tls::{self, DataTls, Stream};

/// How often a transfer whose data connection waits for the session reuse verdict (the
/// login of the control connection whose TLS session it resumed) looks again.
const OWNER_RECHECK: Duration = Duration::from_millis(20);

pub(crate) use transfer::{Piece, PieceDone, Running};

/// What a data channel tells its session.
#[derive(Debug)]
pub(crate) enum DataEvent {
    /// The connection is up.
    Connected,
    /// It could not be made.
    Failed(DataFailure),
    /// The transfer ended; the channel is finished.
    Done(u64, Result<(), TransferError>),
}

#[derive(Debug)]
enum Sock {
    Listening(TcpListener),
    Connecting(TcpStream),
    Connected(Stream),
    /// After the transfer ended or the channel failed; waiting to be removed.
    Finished,
}

/// One data connection.
#[doc(alias = "DTPHandler")]
#[derive(Debug)]
pub(crate) struct DataChannel {
    /// Slab key of the control channel that owns this one.
    pub owner: usize,
    sock: Sock,
    /// Only this address may connect to a passive listener.
    client_ip: IpAddr,
    transfer: Option<Running>,
    /// Accept/connect deadline, or the stall deadline while a transfer runs.
    deadline: Option<Instant>,
    stall: Option<Duration>,
    /// The per-transfer limits' buckets, made at attach. Boxed: most channels have none,
    /// and the slab entry stays small.
    buckets: Option<Box<Buckets>>,
    /// Set while the channel waits for its bandwidth allowance: it has dropped the interest
    /// its transfer uses and the server wakes it with the timer at this instant.
    paused_until: Option<Instant>,
    /// The direction and limited user under which the server counts this channel among
    /// the transfers sharing its user and server buckets ([`BandwidthPool`](crate::throttle::BandwidthPool)). Boxed, as
    /// only transfers under a shared limit have one.
    pub share: Option<Box<Share>>,
    /// PROT P: TLS to start once connected with a transfer attached.
    tls: Option<DataTls>,
    /// The TLS handshake is running (its deadline is in `deadline` once a transfer waits).
    handshaking: bool,
    /// The handshake timeout of the TLS settings in use.
    handshake_timeout: Option<Duration>,
    /// A connection whose TLS failed, out of the poll but still open: it is closed only
    /// after the session has answered 522, so the client finds the reason on the control
    /// connection before it sees its data connection go.
    held: Option<Stream>,
    /// When to look again at a session reuse verdict that waits for a login (see
    /// `tls::Stream::awaiting_owner`).
    recheck: Option<Instant>,
    /// The server's counters: bytes, files, TLS handshakes, the running transfer.
    stats: Arc<ServerStats>,
    /// The attached transfer has waited for bandwidth once (counted in
    /// `transfers_throttled`).
    throttled: bool,
    /// Passive, behind proxies that relay data connections
    /// ([`ProxyProtocol::passive`](crate::proxy::ProxyProtocol::passive)): the proxies,
    /// whose connections must open with a PROXY header naming the client.
    #[cfg(feature = "proxy-protocol")]
    proxy: Option<crate::proxy::ProxyProtocol>,
    /// A proxy's connection to the passive port whose header is being read; registered
    /// under the channel's token beside the listener. One at a time.
    #[cfg(feature = "proxy-protocol")]
    header: Option<crate::proxy::HeaderWait>,
}

/// Turns Nagle's algorithm off on a data connection, as on control connections. Bulk
/// transfers write large chunks and gain nothing from it; small writes (a TLS handshake's
/// records, a short listing) should not wait for the client's delayed ACK.
fn no_delay(stream: &TcpStream) {
    if let Err(e) = stream.set_nodelay(true) {
        crate::logger::logerror(&format!("TCP_NODELAY on a data connection: {e}"));
    }
}

/// Sequence that spreads passive port choices over the range.
fn next_port_offset(len: u32) -> u32 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    (NEXT.fetch_add(1, Ordering::Relaxed).wrapping_add(seed)) % len.max(1)
}

impl DataChannel {
    /// Binds a passive listener on `ip`, on a port from `ports` if given (busy ones skipped).
    pub fn listen(
        owner: usize,
        ip: IpAddr,
        client_ip: IpAddr,
        ports: Option<&RangeInclusive<u16>>,
        config: &DtpConfig,
        now: Instant,
        stats: Arc<ServerStats>,
    ) -> io::Result<(DataChannel, SocketAddr)> {
        let listener = match ports {
            None => TcpListener::bind(SocketAddr::new(ip, 0))?,
            Some(range) => {
                let (lo, hi) = (u32::from(*range.start()), u32::from(*range.end()));
                if hi < lo {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        "empty passive port range",
                    ));
                }
                let len = hi - lo + 1;
                let start = next_port_offset(len);
                let mut found = None;
                for i in 0..len {
                    let port = (lo + (start + i) % len) as u16;
                    match TcpListener::bind(SocketAddr::new(ip, port)) {
                        Ok(l) => {
                            found = Some(l);
                            break;
                        }
                        Err(e) if e.kind() == io::ErrorKind::AddrInUse => continue,
                        Err(e) => return Err(e),
                    }
                }
                found.ok_or_else(|| {
                    io::Error::new(io::ErrorKind::AddrInUse, "every passive port is in use")
                })?
            }
        };
        let addr = listener.local_addr()?;
        Ok((
            DataChannel {
                owner,
                sock: Sock::Listening(listener),
                client_ip,
                transfer: None,
                deadline: Some(crate::ioloop::deadline(now, config.accept_timeout)),
                stall: config.timeout,
                buckets: None,
                paused_until: None,
                share: None,
                tls: None,
                handshaking: false,
                handshake_timeout: None,
                held: None,
                recheck: None,
                stats,
                throttled: false,
                #[cfg(feature = "proxy-protocol")]
                proxy: None,
                #[cfg(feature = "proxy-protocol")]
                header: None,
            },
            addr,
        ))
    }

    /// Starts a non-blocking connection to the client.
    pub fn connect(
        owner: usize,
        addr: SocketAddr,
        config: &DtpConfig,
        now: Instant,
        stats: Arc<ServerStats>,
    ) -> io::Result<DataChannel> {
        let stream = TcpStream::connect(addr)?;
        Ok(DataChannel {
            owner,
            sock: Sock::Connecting(stream),
            client_ip: addr.ip(),
            transfer: None,
            deadline: Some(crate::ioloop::deadline(now, config.connect_timeout)),
            stall: config.timeout,
            buckets: None,
            paused_until: None,
            share: None,
            tls: None,
            handshaking: false,
            handshake_timeout: None,
            held: None,
            recheck: None,
            stats,
            throttled: false,
            #[cfg(feature = "proxy-protocol")]
            proxy: None,
            #[cfg(feature = "proxy-protocol")]
            header: None,
        })
    }

    /// Behind proxies that relay the passive data connections: connections to the listener
    /// from `proxy`'s trusted sources must open with a header naming the client (see
    /// [`ProxyProtocol::passive`](crate::proxy::ProxyProtocol::passive)).
    #[cfg(feature = "proxy-protocol")]
    pub fn set_proxy(&mut self, proxy: Option<crate::proxy::ProxyProtocol>) {
        self.proxy = proxy.filter(|p| p.passive);
    }

    /// Registers the current socket under `token`.
    pub fn register(&mut self, registry: &Registry, token: Token) -> io::Result<()> {
        match &mut self.sock {
            Sock::Listening(l) => registry.register(l, token, Interest::READABLE),
            Sock::Connecting(s) => registry.register(s, token, Interest::WRITABLE),
            Sock::Connected(s) => {
                registry.register(s, token, Interest::READABLE | Interest::WRITABLE)
            }
            Sock::Finished => Ok(()),
        }
    }

    /// Deregisters and drops the socket.
    pub fn deregister(&mut self, registry: &Registry) {
        #[cfg(feature = "proxy-protocol")]
        if let Some(mut h) = self.header.take() {
            let _ = registry.deregister(h.stream_mut());
        }
        // Errors here mean the socket was never registered; dropping it closes it anyway.
        let _ = match &mut self.sock {
            Sock::Listening(l) => registry.deregister(l),
            Sock::Connecting(s) => registry.deregister(s),
            Sock::Connected(s) => registry.deregister(s),
            Sock::Finished => Ok(()),
        };
        self.sock = Sock::Finished;
    }

    /// Bytes moved by the running transfer, if one is attached.
    pub fn bytes(&self) -> Option<u64> {
        self.transfer.as_ref().map(|t| t.bytes())
    }

    /// Takes the connection out of the poll and keeps it open until
    /// [`take_held`](Self::take_held): see `held`.
    fn hold(&mut self, registry: &Registry) {
        match std::mem::replace(&mut self.sock, Sock::Finished) {
            Sock::Connected(mut s) => {
                // A failed deregister means the socket was never registered.
                let _ = registry.deregister(&mut s);
                self.held = Some(s);
            }
            other => {
                self.sock = other;
                self.deregister(registry);
            }
        }
    }

    /// The connection kept open after a TLS failure, to be dropped once the session's reply
    /// is written.
    pub fn take_held(&mut self) -> Option<Stream> {
        self.held.take()
    }

    /// Whether the channel is done and should be removed.
    pub fn is_finished(&self) -> bool {
        matches!(self.sock, Sock::Finished)
    }

    /// Hands the channel the transfer to run, under the per-transfer `limits`, with the
    /// TLS settings under PROT P.
    pub fn attach(
        &mut self,
        transfer: Transfer,
        in_buf: usize,
        out_buf: usize,
        limits: Limits,
        now: Instant,
        tls: Option<DataTls>,
    ) {
        // Settings given at PASV/PORT time (PROT P already on) win: the handshake may have
        // started at accept, and learns the direction now (a download issues a ticket, an
        // upload none). Otherwise the transfer's own, which know it.
        let sending = matches!(transfer.direction, Direction::Send(_));
        match (&mut self.tls, &mut self.sock) {
            (Some(early), _) => early.set_sending(sending),
            (None, Sock::Connected(s)) if s.is_tls() => s.set_sending(sending),
            (None, _) => self.tls = tls,
        }
        self.transfer = Some(Running::new(
            transfer,
            in_buf,
            out_buf,
            TransferGauge::new(&self.stats),
        ));
        self.throttled = false;
        // Empty buckets: the transfer earns its first bytes, so it never starts ahead of
        // its limit.
        self.buckets = (!limits.is_none()).then(|| Box::new(Buckets::new_empty(limits, now)));
        if matches!(self.sock, Sock::Connected(_)) {
            self.deadline = match self.handshake_timeout {
                // A handshake begun at accept is now timed from the transfer command.
                Some(t) if self.handshaking => Some(crate::ioloop::deadline(now, t)),
                _ => self.stall.map(|d| crate::ioloop::deadline(now, d)),
            };
        }
    }

    /// TLS settings to start with as soon as the connection is up, before any transfer
    /// command: under PROT P, clients such as curl send their ClientHello right after
    /// connecting and wait for the handshake before sending RETR. The direction is not
    /// known yet: the stream holds the client's TLS 1.3 Finished, on which the tickets are
    /// made, until [`attach`](Self::attach) tells it, so that a download issues a ticket and
    /// an upload none (no TLS 1.3 ticket to be reset away).
    pub fn set_early_tls(&mut self, tls: Option<DataTls>) {
        self.tls = tls;
    }

    /// The direction of the attached transfer, for the bandwidth limits.
    pub fn way(&self) -> Option<Way> {
        self.transfer.as_ref().map(|t| t.way())
    }

    /// Bytes the attached transfer still has to send, when known (file downloads through
    /// sendfile and listings).
    pub fn remaining(&self) -> Option<u64> {
        self.transfer.as_ref().and_then(|t| t.remaining())
    }

    /// The per-transfer bucket for `way`, if that direction is limited.
    pub fn throttle_mut(&mut self, way: Way) -> Option<&mut Throttle> {
        self.buckets.as_mut().and_then(|b| b.get_mut(way))
    }

    /// Whether the data connection is up.
    pub fn is_connected(&self) -> bool {
        matches!(self.sock, Sock::Connected(_))
    }

    /// When a channel waiting for bandwidth is to be woken.
    pub fn paused_until(&self) -> Option<Instant> {
        self.paused_until
    }

    /// Stops the transfer until `until`: the socket keeps only the interest the transfer
    /// does not use, so readiness of the throttled direction wakes nothing (mio needs one
    /// interest; the other one fires at most once, or on a peer's close). Only a connected
    /// channel with a transfer pauses.
    pub fn pause(&mut self, until: Instant, registry: &Registry, token: Token) {
        let (Sock::Connected(s), Some(t)) = (&mut self.sock, &self.transfer) else {
            return;
        };
        let keep = match t.way() {
            Way::Read => Interest::WRITABLE,
            Way::Write => Interest::READABLE,
        };
        if !std::mem::replace(&mut self.throttled, true) {
            self.stats.throttled();
        }
        if self.paused_until.is_none() {
            // Failing to narrow the interest costs spurious wake-ups, not correctness.
            let _ = registry.reregister(s, token, keep);
        }
        self.paused_until = Some(until);
    }

    /// Ends a pause: both interests back, and the stall timeout counts from now (time spent
    /// waiting for bandwidth is not a stall).
    pub fn resume(&mut self, now: Instant, registry: &Registry, token: Token) {
        if self.paused_until.take().is_none() {
            return;
        }
        if let Sock::Connected(s) = &mut self.sock {
            // Re-arming also reports current readiness; a failure shows up on the next
            // read or write.
            let _ = registry.reregister(s, token, Interest::READABLE | Interest::WRITABLE);
        }
        if self.transfer.is_some() {
            self.deadline = self.stall.map(|d| crate::ioloop::deadline(now, d));
        }
    }

    /// The next deadline of this channel.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.paused_until.is_some() && self.transfer.is_some() {
            return self.paused_until;
        }
        match self.sock {
            Sock::Connected(_) if self.transfer.is_none() => None,
            Sock::Finished => None,
            #[cfg(feature = "proxy-protocol")]
            Sock::Listening(_) => tls::earliest(
                self.deadline,
                self.header
                    .as_ref()
                    .map(crate::proxy::HeaderWait::poll_timeout),
            ),
            _ => tls::earliest(self.deadline, self.recheck),
        }
    }

    /// Whether the time to look again at a waiting session reuse verdict has come; the
    /// server then drives the channel.
    pub fn take_recheck(&mut self, now: Instant) -> bool {
        if self.recheck.is_some_and(|t| t <= now) {
            self.recheck = None;
            return true;
        }
        false
    }

    /// Deadline passed: the channel fails with the matching reason.
    pub fn handle_timeout(
        &mut self,
        now: Instant,
        registry: &Registry,
        events: &mut Vec<DataEvent>,
    ) {
        #[cfg(feature = "proxy-protocol")]
        if self
            .header
            .as_ref()
            .is_some_and(|h| h.poll_timeout() <= now)
        {
            if let Some(mut h) = self.header.take() {
                let _ = registry.deregister(h.stream_mut());
                log::warn!(
                    target: crate::logger::LOG,
                    "{} passive connection closed: no complete PROXY header in time",
                    h.peer()
                );
            }
        }
        if self.deadline.is_none_or(|d| d > now) {
            return;
        }
        let event = match (&self.sock, &self.transfer) {
            (Sock::Listening(_), _) => DataEvent::Failed(DataFailure::AcceptTimeout),
            (Sock::Connecting(_), _) => DataEvent::Failed(DataFailure::ConnectTimeout),
            (Sock::Connected(s), Some(t)) if self.handshaking => {
                // The owner of the resumed session never logged in: not a resumption of
                // this user's session after all.
                let why = if s.awaiting_owner() {
                    tls::no_session_reuse()
                } else {
                    "TLS handshake timed out".to_string()
                };
                DataEvent::Done(t.bytes(), Err(TransferError::Tls(why)))
            }
            // The transfer waits for its piece from the pool (a file's read or write, its
            // commit, a listing's lines): the storage is slow, not the client. The stall
            // timeout starts again when the piece is back (`put_piece`).
            (Sock::Connected(_), Some(t)) if t.piece_id().is_some() => {
                self.deadline = None;
                return;
            }
            (Sock::Connected(_), Some(t)) => {
                DataEvent::Done(t.bytes(), Err(TransferError::Stalled))
            }
            _ => return,
        };
        if matches!(event, DataEvent::Done(_, Err(TransferError::Tls(_)))) {
            self.hold(registry);
        } else {
            self.deregister(registry);
        }
        self.transfer = None;
        self.recheck = None;
        events.push(event);
    }

    /// Work for the worker pool and a fresh id from `id`, when some is due (after a drive):
    /// a listing's next piece, or a piece of a file the reactor thread does not touch (see
    /// the transfer's piece module); hand it back with [`put_piece`](Self::put_piece).
    pub fn take_piece(&mut self, id: impl FnOnce() -> u64) -> Option<(u64, transfer::Piece)> {
        self.transfer.as_mut()?.take_piece(id)
    }

    /// Whether the channel's upload is complete on the client's side and its file is being
    /// completed (see [`Running::is_committing`]).
    pub fn is_committing(&self) -> bool {
        self.transfer.as_ref().is_some_and(Running::is_committing)
    }

    /// The id of the piece away on the pool for this channel, if one is.
    pub fn piece_id(&self) -> Option<u64> {
        self.transfer.as_ref().and_then(Running::piece_id)
    }

    /// Piece `id` is back at `now` (see [`take_piece`](Self::take_piece)); false, and
    /// dropped, when the channel no longer waits for it. A stall timeout that ran out while
    /// the piece was away (see [`handle_timeout`](Self::handle_timeout)) starts again.
    pub fn put_piece(&mut self, id: u64, done: transfer::PieceDone, now: Instant) -> bool {
        let back = self
            .transfer
            .as_mut()
            .is_some_and(|r| r.put_piece(id, done));
        if back
            && self.deadline.is_none()
            && !self.handshaking
            && matches!(self.sock, Sock::Connected(_))
        {
            self.deadline = self.stall.map(|d| crate::ioloop::deadline(now, d));
        }
        back
    }

    /// Does whatever the socket allows: accept, finish connecting, move bytes. Stops at
    /// `WouldBlock` or after `budget` bytes; returns `true` when it stopped on the budget
    /// and should be driven again soon without waiting for an event. An upload read through
    /// a buffer reads into `upload_buf`, the reactor's (see [`Running::step`]).
    pub fn drive(
        &mut self,
        now: Instant,
        registry: &Registry,
        token: Token,
        budget: usize,
        upload_buf: &mut Vec<u8>,
        events: &mut Vec<DataEvent>,
    ) -> bool {
        if matches!(self.sock, Sock::Listening(_)) {
            let Some(stream) = self.accept_client(now, registry, token, events) else {
                return false;
            };
            no_delay(&stream);
            // One connection per PASV: the listener closes once the client is in.
            self.deregister(registry);
            self.sock = Sock::Connected(Stream::Plain(stream));
            if let Err(e) = self.register(registry, token) {
                self.sock = Sock::Finished;
                events.push(DataEvent::Failed(DataFailure::ConnectFailed(e)));
                return false;
            }
            self.deadline = self
                .transfer
                .as_ref()
                .and(self.stall.map(|d| crate::ioloop::deadline(now, d)));
            events.push(DataEvent::Connected);
        }
        if let Sock::Connecting(s) = &self.sock {
            match s.take_error() {
                Ok(Some(e)) | Err(e) => {
                    self.deregister(registry);
                    events.push(DataEvent::Failed(DataFailure::ConnectFailed(e)));
                    return false;
                }
                Ok(None) => {}
            }
            match s.peer_addr() {
                Ok(_) => {
                    let Sock::Connecting(mut s) = std::mem::replace(&mut self.sock, Sock::Finished)
                    else {
                        unreachable!("matched Connecting above")
                    };
                    if let Err(e) =
                        registry.reregister(&mut s, token, Interest::READABLE | Interest::WRITABLE)
                    {
                        events.push(DataEvent::Failed(DataFailure::ConnectFailed(e)));
                        return false;
                    }
                    no_delay(&s);
                    self.sock = Sock::Connected(Stream::Plain(s));
                    self.deadline = self
                        .transfer
                        .as_ref()
                        .and(self.stall.map(|d| crate::ioloop::deadline(now, d)));
                    events.push(DataEvent::Connected);
                }
                Err(e) if e.kind() == io::ErrorKind::NotConnected => return false,
                Err(e) => {
                    self.deregister(registry);
                    events.push(DataEvent::Failed(DataFailure::ConnectFailed(e)));
                    return false;
                }
            }
        }
        if !matches!(self.sock, Sock::Connected(_)) {
            return false;
        }
        if let Some(tls) = self.tls.take() {
            let timeout = tls.timeout;
            let Sock::Connected(plain) = std::mem::replace(&mut self.sock, Sock::Finished) else {
                unreachable!("checked Connected above")
            };
            match plain.start_data_tls(tls) {
                Ok(s) => {
                    self.sock = Sock::Connected(s);
                    self.handshaking = true;
                    self.handshake_timeout = Some(timeout);
                    // Timed only once a transfer waits on it; before that the session's
                    // idle timeout covers a client that never goes on.
                    if self.transfer.is_some() {
                        self.deadline = Some(crate::ioloop::deadline(now, timeout));
                    }
                }
                Err((s, e)) => {
                    self.stats.handshake(Conn::Data, false);
                    self.sock = Sock::Connected(s);
                    let bytes = self.bytes().unwrap_or(0);
                    self.transfer = None;
                    self.hold(registry);
                    events.push(DataEvent::Done(bytes, Err(TransferError::Tls(e))));
                    return false;
                }
            }
        }
        let Sock::Connected(stream) = &mut self.sock else {
            return false;
        };
        let Some(running) = self.transfer.as_mut() else {
            // No transfer yet: move the handshake along. A failure stays latched in the
            // stream and is reported when the transfer command arrives.
            if self.handshaking && matches!(stream.handshake(), Ok(true)) {
                self.handshaking = false;
                self.stats.handshake(Conn::Data, true);
            }
            return false;
        };
        let before = running.bytes();
        let step = running.step(stream, budget, upload_buf);
        let sending = running.way() == Way::Write;
        self.stats.moved(sending, running.bytes() - before);
        if self.handshaking && !stream.is_handshaking() {
            self.handshaking = false;
            self.stats.handshake(Conn::Data, !stream.tls_failed());
            self.deadline = self.stall.map(|d| crate::ioloop::deadline(now, d));
        }
        self.recheck = stream.awaiting_owner().then(|| now + OWNER_RECHECK);
        if running.bytes() != before && !self.handshaking {
            self.deadline = self.stall.map(|d| crate::ioloop::deadline(now, d));
        }
        match step {
            transfer::Step::Blocked => false,
            transfer::Step::Budget => true,
            // The owner sees it in `take_piece` and drives the channel again once the
            // piece is back.
            transfer::Step::NeedChunk => false,
            transfer::Step::Done(result) => {
                let result = result.map_err(|e| match e {
                    TransferError::Connection(e) => match tls::tls_failure(&e) {
                        Some(msg) => TransferError::Tls(msg),
                        None => TransferError::Connection(e),
                    },
                    other => other,
                });
                let bytes = running.bytes();
                if result.is_ok() && running.is_file() {
                    self.stats.file_done(sending);
                }
                self.transfer = None;
                if matches!(result, Err(TransferError::Tls(_))) {
                    self.hold(registry);
                } else {
                    self.deregister(registry);
                }
                events.push(DataEvent::Done(bytes, result));
                false
            }
        }
    }
}

impl Drop for DataChannel {
    fn drop(&mut self) {
        // A handshake still under way when the connection goes (timed out, failed at the
        // first transfer step, or the peer left) failed.
        if self.handshaking {
            self.stats.handshake(Conn::Data, false);
        }
    }
}
