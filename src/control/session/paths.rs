//! Commands on paths: CWD, CDUP, MKD, RMD, DELE, RNFR/RNTO, SIZE, MDTM, MLST, MFMT and
//! SITE. Each asks for its storage call with a request and answers in its `finish_*` half,
//! when the completion comes back.

use std::io;
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;

use crate::authorizer::Perms;
use crate::control::command::CommandSpec;
use crate::control::reply::quote_path;
use crate::filesystem::Stat;
use crate::listing;
use crate::logger::key;
use log::kv::Value;

use super::parse::{parse_time_val, split_word};
use super::{Auth, Op, Session, Then};

/// Whether a storage error says "no such file" (missing, or a path through a file): SIZE,
/// MDTM and MFMT answer it as pyftpdlib does, "<path> is not retrievable", as for a
/// directory.
fn is_missing(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound || e.kind() == io::ErrorKind::NotADirectory
}

impl Session {
    // ---- navigation ------------------------------------------------------------------

    pub(super) fn cmd_cwd(&mut self, path: Option<(String, PathBuf)>) {
        let Some((ftp, vpath)) = path else {
            return self.refuse(550, "No such file or directory.");
        };
        let then = Then::Cwd {
            ftp,
            vpath: vpath.clone(),
        };
        self.request(Op::Cwd { path: vpath }, then);
    }

    pub(super) fn finish_cwd(&mut self, ftp: String, vpath: PathBuf, r: io::Result<()>) {
        match r {
            Ok(()) => {
                self.cwd = vpath.into_os_string().into_vec();
                self.reply(
                    250,
                    format!("{} is the current directory.", quote_path(&ftp)),
                );
                self.log_cmd("CWD", &ftp, 250);
            }
            Err(e) if e.kind() == io::ErrorKind::NotADirectory => {
                self.refuse(550, "Not a directory.")
            }
            Err(e) => self.refuse_io(550, &e),
        }
    }

    pub(super) fn cmd_cdup(&mut self, spec: &'static CommandSpec) {
        let Some(path) = self.resolve(b"..", spec.perm) else {
            return;
        };
        self.cmd_cwd(Some(path));
    }

    // ---- file operations ---------------------------------------------------------------

    pub(super) fn cmd_mkd(&mut self, ftp: String, vpath: PathBuf) {
        let real = self.real(&vpath);
        self.request(Op::Mkdir { path: vpath }, Then::Mkd { ftp, real });
    }

    pub(super) fn finish_mkd(&mut self, ftp: String, real: PathBuf, r: io::Result<()>) {
        match r {
            Ok(()) => {
                self.reply(257, format!("{} directory created.", quote_path(&ftp)));
                self.log_cmd("MKD", &ftp, 257);
                self.hook(|h, i| h.on_dir_created(i, &real));
            }
            Err(e) => self.refuse_io(super::NAMING, &e),
        }
    }

    pub(super) fn cmd_rmd(&mut self, ftp: String, vpath: PathBuf) {
        if vpath.as_os_str() == "/" {
            return self.refuse(550, "Can't remove root directory.");
        }
        let real = self.real(&vpath);
        self.request(Op::Rmdir { path: vpath }, Then::Rmd { ftp, real });
    }

    pub(super) fn finish_rmd(&mut self, ftp: String, real: PathBuf, r: io::Result<()>) {
        match r {
            Ok(()) => {
                self.reply(250, "Directory removed.");
                self.log_cmd("RMD", &ftp, 250);
                self.hook(|h, i| h.on_dir_removed(i, &real));
            }
            Err(e) => self.refuse_io(550, &e),
        }
    }

    pub(super) fn cmd_dele(&mut self, ftp: String, vpath: PathBuf) {
        let real = self.real(&vpath);
        self.request(Op::Remove { path: vpath }, Then::Dele { ftp, real });
    }

    pub(super) fn finish_dele(&mut self, ftp: String, real: PathBuf, r: io::Result<()>) {
        match r {
            Ok(()) => {
                self.reply(250, "File removed.");
                self.log_cmd("DELE", &ftp, 250);
                self.hook(|h, i| h.on_file_deleted(i, &real));
            }
            Err(e) => self.refuse_io(550, &e),
        }
    }

    pub(super) fn cmd_rnfr(&mut self, _ftp: String, vpath: PathBuf) {
        if vpath.as_os_str() == "/" {
            return self.refuse(550, "Can't rename home directory.");
        }
        self.request(
            Op::Lstat {
                path: vpath.clone(),
            },
            Then::Rnfr { vpath },
        );
    }

    pub(super) fn finish_rnfr(&mut self, vpath: PathBuf, r: io::Result<Stat>) {
        if r.is_err() {
            return self.refuse(550, "No such file or directory.");
        }
        self.rnfr = Some(vpath);
        self.reply(350, "Ready for destination name.");
    }

    pub(super) fn cmd_rnto(&mut self, ftp: String, vpath: PathBuf, rnfr: Option<PathBuf>) {
        let Some(from) = rnfr else {
            return self.refuse(503, "Bad sequence of commands: use RNFR first.");
        };
        if vpath.as_os_str() == "/" {
            return self.refuse(550, "Can't overwrite the root directory.");
        }
        let real = self.real(&vpath);
        self.request(
            Op::Rename {
                from: from.clone(),
                to: vpath,
            },
            Then::Rnto { ftp, from, real },
        );
    }

    pub(super) fn finish_rnto(
        &mut self,
        ftp: String,
        from: PathBuf,
        real: PathBuf,
        r: io::Result<()>,
    ) {
        match r {
            Ok(()) => {
                let from_real = self.real(&from);
                self.reply(250, "Renaming ok.");
                self.log_fields(
                    "rename",
                    &format!("RNFR {} RNTO {ftp} 250", from.to_string_lossy()),
                    &[
                        (key::COMMAND, Some(Value::from("RNTO"))),
                        (key::PATH, Some(Value::from(ftp.as_str()))),
                        (key::CODE, Some(Value::from(250u16))),
                    ],
                );
                self.current = None;
                self.hook(|h, i| h.on_file_renamed(i, &from_real, &real));
            }
            Err(e) => self.refuse_io(super::NAMING, &e),
        }
    }

    pub(super) fn cmd_size(&mut self, ftp: String, vpath: PathBuf) {
        // RFC 3659 section 4: the size in TYPE A is that of the converted data, which
        // would take reading the whole file; refused, as pyftpdlib does.
        if self.ascii {
            return self.refuse(550, "SIZE not allowed in ASCII mode.");
        }
        self.request(Op::Stat { path: vpath }, Then::Size { ftp });
    }

    pub(super) fn finish_size(&mut self, ftp: String, r: io::Result<Stat>) {
        match r {
            Ok(m) if m.is_file() => self.reply(213, m.size.to_string()),
            Err(e) if !is_missing(&e) => self.refuse_io(550, &e),
            _ => self.refuse(550, format!("{ftp} is not retrievable.")),
        }
    }

    pub(super) fn cmd_mdtm(&mut self, ftp: String, vpath: PathBuf) {
        self.request(Op::Stat { path: vpath }, Then::Mdtm { ftp });
    }

    pub(super) fn finish_mdtm(&mut self, ftp: String, r: io::Result<Stat>) {
        match r {
            Ok(m) if m.is_file() => {
                let t = listing::civil(m.mtime, self.config.use_gmt_times);
                self.reply(213, t.time_val());
            }
            Err(e) if !is_missing(&e) => self.refuse_io(550, &e),
            // pyftpdlib's wording, without the full stop, as for MFMT.
            _ => self.refuse(550, format!("{ftp} is not retrievable")),
        }
    }

    pub(super) fn cmd_mlst(&mut self, ftp: String, vpath: PathBuf) {
        let real = self.real(&vpath);
        self.request(Op::Stat { path: vpath }, Then::Mlst { ftp, real });
    }

    pub(super) fn finish_mlst(&mut self, ftp: String, real: PathBuf, r: io::Result<Stat>) {
        match r {
            Ok(m) => {
                let perm = self.mlsx_perm(&real, m.is_dir());
                let mut line = Vec::new();
                listing::push_mlsx_line(&mut line, ftp.as_bytes(), &m, &self.mlst_facts, &perm);
                let fact_line = String::from_utf8_lossy(&line).trim_end().to_string();
                self.reply(
                    250,
                    format!("Listing {}:\n {fact_line}\nEnd MLST.", quote_path(&ftp)),
                );
            }
            Err(e) => self.refuse_io(550, &e),
        }
    }

    pub(super) fn cmd_mfmt(&mut self, arg: &[u8]) {
        // MFMT YYYYMMDDHHMMSS[.sss] path (draft-somers-ftp-mfxx): the time is UTC.
        let Some((timeval, target)) = split_word(arg) else {
            return self.refuse(501, "Syntax error: MFMT needs a time and a path.");
        };
        let secs = std::str::from_utf8(timeval).ok().and_then(parse_time_val);
        let Some(secs) = secs else {
            return self.refuse(501, "Invalid time format; expected: YYYYMMDDHHMMSS.");
        };
        let Some((ftp, vpath)) = self.resolve(target, Some(Perms::MFMT)) else {
            return;
        };
        self.request(Op::SetMtime { path: vpath, secs }, Then::Mfmt { ftp, secs });
    }

    pub(super) fn finish_mfmt(&mut self, ftp: String, secs: i64, r: io::Result<()>) {
        match r {
            Ok(()) => {
                let t = listing::CivilTime::from_unix(secs).time_val();
                self.reply(213, format!("Modify={t}; {ftp}."));
                self.log_cmd("MFMT", &ftp, 213);
            }
            Err(e) if e.kind() == io::ErrorKind::InvalidInput || is_missing(&e) => {
                self.refuse(550, format!("{ftp} is not retrievable"))
            }
            Err(e) => self.refuse_io(550, &e),
        }
    }

    /// SITE CHMOD and SITE HELP, each checked as pyftpdlib checks its own commands:
    /// argument first, then login (SITE HELP needs none).
    pub(super) fn cmd_site(&mut self, arg: &[u8]) {
        let (sub, rest) = split_word(arg).unwrap_or((arg, b""));
        let sub = String::from_utf8_lossy(sub).to_ascii_uppercase();
        match sub.as_str() {
            "CHMOD" => {
                if let Some(c) = self.current.as_mut() {
                    c.verb = "SITE CHMOD";
                    c.path = String::from_utf8_lossy(rest).into_owned();
                    c.logged = true;
                }
                if rest.is_empty() {
                    return self.refuse(501, "Syntax error: command needs an argument.");
                }
                if !matches!(self.auth, Auth::LoggedIn(_)) {
                    return self.refuse(530, "Log in with USER and PASS first.");
                }
                let Some((mode, target)) = split_word(rest) else {
                    return self.refuse(501, "Syntax error: command needs two arguments.");
                };
                // Permission bits only: set-id and sticky bits are not a client's to set.
                let mode = std::str::from_utf8(mode).map(|m| u32::from_str_radix(m, 8));
                let mode = match mode {
                    Ok(Ok(m)) if m <= 0o777 => m,
                    _ => return self.refuse(501, "Invalid SITE CHMOD format."),
                };
                let Some((ftp, vpath)) = self.resolve(target, Some(Perms::CHMOD)) else {
                    return;
                };
                self.request(Op::Chmod { path: vpath, mode }, Then::Chmod { ftp });
            }
            "HELP" => match String::from_utf8_lossy(rest).trim().to_ascii_uppercase().as_str() {
                "" => self.reply(
                    214,
                    "The following SITE commands are recognized:\n CHMOD\n HELP\nHelp SITE command successful.",
                ),
                "CHMOD" => self.reply(214, "Syntax: SITE CHMOD <SP> mode path (change file mode)."),
                "HELP" => self.reply(214, "Syntax: SITE HELP [<SP> cmd] (show SITE command help)."),
                _ => self.refuse(501, "Unrecognized SITE command."),
            },
            _ => {
                let name: String = sub.chars().take(32).collect();
                self.refuse(500, format!("Command \"SITE {name}\" not understood."))
            }
        }
    }

    pub(super) fn finish_chmod(&mut self, ftp: String, r: io::Result<()>) {
        match r {
            Ok(()) => {
                self.reply(200, "SITE CHMOD successful.");
                self.log_cmd("SITE CHMOD", &ftp, 200);
            }
            Err(e) => self.refuse_io(550, &e),
        }
    }
}
