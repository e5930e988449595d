//! TLS over a non-blocking mio socket: a rustls `ServerConnection` driven without ever
//! blocking ([`TlsStream`]), the end of a TLS upload, CCC's way back to plaintext, and the
//! TLS failures of it all ([`TlsError`]). Which sessions a data connection may resume is
//! decided in `reuse.rs`; the stream asks for that verdict once the handshake is done, and
//! moves no plaintext before it is yes.
//!
//! Before working on this file read RFC 8446 section 5.1 (the record layer, whose 5-byte
//! record header [`RecordCut`] follows) and section 6.1 (close_notify), and RFC 4217
//! section 6 (CCC).
//!
//! # Driving rustls on an edge-triggered socket
//!
//! Every call moves as much as the socket takes in both directions (handshake messages go
//! out while data comes in) and returns `WouldBlock` only when the socket itself did, so the
//! next readiness edge always has something to wake up for. A TLS error writes its alert,
//! if the socket takes it, and is returned as an `io::Error` carrying a [`TlsError`]; every
//! call after that fails the same way, so a broken connection cannot spin.
//!
//! # Holding the client's Finished until the direction is known
//!
//! A TLS 1.3 server makes its session tickets when it reads the client's Finished, and a
//! data connection may issue one only if it sends (see `reuse.rs`). Under PROT P the
//! handshake starts at connect, before the transfer command; until that command tells the
//! direction, the stream feeds rustls the client's records only up to the first one of
//! content type application_data (23), which in a TLS 1.3 handshake is the encrypted
//! Finished. The client is not kept waiting: its side of the handshake is over once it has
//! sent that Finished. A HelloRetryRequest's second ClientHello, and every message of a
//! TLS 1.2 handshake, are handshake records and pass.
//!
//! # The end of an upload
//!
//! A receiving data connection ends at the client's close_notify. A TCP FIN without one
//! ends it too when the stream stopped between two TLS records and the policy allows it
//! (`data_close_notify_required` off, the default): many clients close that way, and
//! vsftpd's author (`strict_ssl_read_eof`) and proftpd accept it. A FIN in the middle of a
//! record, a reset, or any FIN under the strict policy is a cut connection, never the end of
//! the file.

use std::fmt;
use std::io::{self, Read, Write};
use std::sync::Arc;

use mio::net::TcpStream;
use rustls::{HandshakeKind, ProtocolVersion, ServerConnection};

use super::reuse::{DataKeys, Gate, Verdict};

/// How much TLS output a data connection may queue: large enough for full 16 KiB records
/// in a row, small enough to keep the per-turn budget meaningful.
const DATA_BUFFER_LIMIT: usize = 256 * 1024;
/// The TLS record content type of application data, and of every encrypted TLS 1.3 record.
const APPLICATION_DATA: u8 = 23;
/// Socket reads on data connections: rustls reads at most one record (16 KiB) at a time,
/// so TLS records are read from the socket in batches of this size and handed over from
/// memory.
const DATA_READ_SIZE: usize = 256 * 1024;
/// The same for control connections, whose lines are short.
const CONTROL_READ_SIZE: usize = 4 * 1024;

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

/// A rustls server connection over a non-blocking TCP socket.
pub(crate) struct TlsStream {
    sock: TcpStream,
    conn: ServerConnection,
    /// Data connections under the reuse policy, until the verdict is yes: what the handshake
    /// resumed, to be judged once it is done. No plaintext moves either way before then.
    reuse_check: Option<Arc<Gate>>,
    /// The reuse verdict has waited for an owner's login (logged once).
    waited: bool,
    /// Data connections: the gate that decides whether the connection issues tickets.
    tickets: Option<Arc<Gate>>,
    /// Data connections: whether the transfer sends (`None` until the transfer command). The
    /// client's Finished waits for it (see the module documentation).
    sending: Option<bool>,
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

    /// Where, in `avail` (the bytes that follow those consumed), the first record of content
    /// type `kind` begins; `None` when no such record begins within `avail`.
    fn next_record_of(&self, avail: &[u8], kind: u8) -> Option<usize> {
        // The end of the current record, whose type byte has been consumed already.
        let mut pos = if self.header.is_empty() {
            0
        } else if self.header.len() < 5 {
            let need = 5 - self.header.len();
            if avail.len() < need {
                return None;
            }
            let mut header = self.header.clone();
            header.extend_from_slice(&avail[..need]);
            need + usize::from(u16::from_be_bytes([header[3], header[4]]))
        } else {
            self.body_left
        };
        while pos < avail.len() {
            if avail[pos] == kind {
                return Some(pos);
            }
            let len = avail.get(pos + 3..pos + 5)?;
            pos += 5 + usize::from(u16::from_be_bytes([len[0], len[1]]));
        }
        None
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

/// Sends at once the ACK the kernel holds back for data already read (TCP_QUICKACK, tcp(7));
/// a failure only leaves the ACK to the delayed-ACK timer.
fn quick_ack(sock: &TcpStream) {
    let _ = crate::sockopt::enable(sock, libc::IPPROTO_TCP, libc::TCP_QUICKACK);
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
        /// Whether the transfer sends, if known yet.
        sending: Option<bool>,
    },
}

impl TlsStream {
    /// A TLS stream for a data connection (larger buffers) or a control connection.
    pub fn new(sock: TcpStream, mut conn: ServerConnection, role: Role<'_>) -> TlsStream {
        let (data, reuse_check, tickets, fin_ends_stream, sending) = match role {
            Role::Control => (false, None, None, false, None),
            Role::Data {
                keys,
                require_resumption,
                fin_ends_stream,
                sending,
            } => (
                true,
                require_resumption.then(|| Arc::clone(&keys.gate)),
                Some(Arc::clone(&keys.gate)),
                fin_ends_stream,
                sending,
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
            tickets,
            sending,
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

    /// The transfer command has come: whether it sends. Releases the client's Finished, if
    /// it was held; the caller drives the stream next.
    pub fn set_sending(&mut self, sending: bool) {
        self.sending = Some(sending);
    }

    /// How many of `avail` (unread TLS bytes) may be handed to rustls during a data
    /// connection's handshake: all, unless a TLS 1.3 Finished is among them and the direction
    /// is not known yet (see the module documentation). Turns an upload's tickets off
    /// before its Finished is read.
    fn handshake_limit(&self, avail: &[u8]) -> usize {
        let (Some(gate), Some(framing)) = (&self.tickets, &self.framing) else {
            return avail.len();
        };
        if !self.conn.is_handshaking() {
            return avail.len();
        }
        let Some(at) = framing.next_record_of(avail, APPLICATION_DATA) else {
            return avail.len();
        };
        match self.sending {
            None => at,
            Some(sending) => {
                if !sending && self.conn.protocol_version() == Some(ProtocolVersion::TLSv1_3) {
                    gate.refuse_tickets();
                }
                avail.len()
            }
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

    /// Whether a failure is latched (see `failed`).
    pub fn has_failed(&self) -> bool {
        self.failed.is_some()
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
                Err(e) if would_block(&e) => {
                    if self.sending == Some(false) && !self.conn.is_handshaking() {
                        // An upload has drained the socket: acknowledge now what the kernel
                        // would acknowledge after its delayed-ACK timer (up to 40 ms). A
                        // client that leaves Nagle's algorithm on holds its close_notify, a
                        // small record, until its data is acknowledged, so each upload would
                        // end that much later (Python's ftplib does).
                        quick_ack(&self.sock);
                    }
                    return Ok(false);
                }
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
            let limit = match &self.ccc {
                Some(c) => c.limit(avail),
                None => self.handshake_limit(avail),
            };
            if limit == 0 {
                // The client's Finished waits for the transfer command.
                return Ok(false);
            }
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

#[cfg(test)]
mod tests {
    use super::{RecordCut, APPLICATION_DATA};

    /// A TLS record of content type `kind` with `len` body bytes.
    fn record(kind: u8, len: usize) -> Vec<u8> {
        let mut r = vec![kind, 3, 3, (len >> 8) as u8, (len & 0xff) as u8];
        r.resize(5 + len, 0xAA);
        r
    }

    #[test]
    fn finds_the_next_record_of_a_type_wherever_the_bytes_were_cut() {
        // What a TLS 1.3 client sends after the server's flight: a change_cipher_spec, then
        // its Finished in an application_data record.
        let mut bytes = record(20, 1);
        let at = bytes.len();
        bytes.extend(record(APPLICATION_DATA, 300));
        for split in 0..bytes.len() {
            let mut cut = RecordCut::default();
            cut.consume(&bytes[..split]);
            // Past its first byte, the record is the current one, not a next one.
            let want = (split <= at).then(|| at - split);
            assert_eq!(
                cut.next_record_of(&bytes[split..], APPLICATION_DATA),
                want,
                "cut at {split}"
            );
        }
        let cut = RecordCut::default();
        let handshake = record(22, 10);
        assert_eq!(cut.next_record_of(&handshake, APPLICATION_DATA), None);
        // A header cut short after a whole record: nothing known yet.
        let mut short = handshake.clone();
        short.extend_from_slice(&[22, 3]);
        assert_eq!(cut.next_record_of(&short, APPLICATION_DATA), None);
        short[handshake.len()] = APPLICATION_DATA;
        assert_eq!(
            cut.next_record_of(&short, APPLICATION_DATA),
            Some(handshake.len())
        );
    }
}
