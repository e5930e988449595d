//! Token buckets for bandwidth limits (pyftpdlib's `ThrottledDTPHandler`), without sockets
//! or clocks: the server asks how many bytes a channel may move now, reports what it
//! moved, and asks when to wake a channel that has spent its allowance.
//!
//! A bucket fills at `rate` bytes per second up to a small burst: a tenth of a second's
//! worth, but at least [`MIN_BURST`] so slow limits do not wake the reactor for every few
//! hundred bytes. The burst bounds how far a transfer can run ahead of its limit, which is
//! what keeps the rate of a transfer of a couple of seconds within a few percent.
//!
//! `BandwidthPool` holds the buckets several transfers draw on, the user and server ones,
//! and shares them fairly: a bucket shared by `n` transfers gives each `rate / n` (see
//! `BandwidthPool::allowance` and `docs/throttling.md`).
//!
//! Time is passed in; the tests drive the buckets on a made-up clock.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Smallest burst of a bucket, in bytes.
pub const MIN_BURST: u64 = 8192;

/// One token bucket: `rate` bytes per second, at most [`burst`](Throttle::burst) at once.
#[derive(Debug, Clone)]
pub struct Throttle {
    rate: u64,
    burst: u64,
    /// Whole bytes available at `last`.
    tokens: u64,
    /// Fraction of a byte earned but not yet whole, in units of 1/`rate` of a byte: keeps
    /// slow rates from losing bytes to rounding at every refill.
    remainder_ns: u128,
    last: Instant,
}

impl Throttle {
    /// A bucket that starts full at `now`. `rate` must be above zero (0 means "no limit"
    /// to the callers, which then make no bucket).
    pub fn new(rate: u64, now: Instant) -> Throttle {
        let rate = rate.max(1);
        let burst = (rate / 10).max(MIN_BURST);
        Throttle {
            rate,
            burst,
            tokens: burst,
            remainder_ns: 0,
            last: now,
        }
    }

    /// A bucket that starts empty at `now`: a new transfer earns its first bytes rather than
    /// starting with a burst, so its measured rate matches the limit from the first byte.
    pub fn new_empty(rate: u64, now: Instant) -> Throttle {
        let mut t = Throttle::new(rate, now);
        t.tokens = 0;
        t
    }

    /// The rate in bytes per second.
    pub fn rate(&self) -> u64 {
        self.rate
    }

    /// The most bytes the bucket holds at once.
    pub fn burst(&self) -> u64 {
        self.burst
    }

    fn refill(&mut self, now: Instant) {
        let Some(elapsed) = now.checked_duration_since(self.last) else {
            return;
        };
        self.last = now;
        if self.tokens >= self.burst {
            self.remainder_ns = 0;
            return;
        }
        // bytes = elapsed * rate, kept exact in nanosecond-bytes.
        let earned = elapsed.as_nanos() * u128::from(self.rate) + self.remainder_ns;
        let whole = earned / 1_000_000_000;
        self.remainder_ns = earned % 1_000_000_000;
        let tokens = u128::from(self.tokens) + whole;
        if tokens >= u128::from(self.burst) {
            self.tokens = self.burst;
            self.remainder_ns = 0;
        } else {
            // Below `burst`, which is a u64.
            self.tokens = tokens as u64;
        }
    }

    /// Bytes that may move at `now`.
    pub fn allowance(&mut self, now: Instant) -> u64 {
        self.refill(now);
        self.tokens
    }

    /// Takes `n` bytes out of the bucket (never below empty).
    pub fn consume(&mut self, now: Instant, n: u64) {
        self.refill(now);
        self.tokens = self.tokens.saturating_sub(n);
    }

    /// How long the bucket takes to earn `bytes`.
    pub fn time_for(&self, bytes: u64) -> Duration {
        let nanos = (u128::from(bytes) * 1_000_000_000).div_ceil(u128::from(self.rate));
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }

    /// When the bucket will hold `want` bytes (capped at half the burst, so that a timer
    /// firing a little late still finds room to earn in); `None` when it already does.
    pub fn next_refill(&mut self, now: Instant, want: u64) -> Option<Instant> {
        self.refill(now);
        let want = want.clamp(1, (self.burst / 2).max(1));
        if self.tokens >= want {
            return None;
        }
        let missing = u128::from(want - self.tokens) * 1_000_000_000;
        let missing = missing.saturating_sub(self.remainder_ns);
        // Round up so the bucket really holds `want` at the returned instant.
        let nanos = missing.div_ceil(u128::from(self.rate));
        let nanos = u64::try_from(nanos).unwrap_or(u64::MAX);
        Some(crate::ioloop::deadline(now, Duration::from_nanos(nanos)))
    }
}

/// Which way bytes move on a data channel, as the limits see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Way {
    /// The server reads: uploads (STOR, APPE, STOU); `read_limit` applies.
    Read,
    /// The server writes: downloads and listings; `write_limit` applies.
    Write,
}

/// A read limit and a write limit, in bytes per second, 0 meaning none.
///
/// # Examples
/// ```
/// use ftpdlib::Limits;
/// let up_slow = Limits::new(64 * 1024, 0);
/// assert_eq!(Limits::default().with_read_limit(64 * 1024), up_slow);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// Most bytes per second the server reads (uploads).
    pub read_limit: u64,
    /// Most bytes per second the server writes (downloads and listings).
    pub write_limit: u64,
}

impl Limits {
    /// Limits of `read_limit` bytes per second read (uploads) and `write_limit` written
    /// (downloads and listings); 0 for none.
    pub const fn new(read_limit: u64, write_limit: u64) -> Limits {
        Limits {
            read_limit,
            write_limit,
        }
    }

    /// The limit for one direction, 0 for none.
    pub fn get(&self, way: Way) -> u64 {
        match way {
            Way::Read => self.read_limit,
            Way::Write => self.write_limit,
        }
    }

    /// Whether neither direction is limited.
    pub fn is_none(&self) -> bool {
        self.read_limit == 0 && self.write_limit == 0
    }
}

with_setters!(Limits {
    with_read_limit => read_limit: u64,
    with_write_limit => write_limit: u64,
});

/// A pair of buckets, one per direction, for limits shared by several channels.
#[derive(Debug, Clone)]
pub struct Buckets {
    read: Option<Throttle>,
    write: Option<Throttle>,
}

impl Buckets {
    /// Full buckets for `limits` (none for a direction without a limit).
    pub fn new(limits: Limits, now: Instant) -> Buckets {
        let make = |rate: u64| (rate > 0).then(|| Throttle::new(rate, now));
        Buckets {
            read: make(limits.read_limit),
            write: make(limits.write_limit),
        }
    }

    /// Empty buckets for `limits`, for a channel starting a transfer.
    pub fn new_empty(limits: Limits, now: Instant) -> Buckets {
        let make = |rate: u64| (rate > 0).then(|| Throttle::new_empty(rate, now));
        Buckets {
            read: make(limits.read_limit),
            write: make(limits.write_limit),
        }
    }

    /// The bucket for one direction, if that direction is limited.
    pub fn get_mut(&mut self, way: Way) -> Option<&mut Throttle> {
        match way {
            Way::Read => self.read.as_mut(),
            Way::Write => self.write.as_mut(),
        }
    }
}

/// Index of a direction in the per-direction counts.
fn way_index(way: Way) -> usize {
    match way {
        Way::Read => 0,
        Way::Write => 1,
    }
}

/// The direction and limited user under which a data channel is counted among the
/// transfers sharing a [`BandwidthPool`]'s buckets. The channel keeps it from
/// [`join`](BandwidthPool::join) to [`leave`](BandwidthPool::leave).
#[derive(Debug)]
pub(crate) struct Share {
    way: Way,
    user: Option<String>,
}

/// What a throttled data channel may do this turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Allowance {
    /// Bytes it may move.
    pub budget: u64,
    /// The budget is a share of a bucket other transfers draw on too.
    pub shared_cap: bool,
    /// When to wake it if `budget` is 0.
    pub wake: Instant,
    /// When its next share is due, if `shared_cap`.
    pub turn_end: Instant,
}

/// The buckets transfers share: the whole server's (`config.max_rate`) and one pair per
/// user named in `config.user_limits`, with how many transfers draw on each, per direction.
///
/// A transfer's own bucket (`config.dtp` limits) stays with its data channel and comes in
/// as the `own` argument; the pool applies it alongside its own buckets.
#[derive(Debug)]
pub(crate) struct BandwidthPool {
    /// The whole server's buckets, made from `config.max_rate`.
    server: Buckets,
    /// The per-user limits (`config.user_limits`).
    user_limits: HashMap<String, Limits>,
    /// Buckets of the users named in `user_limits`, made on first use; bounded by the size
    /// of that map.
    users: HashMap<String, Buckets>,
    /// Transfers drawing on the server's buckets, per direction ([`way_index`]).
    server_sharers: [usize; 2],
    /// Transfers drawing on each limited user's buckets, per direction.
    user_sharers: HashMap<String, [usize; 2]>,
}

impl BandwidthPool {
    /// A pool with full buckets for `max_rate` and, on first use, for each user of
    /// `user_limits`.
    pub fn new(max_rate: Limits, user_limits: HashMap<String, Limits>, now: Instant) -> Self {
        BandwidthPool {
            server: Buckets::new(max_rate, now),
            user_limits,
            users: HashMap::new(),
            server_sharers: [0; 2],
            user_sharers: HashMap::new(),
        }
    }

    /// New limits, applying at once to every transfer: the buckets are made anew (full);
    /// the transfers sharing them stay counted.
    pub fn set_limits(
        &mut self,
        max_rate: Limits,
        user_limits: HashMap<String, Limits>,
        now: Instant,
    ) {
        self.server = Buckets::new(max_rate, now);
        self.user_limits = user_limits;
        self.users.clear();
    }

    /// Counts a transfer in direction `way`, of `user` when that user is limited, among the
    /// transfers sharing the user and server buckets. `None`, counting nothing, when
    /// neither bucket applies.
    pub fn join(&mut self, way: Way, user: Option<&str>) -> Option<Share> {
        if user.is_none() && self.server.get_mut(way).is_none() {
            return None;
        }
        let w = way_index(way);
        self.server_sharers[w] += 1;
        if let Some(u) = user {
            self.user_sharers.entry(u.to_string()).or_default()[w] += 1;
        }
        Some(Share {
            way,
            user: user.map(str::to_string),
        })
    }

    /// Undoes [`join`](Self::join) for a transfer that ended.
    pub fn leave(&mut self, share: Share) {
        let w = way_index(share.way);
        self.server_sharers[w] = self.server_sharers[w].saturating_sub(1);
        if let Some(u) = share.user {
            if let Some(c) = self.user_sharers.get_mut(&u) {
                c[w] = c[w].saturating_sub(1);
                if *c == [0, 0] {
                    self.user_sharers.remove(&u);
                }
            }
        }
    }

    /// Calls `f` on every bucket that limits a transfer in direction `way`: its `own`, its
    /// user's (`user`, when limited) and the server's, with the number of transfers that
    /// share the bucket.
    fn for_each(
        &mut self,
        own: Option<&mut Throttle>,
        way: Way,
        user: Option<&str>,
        now: Instant,
        mut f: impl FnMut(&mut Throttle, u64),
    ) {
        let w = way_index(way);
        if let Some(t) = own {
            f(t, 1);
        }
        if let Some(u) = user {
            if let Some(limits) = self.user_limits.get(u) {
                let n = self.user_sharers.get(u).map_or(1, |c| c[w].max(1));
                let b = match self.users.get_mut(u) {
                    Some(b) => b,
                    None => self
                        .users
                        .entry(u.to_string())
                        .or_insert_with(|| Buckets::new(*limits, now)),
                };
                if let Some(t) = b.get_mut(way) {
                    f(t, n as u64);
                }
            }
        }
        let n = self.server_sharers[way_index(way)].max(1);
        if let Some(t) = self.server.get_mut(way) {
            f(t, n as u64);
        }
    }

    /// What a transfer in direction `way` may move this turn, with its `own` bucket and
    /// `user` (when limited); `remaining` is what it still has to send, when known. `None`
    /// when no limit applies.
    ///
    /// A bucket shared by `n` transfers gives each at most its quantum, `1/n` of half a
    /// burst, and then makes it wait half a burst's time before its next turn: each gets
    /// `rate / n` and together they get the rate. Letting a transfer also take what the
    /// others left unused looked kinder but was not fair: whoever woke first to a full
    /// bucket took all but one quantum, and kept winning that race (measured 2:1 between
    /// two equal downloads). The cost is that a slow client's unused share is not handed
    /// to the others.
    pub fn allowance(
        &mut self,
        mut own: Option<&mut Throttle>,
        way: Way,
        user: Option<&str>,
        remaining: Option<u64>,
        now: Instant,
    ) -> Option<Allowance> {
        let mut a = Allowance {
            budget: u64::MAX,
            shared_cap: false,
            wake: now,
            turn_end: now,
        };
        let mut want = u64::MAX;
        let mut limited = false;
        self.for_each(own.as_deref_mut(), way, user, now, |t, n| {
            limited = true;
            let avail = t.allowance(now);
            let quantum = (t.burst() / 2 / n).max(1);
            let take = if n > 1 { avail.min(quantum) } else { avail };
            if take < a.budget {
                a.budget = take;
            }
            if n > 1 {
                // A transfer that took its quantum waits for the others to take theirs.
                a.shared_cap = true;
                a.turn_end = a
                    .turn_end
                    .max(crate::ioloop::deadline(now, t.time_for(t.burst() / 2)));
            }
            want = want.min(quantum);
        });
        if !limited {
            return None;
        }
        if a.budget == 0 {
            // Wake for the smallest quantum of the buckets (the tightest one decides, the
            // others are there by then or soon after), or for what is left of the
            // transfer when that is less, so the last bytes of a download do not wait a
            // whole period.
            if let Some(left) = remaining {
                want = want.min(left.max(1));
            }
            let mut wake = now;
            self.for_each(own, way, user, now, |t, _| {
                if let Some(at) = t.next_refill(now, want) {
                    wake = wake.max(at);
                }
            });
            a.wake = wake;
        }
        Some(a)
    }

    /// Takes `moved` bytes out of every bucket that applied to the transfer.
    pub fn consume(
        &mut self,
        own: Option<&mut Throttle>,
        way: Way,
        user: Option<&str>,
        moved: u64,
        now: Instant,
    ) {
        self.for_each(own, way, user, now, |t, _| t.consume(now, moved));
    }
}

/// Parses a rate in bytes per second as the command line takes it: a whole number with an
/// optional binary suffix, `K` (KiB), `M` (MiB) or `G` (GiB), upper or lower case, `0`
/// for no limit. `64K` is 65536, `10M` is 10485760.
///
/// # Errors
/// A message naming the bad value.
///
/// # Examples
/// ```
/// assert_eq!(ftpdlib::throttle::parse_rate("64K"), Ok(65536));
/// assert_eq!(ftpdlib::throttle::parse_rate("1000"), Ok(1000));
/// assert!(ftpdlib::throttle::parse_rate("fast").is_err());
/// ```
pub fn parse_rate(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let (digits, shift) = match t.char_indices().last() {
        Some((i, 'k' | 'K')) => (&t[..i], 10),
        Some((i, 'm' | 'M')) => (&t[..i], 20),
        Some((i, 'g' | 'G')) => (&t[..i], 30),
        _ => (t, 0),
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(1u64 << shift))
        .ok_or_else(|| format!("invalid rate {text:?} (bytes per second, e.g. 65536, 64K, 10M)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn starts_full_with_a_tenth_of_a_second() {
        let t0 = Instant::now();
        let mut t = Throttle::new(1_000_000, t0);
        assert_eq!(t.burst(), 100_000);
        assert_eq!(t.allowance(t0), 100_000);
        t.consume(t0, 100_000);
        assert_eq!(t.allowance(t0), 0);
        assert_eq!(t.allowance(t0 + ms(10)), 10_000);
        // Never above the burst, however long it waits.
        assert_eq!(t.allowance(t0 + Duration::from_secs(60)), 100_000);
    }

    #[test]
    fn slow_rates_get_the_minimum_burst_and_keep_fractions() {
        let t0 = Instant::now();
        let mut t = Throttle::new_empty(3, t0);
        assert_eq!(t.burst(), MIN_BURST);
        assert_eq!(t.allowance(t0), 0);
        // 3 bytes per second, asked every 100 ms: the thirds add up instead of rounding away.
        let mut now = t0;
        for _ in 0..10 {
            now += ms(100);
            t.allowance(now);
        }
        assert_eq!(t.allowance(now), 3);
    }

    #[test]
    fn next_refill_is_when_the_bytes_are_there() {
        let t0 = Instant::now();
        let mut t = Throttle::new_empty(64 * 1024, t0);
        let at = t.next_refill(t0, 4096).unwrap();
        assert_eq!(at - t0, Duration::from_nanos(62_500_000));
        assert_eq!(t.allowance(at), 4096);
        assert_eq!(t.next_refill(at, 4096), None);
        // Asking for more than half the burst waits for half the burst only.
        t.consume(at, 4096);
        let at2 = t.next_refill(at, 1 << 30).unwrap();
        assert_eq!(t.allowance(at2), t.burst() / 2);
        assert_eq!(t.time_for(65536), Duration::from_secs(1));
    }

    #[test]
    fn long_run_rate_is_exact() {
        // Drive a bucket the way the server does: take everything, sleep until half a
        // burst is there, wake a little late; the bytes over 10 s match the rate.
        for rate in [10_240u64, 65_536, 1 << 20, 100 << 20] {
            let t0 = Instant::now();
            let mut t = Throttle::new_empty(rate, t0);
            let mut now = t0;
            let mut moved = 0u64;
            let mut last = t0;
            let end = t0 + Duration::from_secs(10);
            while now < end {
                let n = t.allowance(now);
                t.consume(now, n);
                moved += n;
                last = now;
                now = t.next_refill(now, u64::MAX).unwrap() + Duration::from_micros(700);
            }
            let want = (last - t0).as_secs_f64() * rate as f64;
            let err = (moved as f64 - want).abs() / want;
            assert!(err < 0.001, "rate {rate}: moved {moved}, want {want}");
        }
    }

    #[test]
    fn clock_going_backwards_changes_nothing() {
        let t0 = Instant::now() + Duration::from_secs(1);
        let mut t = Throttle::new_empty(1000, t0);
        assert_eq!(t.allowance(t0 - ms(500)), 0);
        assert_eq!(t.allowance(t0 + ms(500)), 500);
    }

    #[test]
    fn rates_parse_with_suffixes() {
        assert_eq!(parse_rate("0"), Ok(0));
        assert_eq!(parse_rate("10m"), Ok(10 << 20));
        assert_eq!(parse_rate("2G"), Ok(2 << 30));
        assert!(parse_rate("").is_err());
        assert!(parse_rate("K").is_err());
        assert!(parse_rate("-5").is_err());
        assert!(parse_rate("99999999999999999999G").is_err());
    }

    #[test]
    fn limits_pick_the_direction() {
        let l = Limits {
            read_limit: 5,
            write_limit: 0,
        };
        assert_eq!(l.get(Way::Read), 5);
        assert_eq!(l.get(Way::Write), 0);
        let mut b = Buckets::new(l, Instant::now());
        assert!(b.get_mut(Way::Read).is_some());
        assert!(b.get_mut(Way::Write).is_none());
        assert!(Limits::default().is_none());
    }

    // Tests for the bandwidth pool.

    fn pool(server_write: u64, users: &[(&str, u64)], now: Instant) -> BandwidthPool {
        let limits = |w| Limits {
            read_limit: 0,
            write_limit: w,
        };
        let users = users
            .iter()
            .map(|(u, w)| (u.to_string(), limits(*w)))
            .collect();
        BandwidthPool::new(limits(server_write), users, now)
    }

    /// Drives `n` downloads of `user` under `p` for `secs` seconds the way the server does
    /// (take the budget, sleep until the turn ends or the wake-up), each woken exactly on
    /// time; returns the bytes each moved.
    fn share_out(p: &mut BandwidthPool, user: Option<&str>, n: usize, secs: u64) -> Vec<u64> {
        let t0 = Instant::now();
        let end = t0 + Duration::from_secs(secs);
        let shares: Vec<Share> = (0..n).map(|_| p.join(Way::Write, user).unwrap()).collect();
        let mut next = vec![t0; n];
        let mut moved = vec![0u64; n];
        loop {
            let (i, &now) = next.iter().enumerate().min_by_key(|(_, t)| **t).unwrap();
            if now >= end {
                break;
            }
            let a = p.allowance(None, Way::Write, user, None, now).unwrap();
            if a.budget == 0 {
                assert!(a.wake > now, "a paused transfer wakes later");
                next[i] = a.wake;
                continue;
            }
            p.consume(None, Way::Write, user, a.budget, now);
            moved[i] += a.budget;
            assert!(a.shared_cap == (n > 1));
            next[i] = if a.shared_cap { a.turn_end } else { now };
            if !a.shared_cap {
                // Alone it takes everything and then waits for the refill.
                let b = p.allowance(None, Way::Write, user, None, now).unwrap();
                assert_eq!(b.budget, 0);
                next[i] = b.wake;
            }
        }
        for s in shares {
            p.leave(s);
        }
        moved
    }

    #[test]
    fn sharers_each_get_their_fraction_of_the_server_rate() {
        let rate = 1 << 20;
        for n in [1usize, 2, 3, 4] {
            let mut p = pool(rate, &[], Instant::now());
            let moved = share_out(&mut p, None, n, 10);
            let want = rate as f64 * 10.0 / n as f64;
            for (i, m) in moved.iter().enumerate() {
                let err = (*m as f64 - want).abs() / want;
                // One burst (0.1 s of the rate) of head start over 10 s at most.
                assert!(err < 0.02, "{n} sharers, #{i}: {m} bytes, want {want}");
            }
            assert_eq!(p.server_sharers, [0, 0], "left again");
        }
    }

    #[test]
    fn sharers_of_one_user_split_the_user_rate() {
        let rate = 256 * 1024;
        let mut p = pool(0, &[("alice", rate)], Instant::now());
        let moved = share_out(&mut p, Some("alice"), 2, 10);
        for m in &moved {
            let want = rate as f64 * 5.0;
            assert!((*m as f64 - want).abs() / want < 0.02, "{moved:?}");
        }
        assert!(
            p.user_sharers.is_empty(),
            "the user's count goes with its last sharer"
        );
    }

    #[test]
    fn the_tightest_of_own_user_and_server_buckets_wins() {
        let t0 = Instant::now();
        // Server 1 MB/s (burst 100000), alice 100 kB/s (burst 10000), bob unlimited.
        let mut p = pool(1_000_000, &[("alice", 100_000)], t0);
        assert!(p.user_limits.contains_key("alice") && !p.user_limits.contains_key("bob"));
        let a = p.join(Way::Write, Some("alice")).unwrap();
        let alice = p
            .allowance(None, Way::Write, Some("alice"), None, t0)
            .unwrap();
        assert_eq!(alice.budget, 10_000);
        assert!(
            !alice.shared_cap,
            "one sharer alone is not capped to a quantum"
        );
        p.leave(a);
        let bob = p.allowance(None, Way::Write, None, None, t0).unwrap();
        assert_eq!(bob.budget, 100_000);
        // A transfer's own bucket starts empty, so it decides first.
        let mut own = Throttle::new_empty(64 * 1024, t0);
        let mine = p
            .allowance(Some(&mut own), Way::Write, None, None, t0)
            .unwrap();
        assert_eq!(mine.budget, 0);
        // Uploads are not limited here at all.
        assert_eq!(p.allowance(None, Way::Read, None, None, t0), None);
        assert!(p.join(Way::Read, None).is_none());
    }

    #[test]
    fn consume_takes_from_every_bucket_that_applied() {
        let t0 = Instant::now();
        let mut p = pool(1_000_000, &[("alice", 1_000_000)], t0);
        let mut own = Throttle::new(1_000_000, t0);
        p.consume(Some(&mut own), Way::Write, Some("alice"), 60_000, t0);
        assert_eq!(own.allowance(t0), 40_000);
        let left = p
            .allowance(None, Way::Write, Some("alice"), None, t0)
            .unwrap();
        assert_eq!(left.budget, 40_000);
        // Bob shares only the server's bucket.
        let bob = p.allowance(None, Way::Write, None, None, t0).unwrap();
        assert_eq!(bob.budget, 40_000);
    }

    #[test]
    fn a_paused_transfer_wakes_for_a_quantum_or_what_is_left() {
        let t0 = Instant::now();
        let mut p = pool(0, &[], t0);
        // 64 KiB/s: burst 8192, quantum 4096, which takes 62.5 ms to earn.
        let mut own = Throttle::new_empty(64 * 1024, t0);
        let a = p
            .allowance(Some(&mut own), Way::Write, None, None, t0)
            .unwrap();
        assert_eq!(a.budget, 0);
        assert_eq!(a.wake, t0 + Duration::from_nanos(62_500_000));
        // The last 100 bytes of a download do not wait for a whole quantum.
        let a = p
            .allowance(Some(&mut own), Way::Write, None, Some(100), t0)
            .unwrap();
        assert_eq!(a.wake, t0 + Duration::from_nanos(1_525_879));
        // At the wake-up the bytes are there.
        let b = p
            .allowance(Some(&mut own), Way::Write, None, Some(100), a.wake)
            .unwrap();
        assert!(b.budget >= 100);
    }

    #[test]
    fn new_limits_refill_the_buckets_and_keep_the_sharers() {
        let t0 = Instant::now();
        let mut p = pool(1_000_000, &[], t0);
        let s = p.join(Way::Write, None).unwrap();
        p.consume(None, Way::Write, None, 100_000, t0);
        assert_eq!(
            p.allowance(None, Way::Write, None, None, t0)
                .unwrap()
                .budget,
            0
        );
        p.set_limits(
            Limits {
                read_limit: 0,
                write_limit: 2_000_000,
            },
            HashMap::new(),
            t0,
        );
        assert_eq!(p.server_sharers, [0, 1]);
        assert_eq!(
            p.allowance(None, Way::Write, None, None, t0)
                .unwrap()
                .budget,
            200_000
        );
        p.leave(s);
        assert_eq!(p.server_sharers, [0, 0]);
    }
}
