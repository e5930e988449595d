//! An FTP server for the machine's own accounts (pyftpdlib's tutorial, section 3.4): passwords from
//! /etc/shadow, homes from /etc/passwd, and every file operation run under the user's ids,
//! so uploads belong to their user.
//!
//! ```text
//! cargo build --example unix_ftpd && sudo target/debug/examples/unix_ftpd
//! ```
//!
//! Must run as root (it says so and exits otherwise). Listens on 127.0.0.1:2121 (set
//! `FTPD_ADDR`, e.g. `0.0.0.0:21`); refuses root and accounts whose shell is not in
//! /etc/shells. See docs/security.md for what running as root means here.

use std::sync::Arc;

use ftpdlib::{Config, FtpServer, UnixAuthorizer, UnixOptions};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();

    let authorizer = UnixAuthorizer::new(
        UnixOptions::default()
            .with_rejected_users(vec!["root".to_string()])
            .with_require_valid_shell(true),
    )
    .unwrap_or_else(|e| {
        // Most often: not running as root. Say it in one line.
        eprintln!("unix_ftpd: {e}");
        std::process::exit(1);
    });
    let addr = std::env::var("FTPD_ADDR").unwrap_or_else(|_| "127.0.0.1:2121".to_string());
    let mut server = FtpServer::bind(addr.as_str(), Config::new(Arc::new(authorizer)))?;
    println!("serving system users on {addr}");
    server.serve_forever(None, None)?;
    Ok(())
}
