//! Informational commands: HELP, FEAT, OPTS, STAT.

use std::path::PathBuf;

use crate::control::command::{self, Verb, COMMANDS};
use crate::control::reply::quote_path;
use crate::listing;

use super::{Auth, DataState, Session, Then};

impl Session {
    pub(super) fn cmd_help(&mut self, arg: &str) {
        if !arg.is_empty() {
            let name = arg.trim().to_ascii_uppercase();
            match command::lookup(&name).filter(|c| !self.config.is_disabled(c.verb)) {
                Some(spec) => self.reply(214, spec.help),
                None => self.reply(501, "Unrecognized command."),
            }
            return;
        }
        // pyftpdlib's layout: eight names a row, each a space and six columns. The FTPS
        // commands are listed only where FTPS is on, as FEAT lists them.
        let tls_on = self.config.tls.is_some();
        let names: Vec<&str> = COMMANDS
            .iter()
            .filter(|c| {
                tls_on || !matches!(c.verb, Verb::Auth | Verb::Ccc | Verb::Pbsz | Verb::Prot)
            })
            .filter(|c| !self.config.is_disabled(c.verb))
            .map(|c| c.name)
            .collect();
        let mut text = String::from("The following commands are recognized:\n");
        for row in names.chunks(8) {
            for name in row {
                text.push_str(&format!(" {name:<6}"));
            }
            text.push('\n');
        }
        text.push_str("Help command successful.");
        self.reply(214, text);
    }

    pub(super) fn mlst_feature(&self) -> String {
        let mut f = String::from(" MLST ");
        for fact in listing::MLSX_FACTS {
            f.push_str(fact);
            if self.mlst_facts.contains(&fact) {
                f.push('*');
            }
            f.push(';');
        }
        f
    }

    pub(super) fn cmd_feat(&mut self) {
        let mlst = self.mlst_feature();
        let mut feats = vec![
            (" EPRT", Verb::Eprt),
            (" EPSV", Verb::Epsv),
            (" MDTM", Verb::Mdtm),
            (" MFMT", Verb::Mfmt),
            (mlst.as_str(), Verb::Mlst),
            (" REST STREAM", Verb::Rest),
            (" SIZE", Verb::Size),
            (" TVFS", Verb::Cwd),
            (" UTF8", Verb::Opts),
        ];
        if self.config.tls.is_some() {
            feats.extend([
                (" AUTH TLS", Verb::Auth),
                (" PBSZ", Verb::Pbsz),
                (" PROT", Verb::Prot),
            ]);
            feats.sort_unstable_by_key(|(f, _)| *f);
        }
        // A feature whose command is turned off is not offered.
        let feats: Vec<&str> = feats
            .into_iter()
            .filter(|(_, v)| !self.config.is_disabled(*v))
            .map(|(f, _)| f)
            .collect();
        self.reply(
            211,
            format!("Features supported:\n{}\nEnd FEAT.", feats.join("\n")),
        );
    }

    /// OPTS (RFC 2389) for UTF8 and MLST, with pyftpdlib's error texts.
    pub(super) fn cmd_opts(&mut self, arg: &str) {
        if arg.matches(' ').count() > 1 {
            return self.reply(501, "Invalid number of arguments.");
        }
        let (name, value) = arg.split_once(' ').unwrap_or((arg, ""));
        let upper = name.to_ascii_uppercase();
        if upper == "MLST" {
            if !value.is_empty() && !value.contains(';') {
                return self.reply(501, "Invalid argument.");
            }
            // RFC 3659 section 7.9: unknown facts are dropped; the reply lists those kept.
            let wanted: Vec<String> = value.split(';').map(|f| f.to_ascii_lowercase()).collect();
            self.mlst_facts = listing::MLSX_FACTS
                .iter()
                .copied()
                .filter(|f| wanted.iter().any(|w| w == f))
                .collect();
            let list: String = self.mlst_facts.iter().map(|f| format!("{f};")).collect();
            return self.reply(200, format!("MLST OPTS {list}"));
        }
        match upper.as_str() {
            // Paths are always UTF-8 here; OFF is acknowledged rather than refused, so a
            // client that sends it carries on.
            "UTF8" | "UTF-8" => self.reply(200, "Always in UTF8 mode."),
            _ => self.reply(501, format!("Unsupported command \"{name}\".")),
        }
    }

    pub(super) fn cmd_stat(&mut self, path: Option<(String, PathBuf)>, raw: &[u8]) {
        // No globbing (pyftpdlib's reasons: its cost), said as pyftpdlib says it.
        if path.is_some() && raw.iter().any(|b| b"*?[".contains(b)) {
            return self.reply(550, "Globbing not supported.");
        }
        let Some((ftp, real)) = path else {
            let mut text = String::from("FTP server status:\n");
            text.push_str(&format!(" Connected to: {}\n", self.local));
            if self.config.tls.is_some() {
                text.push_str(&format!(
                    " Control connection: {}; data protection: {}\n",
                    if self.control_tls { "TLS" } else { "plaintext" },
                    if self.prot_private { "P" } else { "C" }
                ));
            }
            match &self.auth {
                Auth::LoggedIn(u) => text.push_str(&format!(" Logged in as: {u}\n")),
                Auth::UserGiven(_) => text.push_str(" Waiting for password.\n"),
                Auth::Anonymous => text.push_str(" Waiting for username.\n"),
            }
            text.push_str(&format!(
                " TYPE: {}; STRUcture: File; MODE: Stream\n",
                if self.ascii { "ASCII" } else { "Binary" }
            ));
            let data = match (self.data, self.pending.is_some()) {
                (_, true) => "Data connection open; transfer in progress.",
                (DataState::Listening, _) => "Passive data channel waiting for connection.",
                (DataState::Connecting, _) => "Active data channel connecting.",
                (DataState::Connected, _) => "Data connection open.",
                (DataState::None, _) => "Data connection closed.",
            };
            text.push_str(&format!(" {data}\nEnd of status."));
            return self.reply(211, text);
        };
        let op = self.list_op(real, Vec::new(), crate::listing::ListFormat::List, true);
        self.request(op, Then::Stat { ftp });
    }

    /// STAT with a path, once the listing is made.
    pub(super) fn finish_stat(&mut self, ftp: String, r: std::io::Result<Vec<u8>>) {
        match r {
            Ok(bytes) => {
                let body = String::from_utf8_lossy(&bytes).replace("\r\n", "\n");
                let mut text = format!("Status of {}:\n", quote_path(&ftp));
                for line in body.lines() {
                    text.push_str(line);
                    text.push('\n');
                }
                text.push_str("End of status.");
                self.reply(213, text);
            }
            Err(e) => self.reply_io(550, &e),
        }
    }
}
