//! A basic FTP server with virtual users and connection limits (pyftpdlib's tutorial, section 3.1).
//!
//! ```text
//! cargo run --example basic_ftpd
//! ```
//!
//! Serves `FTPD_DIR` (default `ftpdlib-demo` in the temporary directory) on 127.0.0.1:2121:
//! user "user" with password "12345" may read and write, anonymous may read. Set
//! `FTPD_ADDR` to listen elsewhere.

#[path = "common.rs"]
mod common;

use std::sync::Arc;

use ftpdlib::{Config, DummyAuthorizer, FtpServer};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let cwd = common::served_dir()?;

    // A dummy authorizer for "virtual" users: one with full read/write permissions and a
    // read-only anonymous user.
    let mut authorizer = DummyAuthorizer::new();
    authorizer.add_user("user", "12345", &cwd, "elradfmwMT")?;
    authorizer.add_anonymous(&cwd, "elr")?;

    let mut config = Config::new(Arc::new(authorizer));
    // The string sent when a client connects.
    config.banner = format!("ftpdlib {} based ftpd ready.", ftpdlib::VERSION);
    // Behind NAT, announce the public address and use a fixed range of passive ports:
    // config.masquerade_address = Some("151.25.42.11".parse()?);
    // config.passive_ports = Some(60000..=65535);

    let addr = std::env::var("FTPD_ADDR").unwrap_or_else(|_| "127.0.0.1:2121".to_string());
    let mut server = FtpServer::bind(addr.as_str(), config)?;
    // Limits are a cheap defence against denial of service: the defaults are 512 and none.
    server.max_cons = 256;
    server.max_cons_per_ip = 5;

    println!("serving {} on {addr}", cwd.display());
    server.serve_forever(None, None)?;
    Ok(())
}
