//! The three log channels of pyftpdlib's tutorial, as `log` targets, and the fields each
//! session event carries.
//!
//! | pyftpdlib function | target | level | what |
//! |---|---|---|---|
//! | `log` | [`LOG`] (`ftpdlib`) | info | session events: connect, login, transfers, refusals |
//! | `logline` | [`LINE`] (`ftpdlib::line`) | debug | every command and reply, `PASS` masked |
//! | `logerror` | [`ERROR`] (`ftpdlib::error`) | error | internal errors |
//!
//! Route them anywhere a `log` backend can: `RUST_LOG=ftpdlib=info` for events only,
//! `RUST_LOG=ftpdlib::line=debug` for the wire, or a custom `log::Log` that sends each target
//! to its own file, as `demo/logging_ftpd.rs` does. The library never installs a logger.
//!
//! # Fields
//!
//! The message of a session line is pyftpdlib's text (`127.0.0.1:50000-[user] USER 'user'
//! logged in.`). The same facts travel beside it as `log` key-values
//! ([`log::Record::key_values`]), for a backend that writes structured logs (the `ftpdlib`
//! command's `--log-format json`). Keys, in [`key`]:
//!
//! | key | type | on | meaning |
//! |---|---|---|---|
//! | `session` | u64 | every session line | a number unique to the control connection in this process, from 1 |
//! | `client` | string | every session line | the client's address, `ip:port` (IPv4-mapped shown as IPv4) |
//! | `user` | string | once a name is known | the logged-in user; on `login_failed`, the name tried |
//! | `event` | string | every session line | see below |
//! | `command` | string | `command`, `refused`, `transfer`, `rename` | `DELE`, `STOR`, `SITE CHMOD`, ... |
//! | `path` | string | same | the FTP path, as the client sees it (`/dir/file`) |
//! | `code` | u64 | `command`, `rename`, `refused` | the reply code sent (RFC 959 section 4.2) |
//! | `reason` | string | `refused`, `timeout`, `data_error`, `closed` | why, as the reply or log text says |
//! | `bytes` | u64 | `transfer` | bytes moved on the data connection |
//! | `seconds` | f64 | `transfer` | from the start of the transfer to its end |
//! | `completed` | bool | `transfer` | whether the whole file went through |
//!
//! Events: `connect`, `disconnect`, `login`, `login_failed`, `command` (a path command
//! done: CWD, MKD, RMD, DELE, MFMT, SITE CHMOD, and STOR/RETR/APPE/STOU at 125),
//! `rename`, `transfer` (a file transfer ended), `refused` (a command on a path refused:
//! permission, missing file, storage error), `timeout`, `closed` (the server closed the
//! session: too many commands), `data_error` (a data connection failed), `tls` (CCC).

use std::fmt;

use log::kv::{Key, Source, ToValue, Value, VisitSource};

/// Target of session events (pyftpdlib's `log()`).
pub const LOG: &str = "ftpdlib";
/// Target of command and reply lines (pyftpdlib's `logline()`).
pub const LINE: &str = "ftpdlib::line";
/// Target of internal errors (pyftpdlib's `logerror()`).
pub const ERROR: &str = "ftpdlib::error";

/// The keys of the fields of session lines (see [the module docs](self#fields)).
pub mod key {
    /// `u64`: the session's number in this process.
    pub const SESSION: &str = "session";
    /// String: the client's `ip:port`.
    pub const CLIENT: &str = "client";
    /// String: the user name.
    pub const USER: &str = "user";
    /// String: what happened (`login`, `transfer`, `refused`, ...).
    pub const EVENT: &str = "event";
    /// String: the FTP command.
    pub const COMMAND: &str = "command";
    /// String: the FTP path.
    pub const PATH: &str = "path";
    /// `u64`: the reply code.
    pub const CODE: &str = "code";
    /// String: why a command was refused or a session ended.
    pub const REASON: &str = "reason";
    /// `u64`: bytes transferred.
    pub const BYTES: &str = "bytes";
    /// `f64`: seconds a transfer took.
    pub const SECONDS: &str = "seconds";
    /// `bool`: whether a transfer completed.
    pub const COMPLETED: &str = "completed";
}

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

/// A list of fields for [`event`]: `(key, value)` pairs, a `None` value left out.
pub(crate) struct Fields<'a>(pub(crate) &'a [(&'static str, Option<Value<'a>>)]);

impl Source for Fields<'_> {
    fn visit<'kvs>(&'kvs self, visitor: &mut dyn VisitSource<'kvs>) -> Result<(), log::kv::Error> {
        for (k, v) in self.0 {
            if let Some(v) = v {
                visitor.visit_pair(Key::from_str(k), v.to_value())?;
            }
        }
        Ok(())
    }

    fn count(&self) -> usize {
        self.0.iter().filter(|(_, v)| v.is_some()).count()
    }
}

/// Logs `args` on `target` at `level` with `fields` as the record's key-values, if that
/// target and level are enabled.
pub(crate) fn event(
    level: log::Level,
    target: &str,
    fields: &Fields<'_>,
    args: fmt::Arguments<'_>,
) {
    if level > log::max_level() {
        return;
    }
    let logger = log::logger();
    let meta = log::Metadata::builder().level(level).target(target).build();
    if !logger.enabled(&meta) {
        return;
    }
    logger.log(
        &log::Record::builder()
            .metadata(meta)
            .args(args)
            .key_values(fields)
            .module_path_static(Some(module_path!()))
            .build(),
    );
}
