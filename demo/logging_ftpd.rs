//! Logging to files (pyftpdlib's tutorial, section 3.2): session events in one file, every command and
//! reply in another, each line with a timestamp, and the transfers in an xferlog.
//!
//! ```text
//! cargo run --example logging_ftpd
//! tail -f ftpd.log ftpd.lines.log xferlog
//! ```
//!
//! Serves `FTPD_DIR` (default `ftpdlib-demo` in the temporary directory) on 127.0.0.1:2121
//! (user "user", password "12345", and anonymous read-only) and writes the three files in
//! the current directory. Set `FTPD_ADDR` to listen elsewhere.

#[path = "common.rs"]
mod common;

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use ftpdlib::xferlog::local_ctime;
use ftpdlib::{logger, Config, DummyAuthorizer, FtpServer, XferLog};

/// A `log` backend that sends the library's targets to two files.
struct TwoFiles {
    /// Session events (`ftpdlib`) and internal errors (`ftpdlib::error`).
    events: Mutex<File>,
    /// Commands and replies (`ftpdlib::line`).
    lines: Mutex<File>,
}

impl log::Log for TwoFiles {
    fn enabled(&self, meta: &log::Metadata<'_>) -> bool {
        meta.target().starts_with(logger::LOG)
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let file = if record.target() == logger::LINE {
            &self.lines
        } else {
            &self.events
        };
        let line = format!(
            "[{} {}] {}\n",
            record.level().as_str().chars().next().unwrap_or('?'),
            local_ctime(SystemTime::now()),
            record.args()
        );
        // One write per line; a logging failure must not stop the server.
        let mut file = file.lock().unwrap_or_else(|p| p.into_inner());
        let _ = file.write_all(line.as_bytes());
    }

    fn flush(&self) {}
}

fn append(path: &str) -> std::io::Result<Mutex<File>> {
    Ok(Mutex::new(
        OpenOptions::new().append(true).create(true).open(path)?,
    ))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    log::set_boxed_logger(Box::new(TwoFiles {
        events: append("ftpd.log")?,
        lines: append("ftpd.lines.log")?,
    }))?;
    // Lines are logged at debug level, events at info.
    log::set_max_level(log::LevelFilter::Debug);

    let cwd = common::served_dir()?;
    let mut authorizer = DummyAuthorizer::new();
    authorizer.add_user("user", "12345", &cwd, "elradfmwMT")?;
    authorizer.add_anonymous(&cwd, "elr")?;
    let mut config = Config::new(Arc::new(authorizer));
    // One line per file transfer, in the format of wu-ftpd, vsftpd and proftpd.
    config.hooks = Arc::new(XferLog::open("xferlog")?);

    let addr = std::env::var("FTPD_ADDR").unwrap_or_else(|_| "127.0.0.1:2121".to_string());
    let mut server = FtpServer::bind(addr.as_str(), config)?;
    println!(
        "serving {} on {addr}; logging to ftpd.log, ftpd.lines.log and xferlog",
        cwd.display()
    );
    server.serve_forever(None, None)?;
    Ok(())
}
