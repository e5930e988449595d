//! The flood table: failed logins and bans per IP address (pyftpdlib's anti-flood demo,
//! libunftp's failed-logins policy), without sockets or clocks.
//!
//! Sessions report failed logins ([`Action::LoginFailed`](crate::control::session::Action));
//! the server records them here under the client's address. An address that fails
//! [`max_failed_logins`](FloodConfig::max_failed_logins) times within
//! [`failed_login_window`](FloodConfig::failed_login_window) is banned for
//! [`ban_duration`](FloodConfig::ban_duration), and the server answers its connections with
//! 421 until the ban ends. The table holds at most
//! [`max_tracked`](FloodConfig::max_tracked) addresses; when full, the entry nearest its
//! expiry makes room. Each call returns the instant the server should next
//! [`sweep`](FloodTable::sweep) at, which it keeps as one timer on its heap, so an idle
//! server's table empties itself.
//!
//! Time is passed in; the tests drive the table on a made-up clock.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Instant;

use crate::config::FloodConfig;
use crate::logger;

/// What the table knows of one address.
#[derive(Debug, Clone, Copy)]
struct FloodEntry {
    window_start: Instant,
    failures: u32,
    banned_until: Option<Instant>,
}

impl FloodEntry {
    /// When the entry can be forgotten.
    fn expiry(&self, config: &FloodConfig) -> Instant {
        match self.banned_until {
            Some(t) => t,
            None => crate::ioloop::deadline(self.window_start, config.failed_login_window),
        }
    }
}

/// Failed logins and bans per address; at most `config.max_tracked` entries.
#[derive(Debug, Default)]
pub(crate) struct FloodTable {
    entries: HashMap<IpAddr, FloodEntry>,
}

impl FloodTable {
    /// Addresses in the table (counting failed logins or banned).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether `ip` is banned at `now`.
    pub fn is_banned(&self, ip: IpAddr, now: Instant) -> bool {
        self.entries
            .get(&ip.to_canonical())
            .and_then(|e| e.banned_until)
            .is_some_and(|t| t > now)
    }

    /// Counts a failed login from `ip`; bans it once it reaches the configured number
    /// within the window. Returns when the entry of `ip` expires, for the sweep timer:
    /// the server sweeps at that instant or earlier. `None` when flood limits are off.
    pub fn record_failed_login(
        &mut self,
        ip: IpAddr,
        config: &FloodConfig,
        now: Instant,
    ) -> Option<Instant> {
        if config.max_failed_logins == 0 || config.max_tracked == 0 {
            return None;
        }
        let ip = ip.to_canonical();
        if !self.entries.contains_key(&ip) && self.entries.len() >= config.max_tracked {
            self.sweep(config, now);
            if self.entries.len() >= config.max_tracked {
                // Make room with the entry closest to its end: the table stays bounded,
                // and the address that loses its count is the one about to lose it anyway.
                let oldest = self
                    .entries
                    .iter()
                    .min_by_key(|(_, e)| e.expiry(config))
                    .map(|(ip, _)| *ip);
                if let Some(old) = oldest {
                    self.entries.remove(&old);
                }
            }
        }
        let e = self.entries.entry(ip).or_insert(FloodEntry {
            window_start: now,
            failures: 0,
            banned_until: None,
        });
        if e.banned_until.is_some() {
            // Already banned (a session that was in before the ban keeps failing): the ban
            // stands as it is.
            return Some(e.expiry(config));
        }
        if now >= crate::ioloop::deadline(e.window_start, config.failed_login_window) {
            e.window_start = now;
            e.failures = 0;
        }
        e.failures += 1;
        if e.failures >= config.max_failed_logins {
            e.banned_until = Some(crate::ioloop::deadline(now, config.ban_duration));
            log::warn!(
                target: logger::LOG,
                "{ip} banned for {:?} after {} failed logins",
                config.ban_duration,
                e.failures
            );
        }
        Some(e.expiry(config))
    }

    /// Forgets entries whose window and ban are over at `now`; returns the next expiry,
    /// when the server should sweep again (`None` once the table is empty).
    pub fn sweep(&mut self, config: &FloodConfig, now: Instant) -> Option<Instant> {
        self.entries.retain(|_, e| e.expiry(config) > now);
        self.entries.values().map(|e| e.expiry(config)).min()
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;
    use std::time::Duration;

    use super::*;

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    fn ip(n: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(127, 0, 0, n))
    }

    fn config(max_failed_logins: u32, max_tracked: usize) -> FloodConfig {
        FloodConfig {
            max_failed_logins,
            failed_login_window: secs(60),
            ban_duration: secs(300),
            max_tracked,
            ..FloodConfig::default()
        }
    }

    #[test]
    fn bans_after_n_failures_in_the_window() {
        let c = config(3, 100);
        let t0 = Instant::now();
        let mut t = FloodTable::default();
        assert_eq!(t.record_failed_login(ip(1), &c, t0), Some(t0 + secs(60)));
        t.record_failed_login(ip(1), &c, t0 + secs(10));
        assert!(!t.is_banned(ip(1), t0 + secs(10)));
        // The third within the window bans, for ban_duration from that failure.
        let third = t0 + secs(20);
        assert_eq!(
            t.record_failed_login(ip(1), &c, third),
            Some(third + secs(300))
        );
        assert!(t.is_banned(ip(1), third));
        assert!(!t.is_banned(ip(2), third));
        // More failures during the ban do not extend it.
        assert_eq!(
            t.record_failed_login(ip(1), &c, third + secs(100)),
            Some(third + secs(300))
        );
        assert!(t.is_banned(ip(1), third + secs(299)));
        assert!(!t.is_banned(ip(1), third + secs(300)));
    }

    #[test]
    fn duration_max_window_and_ban_do_not_overflow() {
        let c = FloodConfig {
            failed_login_window: Duration::MAX,
            ban_duration: Duration::MAX,
            ..config(2, 100)
        };
        let t0 = Instant::now();
        let far = t0 + crate::ioloop::FAR_FUTURE;
        let mut t = FloodTable::default();
        assert_eq!(t.record_failed_login(ip(1), &c, t0), Some(far));
        assert_eq!(t.record_failed_login(ip(1), &c, t0), Some(far));
        assert!(t.is_banned(ip(1), t0 + secs(10 * 365 * 86_400)));
        assert_eq!(t.sweep(&c, t0 + secs(86_400)), Some(far));
    }

    #[test]
    fn failures_outside_the_window_start_a_new_count() {
        let c = config(2, 100);
        let t0 = Instant::now();
        let mut t = FloodTable::default();
        t.record_failed_login(ip(1), &c, t0);
        // 60 s later the window is over: this one counts as the first again.
        t.record_failed_login(ip(1), &c, t0 + secs(60));
        assert!(!t.is_banned(ip(1), t0 + secs(60)));
        t.record_failed_login(ip(1), &c, t0 + secs(61));
        assert!(t.is_banned(ip(1), t0 + secs(61)));
    }

    #[test]
    fn ipv4_mapped_addresses_count_as_ipv4() {
        let c = config(2, 100);
        let t0 = Instant::now();
        let mut t = FloodTable::default();
        let mapped = IpAddr::V6(Ipv4Addr::new(127, 0, 0, 1).to_ipv6_mapped());
        t.record_failed_login(mapped, &c, t0);
        t.record_failed_login(ip(1), &c, t0);
        assert!(t.is_banned(ip(1), t0));
        assert!(t.is_banned(mapped, t0));
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn sweep_forgets_expired_entries_and_names_the_next_expiry() {
        let c = config(2, 100);
        let t0 = Instant::now();
        let mut t = FloodTable::default();
        t.record_failed_login(ip(1), &c, t0); // window ends at 60 s
        t.record_failed_login(ip(2), &c, t0 + secs(10));
        t.record_failed_login(ip(2), &c, t0 + secs(10)); // banned until 310 s
        assert_eq!(t.sweep(&c, t0 + secs(59)), Some(t0 + secs(60)));
        assert_eq!(t.len(), 2);
        assert_eq!(t.sweep(&c, t0 + secs(60)), Some(t0 + secs(310)));
        assert_eq!(t.len(), 1);
        assert!(t.is_banned(ip(2), t0 + secs(60)));
        assert_eq!(t.sweep(&c, t0 + secs(310)), None);
        assert_eq!(t.len(), 0);
    }

    #[test]
    fn the_table_stays_within_its_cap() {
        let c = config(5, 3);
        let t0 = Instant::now();
        let mut t = FloodTable::default();
        for n in 1..=3 {
            t.record_failed_login(ip(n), &c, t0 + secs(u64::from(n)));
        }
        assert_eq!(t.len(), 3);
        // Full and nothing expired: the entry nearest its expiry (ip 1) makes room.
        t.record_failed_login(ip(4), &c, t0 + secs(10));
        assert_eq!(t.len(), 3);
        t.record_failed_login(ip(1), &c, t0 + secs(11));
        assert_eq!(t.len(), 3);
        // Entries already expired are swept before anyone is evicted.
        t.record_failed_login(ip(5), &c, t0 + secs(63));
        assert_eq!(t.len(), 3, "ip 3 expired and was swept; 4, 1 and 5 remain");
        assert_eq!(t.sweep(&c, t0 + secs(63)), Some(t0 + secs(70)));
    }

    #[test]
    fn off_when_unconfigured() {
        let t0 = Instant::now();
        let mut t = FloodTable::default();
        assert_eq!(t.record_failed_login(ip(1), &config(0, 100), t0), None);
        assert_eq!(t.record_failed_login(ip(1), &config(3, 0), t0), None);
        assert_eq!(t.len(), 0);
    }
}
