//! The control connection's switch to TLS and back, over real loopback sockets against a
//! server on a thread: AUTH TLS with bytes pipelined after it in the same write, a real
//! handshake (or garbage where one should be), commands over TLS, CCC back to plaintext.
//!
//! Invariants: the only plaintext reply after AUTH TLS is its 234 (pipelined bytes are
//! never answered: RFC 4217 section 4, the STARTTLS injection class); with nothing
//! pipelined the handshake succeeds; after it, the first command's reply is its own
//! (nothing injected ran); after CCC, plaintext commands are answered; and after every
//! input the server still greets a new connection (it neither panicked nor hung).
#![no_main]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use arbitrary::Arbitrary;
use ftpdlib::{Config, DummyAuthorizer, FtpServer, TlsConfig};
use libfuzzer_sys::fuzz_target;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, SignatureScheme, StreamOwned};

#[derive(Debug, Arbitrary)]
struct Input {
    /// Sent in the same write as `AUTH TLS\r\n`.
    injected: Vec<u8>,
    /// Instead of a handshake, these bytes (then the connection is dropped).
    garbage: Option<Vec<u8>>,
    /// Command lines over TLS (CR and LF removed), after a NOOP.
    lines: Vec<Vec<u8>>,
    /// Log in and send CCC after the lines, then these lines in plaintext.
    ccc: Option<Vec<Vec<u8>>>,
}

/// Accepts any certificate: the target checks the protocol, not the PKI.
#[derive(Debug)]
struct AnyCert(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AnyCert {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

struct Fixture {
    addr: SocketAddr,
    client: Arc<ClientConfig>,
    server: std::thread::JoinHandle<()>,
}

/// One server for the whole run: user "user"/"pass", FTPS offered, CCC allowed, short
/// handshake timeout.
fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let home = std::env::temp_dir().join(format!("ftpdlib-fuzz-tls-{}", std::process::id()));
        std::fs::create_dir_all(&home).expect("temp dir");
        let mut auth = DummyAuthorizer::new();
        auth.add_user("user", "pass", &home, "elr")
            .expect("home exists");
        let data = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/data/");
        let mut tls =
            TlsConfig::from_pem_files(format!("{data}cert.pem"), format!("{data}key.pem"))
                .expect("test certificate");
        tls.ccc_allowed = true;
        tls.handshake_timeout = Duration::from_secs(2);
        let mut config = Config::new(Arc::new(auth));
        config.tls = Some(tls);
        config.auth_failed_timeout = Duration::ZERO;
        config.timeout = Some(Duration::from_secs(5));
        let mut server = FtpServer::bind("127.0.0.1:0", config).expect("bind");
        server.max_cons = 0;
        let addr = server.local_addrs()[0];
        let server = std::thread::spawn(move || {
            server.serve_forever(None, None).expect("serve_forever");
        });
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let client = ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .expect("versions")
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCert(provider)))
            .with_no_client_auth();
        Fixture {
            addr,
            client: Arc::new(client),
            server,
        }
    })
}

/// Reads one whole reply (multi-line aware) and returns its lines, or None on EOF/timeout.
fn reply(r: &mut impl BufRead) -> Option<Vec<String>> {
    let mut lines = Vec::new();
    loop {
        let mut line = Vec::new();
        if r.read_until(b'\n', &mut line).ok()? == 0 {
            return None;
        }
        let text = String::from_utf8_lossy(&line).trim_end().to_string();
        let last = match lines
            .first()
            .map(|f: &String| f[..3.min(f.len())].to_string())
        {
            None => text.len() >= 4 && text.as_bytes()[3] == b' ',
            Some(code) => text.starts_with(&format!("{code} ")),
        };
        lines.push(text);
        if last {
            return Some(lines);
        }
    }
}

fn clean(line: &[u8]) -> Vec<u8> {
    let mut l: Vec<u8> = line
        .iter()
        .copied()
        .filter(|&b| b != b'\r' && b != b'\n')
        .take(256)
        .collect();
    l.extend_from_slice(b"\r\n");
    l
}

fn session(f: &Fixture, input: &Input) -> Option<()> {
    let sock = TcpStream::connect(f.addr).ok()?;
    sock.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
    let mut plain = BufReader::new(sock.try_clone().ok()?);
    assert!(reply(&mut plain)?[0].starts_with("220 "));
    let mut first = b"AUTH TLS\r\n".to_vec();
    first.extend(input.injected.iter().take(512));
    (&sock).write_all(&first).ok()?;
    let r = reply(&mut plain)?;
    assert!(r[0].starts_with("234 "), "AUTH TLS got {r:?}");
    if let Some(g) = &input.garbage {
        let _ = (&sock).write_all(&g[..g.len().min(4096)]);
        return Some(());
    }
    // The reader may hold bytes past the 234 only if the server sent some: it must not.
    assert!(
        plain.buffer().is_empty(),
        "plaintext after the 234: {:?}",
        plain.buffer()
    );
    let conn = ClientConnection::new(Arc::clone(&f.client), "localhost".try_into().ok()?).ok()?;
    let mut tls = StreamOwned::new(conn, sock.try_clone().ok()?);
    let handshake = tls.conn.complete_io(&mut tls.sock);
    if handshake.is_err() {
        // Pipelined bytes the server had not read before switching are taken as TLS
        // records and may well fail the handshake; with none, it must succeed.
        assert!(
            !input.injected.is_empty(),
            "handshake failed: {handshake:?}"
        );
        return Some(());
    }
    let mut tls = BufReader::new(tls);
    tls.get_mut().write_all(b"NOOP\r\n").ok()?;
    let r = reply(&mut tls)?;
    assert!(
        r[0].starts_with("200 "),
        "NOOP over TLS got {r:?}: injected commands ran"
    );
    for line in input.lines.iter().take(8) {
        tls.get_mut().write_all(&clean(line)).ok()?;
        reply(&mut tls)?;
    }
    let Some(after) = &input.ccc else {
        return Some(());
    };
    for l in ["USER user\r\n", "PASS pass\r\n", "CCC\r\n"] {
        tls.get_mut().write_all(l.as_bytes()).ok()?;
        if !reply(&mut tls)?[0].starts_with(['2', '3']) {
            return Some(());
        }
    }
    // The server sends its close_notify after the 200; answer it and go on in plaintext.
    let mut stream = tls.into_inner();
    stream.conn.send_close_notify();
    while stream.conn.wants_write() {
        stream.conn.write_tls(&mut stream.sock).ok()?;
    }
    let mut buf = [0u8; 256];
    while !stream.conn.is_handshaking()
        && stream
            .conn
            .reader()
            .read(&mut buf)
            .map(|n| n > 0)
            .unwrap_or(false)
    {}
    let sock = stream.sock;
    let mut plain = BufReader::new(sock.try_clone().ok()?);
    (&sock).write_all(b"NOOP\r\n").ok()?;
    let r = reply(&mut plain)?;
    assert!(r[0].starts_with("200 "), "NOOP after CCC got {r:?}");
    for line in after.iter().take(8) {
        (&sock).write_all(&clean(line)).ok()?;
        reply(&mut plain)?;
    }
    Some(())
}

fuzz_target!(|input: Input| {
    let f = fixture();
    let _ = session(f, &input);
    assert!(!f.server.is_finished(), "the server thread ended");
    let mut s = TcpStream::connect(f.addr).expect("the server accepts");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut r = BufReader::new(s);
    assert!(
        reply(&mut r).is_some_and(|l| l[0].starts_with("220 ")),
        "no greeting"
    );
});
