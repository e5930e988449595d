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
use crate::filesystem::{Filesystem, Homes};
use crate::hooks::{Hooks, NoHooks};
use crate::throttle::Limits;
use crate::tls::policy::TlsConfig;

/// Makes the [`Filesystem`] of a session from the user's home directory.
pub type FilesystemFactory = Arc<dyn Fn(&Path) -> io::Result<Arc<dyn Filesystem>> + Send + Sync>;

/// Settings of the control channel, shared by all sessions (pyftpdlib's `FTPHandler`
/// attributes).
///
/// Made with [`Config::new`] (or `Default`), then changed field by field or with the
/// `with_*` setters; it is `#[non_exhaustive]`, so that new settings break no program.
///
/// Any `Duration` is accepted here and in [`DtpConfig`], [`FloodConfig`], `TlsConfig` and
/// `ProxyProtocol`: one longer than [`FAR_FUTURE`](crate::ioloop::FAR_FUTURE) (100 years,
/// `Duration::MAX` included) is cut to it by [`deadline`](crate::ioloop::deadline), which
/// in effect means never, and never panics.
///
/// # Examples
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use ftpdlib::{Config, DummyAuthorizer};
/// let mut auth = DummyAuthorizer::new();
/// auth.add_anonymous(std::env::temp_dir(), "elr").unwrap();
/// let mut config = Config::new(Arc::new(auth))
///     .with_banner("welcome")
///     .with_timeout(Duration::from_secs(60));
/// config.max_login_attempts = 5;
/// ```
#[doc(alias = "FTPHandler")]
#[derive(Clone)]
#[non_exhaustive]
pub struct Config {
    /// Who may log in and what they may do.
    pub authorizer: Arc<dyn Authorizer>,
    /// Makes each session's filesystem view; default
    /// [`OsFilesystem`](crate::filesystem::OsFilesystem), each home opened once and shared
    /// by the sessions of this `Config` (and its clones) while the home's path still leads
    /// to the same directory: a login then costs one stat(2) of the path.
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
    /// Unknown commands (and over-long lines) allowed before login; the next one is
    /// answered with its 500, then "421 Too many unknown commands." and the close. A line
    /// that looks like HTTP (`GET / HTTP/1.1`, a `Host:` header) closes the session at
    /// once with 421. Default 3; 0 turns both checks off. Defends against cross-protocol
    /// attacks (ALPACA, 2021), where a browser is made to send an HTTP request to the FTP
    /// port and the server's replies to its lines are taken for the web site's content.
    /// pyftpdlib has no such limit.
    pub max_unknown_commands_before_login: u32,
    /// Commands turned off, by name (`"MFMT"`, `"SITE"`; an alias such as `XMKD` turns off
    /// the command it names): they are answered as unknown ones, "500 Command ... not
    /// understood.", and left out of FEAT and HELP, as pyftpdlib does for a command deleted
    /// from `proto_cmds`. Default none. The daemon turns MFMT off for an object store,
    /// whose times can't be set, so that clients that set times after each upload when
    /// FEAT offers MFMT (rclone) do not take the refusal for a failed upload.
    pub disabled_commands: Vec<String>,
    /// Allow PORT/EPRT to an address other than the client's (FXP); default false.
    pub permit_foreign_addresses: bool,
    /// Allow PORT/EPRT to ports below 1024; default false.
    pub permit_privileged_ports: bool,
    /// Address to announce in 227 replies instead of the local one (behind NAT); default none.
    pub masquerade_address: Option<IpAddr>,
    /// Addresses to announce in 227 replies by the client's network, first match wins, before
    /// `masquerade_address`: clients on the LAN get the private address, the rest the
    /// public one. Default empty.
    pub masquerade_map: Vec<MasqueradeRule>,
    /// Ports to use for passive listeners; default any the kernel picks.
    pub passive_ports: Option<RangeInclusive<u16>>,
    /// Show listing times in UTC (default true) rather than local time.
    pub use_gmt_times: bool,
    /// Use the kernel's copy for binary transfers in the clear: sendfile(2) for RETR, and
    /// splice(2) through a pipe for STOR, APPE and STOU into a file with a descriptor
    /// (Linux); default true. Off, every transfer is read and written through a buffer.
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
    /// Worker threads for work that may block (storage calls, password checks); default 0,
    /// meaning the number of cores and at least 2. Read when the server first needs them.
    /// Each reactor of a [`ServerGroup`](crate::ServerGroup) has a pool of its own.
    pub io_threads: usize,
    /// FTPS: certificate and policies; default none (plain FTP, AUTH answered with 502).
    pub tls: Option<TlsConfig>,
    /// PROXY protocol: read a load balancer's header at the start of every control
    /// connection and serve the client it names; default none (off). See
    /// [`ProxyProtocol`](crate::proxy::ProxyProtocol) for what changes and what is refused.
    #[cfg(feature = "proxy-protocol")]
    pub proxy_protocol: Option<crate::proxy::ProxyProtocol>,
    /// The default `filesystem` and the homes it keeps open: a login may look at them
    /// only while `filesystem` is still that factory.
    pub(crate) default_storage: (FilesystemFactory, Arc<Homes>),
}

impl Config {
    /// Default settings around an authorizer.
    pub fn new(authorizer: Arc<dyn Authorizer>) -> Config {
        // A login of a home already open costs at most one stat(2), not an open.
        let homes = Arc::new(Homes::default());
        let kept = Arc::clone(&homes);
        let factory: FilesystemFactory =
            Arc::new(move |root: &Path| Ok(Arc::new(kept.open(root)?) as Arc<dyn Filesystem>));
        let default_storage = (factory, homes);
        Config {
            authorizer,
            filesystem: Arc::clone(&default_storage.0),
            hooks: Arc::new(NoHooks),
            banner: format!("ftpdlib {} ready.", crate::VERSION),
            timeout: Some(Duration::from_secs(300)),
            login_timeout: None,
            max_login_attempts: 3,
            auth_failed_timeout: Duration::from_secs(3),
            max_unknown_commands_before_login: 3,
            disabled_commands: Vec::new(),
            permit_foreign_addresses: false,
            permit_privileged_ports: false,
            masquerade_address: None,
            masquerade_map: Vec::new(),
            passive_ports: None,
            use_gmt_times: true,
            use_sendfile: true,
            dtp: DtpConfig::default(),
            max_rate: Limits::default(),
            user_limits: HashMap::new(),
            flood: FloodConfig::default(),
            tls: None,
            io_threads: 0,
            #[cfg(feature = "proxy-protocol")]
            proxy_protocol: None,
            default_storage,
        }
    }

    /// The homes the default storage keeps open, while `filesystem` is that storage.
    pub(crate) fn homes(&self) -> Option<&Arc<Homes>> {
        let (factory, homes) = &self.default_storage;
        Arc::ptr_eq(factory, &self.filesystem).then_some(homes)
    }

    /// Sets [`authorizer`](Self::authorizer) and returns the settings.
    #[must_use]
    pub fn with_authorizer(mut self, authorizer: Arc<dyn Authorizer>) -> Config {
        self.authorizer = authorizer;
        self
    }

    /// Sets [`filesystem`](Self::filesystem) and returns the settings.
    #[must_use]
    pub fn with_filesystem(mut self, filesystem: FilesystemFactory) -> Config {
        self.filesystem = filesystem;
        self
    }

    /// Whether [`disabled_commands`](Self::disabled_commands) turns `verb` off.
    pub(crate) fn is_disabled(&self, verb: crate::control::command::Verb) -> bool {
        self.disabled_commands
            .iter()
            .any(|name| crate::control::command::lookup(name).is_some_and(|c| c.verb == verb))
    }

    /// Sets [`hooks`](Self::hooks) and returns the settings.
    #[must_use]
    pub fn with_hooks(mut self, hooks: Arc<dyn Hooks>) -> Config {
        self.hooks = hooks;
        self
    }
}

with_setters!(Config {
    with_max_login_attempts => max_login_attempts: u32,
    with_auth_failed_timeout => auth_failed_timeout: Duration,
    with_max_unknown_commands_before_login => max_unknown_commands_before_login: u32,
    with_disabled_commands => disabled_commands: Vec<String>,
    with_permit_foreign_addresses => permit_foreign_addresses: bool,
    with_permit_privileged_ports => permit_privileged_ports: bool,
    with_masquerade_map => masquerade_map: Vec<MasqueradeRule>,
    with_use_gmt_times => use_gmt_times: bool,
    with_use_sendfile => use_sendfile: bool,
    with_dtp => dtp: DtpConfig,
    with_max_rate => max_rate: Limits,
    with_user_limits => user_limits: HashMap<String, Limits>,
    with_flood => flood: FloodConfig,
    with_io_threads => io_threads: usize,
});

with_setters!(Config into {
    with_banner => banner: String,
    with_timeout => timeout: Option<Duration>,
    with_login_timeout => login_timeout: Option<Duration>,
    with_masquerade_address => masquerade_address: Option<IpAddr>,
    with_passive_ports => passive_ports: Option<RangeInclusive<u16>>,
    with_tls => tls: Option<TlsConfig>,
});

impl Default for Config {
    /// Settings with an empty [`DummyAuthorizer`]: nobody can log in until users are added.
    fn default() -> Config {
        Config::new(Arc::new(DummyAuthorizer::new()))
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Config");
        d.field("banner", &self.banner)
            .field("timeout", &self.timeout)
            .field("login_timeout", &self.login_timeout)
            .field("max_login_attempts", &self.max_login_attempts)
            .field("auth_failed_timeout", &self.auth_failed_timeout)
            .field(
                "max_unknown_commands_before_login",
                &self.max_unknown_commands_before_login,
            )
            .field("permit_foreign_addresses", &self.permit_foreign_addresses)
            .field("permit_privileged_ports", &self.permit_privileged_ports)
            .field("masquerade_address", &self.masquerade_address)
            .field("masquerade_map", &self.masquerade_map)
            .field("passive_ports", &self.passive_ports)
            .field("use_gmt_times", &self.use_gmt_times)
            .field("use_sendfile", &self.use_sendfile)
            .field("dtp", &self.dtp)
            .field("max_rate", &self.max_rate)
            .field("user_limits", &self.user_limits)
            .field("flood", &self.flood)
            .field("tls", &self.tls);
        #[cfg(feature = "proxy-protocol")]
        d.field("proxy_protocol", &self.proxy_protocol);
        d.finish_non_exhaustive()
    }
}

/// One entry of [`Config::masquerade_map`]: clients in `network/prefix` are told `address`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MasqueradeRule {
    /// The client network.
    pub network: IpAddr,
    /// Its prefix length in bits.
    pub prefix: u8,
    /// The address to announce to those clients.
    pub address: IpAddr,
}

impl MasqueradeRule {
    /// Whether `ip` lies in the rule's network (IPv4-mapped addresses count as IPv4).
    pub fn matches(&self, ip: IpAddr) -> bool {
        match (self.network.to_canonical(), ip.to_canonical()) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let bits = u32::from(self.prefix.min(32));
                let mask = if bits == 0 {
                    0
                } else {
                    u32::MAX << (32 - bits)
                };
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let bits = u32::from(self.prefix.min(128));
                let mask = if bits == 0 {
                    0
                } else {
                    u128::MAX << (128 - bits)
                };
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }

    /// Parses `NETWORK/PREFIX=ADDRESS`, e.g. `10.0.0.0/8=10.0.0.5`.
    pub fn parse(s: &str) -> Option<MasqueradeRule> {
        let (net, address) = s.split_once('=')?;
        let (network, prefix) = net.split_once('/')?;
        let network: IpAddr = network.trim().parse().ok()?;
        let prefix: u8 = prefix.trim().parse().ok()?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        (prefix <= max).then_some(())?;
        Some(MasqueradeRule {
            network,
            prefix,
            address: address.trim().parse().ok()?,
        })
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
#[non_exhaustive]
pub struct DtpConfig {
    /// A transfer that makes no progress for this long is aborted with "421 Data connection
    /// timed out." and the session closed; default 300 s. `None` disables it.
    pub timeout: Option<Duration>,
    /// How long a passive listener waits for the client to connect; default 30 s.
    pub accept_timeout: Duration,
    /// How long an active (PORT) connection may take to establish; default 30 s.
    pub connect_timeout: Duration,
    /// Receive buffer for uploads, in bytes; default 65536. Uploads read through a buffer
    /// (TLS, TYPE A, storage without a descriptor) read up to 256 KiB at a time, or this
    /// size if larger, into one buffer that the uploads of a reactor share; uploads that
    /// splice(2) (see [`Config::use_sendfile`](crate::Config::use_sendfile)) use none.
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

with_setters!(DtpConfig {
    with_accept_timeout => accept_timeout: Duration,
    with_connect_timeout => connect_timeout: Duration,
    with_ac_in_buffer_size => ac_in_buffer_size: usize,
    with_ac_out_buffer_size => ac_out_buffer_size: usize,
    with_read_limit => read_limit: u64,
    with_write_limit => write_limit: u64,
});

with_setters!(DtpConfig into {
    with_timeout => timeout: Option<Duration>,
});

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
/// use ftpdlib::{Config, FloodConfig};
/// let config = Config::default().with_flood(
///     FloodConfig::default()
///         .with_max_failed_logins(5)
///         .with_failed_login_window(Duration::from_secs(60))
///         .with_ban_duration(Duration::from_secs(600))
///         .with_max_commands_per_sec(50),
/// );
/// assert_eq!(config.flood.max_commands_per_sec, 50);
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
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

with_setters!(FloodConfig {
    with_max_failed_logins => max_failed_logins: u32,
    with_failed_login_window => failed_login_window: Duration,
    with_ban_duration => ban_duration: Duration,
    with_max_tracked => max_tracked: usize,
    with_max_commands_per_sec => max_commands_per_sec: u32,
});

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masquerade_rules() {
        let r = MasqueradeRule::parse("10.0.0.0/8=10.0.0.5").unwrap();
        assert!(r.matches("10.20.30.40".parse().unwrap()));
        assert!(r.matches("::ffff:10.1.1.1".parse().unwrap()));
        assert!(!r.matches("11.0.0.1".parse().unwrap()));
        assert!(!r.matches("::1".parse().unwrap()));
        let all = MasqueradeRule::parse("0.0.0.0/0=203.0.113.7").unwrap();
        assert!(all.matches("198.51.100.1".parse().unwrap()));
        assert!(MasqueradeRule::parse("10.0.0.0/33=1.2.3.4").is_none());
        assert!(MasqueradeRule::parse("10.0.0.0=1.2.3.4").is_none());
        let v6 = MasqueradeRule::parse("fd00::/8=2001:db8::1").unwrap();
        assert!(v6.matches("fd12::5".parse().unwrap()));
    }
}
