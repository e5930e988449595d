//! The contract between the session core and the data side: the [`Action`]s a session asks
//! its owner to carry out, the [`Transfer`] it hands over, and the reports that come back
//! ([`DataFailure`], [`TransferError`]). Re-exported from [`session`](super), where every
//! user names them.

use std::io;
use std::net::SocketAddr;

use super::Request;
#[cfg(doc)]
use super::Session;
use crate::filesystem::{FileReader, FileWriter};
use crate::listing::Listing;

/// Something the session needs its owner to do.
#[derive(Debug)]
pub enum Action {
    /// Drop the data channel (listener, pending connection or socket) and any transfer on
    /// it, without reporting back.
    CloseData,
    /// Open a passive listener on the control connection's local address; report with
    /// [`Session::handle_passive_ready`].
    Listen {
        /// EPSV rather than PASV.
        extended: bool,
    },
    /// Connect to the client for an active transfer; report with
    /// [`Session::handle_data_connected`] or [`Session::handle_data_failed`].
    Connect(SocketAddr),
    /// Run a transfer on the data channel, now or as soon as it is connected; report with
    /// [`Session::handle_transfer_done`].
    Transfer(Transfer),
    /// Close the control connection once the queued replies are written.
    Close,
    /// A login failed: the owner counts it against the client's address (flood limits).
    LoginFailed,
    /// Switch the control connection to TLS once the queued replies (the 234 to AUTH) are
    /// written, discarding whatever plaintext the client sent after AUTH; then call
    /// [`Session::handle_tls_started`].
    StartTls,
    /// Run a request that may block (a storage call, a password check), on the worker pool
    /// or at once where [`Request::is_inline`] allows; report with
    /// [`Session::handle_completion`].
    Request(Request),
    /// CCC: once the 200 is written, send close_notify, read up to the client's, and go on
    /// in plaintext; then call [`Session::handle_tls_ended`].
    EndTls,
}

/// A transfer for the data channel to run.
#[derive(Debug)]
pub struct Transfer {
    /// What moves, and which way.
    pub direction: Direction,
    /// TYPE A: convert line endings (LF to CRLF when sending, CRLF to LF when receiving).
    pub ascii: bool,
    /// Whether sendfile(2) may be used (binary file sends in the clear only).
    pub use_sendfile: bool,
    /// PROT P: the data connection runs TLS, the server in the server role.
    pub tls: bool,
}

/// The two directions of a transfer.
#[derive(Debug)]
pub enum Direction {
    /// Server to client.
    Send(Source),
    /// Client to server, into this file (already positioned).
    Receive(Box<dyn FileWriter>),
}

/// What a sending transfer sends.
#[derive(Debug)]
pub enum Source {
    /// A file from `offset` to its end.
    File {
        /// The open file, positioned at `offset`.
        file: Box<dyn FileReader>,
        /// Where it starts (REST); sendfile(2) reads the descriptor from here.
        offset: u64,
    },
    /// A listing, made a piece at a time as the data channel asks for it.
    Listing(Box<Listing>),
}

/// Why a data connection could not be made or kept.
#[derive(Debug)]
pub enum DataFailure {
    /// The active connection failed.
    ConnectFailed(io::Error),
    /// The active connection did not complete in time.
    ConnectTimeout,
    /// Nobody connected to the passive listener in time.
    AcceptTimeout,
    /// Accepting the client's connection to the passive listener failed on the server's
    /// side (out of descriptors, EMFILE/ENFILE, or of memory); the listener is closed.
    AcceptFailed(io::Error),
    /// A connection to the passive listener came from a foreign address; the listener stays.
    ForeignPeer(SocketAddr),
}

/// How a transfer ended.
#[derive(Debug)]
pub enum TransferError {
    /// The data connection failed or closed early.
    Connection(io::Error),
    /// Reading or writing the local file failed.
    File(io::Error),
    /// No progress for the data timeout.
    Stalled,
    /// The data connection's TLS failed: handshake, protocol error, missing session reuse.
    Tls(String),
}
