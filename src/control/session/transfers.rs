//! The data connection and what moves over it: TYPE, REST, PASV/EPSV, PORT/EPRT, ABOR,
//! RETR, STOR, APPE, STOU, LIST, NLST and MLSD.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

use crate::authorizer::Perms;
use crate::control::command::{CommandSpec, Verb};
use crate::filesystem::{FileReader, FileWriter, Stat, WriteMode};
use crate::listing::{self, ListFormat, Listing, PermContext};

use super::parse::{parse_eprt, parse_port, strip_ls_flag};
use super::{
    canonical, Action, DataState, Direction, Op, Pending, Session, Source, Then, Transfer, XferKind,
};

impl Session {
    pub(super) fn cmd_type(&mut self, arg: &str) {
        let t: String = arg
            .to_ascii_uppercase()
            .chars()
            .filter(|c| *c != ' ')
            .collect();
        match t.as_str() {
            // L7 is ASCII too, as in pyftpdlib; A N is RFC 959's own name for it.
            "A" | "AN" | "L7" => {
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
            // Embedded clients send TYPE A, then REST 0, before every listing: a restart
            // at 0 is no restart, so it is accepted in ASCII mode too.
            Ok(n) if self.ascii && n > 0 => {
                self.reply(501, "Resuming transfers not allowed in ASCII mode.")
            }
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

    /// Whether another transfer is pending, replying 425 if so. Transfer commands ask this
    /// before they request their file, and the session reads no other command until that
    /// request completes, so the answer still holds when it does. Without a data
    /// connection a transfer command is accepted and held until PASV or PORT sets one up,
    /// as pyftpdlib does.
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
        if (!self.holds_transfer() && self.transfer_busy()) || self.data_tls_missing() {
            return;
        }
        self.drop_data();
        self.awaiting_listen = true;
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
                // RFC 2428 section 2: 522 lists the protocols that would do.
                Ok((af, _)) if af == "1" && !v4 => {
                    return self.reply(522, "Network protocol not supported, use (2).")
                }
                Ok((af, _)) if af == "2" && v4 => {
                    return self.reply(522, "Network protocol not supported, use (1).")
                }
                Ok((_, None)) => {
                    return self.reply(522, "Network protocol not supported, use (1,2).")
                }
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
        if (!self.holds_transfer() && self.transfer_busy()) || self.data_tls_missing() {
            return;
        }
        self.drop_data();
        self.data = DataState::Connecting;
        self.awaiting_connect = true;
        self.actions.push_back(Action::Connect(addr));
        self.release_held();
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
        let ascii = self.ascii && pending.kind != XferKind::Listing;
        let tls = self.prot_private;
        let transfer = Transfer {
            direction,
            ascii,
            use_sendfile: self.config.use_sendfile && !ascii && !tls,
            tls,
        };
        let mut pending = pending;
        pending.ascii = ascii;
        if self.data == DataState::None {
            // No PASV/PORT yet: the transfer waits for one (see `release_held`).
            pending.held = Some(transfer);
        } else {
            self.actions.push_back(Action::Transfer(transfer));
        }
        self.pending = Some(pending);
    }

    /// Whether the pending transfer waits for PASV/PORT (see [`Pending::held`]).
    pub(super) fn holds_transfer(&self) -> bool {
        self.pending.as_ref().is_some_and(|p| p.held.is_some())
    }

    /// A data connection is being set up (PASV ready, PORT sent): a transfer command that
    /// came before it starts on it.
    pub(super) fn release_held(&mut self) {
        if let Some(t) = self.pending.as_mut().and_then(|p| p.held.take()) {
            self.actions.push_back(Action::Transfer(t));
        }
    }

    pub(super) fn cmd_retr(
        &mut self,
        now: Instant,
        ftp: String,
        vpath: PathBuf,
        rest: Option<u64>,
    ) {
        // A second transfer command while one is pending is refused before it asks for
        // its file: nothing of it may be left out when an ABOR comes for the first.
        if self.transfer_busy() {
            return;
        }
        let offset = rest.unwrap_or(0);
        let pending = self.new_pending(XferKind::Retr, "RETR", ftp, &vpath, now);
        self.request(
            Op::OpenRead {
                path: vpath,
                offset,
            },
            Then::Retr { pending, offset },
        );
    }

    pub(super) fn finish_retr(
        &mut self,
        pending: Pending,
        offset: u64,
        r: io::Result<Box<dyn FileReader>>,
    ) {
        let file = match r {
            Ok(f) => f,
            Err(e) if e.raw_os_error() == Some(libc::EISDIR) => {
                return self.refuse(550, "Is a directory.")
            }
            Err(e) => return self.refuse_io(550, &e),
        };
        let size = file.size();
        if offset > size {
            return self.refuse(
                554,
                format!("REST position ({offset}) > file size ({size})"),
            );
        }
        self.start_transfer(
            pending,
            Direction::Send(Source::File { file, offset }),
            None,
        );
    }

    pub(super) fn cmd_stor(
        &mut self,
        now: Instant,
        ftp: String,
        vpath: PathBuf,
        rest: Option<u64>,
        append: bool,
    ) {
        if self.transfer_busy() {
            return;
        }
        let pending = self.new_pending(
            XferKind::Store,
            if append { "APPE" } else { "STOR" },
            ftp,
            &vpath,
            now,
        );
        self.request(
            Op::WriteTarget {
                path: vpath.clone(),
            },
            Then::StorCheck {
                pending,
                vpath,
                rest,
                append,
            },
        );
    }

    /// STOR/APPE: the target checked; opens it unless it is a directory or the restart
    /// point lies beyond its end (or the file is missing).
    pub(super) fn check_stor(
        &mut self,
        pending: Pending,
        vpath: PathBuf,
        rest: Option<u64>,
        append: bool,
        r: io::Result<Option<Stat>>,
    ) {
        let stat = match r {
            Ok(m) => m,
            Err(e)
                if e.kind() == io::ErrorKind::NotFound
                    || e.raw_os_error() == Some(libc::ENOTDIR) =>
            {
                return self.refuse_io(550, &e);
            }
            // Anything else (permission to look, say) is for the open to report.
            Err(_) => None,
        };
        if let Some(off) = rest {
            // A restart continues a file that is there (pyftpdlib: 550 too).
            let Some(size) = stat.as_ref().map(|m| m.size) else {
                return self.refuse(550, "No such file or directory.");
            };
            if off > size {
                return self.refuse(554, format!("REST position ({off}) > file size ({size})"));
            }
        }
        if stat.as_ref().is_some_and(Stat::is_dir) {
            return self.refuse(550, "Is a directory.");
        }
        let mode = match (append, rest) {
            (true, _) => WriteMode::Append,
            (false, Some(off)) => WriteMode::At(off),
            (false, None) => WriteMode::Truncate,
        };
        self.request(Op::OpenWrite { path: vpath, mode }, Then::Stor { pending });
    }

    pub(super) fn finish_stor(&mut self, pending: Pending, r: io::Result<Box<dyn FileWriter>>) {
        let file = match r {
            Ok(f) => f,
            Err(e) => return self.refuse_io(super::NAMING, &e),
        };
        self.start_transfer(pending, Direction::Receive(file), None);
    }

    pub(super) fn cmd_stou(&mut self, now: Instant, arg: &[u8], rest: Option<u64>) {
        if rest.is_some() {
            return self.refuse(450, "Can't STOU while REST request is pending.");
        }
        // The name is made here from the last part of the argument, in the current
        // directory: a client cannot aim STOU through another path.
        let base = arg
            .rsplit(|&b| b == b'/')
            .next()
            .filter(|b| !b.is_empty() && *b != b"." && *b != b"..")
            .unwrap_or(b"ftpd")
            .to_vec();
        let cwd = self.cwd.clone();
        let Some((dir_ftp, dir)) = self.resolve(&cwd, Some(Perms::STORE)) else {
            return;
        };
        if self.transfer_busy() {
            return;
        }
        let pending = self.new_pending(XferKind::Store, "STOU", dir_ftp, &dir, now);
        self.request(Op::CreateUnique { dir, base }, Then::Stou { pending });
    }

    pub(super) fn finish_stou(
        &mut self,
        mut pending: Pending,
        r: io::Result<(Vec<u8>, Box<dyn FileWriter>)>,
    ) {
        let (name, file) = match r {
            Ok(x) => x,
            Err(e) => return self.refuse_io(450, &e),
        };
        let name = String::from_utf8_lossy(&name).into_owned();
        let dir = std::mem::take(&mut pending.ftp_path);
        pending.ftp_path = if dir == "/" {
            format!("/{name}")
        } else {
            format!("{dir}/{name}")
        };
        pending.real = pending.real.join(&name);
        self.start_transfer(
            pending,
            Direction::Receive(file),
            Some(format!("FILE: {name}")),
        );
    }

    /// The record of a transfer about to be asked for: what, which way, and since when (its
    /// TYPE is taken when it starts).
    fn new_pending(
        &self,
        kind: XferKind,
        verb: &'static str,
        ftp_path: String,
        vpath: &Path,
        started: Instant,
    ) -> Pending {
        Pending {
            kind,
            verb,
            ftp_path,
            real: self.real(vpath),
            started,
            ascii: false,
            held: None,
        }
    }

    /// The MLSx `perm` fact of a real path for this session's user.
    pub(super) fn mlsx_perm(&self, path: &Path, is_dir: bool) -> String {
        let user = self.username().unwrap_or("");
        let auth = &self.config.authorizer;
        listing::mlsx_perm(is_dir, |p| auth.has_perm(user, p, path))
    }

    /// The request that opens a listing of `vpath` (or makes it whole, for STAT).
    pub(super) fn list_op(
        &self,
        vpath: PathBuf,
        fallback: Vec<PathBuf>,
        format: ListFormat,
        whole: bool,
    ) -> Op {
        let perm = self.username().map(|u| PermContext {
            authorizer: std::sync::Arc::clone(&self.config.authorizer),
            user: u.to_string(),
        });
        Op::List {
            path: vpath,
            fallback,
            format,
            facts: self.mlst_facts.clone(),
            perm,
            now: listing::unix_secs(SystemTime::now()),
            gmt: self.config.use_gmt_times,
            whole,
        }
    }

    pub(super) fn cmd_list(
        &mut self,
        now: Instant,
        spec: &'static CommandSpec,
        path: Option<(String, PathBuf)>,
        raw: &[u8],
    ) {
        let Some((ftp, vpath)) = path else {
            return self.refuse(550, "No such file or directory.");
        };
        if self.transfer_busy() {
            return;
        }
        let (name, format) = match spec.verb {
            Verb::Nlst => ("NLST", ListFormat::Nlst),
            Verb::Mlsd => ("MLSD", ListFormat::Mlsd),
            _ => ("LIST", ListFormat::List),
        };
        // Clients send ls-style flags (`LIST -la`, `NLST -1 dir`). The argument names a file
        // first (one may be called "-dash"); only if nothing has that name is it taken as
        // flags before a path: the flag words come off one at a time, and the first of
        // what remains that exists is listed (`NLST -1 -dash` lists "-dash" if it exists,
        // else the current directory).
        let mut fallback = Vec::new();
        if format != ListFormat::Mlsd {
            let mut rest = raw;
            while let Some(next) = strip_ls_flag(rest) {
                match self.resolve(next, spec.perm) {
                    Some((_, other)) => fallback.push(other),
                    None => return,
                }
                rest = next;
            }
        }
        let pending = self.new_pending(XferKind::Listing, name, ftp, &vpath, now);
        let op = self.list_op(vpath, fallback, format, false);
        self.request(op, Then::List { pending });
    }

    pub(super) fn finish_list(&mut self, pending: Pending, r: io::Result<Box<Listing>>) {
        match r {
            Ok(l) => {
                self.log_cmd(pending.verb, &pending.ftp_path, 125);
                self.start_transfer(pending, Direction::Send(Source::Listing(l)), None);
            }
            Err(e) if e.kind() == io::ErrorKind::NotADirectory => {
                self.refuse(501, "No such directory.")
            }
            Err(e) => self.refuse_io(550, &e),
        }
    }
}
