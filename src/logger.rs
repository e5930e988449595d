//! The three log channels of the seed, as `log` targets.
//!
//! | seed function | target | level | what |
//! |---|---|---|---|
//! | `log` | [`LOG`] (`ftpdlib`) | info | session events: connect, login, transfers |
//! | `logline` | [`LINE`] (`ftpdlib::line`) | debug | every command and reply, `PASS` masked |
//! | `logerror` | [`ERROR`] (`ftpdlib::error`) | error | internal errors |
//!
//! Route them anywhere a `log` backend can: `RUST_LOG=ftpdlib=info` for events only,
//! `RUST_LOG=ftpdlib::line=debug` for the wire, or a custom `log::Log` that sends each target
//! to its own file, as `demo/logging_ftpd.rs` does. The library never installs a logger.

/// Target of session events (the seed's `log()`).
pub const LOG: &str = "ftpdlib";
/// Target of command and reply lines (the seed's `logline()`).
pub const LINE: &str = "ftpdlib::line";
/// Target of internal errors (the seed's `logerror()`).
pub const ERROR: &str = "ftpdlib::error";

/// Logs a session event (the seed's `log(msg)`).
pub fn log(msg: &str) {
    log::info!(target: LOG, "{msg}");
}

/// Logs a command or reply line (the seed's `logline(msg)`).
pub fn logline(msg: &str) {
    log::debug!(target: LINE, "{msg}");
}

/// Logs an internal error (the seed's `logerror(msg)`).
pub fn logerror(msg: &str) {
    log::error!(target: ERROR, "{msg}");
}
