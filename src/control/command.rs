//! The command table and the line parser (pyftpdlib's `proto_cmds`).
//!
//! Before working on this file read RFC 959 (FTP), RFC 2428 (EPRT, EPSV), RFC 2389 (FEAT,
//! OPTS), RFC 3659 (SIZE, MDTM, REST, MLSx), RFC 2640 (UTF-8) and RFC 4217 (AUTH, PBSZ,
//! PROT, CCC).
//!
//! Each command is described by a [`CommandSpec`]: its name, the permission it needs, whether
//! it needs a login, whether it takes an argument, whether that argument is a path, and its
//! help text. The session checks these in order before running the command: argument (501),
//! login (530), path inside the root (550), permission (550).

use crate::authorizer::Perms;

/// The longest command line accepted, CRLF included; longer lines get "500 Command too long."
pub const MAX_LINE: usize = 2048;

/// Every verb the server knows, plus `Unknown` for the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum Verb {
    Abor,
    Acct,
    Allo,
    Appe,
    Auth,
    Ccc,
    Cdup,
    Cwd,
    Dele,
    Eprt,
    Epsv,
    Feat,
    Help,
    List,
    Mdtm,
    Mfmt,
    Mkd,
    Mlsd,
    Mlst,
    Mode,
    Nlst,
    Noop,
    Opts,
    Pass,
    Pasv,
    Pbsz,
    Port,
    Prot,
    Pwd,
    Quit,
    Rein,
    Rest,
    Retr,
    Rmd,
    Rnfr,
    Rnto,
    Site,
    Size,
    Smnt,
    Stat,
    Stor,
    Stou,
    Stru,
    Syst,
    Type,
    User,
    /// A verb not in the table.
    Unknown,
}

/// Whether a command takes an argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arg {
    /// Must have one ("501 Syntax error: command needs an argument.").
    Required,
    /// Must not have one ("501 Syntax error: command does not accept arguments.").
    None,
    /// May have one.
    Optional,
}

/// One row of the command table.
#[derive(Debug, Clone, Copy)]
pub struct CommandSpec {
    /// The verb as sent on the wire.
    pub name: &'static str,
    /// The verb as an enum.
    pub verb: Verb,
    /// Permission needed on the path the command acts on, if any.
    pub perm: Option<Perms>,
    /// Whether the client must be logged in.
    pub auth: bool,
    /// The argument rule.
    pub arg: Arg,
    /// Whether the argument (or the current directory, when absent) is a path to be checked
    /// against the root and the permission.
    pub path: bool,
    /// HELP text.
    pub help: &'static str,
}

const fn spec(
    name: &'static str,
    verb: Verb,
    perm: Option<Perms>,
    auth: bool,
    arg: Arg,
    path: bool,
    help: &'static str,
) -> CommandSpec {
    CommandSpec {
        name,
        verb,
        perm,
        auth,
        arg,
        path,
        help,
    }
}

use Arg::{None as NoArg, Optional as OptArg, Required as ReqArg};

/// The command table, sorted by name.
pub const COMMANDS: &[CommandSpec] = &[
    spec(
        "ABOR",
        Verb::Abor,
        None,
        true,
        NoArg,
        false,
        "Syntax: ABOR (abort transfer).",
    ),
    spec(
        "ACCT",
        Verb::Acct,
        None,
        false,
        ReqArg,
        false,
        "Syntax: ACCT <SP> account (noop; no accounts here).",
    ),
    spec(
        "ALLO",
        Verb::Allo,
        None,
        true,
        ReqArg,
        false,
        "Syntax: ALLO <SP> bytes (noop; allocate storage).",
    ),
    spec(
        "APPE",
        Verb::Appe,
        Some(Perms::APPEND),
        true,
        ReqArg,
        true,
        "Syntax: APPE <SP> file-name (append data to file).",
    ),
    spec(
        "AUTH",
        Verb::Auth,
        None,
        false,
        ReqArg,
        false,
        "Syntax: AUTH <SP> TLS|SSL (set up secure control channel).",
    ),
    spec(
        "CCC",
        Verb::Ccc,
        None,
        false,
        NoArg,
        false,
        "Syntax: CCC (clear the control channel; refused).",
    ),
    spec(
        "CDUP",
        Verb::Cdup,
        Some(Perms::CWD),
        true,
        NoArg,
        false,
        "Syntax: CDUP (go to parent directory).",
    ),
    spec(
        "CWD",
        Verb::Cwd,
        Some(Perms::CWD),
        true,
        OptArg,
        true,
        "Syntax: CWD [<SP> dir-name] (change working directory).",
    ),
    spec(
        "DELE",
        Verb::Dele,
        Some(Perms::DELETE),
        true,
        ReqArg,
        true,
        "Syntax: DELE <SP> file-name (delete file).",
    ),
    spec(
        "EPRT",
        Verb::Eprt,
        None,
        true,
        ReqArg,
        false,
        "Syntax: EPRT <SP> |proto|ip|port| (extended active mode).",
    ),
    spec(
        "EPSV",
        Verb::Epsv,
        None,
        true,
        OptArg,
        false,
        "Syntax: EPSV [<SP> proto/\"ALL\"] (extended passive mode).",
    ),
    spec(
        "FEAT",
        Verb::Feat,
        None,
        false,
        NoArg,
        false,
        "Syntax: FEAT (list all new features supported).",
    ),
    spec(
        "HELP",
        Verb::Help,
        None,
        false,
        OptArg,
        false,
        "Syntax: HELP [<SP> cmd] (show help).",
    ),
    spec(
        "LIST",
        Verb::List,
        Some(Perms::LIST),
        true,
        OptArg,
        true,
        "Syntax: LIST [<SP> path] (list files).",
    ),
    spec(
        "MDTM",
        Verb::Mdtm,
        Some(Perms::LIST),
        true,
        ReqArg,
        true,
        "Syntax: MDTM [<SP> path] (file last modification time).",
    ),
    spec(
        "MFMT",
        Verb::Mfmt,
        Some(Perms::MFMT),
        true,
        ReqArg,
        false,
        "Syntax: MFMT <SP> timeval <SP> path (set file modification time).",
    ),
    spec(
        "MKD",
        Verb::Mkd,
        Some(Perms::MKDIR),
        true,
        ReqArg,
        true,
        "Syntax: MKD <SP> path (create directory).",
    ),
    spec(
        "MLSD",
        Verb::Mlsd,
        Some(Perms::LIST),
        true,
        OptArg,
        true,
        "Syntax: MLSD [<SP> path] (list directory in machine-readable form).",
    ),
    spec(
        "MLST",
        Verb::Mlst,
        Some(Perms::LIST),
        true,
        OptArg,
        true,
        "Syntax: MLST [<SP> path] (show a path's facts).",
    ),
    spec(
        "MODE",
        Verb::Mode,
        None,
        true,
        ReqArg,
        false,
        "Syntax: MODE <SP> mode (noop; set data transfer mode).",
    ),
    spec(
        "NLST",
        Verb::Nlst,
        Some(Perms::LIST),
        true,
        OptArg,
        true,
        "Syntax: NLST [<SP> path] (list path in a compact form).",
    ),
    spec(
        "NOOP",
        Verb::Noop,
        None,
        false,
        NoArg,
        false,
        "Syntax: NOOP (just do nothing).",
    ),
    spec(
        "OPTS",
        Verb::Opts,
        None,
        true,
        ReqArg,
        false,
        "Syntax: OPTS <SP> cmd [<SP> option] (set option for command).",
    ),
    spec(
        "PASS",
        Verb::Pass,
        None,
        false,
        OptArg,
        false,
        "Syntax: PASS [<SP> password] (set user password).",
    ),
    spec(
        "PASV",
        Verb::Pasv,
        None,
        true,
        NoArg,
        false,
        "Syntax: PASV (open passive data connection).",
    ),
    spec(
        "PBSZ",
        Verb::Pbsz,
        None,
        false,
        ReqArg,
        false,
        "Syntax: PBSZ <SP> 0 (negotiate TLS buffer size).",
    ),
    spec(
        "PORT",
        Verb::Port,
        None,
        true,
        ReqArg,
        false,
        "Syntax: PORT <sp> h,h,h,h,p,p (open active data connection).",
    ),
    spec(
        "PROT",
        Verb::Prot,
        None,
        false,
        ReqArg,
        false,
        "Syntax: PROT <SP> [C|P] (set up data channel protection).",
    ),
    spec(
        "PWD",
        Verb::Pwd,
        None,
        true,
        NoArg,
        false,
        "Syntax: PWD (get current working directory).",
    ),
    spec(
        "QUIT",
        Verb::Quit,
        None,
        false,
        NoArg,
        false,
        "Syntax: QUIT (quit current session).",
    ),
    spec(
        "REIN",
        Verb::Rein,
        None,
        true,
        NoArg,
        false,
        "Syntax: REIN (flush account).",
    ),
    spec(
        "REST",
        Verb::Rest,
        None,
        true,
        ReqArg,
        false,
        "Syntax: REST <SP> offset (set file offset).",
    ),
    spec(
        "RETR",
        Verb::Retr,
        Some(Perms::RETR),
        true,
        ReqArg,
        true,
        "Syntax: RETR <SP> file-name (retrieve a file).",
    ),
    spec(
        "RMD",
        Verb::Rmd,
        Some(Perms::DELETE),
        true,
        ReqArg,
        true,
        "Syntax: RMD <SP> dir-name (remove directory).",
    ),
    spec(
        "RNFR",
        Verb::Rnfr,
        Some(Perms::RENAME),
        true,
        ReqArg,
        true,
        "Syntax: RNFR <SP> file-name (rename (source name)).",
    ),
    spec(
        "RNTO",
        Verb::Rnto,
        Some(Perms::RENAME),
        true,
        ReqArg,
        true,
        "Syntax: RNTO <SP> file-name (rename (destination name)).",
    ),
    spec(
        "SITE",
        Verb::Site,
        None,
        // SITE HELP works before login; SITE CHMOD checks the login itself.
        false,
        ReqArg,
        false,
        "Syntax: SITE <SP> site-command (CHMOD or HELP).",
    ),
    spec(
        "SIZE",
        Verb::Size,
        Some(Perms::LIST),
        true,
        ReqArg,
        true,
        "Syntax: SIZE <SP> file-name (get file size).",
    ),
    spec(
        "SMNT",
        Verb::Smnt,
        None,
        true,
        ReqArg,
        false,
        "Syntax: SMNT <SP> path (not implemented).",
    ),
    spec(
        "STAT",
        Verb::Stat,
        Some(Perms::LIST),
        false,
        OptArg,
        true,
        "Syntax: STAT [<SP> path name] (server stats [list files]).",
    ),
    spec(
        "STOR",
        Verb::Stor,
        Some(Perms::STORE),
        true,
        ReqArg,
        true,
        "Syntax: STOR <SP> file-name (store a file).",
    ),
    spec(
        "STOU",
        Verb::Stou,
        Some(Perms::STORE),
        true,
        OptArg,
        false,
        "Syntax: STOU [<SP> name] (store a file with a unique name).",
    ),
    spec(
        "STRU",
        Verb::Stru,
        None,
        true,
        ReqArg,
        false,
        "Syntax: STRU <SP> type (noop; set file structure).",
    ),
    spec(
        "SYST",
        Verb::Syst,
        None,
        false,
        NoArg,
        false,
        "Syntax: SYST (get operating system type).",
    ),
    spec(
        "TYPE",
        Verb::Type,
        None,
        true,
        ReqArg,
        false,
        "Syntax: TYPE <SP> [A | I] (set transfer type).",
    ),
    spec(
        "USER",
        Verb::User,
        None,
        false,
        ReqArg,
        false,
        "Syntax: USER <SP> user-name (set username).",
    ),
    spec(
        "XCUP",
        Verb::Cdup,
        Some(Perms::CWD),
        true,
        NoArg,
        false,
        "Syntax: XCUP (obsolete; go to parent directory).",
    ),
    spec(
        "XCWD",
        Verb::Cwd,
        Some(Perms::CWD),
        true,
        OptArg,
        true,
        "Syntax: XCWD [<SP> dir-name] (obsolete; change directory).",
    ),
    spec(
        "XMKD",
        Verb::Mkd,
        Some(Perms::MKDIR),
        true,
        ReqArg,
        true,
        "Syntax: XMKD <SP> dir-name (obsolete; create directory).",
    ),
    spec(
        "XPWD",
        Verb::Pwd,
        None,
        true,
        NoArg,
        false,
        "Syntax: XPWD (obsolete; get current dir).",
    ),
    spec(
        "XRMD",
        Verb::Rmd,
        Some(Perms::DELETE),
        true,
        ReqArg,
        true,
        "Syntax: XRMD <SP> dir-name (obsolete; remove directory).",
    ),
];

/// Looks a verb up in the table (case-insensitive).
pub fn lookup(name: &str) -> Option<&'static CommandSpec> {
    lookup_index(name).map(|i| &COMMANDS[i])
}

/// The row of a verb in [`COMMANDS`] (case-insensitive).
///
/// Verbs are three or four letters, so each packs into a `u32` (upper-cased, left-aligned)
/// and the rows are found by binary search in a table sorted once: six comparisons rather
/// than a case-insensitive compare with every row. Every command is looked up twice (to
/// dispatch it and to count it).
pub fn lookup_index(name: &str) -> Option<usize> {
    static SORTED: std::sync::OnceLock<Vec<(u32, usize)>> = std::sync::OnceLock::new();
    let key = verb_key(name)?;
    let sorted = SORTED.get_or_init(|| {
        let mut rows: Vec<(u32, usize)> = COMMANDS
            .iter()
            .enumerate()
            .filter_map(|(i, c)| verb_key(c.name).map(|k| (k, i)))
            .collect();
        rows.sort_unstable();
        rows
    });
    let at = sorted.binary_search_by_key(&key, |&(k, _)| k).ok()?;
    let row = sorted[at].1;
    // The padding is zeros: "PWD\0" packs as PWD does, and is not it.
    (COMMANDS[row].name.len() == name.len()).then_some(row)
}

/// A verb of at most four bytes as a number: upper-cased, big-endian, zero-padded; `None`
/// for anything longer or empty (no verb of the table).
fn verb_key(name: &str) -> Option<u32> {
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes.len() > 4 {
        return None;
    }
    let mut key = [0u8; 4];
    for (k, b) in key.iter_mut().zip(bytes) {
        *k = b.to_ascii_uppercase();
    }
    Some(u32::from_be_bytes(key))
}

/// A parsed command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The verb, upper-cased.
    pub name: String,
    /// Everything after the first space, with the line ending removed; empty when absent.
    /// Bytes as sent: a path argument reaches the storage unchanged, UTF-8 or not.
    pub arg: Vec<u8>,
}

/// Whether a line is ABOR or QUIT, the commands still heard while another is being worked
/// on (RFC 959 section 4.1.3: they may arrive during a transfer, too).
pub fn is_urgent(line: &[u8]) -> bool {
    let req = parse_line(line);
    req.arg.is_empty() && (req.name == "ABOR" || req.name == "QUIT")
}

/// Splits one line (without its line ending) into verb and argument.
///
/// The verb is upper-cased; the argument keeps its bytes, case and inner spaces but loses
/// the one separating space.
pub fn parse_line(line: &[u8]) -> Request {
    // Telnet IP and Synch (IAC IP IAC DM) may precede ABOR; drop control, Telnet and other
    // non-ASCII bytes in front of the verb (verbs are ASCII).
    let start = line
        .iter()
        .position(|&b| b > b' ' && b < 0x7f)
        .unwrap_or(line.len());
    let line = &line[start..];
    let (name, arg) = match line.iter().position(|&b| b == b' ') {
        Some(i) => (&line[..i], &line[i + 1..]),
        None => (line, &b""[..]),
    };
    Request {
        name: String::from_utf8_lossy(name).to_ascii_uppercase(),
        arg: arg.to_vec(),
    }
}

/// HTTP request methods (RFC 9110 section 9, and PATCH of RFC 5789).
const HTTP_METHODS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
];

/// Whether a parsed line looks like HTTP: a request line (an HTTP method, a target and an
/// `HTTP/` version, RFC 9112 section 3) or a header field (`Name: value`, RFC 9110 section
/// 5, a name no FTP verb has since it ends in a colon). Used against cross-protocol
/// attacks (ALPACA).
pub fn looks_like_http(req: &Request) -> bool {
    if req.name.len() > 1
        && req.name.ends_with(':')
        && req.name[..req.name.len() - 1]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        return true;
    }
    if !HTTP_METHODS.contains(&req.name.as_str()) {
        return false;
    }
    let arg = req.arg.trim_ascii_end();
    match arg.iter().rposition(|&b| b == b' ') {
        Some(i) => arg[i + 1..].to_ascii_uppercase().starts_with(b"HTTP/"),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_lines_are_recognised() {
        for line in [
            &b"GET / HTTP/1.1"[..],
            b"POST /upload HTTP/1.0",
            b"get /x http/2",
            b"Host: example.com",
            b"User-Agent: curl/8",
            b"Content-Length: 12",
        ] {
            assert!(looks_like_http(&parse_line(line)), "{line:?}");
        }
        for line in [
            &b"RETR GET"[..],
            b"GET",
            b"PUT file",
            b"HOST example.com",
            b"SITE HELP",
            b":",
            b"USER a: b",
        ] {
            assert!(!looks_like_http(&parse_line(line)), "{line:?}");
        }
    }

    #[test]
    fn table_is_sorted_and_unique() {
        for pair in COMMANDS.windows(2) {
            assert!(
                pair[0].name < pair[1].name,
                "{} before {}",
                pair[0].name,
                pair[1].name
            );
        }
    }

    #[test]
    fn parses_verbs_and_args() {
        assert_eq!(
            parse_line(b"user bob"),
            Request {
                name: "USER".into(),
                arg: b"bob".to_vec()
            }
        );
        assert_eq!(
            parse_line(b"STOR my file.txt"),
            Request {
                name: "STOR".into(),
                arg: b"my file.txt".to_vec()
            }
        );
        assert_eq!(
            parse_line(b"NOOP"),
            Request {
                name: "NOOP".into(),
                arg: Vec::new()
            }
        );
        assert_eq!(
            parse_line(b"\xff\xf4\xff\xf2ABOR"),
            Request {
                name: "ABOR".into(),
                arg: Vec::new()
            }
        );
        // Argument bytes are kept as sent, UTF-8 or not.
        assert_eq!(parse_line(b"STOR caf\xe9.txt").arg, b"caf\xe9.txt");
        assert_eq!(parse_line(b"RETR caf\xc3\xa9").arg, "café".as_bytes());
        assert_eq!(lookup("xpwd").map(|c| c.verb), Some(Verb::Pwd));
        assert!(lookup("FOO").is_none());
        // Every row is found by its name in any case; nothing else is.
        for (i, c) in COMMANDS.iter().enumerate() {
            assert_eq!(lookup_index(c.name), Some(i), "{}", c.name);
            assert_eq!(lookup_index(&c.name.to_ascii_lowercase()), Some(i));
        }
        for other in [
            "",
            "N",
            "NOO",
            "NOOPS",
            "NOOP ",
            "NO\0P",
            "PWD\0",
            "\u{e9}TAT",
            "RETRRETR",
        ] {
            assert_eq!(lookup_index(other), None, "{other:?}");
        }
    }
}
