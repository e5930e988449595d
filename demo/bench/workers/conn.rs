//! One client connection on the mio loop, plain TCP or TLS over rustls, and the client's
//! TLS settings.
//!
//! The TLS settings accept any certificate and any handshake signature: the program is a
//! load generator on 127.0.0.1, and checking the server's RSA signature would spend the
//! client's CPU on the work this benchmark wants the server to be the one doing. Each FTP
//! session gets a copy of the settings with a session store of its own ([`session_tls`]),
//! so that its control connection makes a full handshake, as a new client would, and its
//! data connections resume that session, as curl and lftp do.

use mio::net::TcpStream as MioStream;
use mio::{Interest, Registry, Token};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{ClientSessionMemoryCache, Resumption};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    ClientConfig, ClientConnection, DigitallySignedStruct, HandshakeKind, SignatureScheme,
};
use std::io::{self, BufRead, ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::os::unix::io::AsRawFd;
use std::sync::Arc;

pub type Res<T> = Result<T, String>;

/// A TLS session ticket store per FTP session: the control connection's tickets (ftpdlib
/// sends 8, OpenSSL 2) plus one per data connection.
const SESSION_STORE: usize = 16;

pub fn io_err(what: &str, e: io::Error) -> String {
    format!("{what}: {e}")
}

/// Accepts every certificate and every signature (see the module's comment).
#[derive(Debug)]
struct AnyCert(Vec<SignatureScheme>);

impl ServerCertVerifier for AnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn verify_tls13_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.clone()
    }
}

/// The client's TLS settings: rustls's defaults (TLS 1.3 and 1.2, ring), any certificate.
pub fn base_tls() -> Arc<ClientConfig> {
    let provider = rustls::crypto::ring::default_provider();
    let schemes = provider
        .signature_verification_algorithms
        .supported_schemes();
    let cfg = ClientConfig::builder_with_provider(Arc::new(provider))
        .with_safe_default_protocol_versions()
        .map(|b| {
            b.dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyCert(schemes)))
                .with_no_client_auth()
        });
    // The ring provider supports the default protocol versions: the builder cannot fail.
    Arc::new(cfg.expect("ring supports TLS 1.2 and 1.3"))
}

/// The settings of one FTP session: `base` with a session store of its own.
pub fn session_tls(base: &Arc<ClientConfig>) -> Arc<ClientConfig> {
    let mut c = ClientConfig::clone(base);
    c.resumption = Resumption::store(Arc::new(ClientSessionMemoryCache::new(SESSION_STORE)));
    Arc::new(c)
}

/// How a TLS handshake went, for the report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hs {
    Full,
    Resumed,
}

pub struct Conn {
    sock: MioStream,
    tls: Option<Box<ClientConnection>>,
    connected: bool,
    /// Plain bytes not yet written (plain connections only; rustls buffers its own).
    out: Vec<u8>,
    /// The handshake's kind, once reported by `take_handshake`.
    hs_told: bool,
    /// The server's close_notify is in and ours is on its way.
    closing: bool,
}

impl Conn {
    pub fn connect(addr: SocketAddr, reg: &Registry, token: Token) -> Res<Conn> {
        let mut sock = MioStream::connect(addr).map_err(|e| io_err("connect", e))?;
        reg.register(&mut sock, token, Interest::READABLE | Interest::WRITABLE)
            .map_err(|e| io_err("register", e))?;
        Ok(Conn {
            sock,
            tls: None,
            connected: false,
            out: Vec::new(),
            hs_told: false,
            closing: false,
        })
    }

    /// Closes with a reset (SO_LINGER 0). Normally called once the server has closed its
    /// end: its socket, in FIN_WAIT2, is then gone at once, and neither side keeps the
    /// connection in TIME_WAIT. Thousands of connections a second would otherwise leave
    /// tens of thousands of TIME_WAIT sockets, which slow down every later bind() of a
    /// passive port to port 0 (the kernel searches the ephemeral range past them), so
    /// that each run would pay for the runs before it.
    pub fn close(mut self, reg: &Registry) {
        let _ = reg.deregister(&mut self.sock);
        let linger = libc::linger {
            l_onoff: 1,
            l_linger: 0,
        };
        // SAFETY: the descriptor is open (owned by self.sock) and `linger` is a valid
        // struct linger of the size passed.
        unsafe {
            libc::setsockopt(
                self.sock.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_LINGER,
                (&linger as *const libc::linger).cast(),
                std::mem::size_of::<libc::linger>() as libc::socklen_t,
            );
        }
    }

    /// Starts TLS on this connection (its ClientHello goes out once connected).
    pub fn start_tls(&mut self, cfg: Arc<ClientConfig>) -> Res<()> {
        let name = ServerName::IpAddress(
            self.sock
                .peer_addr()
                .map(|a| a.ip())
                .unwrap_or(std::net::Ipv4Addr::LOCALHOST.into())
                .into(),
        );
        let c = ClientConnection::new(cfg, name).map_err(|e| format!("TLS: {e}"))?;
        self.tls = Some(Box::new(c));
        self.flush()
    }

    /// Once the handshake is over, its kind, the first time only.
    pub fn take_handshake(&mut self) -> Option<Hs> {
        let t = self.tls.as_ref()?;
        if self.hs_told || t.is_handshaking() {
            return None;
        }
        self.hs_told = true;
        Some(match t.handshake_kind() {
            Some(HandshakeKind::Resumed) => Hs::Resumed,
            _ => Hs::Full,
        })
    }

    /// The negotiated protocol version and cipher suite, once known.
    pub fn describe(&self) -> Option<String> {
        let t = self.tls.as_ref()?;
        Some(format!(
            "{:?} {:?}",
            t.protocol_version()?,
            t.negotiated_cipher_suite()?.suite()
        ))
    }

    /// Checks whether a non-blocking connect finished; Ok(false) while it is under way.
    fn check_connected(&mut self) -> Res<bool> {
        if self.connected {
            return Ok(true);
        }
        match self.sock.take_error() {
            Ok(Some(e)) | Err(e) => return Err(io_err("connect", e)),
            Ok(None) => {}
        }
        match self.sock.peer_addr() {
            Ok(_) => {
                self.connected = true;
                self.sock.set_nodelay(true).ok();
                Ok(true)
            }
            Err(e) if e.kind() == ErrorKind::NotConnected => Ok(false),
            Err(e) => Err(io_err("connect", e)),
        }
    }

    /// Queues `bytes` (through TLS when it is on) and writes what the socket takes.
    pub fn send(&mut self, bytes: &[u8]) -> Res<()> {
        match self.tls.as_mut() {
            Some(t) => t
                .writer()
                .write_all(bytes)
                .map_err(|e| io_err("TLS write", e))?,
            None => self.out.extend_from_slice(bytes),
        }
        self.flush()
    }

    /// Writes what is pending, as far as the socket takes it.
    pub fn flush(&mut self) -> Res<()> {
        if !self.check_connected()? {
            return Ok(());
        }
        if let Some(t) = self.tls.as_mut() {
            while t.wants_write() {
                match t.write_tls(&mut self.sock) {
                    Ok(_) => {}
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(e) => return Err(io_err("write", e)),
                }
            }
            return Ok(());
        }
        while !self.out.is_empty() {
            match self.sock.write(&self.out) {
                Ok(0) => return Err("connection closed".into()),
                Ok(n) => {
                    self.out.drain(..n);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(io_err("write", e)),
            }
        }
        Ok(())
    }

    /// Reads all the socket has (the loop is edge-triggered), passing the plaintext to
    /// `sink`; `buf` is scratch space for the raw reads, one large read at a time. Returns
    /// true at the end of the stream, the server's TCP FIN; a TLS close_notify is answered
    /// with ours.
    pub fn read(&mut self, buf: &mut [u8], sink: &mut dyn FnMut(&[u8])) -> Res<bool> {
        if !self.check_connected()? {
            return Ok(false);
        }
        let mut eof = false;
        loop {
            let n = match self.sock.read(buf) {
                Ok(0) => {
                    eof = true;
                    0
                }
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                // Our close_notify reached a socket the server had closed: the end too.
                Err(e) if self.closing && e.kind() == ErrorKind::ConnectionReset => {
                    return Ok(true)
                }
                Err(e) => return Err(io_err("read", e)),
            };
            match self.tls.as_mut() {
                None => sink(&buf[..n]),
                Some(t) => {
                    if feed_tls(t, &buf[..n], sink)? && !self.closing {
                        self.closing = true;
                        t.send_close_notify();
                    }
                }
            }
            if eof {
                break;
            }
        }
        // The handshake may have something to send back (the client's Finished).
        self.flush()?;
        Ok(eof)
    }
}

/// Hands `raw` to rustls a record buffer at a time, passing the plaintext on. Returns true
/// once the peer's close_notify is in.
fn feed_tls(t: &mut ClientConnection, mut raw: &[u8], sink: &mut dyn FnMut(&[u8])) -> Res<bool> {
    let mut closed = false;
    loop {
        if !raw.is_empty() {
            t.read_tls(&mut raw).map_err(|e| io_err("TLS read", e))?;
        }
        let state = t.process_new_packets().map_err(|e| format!("TLS: {e}"))?;
        let mut r = t.reader();
        loop {
            match r.fill_buf() {
                Ok([]) => {
                    closed = true;
                    break;
                }
                Ok(chunk) => {
                    let k = chunk.len();
                    sink(chunk);
                    r.consume(k);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::UnexpectedEof => {
                    closed = true;
                    break;
                }
                Err(e) => return Err(io_err("TLS read", e)),
            }
        }
        closed |= state.peer_has_closed();
        // After close_notify rustls takes no more bytes: what follows is discarded.
        if raw.is_empty() || closed {
            return Ok(closed);
        }
    }
}
