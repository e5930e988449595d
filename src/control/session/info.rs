//! Informational commands: HELP, FEAT, OPTS, STAT.

use std::path::PathBuf;

use crate::control::command::{self, COMMANDS};
use crate::control::reply::quote_path;
use crate::listing;

use super::{err_text, Auth, DataState, Session, Then};

impl Session {
    pub(super) fn cmd_help(&mut self, arg: &str) {
        if !arg.is_empty() {
            let name = arg.trim().to_ascii_uppercase();
            match command::lookup(&name) {
                Some(spec) => self.reply(214, spec.help),
                None => self.reply(501, "Unrecognized command."),
            }
            return;
        }
        let mut text = String::from("The following commands are recognized:\n");
        for row in COMMANDS.chunks(8) {
            let names: Vec<String> = row.iter().map(|c| format!("{:<5}", c.name)).collect();
            text.push(' ');
            text.push_str(names.join(" ").trim_end());
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
            " EPRT",
            " EPSV",
            " MDTM",
            " MFMT",
            mlst.as_str(),
            " REST STREAM",
            " SIZE",
            " TVFS",
            " UTF8",
        ];
        if self.config.tls.is_some() {
            feats.extend([" AUTH TLS", " PBSZ", " PROT"]);
            feats.sort_unstable();
        }
        self.reply(
            211,
            format!("Features supported:\n{}\nEnd FEAT.", feats.join("\n")),
        );
    }

    pub(super) fn cmd_opts(&mut self, arg: &str) {
        let mut words = arg.split_whitespace();
        let name = words.next().unwrap_or("").to_ascii_uppercase();
        let value = words.next().unwrap_or("");
        if name == "MLST" {
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
        match (name.as_str(), value.to_ascii_uppercase().as_str()) {
            // Paths are always UTF-8 here; OFF is acknowledged rather than refused, so a
            // client that sends it carries on.
            ("UTF8" | "UTF-8", _) => self.reply(200, "Always in UTF8 mode."),
            _ => self.reply(501, format!("Invalid OPTS argument {:?}.", name)),
        }
    }

    pub(super) fn cmd_stat(&mut self, path: Option<(String, PathBuf)>) {
        let Some((ftp, real)) = path else {
            let mut text = String::from("FTP server status:\n");
            text.push_str(&format!(" Connected to: {}\n", self.peer));
            if self.config.tls.is_some() {
                text.push_str(&format!(
                    " Control connection: {}; data protection: {}\n",
                    if self.control_tls { "TLS" } else { "plaintext" },
                    if self.prot_private { "P" } else { "C" }
                ));
            }
            match &self.auth {
                Auth::LoggedIn(u) => text.push_str(&format!(" Logged in as: {u}\n")),
                _ => text.push_str(" Waiting for username.\n"),
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
                    text.push(' ');
                    text.push_str(line);
                    text.push('\n');
                }
                text.push_str("End of status.");
                self.reply(213, text);
            }
            Err(e) => self.reply(550, err_text(&e)),
        }
    }
}
