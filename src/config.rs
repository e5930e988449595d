//! Session settings: what pyftpdlib keeps as class attributes of `FTPHandler` and
//! `DTPHandler`, gathered in one value shared by every session of a server.

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
use crate::tls::TlsConfig;

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
    /// FTPS: certificate and policies; default none (plain FTP, AUTH answered with 502).
    pub tls: Option<TlsConfig>,
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
            max_login_attempts: 3,
            auth_failed_timeout: Duration::from_secs(3),
            permit_foreign_addresses: false,
            permit_privileged_ports: false,
            masquerade_address: None,
            passive_ports: None,
            use_gmt_times: true,
            use_sendfile: true,
            dtp: DtpConfig::default(),
            tls: None,
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
            .field("max_login_attempts", &self.max_login_attempts)
            .field("auth_failed_timeout", &self.auth_failed_timeout)
            .field("permit_foreign_addresses", &self.permit_foreign_addresses)
            .field("permit_privileged_ports", &self.permit_privileged_ports)
            .field("masquerade_address", &self.masquerade_address)
            .field("passive_ports", &self.passive_ports)
            .field("use_gmt_times", &self.use_gmt_times)
            .field("use_sendfile", &self.use_sendfile)
            .field("dtp", &self.dtp)
            .field("tls", &self.tls)
            .finish_non_exhaustive()
    }
}

/// Settings of data channels (pyftpdlib's `DTPHandler` attributes).
#[doc(alias = "DTPHandler")]
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
}

impl Default for DtpConfig {
    fn default() -> Self {
        DtpConfig {
            timeout: Some(Duration::from_secs(300)),
            accept_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(30),
            ac_in_buffer_size: 65536,
            ac_out_buffer_size: 65536,
        }
    }
}
