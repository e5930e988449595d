//! What the reactors of a [`ServerGroup`](super::ServerGroup) share: the connection counts
//! behind `max_cons` and `max_cons_per_ip`, the flood table of failed logins and bans, and
//! the bandwidth buckets of users and of the whole server. A lone [`FtpServer`] has one of
//! its own, so the two shapes run the same code.
//!
//! Each part is a [`Locked`] mutex of its own, taken where its event happens: admission on
//! accept and at a session's end, the flood table on accept and at each login (PASS: is
//! the address banned?) and failed login, the bandwidth pool on the turns of transfers
//! that a user or server limit applies to. No other command takes a lock. Time is passed in, as everywhere in the server. A lock found
//! taken is counted ([`ServerStats::lock_waits`]), which is how the cost of sharing is
//! measured.
//!
//! A mutex poisoned by a reactor that panicked still holds consistent data: every update
//! under these locks is a few counter or map operations that cannot panic half-way, so
//! the other reactors take the data as it is.
//!
//! [`FtpServer`]: super::FtpServer

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard, TryLockError};
use std::time::Instant;

use crate::flood::FloodTable;
use crate::stats::{Refusal, ServerStats};
use crate::throttle::BandwidthPool;

/// A mutex that counts the times a thread found it taken and had to wait.
#[derive(Debug)]
pub(crate) struct Locked<T>(Mutex<T>);

impl<T> Locked<T> {
    pub fn new(value: T) -> Locked<T> {
        Locked(Mutex::new(value))
    }

    /// Takes the lock, counting a wait in `stats` when another thread holds it.
    pub fn lock(&self, stats: &ServerStats) -> MutexGuard<'_, T> {
        match self.0.try_lock() {
            Ok(g) => g,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) => {
                stats.lock_waited();
                self.0.lock().unwrap_or_else(|p| p.into_inner())
            }
        }
    }
}

/// The connections counted against the limits, across every reactor of a group.
#[derive(Debug, Default)]
pub(crate) struct Admission {
    /// Sessions (control connections).
    sessions: usize,
    /// Connections whose PROXY protocol header is still being read.
    #[cfg(feature = "proxy-protocol")]
    headers: usize,
    /// Sessions per client address.
    per_ip: HashMap<IpAddr, usize>,
}

impl Admission {
    /// Counts a session of `ip` if the limits allow it (0 means no limit): `max_cons`
    /// applies to sessions, `max_cons_per_ip` to the sessions of one address.
    pub fn enter(&mut self, ip: IpAddr, max_cons: usize, max_per_ip: usize) -> Result<(), Refusal> {
        if max_cons > 0 && self.sessions >= max_cons {
            return Err(Refusal::MaxCons);
        }
        let n = self.per_ip.get(&ip).copied().unwrap_or(0);
        if max_per_ip > 0 && n >= max_per_ip {
            return Err(Refusal::MaxConsPerIp);
        }
        self.sessions += 1;
        self.per_ip.insert(ip, n + 1);
        Ok(())
    }

    /// Undoes [`enter`](Self::enter) for a session that ended (or never started).
    pub fn leave(&mut self, ip: IpAddr) {
        self.sessions = self.sessions.saturating_sub(1);
        if let Some(n) = self.per_ip.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                self.per_ip.remove(&ip);
            }
        }
    }

    #[cfg(feature = "proxy-protocol")]
    /// Counts a connection whose PROXY header is yet to name its client, if sessions and
    /// other such connections together stay under `max_cons`.
    pub fn enter_header(&mut self, max_cons: usize) -> Result<(), Refusal> {
        if max_cons > 0 && self.sessions + self.headers >= max_cons {
            return Err(Refusal::MaxCons);
        }
        self.headers += 1;
        Ok(())
    }

    #[cfg(feature = "proxy-protocol")]
    /// Undoes [`enter_header`](Self::enter_header): the header was read, or never will be.
    pub fn leave_header(&mut self) {
        self.headers = self.headers.saturating_sub(1);
    }

    /// Sessions counted now, across the group.
    #[cfg(test)]
    pub fn sessions(&self) -> usize {
        self.sessions
    }
}

/// The state the reactors of a group share (one per lone server).
#[derive(Debug)]
pub(crate) struct Shared {
    pub admission: Locked<Admission>,
    /// Failed logins and bans per address ([`flood`](crate::flood)).
    pub flood: Locked<FloodTable>,
    /// The user and server buckets and the transfers sharing them.
    pub bandwidth: Locked<BandwidthPool>,
}

impl Shared {
    pub fn new(bandwidth: BandwidthPool) -> Shared {
        Shared {
            admission: Locked::new(Admission::default()),
            flood: Locked::new(FloodTable::default()),
            bandwidth: Locked::new(bandwidth),
        }
    }

    /// Whether `ip` is banned at `now`.
    pub fn is_banned(&self, ip: IpAddr, now: Instant, stats: &ServerStats) -> bool {
        self.flood.lock(stats).is_banned(ip, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn admission_counts_sessions_and_addresses() {
        let mut a = Admission::default();
        let (x, y) = (ip("10.0.0.1"), ip("10.0.0.2"));
        assert_eq!(a.enter(x, 3, 2), Ok(()));
        assert_eq!(a.enter(x, 3, 2), Ok(()));
        assert_eq!(a.enter(x, 3, 2), Err(Refusal::MaxConsPerIp));
        assert_eq!(a.enter(y, 3, 2), Ok(()));
        assert_eq!(a.enter(y, 3, 2), Err(Refusal::MaxCons));
        a.leave(x);
        a.leave(x);
        assert!(
            !a.per_ip.contains_key(&x),
            "an address with no session is forgotten"
        );
        assert_eq!(a.sessions(), 1);
        // No limits: everything enters.
        for _ in 0..10 {
            assert_eq!(a.enter(x, 0, 0), Ok(()));
        }
    }

    #[test]
    #[cfg(feature = "proxy-protocol")]
    fn headers_count_against_max_cons_until_named() {
        let mut a = Admission::default();
        assert_eq!(a.enter_header(2), Ok(()));
        assert_eq!(a.enter(ip("10.0.0.1"), 2, 0), Ok(()));
        assert_eq!(a.enter_header(2), Err(Refusal::MaxCons));
        a.leave_header();
        assert_eq!(a.enter_header(2), Ok(()));
    }

    #[test]
    fn a_lock_held_elsewhere_counts_a_wait() {
        let stats = std::sync::Arc::new(ServerStats::new());
        let l = std::sync::Arc::new(Locked::new(0u32));
        let g = l.lock(&stats);
        assert_eq!(stats.lock_waits(), 0);
        let (l2, s2) = (std::sync::Arc::clone(&l), std::sync::Arc::clone(&stats));
        let t = std::thread::spawn(move || *l2.lock(&s2) += 1);
        // Bounded: the other thread counts its wait before blocking.
        let start = Instant::now();
        while stats.lock_waits() == 0 && start.elapsed() < std::time::Duration::from_secs(10) {
            std::thread::yield_now();
        }
        drop(g);
        t.join().unwrap();
        assert_eq!(stats.lock_waits(), 1);
        assert_eq!(*l.lock(&stats), 1);
    }
}
