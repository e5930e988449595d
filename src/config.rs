//! Session settings: what pyftpdlib keeps as class attributes of `FTPHandler` and
//! `DTPHandler`, gathered in one value shared by every session of a server.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::net::IpAddr;
use std::ops::RangeInclusive;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::authorizer::{Authorizer, DummyAuthorizer};
use crate::filesystem::{Filesystem, OsFilesystem};
use crate::hooks::{Hooks, NoHooks};
use crate::throttle::Limits;

/// Makes the [`Filesystem`] of a session from the user's home directory.
pub type FilesystemFactory = Arc<dyn Fn(&Path) -> io::Result<Box<dyn Filesystem>> + Send + Sync>;

/// Settings of the control channel, shared by all sessions (pyftpdlib's `FTPHandler`
/// attributes).
///
/// # Examples
/// ```
/// use std::sync::Arc;
/// use ftpdlib::{Config, DummyAuthorizer};
/// let mut auth = DummyAuthorizer::new();
/// auth.add_anonymous(std::env::temp_dir(), "elr").unwrap();
/// let mut config = Config::new(Arc::new(auth));
/// config.banner = "welcome".into();
/// config.max_login_attempts = 5;
/// ```
#[doc(alias = "FTPHandler")]
#[derive(Clone)]
pub struct Config {
    /// Who may log in and what they may do.
    pub authorizer: Arc<dyn Authorizer>,
    /// Makes each session's filesystem view; default [`OsFilesystem`].
    pub filesystem: FilesystemFactory,
    /// Session callbacks; default none.
    pub hooks: Arc<dyn Hooks>,
    /// Text of the 220 greeting; default `"ftpdlib <version> ready."`.
    pub banner: String,
    /// Idle time allowed between commands before "421 Control connection timed out.";
    /// default 300 s. Not counted while a transfer runs. `None` disables it.
    pub timeout: Option<Duration>,
    /// Time allowed from connect to a successful login before "421 Login timed out." and
    /// the close; default none (pyftpdlib has no such limit: only the idle timeout ends a
    /// session that never logs in). Runs across failed-login delays and is not reset by
    /// commands.
    pub login_timeout: Option<Duration>,
    /// Failed logins before the session is closed; default 3.
    pub max_login_attempts: u32,
    /// Delay before answering a failed login with 530, during which the session reads
    /// nothing; default 3 s (slows password guessing).
    pub auth_failed_timeout: Duration,
    /// Allow PORT/EPRT to an address other than the client's (FXP); default false.
    pub permit_foreign_addresses: bool,
    /// Allow PORT/EPRT to ports below 1024; default false.
    pub permit_privileged_ports: bool,
    /// Address to announce in 227 replies instead of the local one (behind NAT); default none.
    pub masquerade_address: Option<IpAddr>,
    /// Ports to use for passive listeners; default any the kernel picks.
    pub passive_ports: Option<RangeInclusive<u16>>,
    /// Show listing times in UTC (default true) rather than local time.
    pub use_gmt_times: bool,
    /// Use sendfile(2) for binary RETR; default true.
    pub use_sendfile: bool,
    /// Data channel settings.
    pub dtp: DtpConfig,
    /// Bandwidth limits of the whole server, shared by every transfer; default none. They
    /// combine with the per-transfer ([`DtpConfig`]) and per-user ([`user_limits`](Self::user_limits))
    /// limits: the tightest applicable one wins at every moment.
    pub max_rate: Limits,
    /// Bandwidth limits per user name, shared by all sessions of that user; default none.
    /// Users not in the map have no per-user limit.
    pub user_limits: HashMap<String, Limits>,
    /// Flood limits (failed-login bans, command rate); default all off.
    pub flood: FloodConfig,
}

impl Config {
    /// Default settings around an authorizer.
    pub fn new(authorizer: Arc<dyn Authorizer>) -> Config {
        Config {
            authorizer,
            filesystem: Arc::new(|root: &Path| {
                Ok(Box::new(OsFilesystem::new(root)?) as Box<dyn Filesystem>)
            }),
            hooks: Arc::new(NoHooks),
            banner: format!("ftpdlib {} ready.", crate::VERSION),
            timeout: Some(Duration::from_secs(300)),
            login_timeout: None,
            max_login_attempts: 3,
            auth_failed_timeout: Duration::from_secs(3),
            permit_foreign_addresses: false,
            permit_privileged_ports: false,
            masquerade_address: None,
            passive_ports: None,
            use_gmt_times: true,
            use_sendfile: true,
            dtp: DtpConfig::default(),
            max_rate: Limits::default(),
            user_limits: HashMap::new(),
            flood: FloodConfig::default(),
        }
    }
}

impl Default for Config {
    /// Settings with an empty [`DummyAuthorizer`]: nobody can log in until users are added.
    fn default() -> Config {
        Config::new(Arc::new(DummyAuthorizer::new()))
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("banner", &self.banner)
            .field("timeout", &self.timeout)
            .field("login_timeout", &self.login_timeout)
            .field("max_login_attempts", &self.max_login_attempts)
            .field("auth_failed_timeout", &self.auth_failed_timeout)
            .field("permit_foreign_addresses", &self.permit_foreign_addresses)
            .field("permit_privileged_ports", &self.permit_privileged_ports)
            .field("masquerade_address", &self.masquerade_address)
            .field("passive_ports", &self.passive_ports)
            .field("use_gmt_times", &self.use_gmt_times)
            .field("use_sendfile", &self.use_sendfile)
            .field("dtp", &self.dtp)
            .field("max_rate", &self.max_rate)
            .field("user_limits", &self.user_limits)
            .field("flood", &self.flood)
            .finish_non_exhaustive()
    }
}

/// Settings of data channels (pyftpdlib's `DTPHandler` attributes, and those of
/// `ThrottledDTPHandler`: [`read_limit`](Self::read_limit) and
/// [`write_limit`](Self::write_limit)).
///
/// # Examples
/// Each transfer at most 64 KiB/s down and 32 KiB/s up:
/// ```
/// use ftpdlib::Config;
/// let mut config = Config::default();
/// config.dtp.write_limit = 64 * 1024;
/// config.dtp.read_limit = 32 * 1024;
/// ```
#[doc(alias = "DTPHandler", alias = "ThrottledDTPHandler")]
#[derive(Debug, Clone)]
pub struct DtpConfig {
    /// A transfer that makes no progress for this long is aborted with "421 Data connection
    /// timed out." and the session closed; default 300 s. `None` disables it.
    pub timeout: Option<Duration>,
    /// How long a passive listener waits for the client to connect; default 30 s.
    pub accept_timeout: Duration,
    /// How long an active (PORT) connection may take to establish; default 30 s.
    pub connect_timeout: Duration,
    /// Receive buffer for uploads, in bytes; default 65536.
    pub ac_in_buffer_size: usize,
    /// Send chunk for downloads, in bytes; default 65536.
    pub ac_out_buffer_size: usize,
    /// Most bytes per second one transfer may read from the client (uploads: STOR, APPE,
    /// STOU); default 0, no limit.
    pub read_limit: u64,
    /// Most bytes per second one transfer may write to the client (downloads, sendfile(2)
    /// included, and listings); default 0, no limit.
    pub write_limit: u64,
}

impl DtpConfig {
    /// The per-transfer limits as a pair.
    pub fn limits(&self) -> Limits {
        Limits {
            read_limit: self.read_limit,
            write_limit: self.write_limit,
        }
    }
}

impl Default for DtpConfig {
    fn default() -> Self {
        DtpConfig {
            timeout: Some(Duration::from_secs(300)),
            accept_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(30),
            ac_in_buffer_size: 65536,
            ac_out_buffer_size: 65536,
            read_limit: 0,
            write_limit: 0,
        }
    }
}

/// Flood limits: bans for addresses that keep failing to log in, and a cap on the command
/// rate of a session (pyftpdlib's anti-flood demo, built in). Everything is off by default.
///
/// # Examples
/// Ban an address for ten minutes after 5 failed logins within a minute, and close sessions
/// that send more than 50 commands in a second:
/// ```
/// use std::time::Duration;
/// use ftpdlib::Config;
/// let mut config = Config::default();
/// config.flood.max_failed_logins = 5;
/// config.flood.failed_login_window = Duration::from_secs(60);
/// config.flood.ban_duration = Duration::from_secs(600);
/// config.flood.max_commands_per_sec = 50;
/// ```
#[derive(Debug, Clone)]
pub struct FloodConfig {
    /// Failed logins from one IP address, over all its sessions, within
    /// [`failed_login_window`](Self::failed_login_window) that get it banned; 0 (default)
    /// turns bans off. A banned address is answered "421 Too many failed logins; try again
    /// later." at connect.
    pub max_failed_logins: u32,
    /// The window failed logins are counted in; default 60 s.
    pub failed_login_window: Duration,
    /// How long a ban lasts; default 300 s.
    pub ban_duration: Duration,
    /// Most addresses tracked at once (counting failures or banned); default 10000. When the
    /// table is full the entry closest to expiry makes room, so memory stays bounded under
    /// attack from many addresses.
    pub max_tracked: usize,
    /// Commands a session may send in one second; one more and it gets "421 Too many
    /// commands per second." and is closed. 0 (default) for no limit.
    pub max_commands_per_sec: u32,
}

impl Default for FloodConfig {
    fn default() -> Self {
        FloodConfig {
            max_failed_logins: 0,
            failed_login_window: Duration::from_secs(60),
            ban_duration: Duration::from_secs(300),
            max_tracked: 10_000,
            max_commands_per_sec: 0,
        }
    }
}
