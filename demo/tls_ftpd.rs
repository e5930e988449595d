//! An FTPS server, explicit (AUTH TLS) or implicit, with pyftpdlib's tutorial, section 4.1 policies.
//!
//! ```text
//! cargo run --example tls_ftpd -- cert.pem key.pem            # explicit, 127.0.0.1:2121
//! FTPD_IMPLICIT=1 cargo run --example tls_ftpd -- cert.pem key.pem
//! FTPD_REUSE=1 cargo run --example tls_ftpd       # data connections must resume sessions
//! ```
//!
//! Serves `FTPD_DIR` (default `ftpdlib-demo` in the temporary directory): user "user" with
//! password "12345" may read and write and must use TLS on both connections; anonymous may
//! read, in the clear if it likes. Without arguments it uses the test-only certificate in
//! tests/data. docs/ftps.md says how to make a certificate of your own. Set `FTPD_ADDR` to
//! listen elsewhere.

#[path = "common.rs"]
mod common;

use std::sync::Arc;

use ftpdlib::{Config, DummyAuthorizer, FtpServer, TlsConfig, TlsRequired};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let cwd = common::served_dir()?;
    let mut args = std::env::args().skip(1);
    let here = env!("CARGO_MANIFEST_DIR");
    let cert = args
        .next()
        .unwrap_or_else(|| format!("{here}/tests/data/cert.pem"));
    let key = args
        .next()
        .unwrap_or_else(|| format!("{here}/tests/data/key.pem"));

    let mut authorizer = DummyAuthorizer::new();
    authorizer.add_user("user", "12345", &cwd, "elradfmwMT")?;
    authorizer.add_anonymous(&cwd, "elr")?;

    let mut tls = TlsConfig::from_pem_files(&cert, &key)?;
    // TLS from the first byte (port 990 by convention) instead of AUTH TLS.
    tls.implicit = std::env::var_os("FTPD_IMPLICIT").is_some();
    // Users must protect their password and their files; anonymous need not.
    tls.control_required = TlsRequired::ExceptAnonymous;
    tls.data_required = TlsRequired::ExceptAnonymous;
    // Data connections need not resume the control connection's TLS session (the default,
    // as in pyftpdlib); FTPD_REUSE requires it, for clients that all resume (curl, lftp,
    // FileZilla, rclone; not Python's ftplib), see docs/ftps.md.
    tls.data_session_reuse_required = std::env::var_os("FTPD_REUSE").is_some();

    let mut config = Config::new(Arc::new(authorizer));
    config.tls = Some(tls);

    let addr = std::env::var("FTPD_ADDR").unwrap_or_else(|_| "127.0.0.1:2121".to_string());
    let mut server = FtpServer::bind(addr.as_str(), config)?;
    println!("serving {} over FTPS on {addr}", cwd.display());
    server.serve_forever(None, None)?;
    Ok(())
}
