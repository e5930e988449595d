//! The pieces the FTPS tests share: the server's test certificate and settings, and an FTP
//! client over rustls (which uses each TLS 1.3 ticket once) whose data connections resume
//! its control connection's session.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use ftpdlib::{Config, TlsConfig};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, SignatureScheme, StreamOwned};

use crate::util::TestServer;

pub fn data_file(name: &str) -> String {
    format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"))
}

pub fn tls_config() -> TlsConfig {
    TlsConfig::from_pem_files(data_file("cert.pem"), data_file("key.pem")).expect("test cert")
}

/// The reply to a data connection that does not resume its control connection's session.
pub const NO_REUSE_522: &str =
    "522 Data connection must resume the TLS session of the control connection.\r\n";

/// A server with the test certificate, session reuse required on data connections (the
/// tests' own client resumes, and this checks that it does; the out-of-the-box default,
/// off, is tested on its own), then `f`'s settings.
pub fn with_tls(f: impl FnOnce(&mut TlsConfig) + Send + 'static) -> TestServer {
    TestServer::start_with(move |c: &mut Config, _| {
        let mut t = tls_config();
        t.data_session_reuse_required = true;
        f(&mut t);
        c.tls = Some(t);
    })
}

// ---- a TLS client ----------------------------------------------------------------------

/// Accepts any server certificate: the tests check the protocol, not the PKI.
#[derive(Debug)]
pub struct AnyCert(pub Arc<rustls::crypto::CryptoProvider>);

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
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A client configuration; connections made from one configuration resume each other's
/// sessions (rustls keeps a session cache per configuration).
pub fn client_config() -> Arc<ClientConfig> {
    client_config_for(rustls::DEFAULT_VERSIONS)
}

/// The same, speaking only `versions`.
pub fn client_config_for(
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Arc<ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(versions)
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCert(provider)))
        .with_no_client_auth();
    Arc::new(config)
}

/// TLS 1.2 alone and TLS 1.3 alone, with a name for messages.
pub const VERSIONS: [(&str, &[&rustls::SupportedProtocolVersion]); 2] = [
    ("TLS 1.2", &[&rustls::version::TLS12]),
    ("TLS 1.3", &[&rustls::version::TLS13]),
];

pub type Tls = StreamOwned<ClientConnection, TcpStream>;

pub fn tls_over(config: &Arc<ClientConfig>, tcp: TcpStream) -> Tls {
    let name = ServerName::try_from("localhost").unwrap();
    StreamOwned::new(
        ClientConnection::new(Arc::clone(config), name).unwrap(),
        tcp,
    )
}

pub fn read_reply(r: &mut impl BufRead) -> (u16, String) {
    let mut text = String::new();
    let mut line = String::new();
    r.read_line(&mut line).expect("read reply");
    assert!(line.ends_with("\r\n"), "reply line without CRLF: {line:?}");
    let code: u16 = line[..3]
        .parse()
        .unwrap_or_else(|_| panic!("bad reply {line:?}"));
    text.push_str(&line);
    if line.as_bytes()[3] == b'-' {
        loop {
            line.clear();
            assert!(
                r.read_line(&mut line).expect("read reply") > 0,
                "EOF in reply"
            );
            text.push_str(&line);
            if line.starts_with(&format!("{code} ")) {
                break;
            }
        }
    }
    (code, text)
}

/// An FTP client whose control connection runs TLS.
pub struct Ftps {
    pub r: BufReader<Tls>,
    pub config: Arc<ClientConfig>,
}

impl Ftps {
    /// Connects, reads the plain 220, and switches with AUTH TLS.
    pub fn explicit(addr: SocketAddr) -> Ftps {
        Self::explicit_with(addr, client_config())
    }

    /// The same with a client configuration of the caller's, whose session cache the
    /// control connection fills.
    pub fn explicit_with(addr: SocketAddr, config: Arc<ClientConfig>) -> Ftps {
        let tcp = TcpStream::connect(addr).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut plain = BufReader::new(tcp.try_clone().unwrap());
        assert_eq!(read_reply(&mut plain).0, 220);
        (&tcp).write_all(b"AUTH TLS\r\n").unwrap();
        assert_eq!(read_reply(&mut plain).0, 234);
        assert!(plain.buffer().is_empty());
        Ftps {
            r: BufReader::new(tls_over(&config, tcp)),
            config,
        }
    }

    /// Connects with TLS from the first byte and reads the 220.
    pub fn implicit(addr: SocketAddr) -> Ftps {
        let tcp = TcpStream::connect(addr).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let config = client_config();
        let mut c = Ftps {
            r: BufReader::new(tls_over(&config, tcp)),
            config,
        };
        assert_eq!(c.reply().0, 220);
        c
    }

    pub fn send(&mut self, line: &str) {
        let s = self.r.get_mut();
        s.write_all(format!("{line}\r\n").as_bytes()).unwrap();
        s.flush().unwrap();
    }

    pub fn reply(&mut self) -> (u16, String) {
        read_reply(&mut self.r)
    }

    pub fn cmd(&mut self, line: &str, code: u16) -> String {
        self.send(line);
        let (got, text) = self.reply();
        assert_eq!(got, code, "{line}: {text}");
        text
    }

    pub fn login_private(&mut self, user: &str) {
        self.cmd("PBSZ 0", 200);
        self.cmd("PROT P", 200);
        self.cmd(&format!("USER {user}"), 331);
        self.cmd("PASS pass", 230);
    }

    pub fn pasv(&mut self) -> SocketAddr {
        let text = self.cmd("EPSV", 229);
        let port: u16 = text[text.find("(|||").unwrap() + 4..text.rfind("|)").unwrap()]
            .parse()
            .unwrap();
        SocketAddr::new(self.r.get_ref().sock.peer_addr().unwrap().ip(), port)
    }

    /// A TLS data connection that resumes the control connection's session.
    pub fn data(&self, tcp: TcpStream) -> Tls {
        tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        tls_over(&self.config, tcp)
    }

    pub fn retr(&mut self, line: &str) -> Vec<u8> {
        let tcp = TcpStream::connect(self.pasv()).unwrap();
        self.send(line);
        let (code, text) = self.reply();
        assert!(code == 125 || code == 150, "{line}: {text}");
        let mut data = self.data(tcp);
        let mut out = Vec::new();
        data.read_to_end(&mut out)
            .expect("TLS download ends with close_notify");
        self.cmd_reply(226);
        out
    }

    pub fn stor(&mut self, line: &str, bytes: &[u8]) {
        let tcp = TcpStream::connect(self.pasv()).unwrap();
        self.send(line);
        let (code, text) = self.reply();
        assert!(code == 125 || code == 150, "{line}: {text}");
        let mut data = self.data(tcp);
        data.write_all(bytes).unwrap();
        data.conn.send_close_notify();
        data.flush().unwrap();
        data.sock.shutdown(Shutdown::Write).unwrap();
        self.cmd_reply(226);
    }

    pub fn cmd_reply(&mut self, code: u16) -> String {
        let (got, text) = self.reply();
        assert_eq!(got, code, "{text}");
        text
    }
}
