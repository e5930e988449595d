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
//! Sessions report failed logins ([`Action::LoginFailed`]); the server records them in the
//! flood table (`src/flood.rs`: failures per IP address with a size cap, and bans), answers
//! a banned address's connections with 421 until the ban ends, and keeps one timer on the
//! heap that sweeps expired entries.
//!
//! # Stopping
//!
//! [`StopHandle`] stops the server from any thread: it sets the stop state and wakes the
//! reactor through an [`ioloop::waker`](crate::ioloop::waker) registered in the same poll.

use std::collections::{HashMap, HashSet, VecDeque};
use std::io::{self, Write};
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::event::Event;
use mio::net::{TcpListener, TcpStream};
use mio::{Interest, Registry, Token};
use slab::Slab;

use crate::config::Config;
use crate::control::session::{Action, DataFailure, Direction, Session, TransferError};
use crate::control::{ControlChannel, Drive};
use crate::data::{DataChannel, DataEvent};
use crate::flood::FloodTable;
pub use crate::ioloop::call::CallLater;
use crate::ioloop::call::Calls;
use crate::ioloop::timer::{Due, TimerHeap, TimerId};
use crate::ioloop::token::TokenRange;
use crate::ioloop::waker::{self, WakeReceiver, Waker};
use crate::ioloop::IoLoop;
use crate::logger;
use crate::throttle::{Allowance, BandwidthPool, Way};

/// Bytes a data channel may move per turn before others get theirs.
const TURN_BUDGET: usize = 4 << 20;
/// Pause before accepting again after running out of file descriptors.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);

const RUNNING: u8 = 0;
const CLOSE: u8 = 1;
const CLOSE_ALL: u8 = 2;

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
}

#[derive(Debug)]
enum Channel {
    Listener(ListenerEntry),
    Control(Box<ControlChannel>),
    Data(Box<DataChannel>),
}

#[derive(Debug)]
struct Entry {
    chan: Channel,
    timer: Option<TimerId>,
}

/// Stops a server from another thread (or from inside a callback).
#[derive(Debug, Clone)]
pub struct StopHandle {
    /// `RUNNING`, `CLOSE` or `CLOSE_ALL`; only ever raised.
    state: Arc<AtomicU8>,
    waker: Waker,
}

impl StopHandle {
    fn signal(&self, state: u8) {
        // The state first: the reactor may look the moment it is woken.
        self.state.fetch_max(state, Ordering::SeqCst);
        self.waker.wake();
    }

    fn state(&self) -> u8 {
        self.state.load(Ordering::SeqCst)
    }

    fn raise(&self, state: u8) {
        self.state.fetch_max(state, Ordering::SeqCst);
    }

    /// Stops listening; sessions already connected carry on (pyftpdlib's `close()`).
    pub fn close(&self) {
        self.signal(CLOSE);
    }

    /// Stops listening and drops every session (pyftpdlib's `close_all()`).
    pub fn close_all(&self) {
        self.signal(CLOSE_ALL);
    }
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
    unregistered: Vec<TcpListener>,
    channels: Slab<Entry>,
    timers: TimerHeap<TimerTarget>,
    /// Callbacks of [`call_later`](Self::call_later) and [`call_every`](Self::call_every).
    calls: Calls<FtpServer>,
    tokens: TokenRange,
    registry: Option<Registry>,
    per_ip: HashMap<IpAddr, usize>,
    sessions: usize,
    ready: VecDeque<usize>,
    queued: HashSet<usize>,
    wake_rx: WakeReceiver,
    stop: StopHandle,
    ioloop: Option<IoLoop>,
    /// The user and server buckets and the transfers sharing them.
    bandwidth: BandwidthPool,
    /// Failed logins and bans per address ([`flood`](crate::flood)).
    flood: FloodTable,
    flood_timer: Option<TimerId>,
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

fn would_block(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock
}

/// Errors after which accepting again at once would fail the same way.
fn resource_exhausted(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

/// Keeps TCP urgent data in the normal stream. Clients such as ftplib send ABOR with
/// MSG_OOB (RFC 959's Synch), which makes its last byte urgent; without this option the
/// kernel takes that byte out of the stream and the line never ends.
fn set_oob_inline(stream: &TcpStream) {
    use std::os::fd::AsRawFd;
    let on: libc::c_int = 1;
    // SAFETY: setsockopt reads `on` (a live local of the stated size) on an open socket.
    let rc = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_OOBINLINE,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        logger::logerror(&format!("SO_OOBINLINE: {}", io::Error::last_os_error()));
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
            listeners.push(TcpListener::bind(a)?);
        }
        if listeners.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "no address to listen on",
            ));
        }
        FtpServer::from_listeners(listeners, config)
    }

    /// Serves on listeners the caller bound (say with socket options of its own).
    ///
    /// # Errors
    /// When the waker's socket pair cannot be made.
    pub fn from_listeners(listeners: Vec<TcpListener>, config: Config) -> io::Result<FtpServer> {
        let local_addrs = listeners
            .iter()
            .map(|l| l.local_addr())
            .collect::<io::Result<Vec<_>>>()?;
        let (waker, wake_rx) = waker::pair()?;
        let bandwidth =
            BandwidthPool::new(config.max_rate, config.user_limits.clone(), Instant::now());
        Ok(FtpServer {
            bandwidth,
            flood: FloodTable::default(),
            flood_timer: None,
            config: Arc::new(config),
            max_cons: 512,
            max_cons_per_ip: 0,
            local_addrs,
            unregistered: listeners,
            channels: Slab::new(),
            timers: TimerHeap::new(),
            calls: Calls::new(),
            tokens: TokenRange::new(Token(0)),
            registry: None,
            per_ip: HashMap::new(),
            sessions: 0,
            ready: VecDeque::new(),
            queued: HashSet::new(),
            wake_rx,
            stop: StopHandle {
                state: Arc::new(AtomicU8::new(RUNNING)),
                waker,
            },
            ioloop: None,
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
        self.bandwidth
            .set_limits(config.max_rate, config.user_limits.clone(), Instant::now());
        self.config = Arc::new(config);
    }

    /// Addresses in the flood table (counting failed logins or banned).
    pub fn flood_table_len(&self) -> usize {
        self.flood.len()
    }

    /// Whether `ip` is banned at `now` for failing to log in too often.
    pub fn is_banned(&self, ip: IpAddr, now: Instant) -> bool {
        self.flood.is_banned(ip, now)
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
        for sock in std::mem::take(&mut self.unregistered) {
            self.insert_listener(sock)?;
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
            self.drain_wake();
            return;
        }
        if let Some(key) = self.tokens.key(token) {
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

    // ---- stopping ---------------------------------------------------------------------

    /// Stops listening; connected sessions carry on (pyftpdlib's `close()`).
    pub fn close(&mut self) {
        self.stop.raise(CLOSE);
        self.unregistered.clear();
        let keys: Vec<usize> = self
            .channels
            .iter()
            .filter(|(_, e)| matches!(e.chan, Channel::Listener(_)))
            .map(|(k, _)| k)
            .collect();
        for key in keys {
            self.remove(key);
        }
    }

    /// Stops listening and drops every session, leaving no socket or timer behind
    /// (pyftpdlib's `close_all()`).
    pub fn close_all(&mut self) {
        self.stop.raise(CLOSE_ALL);
        self.close();
        let now = Instant::now();
        let keys: Vec<usize> = self.channels.iter().map(|(k, _)| k).collect();
        for key in keys {
            if matches!(
                self.channels.get(key).map(|e| &e.chan),
                Some(Channel::Control(_))
            ) {
                self.remove_control(key, now);
            }
        }
        let keys: Vec<usize> = self.channels.iter().map(|(k, _)| k).collect();
        for key in keys {
            self.remove(key);
        }
        self.ready.clear();
        self.queued.clear();
        self.timers.clear();
        self.calls.clear();
        self.flood_timer = None;
        self.flood.clear();
    }

    fn drain_wake(&mut self) {
        // Woken for whatever reason, the stop state is the one thing to look at.
        self.wake_rx.drain();
        self.apply_stop();
    }

    fn apply_stop(&mut self) {
        match self.stop.state() {
            CLOSE_ALL if !self.channels.is_empty() || self.timer_count() > 0 => self.close_all(),
            CLOSE
                if self
                    .channels
                    .iter()
                    .any(|(_, e)| matches!(e.chan, Channel::Listener(_))) =>
            {
                self.close()
            }
            _ => {}
        }
    }

    // ---- timers -----------------------------------------------------------------------

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

    fn sync_timer(&mut self, key: usize, now: Instant) {
        let Some(entry) = self.channels.get(key) else {
            return;
        };
        let want = match &entry.chan {
            Channel::Listener(l) => l.retry_at,
            Channel::Control(c) => c.poll_timeout(),
            Channel::Data(d) => d.poll_timeout(),
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
                let owner = d.owner;
                self.deliver(key, owner, events, now);
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

    fn insert_listener(&mut self, mut sock: TcpListener) -> io::Result<()> {
        let (key, token) = self.next_token()?;
        let entry = self.channels.vacant_entry();
        if let Some(reg) = &self.registry {
            reg.register(&mut sock, token, Interest::READABLE)?;
        }
        entry.insert(Entry {
            chan: Channel::Listener(ListenerEntry {
                sock,
                retry_at: None,
            }),
            timer: None,
        });
        // Connections may already be waiting in the backlog.
        self.enqueue(key);
        Ok(())
    }

    fn accept(&mut self, key: usize, now: Instant) {
        let mut failures = 0;
        loop {
            let Some(Entry {
                chan: Channel::Listener(l),
                ..
            }) = self.channels.get_mut(key)
            else {
                return;
            };
            if l.retry_at.is_some() {
                return;
            }
            match l.sock.accept() {
                Ok((stream, peer)) => self.new_session(stream, peer, now),
                Err(e) if would_block(&e) => break,
                Err(e) if resource_exhausted(&e) => {
                    logger::logerror(&format!("accept failed: {e}; retrying in {ACCEPT_RETRY:?}"));
                    l.retry_at = Some(now + ACCEPT_RETRY);
                    break;
                }
                Err(e) => {
                    // ECONNABORTED, EINTR, EPROTO: that connection is gone, the next may not be.
                    failures += 1;
                    if failures > 64 {
                        logger::logerror(&format!("accept keeps failing: {e}"));
                        l.retry_at = Some(now + ACCEPT_RETRY);
                        break;
                    }
                }
            }
        }
        self.sync_timer(key, now);
    }

    fn new_session(&mut self, mut stream: TcpStream, peer: SocketAddr, now: Instant) {
        let ip = peer.ip().to_canonical();
        let refuse = if self.is_banned(ip, now) {
            Some("421 Too many failed logins; try again later.\r\n")
        } else if self.max_cons > 0 && self.sessions >= self.max_cons {
            Some("421 Too many connections. Service temporarily unavailable.\r\n")
        } else if self.max_cons_per_ip > 0
            && self.per_ip.get(&ip).copied().unwrap_or(0) >= self.max_cons_per_ip
        {
            Some("421 Too many connections from the same IP address.\r\n")
        } else if self.tokens.token(self.channels.vacant_key() + 1).is_none() {
            Some("421 Server busy.\r\n")
        } else {
            None
        };
        if let Some(msg) = refuse {
            log::warn!(target: logger::LOG, "{peer} refused: {}", msg.trim_end());
            // Best effort: the socket is fresh, so a short reply fits its buffer.
            let _ = stream.write(msg.as_bytes());
            return;
        }
        // Replies are small and often followed by nothing: do not let Nagle hold them back.
        let _ = stream.set_nodelay(true);
        set_oob_inline(&stream);
        let local = match stream.local_addr() {
            Ok(a) => a,
            Err(e) => {
                logger::logerror(&format!("{peer} local_addr failed: {e}"));
                return;
            }
        };
        let session = Session::new(Arc::clone(&self.config), peer, local, now);
        let entry = self.channels.vacant_entry();
        let key = entry.key();
        let Some(token) = self.tokens.token(key) else {
            return;
        };
        let mut chan = Box::new(ControlChannel::new(
            stream,
            session,
            peer,
            self.config.tls.clone(),
            now,
        ));
        if let Some(reg) = &self.registry {
            if let Err(e) = chan.register(reg, token) {
                logger::logerror(&format!("{peer} register failed: {e}"));
                chan.handle_closed(now, None);
                return;
            }
        }
        entry.insert(Entry {
            chan: Channel::Control(chan),
            timer: None,
        });
        self.sessions += 1;
        *self.per_ip.entry(ip).or_insert(0) += 1;
        self.drive_control(key, now);
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

    fn drive_control(&mut self, key: usize, now: Instant) {
        loop {
            let Some(c) = self.control_mut(key) else {
                return;
            };
            match c.drive(now) {
                Drive::Apply(actions) => {
                    for a in actions {
                        self.apply(key, a, now);
                    }
                }
                Drive::Close => {
                    self.remove_control(key, now);
                    return;
                }
                Drive::Wait => break,
            }
        }
        self.sync_timer(key, now);
    }

    fn apply(&mut self, key: usize, action: Action, now: Instant) {
        let config = Arc::clone(&self.config);
        match action {
            Action::CloseData => {
                let dkey = self.control_mut(key).and_then(|c| c.take_data());
                let bytes = dkey.and_then(|d| self.data_bytes(d));
                if let Some(d) = dkey {
                    self.remove(d);
                }
                if let Some(c) = self.control_mut(key) {
                    c.handle_data_closed(now, bytes);
                }
            }
            // The channel closes itself once the replies are out, and switches TLS itself.
            Action::Close | Action::StartTls | Action::EndTls => {}
            Action::LoginFailed => {
                if let Some(c) = self.control_mut(key) {
                    let ip = c.peer_ip();
                    self.record_failed_login(ip, now);
                }
            }
            Action::Listen { extended } => {
                let Some(c) = self.control_mut(key) else {
                    return;
                };
                let local = c.local_ip();
                let client = c.client_ip();
                let result = local.and_then(|ip| {
                    DataChannel::listen(
                        key,
                        ip,
                        client,
                        config.passive_ports.as_ref(),
                        &config.dtp,
                        now,
                    )
                });
                let early = self.early_data_tls(key, &config);
                let result = result.and_then(|(mut dc, addr)| {
                    dc.set_early_tls(early);
                    self.insert_data(key, dc, now).map(|_| addr)
                });
                if let Some(c) = self.control_mut(key) {
                    c.handle_passive_ready(now, result, extended);
                }
            }
            Action::Connect(addr) => {
                let early = self.early_data_tls(key, &config);
                let result =
                    DataChannel::connect(key, addr, &config.dtp, now).and_then(|mut dc| {
                        dc.set_early_tls(early);
                        self.insert_data(key, dc, now)
                    });
                match result {
                    Ok(dkey) => self.enqueue(dkey),
                    Err(e) => {
                        if let Some(c) = self.control_mut(key) {
                            c.handle_data_failed(now, DataFailure::ConnectFailed(e));
                        }
                    }
                }
            }
            Action::Transfer(t) => {
                let tls = match (&config.tls, self.control_mut(key)) {
                    (Some(tc), Some(c)) if t.tls => {
                        let sending = matches!(t.direction, Direction::Send(_));
                        c.data_tls(tc, sending)
                    }
                    _ => None,
                };
                if t.tls && tls.is_none() {
                    if let Some(c) = self.control_mut(key) {
                        let e = "TLS is not available for the data connection".to_string();
                        c.handle_transfer_failed(now, TransferError::Tls(e));
                    }
                    return;
                }
                let dkey = self.control_mut(key).and_then(|c| c.data());
                match dkey.and_then(|d| self.data_mut(d).map(|dc| (d, dc))) {
                    Some((d, dc)) => {
                        dc.attach(
                            t,
                            config.dtp.ac_in_buffer_size,
                            config.dtp.ac_out_buffer_size,
                            config.dtp.limits(),
                            now,
                            tls,
                        );
                        self.enqueue(d);
                    }
                    None => {
                        if let Some(c) = self.control_mut(key) {
                            let e =
                                io::Error::new(io::ErrorKind::NotConnected, "no data connection");
                            c.handle_transfer_failed(now, TransferError::Connection(e));
                        }
                    }
                }
            }
        }
    }

    /// The TLS settings a new data connection of session `key` starts with at once: under
    /// PROT P, the no-ticket ones (see [`DataChannel::set_early_tls`]).
    fn early_data_tls(&mut self, key: usize, config: &Config) -> Option<crate::tls::DataTls> {
        let tc = config.tls.as_ref()?;
        self.control_mut(key)?.early_data_tls(tc)
    }

    fn insert_data(
        &mut self,
        owner: usize,
        mut dc: DataChannel,
        now: Instant,
    ) -> io::Result<usize> {
        let (key, token) = self.next_token()?;
        let entry = self.channels.vacant_entry();
        if let Some(reg) = &self.registry {
            dc.register(reg, token)?;
        }
        entry.insert(Entry {
            chan: Channel::Data(Box::new(dc)),
            timer: None,
        });
        if let Some(c) = self.control_mut(owner) {
            c.set_data(Some(key));
        }
        self.sync_timer(key, now);
        Ok(key)
    }

    /// The user whose limits apply to transfers of session `owner`, if any.
    fn limited_user(&self, owner: usize) -> Option<String> {
        if !self.bandwidth.has_user_limits() {
            return None;
        }
        match self.channels.get(owner) {
            Some(Entry {
                chan: Channel::Control(c),
                ..
            }) => c
                .username()
                .filter(|u| self.bandwidth.limits_user(u))
                .map(str::to_string),
            _ => None,
        }
    }

    /// What data channel `key` may move this turn ([`BandwidthPool::allowance`]).
    fn allowance(
        &mut self,
        key: usize,
        way: Way,
        user: Option<&str>,
        now: Instant,
    ) -> Option<Allowance> {
        let (own, remaining) = match self.channels.get_mut(key) {
            Some(Entry {
                chan: Channel::Data(dc),
                ..
            }) => {
                let remaining = dc.remaining();
                (dc.throttle_mut(way), remaining)
            }
            _ => (None, None),
        };
        self.bandwidth.allowance(own, way, user, remaining, now)
    }

    fn pause_data(&mut self, key: usize, until: Instant, now: Instant) {
        let Some(token) = self.tokens.token(key) else {
            return;
        };
        if let (
            Some(Entry {
                chan: Channel::Data(dc),
                ..
            }),
            Some(reg),
        ) = (self.channels.get_mut(key), &self.registry)
        {
            dc.pause(until, reg, token);
        }
        self.sync_timer(key, now);
    }

    fn drive_data(&mut self, key: usize, now: Instant) {
        let Some(token) = self.tokens.token(key) else {
            return;
        };
        let (owner, way, connected) = match self.data(key) {
            Some(dc) => {
                if dc.paused_until().is_some_and(|t| t > now) {
                    // Waiting for bandwidth; the wake-up timer drives it.
                    return;
                }
                (dc.owner, dc.way(), dc.is_connected())
            }
            _ => return,
        };
        let user = way.and_then(|_| self.limited_user(owner));
        let mut budget = TURN_BUDGET;
        let mut turn_end = None;
        if let Some(way) = way {
            if let Some(Entry {
                chan: Channel::Data(dc),
                ..
            }) = self.channels.get_mut(key)
            {
                if dc.share.is_none() {
                    dc.share = self.bandwidth.join(way, user.as_deref()).map(Box::new);
                }
            }
            if let Some(a) = self.allowance(key, way, user.as_deref(), now) {
                if a.budget == 0 && connected {
                    self.pause_data(key, a.wake, now);
                    return;
                }
                budget = budget.min(usize::try_from(a.budget).unwrap_or(usize::MAX));
                if a.shared_cap {
                    turn_end = Some(a.turn_end);
                }
            }
        }
        let Some(Entry {
            chan: Channel::Data(dc),
            ..
        }) = self.channels.get_mut(key)
        else {
            return;
        };
        let Some(reg) = &self.registry else { return };
        let mut events = Vec::new();
        let before = dc.bytes().unwrap_or(0);
        let again = dc.drive(now, reg, token, budget, &mut events);
        let after = dc.bytes().or_else(|| {
            events.iter().find_map(|e| match e {
                DataEvent::Done(b, _) => Some(*b),
                _ => None,
            })
        });
        let owner = dc.owner;
        let moved = after.unwrap_or(before).saturating_sub(before);
        let mut paused = false;
        if let Some(way) = way {
            if moved > 0 {
                let own = match self.channels.get_mut(key) {
                    Some(Entry {
                        chan: Channel::Data(dc),
                        ..
                    }) => dc.throttle_mut(way),
                    _ => None,
                };
                self.bandwidth
                    .consume(own, way, user.as_deref(), moved, now);
            }
            if again {
                match (turn_end, self.allowance(key, way, user.as_deref(), now)) {
                    // Took its share of a shared bucket: the others' turn.
                    (Some(end), _) => {
                        self.pause_data(key, end, now);
                        paused = true;
                    }
                    (None, Some(a)) if a.budget == 0 => {
                        self.pause_data(key, a.wake, now);
                        paused = true;
                    }
                    _ => {}
                }
            }
        }
        if again && !paused {
            self.enqueue(key);
        }
        self.deliver(key, owner, events, now);
    }

    // ---- flood limits ------------------------------------------------------------------

    /// Counts a failed login from `ip` in the flood table, and keeps the sweep timer no
    /// later than the entry's expiry.
    fn record_failed_login(&mut self, ip: IpAddr, now: Instant) {
        let Some(expiry) = self.flood.record_failed_login(ip, &self.config.flood, now) else {
            return;
        };
        let current = self.flood_timer.and_then(|id| self.timers.deadline(id));
        match (self.flood_timer, current) {
            (Some(_), Some(at)) if at <= expiry => {}
            (Some(id), Some(_)) => {
                self.timers.reschedule(id, expiry);
            }
            _ => self.flood_timer = Some(self.timers.call_at(expiry, TimerTarget::FloodSweep)),
        }
    }

    /// Forgets the flood table's expired entries, and sets the sweep timer to the next
    /// expiry.
    fn sweep_flood(&mut self, now: Instant) {
        let next = self.flood.sweep(&self.config.flood, now);
        match (self.flood_timer, next) {
            (Some(id), Some(at)) => {
                if !self.timers.reschedule(id, at) {
                    self.flood_timer = Some(self.timers.call_at(at, TimerTarget::FloodSweep));
                }
            }
            (None, Some(at)) => {
                self.flood_timer = Some(self.timers.call_at(at, TimerTarget::FloodSweep))
            }
            (Some(id), None) => {
                self.timers.cancel(id);
                self.flood_timer = None;
            }
            (None, None) => {}
        }
    }

    /// Hands data events to the owning session, removes a finished data channel and lets
    /// the control channel answer.
    fn deliver(&mut self, key: usize, owner: usize, events: Vec<DataEvent>, now: Instant) {
        let finished = self.data(key).is_some_and(|dc| dc.is_finished());
        if finished {
            self.remove(key);
            if let Some(c) = self.control_mut(owner) {
                if c.data() == Some(key) {
                    c.set_data(None);
                }
            }
        } else {
            self.sync_timer(key, now);
        }
        if events.is_empty() {
            return;
        }
        if let Some(c) = self.control_mut(owner) {
            c.handle_data_events(now, events);
            self.drive_control(owner, now);
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
                self.bandwidth.leave(*share);
            }
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
        }
    }

    fn remove_control(&mut self, key: usize, now: Instant) {
        let Some(c) = self.control_mut(key) else {
            return;
        };
        let data = c.take_data();
        let ip = c.peer_ip();
        let bytes = data.and_then(|d| self.data_bytes(d));
        if let Some(c) = self.control_mut(key) {
            c.handle_closed(now, bytes);
        }
        if let Some(d) = data {
            self.remove(d);
        }
        self.remove(key);
        self.sessions -= 1;
        if let Some(n) = self.per_ip.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                self.per_ip.remove(&ip);
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
