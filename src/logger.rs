//! The three log channels of pyftpdlib's tutorial, as `log` targets.
//!
//! | pyftpdlib function | target | level | what |
//! |---|---|---|---|
//! | `log` | [`LOG`] (`ftpdlib`) | info | session events: connect, login, transfers |
//! | `logline` | [`LINE`] (`ftpdlib::line`) | debug | every command and reply, `PASS` masked |
//! | `logerror` | [`ERROR`] (`ftpdlib::error`) | error | internal errors |
//!
//! Route them anywhere a `log` backend can: `RUST_LOG=ftpdlib=info` for events only,
//! `RUST_LOG=ftpdlib::line=debug` for the wire, or a custom `log::Log` that sends each target
//! to its own file, as `demo/logging_ftpd.rs` does. The library never installs a logger.

/// Target of session events (pyftpdlib's `log()`).
pub const LOG: &str = "ftpdlib";
/// Target of command and reply lines (pyftpdlib's `logline()`).
pub const LINE: &str = "ftpdlib::line";
/// Target of internal errors (pyftpdlib's `logerror()`).
pub const ERROR: &str = "ftpdlib::error";

/// Logs a session event (pyftpdlib's `log(msg)`).
pub fn log(msg: &str) {
    log::info!(target: LOG, "{msg}");
}

/// Logs a command or reply line (pyftpdlib's `logline(msg)`).
pub fn logline(msg: &str) {
    log::debug!(target: LINE, "{msg}");
}

/// Logs an internal error (pyftpdlib's `logerror(msg)`).
pub fn logerror(msg: &str) {
    log::error!(target: ERROR, "{msg}");
}
