//! The data connection and what moves over it: TYPE, REST, PASV/EPSV, PORT/EPRT, ABOR,
//! RETR, STOR, APPE, STOU, LIST, NLST and MLSD.

use std::io;
use std::net::SocketAddr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

use crate::authorizer::Perms;
use crate::control::command::Verb;
use crate::control::reply::quote_path;
use crate::listing::{self, NameCache};

use super::parse::{parse_eprt, parse_port};
use super::{
    canonical, strerror, Action, DataState, Direction, Pending, Session, Source, Transfer, XferKind,
};

impl Session {
    pub(super) fn cmd_type(&mut self, arg: &str) {
        let t: String = arg
            .to_ascii_uppercase()
            .chars()
            .filter(|c| *c != ' ')
            .collect();
        match t.as_str() {
            "A" | "AN" => {
                self.ascii = true;
                self.reply(200, "Type set to: ASCII.");
            }
            "I" | "L8" => {
                self.ascii = false;
                self.reply(200, "Type set to: Binary.");
            }
            _ => self.reply(504, format!("Unsupported type {:?}.", arg)),
        }
    }

    pub(super) fn cmd_rest(&mut self, arg: &str) {
        match arg.trim().parse::<u64>() {
            Ok(_) if self.ascii => self.reply(501, "Resuming transfers not allowed in ASCII mode."),
            Ok(n) => {
                self.rest = Some(n);
                self.reply(350, format!("Restarting at position {n}."));
            }
            Err(_) => self.reply(501, "Invalid parameter."),
        }
    }

    // ---- data connection setup --------------------------------------------------------

    pub(super) fn drop_data(&mut self) {
        if self.data != DataState::None {
            self.actions.push_back(Action::CloseData);
            self.data = DataState::None;
        }
    }

    pub(super) fn transfer_busy(&mut self) -> bool {
        if self.pending.is_some() {
            self.reply(
                425,
                "A transfer is already in progress on the data connection.",
            );
            return true;
        }
        false
    }

    pub(super) fn cmd_pasv(&mut self, extended: bool, arg: &str) {
        let v4 = self.local.is_ipv4();
        if extended {
            match arg.trim().to_ascii_uppercase().as_str() {
                "" => {}
                "1" if !v4 => return self.reply(522, "Network protocol not supported (use 2)."),
                "2" if v4 => return self.reply(522, "Network protocol not supported (use 1)."),
                "1" | "2" => {}
                "ALL" => {
                    self.epsv_all = true;
                    return self.reply(200, "Other commands other than EPSV are now disabled.");
                }
                _ if v4 => return self.reply(501, "Unknown network protocol (use 1)."),
                _ => return self.reply(501, "Unknown network protocol (use 2)."),
            }
        } else {
            if self.epsv_all {
                return self.reply(501, "PASV not allowed after EPSV ALL.");
            }
            if !v4 && self.config.masquerade_address.is_none() {
                return self.reply(
                    425,
                    "You cannot use PASV on IPv6 connections. Use EPSV instead.",
                );
            }
        }
        if self.transfer_busy() || self.data_tls_missing() {
            return;
        }
        self.drop_data();
        self.actions.push_back(Action::Listen { extended });
    }

    pub(super) fn cmd_port(&mut self, arg: &str, extended: bool) {
        let verb = if extended { "EPRT" } else { "PORT" };
        if self.epsv_all {
            return self.reply(501, format!("{verb} not allowed after EPSV ALL."));
        }
        let v4 = self.peer.is_ipv4();
        let addr = if extended {
            match parse_eprt(arg.trim()) {
                Err(()) => return self.reply(501, "Invalid EPRT format."),
                Ok((af, _)) if af == "1" && !v4 => {
                    return self.reply(522, "Network protocol not supported (use 2).")
                }
                Ok((af, _)) if af == "2" && v4 => {
                    return self.reply(522, "Network protocol not supported (use 1).")
                }
                Ok((_, None)) if v4 => {
                    return self.reply(522, "Network protocol not supported (use 1).")
                }
                Ok((_, None)) => return self.reply(522, "Network protocol not supported (use 2)."),
                Ok((_, Some(a))) => a,
            }
        } else {
            if !v4 {
                return self.reply(
                    425,
                    "You cannot use PORT on IPv6 connections. Use EPRT instead.",
                );
            }
            match parse_port(arg) {
                Some(a) => a,
                None => return self.reply(501, "Invalid PORT format."),
            }
        };
        // lftp sends the unspecified address (`EPRT |2|::|port|`) in IPv6 active mode,
        // meaning "where I am": that is the control connection's peer.
        let addr = if addr.ip().is_unspecified() {
            SocketAddr::new(self.peer.ip(), addr.port())
        } else {
            addr
        };
        // RFC 2577: no bouncing to third hosts, no privileged ports; checked before any
        // connection is attempted.
        if canonical(addr.ip()) != self.peer.ip() && !self.config.permit_foreign_addresses {
            return self.reply(
                501,
                format!("Rejected data connection to foreign address {addr}."),
            );
        }
        if addr.port() < 1024 && !self.config.permit_privileged_ports {
            return self.reply(
                501,
                format!(
                    "PORT against the privileged port \"{}\" refused.",
                    addr.port()
                ),
            );
        }
        if self.transfer_busy() || self.data_tls_missing() {
            return;
        }
        self.drop_data();
        self.data = DataState::Connecting;
        self.awaiting_connect = true;
        self.actions.push_back(Action::Connect(addr));
    }

    pub(super) fn cmd_abor(&mut self) {
        if self.data == DataState::None && self.pending.is_none() {
            return self.reply(225, "No transfer to abort.");
        }
        if self.pending.is_some() {
            // The replies wait for the data channel to report what it moved, in
            // handle_data_closed.
            self.aborting = true;
            self.actions.push_back(Action::CloseData);
            self.data = DataState::None;
            return;
        }
        self.drop_data();
        self.awaiting_connect = false;
        self.reply(225, "ABOR command successful; data channel closed.");
    }

    /// Queues a transfer and sends the preliminary reply.
    pub(super) fn start_transfer(
        &mut self,
        pending: Pending,
        direction: Direction,
        preliminary: Option<String>,
    ) {
        let text = preliminary.unwrap_or_else(|| match self.data {
            DataState::Connected => "Data connection already open. Transfer starting.".to_string(),
            _ => "File status okay. About to open data connection.".to_string(),
        });
        let code = if self.data == DataState::Connected {
            125
        } else {
            150
        };
        self.reply(code, text);
        self.transfer_running = self.data == DataState::Connected;
        let kind = pending.kind;
        let mut pending = pending;
        pending.ascii = self.ascii && kind != XferKind::Listing;
        self.pending = Some(pending);
        let ascii = self.ascii && kind != XferKind::Listing;
        let tls = self.prot_private;
        self.actions.push_back(Action::Transfer(Transfer {
            direction,
            ascii,
            use_sendfile: self.config.use_sendfile && !ascii && !tls,
            tls,
        }));
    }

    pub(super) fn need_data(&mut self) -> bool {
        if self.transfer_busy() {
            return false;
        }
        if self.data == DataState::None {
            self.reply(425, "Use PORT, EPRT, PASV or EPSV first.");
            return false;
        }
        true
    }

    pub(super) fn cmd_retr(&mut self, now: Instant, ftp: String, real: PathBuf, rest: Option<u64>) {
        let Some(fs) = self.fs() else { return };
        let file = match fs.stat(&real) {
            Ok(m) if m.is_dir() => return self.reply(550, "Is a directory."),
            Ok(_) => fs.open_read(&real),
            Err(e) => Err(e),
        };
        let file = match file {
            Ok(f) => f,
            Err(e) => return self.reply(550, format!("{}.", strerror(&e))),
        };
        if !self.need_data() {
            return;
        }
        let offset = rest.unwrap_or(0);
        if offset > 0 {
            let size = file.metadata().map(|m| m.len()).unwrap_or(0);
            if offset > size {
                return self.reply(
                    554,
                    format!("REST position ({offset}) > file size ({size})."),
                );
            }
        }
        self.start_transfer(
            Pending {
                kind: XferKind::Retr,
                verb: "RETR",
                ftp_path: ftp,
                real,
                started: now,
                ascii: false,
            },
            Direction::Send(Source::File { file, offset }),
            None,
        );
    }

    pub(super) fn cmd_stor(
        &mut self,
        now: Instant,
        ftp: String,
        real: PathBuf,
        rest: Option<u64>,
        append: bool,
    ) {
        let Some(fs) = self.fs() else { return };
        if let Some(off) = rest {
            let size = fs.stat(&real).map(|m| m.len()).unwrap_or(0);
            if off > size {
                return self.reply(554, format!("REST position ({off}) > file size ({size})."));
            }
        }
        if fs.isdir(&real) {
            return self.reply(550, "Is a directory.");
        }
        // Before the file is opened: a STOR without a data connection must not truncate it.
        if !self.need_data() {
            return;
        }
        let Some(fs) = self.fs() else { return };
        let file = match fs.open_write(&real, append, rest) {
            Ok(f) => f,
            Err(e) => return self.reply(550, format!("{}.", strerror(&e))),
        };
        let verb = if append { "APPE" } else { "STOR" };
        self.start_transfer(
            Pending {
                kind: XferKind::Store,
                verb,
                ftp_path: ftp,
                real,
                started: now,
                ascii: false,
            },
            Direction::Receive(file),
            None,
        );
    }

    pub(super) fn cmd_stou(&mut self, now: Instant, arg: &str, rest: Option<u64>) {
        if rest.is_some() {
            return self.reply(450, "Can't STOU while REST request is pending.");
        }
        let Some(fs) = self.fs() else { return };
        // The name is made here from the last part of the argument, in the current
        // directory: a client cannot aim STOU through another path.
        let base = arg
            .rsplit('/')
            .next()
            .filter(|b| !b.is_empty() && *b != "." && *b != "..")
            .unwrap_or("ftpd");
        let dir_ftp = fs.cwd().to_string();
        let dir = fs.ftp2fs(&dir_ftp);
        if !fs.validpath(&dir) {
            return self.reply(
                550,
                format!(
                    "{} points to a path outside the user's root directory.",
                    quote_path(&dir_ftp)
                ),
            );
        }
        let user = self.username().unwrap_or("").to_string();
        if !self.config.authorizer.has_perm(&user, Perms::STORE, &dir) {
            return self.reply(550, "Not enough privileges.");
        }
        if !self.need_data() {
            return;
        }
        let Some(fs) = self.fs() else { return };
        let mut made = None;
        for n in 0..100u32 {
            let name = if n == 0 {
                base.to_string()
            } else {
                format!("{base}.{n}")
            };
            let real = dir.join(&name);
            if !fs.validpath(&real) {
                continue;
            }
            match fs.create_new(&real) {
                Ok(f) => {
                    made = Some((name, real, f));
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return self.reply(450, format!("{}.", strerror(&e))),
            }
        }
        let Some((name, real, file)) = made else {
            return self.reply(450, "No usable unique file name found.");
        };
        let ftp = fs.fs2ftp(&real);
        self.start_transfer(
            Pending {
                kind: XferKind::Store,
                verb: "STOU",
                ftp_path: ftp,
                real,
                started: now,
                ascii: false,
            },
            Direction::Receive(file),
            Some(format!("FILE: {name}")),
        );
    }

    /// Builds a listing of a directory, or of one file, in the format `verb` asks for
    /// (LIST and STAT: `ls -l` lines; NLST: names; MLSD: RFC 3659 facts).
    pub(super) fn make_listing(&self, real: &Path, verb: Verb) -> io::Result<Vec<u8>> {
        let fs = self
            .fs()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no filesystem"))?;
        let now = listing::unix_secs(SystemTime::now());
        let gmt = self.config.use_gmt_times;
        let mut names = NameCache::default();
        let mut out = Vec::new();
        let meta = fs.stat(real)?;
        let entries: Vec<(Vec<u8>, PathBuf)> = if meta.is_dir() {
            fs.listdir(real)?
                .into_iter()
                .map(|n| (n.as_bytes().to_vec(), real.join(&n)))
                .collect()
        } else if verb == Verb::Mlsd {
            // RFC 3659 section 7.2.1: MLSD names a directory; a file is a 501.
            return Err(io::Error::new(
                io::ErrorKind::NotADirectory,
                "Not a directory",
            ));
        } else {
            let name = real
                .file_name()
                .map(|n| n.as_bytes().to_vec())
                .unwrap_or_default();
            vec![(name, real.to_path_buf())]
        };
        for (name, path) in entries {
            match verb {
                Verb::Nlst => {
                    out.extend_from_slice(&name);
                    out.extend_from_slice(b"\r\n");
                }
                Verb::Mlsd => {
                    // Facts describe what a client would get, so links are followed; an
                    // entry that vanished or is a dangling link is left out.
                    let Ok(m) = fs.stat(&path) else { continue };
                    let perm = self.mlsx_perm(&path, m.is_dir());
                    listing::push_mlsx_line(&mut out, &name, &m, &self.mlst_facts, &perm);
                }
                _ => {
                    // An entry that vanished or cannot be read is left out rather than
                    // failing the whole listing.
                    let Ok(lmeta) = fs.lstat(&path) else { continue };
                    let target = if lmeta.file_type().is_symlink() {
                        fs.readlink(&path)
                            .ok()
                            .map(|t| t.as_os_str().as_bytes().to_vec())
                    } else {
                        None
                    };
                    listing::push_list_line(
                        &mut out,
                        &name,
                        &lmeta,
                        target.as_deref(),
                        &mut names,
                        now,
                        gmt,
                    );
                }
            }
        }
        Ok(out)
    }

    /// The MLSx `perm` fact of a real path for this session's user.
    pub(super) fn mlsx_perm(&self, path: &Path, is_dir: bool) -> String {
        let user = self.username().unwrap_or("");
        let auth = &self.config.authorizer;
        listing::mlsx_perm(is_dir, |p| auth.has_perm(user, p, path))
    }

    pub(super) fn cmd_list(&mut self, now: Instant, verb: Verb, path: Option<(String, PathBuf)>) {
        let Some((ftp, real)) = path else {
            return self.reply(550, "No such file or directory.");
        };
        match self.make_listing(&real, verb) {
            Ok(_) if !self.need_data() => {}
            Ok(bytes) => {
                let name = match verb {
                    Verb::Nlst => "NLST",
                    Verb::Mlsd => "MLSD",
                    _ => "LIST",
                };
                self.log_cmd(name, &ftp, 125);
                self.start_transfer(
                    Pending {
                        kind: XferKind::Listing,
                        verb: name,
                        ftp_path: ftp,
                        real,
                        started: now,
                        ascii: false,
                    },
                    Direction::Send(Source::Bytes(bytes)),
                    None,
                );
            }
            Err(e) if e.kind() == io::ErrorKind::NotADirectory => {
                self.reply(501, "No such directory.")
            }
            Err(e) => self.reply(550, format!("{}.", strerror(&e))),
        }
    }
}
