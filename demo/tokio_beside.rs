//! The FTP server beside a tokio runtime: most Rust network programs run on tokio, and
//! ftpdlib's reactor is a mio loop of its own. It runs on a thread of its own; hooks hand
//! what happens to the async side over a tokio channel, and the async side stops it with
//! a `StopHandle`.
//!
//! ```text
//! cargo run --example tokio_beside
//! curl -T some-file ftp://user:12345@127.0.0.1:2121/
//! ```
//!
//! Serves `FTPD_DIR` (default `ftpdlib-demo` in the temporary directory) on `FTPD_ADDR`
//! (default 127.0.0.1:2121) to "user" (password "12345", read and write). Each finished
//! upload is printed by an async task. Ctrl-C stops the server cleanly; so does the
//! `FTPD_EXIT_AFTER`-th upload, if that variable is set.

#[path = "common.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ftpdlib::hooks::{Hooks, SessionInfo};
use ftpdlib::{Config, DummyAuthorizer, FtpServer};
use tokio::sync::mpsc::{unbounded_channel, UnboundedSender};

/// Runs on the FTP thread: sends each finished upload to the async side. An unbounded
/// channel's `send` never blocks, so the reactor never waits for tokio.
struct Uploads(UnboundedSender<(String, PathBuf)>);

impl Hooks for Uploads {
    fn on_file_received(&self, s: SessionInfo<'_>, path: &Path) {
        let user = s.username.to_string();
        // The receiver is gone only once the program is ending.
        let _ = self.0.send((user, path.to_path_buf()));
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let dir = common::served_dir()?;
    let exit_after: Option<usize> = std::env::var("FTPD_EXIT_AFTER")
        .ok()
        .and_then(|n| n.parse().ok());

    let (tx, mut uploads) = unbounded_channel();
    let mut authorizer = DummyAuthorizer::new();
    authorizer.add_user("user", "12345", &dir, "elradfmwMT")?;
    let mut config = Config::new(Arc::new(authorizer));
    config.hooks = Arc::new(Uploads(tx));
    let addr = std::env::var("FTPD_ADDR").unwrap_or_else(|_| "127.0.0.1:2121".to_string());
    let mut server = FtpServer::bind(addr.as_str(), config)?;
    let stop = server.stop_handle();
    println!("serving {} on {}", dir.display(), server.local_addrs()[0]);

    // The reactor on a plain thread: it blocks in poll, which no async task may do.
    let ftp = std::thread::spawn(move || server.serve_forever(None, None));

    let mut seen = 0;
    loop {
        tokio::select! {
            got = uploads.recv() => {
                let Some((user, path)) = got else { break };
                seen += 1;
                println!("received {} from {user}", path.display());
                if exit_after.is_some_and(|n| seen >= n) {
                    break;
                }
            }
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    // Every session and listener closed; the thread's serve_forever returns.
    stop.close_all();
    match ftp.join() {
        Ok(r) => r?,
        Err(_) => return Err("the FTP thread panicked".into()),
    }
    println!("stopped after {seen} uploads");
    Ok(())
}
