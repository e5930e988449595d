//! The FTPS policies the session core decides by: who must use TLS where, and whether CCC
//! is allowed ([`TlsConfig`], [`TlsRequired`]).
//!
//! This file is compiled in every build and imports nothing of mio or of the sockets, so
//! the session core (`control::session`, through [`Config`](crate::Config)) can depend on
//! it without reaching the reactor. The constructors of [`TlsConfig`], which need rustls,
//! are in the sibling `config.rs`, behind the `tls` cargo feature.

use std::fmt;
use std::time::Duration;

/// Who must use TLS, on the control connection or on data connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TlsRequired {
    /// Nobody: TLS is offered, plain FTP is allowed (the default).
    #[default]
    No,
    /// Everyone but the anonymous user (`anonymous`), whose password protects nothing.
    ExceptAnonymous,
    /// Everyone.
    Everyone,
}

impl TlsRequired {
    /// Whether the policy applies to `user`.
    pub fn applies_to(self, user: &str) -> bool {
        match self {
            TlsRequired::No => false,
            TlsRequired::ExceptAnonymous => user != "anonymous",
            TlsRequired::Everyone => true,
        }
    }
}

/// FTPS settings: the server's certificate and the policies (pyftpdlib's `TLS_FTPHandler`
/// attributes). Put one in [`Config::tls`](crate::Config::tls) to serve FTPS.
///
/// Made with `TlsConfig::from_pem_files` or `TlsConfig::from_server_config`, which exist
/// with the `tls` cargo feature (on by default).
///
/// # Examples
/// ```no_run
/// # #[cfg(feature = "tls")] {
/// use std::sync::Arc;
/// use ftpdlib::{Config, DummyAuthorizer, TlsConfig, TlsRequired};
/// let mut auth = DummyAuthorizer::new();
/// auth.add_user("user", "12345", "/srv/ftp", "elradfmw").unwrap();
/// let mut tls = TlsConfig::from_pem_files("cert.pem", "key.pem").unwrap();
/// tls.control_required = TlsRequired::ExceptAnonymous;
/// tls.data_required = TlsRequired::ExceptAnonymous;
/// let mut config = Config::new(Arc::new(auth));
/// config.tls = Some(tls);
/// # }
/// ```
#[doc(alias = "TLS_FTPHandler")]
#[derive(Clone)]
pub struct TlsConfig {
    /// Implicit FTPS: TLS from the first byte on every listener of the server
    /// (conventionally port 990), rather than after AUTH TLS. Data connections of implicit
    /// sessions start protected (PROT P). Default false.
    pub implicit: bool,
    /// Who must secure the control connection before USER and PASS (reply 534 otherwise).
    /// pyftpdlib's `tls_control_required`. Default [`TlsRequired::No`].
    pub control_required: TlsRequired,
    /// Who must use PROT P before opening data connections (reply 521 otherwise), and may
    /// not go back to PROT C (534). pyftpdlib's `tls_data_required`. Default
    /// [`TlsRequired::No`].
    pub data_required: TlsRequired,
    /// A protected data connection must resume a TLS session of its own control connection,
    /// or of another control connection of the same user from the same address (reply 522
    /// otherwise), as vsftpd's `require_ssl_reuse` and proftpd require by default: it proves
    /// the data connection comes from the client that logged in, not from whoever reached
    /// the passive port first. Default false, as pyftpdlib: Python's `ftplib` and other
    /// clients do not resume (docs/ftps.md lists which do).
    pub data_session_reuse_required: bool,
    /// A protected upload must end with the client's TLS close_notify (reply 426
    /// otherwise), vsftpd's `strict_ssl_read_eof`. Default false: a TCP FIN that ends the
    /// stream between two TLS records ends the upload (226), as pyftpdlib and proftpd
    /// answer, since many clients close that way; a reset, or a FIN inside a record, is
    /// 426 either way. docs/ftps.md weighs the truncation risk.
    pub data_close_notify_required: bool,
    /// How long a TLS handshake may take, on control and data connections alike, before the
    /// connection is closed (control) or the transfer fails with 522 (data). Default 30 s.
    pub handshake_timeout: Duration,
    /// Accept CCC (RFC 4217 section 6): after login, a client may take its control
    /// connection back to plaintext, so that firewalls and NAT helpers can read PORT and
    /// PASV again; data connections keep their protection. Refused for users who must keep
    /// TLS on the control connection. Default false (534).
    pub ccc_allowed: bool,
    /// The rustls configuration; made by the constructors in `config.rs`.
    pub(super) inner: Inner,
}

/// What a [`TlsConfig`] serves with: the rustls configuration, and the ticket key, session
/// cache and session owners that every clone of the settings shares.
#[cfg(feature = "tls")]
pub(super) type Inner = std::sync::Arc<super::reuse::ServerTls>;
/// Without TLS support a [`TlsConfig`] cannot be made: its private part has no value.
#[cfg(not(feature = "tls"))]
pub(super) type Inner = std::convert::Infallible;

with_setters!(TlsConfig {
    with_implicit => implicit: bool,
    with_control_required => control_required: TlsRequired,
    with_data_required => data_required: TlsRequired,
    with_data_session_reuse_required => data_session_reuse_required: bool,
    with_data_close_notify_required => data_close_notify_required: bool,
    with_handshake_timeout => handshake_timeout: Duration,
    with_ccc_allowed => ccc_allowed: bool,
});

impl fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConfig")
            .field("implicit", &self.implicit)
            .field("control_required", &self.control_required)
            .field("data_required", &self.data_required)
            .field(
                "data_session_reuse_required",
                &self.data_session_reuse_required,
            )
            .field(
                "data_close_notify_required",
                &self.data_close_notify_required,
            )
            .field("handshake_timeout", &self.handshake_timeout)
            .field("ccc_allowed", &self.ccc_allowed)
            .finish_non_exhaustive()
    }
}
