//! The command line: the options, parsed by clap (derive), and the `hash-password`
//! subcommand.
//!
//! clap gives bundled short flags (`-wD`), attached values (`-p2121`, `--port=2121`),
//! suggestions for misspelt flags, an environment variable for every option
//! (`FTPDLIB_PORT`, ...; the command line wins) and a `--help` made from the parser itself.
//! [`Cli`] is what clap fills in; [`Options`] is what the rest of the daemon reads, with
//! names resolved and the checks that span several flags done.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use clap::error::ErrorKind;
use clap::{ArgAction, Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use ftpdlib::authorizer::crypt::Method;
use ftpdlib::proxy::{ProxyNetwork, ProxyProtocol};
use ftpdlib::throttle::parse_rate;
use ftpdlib::{MasqueradeRule, TlsRequired};

use crate::config_file::{merge, raw_settings, Account, Anonymous, ConfigFile};
use crate::seconds::seconds;
use crate::storage::StorageArgs;

const AFTER_HELP: &str = "\
Every option can also be set by an environment variable, shown as [env: ...], and by
the key of its long name in the --config file (port = 21, write = true); the command
line wins over the environment, which wins over the file. A flag taken from the
environment is on for true, 1, yes or on and off for false, 0, no or off.

Permissions for -w and --users: e=CWD l=LIST r=RETR a=APPE d=DELE/RMD f=RNFR/RNTO
m=MKD w=STOR M=SITE CHMOD T=MFMT (read-only is \"elr\", everything \"elradfmwMT\").

Signals: SIGINT and SIGTERM stop accepting, let transfers finish (see
--shutdown-grace) and exit 0. SIGHUP reopens --log-file and reloads the --config
file, the --users file and the --tls-cert certificate and key for new sessions; a
file that fails to load leaves the old settings in force.

SECS is seconds, whole or decimal (0.5), from 0 to 315360000 (10 years); a longer,
negative or non-number value is refused.

RATE is bytes per second, with an optional binary suffix: 64K = 65536, 10M, 1G.
The limits combine: a transfer moves at the tightest of --read-limit/--write-limit
and its share of --max-rate.";

/// Serve a directory over FTP, like `python -m pyftpdlib`: anonymous and read-only by
/// default, from the current directory on port 2121.
#[derive(Debug, Parser)]
#[command(
    name = "ftpdlib",
    disable_help_subcommand = true,
    version = ftpdlib::VERSION,
    disable_version_flag = true,
    args_conflicts_with_subcommands = true,
    args_override_self = true,
    after_help = AFTER_HELP,
    max_term_width = 100
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    flags: Flags,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Read a password from standard input and print its crypt(3) hash, for the password
    /// field of --users
    HashPassword {
        /// The hash method: yescrypt or sha512
        #[arg(short, long, value_name = "METHOD", default_value = "yescrypt", value_parser = method)]
        method: Method,
    },
}

/// Every flag of the daemon, as clap fills it in.
#[derive(Debug, Args)]
struct Flags {
    // ---- Main options (pyftpdlib's) ----
    /// Address or host name to listen on [default: all interfaces]
    #[arg(short, long, value_name = "ADDR", env = "FTPDLIB_INTERFACE")]
    interface: Option<String>,
    /// Port to listen on
    #[arg(short, long, default_value_t = 2121, env = "FTPDLIB_PORT")]
    port: u16,
    /// Give write permissions [default: read-only]
    #[arg(short, long, env = "FTPDLIB_WRITE", value_parser = flag())]
    write: bool,
    /// Directory to serve [default: the current one]
    #[arg(short, long, value_name = "DIR", env = "FTPDLIB_DIRECTORY")]
    directory: Option<PathBuf>,
    /// Public address or host name to announce in PASV replies (behind NAT)
    #[arg(short, long, value_name = "ADDR", env = "FTPDLIB_NAT_ADDRESS")]
    nat_address: Option<String>,
    /// Passive ports to use, e.g. 60000-65535
    #[arg(short, long, value_name = "FROM-TO", value_parser = port_range, env = "FTPDLIB_RANGE")]
    range: Option<(u16, u16)>,
    /// Log every command and reply, and ftpdlib's other debug lines (not other crates';
    /// RUST_LOG, when set, decides instead)
    #[arg(
        short = 'D',
        long,
        visible_short_alias = 'V',
        visible_alias = "verbose",
        env = "FTPDLIB_DEBUG",
        value_parser = flag()
    )]
    debug: bool,
    /// Log in with this name instead of anonymously (needs -P)
    #[arg(short, long, value_name = "NAME", env = "FTPDLIB_USERNAME")]
    username: Option<String>,
    /// Password for --username
    #[arg(
        short = 'P',
        long,
        value_name = "PASS",
        env = "FTPDLIB_PASSWORD",
        hide_env_values = true
    )]
    password: Option<String>,
    /// Concurrency model, as pyftpdlib names them: async (one reactor; the default) or
    /// pre-fork (one reactor per core, as --workers 0); multi-thread and multi-proc are
    /// not supported: use --workers
    #[arg(long, value_name = "MODEL", value_parser = concurrency, env = "FTPDLIB_CONCURRENCY")]
    concurrency: Option<String>,
    /// Print the version and exit
    #[arg(short = 'v', long, action = ArgAction::Version)]
    version: Option<bool>,

    // ---- Accounts ----
    /// Accounts, one a line: `name:password:perms[:home]`; the password may be a crypt(3)
    /// hash ($y$..., $6$...)
    #[arg(long, value_name = "FILE", env = "FTPDLIB_USERS")]
    users: Option<PathBuf>,
    /// Also serve anonymous read-only when users are given (with --system-users: as the
    /// system user nobody, in -d)
    #[arg(long, env = "FTPDLIB_ANONYMOUS", value_parser = flag())]
    anonymous: bool,
    /// Serve the machine's accounts (needs root): passwords from /etc/shadow, homes from
    /// /etc/passwd, every file operation under the user's ids; root is refused unless allowed
    #[arg(long, env = "FTPDLIB_SYSTEM_USERS", value_parser = flag())]
    system_users: bool,
    /// With --system-users: only these users may log in
    #[arg(long, value_name = "A,B", value_delimiter = ',', action = ArgAction::Set,
          value_parser = user_name, env = "FTPDLIB_ALLOWED_USERS")]
    allowed_users: Vec<String>,
    /// With --system-users: these users may not log in
    #[arg(long, value_name = "A,B", value_delimiter = ',', action = ArgAction::Set,
          value_parser = user_name, env = "FTPDLIB_REJECTED_USERS")]
    rejected_users: Vec<String>,
    /// With --system-users: refuse users whose shell is not listed in /etc/shells
    #[arg(long, env = "FTPDLIB_REQUIRE_VALID_SHELL", value_parser = flag())]
    require_valid_shell: bool,

    // ---- Storage and logs ----
    /// Serve files held in memory instead of the disk, starting empty and lost at exit
    /// (for test suites); -d still names the home each user sees
    #[arg(long, env = "FTPDLIB_MEMORY", value_parser = flag())]
    memory: bool,
    #[command(flatten)]
    storage: StorageArgs,
    /// Reactors, each a thread serving its share of the sessions with every limit shared
    /// (the listening port is bound once per reactor with SO_REUSEPORT); 0 for one per
    /// core [default: 1]
    #[arg(long, value_name = "N", env = "FTPDLIB_WORKERS")]
    workers: Option<usize>,
    /// Worker threads for disk calls and password checks, per reactor, and as many again
    /// for the contents of object-store files [default: the number of cores, at least 2;
    /// 16 with --storage]
    #[arg(long, value_name = "N", env = "FTPDLIB_IO_THREADS")]
    io_threads: Option<usize>,
    /// Append a line per file transfer to FILE, in the xferlog format of wu-ftpd, vsftpd
    /// and proftpd
    #[arg(long, value_name = "FILE", env = "FTPDLIB_XFERLOG")]
    xferlog: Option<PathBuf>,
    /// Directory listings and log time stamps in the local time zone [default: UTC]
    #[arg(long, env = "FTPDLIB_USE_LOCALTIME", value_parser = flag())]
    use_localtime: bool,
    /// Move files with read and write instead of sendfile(2) (downloads) and splice(2) (uploads)
    #[arg(long, env = "FTPDLIB_DISABLE_SENDFILE", value_parser = flag())]
    disable_sendfile: bool,
    /// Encoding of file names on the control connection: utf8, the only one there is
    #[arg(long, value_name = "ENCODING", value_parser = encoding, env = "FTPDLIB_ENCODING")]
    encoding: Option<String>,

    // ---- Data connections ----
    /// Address to announce in PASV replies by client network, e.g.
    /// 192.168.0.0/16=192.168.1.5,0.0.0.0/0=203.0.113.7 (may be repeated)
    #[arg(long, value_name = "NET/LEN=ADDR[,...]", value_parser = masquerade_map,
          action = ArgAction::Append, env = "FTPDLIB_MASQUERADE_MAP")]
    masquerade_map: Vec<Rules>,
    /// Allow PORT/EPRT to hosts other than the client (FXP)
    #[arg(long, env = "FTPDLIB_PERMIT_FOREIGN_ADDRESSES", value_parser = flag())]
    permit_foreign_addresses: bool,
    /// Allow PORT/EPRT to ports below 1024
    #[arg(long, env = "FTPDLIB_PERMIT_PRIVILEGED_PORTS", value_parser = flag())]
    permit_privileged_ports: bool,

    // ---- Limits ----
    /// Most sessions at once, 0 for no limit [default: 512]
    #[arg(long, value_name = "N", env = "FTPDLIB_MAX_CONS")]
    max_cons: Option<usize>,
    /// Most sessions per client address, 0 for no limit [default: 0]
    #[arg(long, value_name = "N", env = "FTPDLIB_MAX_CONS_PER_IP")]
    max_cons_per_ip: Option<usize>,
    /// Greeting sent to clients
    #[arg(long, value_name = "TEXT", env = "FTPDLIB_BANNER")]
    banner: Option<String>,
    /// Idle time allowed between commands, 0 for none [default: 300]
    #[arg(long, value_name = "SECS", value_parser = seconds, env = "FTPDLIB_TIMEOUT")]
    timeout: Option<Duration>,
    /// Pause before answering a failed login [default: 3]
    #[arg(long, value_name = "SECS", value_parser = seconds, env = "FTPDLIB_AUTH_FAILED_DELAY")]
    auth_failed_delay: Option<Duration>,
    /// Time allowed from connect to login [default: no limit]
    #[arg(long, value_name = "SECS", value_parser = seconds, env = "FTPDLIB_LOGIN_TIMEOUT")]
    login_timeout: Option<Duration>,
    /// Failed logins a session may make before it is closed [default: 3]
    #[arg(long, value_name = "N", env = "FTPDLIB_MAX_LOGIN_ATTEMPTS")]
    max_login_attempts: Option<u32>,
    /// Unknown commands allowed before login, the next one closes the session; 0 for no
    /// limit and no closing on HTTP request lines either [default: 3]
    #[arg(long, value_name = "N", env = "FTPDLIB_MAX_UNKNOWN_COMMANDS")]
    max_unknown_commands: Option<u32>,
    /// Most bytes per second each upload may read, 0 for none
    #[arg(long, value_name = "RATE", default_value = "0", value_parser = parse_rate,
          env = "FTPDLIB_READ_LIMIT")]
    read_limit: u64,
    /// Most bytes per second each download or listing may write, 0 for none
    #[arg(long, value_name = "RATE", default_value = "0", value_parser = parse_rate,
          env = "FTPDLIB_WRITE_LIMIT")]
    write_limit: u64,
    /// Most bytes per second for the whole server, each direction, 0 for none
    #[arg(long, value_name = "RATE", default_value = "0", value_parser = parse_rate,
          env = "FTPDLIB_MAX_RATE")]
    max_rate: u64,
    /// Ban an address after N failed logins within a minute, 0 for no bans
    #[arg(
        long,
        value_name = "N",
        default_value_t = 0,
        env = "FTPDLIB_MAX_LOGIN_FAILURES"
    )]
    max_login_failures: u32,
    /// How long such a ban lasts [default: 300]
    #[arg(long, value_name = "SECS", value_parser = seconds, env = "FTPDLIB_BAN_TIME")]
    ban_time: Option<Duration>,
    /// Close sessions sending more commands a second, 0 for none
    #[arg(
        long,
        value_name = "N",
        default_value_t = 0,
        env = "FTPDLIB_MAX_CMDS_PER_SEC"
    )]
    max_cmds_per_sec: u32,
    /// On SIGINT or SIGTERM, how long running transfers may take to finish before every
    /// session is closed, 0 for at once; a second signal closes them at once
    #[arg(
        long,
        value_name = "SECS",
        default_value = "10",
        value_parser = seconds,
        env = "FTPDLIB_SHUTDOWN_GRACE"
    )]
    shutdown_grace: Duration,

    // ---- FTPS ----
    /// pyftpdlib's switch to FTPS: here --certfile and --keyfile turn it on, and --tls
    /// only checks they are given
    #[arg(long, env = "FTPDLIB_TLS", value_parser = flag())]
    tls: bool,
    /// Serve FTPS with this PEM certificate chain (needs --tls-key)
    #[arg(
        long,
        value_name = "FILE",
        visible_alias = "certfile",
        env = "FTPDLIB_TLS_CERT"
    )]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert
    #[arg(
        long,
        value_name = "FILE",
        visible_alias = "keyfile",
        env = "FTPDLIB_TLS_KEY"
    )]
    tls_key: Option<PathBuf>,
    /// Implicit FTPS: TLS from the first byte (usually with -p 990)
    #[arg(long, env = "FTPDLIB_TLS_IMPLICIT", value_parser = flag())]
    tls_implicit: bool,
    /// Require TLS on the control connection: of everyone (alone or =all), or =users: of
    /// everyone but anonymous
    #[arg(long, value_name = "WHO", num_args = 0..=1, require_equals = true,
          default_missing_value = "all", value_parser = tls_required,
          env = "FTPDLIB_TLS_CONTROL_REQUIRED")]
    tls_control_required: Option<TlsRequired>,
    /// Require PROT P for data connections (same choice as --tls-control-required)
    #[arg(long, value_name = "WHO", num_args = 0..=1, require_equals = true,
          default_missing_value = "all", value_parser = tls_required,
          env = "FTPDLIB_TLS_DATA_REQUIRED")]
    tls_data_required: Option<TlsRequired>,
    /// Protected data connections must resume the TLS session of their control connection
    /// (as vsftpd and proftpd; curl, lftp, FileZilla and rclone do, Python's ftplib does not)
    #[arg(long, overrides_with = "tls_no_session_reuse",
          env = "FTPDLIB_TLS_SESSION_REUSE_REQUIRED", value_parser = flag())]
    tls_session_reuse_required: bool,
    /// Accept data connections that do not resume (the default)
    #[arg(long, overrides_with = "tls_session_reuse_required",
          env = "FTPDLIB_TLS_NO_SESSION_REUSE", value_parser = flag())]
    tls_no_session_reuse: bool,
    /// Uploads must end with the client's TLS close_notify; a bare TCP FIN is then 426,
    /// not 226
    #[arg(long, env = "FTPDLIB_TLS_CLOSE_NOTIFY_REQUIRED", value_parser = flag())]
    tls_close_notify_required: bool,
    /// Accept CCC: clients may return the control connection to plaintext after login (not
    /// where control TLS is required)
    #[arg(long, env = "FTPDLIB_TLS_ALLOW_CCC", value_parser = flag())]
    tls_allow_ccc: bool,

    // ---- Config file ----
    /// Read the settings from this TOML file: a key per long option (port = 21), plus
    /// [[users]] accounts and an [anonymous] table (docs/deploy.md); options given on the
    /// command line or in the environment win over it
    #[arg(long, value_name = "FILE", env = "FTPDLIB_CONFIG")]
    config: Option<PathBuf>,

    // ---- PROXY protocol ----
    /// Behind a load balancer: every control connection must open with a PROXY protocol
    /// header (HAProxy's send-proxy or send-proxy-v2), and the client it names is the one
    /// served; connections without a valid header are closed
    #[arg(long, env = "FTPDLIB_PROXY_PROTOCOL", value_parser = flag())]
    proxy_protocol: bool,
    /// With --proxy-protocol: accept connections only from these proxies, e.g.
    /// 10.0.0.5,10.1.0.0/16 (default any source: then firewall the port)
    #[arg(long, value_name = "NET[/LEN][,...]", value_parser = proxy_network,
          value_delimiter = ',', action = ArgAction::Append, env = "FTPDLIB_PROXY_TRUSTED")]
    proxy_trusted: Vec<ProxyNetwork>,
    /// With --proxy-protocol: seconds a connection has to send its header [default: 5]
    #[arg(long, value_name = "SECS", value_parser = seconds,
          env = "FTPDLIB_PROXY_HEADER_TIMEOUT")]
    proxy_header_timeout: Option<Duration>,
    /// With --proxy-protocol: the proxies relay the passive ports too (one range per server
    /// behind the balancer), each data connection opened with a header naming the client;
    /// one from a proxy that names another client is refused as a stranger's
    #[arg(long, env = "FTPDLIB_PROXY_PASSIVE", value_parser = flag())]
    proxy_passive: bool,

    // ---- Logs ----
    /// Append the log to FILE instead of standard error; SIGHUP reopens it (for
    /// logrotate)
    #[arg(long, value_name = "FILE", env = "FTPDLIB_LOG_FILE")]
    log_file: Option<PathBuf>,
    /// Send the log to the local syslog (journald's /dev/log) instead of standard error,
    /// facility ftp
    #[arg(long, env = "FTPDLIB_SYSLOG", value_parser = flag(), conflicts_with = "log_file")]
    syslog: bool,
    /// The syslog socket for --syslog [default: /dev/log, /var/run/syslog or /var/run/log]
    #[arg(
        long,
        value_name = "PATH",
        env = "FTPDLIB_SYSLOG_SOCKET",
        requires = "syslog"
    )]
    syslog_socket: Option<PathBuf>,
    /// Log line format: text (pyftpdlib's lines) or json (one object a line)
    #[arg(long, value_name = "FORMAT", default_value = "text", value_parser = log_format, env = "FTPDLIB_LOG_FORMAT")]
    log_format: crate::logging::Format,

    // ---- Metrics ----
    /// Serve Prometheus metrics at http://ADDR/metrics and a health check at /health, e.g.
    /// 127.0.0.1:9121 (plain HTTP without authentication: keep it on a private address)
    #[arg(long, value_name = "ADDR", value_parser = metrics_addr, env = "FTPDLIB_METRICS")]
    metrics: Option<SocketAddr>,
}

/// One network of `--proxy-trusted`.
fn proxy_network(v: &str) -> Result<ProxyNetwork, String> {
    ProxyNetwork::parse(v)
        .ok_or_else(|| format!("invalid --proxy-trusted entry {v:?} (want ADDR or NET/LEN)"))
}

/// `--metrics`: HOST:PORT, the host an address or a name (its first address is taken).
fn metrics_addr(v: &str) -> Result<SocketAddr, String> {
    let mut addrs = v
        .to_socket_addrs()
        .map_err(|e| format!("expected HOST:PORT such as 127.0.0.1:9121 ({e})"))?;
    addrs
        .next()
        .ok_or_else(|| format!("{v} resolves to no address"))
}

/// The rules of one `--masquerade-map` value.
#[derive(Debug, Clone)]
struct Rules(Vec<MasqueradeRule>);

/// A flag that may also come from the environment: `1`, `yes`, `on`, `true` and their
/// opposites.
fn flag() -> clap::builder::BoolishValueParser {
    clap::builder::BoolishValueParser::new()
}

fn method(v: &str) -> Result<Method, String> {
    Method::parse(v).ok_or_else(|| format!("unknown method {v:?} (yescrypt or sha512)"))
}

fn port_range(v: &str) -> Result<(u16, u16), String> {
    let (a, b) = v
        .split_once('-')
        .ok_or_else(|| format!("invalid port range {v:?} (want FROM-TO)"))?;
    match (a.trim().parse(), b.trim().parse()) {
        (Ok(a), Ok(b)) if a <= b && a > 0 => Ok((a, b)),
        _ => Err(format!(
            "invalid port range {v:?} (want FROM-TO, FROM <= TO)"
        )),
    }
}

/// One name of `--allowed-users a,b`: the commas split, the spaces around go.
fn user_name(v: &str) -> Result<String, String> {
    let name = v.trim();
    if name.is_empty() {
        return Err("invalid empty user name (want names separated by commas)".to_string());
    }
    Ok(name.to_string())
}

fn masquerade_map(v: &str) -> Result<Rules, String> {
    v.split(',')
        .filter(|r| !r.trim().is_empty())
        .map(|rule| {
            MasqueradeRule::parse(rule).ok_or_else(|| {
                format!("invalid --masquerade-map entry {rule:?} (want NET/LEN=ADDR)")
            })
        })
        .collect::<Result<_, _>>()
        .map(Rules)
}

/// `--tls-*-required` alone or `=all` (everyone), or `=users` (all but anonymous).
fn tls_required(v: &str) -> Result<TlsRequired, String> {
    match v {
        "all" => Ok(TlsRequired::Everyone),
        "users" => Ok(TlsRequired::ExceptAnonymous),
        _ => Err(format!("invalid value {v:?} (want all or users)")),
    }
}

/// `--encoding`: the protocol speaks UTF-8 (RFC 2640) and nothing else.
fn encoding(v: &str) -> Result<String, String> {
    match v.to_ascii_lowercase().replace(['-', '_'], "").as_str() {
        "utf8" => Ok("utf8".to_string()),
        _ => Err(format!(
            "encoding {v:?} not supported: ftpdlib speaks utf8 only (RFC 2640)"
        )),
    }
}

/// `--concurrency`: pyftpdlib's models. ftpdlib runs sessions on reactors (with a worker
/// pool for disk calls): one is pyftpdlib's `async`, one per core its `pre-fork`.
fn concurrency(v: &str) -> Result<String, String> {
    match v {
        "async" | "pre-fork" => Ok(v.to_string()),
        _ => Err(format!(
            "concurrency model {v:?} is not supported: ftpdlib serves sessions from \
             reactors, async (one) or pre-fork (one per core); see --workers"
        )),
    }
}

/// `--log-format`: text or json.
fn log_format(v: &str) -> Result<crate::logging::Format, String> {
    match v {
        "text" => Ok(crate::logging::Format::Text),
        "json" => Ok(crate::logging::Format::Json),
        _ => Err(format!("invalid log format {v:?} (want text or json)")),
    }
}

/// What the daemon runs with: the flags, names resolved and cross-checked.
#[derive(Debug, Default)]
pub(crate) struct Options {
    pub(crate) interface: Option<String>,
    pub(crate) port: u16,
    pub(crate) write: bool,
    pub(crate) directory: Option<PathBuf>,
    pub(crate) nat_address: Option<IpAddr>,
    pub(crate) masquerade_map: Vec<MasqueradeRule>,
    pub(crate) permit_foreign_addresses: bool,
    pub(crate) permit_privileged_ports: bool,
    pub(crate) range: Option<(u16, u16)>,
    pub(crate) username: Option<String>,
    pub(crate) password: Option<String>,
    pub(crate) users: Option<PathBuf>,
    pub(crate) anonymous: bool,
    pub(crate) system_users: bool,
    pub(crate) allowed_users: Vec<String>,
    pub(crate) rejected_users: Vec<String>,
    pub(crate) require_valid_shell: bool,
    pub(crate) xferlog: Option<PathBuf>,
    pub(crate) max_cons: Option<usize>,
    pub(crate) max_cons_per_ip: Option<usize>,
    pub(crate) banner: Option<String>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) auth_failed_delay: Option<Duration>,
    pub(crate) login_timeout: Option<Duration>,
    pub(crate) max_login_attempts: Option<u32>,
    pub(crate) max_unknown_commands: Option<u32>,
    pub(crate) read_limit: u64,
    pub(crate) write_limit: u64,
    pub(crate) max_rate: u64,
    pub(crate) max_login_failures: u32,
    pub(crate) ban_time: Option<Duration>,
    pub(crate) max_cmds_per_sec: u32,
    pub(crate) debug: bool,
    pub(crate) memory: bool,
    /// `--storage` and the object store's flags.
    pub(crate) storage: StorageArgs,
    pub(crate) io_threads: usize,
    /// `--workers`: reactors, 0 for one per core.
    pub(crate) workers: usize,
    /// `--use-localtime`: listings in local time instead of GMT.
    pub(crate) use_localtime: bool,
    /// `--disable-sendfile`: plain reads and writes for downloads.
    pub(crate) disable_sendfile: bool,
    pub(crate) tls_cert: Option<PathBuf>,
    pub(crate) tls_key: Option<PathBuf>,
    pub(crate) tls_implicit: bool,
    pub(crate) tls_control_required: Option<TlsRequired>,
    pub(crate) tls_data_required: Option<TlsRequired>,
    /// `--tls-session-reuse-required` (true) or `--tls-no-session-reuse` (false), the last
    /// one given.
    pub(crate) tls_session_reuse: Option<bool>,
    pub(crate) tls_close_notify_required: bool,
    pub(crate) tls_allow_ccc: bool,
    /// `--shutdown-grace`: how long transfers may run on after SIGINT/SIGTERM.
    pub(crate) shutdown_grace: Duration,
    /// `--config`: the file the settings were read from, again on SIGHUP.
    pub(crate) config: Option<PathBuf>,
    /// The `[[users]]` accounts of the config file (none when `--users` is given).
    pub(crate) accounts: Vec<Account>,
    /// The `[anonymous]` table of the config file.
    pub(crate) anonymous_settings: Anonymous,
    /// Every option's value as given, by long name, to tell what a reload changed.
    pub(crate) settings: BTreeMap<String, Vec<OsString>>,
    /// `--proxy-protocol` with `--proxy-trusted` and `--proxy-header-timeout`.
    pub(crate) proxy_protocol: Option<ProxyProtocol>,
    // ---- Logs ----
    pub(crate) log_file: Option<PathBuf>,
    /// `--syslog`, with `--syslog-socket` if given.
    pub(crate) syslog: Option<Option<PathBuf>>,
    pub(crate) log_format: crate::logging::Format,
    /// `--metrics`: where to serve `/metrics` and `/health`.
    pub(crate) metrics: Option<SocketAddr>,
}

pub(crate) enum Parsed {
    Run(Box<Options>),
    HashPassword(Method),
    /// `--help` or `--version`: the text to print on standard output.
    Exit(String),
}

/// `-n`: an address, or a host name resolved to one; IPv4 first, as PASV can only carry
/// IPv4.
fn resolve_nat(name: &str) -> Result<IpAddr, String> {
    if let Ok(ip) = name.parse() {
        return Ok(ip);
    }
    let addrs: Vec<IpAddr> = (name, 0)
        .to_socket_addrs()
        .map_err(|e| format!("can't resolve NAT address {name:?}: {e}"))?
        .map(|a| a.ip())
        .collect();
    addrs
        .iter()
        .find(|ip| ip.is_ipv4())
        .or(addrs.first())
        .copied()
        .ok_or_else(|| format!("can't resolve NAT address {name:?}: no address"))
}

/// Turns a clap error into one line: its message and its tip (the suggestion of a
/// similar flag), without the usage lines clap adds after them.
pub(crate) fn one_line(e: &clap::Error) -> String {
    let text = e.render().to_string();
    let mut parts = Vec::new();
    let mut in_usage = false;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() {
            in_usage = false;
        } else if line.starts_with("Usage:") {
            in_usage = true;
        } else if !in_usage && !line.starts_with("For more information") {
            parts.push(line.strip_prefix("error: ").unwrap_or(line).to_string());
        }
    }
    if parts.is_empty() {
        return text.trim().to_string();
    }
    format!("{} (see --help)", parts.join("; "))
}

/// A clap error as one line, without the pointer to --help: for a value of the config
/// file.
pub(crate) fn clap_message(e: &clap::Error) -> String {
    let line = one_line(e);
    line.strip_suffix(" (see --help)")
        .unwrap_or(&line)
        .to_string()
}

/// The command line's definition, whose long options are the config file's keys.
pub(crate) fn command() -> clap::Command {
    Cli::command()
}

/// Parses the arguments after the program name, falling back on the `FTPDLIB_*`
/// environment variables.
pub(crate) fn parse_args(args: Vec<OsString>) -> Result<Parsed, String> {
    let argv = std::iter::once(OsString::from("ftpdlib")).chain(args.iter().cloned());
    let first = match Cli::command().try_get_matches_from(argv) {
        Ok(m) => m,
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => {
            return Ok(Parsed::Exit(e.render().to_string().trim_end().to_string()));
        }
        Err(e) => return Err(one_line(&e)),
    };
    // The subcommand reads no config file, even one named in the environment.
    let (matches, file) = if first.subcommand_name().is_some() {
        (first, ConfigFile::default())
    } else {
        merge(&args, first)?
    };
    let cli = Cli::from_arg_matches(&matches).map_err(|e| one_line(&e))?;
    if let Some(Command::HashPassword { method }) = cli.command {
        return Ok(Parsed::HashPassword(method));
    }
    let f = cli.flags;
    let o = Options {
        interface: f.interface,
        port: f.port,
        write: f.write,
        directory: f.directory,
        nat_address: f.nat_address.as_deref().map(resolve_nat).transpose()?,
        masquerade_map: f.masquerade_map.into_iter().flat_map(|r| r.0).collect(),
        permit_foreign_addresses: f.permit_foreign_addresses,
        permit_privileged_ports: f.permit_privileged_ports,
        range: f.range,
        username: f.username,
        password: f.password,
        users: f.users,
        anonymous: f.anonymous,
        system_users: f.system_users,
        allowed_users: f.allowed_users,
        rejected_users: f.rejected_users,
        require_valid_shell: f.require_valid_shell,
        xferlog: f.xferlog,
        max_cons: f.max_cons,
        max_cons_per_ip: f.max_cons_per_ip,
        banner: f.banner,
        timeout: f.timeout,
        auth_failed_delay: f.auth_failed_delay,
        login_timeout: f.login_timeout,
        max_login_attempts: f.max_login_attempts,
        max_unknown_commands: f.max_unknown_commands,
        read_limit: f.read_limit,
        write_limit: f.write_limit,
        max_rate: f.max_rate,
        max_login_failures: f.max_login_failures,
        ban_time: f.ban_time,
        max_cmds_per_sec: f.max_cmds_per_sec,
        debug: f.debug,
        memory: f.memory,
        storage: f.storage,
        io_threads: f.io_threads.unwrap_or(0),
        // pyftpdlib's pre-fork model is one reactor per core.
        workers: f
            .workers
            .unwrap_or(if f.concurrency.as_deref() == Some("pre-fork") {
                0
            } else {
                1
            }),
        use_localtime: f.use_localtime,
        disable_sendfile: f.disable_sendfile,
        tls_cert: f.tls_cert,
        tls_key: f.tls_key,
        tls_implicit: f.tls_implicit,
        tls_control_required: f.tls_control_required,
        tls_data_required: f.tls_data_required,
        tls_session_reuse: if f.tls_session_reuse_required {
            Some(true)
        } else if f.tls_no_session_reuse {
            Some(false)
        } else {
            None
        },
        tls_close_notify_required: f.tls_close_notify_required,
        tls_allow_ccc: f.tls_allow_ccc,
        shutdown_grace: f.shutdown_grace,
        config: f.config,
        accounts: file.accounts.unwrap_or_default(),
        anonymous_settings: file.anonymous.unwrap_or_default(),
        settings: raw_settings(&matches),
        proxy_protocol: proxy_protocol(
            f.proxy_protocol,
            f.proxy_trusted,
            f.proxy_header_timeout,
            f.proxy_passive,
        )?,
        log_file: f.log_file,
        syslog: f.syslog.then_some(f.syslog_socket),
        log_format: f.log_format,
        metrics: f.metrics,
    };
    check(&o, f.tls)?;
    Ok(Parsed::Run(Box::new(o)))
}

/// `--proxy-protocol` and the flags that only mean something with it.
fn proxy_protocol(
    on: bool,
    trusted: Vec<ProxyNetwork>,
    header_timeout: Option<Duration>,
    passive: bool,
) -> Result<Option<ProxyProtocol>, String> {
    if !on {
        if !trusted.is_empty() || header_timeout.is_some() || passive {
            return Err(
                "--proxy-trusted, --proxy-header-timeout and --proxy-passive need --proxy-protocol"
                    .to_string(),
            );
        }
        return Ok(None);
    }
    let mut p = ProxyProtocol::default()
        .with_trusted(trusted)
        .with_passive(passive);
    if let Some(t) = header_timeout {
        if t.is_zero() {
            return Err("--proxy-header-timeout must be more than 0".to_string());
        }
        p = p.with_header_timeout(t);
    }
    Ok(Some(p))
}

/// The rules that span several flags.
fn check(o: &Options, tls: bool) -> Result<(), String> {
    if o.memory && crate::storage::is_object(&o.storage) {
        // Both replace the disk; the memory would win, silently, under a start-up line
        // that names the object store.
        return Err("--memory and --storage can't be combined".to_string());
    }
    if o.username.is_some() != o.password.is_some() {
        return Err("--username and --password go together".to_string());
    }
    if o.system_users && (o.username.is_some() || o.users.is_some()) {
        return Err("--system-users can't be combined with --username or --users".to_string());
    }
    if o.system_users && !o.accounts.is_empty() {
        return Err(
            "--system-users can't be combined with the [[users]] of the config file".to_string(),
        );
    }
    if !o.system_users
        && (!o.allowed_users.is_empty() || !o.rejected_users.is_empty() || o.require_valid_shell)
    {
        return Err(
            "--allowed-users, --rejected-users and --require-valid-shell need --system-users"
                .to_string(),
        );
    }
    if !o.allowed_users.is_empty() && !o.rejected_users.is_empty() {
        return Err("--allowed-users and --rejected-users exclude each other".to_string());
    }
    if tls && (o.tls_cert.is_none() || o.tls_key.is_none()) {
        return Err(
            "--tls needs --certfile and --keyfile (also spelt --tls-cert and --tls-key)"
                .to_string(),
        );
    }
    if o.tls_cert.is_some() != o.tls_key.is_some() {
        return Err("--tls-cert and --tls-key go together".to_string());
    }
    let tls_flag = o.tls_implicit
        || o.tls_control_required.is_some()
        || o.tls_data_required.is_some()
        || o.tls_session_reuse.is_some()
        || o.tls_close_notify_required
        || o.tls_allow_ccc;
    if tls_flag && o.tls_cert.is_none() {
        return Err("the --tls-* options need --tls-cert and --tls-key".to_string());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// clap's own consistency checks of the flag definitions (duplicate names, bad
    /// references in overrides_with, ...).
    #[test]
    fn the_command_line_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
