//! Callbacks a program can hang on session events (pyftpdlib's `FTPHandler.on_*` methods).
//!
//! Every method has an empty default, so an implementation overrides only what it needs.
//! Hooks run on the reactor thread between two events: keep them short, or hand the work to
//! another thread, as pyftpdlib's FAQ advises for its callbacks.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

/// Who a hook is being called for.
#[derive(Debug, Clone, Copy)]
pub struct SessionInfo<'a> {
    /// The client's address.
    pub peer: SocketAddr,
    /// The logged-in user, or the name given to USER, or `""`.
    pub username: &'a str,
}

/// One finished file transfer, for [`Hooks::on_transfer_end`].
#[derive(Debug, Clone, Copy)]
pub struct TransferRecord<'a> {
    /// `RETR`, `STOR`, `APPE` or `STOU`.
    pub verb: &'static str,
    /// The path as the client saw it.
    pub ftp_path: &'a str,
    /// The real path.
    pub path: &'a Path,
    /// Bytes moved over the data connection (for an ASCII transfer, the converted bytes).
    pub bytes: u64,
    /// From the command to the end of the transfer.
    pub seconds: f64,
    /// TYPE A rather than TYPE I.
    pub ascii: bool,
    /// Every byte moved; false after an error, ABOR or disconnect.
    pub completed: bool,
}

/// Session callbacks. Paths are real filesystem paths.
///
/// Hooks run on the reactor thread that owns the session, between its other work: a hook
/// that blocks stalls every session of that reactor, so hand slow work to a thread or
/// channel of your own. In a [`ServerGroup`](crate::ServerGroup) one `Hooks` object serves
/// every reactor: a session's hooks all run on one thread, in order, but two sessions'
/// hooks may run at the same time on two threads, so whatever a hook keeps must be safe to
/// share (atomics, a mutex, a channel's sender).
pub trait Hooks: Send + Sync {
    /// A client connected (after the connection limits let it in).
    fn on_connect(&self, _s: SessionInfo<'_>) {}
    /// The control connection closed, for whatever reason.
    fn on_disconnect(&self, _s: SessionInfo<'_>) {}
    /// A user logged in.
    fn on_login(&self, _s: SessionInfo<'_>) {}
    /// A login failed (the password is never passed on).
    fn on_login_failed(&self, _s: SessionInfo<'_>, _username: &str) {}
    /// A user logged out (QUIT, a new USER, or a disconnect after login).
    fn on_logout(&self, _s: SessionInfo<'_>) {}
    /// A RETR finished and every byte was sent.
    fn on_file_sent(&self, _s: SessionInfo<'_>, _path: &Path) {}
    /// A STOR, APPE or STOU finished and every byte was written.
    fn on_file_received(&self, _s: SessionInfo<'_>, _path: &Path) {}
    /// A RETR ended early (error, ABOR or disconnect).
    fn on_incomplete_file_sent(&self, _s: SessionInfo<'_>, _path: &Path) {}
    /// An upload ended early (error, ABOR or disconnect); the partial file is left in place.
    fn on_incomplete_file_received(&self, _s: SessionInfo<'_>, _path: &Path) {}
    /// A file transfer (RETR, STOR, APPE, STOU) ended, completed or not; called after the
    /// matching `on_file_*` hook. This is what transfer logs such as xferlog are made from.
    fn on_transfer_end(&self, _s: SessionInfo<'_>, _t: &TransferRecord<'_>) {}
    /// DELE removed a file.
    fn on_file_deleted(&self, _s: SessionInfo<'_>, _path: &Path) {}
    /// RNFR/RNTO renamed a file or directory.
    fn on_file_renamed(&self, _s: SessionInfo<'_>, _from: &Path, _to: &Path) {}
    /// MKD created a directory.
    fn on_dir_created(&self, _s: SessionInfo<'_>, _path: &Path) {}
    /// RMD removed a directory.
    fn on_dir_removed(&self, _s: SessionInfo<'_>, _path: &Path) {}
}

/// Hooks that do nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoHooks;

impl Hooks for NoHooks {}

/// Several [`Hooks`] in one `Config::hooks` slot, called in order: for example your own
/// callbacks and an [`XferLog`](crate::xferlog::XferLog).
///
/// ```
/// use std::sync::Arc;
/// use ftpdlib::hooks::{HookList, NoHooks};
/// let mut config = ftpdlib::Config::default();
/// config.hooks = Arc::new(HookList(vec![Arc::clone(&config.hooks), Arc::new(NoHooks)]));
/// ```
#[derive(Default, Clone)]
pub struct HookList(pub Vec<Arc<dyn Hooks>>);

impl std::fmt::Debug for HookList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HookList({} hooks)", self.0.len())
    }
}

impl Hooks for HookList {
    fn on_connect(&self, s: SessionInfo<'_>) {
        self.0.iter().for_each(|h| h.on_connect(s));
    }
    fn on_disconnect(&self, s: SessionInfo<'_>) {
        self.0.iter().for_each(|h| h.on_disconnect(s));
    }
    fn on_login(&self, s: SessionInfo<'_>) {
        self.0.iter().for_each(|h| h.on_login(s));
    }
    fn on_login_failed(&self, s: SessionInfo<'_>, username: &str) {
        self.0.iter().for_each(|h| h.on_login_failed(s, username));
    }
    fn on_logout(&self, s: SessionInfo<'_>) {
        self.0.iter().for_each(|h| h.on_logout(s));
    }
    fn on_file_sent(&self, s: SessionInfo<'_>, path: &Path) {
        self.0.iter().for_each(|h| h.on_file_sent(s, path));
    }
    fn on_file_received(&self, s: SessionInfo<'_>, path: &Path) {
        self.0.iter().for_each(|h| h.on_file_received(s, path));
    }
    fn on_incomplete_file_sent(&self, s: SessionInfo<'_>, path: &Path) {
        self.0
            .iter()
            .for_each(|h| h.on_incomplete_file_sent(s, path));
    }
    fn on_incomplete_file_received(&self, s: SessionInfo<'_>, path: &Path) {
        self.0
            .iter()
            .for_each(|h| h.on_incomplete_file_received(s, path));
    }
    fn on_transfer_end(&self, s: SessionInfo<'_>, t: &TransferRecord<'_>) {
        self.0.iter().for_each(|h| h.on_transfer_end(s, t));
    }
    fn on_file_deleted(&self, s: SessionInfo<'_>, path: &Path) {
        self.0.iter().for_each(|h| h.on_file_deleted(s, path));
    }
    fn on_file_renamed(&self, s: SessionInfo<'_>, from: &Path, to: &Path) {
        self.0.iter().for_each(|h| h.on_file_renamed(s, from, to));
    }
    fn on_dir_created(&self, s: SessionInfo<'_>, path: &Path) {
        self.0.iter().for_each(|h| h.on_dir_created(s, path));
    }
    fn on_dir_removed(&self, s: SessionInfo<'_>, path: &Path) {
        self.0.iter().for_each(|h| h.on_dir_removed(s, path));
    }
}
