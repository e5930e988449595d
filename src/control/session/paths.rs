//! Commands on paths: CWD, CDUP, MKD, RMD, DELE, RNFR/RNTO, SIZE, MDTM, MLST, MFMT and
//! SITE.

use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::authorizer::Perms;
use crate::control::command::CommandSpec;
use crate::control::reply::quote_path;
use crate::listing;

use super::parse::parse_time_val;
use super::{strerror, Session};

impl Session {
    // ---- navigation ------------------------------------------------------------------

    pub(super) fn cmd_cwd(&mut self, path: Option<(String, PathBuf)>) {
        let Some((ftp, real)) = path else {
            return self.reply(550, "No such file or directory.");
        };
        let Some(fs) = self.fs.as_mut() else { return };
        match fs.stat(&real) {
            Ok(m) if m.is_dir() => {
                // A directory that cannot be listed may still be entered, as with cd; but it
                // must be searchable by the server process.
                if let Err(e) = std::fs::read_dir(&real) {
                    if e.kind() == io::ErrorKind::PermissionDenied {
                        return self.reply(550, format!("{}.", strerror(&e)));
                    }
                }
                fs.set_cwd(ftp.clone());
                self.reply(
                    250,
                    format!("{} is the current directory.", quote_path(&ftp)),
                );
                self.log_cmd("CWD", &ftp, 250);
            }
            Ok(_) => self.reply(550, "Not a directory."),
            Err(e) => self.reply(550, format!("{}.", strerror(&e))),
        }
    }

    pub(super) fn cmd_cdup(&mut self, spec: &'static CommandSpec) {
        let Some(fs) = self.fs() else { return };
        let ftp = fs.ftpnorm("..");
        let real = fs.ftp2fs(&ftp);
        let user = self.username().unwrap_or("").to_string();
        if let Some(perm) = spec.perm {
            if !self.config.authorizer.has_perm(&user, perm, &real) {
                return self.reply(550, "Not enough privileges.");
            }
        }
        self.cmd_cwd(Some((ftp, real)));
    }

    // ---- file operations ---------------------------------------------------------------

    pub(super) fn cmd_mkd(&mut self, ftp: String, real: PathBuf) {
        let Some(fs) = self.fs() else { return };
        match fs.mkdir(&real) {
            Ok(()) => {
                self.reply(257, format!("{} directory created.", quote_path(&ftp)));
                self.log_cmd("MKD", &ftp, 257);
                self.hook(|h, i| h.on_dir_created(i, &real));
            }
            Err(e) => self.reply(550, format!("{}.", strerror(&e))),
        }
    }

    pub(super) fn is_root(&self, real: &Path) -> bool {
        self.fs().is_some_and(|fs| real == fs.root())
    }

    pub(super) fn cmd_rmd(&mut self, ftp: String, real: PathBuf) {
        if self.is_root(&real) {
            return self.reply(550, "Can't remove root directory.");
        }
        let Some(fs) = self.fs() else { return };
        match fs.rmdir(&real) {
            Ok(()) => {
                self.reply(250, "Directory removed.");
                self.log_cmd("RMD", &ftp, 250);
                self.hook(|h, i| h.on_dir_removed(i, &real));
            }
            Err(e) => self.reply(550, format!("{}.", strerror(&e))),
        }
    }

    pub(super) fn cmd_dele(&mut self, ftp: String, real: PathBuf) {
        let Some(fs) = self.fs() else { return };
        match fs.remove(&real) {
            Ok(()) => {
                self.reply(250, "File removed.");
                self.log_cmd("DELE", &ftp, 250);
                self.hook(|h, i| h.on_file_deleted(i, &real));
            }
            Err(e) => self.reply(550, format!("{}.", strerror(&e))),
        }
    }

    pub(super) fn cmd_rnfr(&mut self, _ftp: String, real: PathBuf) {
        if self.is_root(&real) {
            return self.reply(550, "Can't rename home directory.");
        }
        let Some(fs) = self.fs() else { return };
        if fs.lstat(&real).is_err() {
            return self.reply(550, "No such file or directory.");
        }
        self.rnfr = Some(real);
        self.reply(350, "Ready for destination name.");
    }

    pub(super) fn cmd_rnto(&mut self, ftp: String, real: PathBuf) {
        let Some(from) = self.rnfr.take() else {
            return self.reply(503, "Bad sequence of commands: use RNFR first.");
        };
        if self.is_root(&real) {
            return self.reply(550, "Can't overwrite the root directory.");
        }
        let Some(fs) = self.fs() else { return };
        match fs.rename(&from, &real) {
            Ok(()) => {
                let from_ftp = fs.fs2ftp(&from);
                self.reply(250, "Renaming ok.");
                self.log(&format!("RNFR {from_ftp} RNTO {ftp} 250"));
                self.hook(|h, i| h.on_file_renamed(i, &from, &real));
            }
            Err(e) => self.reply(550, format!("{}.", strerror(&e))),
        }
    }

    pub(super) fn cmd_size(&mut self, ftp: String, real: PathBuf) {
        let Some(fs) = self.fs() else { return };
        match fs.stat(&real) {
            Ok(m) if m.is_file() => self.reply(213, m.len().to_string()),
            Ok(_) => self.reply(550, format!("{ftp} is not retrievable.")),
            Err(e) => self.reply(550, format!("{}.", strerror(&e))),
        }
    }

    pub(super) fn cmd_mdtm(&mut self, ftp: String, real: PathBuf) {
        let Some(fs) = self.fs() else { return };
        match fs.stat(&real) {
            Ok(m) if m.is_file() => {
                let t = listing::civil(m.mtime(), self.config.use_gmt_times);
                self.reply(213, t.time_val());
            }
            Ok(_) => self.reply(550, format!("{ftp} is not retrievable.")),
            Err(e) => self.reply(550, format!("{}.", strerror(&e))),
        }
    }

    pub(super) fn cmd_mlst(&mut self, ftp: String, real: PathBuf) {
        let Some(fs) = self.fs() else { return };
        match fs.stat(&real) {
            Ok(m) => {
                let perm = self.mlsx_perm(&real, m.is_dir());
                let mut line = Vec::new();
                listing::push_mlsx_line(&mut line, ftp.as_bytes(), &m, &self.mlst_facts, &perm);
                let fact_line = String::from_utf8_lossy(&line).trim_end().to_string();
                self.reply(250, format!("Listing {ftp}\n {fact_line}\nEnd MLST."));
            }
            Err(e) => self.reply(550, format!("{}.", strerror(&e))),
        }
    }

    pub(super) fn cmd_mfmt(&mut self, arg: &str) {
        // MFMT YYYYMMDDHHMMSS[.sss] path (draft-somers-ftp-mfxx): the time is UTC.
        let Some((timeval, target)) = arg.split_once(' ') else {
            return self.reply(501, "Syntax error: MFMT needs a time and a path.");
        };
        let Some(secs) = parse_time_val(timeval) else {
            return self.reply(501, "Invalid time format; expected YYYYMMDDHHMMSS.");
        };
        let Some((ftp, real)) = self.resolve(target, Some(Perms::MFMT)) else {
            return;
        };
        let Some(fs) = self.fs() else { return };
        match fs.stat(&real) {
            Ok(m) if m.is_file() => {}
            Ok(_) => return self.reply(550, format!("{ftp} is not a regular file.")),
            Err(e) => return self.reply(550, format!("{}.", strerror(&e))),
        }
        match fs.set_mtime(&real, secs) {
            Ok(()) => {
                let t = listing::CivilTime::from_unix(secs).time_val();
                self.reply(213, format!("Modify={t}; {ftp}."));
                self.log_cmd("MFMT", &ftp, 213);
            }
            Err(e) => self.reply(550, format!("{}.", strerror(&e))),
        }
    }

    pub(super) fn cmd_site(&mut self, arg: &str) {
        let (sub, rest) = arg.split_once(' ').unwrap_or((arg, ""));
        match sub.to_ascii_uppercase().as_str() {
            "CHMOD" => {
                let Some((mode, target)) = rest.split_once(' ') else {
                    return self.reply(501, "Syntax error: SITE CHMOD needs a mode and a path.");
                };
                // Permission bits only: set-id and sticky bits are not a client's to set.
                let mode = match u32::from_str_radix(mode, 8) {
                    Ok(m) if m <= 0o777 => m,
                    _ => return self.reply(501, "Invalid SITE CHMOD format; expected an octal mode up to 777."),
                };
                let Some((ftp, real)) = self.resolve(target, Some(Perms::CHMOD)) else { return };
                let Some(fs) = self.fs() else { return };
                match fs.chmod(&real, mode) {
                    Ok(()) => {
                        self.reply(200, "SITE CHMOD successful.");
                        self.log_cmd("SITE CHMOD", &ftp, 200);
                    }
                    Err(e) => self.reply(550, format!("{}.", strerror(&e))),
                }
            }
            "HELP" => self.reply(214, "The following SITE commands are recognized:\n CHMOD\n HELP\nHelp SITE command successful."),
            _ => self.reply(501, "Unrecognized SITE command."),
        }
    }
}
