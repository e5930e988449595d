//! ftpdlib: an FTP server library built as a single-threaded mio reactor, after pyftpdlib.
//!
//! # Layers
//!
//! From the wire inwards:
//!
//! - [`FtpServer`] (pyftpdlib's `FTPServer` and IOLoop) owns the listeners, a slab of channels
//!   keyed by mio token, and a timer heap ([`ioloop::timer`]). It runs alone
//!   ([`FtpServer::serve_forever`]) or inside your own `mio::Poll`.
//! - Control channels read command lines and write replies; data channels
//!   (pyftpdlib's `DTPHandler`) accept or connect, then move bytes with sendfile(2).
//! - [`Session`] (the `FTPHandler` logic) is the protocol without sockets: lines, data events
//!   and the time go in; replies, [`Action`](control::session::Action)s and deadlines come
//!   out. It is tested without a network on a made-up clock.
//! - [`throttle`] holds the token buckets behind the bandwidth limits (per transfer, per
//!   user, whole server; see [`DtpConfig`] and [`Config::max_rate`]); a transfer that has
//!   spent its allowance sleeps on the timer heap until they refill.
//! - [`tls`] (pyftpdlib's `TLS_FTPHandler`): FTPS, explicit (AUTH TLS) and implicit, over
//!   rustls, behind the `tls` cargo feature (on by default).
//! - [`Authorizer`] ([`DummyAuthorizer`], [`UnixAuthorizer`]) decides who logs in with which
//!   [`Perms`] and, for system users, under which ids each command runs;
//!   [`Filesystem`] ([`OsFilesystem`], pyftpdlib's `AbstractedFS`) jails each session in its
//!   home directory.
//!
//! # Serving a directory
//!
//! ```no_run
//! use std::sync::Arc;
//! use ftpdlib::{Config, DummyAuthorizer, FtpServer};
//!
//! let mut auth = DummyAuthorizer::new();
//! auth.add_user("user", "12345", ".", "elradfmw").unwrap();
//! auth.add_anonymous(".", "elr").unwrap();
//! let mut server = FtpServer::bind("127.0.0.1:2121", Config::new(Arc::new(auth))).unwrap();
//! server.serve_forever(None, None).unwrap();
//! ```
//!
//! # Embedding in your mio loop
//!
//! The server takes a range of tokens from the one you give it and shares your poll and
//! thread with your own sources:
//!
//! ```no_run
//! use std::sync::Arc;
//! use std::time::Instant;
//! use mio::{Events, Poll, Token};
//! use ftpdlib::{Config, DummyAuthorizer, FtpServer};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mut authorizer = DummyAuthorizer::new();
//! authorizer.add_anonymous(".", "elr")?;
//! let mut poll = Poll::new()?;
//! let mut events = Events::with_capacity(256);
//! let mut ftp = FtpServer::bind("127.0.0.1:2121", Config::new(Arc::new(authorizer)))?;
//! ftp.register(poll.registry(), Token(1 << 20))?;       // tokens below are yours
//! loop {
//!     let timeout = ftp.next_timeout().map(|d| d.saturating_duration_since(Instant::now()));
//!     poll.poll(&mut events, timeout)?;
//!     let now = Instant::now();
//!     for event in events.iter() {
//!         if ftp.owns(event.token()) { ftp.handle_event(event, now) } else { /* your sockets */ }
//!     }
//!     ftp.handle_timeouts(Instant::now());
//! }
//! # }
//! ```
//!
//! README.md shows the same loop (`tests/readme.rs` checks that it is this one, which
//! compiles).
//!
//! # Logging
//!
//! Through the `log` crate on three targets, after pyftpdlib's `log`, `logline` and
//! `logerror`; see [`logger`]. The library installs no logger. [`XferLog`] writes a transfer
//! log in the xferlog format of wu-ftpd, vsftpd and proftpd.
//!
//! # Counters
//!
//! [`ServerStats`] counts sessions, logins, commands by verb, replies by code, bytes, files,
//! transfers, data connection failures and TLS handshakes in lock-free atomics that any
//! thread may read while the server runs ([`FtpServer::stats`]); the `ftpdlib` command
//! serves them to Prometheus.

#![deny(missing_docs, missing_debug_implementations, rust_2018_idioms)]
#![cfg_attr(test, deny(warnings))]
#![doc(test(attr(deny(warnings))))]

#[macro_use]
mod setters;
mod sockopt;

pub mod authorizer;
pub mod config;
pub mod control;
mod data;
pub mod filesystem;
mod flood;
pub mod hooks;
pub mod ioloop;
pub mod listing;
pub mod logger;
pub mod pool;
#[cfg(feature = "proxy-protocol")]
pub mod proxy;
pub mod server;
pub mod stats;
pub mod throttle;
pub mod tls;
pub mod xferlog;

#[cfg(test)]
mod testutil;

pub use authorizer::unix::{UnixAuthorizer, UnixOptions};
pub use authorizer::{AuthError, Authorizer, AuthorizerError, DummyAuthorizer, Perms};
pub use config::{Config, DtpConfig, FloodConfig, MasqueradeRule};
pub use control::session::Session;
pub use filesystem::{Filesystem, MemoryFilesystem, MemoryStore, OsFilesystem};
#[cfg(feature = "opendal")]
pub use filesystem::{ObjectFilesystem, ObjectSettings, ObjectStore, S3Settings};
pub use hooks::{HookList, Hooks, NoHooks, SessionInfo, TransferRecord};
pub use ioloop::token::TOKEN_SPAN;
pub use server::{cores, CallLater, FtpServer, GroupHandle, ServerGroup, StopHandle};
pub use stats::ServerStats;
pub use throttle::Limits;
#[cfg(feature = "tls")]
pub use tls::TlsError;
pub use tls::{TlsConfig, TlsRequired};
pub use xferlog::XferLog;

/// The crate version, as shown in the default banner.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
