//! What a session does against abuse that is not a failed login (the flood table's): a
//! stream of unknown commands or an HTTP request before login (cross-protocol attacks such
//! as ALPACA, Brinkmann et al., USENIX Security 2021) and more commands a second than
//! `FloodConfig::max_commands_per_sec` allows. Each answers 421 and closes the session.

use std::time::Instant;

use super::{command, Auth, Session, Verb};

impl Session {
    /// Whether the cross-protocol checks (`max_unknown_commands_before_login`) apply now:
    /// they are on and nobody has logged in.
    pub(super) fn guards_cross_protocol(&self) -> bool {
        self.config.max_unknown_commands_before_login > 0 && !matches!(self.auth, Auth::LoggedIn(_))
    }

    /// Counts an unknown command or over-long line before login; past
    /// `max_unknown_commands_before_login`, answers 421 and closes the session. The line's
    /// own 500 is already out.
    pub(super) fn count_unknown_before_login(&mut self) {
        if !self.guards_cross_protocol() {
            return;
        }
        self.unknown_before_login = self.unknown_before_login.saturating_add(1);
        if self.unknown_before_login > self.config.max_unknown_commands_before_login {
            self.reply(421, "Too many unknown commands.");
            self.log_reason("closed", "Too many unknown commands before login; closing.");
            self.close();
        }
    }

    /// A line that looks like HTTP before login (a request line such as `GET / HTTP/1.1`,
    /// or a header such as `Host: example.com`) is a browser or proxy talking to the wrong
    /// port, possibly led there by a cross-protocol attack (ALPACA): answers 421 and closes
    /// at once, as vsftpd does, rather than answering the request's lines one by one.
    /// Returns whether it did.
    pub(super) fn http_before_login(&mut self, req: &command::Request) -> bool {
        if !self.guards_cross_protocol() || !command::looks_like_http(req) {
            return false;
        }
        self.take_carried(Verb::Unknown);
        self.reply(421, "HTTP request to an FTP server; closing.");
        self.log_reason("closed", "HTTP request before login; closing.");
        self.close();
        true
    }

    /// Counts a command against `max_commands_per_sec`; past the limit, answers 421 and
    /// closes the session. Returns whether it did.
    pub(super) fn flooding(&mut self, now: Instant) -> bool {
        let max = self.config.flood.max_commands_per_sec;
        if max == 0 {
            return false;
        }
        if now.saturating_duration_since(self.rate_window) >= std::time::Duration::from_secs(1) {
            self.rate_window = now;
            self.rate_count = 0;
        }
        self.rate_count += 1;
        if self.rate_count <= max {
            return false;
        }
        if let Some(stats) = &self.stats {
            stats.command_flood_closed();
        }
        self.reply(421, "Too many commands per second.");
        self.log_reason("closed", "Too many commands per second; closing.");
        self.close();
        true
    }
}
