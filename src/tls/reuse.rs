//! Session reuse on FTPS data connections: the server's ticket key and session cache
//! ([`ServerTls`]), the FTP session tag that every TLS session it issues carries, who each
//! tag belongs to ([`Owners`]), and the gate that decides which sessions a connection may
//! resume and which it may issue ([`Gate`]). [`SessionKeys`] makes the rustls
//! configurations of one FTP session's control and data connections from these.
//!
//! Before working on this file read RFC 8446 section 2.2 (resumption with a pre-shared
//! key), section 4.6.1 (TLS 1.3 session tickets) and section 8.1 (single-use tickets),
//! RFC 5077 (TLS 1.2 session tickets, sealed by the server, which alone reads them), and
//! docs/ftps.md (which clients resume which sessions, and how).
//!
//! # Session reuse on data connections
//!
//! The server has one ticket key and one session cache ([`ServerTls`]), so that a ticket
//! from any of its control connections decrypts on any data connection: clients that keep
//! one session cache per host (Go's, and so rclone's) resume a data connection of one FTP
//! session with a ticket from another of its control connections. Every session that a
//! connection of FTP session S issues carries S's tag, sealed inside the ticket (or kept
//! beside it in the cache), and the server remembers who each tag belongs to: the client's
//! address, and the user once logged in ([`Owners`]). A data connection of S resumes only
//! a session tagged S, or tagged by another FTP session of the same user from the same
//! address; any other ticket does not decrypt for it, so the handshake is a full one and,
//! under `data_session_reuse_required`, refused. Such a connection is issued no ticket or
//! session of its own either: a stranger who raced the client to the data port must not
//! leave with a ticket that would pass the next time.
//!
//! # One ticket per download, none per upload
//!
//! TLS 1.3 sends session tickets after the handshake. Clients that upload and then close
//! without reading them (curl, rclone, lftp) leave unread bytes in their socket, the kernel
//! answers the close with a reset, and the reset can destroy the tail of the upload still in
//! the server's receive queue. Data connections that receive therefore send no TLS 1.3
//! tickets. Downloads and listings, which the client reads to the end, send
//! [`DATA_TICKETS`] each: clients that use a TLS 1.3 ticket only once (rustls does, as RFC
//! 8446 section 8.1 suggests) get a new one to resume the next data connection with, on top
//! of the control connection's [`CONTROL_TICKETS`].
//!
//! All data connections share one configuration; the direction is decided per connection,
//! by its gate, when the tickets are made. Under PROT P the handshake starts as soon as the
//! data connection is up, before the transfer command tells the direction, but a TLS 1.3
//! server makes its tickets only on the client's Finished: the stream holds that message
//! back until the transfer is known (see `stream.rs`), and [`Gate::refuse_tickets`] turns
//! an upload's tickets off before it is read. TLS 1.2 tickets are part of the handshake,
//! read by every client, and are issued either way.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use rustls::server::{ProducesTickets, ServerSessionMemoryCache, StoresServerSessions};
use rustls::ServerConfig;

use super::stream::TlsError;

/// Sessions (TLS 1.2 session ids, for clients without tickets) the server remembers.
const SESSION_CACHE: usize = 1024;
/// Ended FTP sessions whose owner is still known, so that a client whose newest ticket
/// came from a control connection it has since closed can still resume with it.
const ENDED_OWNERS: usize = 1024;
/// Bytes of the FTP session tag in front of each session value.
const TAG_LEN: usize = 8;
/// TLS 1.3 tickets sent on the control connection, each good for one resumption by clients
/// that use tickets once.
const CONTROL_TICKETS: usize = 8;
/// TLS 1.3 tickets sent on a data connection that sends (a download or a listing): one to
/// replace the ticket its handshake used.
const DATA_TICKETS: usize = 1;

/// Locks a mutex whose data stays consistent even if a holder panicked (every update is a
/// single insert or remove).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Who an FTP session's tag belongs to.
#[derive(Debug)]
struct Owner {
    ip: IpAddr,
    /// The logged-in user; `None` before login.
    user: Option<String>,
    /// The session is still open (and so may still log in).
    live: bool,
}

/// The owners of the tags the server has handed out: every live FTP session that started
/// TLS, and the last [`ENDED_OWNERS`] that ended.
#[derive(Debug, Default)]
struct Owners {
    by_tag: HashMap<u64, Owner>,
    ended: VecDeque<u64>,
}

impl Owners {
    fn end(&mut self, tag: u64) {
        let Some(owner) = self.by_tag.get_mut(&tag) else {
            return;
        };
        owner.live = false;
        self.ended.push_back(tag);
        while self.ended.len() > ENDED_OWNERS {
            if let Some(old) = self.ended.pop_front() {
                self.by_tag.remove(&old);
            }
        }
    }
}

/// The TLS state of one server, shared by all its sessions (a [`TlsConfig`]'s private part;
/// clones of the configuration share it): the rustls configuration, the ticket key and
/// session cache, and the owners of the sessions they hold.
///
/// [`TlsConfig`]: super::TlsConfig
pub(crate) struct ServerTls {
    pub base: Arc<ServerConfig>,
    /// Made with the first session, so that making the settings cannot fail.
    ticketer: Mutex<Option<Arc<dyn ProducesTickets>>>,
    cache: Arc<dyn StoresServerSessions>,
    owners: Mutex<Owners>,
}

impl fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerTls")
            .field("sessions", &lock(&self.owners).by_tag.len())
            .finish_non_exhaustive()
    }
}

impl ServerTls {
    pub fn new(base: Arc<ServerConfig>) -> ServerTls {
        ServerTls {
            base,
            ticketer: Mutex::new(None),
            cache: ServerSessionMemoryCache::new(SESSION_CACHE),
            owners: Mutex::new(Owners::default()),
        }
    }

    fn ticketer(&self) -> Result<Arc<dyn ProducesTickets>, TlsError> {
        let mut t = lock(&self.ticketer);
        if let Some(t) = t.as_ref() {
            return Ok(Arc::clone(t));
        }
        let made =
            rustls::crypto::ring::Ticketer::new().map_err(|e| TlsError::Config(e.to_string()))?;
        *t = Some(Arc::clone(&made));
        Ok(made)
    }

    /// Whether a session tagged `tag` may be resumed by a data connection of `user` at
    /// `ip`: yes when the tag's FTP session is (or was) logged in as that user from that
    /// address; wait when it is open at that address and not logged in yet.
    fn judge(&self, tag: u64, user: &str, ip: IpAddr) -> Verdict {
        match lock(&self.owners).by_tag.get(&tag) {
            Some(o) if o.ip == ip => match o.user.as_deref() {
                Some(u) if u == user => Verdict::Yes,
                None if o.live => Verdict::Wait,
                _ => Verdict::No,
            },
            _ => Verdict::No,
        }
    }
}

/// Whether a data connection resumed a session it may resume.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verdict {
    Yes,
    /// The session came from a control connection of the same address that has not
    /// logged in yet: Go's clients (rclone) resume with the newest ticket of any of their
    /// control connections, and a new one may be a few milliseconds from its PASS. Decided
    /// when it logs in, ends, or the handshake times out.
    Wait,
    No,
}

/// Who a connection admits sessions from, and which tag the sessions it issues carry.
#[derive(Debug)]
pub(super) struct Gate {
    server: Arc<ServerTls>,
    /// The tag of the FTP session the connection belongs to.
    tag: u64,
    /// `None` on control connections, which resume any session of the server's (the login
    /// follows). On data connections, the session's login.
    data: Option<DataGate>,
}

#[derive(Debug)]
struct DataGate {
    user: Option<String>,
    ip: IpAddr,
    /// Full handshakes issue nothing.
    reuse_required: bool,
    /// The tag of the session the client offered and this connection admitted.
    admitted: Mutex<Option<u64>>,
    /// The connection receives under TLS 1.3: it issues nothing (see the module
    /// documentation).
    no_tickets: AtomicBool,
}

impl Gate {
    /// Whether this data connection may resume a session tagged `tag`.
    fn judge(&self, d: &DataGate, tag: u64) -> Verdict {
        if tag == self.tag {
            return Verdict::Yes;
        }
        match d.user.as_deref() {
            Some(user) => self.server.judge(tag, user, d.ip),
            None => Verdict::No,
        }
    }

    /// The verdict on what this data connection resumed: `No` when it resumed nothing.
    pub(super) fn verdict(&self) -> Verdict {
        let Some(d) = &self.data else {
            return Verdict::Yes;
        };
        let admitted = *lock(&d.admitted);
        match admitted {
            Some(tag) => self.judge(d, tag),
            None => Verdict::No,
        }
    }

    /// A stored session value with its tag, if this connection admits it (for now, on a
    /// `Wait`): the value without the tag.
    fn open(&self, mut tagged: Vec<u8>) -> Option<Vec<u8>> {
        let head: [u8; TAG_LEN] = tagged.get(..TAG_LEN)?.try_into().ok()?;
        let tag = u64::from_le_bytes(head);
        if let Some(d) = &self.data {
            if self.judge(d, tag) == Verdict::No {
                return None;
            }
            *lock(&d.admitted) = Some(tag);
        }
        tagged.drain(..TAG_LEN);
        Some(tagged)
    }

    /// A data connection that turned out to receive under TLS 1.3 issues nothing from now
    /// on. Called before the client's Finished, on which a TLS 1.3 server makes its
    /// tickets, is read.
    pub(super) fn refuse_tickets(&self) {
        if let Some(d) = &self.data {
            d.no_tickets.store(true, Ordering::Relaxed);
        }
    }

    /// `value` with a tag in front, or `None` when the connection may not issue it. A
    /// control connection tags with its FTP session. A data connection that resumed
    /// re-issues the tag it was offered: the client gains nothing it did not hold, even
    /// when the verdict goes against it later. A full handshake on a data connection issues
    /// nothing where reuse is required (a stranger who raced the client to the port must
    /// not leave with a ticket that would pass), and the session's own tag otherwise. A
    /// TLS 1.3 upload issues nothing at all.
    fn seal(&self, value: &[u8]) -> Option<Vec<u8>> {
        let tag = match &self.data {
            None => self.tag,
            Some(d) if d.no_tickets.load(Ordering::Relaxed) => return None,
            Some(d) => match *lock(&d.admitted) {
                Some(tag) => tag,
                None if d.reuse_required => return None,
                None => self.tag,
            },
        };
        let mut tagged = Vec::with_capacity(TAG_LEN + value.len());
        tagged.extend_from_slice(&tag.to_le_bytes());
        tagged.extend_from_slice(value);
        Some(tagged)
    }
}

/// The configuration of one data connection, and the gate that tells what it resumed.
#[derive(Debug)]
pub(crate) struct DataKeys {
    pub config: Arc<ServerConfig>,
    /// What the connection resumed, for the stream's reuse check.
    pub(super) gate: Arc<Gate>,
}

/// The server's ticket key behind a connection's [`Gate`].
#[derive(Debug)]
struct GatedTickets {
    inner: Arc<dyn ProducesTickets>,
    gate: Arc<Gate>,
}

impl ProducesTickets for GatedTickets {
    fn enabled(&self) -> bool {
        self.inner.enabled()
    }

    fn lifetime(&self) -> u32 {
        self.inner.lifetime()
    }

    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        self.inner.encrypt(&self.gate.seal(plain)?)
    }

    fn decrypt(&self, cipher: &[u8]) -> Option<Vec<u8>> {
        self.gate.open(self.inner.decrypt(cipher)?)
    }
}

/// The server's session cache behind a connection's [`Gate`].
#[derive(Debug)]
struct GatedCache {
    inner: Arc<dyn StoresServerSessions>,
    gate: Arc<Gate>,
}

impl StoresServerSessions for GatedCache {
    fn put(&self, key: Vec<u8>, value: Vec<u8>) -> bool {
        match self.gate.seal(&value) {
            Some(tagged) => self.inner.put(key, tagged),
            None => false,
        }
    }

    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.gate.open(self.inner.get(key)?)
    }

    fn take(&self, key: &[u8]) -> Option<Vec<u8>> {
        // Look before taking: a session this connection does not admit stays for its owner.
        self.gate.open(self.inner.get(key)?)?;
        self.gate.open(self.inner.take(key)?)
    }

    fn can_cache(&self) -> bool {
        self.inner.can_cache()
    }
}

/// One FTP session's TLS keys: its tag, its control connection's configuration, which
/// issues session tickets, and the base of its data connections' configurations (whose
/// gates decide, by direction, whether they issue a ticket).
pub(crate) struct SessionKeys {
    server: Arc<ServerTls>,
    tag: u64,
    pub control: Arc<ServerConfig>,
    data: ServerConfig,
    /// The user last recorded as the tag's owner.
    user: Option<String>,
}

impl fmt::Debug for SessionKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionKeys")
            .field("tag", &self.tag)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

impl SessionKeys {
    /// The keys of a new FTP session whose client is at `ip`.
    pub fn new(server: &Arc<ServerTls>, ip: IpAddr) -> Result<SessionKeys, TlsError> {
        let ticketer = server.ticketer()?;
        let mut bytes = [0u8; TAG_LEN];
        server
            .base
            .crypto_provider()
            .secure_random
            .fill(&mut bytes)
            .map_err(|e| TlsError::Config(format!("{e:?}")))?;
        let tag = u64::from_le_bytes(bytes);
        let gate = Arc::new(Gate {
            server: Arc::clone(server),
            tag,
            data: None,
        });
        let mut base = (*server.base).clone();
        base.max_early_data_size = 0;
        let mut control = base.clone();
        control.ticketer = Arc::new(GatedTickets {
            inner: Arc::clone(&ticketer),
            gate: Arc::clone(&gate),
        });
        control.session_storage = Arc::new(GatedCache {
            inner: Arc::clone(&server.cache),
            gate,
        });
        control.send_tls13_tickets = CONTROL_TICKETS;
        let mut data = base;
        data.ticketer = ticketer;
        data.send_tls13_tickets = DATA_TICKETS;
        lock(&server.owners).by_tag.insert(
            tag,
            Owner {
                ip,
                user: None,
                live: true,
            },
        );
        Ok(SessionKeys {
            server: Arc::clone(server),
            tag,
            control: Arc::new(control),
            data,
            user: None,
        })
    }

    /// Records who the session is logged in as (when it changed).
    pub fn note_user(&mut self, user: Option<&str>) {
        if self.user.as_deref() == user {
            return;
        }
        self.user = user.map(str::to_string);
        if let Some(o) = lock(&self.server.owners).by_tag.get_mut(&self.tag) {
            o.user = self.user.clone();
        }
    }

    /// The configuration of one data connection of this session, by the session's client
    /// at `ip`. Each data connection has its own, as its gate records what it admitted and
    /// whether it receives.
    pub fn data(&self, ip: IpAddr, reuse_required: bool) -> DataKeys {
        let mut config = self.data.clone();
        let gate = Arc::new(Gate {
            server: Arc::clone(&self.server),
            tag: self.tag,
            data: Some(DataGate {
                user: self.user.clone(),
                ip,
                reuse_required,
                admitted: Mutex::new(None),
                no_tickets: AtomicBool::new(false),
            }),
        });
        config.ticketer = Arc::new(GatedTickets {
            inner: Arc::clone(&config.ticketer),
            gate: Arc::clone(&gate),
        });
        config.session_storage = Arc::new(GatedCache {
            inner: Arc::clone(&self.server.cache),
            gate: Arc::clone(&gate),
        });
        DataKeys {
            config: Arc::new(config),
            gate,
        }
    }
}

impl Drop for SessionKeys {
    fn drop(&mut self) {
        lock(&self.server.owners).end(self.tag);
    }
}
