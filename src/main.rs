//! The `ftpdlib` command: serve a directory over FTP, like `python -m pyftpdlib`.
//!
//! ```text
//! ftpdlib                      # anonymous, read-only, current directory, port 2121
//! ftpdlib -w -d /srv/ftp -u user -P secret
//! ftpdlib --users users.txt --anonymous
//! ftpdlib --system-users --rejected-users root,daemon -w   # as root
//! echo secret | ftpdlib hash-password                     # a hash for --users
//! ftpdlib -u user -P secret --tls-cert cert.pem --tls-key key.pem --tls-control-required
//! ```
//!
//! SIGINT and SIGTERM stop it gracefully (`--shutdown-grace`), SIGHUP reloads `--users` and
//! the TLS certificate; see `serve` and `reload`.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ftpdlib::authorizer::crypt::{self, Method};
use ftpdlib::throttle::parse_rate;
use ftpdlib::Limits;
use ftpdlib::{Config, DummyAuthorizer, FtpServer, UnixAuthorizer, UnixOptions, XferLog};
use ftpdlib::{TlsConfig, TlsRequired};
use mio::{Events, Interest, Poll, Token};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook_mio::v1_0::Signals;

const USAGE: &str = "\
Usage: ftpdlib [OPTIONS]
       ftpdlib hash-password [--method yescrypt|sha512]

Serve a directory over FTP. hash-password reads a password from standard input and
prints its crypt(3) hash, for the password field of --users.

Options:
  -i, --interface ADDR       address to listen on (default: all interfaces)
  -p, --port PORT            port to listen on (default 2121)
  -w, --write                give write permissions (default read-only)
  -d, --directory DIR        directory to serve (default: the current one)
      --memory               serve files held in memory instead of the disk, starting
                             empty and lost at exit (for test suites); -d still names
                             the home each user sees
      --io-threads N         worker threads for disk calls and password checks
                             (default: the number of cores, at least 2)
  -n, --nat-address ADDR     public address to announce in PASV replies (behind NAT)
  -r, --range FROM-TO        passive ports to use, e.g. 60000-65535
  -u, --username NAME        log in with this name instead of anonymously (needs -P)
  -P, --password PASS        password for --username
      --users FILE           accounts, one a line: name:password:perms[:home]; the
                             password may be a crypt(3) hash ($y$..., $6$...)
      --anonymous            also serve anonymous read-only when users are given
                             (with --system-users: as the system user nobody, in -d)
      --masquerade-map NET/LEN=ADDR[,...]  address to announce in PASV replies by client
                             network, e.g. 192.168.0.0/16=192.168.1.5,0.0.0.0/0=203.0.113.7
      --permit-foreign-addresses  allow PORT/EPRT to hosts other than the client (FXP)
      --system-users         serve the machine's accounts (needs root): passwords from
                             /etc/shadow, homes from /etc/passwd, every file operation
                             under the user's ids; root is refused unless allowed
      --allowed-users A,B    with --system-users: only these users may log in
      --rejected-users A,B   with --system-users: these users may not log in
      --require-valid-shell  with --system-users: refuse users whose shell is not
                             listed in /etc/shells
      --xferlog FILE         append a line per file transfer to FILE, in the xferlog
                             format of wu-ftpd, vsftpd and proftpd
      --max-cons N           most sessions at once, 0 for no limit (default 512)
      --max-cons-per-ip N    most sessions per client address, 0 for no limit (default 0)
      --banner TEXT          greeting sent to clients
      --timeout SECS         idle time allowed between commands (default 300, 0 for none)
      --auth-failed-delay SECS  pause before answering a failed login (default 3)
      --login-timeout SECS   time allowed from connect to login (default: no limit)
      --read-limit RATE      most bytes per second each upload may read (default 0, none)
      --write-limit RATE     most bytes per second each download or listing may write
      --max-rate RATE        most bytes per second for the whole server, each direction
      --max-login-failures N ban an address after N failed logins within a minute
                             (default 0, no bans)
      --ban-time SECS        how long such a ban lasts (default 300)
      --max-cmds-per-sec N   close sessions sending more commands a second (default 0, none)
      --tls-cert FILE        serve FTPS with this PEM certificate chain (needs --tls-key)
      --tls-key FILE         the PEM private key of --tls-cert
      --tls-implicit         implicit FTPS: TLS from the first byte (usually with -p 990)
      --tls-control-required[=users]  require TLS on the control connection (of
                             everyone, or =users: of everyone but anonymous)
      --tls-data-required[=users]     require PROT P for data connections (same choice)
      --tls-session-reuse-required  protected data connections must resume the TLS
                             session of their control connection (as vsftpd and proftpd;
                             curl, lftp, FileZilla and rclone do, Python's ftplib does not)
      --tls-no-session-reuse accept data connections that do not resume (the default)
      --tls-close-notify-required  uploads must end with the client's TLS close_notify;
                             a bare TCP FIN is then 426, not 226
      --tls-allow-ccc        accept CCC: clients may return the control connection to
                             plaintext after login (not where control TLS is required)
      --shutdown-grace SECS  on SIGINT or SIGTERM, how long running transfers may take
                             to finish before every session is closed (default 10, 0
                             for at once); a second signal closes them at once
  -D, --debug                log every command and reply
  -V, --verbose              same as --debug
  -v, --version              print the version and exit
  -h, --help                 print this help and exit

Permissions for -w and --users: e=CWD l=LIST r=RETR a=APPE d=DELE/RMD f=RNFR/RNTO
m=MKD w=STOR M=SITE CHMOD T=MFMT (read-only is \"elr\", everything \"elradfmwMT\").

Signals: SIGINT and SIGTERM stop accepting, let transfers finish (see
--shutdown-grace) and exit 0. SIGHUP reloads the --users file and the --tls-cert
certificate and key for new sessions; a file that fails to load leaves the old
settings in force.

RATE is bytes per second, with an optional binary suffix: 64K = 65536, 10M, 1G.
The limits combine: a transfer moves at the tightest of --read-limit/--write-limit
and its share of --max-rate.";

#[derive(Debug, Default)]
struct Options {
    interface: Option<String>,
    port: u16,
    write: bool,
    directory: Option<PathBuf>,
    nat_address: Option<IpAddr>,
    masquerade_map: Vec<ftpdlib::MasqueradeRule>,
    permit_foreign_addresses: bool,
    range: Option<(u16, u16)>,
    username: Option<String>,
    password: Option<String>,
    users: Option<PathBuf>,
    anonymous: bool,
    system_users: bool,
    allowed_users: Vec<String>,
    rejected_users: Vec<String>,
    require_valid_shell: bool,
    xferlog: Option<PathBuf>,
    max_cons: Option<usize>,
    max_cons_per_ip: Option<usize>,
    banner: Option<String>,
    timeout: Option<u64>,
    auth_failed_delay: Option<f64>,
    login_timeout: Option<u64>,
    read_limit: u64,
    write_limit: u64,
    max_rate: u64,
    max_login_failures: u32,
    ban_time: Option<u64>,
    max_cmds_per_sec: u32,
    debug: bool,
    memory: bool,
    io_threads: usize,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    tls_implicit: bool,
    tls_control_required: Option<TlsRequired>,
    tls_data_required: Option<TlsRequired>,
    /// `--tls-session-reuse-required` (true) or `--tls-no-session-reuse` (false), the last
    /// one given.
    tls_session_reuse: Option<bool>,
    tls_close_notify_required: bool,
    tls_allow_ccc: bool,
    /// `--shutdown-grace`: how long transfers may run on after SIGINT/SIGTERM.
    shutdown_grace: Duration,
}

/// `--tls-*-required` alone (everyone) or `=users` (all but anonymous).
fn tls_required(flag: &str, inline: Option<&str>) -> Result<TlsRequired, String> {
    match inline {
        None | Some("all") => Ok(TlsRequired::Everyone),
        Some("users") => Ok(TlsRequired::ExceptAnonymous),
        Some(v) => Err(format!("invalid {flag} value {v:?} (want all or users)")),
    }
}

enum Parsed {
    Run(Box<Options>),
    HashPassword(Method),
    Exit(String),
}

/// Splits `a,b , c` into names, refusing empty ones.
fn user_list(flag: &str, v: &str) -> Result<Vec<String>, String> {
    let names: Vec<String> = v.split(',').map(|n| n.trim().to_string()).collect();
    if names.iter().any(String::is_empty) {
        return Err(format!(
            "invalid {flag} {v:?} (want names separated by commas)"
        ));
    }
    Ok(names)
}

fn parse_hash_password(args: Vec<String>) -> Result<Parsed, String> {
    let mut method = Method::default();
    let mut it = args.into_iter();
    while let Some(arg) = it.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        match flag.as_str() {
            "-h" | "--help" => {
                return Ok(Parsed::Exit(
                    "Usage: ftpdlib hash-password [--method yescrypt|sha512]\n\n\
                     Reads one line from standard input and prints its crypt(3) hash \
                     (default yescrypt)."
                        .to_string(),
                ))
            }
            "-m" | "--method" => {
                let v = inline
                    .or_else(|| it.next())
                    .ok_or_else(|| format!("{flag} needs a value"))?;
                method = Method::parse(&v)
                    .ok_or_else(|| format!("unknown method {v:?} (yescrypt or sha512)"))?;
            }
            other => return Err(format!("unknown option {other:?} for hash-password")),
        }
    }
    Ok(Parsed::HashPassword(method))
}

/// `ftpdlib hash-password`: one line from stdin in, its hash out.
fn hash_password(method: Method) -> Result<(), String> {
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .map_err(|e| format!("can't read the password: {e}"))?;
    let password = line
        .strip_suffix('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .unwrap_or(&line);
    if password.is_empty() {
        return Err("empty password on standard input".to_string());
    }
    let hash = crypt::hash_password(password, method).map_err(|e| e.to_string())?;
    println!("{hash}");
    Ok(())
}

fn parse_args(args: Vec<String>) -> Result<Parsed, String> {
    let mut o = Options {
        port: 2121,
        shutdown_grace: Duration::from_secs(10),
        ..Options::default()
    };
    if args.first().map(String::as_str) == Some("hash-password") {
        return parse_hash_password(args[1..].to_vec());
    }
    let mut it = args.into_iter();
    while let Some(arg) = it.next() {
        // Accept --flag=value as well as --flag value.
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        let mut value = |name: &str| -> Result<String, String> {
            inline
                .clone()
                .or_else(|| it.next())
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match flag.as_str() {
            "-h" | "--help" => return Ok(Parsed::Exit(USAGE.to_string())),
            "-v" | "--version" => return Ok(Parsed::Exit(format!("ftpdlib {}", ftpdlib::VERSION))),
            "-i" | "--interface" => o.interface = Some(value(&flag)?),
            "-p" | "--port" => {
                let v = value(&flag)?;
                o.port = v.parse().map_err(|_| format!("invalid port {v:?}"))?;
            }
            "-w" | "--write" => o.write = true,
            "-d" | "--directory" => o.directory = Some(PathBuf::from(value(&flag)?)),
            "-n" | "--nat-address" => {
                let v = value(&flag)?;
                o.nat_address = Some(
                    v.parse()
                        .map_err(|_| format!("invalid NAT address {v:?}"))?,
                );
            }
            "--masquerade-map" => {
                let v = value(&flag)?;
                for rule in v.split(',').filter(|r| !r.trim().is_empty()) {
                    let r = ftpdlib::MasqueradeRule::parse(rule).ok_or_else(|| {
                        format!("invalid --masquerade-map entry {rule:?} (want NET/LEN=ADDR)")
                    })?;
                    o.masquerade_map.push(r);
                }
            }
            "--permit-foreign-addresses" => o.permit_foreign_addresses = true,
            "-r" | "--range" => {
                let v = value(&flag)?;
                let (a, b) = v
                    .split_once('-')
                    .ok_or_else(|| format!("invalid port range {v:?} (want FROM-TO)"))?;
                let (a, b): (u16, u16) = match (a.trim().parse(), b.trim().parse()) {
                    (Ok(a), Ok(b)) if a <= b && a > 0 => (a, b),
                    _ => {
                        return Err(format!(
                            "invalid port range {v:?} (want FROM-TO, FROM <= TO)"
                        ))
                    }
                };
                o.range = Some((a, b));
            }
            "-u" | "--username" => o.username = Some(value(&flag)?),
            "-P" | "--password" => o.password = Some(value(&flag)?),
            "--users" => o.users = Some(PathBuf::from(value(&flag)?)),
            "--anonymous" => o.anonymous = true,
            "--system-users" => o.system_users = true,
            "--allowed-users" => o.allowed_users = user_list(&flag, &value(&flag)?)?,
            "--rejected-users" => o.rejected_users = user_list(&flag, &value(&flag)?)?,
            "--require-valid-shell" => o.require_valid_shell = true,
            "--xferlog" => o.xferlog = Some(PathBuf::from(value(&flag)?)),
            "--max-cons" => {
                let v = value(&flag)?;
                o.max_cons = Some(v.parse().map_err(|_| format!("invalid --max-cons {v:?}"))?);
            }
            "--max-cons-per-ip" => {
                let v = value(&flag)?;
                o.max_cons_per_ip = Some(
                    v.parse()
                        .map_err(|_| format!("invalid --max-cons-per-ip {v:?}"))?,
                );
            }
            "--banner" => o.banner = Some(value(&flag)?),
            "--timeout" => {
                let v = value(&flag)?;
                o.timeout = Some(v.parse().map_err(|_| format!("invalid --timeout {v:?}"))?);
            }
            "--auth-failed-delay" => {
                let v = value(&flag)?;
                match v.parse::<f64>() {
                    Ok(s) if s >= 0.0 && s.is_finite() => o.auth_failed_delay = Some(s),
                    _ => return Err(format!("invalid --auth-failed-delay {v:?}")),
                }
            }
            "--login-timeout" => {
                let v = value(&flag)?;
                o.login_timeout = Some(
                    v.parse()
                        .map_err(|_| format!("invalid --login-timeout {v:?}"))?,
                );
            }
            "--read-limit" => o.read_limit = parse_rate(&value(&flag)?)?,
            "--write-limit" => o.write_limit = parse_rate(&value(&flag)?)?,
            "--max-rate" => o.max_rate = parse_rate(&value(&flag)?)?,
            "--max-login-failures" => {
                let v = value(&flag)?;
                o.max_login_failures = v
                    .parse()
                    .map_err(|_| format!("invalid --max-login-failures {v:?}"))?;
            }
            "--ban-time" => {
                let v = value(&flag)?;
                o.ban_time = Some(v.parse().map_err(|_| format!("invalid --ban-time {v:?}"))?);
            }
            "--max-cmds-per-sec" => {
                let v = value(&flag)?;
                o.max_cmds_per_sec = v
                    .parse()
                    .map_err(|_| format!("invalid --max-cmds-per-sec {v:?}"))?;
            }
            "--shutdown-grace" => {
                let v = value(&flag)?;
                o.shutdown_grace = Duration::from_secs(
                    v.parse()
                        .map_err(|_| format!("invalid --shutdown-grace {v:?}"))?,
                );
            }
            "-D" | "--debug" | "-V" | "--verbose" => o.debug = true,
            "--memory" => o.memory = true,
            "--io-threads" => {
                o.io_threads = value(&flag)?
                    .parse()
                    .map_err(|_| format!("{flag}: expected a number of threads"))?
            }
            "--tls-cert" => o.tls_cert = Some(PathBuf::from(value(&flag)?)),
            "--tls-key" => o.tls_key = Some(PathBuf::from(value(&flag)?)),
            "--tls-implicit" => o.tls_implicit = true,
            "--tls-control-required" => {
                o.tls_control_required = Some(tls_required(&flag, inline.as_deref())?)
            }
            "--tls-data-required" => {
                o.tls_data_required = Some(tls_required(&flag, inline.as_deref())?)
            }
            "--tls-session-reuse-required" => o.tls_session_reuse = Some(true),
            "--tls-no-session-reuse" => o.tls_session_reuse = Some(false),
            "--tls-close-notify-required" => o.tls_close_notify_required = true,
            "--tls-allow-ccc" => o.tls_allow_ccc = true,
            other => return Err(format!("unknown option {other:?} (see --help)")),
        }
    }
    if o.username.is_some() != o.password.is_some() {
        return Err("--username and --password go together".to_string());
    }
    if o.system_users && (o.username.is_some() || o.users.is_some()) {
        return Err("--system-users can't be combined with --username or --users".to_string());
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
    Ok(Parsed::Run(Box::new(o)))
}

/// Reads a `--users` file: `name:password:perms[:home]` a line, `#` comments and blank lines
/// allowed. A password field that is a crypt(3) hash of a method this system knows is
/// stored as a hash.
fn load_users(
    auth: &mut DummyAuthorizer,
    file: &Path,
    default_home: &Path,
) -> Result<usize, String> {
    let text =
        std::fs::read_to_string(file).map_err(|e| format!("can't read {}: {e}", file.display()))?;
    let mut count = 0;
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let parts: Vec<&str> = line.splitn(4, ':').collect();
        if parts.len() < 3 || parts[0].is_empty() {
            return Err(format!(
                "{}:{n}: expected name:password:perms[:home]",
                file.display()
            ));
        }
        let home = parts
            .get(3)
            .filter(|h| !h.is_empty())
            .map_or_else(|| default_home.to_path_buf(), PathBuf::from);
        let added = if crypt::is_hash(parts[1]) {
            auth.add_user_hashed(parts[0], parts[1], &home, parts[2])
        } else {
            auth.add_user(parts[0], parts[1], &home, parts[2])
        };
        added.map_err(|e| format!("{}:{n}: {e}", file.display()))?;
        count += 1;
    }
    if count == 0 {
        return Err(format!("{}: no accounts in the file", file.display()));
    }
    Ok(count)
}

#[cfg(feature = "tls")]
fn tls_config(o: &Options, cert: &Path, key: &Path) -> Result<TlsConfig, String> {
    let mut tls = TlsConfig::from_pem_files(cert, key).map_err(|e| e.to_string())?;
    tls.implicit = o.tls_implicit;
    tls.control_required = o.tls_control_required.unwrap_or_default();
    tls.data_required = o.tls_data_required.unwrap_or_default();
    tls.data_session_reuse_required = o.tls_session_reuse.unwrap_or(false);
    tls.data_close_notify_required = o.tls_close_notify_required;
    tls.ccc_allowed = o.tls_allow_ccc;
    Ok(tls)
}

#[cfg(not(feature = "tls"))]
fn tls_config(_: &Options, _: &Path, _: &Path) -> Result<TlsConfig, String> {
    Err("this ftpdlib was built without TLS support (cargo feature \"tls\")".to_string())
}

fn run(o: Options) -> Result<(), String> {
    let dir = match &o.directory {
        Some(d) => d.clone(),
        None => {
            std::env::current_dir().map_err(|e| format!("can't read the current directory: {e}"))?
        }
    };
    if !dir.is_dir() {
        return Err(format!("{}: no such directory", dir.display()));
    }
    let perm = perm(&o);
    let mut who = Vec::new();
    let authorizer: Arc<dyn ftpdlib::Authorizer> = if o.system_users {
        Arc::new(system_authorizer(&o, &dir, perm, &mut who)?)
    } else {
        Arc::new(virtual_authorizer(&o, &dir, perm, &mut who)?)
    };

    let mut config = Config::new(authorizer);
    config.io_threads = o.io_threads;
    if o.memory {
        let store = ftpdlib::MemoryStore::new();
        config.filesystem = Arc::new(move |home: &Path| {
            Ok(Arc::new(store.filesystem(home)?) as Arc<dyn ftpdlib::Filesystem>)
        });
    }
    if let Some(file) = &o.xferlog {
        let log = XferLog::open(file).map_err(|e| format!("can't open {}: {e}", file.display()))?;
        config.hooks = Arc::new(log);
    }
    if let Some(b) = &o.banner {
        config.banner = b.clone();
    }
    if let Some(t) = o.timeout {
        config.timeout = (t > 0).then(|| Duration::from_secs(t));
    }
    if let Some(d) = o.auth_failed_delay {
        config.auth_failed_timeout = Duration::from_secs_f64(d);
    }
    if let Some(t) = o.login_timeout {
        config.login_timeout = (t > 0).then(|| Duration::from_secs(t));
    }
    config.dtp.read_limit = o.read_limit;
    config.dtp.write_limit = o.write_limit;
    config.max_rate = Limits {
        read_limit: o.max_rate,
        write_limit: o.max_rate,
    };
    config.flood.max_failed_logins = o.max_login_failures;
    if let Some(t) = o.ban_time {
        config.flood.ban_duration = Duration::from_secs(t);
    }
    config.flood.max_commands_per_sec = o.max_cmds_per_sec;
    config.masquerade_address = o.nat_address;
    if let (Some(cert), Some(key)) = (&o.tls_cert, &o.tls_key) {
        config.tls = Some(tls_config(&o, cert, key)?);
    }
    config.masquerade_map = o.masquerade_map.clone();
    config.permit_foreign_addresses = o.permit_foreign_addresses;
    config.passive_ports = o.range.map(|(a, b)| a..=b);

    let addrs: Vec<SocketAddr> = match &o.interface {
        Some(i) if !i.is_empty() => {
            let ip: IpAddr = i
                .trim_matches(|c| c == '[' || c == ']')
                .parse()
                .map_err(|_| format!("invalid interface address {i:?}"))?;
            vec![SocketAddr::new(ip, o.port)]
        }
        // All interfaces: one dual-stack IPv6 socket, or IPv4 alone where IPv6 is off.
        _ => vec![
            SocketAddr::new(IpAddr::from([0u16; 8]), o.port),
            SocketAddr::new(IpAddr::from([0u8; 4]), o.port),
        ],
    };
    let config_tls = config.tls.clone();
    let mut server = None;
    let mut last_err = None;
    for a in &addrs {
        match FtpServer::bind(a, config.clone()) {
            Ok(s) => {
                server = Some(s);
                break;
            }
            Err(e) => last_err = Some(format!("can't listen on {a}: {e}")),
        }
    }
    let Some(mut server) = server else {
        return Err(last_err.unwrap_or_else(|| "no address to listen on".to_string()));
    };
    if let Some(n) = o.max_cons {
        server.max_cons = n;
    }
    if let Some(n) = o.max_cons_per_ip {
        server.max_cons_per_ip = n;
    }
    // Caught from before the line that says the server is up, so that no signal sent after
    // it meets the default action (which ends the process).
    let signals =
        Signals::new([SIGINT, SIGTERM, SIGHUP]).map_err(|e| format!("can't catch signals: {e}"))?;
    let listen = server
        .local_addrs()
        .iter()
        .map(|a| a.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    log::info!(
        target: ftpdlib::logger::LOG,
        ">>> starting FTP server on {listen}{}, pid={}, serving {} to {}",
        match &config_tls {
            None => "",
            Some(t) if t.implicit => " (implicit FTPS)",
            Some(_) => " (FTPS with AUTH TLS)",
        },
        std::process::id(),
        dir.display(),
        who.join(", ")
    );
    serve(server, signals, &o, &dir)
}

/// The permissions of `-w` (everything) or of its absence (read-only).
fn perm(o: &Options) -> &'static str {
    if o.write {
        "elradfmwMT"
    } else {
        "elr"
    }
}

/// The token of the signal source; the server takes the [`ftpdlib::TOKEN_SPAN`] tokens from
/// `FTP_TOKENS` up.
const SIGNALS: Token = Token(0);
const FTP_TOKENS: Token = Token(1);

/// Serves until SIGINT or SIGTERM, on one poll that carries the server and the signals.
///
/// The first SIGINT or SIGTERM closes the listeners and lets open data connections finish
/// for `--shutdown-grace`; the server then closes every session, at once when the last
/// transfer has ended, or at the end of the grace period, or at a second signal. SIGHUP
/// reloads the settings read from files ([`reload`]). The signals come through a pipe
/// (signal-hook's self-pipe), so the reactor sees them as one more readable source and no
/// code runs in signal context here.
fn serve(
    mut server: FtpServer,
    mut signals: Signals,
    o: &Options,
    dir: &Path,
) -> Result<(), String> {
    let mut poll = Poll::new().map_err(|e| format!("can't make a poll: {e}"))?;
    poll.registry()
        .register(&mut signals, SIGNALS, Interest::READABLE)
        .map_err(|e| format!("can't watch signals: {e}"))?;
    server
        .register(poll.registry(), FTP_TOKENS)
        .map_err(|e| format!("can't register the server: {e}"))?;
    let mut events = Events::with_capacity(256);
    // Set by the first SIGINT/SIGTERM: when the grace period ends.
    let mut grace_end: Option<Instant> = None;
    loop {
        let deadline = match (server.next_timeout(), grace_end) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let timeout = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        match poll.poll(&mut events, timeout) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(format!("server stopped: {e}")),
        }
        let now = Instant::now();
        let mut caught = Vec::new();
        for event in events.iter() {
            if server.owns(event.token()) {
                server.handle_event(event, now);
            } else if event.token() == SIGNALS {
                caught.extend(signals.pending());
            }
        }
        server.handle_timeouts(Instant::now());
        for signal in caught {
            if signal == SIGHUP {
                reload(&mut server, o, dir);
            } else if grace_end.is_some() {
                log::info!(
                    target: ftpdlib::logger::LOG,
                    ">>> second {} during shutdown: closing {} sessions now <<<",
                    signal_name(signal),
                    server.session_count()
                );
                return stop(server, &poll);
            } else {
                server.close();
                log::info!(
                    target: ftpdlib::logger::LOG,
                    ">>> shutting down FTP server ({} sessions) <<<",
                    server.session_count()
                );
                grace_end = Some(Instant::now() + o.shutdown_grace);
            }
        }
        if let Some(end) = grace_end {
            let transfers = transfer_count(&server);
            if transfers == 0 {
                return stop(server, &poll);
            }
            if Instant::now() >= end {
                log::info!(
                    target: ftpdlib::logger::LOG,
                    ">>> shutdown grace period over: cutting {transfers} transfers <<<"
                );
                return stop(server, &poll);
            }
        }
    }
}

/// Data connections open or awaited. Once the listeners are closed the server's channels
/// are its sessions and their data channels.
fn transfer_count(server: &FtpServer) -> usize {
    server
        .channel_count()
        .saturating_sub(server.session_count())
}

/// Closes every session and leaves nothing registered.
fn stop(mut server: FtpServer, poll: &Poll) -> Result<(), String> {
    let sessions = server.session_count();
    server.deregister(poll.registry());
    log::info!(
        target: ftpdlib::logger::LOG,
        ">>> FTP server stopped ({sessions} sessions closed) <<<"
    );
    Ok(())
}

fn signal_name(signal: i32) -> &'static str {
    match signal {
        SIGINT => "SIGINT",
        SIGTERM => "SIGTERM",
        SIGHUP => "SIGHUP",
        _ => "signal",
    }
}

/// SIGHUP: reads the `--users` file and the `--tls-cert`/`--tls-key` files again and hands
/// the result to the server for the sessions that start from now on; running sessions keep
/// what they logged in with. Everything is loaded before anything is changed: a file that
/// fails to load leaves the old settings whole.
fn reload(server: &mut FtpServer, o: &Options, dir: &Path) {
    if o.users.is_none() && o.tls_cert.is_none() {
        log::info!(
            target: ftpdlib::logger::LOG,
            ">>> SIGHUP: nothing to reload (no --users or --tls-cert given) <<<"
        );
        return;
    }
    match reloaded(server.config(), o, dir) {
        Ok((config, what)) => {
            server.set_config(config);
            log::info!(
                target: ftpdlib::logger::LOG,
                ">>> SIGHUP: reloaded {what} for new sessions <<<"
            );
        }
        Err(e) => log::warn!(
            target: ftpdlib::logger::LOG,
            ">>> SIGHUP: reload refused, keeping the old settings: {e} <<<"
        ),
    }
}

/// A copy of `old` with the authorizer and TLS settings read anew, and what was read.
fn reloaded(old: &Config, o: &Options, dir: &Path) -> Result<(Config, String), String> {
    let mut config = old.clone();
    let mut what = Vec::new();
    if o.users.is_some() {
        let mut who = Vec::new();
        config.authorizer = Arc::new(virtual_authorizer(o, dir, perm(o), &mut who)?);
        what.extend(who);
    }
    if let (Some(cert), Some(key)) = (&o.tls_cert, &o.tls_key) {
        config.tls = Some(tls_config(o, cert, key)?);
        what.push(format!("TLS certificate {}", cert.display()));
    }
    Ok((config, what.join(", ")))
}

/// The authorizer of `--system-users`.
fn system_authorizer(
    o: &Options,
    dir: &Path,
    perm: &str,
    who: &mut Vec<String>,
) -> Result<UnixAuthorizer, String> {
    let mut rejected = o.rejected_users.clone();
    // Logging in as root over FTP would run every command as root: refused unless the
    // administrator names it in --allowed-users.
    if o.allowed_users.is_empty() && !rejected.iter().any(|u| u == "root") {
        rejected.push("root".to_string());
    }
    let opts = UnixOptions {
        global_perm: ftpdlib::Perms::parse(perm).map_err(|e| e.to_string())?,
        allowed_users: o.allowed_users.clone(),
        rejected_users: rejected,
        require_valid_shell: o.require_valid_shell,
        anonymous: o.anonymous,
        anonymous_home: Some(dir.to_path_buf()),
        ..UnixOptions::default()
    };
    let auth = UnixAuthorizer::new(opts).map_err(|e| e.to_string())?;
    who.push(format!("system users ({perm})"));
    if o.anonymous {
        who.push(format!(
            "anonymous as {} (elr)",
            UnixAuthorizer::DEFAULT_ANONYMOUS_USER
        ));
    }
    Ok(auth)
}

/// The authorizer of `--username`, `--users` and plain anonymous serving.
fn virtual_authorizer(
    o: &Options,
    dir: &Path,
    perm: &str,
    who: &mut Vec<String>,
) -> Result<DummyAuthorizer, String> {
    let mut auth = DummyAuthorizer::new();
    if let (Some(u), Some(p)) = (&o.username, &o.password) {
        auth.add_user(u, p, dir, perm).map_err(|e| e.to_string())?;
        who.push(format!("user {u:?} ({perm})"));
    }
    if let Some(file) = &o.users {
        let n = load_users(&mut auth, file, dir)?;
        who.push(format!("{n} accounts from {}", file.display()));
    }
    if who.is_empty() {
        auth.add_anonymous(dir, perm).map_err(|e| e.to_string())?;
        who.push(format!("anonymous ({perm})"));
    } else if o.anonymous {
        auth.add_anonymous(dir, "elr").map_err(|e| e.to_string())?;
        who.push("anonymous (elr)".to_string());
    }
    Ok(auth)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let opts = match parse_args(args) {
        Ok(Parsed::Run(o)) => o,
        Ok(Parsed::HashPassword(method)) => {
            return match hash_password(method) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("ftpdlib: {e}");
                    ExitCode::FAILURE
                }
            };
        }
        Ok(Parsed::Exit(text)) => {
            println!("{text}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("ftpdlib: {e}");
            return ExitCode::from(2);
        }
    };
    let level = if opts.debug { "debug" } else { "info" };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(level)).init();
    match run(*opts) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ftpdlib: {e}");
            ExitCode::FAILURE
        }
    }
}
