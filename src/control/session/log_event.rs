//! The session's log lines: pyftpdlib's text with the fields of
//! [`logger`](crate::logger#fields), and the refusals pyftpdlib's `log_cmd` logs.

use std::io;

use log::kv::{ToValue, Value};

use crate::logger::{self, key};

use super::{Auth, Session};

/// The command a session is running, as its refusal is logged: pyftpdlib's `log_cmd`
/// arguments.
#[derive(Debug)]
pub(super) struct Current {
    /// The command's name (`DELE`, `SITE CHMOD`).
    pub(super) verb: &'static str,
    /// The FTP path it names, once resolved; the raw argument before.
    pub(super) path: String,
    /// Whether a refusal other than a missing permission is logged: the commands that
    /// change, move or open files, and CWD (pyftpdlib's `log_cmds_list` with the
    /// transfer commands). SIZE, MDTM, MLST, STAT and listings are probes clients send
    /// all the time; their failures are answered but not logged.
    pub(super) logged: bool,
}

impl Session {
    /// Logs a session event: pyftpdlib's line (`ip:port-[user] msg`) with the session's
    /// fields and `event` (see [`logger`](crate::logger#fields)).
    pub(super) fn log(&self, event: &'static str, msg: &str) {
        self.log_fields(event, msg, &[]);
    }

    /// [`log`](Self::log) with `msg` as the `reason` field too.
    pub(super) fn log_reason(&self, event: &'static str, msg: &str) {
        self.log_fields(event, msg, &[(key::REASON, Some(Value::from(msg)))]);
    }

    /// [`log`](Self::log) with more fields.
    pub(super) fn log_fields(
        &self,
        event: &'static str,
        msg: &str,
        extra: &[(&'static str, Option<Value<'_>>)],
    ) {
        if !log::log_enabled!(target: logger::LOG, log::Level::Info) {
            return;
        }
        let user = match &self.auth {
            Auth::Anonymous => None,
            Auth::UserGiven(u) | Auth::LoggedIn(u) => Some(Value::from(u.as_str())),
        };
        let mut fields = vec![
            (key::SESSION, Some(Value::from(self.id))),
            (key::CLIENT, Some(Value::from_display(&self.peer))),
            (key::USER, user),
            (key::EVENT, Some(Value::from(event))),
        ];
        fields.extend(
            extra
                .iter()
                .map(|(k, v)| (*k, v.as_ref().map(Value::to_value))),
        );
        logger::event(
            log::Level::Info,
            logger::LOG,
            &logger::Fields(&fields),
            format_args!("{} {msg}", self.prefix()),
        );
    }

    /// Replies `code text` to a command that failed, and logs it as pyftpdlib's `log_cmd`
    /// does: `DELE /f 550 'No such file or directory.'`, when the command is one whose
    /// refusals are logged (see [`Current`]).
    pub(super) fn refuse(&mut self, code: u16, text: impl Into<String>) {
        let text = text.into();
        if let Some(c) = self.current.take().filter(|c| c.logged) {
            self.log_refusal(&c, code, &text);
        }
        self.reply(code, text);
    }

    /// [`Session::refuse`] for a storage error: the code from [`super::error_code`]
    /// (452 for a full disk, 552 for a quota...), else `default`.
    pub(super) fn refuse_io(&mut self, default: u16, e: &io::Error) {
        let (code, text) = super::error_reply(e, default);
        self.refuse(code, text);
    }

    /// [`Session::reply`] for a storage error, coded as [`Session::refuse_io`] codes it.
    pub(super) fn reply_io(&mut self, default: u16, e: &io::Error) {
        let (code, text) = super::error_reply(e, default);
        self.reply(code, text);
    }

    fn log_refusal(&self, c: &Current, code: u16, text: &str) {
        self.log_fields(
            "refused",
            &format!("{} {} {code} {}", c.verb, c.path, py_repr(text)),
            &[
                (key::COMMAND, Some(Value::from(c.verb))),
                (key::PATH, Some(Value::from(c.path.as_str()))),
                (key::CODE, Some(Value::from(code))),
                (key::REASON, Some(Value::from(text))),
            ],
        );
    }

    pub(super) fn log_cmd(&mut self, verb: &'static str, arg: &str, code: u16) {
        self.current = None;
        self.log_fields(
            "command",
            &format!("{verb} {arg} {code}"),
            &[
                (key::COMMAND, Some(Value::from(verb))),
                (key::PATH, Some(Value::from(arg))),
                (key::CODE, Some(Value::from(code))),
            ],
        );
    }
}

/// A string as Python's `repr()` shows it, as pyftpdlib's `log_cmd` quotes a reply:
/// in single quotes, or double quotes when it holds a single quote and no double one.
fn py_repr(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

impl Session {
    /// What every log line of the session starts with, `127.0.0.1:50000-[user]` as
    /// pyftpdlib writes it; formatted into the line itself, nothing allocated.
    pub(super) fn prefix(&self) -> Prefix<'_> {
        Prefix {
            peer: &self.peer_text,
            user: self.username().unwrap_or(""),
        }
    }
}

/// A session's log-line prefix: see [`Session::prefix`].
pub(super) struct Prefix<'a> {
    peer: &'a str,
    user: &'a str,
}

impl std::fmt::Display for Prefix<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.peer)?;
        f.write_str("-[")?;
        f.write_str(self.user)?;
        f.write_str("]")
    }
}
