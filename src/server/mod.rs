//! The server (pyftpdlib's `FTPServer` with its IOLoop): listeners, the slab of channels,
//! the timer heap, connection limits, and the API to run it alone or inside another mio loop.
//!
//! # Shape
//!
//! Every socket the server owns is an entry in one [`Slab`]: listeners, control channels and
//! data channels. An entry's key, offset into the token range the host chose, is its mio
//! token. Each entry has at most one timer on the heap, set to the earliest deadline the
//! entry reports (idle timeout, failed-login delay, accept, connect or stall timeout).
//! Channels that stopped on a byte budget rather than on `WouldBlock` wait in a ready queue
//! and are driven again on the next iteration, so one fast transfer cannot starve the rest.
//!
//! The server routes; it does not decide. Policy lives beside its data: the control channel
//! runs its session, the throttle module's `BandwidthPool` shares bandwidth, the flood table
//! keeps the bans, and callbacks sit in an [`ioloop::call`](crate::ioloop::call) queue.
//!
//! # Layout
//!
//! One `impl FtpServer` block per concern: this file holds the type, its public API and the
//! slab and timer plumbing; `accept.rs` the listeners and admission, `action.rs` what sessions
//! ask for, `transfer.rs` driving data channels under the bandwidth limits, and `stop.rs`
//! [`StopHandle`] and closing.
//!
//! # Bandwidth limits
//!
//! Before driving a data channel the server takes the smallest allowance of the token
//! buckets that apply to it ([`throttle`](crate::throttle)): the transfer's own
//! (`read_limit`/`write_limit`), its user's and the whole server's (the last two, and the
//! fair shares of them, are the throttle module's `BandwidthPool`). That is the channel's
//! budget for the turn. A channel whose budget is spent is paused: it drops the interest
//! its transfer uses and its one timer is set to when the buckets will have refilled, so a
//! throttled transfer costs one timer wake-up per burst and nothing in between.
//!
//! # Flood limits
//!
//! Sessions report failed logins
//! ([`Action::LoginFailed`](crate::control::session::Action::LoginFailed)); the server
//! records them in the flood table (`src/flood.rs`: failures per IP address with a size
//! cap, and bans), answers a banned address's connections with 421 until the ban ends, and
//! keeps one timer on the heap that sweeps expired entries.
//!
//! # Stopping
//!
//! [`StopHandle`] stops the server from any thread: it sets the stop state and wakes the
//! reactor through an [`ioloop::waker`](crate::ioloop::waker) registered in the same poll.

mod accept;
mod action;
mod group;
mod listen;
mod shared;
mod stop;
mod transfer;
mod work;

use std::collections::{HashSet, VecDeque};

use std::io;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::event::Event;
use mio::net::TcpListener;
use mio::{Interest, Registry, Token};
use slab::Slab;

use crate::config::Config;
use crate::control::ControlChannel;
use crate::data::DataChannel;
pub use crate::ioloop::call::CallLater;
use crate::ioloop::call::Calls;
use crate::ioloop::timer::{Due, TimerHeap, TimerId};
use crate::ioloop::token::TokenRange;
use crate::ioloop::waker::{self, WakeReceiver};
use crate::ioloop::IoLoop;
use crate::pool::WorkerPool;
#[cfg(feature = "proxy-protocol")]
use crate::proxy::HeaderWait;
use crate::stats::ServerStats;
use crate::throttle::{BandwidthPool, Limits};

pub use group::{cores, GroupHandle, ServerGroup};
use shared::Shared;
pub use stop::StopHandle;
use stop::{CLOSE, CLOSE_ALL};

#[derive(Debug)]
enum TimerTarget {
    Channel(usize),
    /// Sweep expired entries of the flood table.
    FloodSweep,
}

#[derive(Debug)]
struct ListenerEntry {
    sock: TcpListener,
    /// Set after EMFILE and friends: accept again at this time.
    retry_at: Option<Instant>,
    /// Accepting has failed for want of resources and not yet succeeded since: the
    /// failure is logged once, and the recovery once.
    failing: bool,
    /// What every connection accepted here has from the listener.
    inherited: accept::Inherited,
}

#[derive(Debug)]
enum Channel {
    Listener(ListenerEntry),
    Control(Box<ControlChannel>),
    Data(Box<DataChannel>),
    /// A connection whose PROXY protocol header is being read: it becomes a control
    /// channel once the header names its client.
    #[cfg(feature = "proxy-protocol")]
    Header(Box<HeaderWait>),
}

#[derive(Debug)]
struct Entry {
    chan: Channel,
    timer: Option<TimerId>,
}

/// An FTP server: listeners and sessions on one reactor thread.
///
/// # Examples
/// Serve a directory read-only to anonymous users until stopped:
/// ```no_run
/// use std::sync::Arc;
/// use ftpdlib::{Config, DummyAuthorizer, FtpServer};
/// let mut auth = DummyAuthorizer::new();
/// auth.add_anonymous("/srv/ftp", "elr").unwrap();
/// let mut server = FtpServer::bind("127.0.0.1:2121", Config::new(Arc::new(auth))).unwrap();
/// server.max_cons = 256;
/// server.max_cons_per_ip = 5;
/// server.serve_forever(None, None).unwrap();
/// ```
#[doc(alias = "FTPServer")]
pub struct FtpServer {
    config: Arc<Config>,
    /// Most sessions at once, 0 for no limit (default 512). Counts control connections only:
    /// a session's data connection does not take a slot.
    pub max_cons: usize,
    /// Most sessions from one IP address, 0 for no limit (default 0).
    pub max_cons_per_ip: usize,
    local_addrs: Vec<SocketAddr>,
    /// Listeners not yet registered, and whether their connections inherit the control
    /// connection's socket options.
    unregistered: Vec<(TcpListener, bool)>,
    channels: Slab<Entry>,
    timers: TimerHeap<TimerTarget>,
    /// Callbacks of [`call_later`](Self::call_later) and [`call_every`](Self::call_every).
    calls: Calls<FtpServer>,
    tokens: TokenRange,
    registry: Option<Registry>,
    /// Sessions of this reactor (the group's are counted in `shared`).
    sessions: usize,
    /// Connections of this reactor whose PROXY protocol header is still being read; they
    /// count towards `max_cons` with the sessions.
    #[cfg(feature = "proxy-protocol")]
    headers: usize,
    ready: VecDeque<usize>,
    queued: HashSet<usize>,
    wake_rx: WakeReceiver,
    stop: StopHandle,
    ioloop: Option<IoLoop>,
    /// The worker pool, started on first use.
    pool: Option<WorkerPool<work::Work>>,
    /// The pool that moves the contents of files that are not inline (an object store's),
    /// started on first use: their pieces wait on the network, and on a pool of their
    /// own they never hold up a login or a command's storage call.
    piece_pool: Option<WorkerPool<work::Work>>,
    /// The connection counts, flood table and bandwidth buckets, shared with the other
    /// reactors of a [`ServerGroup`] (a lone server's own).
    shared: Arc<Shared>,
    /// Buckets for transfers no user or server limit applies to: their own only, so their
    /// turns take no shared lock.
    unshared: BandwidthPool,
    /// The buffer every upload read through a buffer (TLS, TYPE A, storage without a
    /// descriptor) reads into on this reactor: one turn uses it at a time, and nothing in it
    /// outlives the turn. Made at the first such upload.
    upload_buf: Vec<u8>,
    flood_timer: Option<TimerId>,
    /// The counters, shared with every channel and with readers on other threads.
    stats: Arc<ServerStats>,
}

impl std::fmt::Debug for FtpServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FtpServer")
            .field("local_addrs", &self.local_addrs)
            .field("max_cons", &self.max_cons)
            .field("max_cons_per_ip", &self.max_cons_per_ip)
            .field("sessions", &self.sessions)
            .field("channels", &self.channels.len())
            .field("timers", &self.timer_count())
            .finish_non_exhaustive()
    }
}

impl FtpServer {
    /// Binds a listener on every address `addr` resolves to.
    ///
    /// # Errors
    /// Resolution or binding errors, e.g. `AddrInUse`.
    pub fn bind(addr: impl ToSocketAddrs, config: Config) -> io::Result<FtpServer> {
        let mut listeners = Vec::new();
        for a in addr.to_socket_addrs()? {
            listeners.push(listen::bind_listener(a, false)?);
        }
        if listeners.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "no address to listen on",
            ));
        }
        FtpServer::from_own_listeners(listeners, config)
    }

    /// Serves on listeners the caller bound (say with socket options of its own).
    ///
    /// # Errors
    /// When the waker's socket pair cannot be made.
    pub fn from_listeners(listeners: Vec<TcpListener>, config: Config) -> io::Result<FtpServer> {
        FtpServer::with_listeners(listeners, false, config)
    }

    /// [`from_listeners`](Self::from_listeners) on listeners made by
    /// [`listen::bind_listener`], whose connections inherit their socket options.
    fn from_own_listeners(listeners: Vec<TcpListener>, config: Config) -> io::Result<FtpServer> {
        FtpServer::with_listeners(listeners, listen::INHERITS, config)
    }

    fn with_listeners(
        listeners: Vec<TcpListener>,
        inherits: bool,
        config: Config,
    ) -> io::Result<FtpServer> {
        let local_addrs = listeners
            .iter()
            .map(|l| l.local_addr())
            .collect::<io::Result<Vec<_>>>()?;
        let (waker, wake_rx) = waker::pair()?;
        let now = Instant::now();
        let bandwidth = BandwidthPool::new(config.max_rate, config.user_limits.clone(), now);
        Ok(FtpServer {
            shared: Arc::new(Shared::new(bandwidth)),
            unshared: BandwidthPool::new(Limits::default(), Default::default(), now),
            upload_buf: Vec::new(),
            flood_timer: None,
            stats: Arc::new(ServerStats::new()),
            config: Arc::new(config),
            max_cons: 512,
            max_cons_per_ip: 0,
            local_addrs,
            unregistered: listeners.into_iter().map(|l| (l, inherits)).collect(),
            channels: Slab::new(),
            timers: TimerHeap::new(),
            calls: Calls::new(),
            tokens: TokenRange::new(Token(0)),
            registry: None,
            sessions: 0,
            #[cfg(feature = "proxy-protocol")]
            headers: 0,
            ready: VecDeque::new(),
            queued: HashSet::new(),
            wake_rx,
            stop: StopHandle::new(waker),
            ioloop: None,
            pool: None,
            piece_pool: None,
        })
    }

    /// The addresses the server listens on (with the ports the kernel chose for port 0).
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.local_addrs
    }

    /// The session settings.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Changes the session settings; sessions started after the call see the new ones.
    /// Bandwidth limits apply at once to every transfer: the server and user buckets are
    /// made anew (full).
    pub fn set_config(&mut self, config: Config) {
        self.shared.bandwidth.lock(&self.stats).set_limits(
            config.max_rate,
            config.user_limits.clone(),
            Instant::now(),
        );
        self.config = Arc::new(config);
    }

    /// The server's counters ([`ServerStats`]): sessions, logins, commands, replies, bytes,
    /// transfers, data connection failures, TLS handshakes. Read them from any thread; the
    /// reactor keeps counting while you do.
    pub fn stats(&self) -> Arc<ServerStats> {
        Arc::clone(&self.stats)
    }

    /// Counts into `stats` from now on instead of the server's own counters, e.g. one
    /// instance shared by several servers on several threads. Call it before the server
    /// accepts connections: sessions and transfers already open go on counting into the
    /// instance they started with (so its gauges still come back to zero).
    pub fn set_stats(&mut self, stats: Arc<ServerStats>) {
        self.stats = stats;
    }

    /// Addresses in the flood table (counting failed logins or banned); a group's reactors
    /// share one table.
    pub fn flood_table_len(&self) -> usize {
        self.shared.flood.lock(&self.stats).len()
    }

    /// Whether `ip` is banned at `now` for failing to log in too often.
    pub fn is_banned(&self, ip: IpAddr, now: Instant) -> bool {
        self.shared.is_banned(ip, now, &self.stats)
    }

    /// A handle that stops the server from any thread.
    pub fn stop_handle(&self) -> StopHandle {
        self.stop.clone()
    }

    /// Sessions connected now.
    pub fn session_count(&self) -> usize {
        self.sessions
    }

    /// Slab entries in use: listeners, control and data channels.
    pub fn channel_count(&self) -> usize {
        self.channels.len()
    }

    /// Timers on the heap, callbacks included.
    pub fn timer_count(&self) -> usize {
        self.timers.len() + self.calls.len()
    }

    // ---- embedding -----------------------------------------------------------------

    /// Registers the server with a host's poll. The server takes the tokens from `first` to
    /// `first + TOKEN_SPAN - 1` ([`TOKEN_SPAN`](crate::TOKEN_SPAN)); the host keeps the rest.
    ///
    /// # Errors
    /// Registration errors from mio.
    pub fn register(&mut self, registry: &Registry, first: Token) -> io::Result<()> {
        self.tokens = TokenRange::new(first);
        self.registry = Some(registry.try_clone()?);
        registry.register(&mut self.wake_rx, self.tokens.waker(), Interest::READABLE)?;
        for (sock, inherits) in std::mem::take(&mut self.unregistered) {
            self.insert_listener(sock, inherits)?;
        }
        Ok(())
    }

    /// Closes everything and deregisters from the host's poll; the server can be dropped
    /// afterwards with nothing left registered.
    pub fn deregister(&mut self, registry: &Registry) {
        self.close_all();
        let _ = registry.deregister(&mut self.wake_rx);
        self.registry = None;
    }

    /// Whether `token` belongs to this server.
    pub fn owns(&self, token: Token) -> bool {
        self.tokens.contains(token)
    }

    /// Handles one event for a token the server owns, at `now` (read the clock once per
    /// poll and pass it to every event of the batch).
    pub fn handle_event(&mut self, event: &Event, now: Instant) {
        let token = event.token();
        if token == self.tokens.waker() {
            self.drain_wake(now);
            return;
        }
        if let Some(key) = self.tokens.key(token) {
            if let Some(c) = self.control_mut(key) {
                c.note_event(event.is_priority() || event.is_read_closed() || event.is_error());
            }
            self.drive(key, now);
        }
    }

    /// The next instant at which [`handle_timeouts`](Self::handle_timeouts) has work: a timer
    /// deadline, or now when channels wait in the ready queue.
    pub fn next_timeout(&mut self) -> Option<Instant> {
        if !self.ready.is_empty() {
            return Some(Instant::now());
        }
        match (self.timers.next_deadline(), self.calls.next_deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Fires due timers and gives queued channels their turn. Call once per loop iteration,
    /// after the events.
    pub fn handle_timeouts(&mut self, now: Instant) {
        // Timers and callbacks in deadline order, as if on one heap.
        loop {
            let timer = self.timers.next_deadline().filter(|t| *t <= now);
            let call = self.calls.next_deadline().filter(|t| *t <= now);
            match (timer, call) {
                (Some(t), Some(c)) if c < t => {
                    Calls::run_next(self, now);
                }
                (Some(_), _) => match self.timers.pop_due(now) {
                    Some(Due::Once(_, TimerTarget::Channel(key))) => {
                        if let Some(e) = self.channels.get_mut(key) {
                            e.timer = None;
                        }
                        self.fire_channel(key, now);
                    }
                    Some(Due::Once(_, TimerTarget::FloodSweep)) => {
                        self.flood_timer = None;
                        self.sweep_flood(now);
                    }
                    // The server's own timers do not repeat.
                    Some(Due::Every(_)) | None => {}
                },
                (None, Some(_)) => {
                    Calls::run_next(self, now);
                }
                (None, None) => break,
            }
        }
        for _ in 0..self.ready.len() {
            let Some(key) = self.ready.pop_front() else {
                break;
            };
            self.queued.remove(&key);
            self.drive(key, now);
        }
    }

    // ---- running alone ---------------------------------------------------------------

    /// Runs the server on its own poll until stopped (pyftpdlib's `serve_forever`):
    /// `timeout` caps each wait, `count` the number of loop iterations. Returns when
    /// [`close_all`](Self::close_all) was requested, when `count` iterations ran, or when
    /// [`close`](Self::close) was requested and the last session ended.
    ///
    /// # Errors
    /// Errors of the poll itself.
    pub fn serve_forever(
        &mut self,
        timeout: Option<Duration>,
        count: Option<usize>,
    ) -> io::Result<()> {
        let mut n = 0usize;
        loop {
            if count.is_some_and(|c| n >= c) {
                return Ok(());
            }
            self.poll_once(timeout)?;
            n += 1;
            let state = self.stop.state();
            if state == CLOSE_ALL || (state == CLOSE && self.channels.is_empty()) {
                self.close_all();
                return Ok(());
            }
        }
    }

    /// One iteration on the server's own poll: wait for events (at most `timeout`, less when a
    /// timer is due sooner), handle them, fire timers. Returns the next deadline.
    ///
    /// # Errors
    /// Errors of the poll itself.
    pub fn poll_once(&mut self, timeout: Option<Duration>) -> io::Result<Option<Instant>> {
        if self.ioloop.is_none() {
            let l = IoLoop::new()?;
            self.register(l.poll.registry(), Token(0))?;
            self.ioloop = Some(l);
        }
        self.apply_stop();
        let now = Instant::now();
        let wait = match self.next_timeout() {
            Some(d) => {
                let until = d.saturating_duration_since(now);
                Some(timeout.map_or(until, |t| t.min(until)))
            }
            None => timeout,
        };
        let Some(mut l) = self.ioloop.take() else {
            return Ok(None);
        };
        let result = l.wait(wait);
        let now = Instant::now();
        for event in l.events.iter() {
            self.handle_event(event, now);
        }
        self.ioloop = Some(l);
        result?;
        self.handle_timeouts(Instant::now());
        self.apply_stop();
        Ok(self.next_timeout())
    }

    // ---- callbacks ----------------------------------------------------------------------

    /// Runs `f` once after `delay` on the reactor thread (pyftpdlib's `CallLater`).
    pub fn call_later(
        &mut self,
        delay: Duration,
        f: impl FnOnce(&mut FtpServer) + Send + 'static,
    ) -> CallLater {
        self.calls.call_later(Instant::now(), delay, f)
    }

    /// Runs `f` every `period` until cancelled (pyftpdlib's `CallEvery`).
    pub fn call_every(
        &mut self,
        period: Duration,
        f: impl FnMut(&mut FtpServer) + Send + 'static,
    ) -> CallLater {
        self.calls.call_every(Instant::now(), period, f)
    }
}

/// The slab and the timers: what every part of the server shares.
impl FtpServer {
    /// Sets entry `key`'s one timer to the earliest deadline it reports, or cancels it.
    fn sync_timer(&mut self, key: usize, now: Instant) {
        let Some(entry) = self.channels.get(key) else {
            return;
        };
        let want = match &entry.chan {
            Channel::Listener(l) => l.retry_at,
            Channel::Control(c) => c.poll_timeout(),
            Channel::Data(d) => d.poll_timeout(),
            #[cfg(feature = "proxy-protocol")]
            Channel::Header(h) => Some(h.poll_timeout()),
        };
        let current = entry.timer;
        let timer = match (current, want) {
            (Some(id), Some(at)) => {
                if self.timers.deadline(id) != Some(at) && !self.timers.reschedule(id, at) {
                    Some(self.timers.call_at(at.max(now), TimerTarget::Channel(key)))
                } else {
                    Some(id)
                }
            }
            (None, Some(at)) => Some(self.timers.call_at(at, TimerTarget::Channel(key))),
            (Some(id), None) => {
                self.timers.cancel(id);
                None
            }
            (None, None) => None,
        };
        if let Some(e) = self.channels.get_mut(key) {
            e.timer = timer;
        }
    }

    fn fire_channel(&mut self, key: usize, now: Instant) {
        let Some(entry) = self.channels.get_mut(key) else {
            return;
        };
        match &mut entry.chan {
            Channel::Listener(l) => {
                l.retry_at = None;
                self.drive(key, now);
            }
            Channel::Control(c) => {
                if c.linger_over(now) {
                    self.remove_control(key, now);
                    return;
                }
                c.handle_timeout(now);
                self.drive_control(key, now);
            }
            Channel::Data(d) => {
                if d.paused_until().is_some_and(|t| t <= now) {
                    // The bandwidth wait is over: the channel gets no event for it (it
                    // stopped on its budget, not on WouldBlock), so drive it from here.
                    if let (Some(reg), Some(token)) = (&self.registry, self.tokens.token(key)) {
                        d.resume(now, reg, token);
                    }
                    self.drive_data(key, now);
                    return;
                }
                let mut events = Vec::new();
                if let Some(reg) = &self.registry {
                    d.handle_timeout(now, reg, &mut events);
                }
                // A data connection waiting for a session reuse verdict looks again.
                let recheck = events.is_empty() && d.take_recheck(now);
                let owner = d.owner;
                self.deliver(key, owner, events, now);
                if recheck {
                    self.drive_data(key, now);
                }
            }
            #[cfg(feature = "proxy-protocol")]
            Channel::Header(h) => {
                let peer = h.peer();
                log::warn!(
                    target: crate::logger::LOG,
                    "{peer} closed: no complete PROXY header in time"
                );
                self.remove(key);
            }
        }
    }

    // ---- driving channels ------------------------------------------------------------

    fn enqueue(&mut self, key: usize) {
        if self.queued.insert(key) {
            self.ready.push_back(key);
        }
    }

    fn drive(&mut self, key: usize, now: Instant) {
        match self.channels.get(key).map(|e| &e.chan) {
            Some(Channel::Listener(_)) => self.accept(key, now),
            Some(Channel::Control(_)) => self.drive_control(key, now),
            Some(Channel::Data(_)) => self.drive_data(key, now),
            #[cfg(feature = "proxy-protocol")]
            Some(Channel::Header(_)) => self.drive_header(key, now),
            None => {}
        }
    }

    /// The token of the next slab entry, or an error when the token range is used up.
    fn next_token(&self) -> io::Result<(usize, Token)> {
        let key = self.channels.vacant_key();
        let token = self
            .tokens
            .token(key)
            .ok_or_else(|| io::Error::other("token range exhausted"))?;
        Ok((key, token))
    }

    fn control_mut(&mut self, key: usize) -> Option<&mut ControlChannel> {
        match self.channels.get_mut(key) {
            Some(Entry {
                chan: Channel::Control(c),
                ..
            }) => Some(c),
            _ => None,
        }
    }

    fn data_bytes(&self, key: usize) -> Option<u64> {
        self.data(key).and_then(|d| d.bytes())
    }

    fn data(&self, key: usize) -> Option<&DataChannel> {
        match self.channels.get(key) {
            Some(Entry {
                chan: Channel::Data(d),
                ..
            }) => Some(d),
            _ => None,
        }
    }

    fn data_mut(&mut self, key: usize) -> Option<&mut DataChannel> {
        match self.channels.get_mut(key) {
            Some(Entry {
                chan: Channel::Data(d),
                ..
            }) => Some(d),
            _ => None,
        }
    }

    /// Removes any entry, deregistering its socket and cancelling its timer.
    fn remove(&mut self, key: usize) {
        if !self.channels.contains(key) {
            return;
        }
        let mut entry = self.channels.remove(key);
        if let Some(id) = entry.timer {
            self.timers.cancel(id);
        }
        if let Channel::Data(d) = &mut entry.chan {
            if let Some(share) = d.share.take() {
                self.shared.bandwidth.lock(&self.stats).leave(*share);
            }
        }
        #[cfg(feature = "proxy-protocol")]
        if let Channel::Header(_) = entry.chan {
            self.headers -= 1;
            self.shared.admission.lock(&self.stats).leave_header();
        }
        if self.queued.remove(&key) {
            self.ready.retain(|k| *k != key);
        }
        let Some(reg) = &self.registry else { return };
        // A failed deregister means the socket was never registered; dropping closes it.
        match &mut entry.chan {
            Channel::Listener(l) => {
                let _ = reg.deregister(&mut l.sock);
            }
            Channel::Control(c) => c.deregister(reg),
            Channel::Data(d) => d.deregister(reg),
            #[cfg(feature = "proxy-protocol")]
            Channel::Header(h) => {
                let _ = reg.deregister(h.stream_mut());
            }
        }
    }
}

impl AsRef<Calls<FtpServer>> for FtpServer {
    fn as_ref(&self) -> &Calls<FtpServer> {
        &self.calls
    }
}

impl AsMut<Calls<FtpServer>> for FtpServer {
    fn as_mut(&mut self) -> &mut Calls<FtpServer> {
        &mut self.calls
    }
}

impl Drop for FtpServer {
    fn drop(&mut self) {
        self.close_all();
    }
}

#[cfg(test)]
mod tests;
