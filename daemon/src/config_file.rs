//! The `--config` file: every option of the command line as a TOML key, and the accounts.
//!
//! ```toml
//! port = 21                      # --port 21
//! directory = "/srv/ftp"         # --directory /srv/ftp
//! range = "60000-60199"          # --range 60000-60199
//! allowed-users = ["a", "b"]     # --allowed-users a,b
//! masquerade-map = ["10.0.0.0/8=10.0.0.5", "0.0.0.0/0=203.0.113.7"]
//! tls-control-required = "users" # --tls-control-required=users (true: =all)
//!
//! [anonymous]                    # --anonymous, with its own home, perm and messages
//! home = "/srv/ftp/pub"
//!
//! [[users]]                      # an account, as a line of a --users file and more
//! name = "alice"
//! password = "$y$j9T$..."        # from `ftpdlib hash-password`, or plain
//! perm = "elradfmwMT"
//! ```
//!
//! There is one way in for a setting, whatever its source: a key of the file becomes the
//! long flag of the same name (`port = 21` is `--port=21`, `write = true` is `--write`) and
//! goes through clap with the command line, so it meets the same value parsers, the same
//! checks and the same defaults. The keys are the long names (and aliases) of
//! clap's own `Command`: a flag added to `args.rs` is a key at once. Only `users` and
//! `anonymous` take a second shape, the tables above.
//!
//! Every error names the file and the line (from the spans of the `toml` crate): an unknown
//! key, a value of the wrong type, a value the flag's parser refuses, an unknown key of a
//! table (`deny_unknown_fields`).

use std::collections::{BTreeMap, HashSet};
use std::ffi::OsString;
use std::fmt::Display;
use std::path::{Path, PathBuf};

use clap::parser::ValueSource;
use clap::{ArgAction, ArgMatches};
use serde::de::IntoDeserializer;
use serde::Deserialize;
use toml::de::{DeTable, DeValue};
use toml::Spanned;

use ftpdlib::throttle::parse_rate;
use ftpdlib::{Limits, Perms};

/// The arguments of clap that are not settings: no key of the file names them.
pub(crate) const NOT_KEYS: [&str; 3] = ["help", "version", "config"];

/// One account of `[[users]]`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Account {
    pub(crate) name: String,
    /// A crypt(3) hash (`$y$...`, `$6$...`) or the plain password.
    pub(crate) password: String,
    /// Where the user lands; `directory` when not given.
    pub(crate) home: Option<PathBuf>,
    /// The permission letters; `elr` (read-only) when not given.
    pub(crate) perm: String,
    /// The 230 text of a successful login; the library's default when not given.
    pub(crate) msg_login: Option<String>,
    /// The 221 text of QUIT; the library's default when not given.
    pub(crate) msg_quit: Option<String>,
    /// Bytes per second shared by all the user's sessions, 0 for none.
    pub(crate) limits: Limits,
}

/// The `[anonymous]` table: how anonymous is served when it is.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Anonymous {
    /// `directory` when not given.
    pub(crate) home: Option<PathBuf>,
    /// The permission letters; `elr` beside other accounts, else those of `write`.
    pub(crate) perm: Option<String>,
    pub(crate) msg_login: Option<String>,
    pub(crate) msg_quit: Option<String>,
    pub(crate) limits: Limits,
}

/// What a config file says.
#[derive(Debug, Default)]
pub(crate) struct ConfigFile {
    /// The options it sets, as command-line arguments: (clap id, arguments).
    pub(crate) flags: Vec<(String, Vec<OsString>)>,
    /// The `[[users]]` accounts, when `users` is that array.
    pub(crate) accounts: Option<Vec<Account>>,
    /// The `[anonymous]` table.
    pub(crate) anonymous: Option<Anonymous>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct UserTable {
    name: String,
    password: String,
    home: Option<PathBuf>,
    perm: Option<String>,
    msg_login: Option<String>,
    msg_quit: Option<String>,
    read_limit: Option<Rate>,
    write_limit: Option<Rate>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct AnonymousTable {
    home: Option<PathBuf>,
    perm: Option<String>,
    msg_login: Option<String>,
    msg_quit: Option<String>,
    read_limit: Option<Rate>,
    write_limit: Option<Rate>,
}

/// Bytes per second: an integer, or a string with the suffixes of `--read-limit` (`"64K"`).
struct Rate(u64);

impl<'de> Deserialize<'de> for Rate {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Rate, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Rate;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("bytes per second: an integer, or a string such as \"64K\" or \"10M\"")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Rate, E> {
                Ok(Rate(v))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Rate, E> {
                u64::try_from(v)
                    .map(Rate)
                    .map_err(|_| E::custom(format!("invalid rate {v}: below 0")))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Rate, E> {
                parse_rate(v).map(Rate).map_err(E::custom)
            }
        }
        d.deserialize_any(Visitor)
    }
}

fn limits(read: Option<Rate>, write: Option<Rate>) -> Limits {
    Limits::new(read.map_or(0, |r| r.0), write.map_or(0, |r| r.0))
}

/// Reads and checks a config file against the options of `cmd`.
///
/// # Errors
/// One line, `FILE:LINE: what`, for a file that can't be read, bad TOML, an unknown key,
/// a value of the wrong shape or one the option's parser refuses, and a bad account.
pub(crate) fn read(path: &Path, cmd: &clap::Command) -> Result<ConfigFile, String> {
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("can't read {}: {e}", path.display()))?;
    parse(path, &text, cmd)
}

/// The text of a config file at `path`; see [`read`].
pub(crate) fn parse(path: &Path, text: &str, cmd: &clap::Command) -> Result<ConfigFile, String> {
    let at = |offset: usize, what: &dyn Display| {
        let line = text[..offset.min(text.len())].matches('\n').count() + 1;
        format!("{}:{line}: {what}", path.display())
    };
    let toml_error = |e: toml::de::Error, fallback: usize| {
        let offset = e.span().map_or(fallback, |s| s.start);
        at(offset, &e.message().trim().replace('\n', "; "))
    };
    let table = DeTable::parse(text).map_err(|e| toml_error(e, 0))?;
    let mut cmd = cmd.clone();
    cmd.build();
    let mut file = ConfigFile::default();
    let mut seen = HashSet::new();
    for (key, value) in table.into_inner() {
        let name = key.get_ref().as_ref();
        let key_at = key.span().start;
        let value_at = value.span().start;
        if name == "config" {
            return Err(at(
                key_at,
                &"`config` is not a key: a config file can't name another",
            ));
        }
        let Some(arg) = cmd
            .get_arguments()
            .filter(|a| !NOT_KEYS.contains(&a.get_id().as_str()))
            .find(|a| {
                a.get_long() == Some(name)
                    || a.get_all_aliases().is_some_and(|al| al.contains(&name))
            })
        else {
            return Err(at(key_at, &unknown_key(name, &cmd)));
        };
        let id = arg.get_id().to_string();
        if !seen.insert(id.clone()) {
            return Err(at(
                key_at,
                &format!("`{name}` sets an option already set above (under another name)"),
            ));
        }
        let long = arg.get_long().unwrap_or(name).to_string();
        let args = match (id.as_str(), value.get_ref()) {
            ("users", DeValue::Array(_)) => {
                file.accounts = Some(accounts(value, &at, &toml_error)?);
                Vec::new()
            }
            ("anonymous", DeValue::Table(_)) => {
                let t = AnonymousTable::deserialize(value.into_deserializer())
                    .map_err(|e| toml_error(e, value_at))?;
                let anon = Anonymous {
                    home: home(t.home, &|w| at(value_at, w))?,
                    perm: t.perm.map(|p| perm(p, &|w| at(value_at, w))).transpose()?,
                    msg_login: t.msg_login,
                    msg_quit: t.msg_quit,
                    limits: limits(t.read_limit, t.write_limit),
                };
                file.anonymous = Some(anon);
                vec![OsString::from("--anonymous")]
            }
            _ => {
                let value = toml::Value::deserialize(value.into_deserializer())
                    .map_err(|e| toml_error(e, value_at))?;
                let args = arguments(arg, &long, value).map_err(|w| at(value_at, &w))?;
                // The value meets the option's own parser here, where its line is known.
                let argv = std::iter::once(OsString::from("ftpdlib")).chain(args.clone());
                if let Err(e) = cmd.clone().try_get_matches_from(argv) {
                    return Err(at(value_at, &crate::args::clap_message(&e)));
                }
                args
            }
        };
        file.flags.push((id, args));
    }
    Ok(file)
}

/// "unknown key", with the option meant when the name differs by `_` or case.
fn unknown_key(name: &str, cmd: &clap::Command) -> String {
    let near = name.replace('_', "-").to_ascii_lowercase();
    let hint = if near == "users" || near == "anonymous" {
        Some(near.clone())
    } else {
        cmd.get_arguments()
            .filter_map(|a| a.get_long())
            .find(|l| *l == near)
            .map(str::to_string)
    };
    match hint {
        Some(h) => format!("unknown key `{name}`; did you mean `{h}`?"),
        None => format!("unknown key `{name}` (the keys are the long options of ftpdlib --help)"),
    }
}

/// The command-line arguments of `long = value`.
fn arguments(arg: &clap::Arg, long: &str, value: toml::Value) -> Result<Vec<OsString>, String> {
    use toml::Value as V;
    let flag = || vec![OsString::from(format!("--{long}"))];
    let with = |v: &str| vec![OsString::from(format!("--{long}={v}"))];
    let takes_values = arg.get_action().takes_values();
    // `--tls-control-required` alone means its default-missing value.
    let value_optional = arg.get_num_args().is_some_and(|n| n.min_values() == 0);
    let scalar = |v: &V| match v {
        V::String(s) => Ok(s.clone()),
        V::Integer(i) => Ok(i.to_string()),
        // Plain digits for the usual sizes (`0.5`, `21`); past 1e16 the shortest form with
        // an exponent (`1e300`), so an error quotes the value as written, not 300 digits.
        V::Float(f) if f.abs() >= 1e16 => Ok(format!("{f:?}")),
        V::Float(f) => Ok(f.to_string()),
        _ => Err(format!(
            "`{long}` wants a string or a number, not {}",
            v.type_str()
        )),
    };
    match value {
        V::Boolean(b) if !takes_values || value_optional => Ok(if b { flag() } else { Vec::new() }),
        _ if !takes_values => Err(format!(
            "`{long}` wants true or false, not {}",
            value.type_str()
        )),
        V::Array(items) if matches!(arg.get_action(), ArgAction::Append) => {
            let mut args = Vec::new();
            for item in &items {
                args.extend(with(&scalar(item)?));
            }
            Ok(args)
        }
        V::Array(items) => match arg.get_value_delimiter() {
            Some(d) => {
                let parts = items.iter().map(scalar).collect::<Result<Vec<_>, _>>()?;
                Ok(with(&parts.join(&d.to_string())))
            }
            None => Err(format!("`{long}` wants one value, not an array")),
        },
        v => Ok(with(&scalar(&v)?)),
    }
}

/// The `[[users]]` array.
fn accounts(
    value: Spanned<DeValue<'_>>,
    at: &dyn Fn(usize, &dyn Display) -> String,
    toml_error: &dyn Fn(toml::de::Error, usize) -> String,
) -> Result<Vec<Account>, String> {
    let DeValue::Array(items) = value.into_inner() else {
        return Ok(Vec::new());
    };
    let mut out: Vec<Account> = Vec::new();
    for item in items {
        let item_at = item.span().start;
        let err = |w: &dyn Display| at(item_at, w);
        let t =
            UserTable::deserialize(item.into_deserializer()).map_err(|e| toml_error(e, item_at))?;
        if t.name.is_empty() || t.name.contains(char::is_whitespace) {
            return Err(err(&format!("invalid user name {:?}", t.name)));
        }
        if t.name == "anonymous" {
            return Err(err(
                &"anonymous takes no password and has no [[users]] entry; an [anonymous] \
                  table or `anonymous = true` serves it",
            ));
        }
        if out.iter().any(|a| a.name == t.name) {
            return Err(err(&format!("user {:?} is listed twice", t.name)));
        }
        if t.password.is_empty() {
            return Err(err(
                &"empty password; give one, or a hash from ftpdlib hash-password",
            ));
        }
        out.push(Account {
            home: home(t.home, &err)?,
            perm: perm(t.perm.unwrap_or_else(|| "elr".to_string()), &err)?,
            name: t.name,
            password: t.password,
            msg_login: t.msg_login,
            msg_quit: t.msg_quit,
            limits: limits(t.read_limit, t.write_limit),
        });
    }
    Ok(out)
}

fn perm(letters: String, err: &dyn Fn(&dyn Display) -> String) -> Result<String, String> {
    Perms::parse(&letters).map_err(|e| err(&e))?;
    Ok(letters)
}

/// A `home`: an absolute path to a directory.
fn home(
    home: Option<PathBuf>,
    err: &dyn Fn(&dyn Display) -> String,
) -> Result<Option<PathBuf>, String> {
    match home {
        Some(h) if !h.is_absolute() => Err(err(&format!(
            "home {} is not an absolute path",
            h.display()
        ))),
        Some(h) if !h.is_dir() => Err(err(&format!("home {}: no such directory", h.display()))),
        h => Ok(h),
    }
}

/// The options that override each other (`overrides_with`): two spellings of one setting.
const OVERRIDING: [(&str, &str); 1] = [("tls_session_reuse_required", "tls_no_session_reuse")];

/// Whether the user gave an option on the command line or in the environment: then it
/// wins over the config file. A clap default does not.
fn given(m: &ArgMatches, id: &str) -> bool {
    matches!(
        m.value_source(id),
        Some(ValueSource::CommandLine | ValueSource::EnvVariable)
    )
}

/// The options of the command line, the environment and the `--config` file, merged:
/// the file's keys become arguments placed before the command line's, for the options the
/// user did not give (a later argument wins in clap, and the environment only fills in
/// what no argument gave).
pub(crate) fn merge(
    argv: &[OsString],
    first: ArgMatches,
) -> Result<(ArgMatches, ConfigFile), String> {
    let Some(path) = first.get_one::<PathBuf>("config").cloned() else {
        return Ok((first, ConfigFile::default()));
    };
    let cmd = crate::args::command();
    let mut file = read(&path, &cmd)?;
    let mut merged = vec![OsString::from("ftpdlib")];
    for (id, args) in &file.flags {
        // Of two options that override each other, the one the user gave wins over
        // either in the file.
        let given_pair = OVERRIDING
            .iter()
            .filter_map(|(a, b)| (id == a).then_some(b).or((id == b).then_some(a)))
            .any(|other| given(&first, other));
        if !given(&first, id) && !given_pair {
            merged.extend(args.iter().cloned());
        }
    }
    if given(&first, "users") {
        file.accounts = None;
    }
    merged.extend(argv.iter().cloned());
    let m = cmd
        .try_get_matches_from(merged)
        .map_err(|e| format!("{}: {}", path.display(), crate::args::one_line(&e)))?;
    Ok((m, file))
}

/// Every option's value as given, by long name.
pub(crate) fn raw_settings(m: &ArgMatches) -> BTreeMap<String, Vec<OsString>> {
    crate::args::command()
        .get_arguments()
        .filter(|a| !NOT_KEYS.contains(&a.get_id().as_str()))
        .filter_map(|a| {
            let raw = m.try_get_raw(a.get_id().as_str()).ok().flatten()?;
            let name = a.get_long().unwrap_or(a.get_id().as_str()).to_string();
            Some((name, raw.map(|v| v.to_os_string()).collect()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_text(text: &str) -> Result<ConfigFile, String> {
        parse(Path::new("f.toml"), text, &crate::args::command())
    }

    #[test]
    fn keys_become_long_flags() {
        let f = parse_text(
            "port = 21\nwrite = true\nanonymous = false\nallowed-users = [\"a\", \"b\"]\n\
             masquerade-map = [\"10.0.0.0/8=10.0.0.5\", \"0.0.0.0/0=203.0.113.7\"]\n\
             auth-failed-delay = 0.5\nverbose = true\n",
        )
        .unwrap();
        let flags: Vec<(String, Vec<String>)> = f
            .flags
            .into_iter()
            .map(|(id, a)| {
                (
                    id,
                    a.into_iter().map(|s| s.into_string().unwrap()).collect(),
                )
            })
            .collect();
        let get = |id: &str| flags.iter().find(|(i, _)| i == id).unwrap().1.clone();
        assert_eq!(get("port"), ["--port=21"]);
        assert_eq!(get("write"), ["--write"]);
        assert!(get("anonymous").is_empty());
        assert_eq!(get("allowed_users"), ["--allowed-users=a,b"]);
        assert_eq!(
            get("masquerade_map"),
            [
                "--masquerade-map=10.0.0.0/8=10.0.0.5",
                "--masquerade-map=0.0.0.0/0=203.0.113.7"
            ]
        );
        assert_eq!(get("auth_failed_delay"), ["--auth-failed-delay=0.5"]);
        assert_eq!(get("debug"), ["--debug"]);
    }

    #[test]
    fn errors_name_the_line() {
        let e = parse_text("port = 21\n\nprot = 22\n").unwrap_err();
        assert!(e.starts_with("f.toml:3: unknown key `prot`"), "{e}");
        let e = parse_text("port = 21\nmax_cons = 2\n").unwrap_err();
        assert!(e.contains("f.toml:2:") && e.contains("`max-cons`"), "{e}");
        let e = parse_text("# x\nport = \"high\"\n").unwrap_err();
        assert!(e.starts_with("f.toml:2: invalid value 'high'"), "{e}");
        let e = parse_text("port = 1\nwrite = \"yes\"\n").unwrap_err();
        assert!(
            e.starts_with("f.toml:2: `write` wants true or false"),
            "{e}"
        );
        let e = parse_text("port = 1\nport = 2\n").unwrap_err();
        assert!(e.starts_with("f.toml:2:"), "{e}");
        let e = parse_text("debug = true\nverbose = true\n").unwrap_err();
        assert!(e.contains("already set"), "{e}");
        let e = parse_text("config = \"x\"\n").unwrap_err();
        assert!(e.starts_with("f.toml:1: `config` is not a key"), "{e}");
    }

    #[test]
    fn accounts_are_checked_with_their_line() {
        let f = parse_text(
            "[[users]]\nname = \"a\"\npassword = \"p\"\nread-limit = \"1K\"\n\
             [[users]]\nname = \"b\"\npassword = \"q\"\nperm = \"elrw\"\nmsg-login = \"hi\"\n",
        )
        .unwrap();
        let a = f.accounts.unwrap();
        assert_eq!(a.len(), 2);
        assert_eq!(a[0].perm, "elr");
        assert_eq!(a[0].limits.read_limit, 1024);
        assert_eq!(a[1].msg_login.as_deref(), Some("hi"));
        let e =
            parse_text("[[users]]\nname = \"a\"\npassword = \"p\"\npassword2 = 1\n").unwrap_err();
        assert!(e.starts_with("f.toml:4:") && e.contains("password2"), "{e}");
        let e =
            parse_text("[[users]]\nname = \"a\"\npassword = \"p\"\nperm = \"elrZ\"\n").unwrap_err();
        assert!(
            e.starts_with("f.toml:1:") || e.starts_with("f.toml:2:"),
            "{e}"
        );
        let e = parse_text("[[users]]\nname = \"a\"\npassword = \"p\"\nwrite-limit = \"fast\"\n")
            .unwrap_err();
        assert!(e.starts_with("f.toml:4:"), "{e}");
    }

    /// The file's key fills in what the command line leaves out; of two options that
    /// override each other, the command line's wins over the file's other one.
    #[test]
    fn the_command_line_wins_over_the_file() {
        let dir = std::env::temp_dir().join(format!("ftpdlib-args-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("f.toml");
        std::fs::write(
            &file,
            "port = 2999\nbanner = \"file\"\nmax-cons = 7\ntls-cert = \"/c.pem\"\n\
             tls-key = \"/k.pem\"\ntls-session-reuse-required = true\n",
        )
        .unwrap();
        let run = |extra: &[&str]| {
            let mut args = vec!["--config".into(), file.clone().into_os_string()];
            args.extend(extra.iter().map(|a| a.into()));
            match crate::args::parse_args(args) {
                Ok(crate::args::Parsed::Run(o)) => o,
                Err(e) => panic!("{e}"),
                Ok(_) => panic!("not a run"),
            }
        };
        let o = run(&[]);
        assert_eq!(
            (o.port, o.banner.as_deref(), o.max_cons),
            (2999, Some("file"), Some(7))
        );
        assert_eq!(o.tls_session_reuse, Some(true));
        let o = run(&["-p", "3000", "--banner=cli", "--tls-no-session-reuse"]);
        assert_eq!(
            (o.port, o.banner.as_deref(), o.max_cons),
            (3000, Some("cli"), Some(7))
        );
        assert_eq!(o.tls_session_reuse, Some(false));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
