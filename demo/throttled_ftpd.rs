//! An FTP server with bandwidth limits (pyftpdlib's tutorial, section 3.6, "Throttle bandwidth"), plus
//! the per-user and whole-server limits and the flood limits ftpdlib adds.
//!
//! ```text
//! cargo run --example throttled_ftpd
//! ```
//!
//! Serves `FTPD_DIR` (default `ftpdlib-demo` in the temporary directory) on 127.0.0.1:2121
//! to user "user" (password "12345") and anonymous. Each transfer reads at most 30 KiB/s
//! and writes at most 30 KiB/s, as in pyftpdlib's tutorial; "user" has 100 KiB/s down over
//! all its sessions; the whole server 1 MiB/s each way. Set `FTPD_ADDR` to listen
//! elsewhere.

#[path = "common.rs"]
mod common;

use std::sync::Arc;
use std::time::Duration;

use ftpdlib::{Config, DummyAuthorizer, FtpServer, Limits};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let cwd = common::served_dir()?;

    let mut authorizer = DummyAuthorizer::new();
    authorizer.add_user("user", "12345", &cwd, "elradfmwMT")?;
    authorizer.add_anonymous(&cwd, "elr")?;
    let mut config = Config::new(Arc::new(authorizer));

    // Per transfer, in bytes per second (pyftpdlib's ThrottledDTPHandler attributes);
    // 0 means no limit.
    config.dtp.read_limit = 30 * 1024; // uploads
    config.dtp.write_limit = 30 * 1024; // downloads and listings

    // Per user, shared by all of that user's sessions; users not named have none.
    config
        .user_limits
        .insert("user".to_string(), Limits::new(0, 100 * 1024));

    // The whole server, shared by every transfer. The tightest applicable limit wins.
    config.max_rate = Limits::new(1024 * 1024, 1024 * 1024);

    // Flood limits (off by default): ban an address for 10 minutes after 5 failed logins
    // within a minute, close sessions sending more than 50 commands in a second, and give
    // a client 30 s from connect to log in.
    config.flood.max_failed_logins = 5;
    config.flood.failed_login_window = Duration::from_secs(60);
    config.flood.ban_duration = Duration::from_secs(600);
    config.flood.max_commands_per_sec = 50;
    config.login_timeout = Some(Duration::from_secs(30));

    let addr = std::env::var("FTPD_ADDR").unwrap_or_else(|_| "127.0.0.1:2121".to_string());
    let mut server = FtpServer::bind(addr.as_str(), config)?;
    println!("serving {} on {addr}, throttled", cwd.display());
    server.serve_forever(None, None)?;
    Ok(())
}
