//! Dispatch: from a command line to its handler, through the checks every command passes
//! in order (argument, login, path inside the home, permission), and from a request's
//! completion back to the half of the command that finishes it. Also what one command
//! leaves for the next (RNFR's source, REST's marker).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use crate::authorizer::Perms;
use crate::control::command::{Arg, CommandSpec, Verb};
use crate::control::reply::quote_path;
use crate::filesystem::ftpnorm;

use super::request::{self, Completion, Op, Request};
use super::{Action, Auth, Current, Session, Then, Waiting};
use crate::logger;

impl Session {
    /// What one command set up for the next lasts for that next command only, whether it
    /// succeeds or fails: RNFR's source is for RNTO, REST's marker for the next transfer
    /// command (RETR, STOR, APPE, STOU), with only data-connection setup and settings
    /// (PASV, EPSV, PORT, EPRT, TYPE, MODE, STRU, PBSZ, PROT, NOOP) allowed between. Any
    /// other command, an unknown one or one refused for its argument, login or permission
    /// included, drops both. Returns what `verb` may use.
    pub(super) fn take_carried(&mut self, verb: Verb) -> (Option<PathBuf>, Option<u64>) {
        let rnfr = self.rnfr.take().filter(|_| verb == Verb::Rnto);
        let rest = match verb {
            Verb::Retr | Verb::Stor | Verb::Appe | Verb::Stou => self.rest.take(),
            Verb::Pasv
            | Verb::Epsv
            | Verb::Port
            | Verb::Eprt
            | Verb::Type
            | Verb::Mode
            | Verb::Stru
            | Verb::Pbsz
            | Verb::Prot
            | Verb::Noop => None,
            _ => {
                self.rest = None;
                None
            }
        };
        (rnfr, rest)
    }

    pub(super) fn run(&mut self, now: Instant, spec: &'static CommandSpec, raw: &[u8]) {
        let carried = self.take_carried(spec.verb);
        // Commands that read their argument as text get it decoded; paths keep their bytes.
        let text = String::from_utf8_lossy(raw);
        let arg: &str = &text;
        self.current = Some(Current {
            verb: spec.name,
            path: text.clone().into_owned(),
            logged: matches!(
                spec.verb,
                Verb::Cwd
                    | Verb::Cdup
                    | Verb::Mkd
                    | Verb::Rmd
                    | Verb::Dele
                    | Verb::Rnfr
                    | Verb::Rnto
                    | Verb::Retr
                    | Verb::Stor
                    | Verb::Appe
                    | Verb::Stou
                    | Verb::Mfmt
            ),
        });
        // 1. The argument rule.
        match spec.arg {
            Arg::Required if raw.is_empty() => {
                return self.reply(501, "Syntax error: command needs an argument.")
            }
            Arg::None if !raw.is_empty() => {
                return self.reply(501, "Syntax error: command does not accept arguments.")
            }
            _ => {}
        }
        // 2. Login.
        let logged_in = matches!(self.auth, Auth::LoggedIn(_));
        if !logged_in && (spec.auth || (spec.verb == Verb::Stat && !raw.is_empty())) {
            return self.reply(530, "Log in with USER and PASS first.");
        }
        if !logged_in {
            return self.dispatch(now, spec, arg, raw, None, carried);
        }
        // 3. The path, inside the root; 4. the permission.
        let mut real = None;
        if spec.path && !(spec.verb == Verb::Stat && raw.is_empty()) {
            // CWD alone goes home, as in pyftpdlib.
            let target = if spec.verb == Verb::Cwd && raw.is_empty() {
                b"/"
            } else {
                raw
            };
            match self.resolve(target, spec.perm) {
                Some(r) => real = Some(r),
                None => return,
            }
        }
        // The user's identity is taken by the requests, where the work is done.
        self.dispatch(now, spec, arg, raw, real, carried);
    }

    /// Maps an FTP path to a virtual one (see [`ftpnorm`]) and checks `perm` on where it
    /// lives; replies 550 and returns `None` when the permission is missing. Every command
    /// that names a path goes through here, the table-driven ones and those with two
    /// arguments (MFMT, SITE CHMOD) alike. The storage keeps the path inside the home.
    pub(super) fn resolve(&mut self, arg: &[u8], perm: Option<Perms>) -> Option<(String, PathBuf)> {
        let Some(fs) = self.fs.as_ref() else {
            self.refuse(550, "No filesystem for this session.");
            return None;
        };
        use std::os::unix::ffi::OsStringExt;
        let vpath = PathBuf::from(std::ffi::OsString::from_vec(ftpnorm(&self.cwd, arg)));
        let ftp = vpath.to_string_lossy().into_owned();
        let allowed = perm.is_none_or(|perm| {
            let real = fs.real_path(&vpath);
            let user = self.username().unwrap_or("");
            self.config.authorizer.has_perm(user, perm, &real)
        });
        if let Some(c) = self.current.as_mut() {
            c.path.clone_from(&ftp);
            // A missing permission is logged for every command, as pyftpdlib does.
            c.logged |= !allowed;
        }
        if !allowed {
            self.refuse(550, "Not enough privileges.");
            return None;
        }
        Some((ftp, vpath))
    }

    /// Where a virtual path lives, for hooks and permissions.
    pub(super) fn real(&self, vpath: &std::path::Path) -> PathBuf {
        self.fs
            .as_ref()
            .map_or_else(|| vpath.to_path_buf(), |fs| fs.real_path(vpath))
    }

    /// Hands `op` out and waits for its completion, which `then` finishes.
    pub(super) fn request(&mut self, op: Op, then: Then) {
        let id = request::next_id();
        let user = self.username().map(str::to_string);
        let req = Request::new(
            id,
            op,
            self.fs.clone(),
            Arc::clone(&self.config.authorizer),
            Arc::clone(&self.config.filesystem),
            self.config.homes().cloned(),
            user,
        );
        self.waiting = Some(Waiting { id, then });
        self.actions.push_back(Action::Request(req));
    }

    /// The owner ran request `id`; finishes the command that waits on it. A completion the
    /// session no longer waits for (it was abandoned, or the session ended) is dropped,
    /// which releases what it holds.
    pub fn handle_completion(&mut self, now: Instant, id: u64, completion: Completion) {
        let w = match self.waiting.take() {
            Some(w) if w.id == id && !self.closed => w,
            other => {
                self.waiting = other;
                return;
            }
        };
        self.restart_idle(now);
        if let Completion::Internal { code, text, close } = completion {
            if let Then::Pass { .. } = w.then {
                self.auth = Auth::Anonymous;
            }
            self.reply(code, text);
            if close {
                self.close();
            }
        } else {
            self.finish_request(now, w.then, completion);
        }
        if self.waiting.is_none() && self.pending.is_none() {
            for _ in 0..std::mem::take(&mut self.abor_after) {
                self.cmd_abor();
            }
            if std::mem::take(&mut self.quit_pending) {
                self.cmd_quit(now);
            }
        }
    }

    fn finish_request(&mut self, now: Instant, then: Then, c: Completion) {
        match (then, c) {
            (Then::Pass { user, at }, Completion::Login(r)) => self.finish_pass(now, at, user, r),
            (Then::Cwd { ftp, vpath }, Completion::Done(r)) => self.finish_cwd(ftp, vpath, r),
            (Then::Mkd { ftp, real }, Completion::Done(r)) => self.finish_mkd(ftp, real, r),
            (Then::Rmd { ftp, real }, Completion::Done(r)) => self.finish_rmd(ftp, real, r),
            (Then::Dele { ftp, real }, Completion::Done(r)) => self.finish_dele(ftp, real, r),
            (Then::Rnfr { vpath }, Completion::Stat(r)) => self.finish_rnfr(vpath, r),
            (Then::Rnto { ftp, from, real }, Completion::Done(r)) => {
                self.finish_rnto(ftp, from, real, r)
            }
            (Then::Size { ftp }, Completion::Stat(r)) => self.finish_size(ftp, r),
            (Then::Mdtm { ftp }, Completion::Stat(r)) => self.finish_mdtm(ftp, r),
            (Then::Mlst { ftp, real }, Completion::Stat(r)) => self.finish_mlst(ftp, real, r),
            (Then::Mfmt { ftp, secs }, Completion::Done(r)) => self.finish_mfmt(ftp, secs, r),
            (Then::Chmod { ftp }, Completion::Done(r)) => self.finish_chmod(ftp, r),
            (Then::Stat { ftp }, Completion::Text(r)) => self.finish_stat(ftp, r),
            (Then::Retr { pending, offset }, Completion::Reader(r)) => {
                self.finish_retr(pending, offset, r)
            }
            (
                Then::StorCheck {
                    pending,
                    vpath,
                    rest,
                    append,
                },
                Completion::Target(r),
            ) => self.check_stor(pending, vpath, rest, append, r),
            (Then::Stor { pending }, Completion::Writer(r)) => self.finish_stor(pending, r),
            (Then::Stou { pending }, Completion::Unique(r)) => self.finish_stou(pending, r),
            (Then::List { pending }, Completion::Listing(r)) => self.finish_list(pending, r),
            (then, c) => {
                logger::logerror(&format!(
                    "{} completion {c:?} does not finish {then:?}",
                    self.prefix()
                ));
                self.reply(451, "Requested action aborted: local error in processing.");
            }
        }
    }

    pub(super) fn dispatch(
        &mut self,
        now: Instant,
        spec: &'static CommandSpec,
        arg: &str,
        raw: &[u8],
        path: Option<(String, PathBuf)>,
        (rnfr, rest): (Option<PathBuf>, Option<u64>),
    ) {
        match spec.verb {
            Verb::User => self.cmd_user(now, arg),
            Verb::Pass => self.cmd_pass(now, arg),
            Verb::Quit => self.cmd_quit(now),
            Verb::Noop => self.reply(200, "I successfully did nothing'."),
            Verb::Syst => self.reply(215, "UNIX Type: L8"),
            Verb::Help => self.cmd_help(arg),
            Verb::Feat => self.cmd_feat(),
            Verb::Opts => self.cmd_opts(arg),
            Verb::Allo => self.reply(202, "No storage allocation necessary."),
            Verb::Pwd => {
                let cwd = String::from_utf8_lossy(&self.cwd).into_owned();
                self.reply(
                    257,
                    format!("{} is the current directory.", quote_path(&cwd)),
                );
            }
            Verb::Cwd => self.cmd_cwd(path),
            Verb::Cdup => self.cmd_cdup(spec),
            Verb::Type => self.cmd_type(arg),
            Verb::Mode => match arg.to_ascii_uppercase().as_str() {
                "S" => self.reply(200, "Transfer mode set to: S"),
                "B" | "C" => self.reply(504, "Unimplemented MODE type."),
                _ => self.reply(501, "Unrecognized MODE type."),
            },
            Verb::Stru => match arg.to_ascii_uppercase().as_str() {
                "F" => self.reply(200, "File transfer structure set to: F."),
                "P" | "R" => self.reply(504, "Unimplemented STRU type."),
                _ => self.reply(501, "Unrecognized STRU type."),
            },
            Verb::Rest => self.cmd_rest(arg),
            Verb::Pasv => self.cmd_pasv(false, ""),
            Verb::Epsv => self.cmd_pasv(true, arg),
            Verb::Port => self.cmd_port(arg, false),
            Verb::Eprt => self.cmd_port(arg, true),
            Verb::Abor => self.cmd_abor(),
            Verb::Mkd => self.with_path(path, |s, ftp, p| s.cmd_mkd(ftp, p)),
            Verb::Rmd => self.with_path(path, |s, ftp, p| s.cmd_rmd(ftp, p)),
            Verb::Dele => self.with_path(path, |s, ftp, p| s.cmd_dele(ftp, p)),
            Verb::Rnfr => self.with_path(path, |s, ftp, p| s.cmd_rnfr(ftp, p)),
            Verb::Rnto => self.with_path(path, |s, ftp, p| s.cmd_rnto(ftp, p, rnfr)),
            Verb::Size => self.with_path(path, |s, ftp, p| s.cmd_size(ftp, p)),
            Verb::Mdtm => self.with_path(path, |s, ftp, p| s.cmd_mdtm(ftp, p)),
            Verb::Retr => self.with_path(path, |s, ftp, p| s.cmd_retr(now, ftp, p, rest)),
            Verb::Stor => self.with_path(path, |s, ftp, p| s.cmd_stor(now, ftp, p, rest, false)),
            Verb::Appe => {
                if rest.is_some() {
                    return self.reply(450, "Can't APPE while REST request is pending.");
                }
                self.with_path(path, |s, ftp, p| s.cmd_stor(now, ftp, p, None, true))
            }
            Verb::Stou => self.cmd_stou(now, raw, rest),
            Verb::List | Verb::Nlst => self.cmd_list(now, spec, path, raw),
            Verb::Stat => self.cmd_stat(path, raw),
            Verb::Mlsd => self.cmd_list(now, spec, path, raw),
            Verb::Mlst => self.with_path(path, |s, ftp, p| s.cmd_mlst(ftp, p)),
            Verb::Mfmt => self.cmd_mfmt(raw),
            Verb::Site => self.cmd_site(raw),
            Verb::Rein => {
                if let Auth::LoggedIn(_) = self.auth {
                    self.flush_account(now);
                }
                self.auth = Auth::Anonymous;
                self.reply(220, "Ready for new user.");
            }
            Verb::Acct => self.reply(202, "No account information is needed here."),
            Verb::Smnt => self.reply(502, "SMNT not implemented."),
            Verb::Auth => self.cmd_auth(arg),
            Verb::Pbsz => self.cmd_pbsz(arg),
            Verb::Prot => self.cmd_prot(arg),
            Verb::Ccc => self.cmd_ccc(),
            Verb::Unknown => self.reply(500, "Command not understood."),
        }
    }

    pub(super) fn with_path(
        &mut self,
        path: Option<(String, PathBuf)>,
        f: impl FnOnce(&mut Self, String, PathBuf),
    ) {
        match path {
            Some((ftp, p)) => f(self, ftp, p),
            None => self.reply(550, "No such file or directory."),
        }
    }
}
