//! FTPS (RFC 4217, FTP over TLS): the settings and policies, and the socket type that the
//! control and data channels read and write through, plain or TLS.
//!
//! Before working on this file read RFC 4217 (AUTH TLS, PBSZ, PROT and the replies of each),
//! RFC 8446 section 4.6.1 (TLS 1.3 session tickets) and section 6.1 (close_notify), and
//! docs/ftps.md (which clients need which policy).
//!
//! The policies ([`TlsConfig`], [`TlsRequired`]) are compiled in every build, so the session
//! decides AUTH, PBSZ and PROT the same way with or without TLS support; they live in
//! `policy.rs`, which imports no mio, so the session core that reads them stays clear of the
//! reactor (the crate's `src/config.rs` imports them from there, not from this file). The
//! rustls machinery is behind the `tls` cargo feature; without it a [`TlsConfig`] cannot be
//! made, `Config::tls` stays `None`, and AUTH is answered with 502. It is in three files
//! beside this one:
//!
//! - `config.rs` (here, not the crate's): the constructors of [`TlsConfig`], and the
//!   certificate and key loading;
//! - `reuse.rs`: which TLS sessions a data connection may resume, and each FTP session's
//!   keys (the tickets and session cache entries its connections issue);
//! - `stream.rs`: rustls driven on a non-blocking socket, and where a TLS upload ends.

#[cfg(feature = "tls")]
mod config;
pub(crate) mod policy;
#[cfg(feature = "tls")]
mod reuse;
#[cfg(feature = "tls")]
mod stream;

use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use mio::event::Source;
use mio::net::TcpStream;
use mio::{Interest, Registry, Token};

pub use policy::{TlsConfig, TlsRequired};
#[cfg(feature = "tls")]
use reuse::{DataKeys, SessionKeys as Keys};
#[cfg(feature = "tls")]
pub use stream::TlsError;
#[cfg(feature = "tls")]
use stream::{Role, TlsStream};

/// The TLS keys of one session: its control connection's configuration and the one its
/// data connections use. Empty without TLS support.
#[derive(Debug, Default)]
pub(crate) struct SessionTls {
    #[cfg(feature = "tls")]
    keys: Option<Keys>,
}

/// What a data channel needs to run TLS: its own configuration (made from the session's),
/// the policy, and the direction of the transfer once known.
#[derive(Debug)]
pub(crate) struct DataTls {
    #[cfg(feature = "tls")]
    keys: DataKeys,
    #[cfg(feature = "tls")]
    reuse_required: bool,
    /// Whether the transfer sends; `None` for a handshake that starts before the transfer
    /// command (it then issues its ticket, or none, once the command has come).
    #[cfg(feature = "tls")]
    sending: Option<bool>,
    #[cfg(feature = "tls")]
    fin_ends_stream: bool,
    #[cfg(not(feature = "tls"))]
    never: std::convert::Infallible,
    /// Handshake timeout.
    pub timeout: Duration,
}

impl SessionTls {
    /// The data channel settings for a transfer that sends (`Some(true)`), receives
    /// (`Some(false)`) or is not known yet (`None`), by the session's client at `ip`, once
    /// the control connection has keys.
    pub fn data(&self, config: &TlsConfig, sending: Option<bool>, ip: IpAddr) -> Option<DataTls> {
        #[cfg(feature = "tls")]
        {
            let keys = self.keys.as_ref()?;
            let reuse_required = config.data_session_reuse_required;
            Some(DataTls {
                keys: keys.data(ip, reuse_required),
                reuse_required,
                sending,
                fin_ends_stream: !config.data_close_notify_required,
                timeout: config.handshake_timeout,
            })
        }
        #[cfg(not(feature = "tls"))]
        {
            let _ = (config, sending, ip);
            None
        }
    }

    /// Records who the session is logged in as: data connections of this user from the
    /// same address may resume the TLS sessions of this control connection.
    pub fn note_user(&mut self, user: Option<&str>) {
        #[cfg(feature = "tls")]
        if let Some(keys) = self.keys.as_mut() {
            keys.note_user(user);
        }
        #[cfg(not(feature = "tls"))]
        let _ = user;
    }
}

impl DataTls {
    /// The transfer command has come before the connection: whether it sends.
    pub fn set_sending(&mut self, sending: bool) {
        #[cfg(feature = "tls")]
        {
            self.sending = Some(sending);
        }
        #[cfg(not(feature = "tls"))]
        {
            let _ = sending;
            match self.never {}
        }
    }
}

/// A connected socket, plain or TLS. Registers with mio as the TCP socket it wraps, so
/// switching to TLS (AUTH TLS) needs no re-registration.
#[derive(Debug)]
pub(crate) enum Stream {
    Plain(TcpStream),
    #[cfg(feature = "tls")]
    Tls(Box<TlsStream>),
    /// Only while the socket moves from plain to TLS, inside one call; every operation
    /// fails with `NotConnected`.
    Switching,
}

fn not_connected() -> io::Error {
    io::ErrorKind::NotConnected.into()
}

impl Stream {
    fn tcp(&self) -> io::Result<&TcpStream> {
        match self {
            Stream::Plain(s) => Ok(s),
            #[cfg(feature = "tls")]
            Stream::Tls(t) => Ok(t.tcp()),
            Stream::Switching => Err(not_connected()),
        }
    }

    fn tcp_mut(&mut self) -> io::Result<&mut TcpStream> {
        match self {
            Stream::Plain(s) => Ok(s),
            #[cfg(feature = "tls")]
            Stream::Tls(t) => Ok(t.tcp_mut()),
            Stream::Switching => Err(not_connected()),
        }
    }

    /// The plain socket, for sendfile(2); `None` under TLS.
    pub fn plain(&mut self) -> Option<&mut TcpStream> {
        match self {
            Stream::Plain(s) => Some(s),
            _ => None,
        }
    }

    pub fn is_tls(&self) -> bool {
        !matches!(self, Stream::Plain(_))
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.tcp()?.local_addr()
    }

    /// Whether the TLS handshake is done and the session reuse verdict waits for the login
    /// of the control connection whose session the data connection resumed.
    pub fn awaiting_owner(&self) -> bool {
        match self {
            #[cfg(feature = "tls")]
            Stream::Tls(t) => t.awaiting_owner(),
            _ => false,
        }
    }

    /// Whether a TLS handshake (or, on a data connection, its session reuse verdict) is
    /// still to come.
    pub fn is_handshaking(&self) -> bool {
        match self {
            #[cfg(feature = "tls")]
            Stream::Tls(t) => t.is_handshaking(),
            _ => false,
        }
    }

    /// Whether the TLS layer has failed (a handshake or record error, a refused session
    /// reuse); every later call returns that error.
    pub fn tls_failed(&self) -> bool {
        match self {
            #[cfg(feature = "tls")]
            Stream::Tls(t) => t.has_failed(),
            _ => false,
        }
    }

    /// Whether TLS bytes are still waiting for the socket.
    pub fn wants_write(&self) -> bool {
        match self {
            #[cfg(feature = "tls")]
            Stream::Tls(t) => t.wants_write(),
            _ => false,
        }
    }

    /// Queues a TLS close_notify (once) and writes what the socket takes. `Ok(true)` once
    /// everything, the alert included, is on the wire; `Ok(false)` when the socket blocked.
    /// Always `Ok(true)` for a plain socket.
    pub fn close_notify(&mut self) -> io::Result<bool> {
        match self {
            #[cfg(feature = "tls")]
            Stream::Tls(t) => t.close_notify(),
            _ => Ok(true),
        }
    }

    /// Switches the control connection of a session to TLS as server (after 234, or at
    /// once for implicit FTPS), making the session's keys for its client at `ip`.
    pub fn start_control_tls(
        self,
        config: &TlsConfig,
        keys: &mut SessionTls,
        ip: IpAddr,
    ) -> Result<Stream, (Stream, String)> {
        #[cfg(feature = "tls")]
        {
            let made = match keys.keys.take() {
                Some(k) => Ok(k),
                None => Keys::new(&config.inner, ip),
            };
            match made {
                Ok(k) => {
                    let conn = rustls::ServerConnection::new(k.control.clone());
                    keys.keys = Some(k);
                    match (self, conn) {
                        (Stream::Plain(s), Ok(conn)) => Ok(Stream::Tls(Box::new(TlsStream::new(
                            s,
                            conn,
                            Role::Control,
                        )))),
                        (s, Ok(_)) => Err((s, "already TLS".to_string())),
                        (s, Err(e)) => Err((s, e.to_string())),
                    }
                }
                Err(e) => Err((self, e.to_string())),
            }
        }
        #[cfg(not(feature = "tls"))]
        {
            let _ = (keys, ip);
            match config.inner {}
        }
    }

    /// The transfer command of a TLS data connection started early has come: whether it
    /// sends (see [`TlsStream::set_sending`]). Nothing for a plain stream.
    pub fn set_sending(&mut self, sending: bool) {
        #[cfg(feature = "tls")]
        if let Stream::Tls(t) = self {
            t.set_sending(sending);
        }
        #[cfg(not(feature = "tls"))]
        let _ = sending;
    }

    /// CCC accepted: see [`TlsStream::cut_records`].
    pub fn cut_records(&mut self) {
        #[cfg(feature = "tls")]
        if let Stream::Tls(t) = self {
            t.cut_records();
        }
    }

    /// CCC: see [`TlsStream::begin_ccc`]. A plain stream has nothing to do.
    pub fn begin_ccc(&mut self) {
        #[cfg(feature = "tls")]
        if let Stream::Tls(t) = self {
            t.begin_ccc();
        }
    }

    /// Whether a CCC has seen the client's close_notify.
    pub fn ccc_done(&self) -> bool {
        match self {
            #[cfg(feature = "tls")]
            Stream::Tls(t) => t.ccc_done(),
            _ => false,
        }
    }

    /// Back to plaintext after CCC: the plain stream and the bytes that followed the
    /// client's close_notify.
    pub fn end_tls(self) -> (Stream, Vec<u8>) {
        match self {
            #[cfg(feature = "tls")]
            Stream::Tls(t) => {
                let (sock, rest) = t.into_plain();
                (Stream::Plain(sock), rest)
            }
            other => (other, Vec::new()),
        }
    }

    /// Advances a TLS handshake with no application data: `Ok(true)` when there is none to
    /// run (plain) or it is done, `Ok(false)` while it waits for the socket.
    pub fn handshake(&mut self) -> io::Result<bool> {
        match self {
            #[cfg(feature = "tls")]
            Stream::Tls(t) => t.handshake(),
            _ => Ok(true),
        }
    }

    /// Switches a data connection to TLS as server.
    pub fn start_data_tls(self, tls: DataTls) -> Result<Stream, (Stream, String)> {
        #[cfg(feature = "tls")]
        {
            let conn = rustls::ServerConnection::new(std::sync::Arc::clone(&tls.keys.config));
            match (self, conn) {
                (Stream::Plain(s), Ok(conn)) => Ok(Stream::Tls(Box::new(TlsStream::new(
                    s,
                    conn,
                    Role::Data {
                        keys: &tls.keys,
                        require_resumption: tls.reuse_required,
                        fin_ends_stream: tls.fin_ends_stream,
                        sending: tls.sending,
                    },
                )))),
                (s, Ok(_)) => Err((s, "already TLS".to_string())),
                (s, Err(e)) => Err((s, e.to_string())),
            }
        }
        #[cfg(not(feature = "tls"))]
        {
            match tls.never {}
        }
    }
}

/// The reason a data connection is refused for not resuming its control connection's TLS
/// session (the text of the 522).
pub(crate) fn no_session_reuse() -> String {
    #[cfg(feature = "tls")]
    {
        TlsError::NoSessionReuse.to_string()
    }
    #[cfg(not(feature = "tls"))]
    {
        "Data connection must resume the TLS session of the control connection".to_string()
    }
}

/// Whether an I/O error is a TLS failure (handshake, protocol, session reuse) rather than a
/// socket error; its text is then fit for a reply.
pub(crate) fn tls_failure(e: &io::Error) -> Option<String> {
    #[cfg(feature = "tls")]
    {
        e.get_ref()
            .and_then(|inner| inner.downcast_ref::<TlsError>())
            .map(|t| t.to_string())
    }
    #[cfg(not(feature = "tls"))]
    {
        let _ = e;
        None
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            #[cfg(feature = "tls")]
            Stream::Tls(t) => t.read(buf),
            Stream::Switching => Err(not_connected()),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            #[cfg(feature = "tls")]
            Stream::Tls(t) => t.write(buf),
            Stream::Switching => Err(not_connected()),
        }
    }

    /// Writes pending TLS records; `WouldBlock` while some are left.
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            #[cfg(feature = "tls")]
            Stream::Tls(t) => t.flush(),
            Stream::Switching => Err(not_connected()),
        }
    }
}

impl Source for Stream {
    fn register(
        &mut self,
        registry: &Registry,
        token: Token,
        interests: Interest,
    ) -> io::Result<()> {
        self.tcp_mut()?.register(registry, token, interests)
    }

    fn reregister(
        &mut self,
        registry: &Registry,
        token: Token,
        interests: Interest,
    ) -> io::Result<()> {
        self.tcp_mut()?.reregister(registry, token, interests)
    }

    fn deregister(&mut self, registry: &Registry) -> io::Result<()> {
        self.tcp_mut()?.deregister(registry)
    }
}

/// The earlier of two optional deadlines.
pub(crate) fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}
