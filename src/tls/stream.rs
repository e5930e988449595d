//! TLS over a non-blocking mio socket: a rustls `ServerConnection` driven without ever
//! blocking, the server's session keys, and the certificate loading.
//!
//! # Driving rustls on an edge-triggered socket
//!
//! Every call moves as much as the socket takes in both directions (handshake messages go
//! out while data comes in) and returns `WouldBlock` only when the socket itself did, so the
//! next readiness edge always has something to wake up for. A TLS error writes its alert,
//! if the socket takes it, and is returned as an `io::Error` carrying a [`TlsError`]; every
//! call after that fails the same way, so a broken connection cannot spin.
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
//! # No session tickets on upload connections
//!
//! TLS 1.3 sends session tickets after the handshake. Clients that upload and then close
//! without reading them (curl, rclone, lftp) leave unread bytes in their socket, the kernel
//! answers the close with a reset, and the reset can destroy the tail of the upload still in
//! the server's receive queue. Data connections that receive therefore send no tickets.
//! Downloads and listings, which the client reads to the end, send one each: clients that use
//! a TLS 1.3 ticket only once (rustls does, as RFC 8446 section 8.1 suggests) get a new one
//! to resume the next data connection with, on top of the control connection's
//! [`CONTROL_TICKETS`].
//!
//! # The end of an upload
//!
//! A receiving data connection ends at the client's close_notify. A TCP FIN without one
//! ends it too when the stream stopped between two TLS records and the policy allows it
//! (`data_close_notify_required` off, the default): many clients close that way, and
//! vsftpd's author (`strict_ssl_read_eof`) and proftpd accept it. A FIN in the middle of a
//! record, a reset, or any FIN under the strict policy is a cut connection, never the end of
//! the file.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::io::{self, Read, Write};
use std::net::IpAddr;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use mio::net::TcpStream;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ProducesTickets, ServerSessionMemoryCache, StoresServerSessions};
use rustls::{HandshakeKind, ServerConfig, ServerConnection};

/// How much TLS output a data connection may queue: large enough for full 16 KiB records
/// in a row, small enough to keep the per-turn budget meaningful.
const DATA_BUFFER_LIMIT: usize = 256 * 1024;
/// Socket reads on data connections: rustls reads at most one record (16 KiB) at a time,
/// so TLS records are read from the socket in batches of this size and handed over from
/// memory.
const DATA_READ_SIZE: usize = 256 * 1024;
/// The same for control connections, whose lines are short.
const CONTROL_READ_SIZE: usize = 4 * 1024;
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

/// A TLS failure: bad certificate files, a failed handshake, a protocol error, or a data
/// connection that did not resume its session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsError {
    /// Reading the certificate or key file failed, or it held nothing usable.
    Pem(String),
    /// rustls refused the configuration (say, a key that does not match the certificate).
    Config(String),
    /// The handshake or a later record failed.
    Protocol(String),
    /// A data connection made a full handshake where the policy requires resumption.
    NoSessionReuse,
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsError::Pem(m) => write!(f, "{m}"),
            TlsError::Config(m) => write!(f, "TLS configuration refused: {m}"),
            TlsError::Protocol(m) => write!(f, "TLS failed: {m}"),
            TlsError::NoSessionReuse => write!(
                f,
                "Data connection must resume the TLS session of the control connection"
            ),
        }
    }
}

impl std::error::Error for TlsError {}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A server configuration from PEM files.
pub(super) fn server_config_from_pem(
    cert: &Path,
    key: &Path,
) -> Result<Arc<ServerConfig>, TlsError> {
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| TlsError::Pem(format!("{}: {e}", cert.display())))?;
    if certs.is_empty() {
        return Err(TlsError::Pem(format!(
            "{}: no certificate in the file",
            cert.display()
        )));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| TlsError::Pem(format!("{}: {e}", key.display())))?;
    let config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| TlsError::Config(e.to_string()))?;
    Ok(Arc::new(config))
}

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
enum Verdict {
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
struct Gate {
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
    fn verdict(&self) -> Verdict {
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

    /// `value` with a tag in front, or `None` when the connection may not issue it. A
    /// control connection tags with its FTP session. A data connection that resumed
    /// re-issues the tag it was offered: the client gains nothing it did not hold, even
    /// when the verdict goes against it later. A full handshake on a data connection issues
    /// nothing where reuse is required (a stranger who raced the client to the port must
    /// not leave with a ticket that would pass), and the session's own tag otherwise.
    fn seal(&self, value: &[u8]) -> Option<Vec<u8>> {
        let tag = match &self.data {
            None => self.tag,
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
    gate: Arc<Gate>,
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
/// issues session tickets, and the bases of its data connections' configurations (those
/// that send data issue one ticket, those that receive none).
pub(crate) struct SessionKeys {
    server: Arc<ServerTls>,
    tag: u64,
    pub control: Arc<ServerConfig>,
    data_send: ServerConfig,
    data_receive: ServerConfig,
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
        let mut data_send = base.clone();
        data_send.ticketer = ticketer;
        data_send.send_tls13_tickets = 1;
        let mut data_receive = data_send.clone();
        data_receive.send_tls13_tickets = 0;
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
            data_send,
            data_receive,
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

    /// The configuration of one data connection of this session, for a transfer that
    /// sends (or receives), by the session's client at `ip`. Each data connection has its
    /// own, as its gate records what it admitted.
    pub fn data(&self, sending: bool, ip: IpAddr, reuse_required: bool) -> DataKeys {
        let mut config = if sending {
            self.data_send.clone()
        } else {
            self.data_receive.clone()
        };
        let gate = Arc::new(Gate {
            server: Arc::clone(&self.server),
            tag: self.tag,
            data: Some(DataGate {
                user: self.user.clone(),
                ip,
                reuse_required,
                admitted: Mutex::new(None),
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

/// A rustls server connection over a non-blocking TCP socket.
pub(crate) struct TlsStream {
    sock: TcpStream,
    conn: ServerConnection,
    /// Data connections under the reuse policy, until the verdict is yes: what the handshake
    /// resumed, to be judged once it is done. No plaintext moves either way before then.
    reuse_check: Option<Arc<Gate>>,
    /// The reuse verdict has waited for an owner's login (logged once).
    waited: bool,
    /// A TCP FIN between two records ends the stream like a close_notify (data
    /// connections, unless the policy requires close_notify).
    fin_ends_stream: bool,
    /// Data connections: the record boundaries of everything handed to rustls, to tell a
    /// stream that stopped between records from one cut inside a record.
    framing: Option<RecordCut>,
    /// The first failure, returned again by every later call.
    failed: Option<TlsError>,
    /// TLS bytes read from the socket, not yet handed to rustls: `inbuf[in_pos..in_len]`.
    inbuf: Vec<u8>,
    in_pos: usize,
    in_len: usize,
    /// The socket reported end of file (and rustls has been told).
    eof: bool,
    /// CCC: hand rustls one record at a time, so that nothing after the client's
    /// close_notify (plaintext from then on) is swallowed.
    ccc: Option<RecordCut>,
}

/// Tracks TLS record boundaries in the bytes fed to rustls during CCC.
#[derive(Debug, Default)]
struct RecordCut {
    /// Header bytes of the current record seen so far (up to 5).
    header: Vec<u8>,
    /// Body bytes of the current record still to come, once the header is complete.
    body_left: usize,
    /// The client's close_notify has been processed: what follows is plaintext.
    peer_closed: bool,
}

impl RecordCut {
    /// Whether the bytes consumed so far end exactly at the end of a record.
    fn at_boundary(&self) -> bool {
        self.header.is_empty()
    }

    /// How many of `avail` may be fed without crossing the end of the current record.
    fn limit(&self, avail: &[u8]) -> usize {
        if self.header.len() < 5 {
            let need = 5 - self.header.len();
            if avail.len() <= need {
                return avail.len();
            }
            let mut header = self.header.clone();
            header.extend_from_slice(&avail[..need]);
            let body = usize::from(u16::from_be_bytes([header[3], header[4]]));
            need + body.min(avail.len() - need)
        } else {
            self.body_left.min(avail.len())
        }
    }

    /// Accounts for `fed` bytes handed to rustls.
    fn consume(&mut self, mut fed: &[u8]) {
        while !fed.is_empty() {
            if self.header.len() < 5 {
                let k = (5 - self.header.len()).min(fed.len());
                self.header.extend_from_slice(&fed[..k]);
                fed = &fed[k..];
                if self.header.len() == 5 {
                    self.body_left =
                        usize::from(u16::from_be_bytes([self.header[3], self.header[4]]));
                }
            } else {
                let k = self.body_left.min(fed.len());
                self.body_left -= k;
                fed = &fed[k..];
            }
            if self.header.len() == 5 && self.body_left == 0 {
                self.header.clear();
            }
        }
    }
}

impl fmt::Debug for TlsStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsStream")
            .field("sock", &self.sock)
            .field("handshaking", &self.conn.is_handshaking())
            .field("failed", &self.failed)
            .finish_non_exhaustive()
    }
}

fn would_block(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock
}

/// How a TLS stream is used.
#[derive(Debug)]
pub(crate) enum Role<'a> {
    Control,
    Data {
        /// The connection's keys.
        keys: &'a DataKeys,
        /// Fail the handshake unless it resumed a session this connection may resume.
        require_resumption: bool,
        /// A TCP FIN between two records is the end of the stream.
        fin_ends_stream: bool,
    },
}

impl TlsStream {
    /// A TLS stream for a data connection (larger buffers) or a control connection.
    pub fn new(sock: TcpStream, mut conn: ServerConnection, role: Role<'_>) -> TlsStream {
        let (data, reuse_check, fin_ends_stream) = match role {
            Role::Control => (false, None, false),
            Role::Data {
                keys,
                require_resumption,
                fin_ends_stream,
            } => (
                true,
                require_resumption.then(|| Arc::clone(&keys.gate)),
                fin_ends_stream,
            ),
        };
        if data {
            conn.set_buffer_limit(Some(DATA_BUFFER_LIMIT));
        }
        let read_size = if data {
            DATA_READ_SIZE
        } else {
            CONTROL_READ_SIZE
        };
        TlsStream {
            sock,
            conn,
            reuse_check,
            waited: false,
            fin_ends_stream,
            framing: data.then(RecordCut::default),
            failed: None,
            inbuf: vec![0; read_size],
            in_pos: 0,
            in_len: 0,
            eof: false,
            ccc: None,
        }
    }

    pub fn tcp(&self) -> &TcpStream {
        &self.sock
    }

    pub fn tcp_mut(&mut self) -> &mut TcpStream {
        &mut self.sock
    }

    /// Whether the handshake, or the verdict on the session it resumed, is still to come.
    pub fn is_handshaking(&self) -> bool {
        self.failed.is_none() && (self.conn.is_handshaking() || self.reuse_check.is_some())
    }

    /// Whether the handshake is done and the verdict on what it resumed waits for the
    /// session's owner to log in (see [`Verdict::Wait`]).
    pub fn awaiting_owner(&self) -> bool {
        self.failed.is_none() && !self.conn.is_handshaking() && self.reuse_check.is_some()
    }

    /// The reuse verdict, once the handshake is done: `Ok(true)` when the connection may
    /// carry data (resumed a session it may resume, or nothing is required), `Ok(false)`
    /// while the handshake or the verdict is still to come, an error when it is refused
    /// (after a close_notify, the only alert rustls lets us choose).
    fn settle(&mut self) -> io::Result<bool> {
        let Some(gate) = &self.reuse_check else {
            return Ok(true);
        };
        if self.conn.is_handshaking() {
            return Ok(false);
        }
        let verdict = if self.conn.handshake_kind() == Some(HandshakeKind::Resumed) {
            gate.verdict()
        } else {
            Verdict::No
        };
        match verdict {
            Verdict::Yes => {
                self.reuse_check = None;
                Ok(true)
            }
            Verdict::Wait => {
                if !self.waited {
                    self.waited = true;
                    log::debug!(
                        target: crate::logger::LOG,
                        "{} TLS data connection resumed a session of a control connection that has not logged in yet; waiting for its login",
                        self.sock
                            .peer_addr()
                            .map_or_else(|_| "?".to_string(), |a| a.to_string())
                    );
                }
                Ok(false)
            }
            Verdict::No => {
                self.conn.send_close_notify();
                let _ = self.write_out();
                Err(self.fail(TlsError::NoSessionReuse))
            }
        }
    }

    pub fn wants_write(&self) -> bool {
        self.failed.is_none() && self.conn.wants_write()
    }

    fn fail(&mut self, e: TlsError) -> io::Error {
        if self.failed.is_none() {
            self.failed = Some(e.clone());
        }
        io::Error::other(e)
    }

    fn check(&self) -> io::Result<()> {
        match &self.failed {
            Some(e) => Err(io::Error::other(e.clone())),
            None => Ok(()),
        }
    }

    /// Writes queued TLS records until none are left (`Ok`) or the socket blocks
    /// (`WouldBlock`).
    fn write_out(&mut self) -> io::Result<()> {
        while self.conn.wants_write() {
            match self.conn.write_tls(&mut self.sock) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Reads one batch of TLS records from the socket and processes them. `Ok(true)` when
    /// something was read (or the peer closed), `Ok(false)` when the socket had nothing or
    /// rustls wants no input now.
    fn read_in(&mut self) -> io::Result<bool> {
        if !self.conn.wants_read() {
            return Ok(false);
        }
        if self.in_pos == self.in_len {
            if self.eof {
                return Ok(false);
            }
            match self.sock.read(&mut self.inbuf) {
                Ok(0) => {
                    // Tell rustls: an empty read is its end of file.
                    self.eof = true;
                    self.conn.read_tls(&mut io::empty())?;
                }
                Ok(n) => {
                    self.in_pos = 0;
                    self.in_len = n;
                }
                Err(e) if would_block(&e) => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(true),
                Err(e) => return Err(e),
            }
        }
        if self.ccc.as_ref().is_some_and(|c| c.peer_closed) {
            // The rest is plaintext for the control channel, not TLS.
            return Ok(false);
        }
        if self.in_pos < self.in_len {
            let avail = &self.inbuf[self.in_pos..self.in_len];
            let limit = self.ccc.as_ref().map_or(avail.len(), |c| c.limit(avail));
            let mut pending = &avail[..limit];
            let n = self.conn.read_tls(&mut pending)?;
            let fed = &self.inbuf[self.in_pos..self.in_pos + n];
            if let Some(c) = self.ccc.as_mut() {
                c.consume(fed);
            }
            if let Some(f) = self.framing.as_mut() {
                f.consume(fed);
            }
            self.in_pos += n;
        }
        match self.conn.process_new_packets() {
            Ok(state) => {
                if let Some(c) = self.ccc.as_mut() {
                    c.peer_closed |= state.peer_has_closed();
                }
            }
            Err(e) => {
                // Send the alert rustls queued, if the socket takes it.
                let _ = self.write_out();
                return Err(self.fail(TlsError::Protocol(e.to_string())));
            }
        }
        if self.eof && self.conn.is_handshaking() {
            // Nothing more will come: fail now rather than at the handshake timeout.
            return Err(self.fail(TlsError::Protocol(
                "connection closed during the handshake".to_string(),
            )));
        }
        if self.reuse_check.is_some() && !self.conn.is_handshaking() {
            // Refuse at once, before any plaintext could move.
            self.settle()?;
        }
        Ok(true)
    }

    /// Moves what can move both ways: queued records out, then records in. Socket errors
    /// other than `WouldBlock` are returned.
    fn pump(&mut self) -> io::Result<bool> {
        match self.write_out() {
            Ok(()) => {}
            Err(e) if would_block(&e) => {}
            Err(e) => return Err(e),
        }
        let read = self.read_in()?;
        if read {
            match self.write_out() {
                Ok(()) => {}
                Err(e) if would_block(&e) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(read)
    }

    /// Advances the handshake as far as the socket allows: `Ok(true)` once it is done (and
    /// the resumption check passed), `Ok(false)` when it waits for the socket.
    pub fn handshake(&mut self) -> io::Result<bool> {
        self.check()?;
        while self.conn.is_handshaking() {
            if !self.pump()? {
                return Ok(false);
            }
        }
        self.check()?;
        self.settle()
    }

    /// CCC accepted: from now on read record by record, so that nothing after the client's
    /// close_notify is taken for TLS. Set before the 200 goes out, since a client may send
    /// its close_notify as soon as it reads the 200.
    pub fn cut_records(&mut self) {
        if self.ccc.is_none() {
            self.ccc = Some(RecordCut::default());
        }
    }

    /// CCC: sends our close_notify (the 200 is out).
    pub fn begin_ccc(&mut self) {
        self.cut_records();
        self.conn.send_close_notify();
        let _ = self.write_out();
    }

    /// Whether the client's close_notify has arrived after [`begin_ccc`](Self::begin_ccc).
    pub fn ccc_done(&self) -> bool {
        self.ccc.as_ref().is_some_and(|c| c.peer_closed)
    }

    /// The plain socket and the bytes already read past the client's close_notify.
    pub fn into_plain(self) -> (TcpStream, Vec<u8>) {
        let rest = self.inbuf[self.in_pos..self.in_len].to_vec();
        (self.sock, rest)
    }

    /// See [`Stream::close_notify`](super::Stream::close_notify).
    pub fn close_notify(&mut self) -> io::Result<bool> {
        self.check()?;
        // An empty file or listing is done before the handshake is: finish that first, or
        // the peer gets a closed connection instead of an empty TLS stream.
        while self.conn.is_handshaking() {
            if !self.pump()? {
                return Ok(false);
            }
        }
        if !self.settle()? {
            return Ok(false);
        }
        self.conn.send_close_notify();
        match self.write_out() {
            Ok(()) => Ok(true),
            Err(e) if would_block(&e) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

impl TlsStream {
    /// Whether the peer's TCP FIN, without a close_notify, is the end of the stream: the
    /// policy allows it, and the stream stopped between two records with every byte handed
    /// to rustls (a FIN inside a record cut the record).
    fn fin_ends_stream(&self) -> bool {
        self.fin_ends_stream
            && self.eof
            && self.in_pos == self.in_len
            && !self.conn.is_handshaking()
            && self.framing.as_ref().is_some_and(RecordCut::at_boundary)
    }
}

impl Read for TlsStream {
    /// Plaintext from the peer. `Ok(0)` after the peer's close_notify, or after a TCP FIN
    /// between two records where the policy takes that for the end (see the module
    /// documentation); any other close is `UnexpectedEof`, so a cut upload is never taken
    /// for a whole one.
    ///
    /// Fills `buf` as far as the records already read allow, so the caller (a file write per
    /// read) sees large chunks rather than one record at a time.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.check()?;
        let mut total = 0;
        // An error after some bytes were read is reported on the next call: the bytes go
        // first. TLS errors are latched; a socket error or end of file recurs.
        let give = |total: usize, e: io::Error| if total > 0 { Ok(total) } else { Err(e) };
        loop {
            // No plaintext before the reuse verdict (and so `total` is 0 here).
            if self.reuse_check.is_some() && !self.settle()? {
                if self.conn.is_handshaking() && self.pump()? {
                    continue;
                }
                // Blocked on the socket, or waiting for the owner's login: the data
                // channel's timer looks again.
                return Err(io::ErrorKind::WouldBlock.into());
            }
            match self.conn.reader().read(&mut buf[total..]) {
                Ok(0) => return Ok(total),
                Ok(n) => {
                    total += n;
                    if total == buf.len() {
                        return Ok(total);
                    }
                    continue;
                }
                Err(e) if would_block(&e) => {}
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof && self.fin_ends_stream() => {
                    if total == 0 {
                        log::info!(
                            target: crate::logger::LOG,
                            "{} TLS data connection ended with a TCP FIN and no close_notify; taken as the end of the upload",
                            self.sock
                                .peer_addr()
                                .map_or_else(|_| "?".to_string(), |a| a.to_string())
                        );
                    }
                    return Ok(total);
                }
                Err(e) => return give(total, e),
            }
            match self.pump() {
                Ok(true) => {}
                Ok(false) => return give(total, io::ErrorKind::WouldBlock.into()),
                Err(e) => return give(total, e),
            }
        }
    }
}

impl Write for TlsStream {
    /// Plaintext to the peer, queued in rustls and written out as far as the socket takes.
    /// Never `Ok(0)` for a non-empty buffer: `WouldBlock` while rustls' queue is full.
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.check()?;
        if buf.is_empty() {
            return Ok(0);
        }
        // During the handshake the peer's messages must be read for it to finish. No
        // plaintext is queued before it has finished and passed the resumption check: rustls
        // would send queued plaintext the moment the handshake completes, to a peer that may
        // be about to be refused.
        while self.conn.is_handshaking() {
            if !self.pump()? {
                // The socket blocked (read or write): its edge wakes us.
                return Err(io::ErrorKind::WouldBlock.into());
            }
        }
        if !self.settle()? {
            // Waiting for the owner's login: the data channel's timer looks again.
            return Err(io::ErrorKind::WouldBlock.into());
        }
        // Two rounds at most: see below.
        for _ in 0..2 {
            let n = self.conn.writer().write(buf)?;
            let out = self.write_out();
            if n > 0 {
                return match out {
                    Err(e) if !would_block(&e) => Err(e),
                    _ => Ok(n),
                };
            }
            match out {
                // rustls' queue was full and the socket has just taken all of it: there is
                // room now. WouldBlock here would wait for an edge that a socket that never
                // blocked does not send.
                Ok(()) if !self.conn.is_handshaking() => continue,
                Ok(()) => return Err(io::ErrorKind::WouldBlock.into()),
                Err(e) => return Err(e),
            }
        }
        Err(io::Error::other(TlsError::Protocol(
            "the connection takes no more data".to_string(),
        )))
    }

    /// Writes queued records; reads nothing, so no plaintext can arrive unseen.
    fn flush(&mut self) -> io::Result<()> {
        self.check()?;
        self.write_out()
    }
}
