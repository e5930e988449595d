//! Making a [`TlsConfig`]: the certificate chain and private key from PEM files, rustls'
//! ring provider, and the constructors that put the server's own ticket key and session
//! cache ([`ServerTls`], in `reuse.rs`) behind a rustls configuration.
//!
//! Compiled with the `tls` cargo feature only; the policies a [`TlsConfig`] carries are in
//! `policy.rs`, in every build.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ServerConfig;

use super::reuse::ServerTls;
use super::stream::TlsError;
use super::{TlsConfig, TlsRequired};

impl TlsConfig {
    /// Settings around a certificate chain and its private key, both PEM files (the chain
    /// leaf first; the key PKCS#8, PKCS#1 or SEC1). TLS 1.2 and 1.3, rustls' safe defaults.
    /// The policies are pyftpdlib's defaults: TLS offered, nothing required of the client.
    ///
    /// # Errors
    /// Unreadable files, no certificate or key in them, or a key that does not fit.
    pub fn from_pem_files(
        cert: impl AsRef<Path>,
        key: impl AsRef<Path>,
    ) -> Result<TlsConfig, TlsError> {
        Ok(Self::from_server_config(server_config_from_pem(
            cert.as_ref(),
            key.as_ref(),
        )?))
    }

    /// Settings around a rustls configuration of your own (certificate resolver, protocol
    /// versions, ciphers). Session storage, ticketer and ticket count are replaced by the
    /// server's own, as the session reuse check needs: one ticket key and session cache for
    /// the server (and every clone of these settings), each session tagged with the FTP
    /// session that made it.
    pub fn from_server_config(config: Arc<ServerConfig>) -> TlsConfig {
        TlsConfig {
            implicit: false,
            control_required: TlsRequired::No,
            data_required: TlsRequired::No,
            data_session_reuse_required: false,
            data_close_notify_required: false,
            handshake_timeout: Duration::from_secs(30),
            ccc_allowed: false,
            inner: Arc::new(ServerTls::new(config)),
        }
    }
}

/// The crypto provider: ring, the one rustls is built with here.
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A server configuration from PEM files.
fn server_config_from_pem(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, TlsError> {
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
