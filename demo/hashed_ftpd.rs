//! Virtual users whose passwords are stored as crypt(3) hashes (pyftpdlib's tutorial, section 3.3, done
//! with the system's libcrypt instead of bare MD5 digests).
//!
//! ```text
//! echo 12345 | cargo run -- hash-password          # prints $y$...
//! FTPD_HASH='$y$...' cargo run --example hashed_ftpd
//! ```
//!
//! Serves `FTPD_DIR` (default `ftpdlib-demo` in the temporary directory) on 127.0.0.1:2121
//! to user "user", whose password is checked against the hash in `FTPD_HASH` (by default a
//! fresh hash of "12345"). The program never holds the clear password. Set `FTPD_ADDR` to
//! listen elsewhere.

#[path = "common.rs"]
mod common;

use std::sync::Arc;

use ftpdlib::authorizer::crypt::{hash_password, Method};
use ftpdlib::{Config, DummyAuthorizer, FtpServer};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let cwd = common::served_dir()?;

    // A hash as `ftpdlib hash-password` prints it, or as /etc/shadow holds it: yescrypt
    // ($y$), sha512-crypt ($6$), bcrypt ($2b$), ...
    let hash = match std::env::var("FTPD_HASH") {
        Ok(h) => h,
        Err(_) => hash_password("12345", Method::Yescrypt)?,
    };
    let mut authorizer = DummyAuthorizer::new();
    authorizer.add_user_hashed("user", &hash, &cwd, "elradfmwMT")?;
    // Plain and hashed users may sit side by side.
    authorizer.add_anonymous(&cwd, "elr")?;

    let addr = std::env::var("FTPD_ADDR").unwrap_or_else(|_| "127.0.0.1:2121".to_string());
    let mut server = FtpServer::bind(addr.as_str(), Config::new(Arc::new(authorizer)))?;
    println!(
        "serving {} on {addr} to \"user\" (hash {hash})",
        cwd.display()
    );
    server.serve_forever(None, None)?;
    Ok(())
}
