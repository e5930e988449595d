//! Applying what sessions ask of the server ([`Action`]): data channels to listen or
//! connect, transfers to attach, failed logins to count in the flood table.

use std::io;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use crate::config::Config;
use crate::control::session::{Action, DataFailure, Direction, TransferError};
use crate::control::Drive;
use crate::data::DataChannel;

use super::{Channel, Entry, FtpServer, TimerTarget};
use crate::stats::DataConnFailure;

/// How an active connection failed, for the counters.
pub(super) fn connect_failure(e: &io::Error) -> DataConnFailure {
    if e.kind() == io::ErrorKind::ConnectionRefused {
        DataConnFailure::ConnectRefused
    } else {
        DataConnFailure::ConnectError
    }
}

impl FtpServer {
    pub(super) fn drive_control(&mut self, key: usize, now: Instant) {
        loop {
            let Some(c) = self.control_mut(key) else {
                return;
            };
            match c.drive(now) {
                Drive::Apply(actions) => {
                    for a in actions {
                        self.apply(key, a, now);
                    }
                }
                Drive::Close => {
                    self.remove_control(key, now);
                    return;
                }
                Drive::Wait => break,
            }
        }
        self.sync_timer(key, now);
    }

    pub(super) fn apply(&mut self, key: usize, action: Action, now: Instant) {
        let config = Arc::clone(&self.config);
        match action {
            Action::CloseData => {
                let committing = self
                    .control_mut(key)
                    .and_then(|c| c.data())
                    .is_some_and(|d| self.data(d).is_some_and(|dc| dc.is_committing()));
                if committing {
                    // ABOR after the client sent the whole upload, while its file is being
                    // completed (an object store's commit): cutting it now would report
                    // an abort for a file that may well be complete. The transfer ends on
                    // its own; its reply and then the ABOR's 226 follow.
                    return;
                }
                let dkey = self.control_mut(key).and_then(|c| c.take_data());
                let bytes = dkey.and_then(|d| self.data_bytes(d));
                if let Some(d) = dkey {
                    self.remove(d);
                }
                if let Some(c) = self.control_mut(key) {
                    c.handle_data_closed(now, bytes);
                }
            }
            // The channel closes itself once the replies are out, and switches TLS itself.
            Action::Close | Action::StartTls | Action::EndTls => {}
            Action::LoginFailed => {
                if let Some(c) = self.control_mut(key) {
                    let ip = c.peer_ip();
                    self.record_failed_login(ip, now);
                }
            }
            Action::Listen { extended } => {
                let Some(c) = self.control_mut(key) else {
                    return;
                };
                let local = c.local_ip();
                let client = c.client_ip();
                let result = local.and_then(|ip| {
                    DataChannel::listen(
                        key,
                        ip,
                        client,
                        config.passive_ports.as_ref(),
                        &config.dtp,
                        now,
                        Arc::clone(&self.stats),
                    )
                });
                let early = self.early_data_tls(key, &config);
                let result = result.and_then(|(mut dc, addr)| {
                    dc.set_early_tls(early);
                    #[cfg(feature = "proxy-protocol")]
                    dc.set_proxy(config.proxy_protocol.clone());
                    self.insert_data(key, dc, now).map(|_| addr)
                });
                if let Some(c) = self.control_mut(key) {
                    c.handle_passive_ready(now, result, extended);
                }
            }
            Action::Connect(addr) => {
                let early = self.early_data_tls(key, &config);
                let stats = Arc::clone(&self.stats);
                let result =
                    DataChannel::connect(key, addr, &config.dtp, now, stats).and_then(|mut dc| {
                        dc.set_early_tls(early);
                        self.insert_data(key, dc, now)
                    });
                match result {
                    Ok(dkey) => self.enqueue(dkey),
                    Err(e) => {
                        self.stats.data_failed(connect_failure(&e));
                        if let Some(c) = self.control_mut(key) {
                            c.handle_data_failed(now, DataFailure::ConnectFailed(e));
                        }
                    }
                }
            }
            Action::Request(req) => self.run_request(key, req, now),
            Action::Transfer(t) => {
                let tls = match (&config.tls, self.control_mut(key)) {
                    (Some(tc), Some(c)) if t.tls => {
                        let sending = matches!(t.direction, Direction::Send(_));
                        c.data_tls(tc, sending)
                    }
                    _ => None,
                };
                if t.tls && tls.is_none() {
                    if let Some(c) = self.control_mut(key) {
                        let e = "TLS is not available for the data connection".to_string();
                        c.handle_transfer_failed(now, TransferError::Tls(e));
                    }
                    return;
                }
                let dkey = self.control_mut(key).and_then(|c| c.data());
                match dkey.and_then(|d| self.data_mut(d).map(|dc| (d, dc))) {
                    Some((d, dc)) => {
                        dc.attach(
                            t,
                            config.dtp.ac_in_buffer_size,
                            config.dtp.ac_out_buffer_size,
                            config.dtp.limits(),
                            now,
                            tls,
                        );
                        self.enqueue(d);
                    }
                    None => {
                        if let Some(c) = self.control_mut(key) {
                            let e =
                                io::Error::new(io::ErrorKind::NotConnected, "no data connection");
                            c.handle_transfer_failed(now, TransferError::Connection(e));
                        }
                    }
                }
            }
        }
    }

    /// The TLS settings a new data connection of session `key` starts with at once, under
    /// PROT P, before the direction is known (see [`DataChannel::set_early_tls`]).
    pub(super) fn early_data_tls(
        &mut self,
        key: usize,
        config: &Config,
    ) -> Option<crate::tls::DataTls> {
        let tc = config.tls.as_ref()?;
        self.control_mut(key)?.early_data_tls(tc)
    }

    pub(super) fn insert_data(
        &mut self,
        owner: usize,
        mut dc: DataChannel,
        now: Instant,
    ) -> io::Result<usize> {
        let (key, token) = self.next_token()?;
        let entry = self.channels.vacant_entry();
        if let Some(reg) = &self.registry {
            dc.register(reg, token)?;
        }
        entry.insert(Entry {
            chan: Channel::Data(Box::new(dc)),
            timer: None,
        });
        // A session has one data channel: one it had before (its listener or connection)
        // is closed here, never left without an owner.
        let old = self.control_mut(owner).and_then(|c| c.take_data());
        if let Some(old) = old {
            self.remove(old);
        }
        if let Some(c) = self.control_mut(owner) {
            c.set_data(Some(key));
        }
        self.sync_timer(key, now);
        Ok(key)
    }

    // ---- flood limits ------------------------------------------------------------------

    /// Counts a failed login from `ip` in the flood table, and keeps the sweep timer no
    /// later than the entry's expiry.
    pub(super) fn record_failed_login(&mut self, ip: IpAddr, now: Instant) {
        let (expiry, banned) = {
            let mut flood = self.shared.flood.lock(&self.stats);
            let was_banned = flood.is_banned(ip, now);
            let expiry = flood.record_failed_login(ip, &self.config.flood, now);
            (expiry, !was_banned && flood.is_banned(ip, now))
        };
        if banned {
            self.stats.login_banned();
        }
        let Some(expiry) = expiry else {
            return;
        };
        let current = self.flood_timer.and_then(|id| self.timers.deadline(id));
        match (self.flood_timer, current) {
            (Some(_), Some(at)) if at <= expiry => {}
            (Some(id), Some(_)) => {
                self.timers.reschedule(id, expiry);
            }
            _ => self.flood_timer = Some(self.timers.call_at(expiry, TimerTarget::FloodSweep)),
        }
    }

    /// Forgets the flood table's expired entries, and sets the sweep timer to the next
    /// expiry.
    pub(super) fn sweep_flood(&mut self, now: Instant) {
        let next = self
            .shared
            .flood
            .lock(&self.stats)
            .sweep(&self.config.flood, now);
        match (self.flood_timer, next) {
            (Some(id), Some(at)) => {
                if !self.timers.reschedule(id, at) {
                    self.flood_timer = Some(self.timers.call_at(at, TimerTarget::FloodSweep));
                }
            }
            (None, Some(at)) => {
                self.flood_timer = Some(self.timers.call_at(at, TimerTarget::FloodSweep))
            }
            (Some(id), None) => {
                self.timers.cancel(id);
                self.flood_timer = None;
            }
            (None, None) => {}
        }
    }
}
