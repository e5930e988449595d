//! Inputs from the data side: the passive listener is ready, the data connection is up or
//! failed, a transfer ended, the data channel closed; and the one place a transfer ends.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Instant;

use crate::hooks::TransferRecord;
use crate::logger::{self, key};
use log::kv::Value;

#[cfg(doc)]
use super::Action;
use super::{
    canonical, error_code, error_reply, strerror, DataFailure, DataState, Pending, Session,
    TransferError, XferKind,
};

impl Session {
    /// The passive listener is bound (or failed to be).
    pub fn handle_passive_ready(
        &mut self,
        _now: Instant,
        result: io::Result<SocketAddr>,
        extended: bool,
    ) {
        self.awaiting_listen = false;
        match result {
            Ok(addr) => {
                self.data = DataState::Listening;
                if extended {
                    self.reply(
                        229,
                        format!("Entering extended passive mode (|||{}|).", addr.port()),
                    );
                } else {
                    let mapped = self
                        .config
                        .masquerade_map
                        .iter()
                        .find(|r| r.matches(self.peer.ip()))
                        .map(|r| r.address);
                    let ip = match mapped.or(self.config.masquerade_address) {
                        Some(IpAddr::V4(ip)) => ip,
                        _ => match canonical(addr.ip()) {
                            IpAddr::V4(ip) => ip,
                            IpAddr::V6(_) => Ipv4Addr::UNSPECIFIED,
                        },
                    };
                    let [a, b, c, d] = ip.octets();
                    let port = addr.port();
                    self.reply(
                        227,
                        format!(
                            "Entering passive mode ({a},{b},{c},{d},{},{}).",
                            port >> 8,
                            port & 0xff
                        ),
                    );
                }
                self.release_held();
            }
            Err(e) => {
                self.data = DataState::None;
                logger::logerror(&format!(
                    "{} can't open passive listener: {e}",
                    self.prefix()
                ));
                let text = match error_code(&e, 425) {
                    451 => format!("Can't open passive connection: {}.", strerror(&e)),
                    _ => "Can't open passive connection.".to_string(),
                };
                self.reply(425, text);
            }
        }
    }

    /// The data connection is up (passive accept or active connect).
    pub fn handle_data_connected(&mut self, _now: Instant) {
        let was = self.data;
        self.data = DataState::Connected;
        if was == DataState::Connecting && self.awaiting_connect {
            self.awaiting_connect = false;
            self.reply(200, "Active data connection established.");
        }
        if self.pending.is_some() {
            self.transfer_running = true;
        }
    }

    /// The data connection could not be made.
    ///
    /// A reply goes out only where a command waits for one: PORT/EPRT waits for its
    /// connection, a transfer command for its data connection. A passive listener that a
    /// stranger reached first, or that nobody reached in time while no transfer command
    /// waits, is only logged: RFC 959 has no reply without a command (but 421), and an
    /// unasked one would be read by the client as the answer to its next command, putting
    /// every later reply one off. (pyftpdlib sends a 425 or 421 here all the same.)
    ///
    /// Both may wait: a transfer command held for want of a data connection, then the PORT
    /// that was to give it one. Each gets its final reply, in the order they came.
    pub fn handle_data_failed(&mut self, now: Instant, why: DataFailure) {
        let (code, text) = match why {
            DataFailure::ForeignPeer(addr) => {
                // The listener stays for the client, which may still come.
                self.log_reason(
                    "data_error",
                    &format!("Rejected data connection from foreign address {addr}."),
                );
                return;
            }
            DataFailure::ConnectFailed(e) => {
                self.log_reason("data_error", &format!("active connection failed: {e}"));
                (425, "Can't connect to specified address.".to_string())
            }
            DataFailure::ConnectTimeout => {
                self.log_reason("timeout", "Active data channel timed out.");
                (421, "Active data channel timed out.".to_string())
            }
            DataFailure::AcceptTimeout => {
                self.log_reason("timeout", "Passive data channel timed out.");
                (421, "Passive data channel timed out.".to_string())
            }
            DataFailure::AcceptFailed(e) => {
                self.log_reason("data_error", &format!("passive accept failed: {e}"));
                // A command waiting for this connection gets 425 with the reason; one that
                // comes later finds no data connection and gets its own 425.
                (
                    425,
                    format!("Can't open data connection: {}.", strerror(&e)),
                )
            }
        };
        if self.awaiting_connect {
            // The answer to PORT/EPRT.
            self.reply(code, text);
            if self.pending.is_some() {
                self.reply(425, "Can't open data connection.");
            }
        } else if self.pending.is_some() {
            self.reply(code, text);
        }
        self.awaiting_connect = false;
        self.data = DataState::None;
        if let Some(p) = self.pending.take() {
            self.end_transfer(now, &p, 0, false);
        }
        self.restart_idle(now);
        self.after_transfer();
    }

    /// A transfer ended; `bytes` is what moved over the data connection.
    pub fn handle_transfer_done(
        &mut self,
        now: Instant,
        bytes: u64,
        result: Result<(), TransferError>,
    ) {
        self.data = DataState::None;
        self.transfer_running = false;
        self.restart_idle(now);
        let Some(p) = self.pending.take() else {
            return;
        };
        let ok = result.is_ok();
        let stalled = matches!(result, Err(TransferError::Stalled));
        match result {
            Ok(()) => self.reply(226, "Transfer complete."),
            Err(TransferError::Connection(e)) => self.reply(
                426,
                format!(
                    "Connection closed; transfer aborted ({}, {bytes} bytes moved).",
                    strerror(&e)
                ),
            ),
            Err(TransferError::File(e)) => {
                let (code, text) = error_reply(&e, 426);
                let text = text.strip_suffix('.').unwrap_or(&text);
                self.reply(code, format!("{text}; transfer aborted."));
            }
            Err(TransferError::Stalled) => {
                self.reply(421, "Data connection timed out.");
                self.log_reason("timeout", "Data connection timed out.");
            }
            Err(TransferError::Tls(msg)) => {
                self.log_reason("data_error", &format!("data connection: {msg}"));
                self.reply(522, format!("{msg}."));
            }
        }
        self.end_transfer(now, &p, bytes, ok);
        if std::mem::take(&mut self.aborting) {
            // An ABOR came while the upload was being completed, and waited for it.
            self.reply(226, "ABOR command successful.");
        }
        if stalled {
            // As pyftpdlib does: a stalled transfer ends the session.
            self.close();
            return;
        }
        self.after_transfer();
    }

    /// Ends a pending transfer that never moved data (its 150 went out, its data
    /// connection never came): the end of transfer as incomplete, then 426 with `why`.
    pub(super) fn abandon_pending(&mut self, now: Instant, why: &str) {
        if let Some(p) = self.pending.take() {
            self.end_transfer(now, &p, 0, false);
            self.reply(426, why);
        }
    }

    /// The one place a file transfer ends, whichever way: the log line and the hooks.
    pub(super) fn end_transfer(&self, now: Instant, p: &Pending, bytes: u64, completed: bool) {
        if p.kind == XferKind::Listing {
            return;
        }
        let seconds = now.saturating_duration_since(p.started).as_secs_f64();
        self.log_fields(
            "transfer",
            &format!(
                "{} {} completed={} bytes={bytes} seconds={seconds:.3}",
                p.verb,
                p.ftp_path,
                u8::from(completed)
            ),
            &[
                (key::COMMAND, Some(Value::from(p.verb))),
                (key::PATH, Some(Value::from(p.ftp_path.as_str()))),
                (key::BYTES, Some(Value::from(bytes))),
                (key::SECONDS, Some(Value::from(seconds))),
                (key::COMPLETED, Some(Value::from(completed))),
            ],
        );
        match (p.kind, completed) {
            (XferKind::Retr, true) => self.hook(|h, i| h.on_file_sent(i, &p.real)),
            (XferKind::Retr, false) => self.hook(|h, i| h.on_incomplete_file_sent(i, &p.real)),
            (_, true) => self.hook(|h, i| h.on_file_received(i, &p.real)),
            (_, false) => self.hook(|h, i| h.on_incomplete_file_received(i, &p.real)),
        }
        let record = TransferRecord {
            verb: p.verb,
            ftp_path: &p.ftp_path,
            path: &p.real,
            bytes,
            seconds,
            ascii: p.ascii,
            completed,
        };
        self.hook(|h, i| h.on_transfer_end(i, &record));
    }

    /// The data channel was closed at the session's request ([`Action::CloseData`]);
    /// `bytes` is what it had moved of a running transfer. Completes an ABOR.
    pub fn handle_data_closed(&mut self, now: Instant, bytes: Option<u64>) {
        if !std::mem::take(&mut self.aborting) {
            return;
        }
        self.transfer_running = false;
        // Once a transfer command has had its 150, it gets its 426 whether or not the
        // data connection ever came up.
        if let Some(p) = self.pending.take() {
            self.end_transfer(now, &p, bytes.unwrap_or(0), false);
            self.reply(426, "Transfer aborted via ABOR.");
            self.reply(226, "ABOR command successful.");
        } else {
            self.reply(225, "ABOR command successful; data channel closed.");
        }
        self.restart_idle(now);
        self.after_transfer();
    }

    /// A transfer ended: a QUIT answered meanwhile closes the session now.
    pub(super) fn after_transfer(&mut self) {
        if self.close_after_transfer {
            self.close();
        }
    }
}
