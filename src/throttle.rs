//! Token buckets for bandwidth limits (pyftpdlib's `ThrottledDTPHandler`), without sockets
//! or clocks: the server asks how many bytes a channel may move now, reports what it
//! moved, and asks when to wake a channel that has spent its allowance.
//!
//! A bucket fills at `rate` bytes per second up to a small burst: a tenth of a second's
//! worth, but at least [`MIN_BURST`] so slow limits do not wake the reactor for every few
//! hundred bytes. The burst bounds how far a transfer can run ahead of its limit, which is
//! what keeps the rate of a transfer of a couple of seconds within a few percent.
//!
//! Time is passed in; the tests drive the buckets on a made-up clock.

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
        Some(now + Duration::from_nanos(nanos))
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
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    /// Most bytes per second the server reads (uploads).
    pub read_limit: u64,
    /// Most bytes per second the server writes (downloads and listings).
    pub write_limit: u64,
}

impl Limits {
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
}
