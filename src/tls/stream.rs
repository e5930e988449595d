//! TLS over a non-blocking mio socket: a rustls `ServerConnection` driven without ever
//! blocking, the per-session keys, and the certificate loading.
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
//! Each session gets its own ticket key and its own session cache, shared by its control
//! connection and its data connections and by nobody else. A data connection whose handshake
//! rustls reports as resumed therefore resumed a session made on this session's control
//! connection (or on an earlier data connection of it, which itself resumed one): no other
//! client holds a ticket or session id that these keys accept.
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

use std::fmt;
use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::Arc;

use mio::net::TcpStream;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ProducesTickets, ServerSessionMemoryCache};
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
/// Sessions (TLS 1.2 session ids) remembered per FTP session.
const SESSION_CACHE: usize = 32;
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
                "TLS session reuse required: the data connection must resume the control connection's session"
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

/// One FTP session's TLS configurations: the control connection's, which issues session
/// tickets, and the data connections', which resume them; those that send data issue one
/// ticket, those that receive none. All share a ticket key and a session cache of this
/// session alone.
#[derive(Debug)]
pub(crate) struct SessionKeys {
    pub control: Arc<ServerConfig>,
    pub data_send: Arc<ServerConfig>,
    pub data_receive: Arc<ServerConfig>,
}

impl SessionKeys {
    pub fn new(base: &ServerConfig) -> Result<SessionKeys, TlsError> {
        let ticketer: Arc<dyn ProducesTickets> =
            rustls::crypto::ring::Ticketer::new().map_err(|e| TlsError::Config(e.to_string()))?;
        let cache = ServerSessionMemoryCache::new(SESSION_CACHE);
        let mut control = base.clone();
        control.ticketer = Arc::clone(&ticketer);
        control.session_storage = cache.clone();
        control.max_early_data_size = 0;
        control.send_tls13_tickets = CONTROL_TICKETS;
        let mut data_send = control.clone();
        data_send.send_tls13_tickets = 1;
        let mut data_receive = control.clone();
        data_receive.send_tls13_tickets = 0;
        Ok(SessionKeys {
            control: Arc::new(control),
            data_send: Arc::new(data_send),
            data_receive: Arc::new(data_receive),
        })
    }
}

/// A rustls server connection over a non-blocking TCP socket.
pub(crate) struct TlsStream {
    sock: TcpStream,
    conn: ServerConnection,
    /// Fail the handshake unless it resumed a session (data connections under the policy).
    require_resumption: bool,
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

impl TlsStream {
    /// A TLS stream for a data connection (`data`: larger buffers) or a control connection.
    pub fn new(
        sock: TcpStream,
        mut conn: ServerConnection,
        data: bool,
        require_resumption: bool,
    ) -> TlsStream {
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
            require_resumption,
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

    pub fn is_handshaking(&self) -> bool {
        self.failed.is_none() && self.conn.is_handshaking()
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
            if let Some(c) = self.ccc.as_mut() {
                c.consume(&self.inbuf[self.in_pos..self.in_pos + n]);
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
        if self.require_resumption
            && !self.conn.is_handshaking()
            && self.conn.handshake_kind() != Some(HandshakeKind::Resumed)
        {
            // rustls has no public way to send a fatal alert of our choosing; a
            // close_notify ends the refused connection politely.
            self.conn.send_close_notify();
            let _ = self.write_out();
            return Err(self.fail(TlsError::NoSessionReuse));
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
        Ok(true)
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
        self.conn.send_close_notify();
        match self.write_out() {
            Ok(()) => Ok(true),
            Err(e) if would_block(&e) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

impl Read for TlsStream {
    /// Plaintext from the peer. `Ok(0)` only after the peer's close_notify; a TCP close
    /// without it is `UnexpectedEof`, so a truncated upload is never taken for a whole one.
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
