//! FTPS commands (RFC 4217): AUTH, PBSZ, PROT, CCC, and the TLS policy checks that
//! USER, PASS, PASV and PORT make.

use super::{Action, Session};
use crate::tls::policy::{TlsConfig, TlsRequired};

impl Session {
    /// CCC (RFC 4217 section 6): back to a plaintext control connection, where allowed.
    pub(super) fn cmd_ccc(&mut self) {
        let Some(tls) = self.config.tls.as_ref() else {
            return self.reply(502, "CCC not supported: no TLS certificate configured.");
        };
        if !self.control_tls {
            return self.reply(534, "CCC refused: the control connection is not protected.");
        }
        let user = self.username().unwrap_or("");
        if !tls.ccc_allowed || tls.control_required.applies_to(user) {
            return self.reply(
                534,
                "CCC not allowed: the control connection stays protected.",
            );
        }
        self.reply(200, "CCC OK; the control connection returns to plaintext.");
        // Commands wait until the client's close_notify has been read: what follows it is
        // plaintext.
        self.tls_switching = true;
        self.actions.push_back(Action::EndTls);
    }

    /// Whether the TLS policy `which` (control or data) applies to `user`.
    fn tls_required(&self, which: fn(&TlsConfig) -> TlsRequired, user: &str) -> bool {
        self.config
            .tls
            .as_ref()
            .is_some_and(|t| which(t).applies_to(user))
    }

    /// Whether the logged-in user must use PROT P for data connections.
    fn data_tls_required(&self) -> bool {
        self.tls_required(|t| t.data_required, self.username().unwrap_or(""))
    }

    /// Whether `user` must secure the control connection first; replies 534 if so.
    pub(super) fn control_tls_missing(&mut self, user: &str) -> bool {
        if self.tls_required(|t| t.control_required, user) && !self.control_tls {
            self.reply(
                534,
                "Request denied for policy reasons: use AUTH TLS before logging in.",
            );
            return true;
        }
        false
    }

    /// Whether the logged-in user must use PROT P for data connections and has not; replies
    /// 521 if so.
    pub(super) fn data_tls_missing(&mut self) -> bool {
        if self.data_tls_required() && !self.prot_private {
            self.reply(
                521,
                "Data connection cannot be opened with this PROT setting: use PROT P.",
            );
            return true;
        }
        false
    }

    pub(super) fn cmd_auth(&mut self, arg: &str) {
        if self.config.tls.is_none() {
            return self.reply(502, "AUTH not supported: no TLS certificate configured.");
        }
        if self.control_tls {
            return self.reply(503, "Already using TLS.");
        }
        match arg.trim().to_ascii_uppercase().as_str() {
            // TLS-C of RFC 4217, and its synonym TLS-P (TLS with protected data).
            "TLS" | "TLS-C" => self.reply(234, "AUTH TLS successful."),
            // The older AUTH SSL of draft-murray-auth-ftp-ssl implied protected data, and
            // clients using it expect that: PROT P without asking.
            "SSL" | "TLS-P" => {
                self.pbsz = true;
                self.prot_private = true;
                self.reply(234, "AUTH SSL successful.");
            }
            _ => return self.reply(504, "Unrecognized AUTH type; use AUTH TLS."),
        }
        self.control_tls = true;
        self.tls_switching = true;
        self.actions.push_back(Action::StartTls);
    }

    pub(super) fn cmd_pbsz(&mut self, arg: &str) {
        if !self.control_tls {
            return self.reply(503, "PBSZ not allowed on an insecure control connection.");
        }
        if arg.trim().parse::<u64>().is_err() {
            return self.reply(501, "Invalid PBSZ argument.");
        }
        // RFC 4217: TLS is a streaming protection, the buffer size is always 0.
        self.pbsz = true;
        self.reply(200, "PBSZ=0");
    }

    pub(super) fn cmd_prot(&mut self, arg: &str) {
        if !self.control_tls {
            return self.reply(503, "PROT not allowed on an insecure control connection.");
        }
        if !self.pbsz {
            return self.reply(503, "You must issue the PBSZ command prior to PROT.");
        }
        match arg.trim().to_ascii_uppercase().as_str() {
            "C" => {
                if self.data_tls_required() {
                    return self.reply(534, "Request denied for policy reasons: PROT C refused.");
                }
                self.prot_private = false;
                self.reply(200, "Protection set to Clear.");
            }
            "P" => {
                self.prot_private = true;
                self.reply(200, "Protection set to Private.");
            }
            "S" | "E" => self.reply(
                536,
                format!("PROT {} not supported with TLS; use C or P.", arg.trim()),
            ),
            _ => self.reply(504, "Unrecognized PROT type; use C or P."),
        }
    }
}
