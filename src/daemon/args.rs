//! The command line: the options, their parser and `--help`, and the `hash-password`
//! subcommand.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use ftpdlib::authorizer::crypt::{self, Method};
use ftpdlib::throttle::parse_rate;
use ftpdlib::TlsRequired;

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
pub(crate) struct Options {
    pub(crate) interface: Option<String>,
    pub(crate) port: u16,
    pub(crate) write: bool,
    pub(crate) directory: Option<PathBuf>,
    pub(crate) nat_address: Option<IpAddr>,
    pub(crate) masquerade_map: Vec<ftpdlib::MasqueradeRule>,
    pub(crate) permit_foreign_addresses: bool,
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
    pub(crate) timeout: Option<u64>,
    pub(crate) auth_failed_delay: Option<f64>,
    pub(crate) login_timeout: Option<u64>,
    pub(crate) read_limit: u64,
    pub(crate) write_limit: u64,
    pub(crate) max_rate: u64,
    pub(crate) max_login_failures: u32,
    pub(crate) ban_time: Option<u64>,
    pub(crate) max_cmds_per_sec: u32,
    pub(crate) debug: bool,
    pub(crate) memory: bool,
    pub(crate) io_threads: usize,
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
}

/// `--tls-*-required` alone (everyone) or `=users` (all but anonymous).
fn tls_required(flag: &str, inline: Option<&str>) -> Result<TlsRequired, String> {
    match inline {
        None | Some("all") => Ok(TlsRequired::Everyone),
        Some("users") => Ok(TlsRequired::ExceptAnonymous),
        Some(v) => Err(format!("invalid {flag} value {v:?} (want all or users)")),
    }
}

pub(crate) enum Parsed {
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
pub(crate) fn hash_password(method: Method) -> Result<(), String> {
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

pub(crate) fn parse_args(args: Vec<String>) -> Result<Parsed, String> {
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
