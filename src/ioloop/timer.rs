//! The timer heap: deadlines for the reactor, with lazy cancellation.
//!
//! This is the scheduler behind [`CallLater`](crate::CallLater) and every timeout in the
//! server (control idle, data stall, login delay, throttle wake-ups). Each timer lives in a
//! slot of a [`Slab`]; the binary heap holds `(deadline, slot, stamp)` entries. Cancelling
//! or rescheduling a timer only touches its slot, leaving a stale heap entry behind that is
//! skipped when it reaches the top ("lazy cancel", as pyftpdlib's scheduler does). When more
//! than half of the heap is stale the heap rebuilds itself from the live slots, so a server
//! that resets an idle timer on every command never grows without bound.
//!
//! Time is passed in: nothing here reads the clock, so tests drive it with made-up instants.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

use slab::Slab;

/// Below this many heap entries compaction is not worth its cost.
const COMPACT_MIN: usize = 64;

/// Identifies one scheduled timer. Stays valid until the timer fires (one-shot) or is
/// cancelled; after that every operation on it is a no-op that returns `false`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TimerId {
    key: usize,
    uid: u64,
}

#[derive(Debug)]
struct Slot<T> {
    uid: u64,
    /// Unique per heap push; a heap entry whose stamp differs from its slot's is stale.
    stamp: u64,
    deadline: Instant,
    /// The delay the timer was created with, used by [`TimerHeap::reset`].
    delay: Duration,
    /// `Some` for a repeating timer (CallEvery).
    period: Option<Duration>,
    payload: T,
}

/// What [`TimerHeap::pop_due`] hands back.
#[derive(Debug)]
pub enum Due<T> {
    /// A one-shot timer fired; it is gone from the heap and its payload is yours.
    Once(TimerId, T),
    /// A repeating timer fired and has already been scheduled again; reach its payload
    /// with [`TimerHeap::get_mut`].
    Every(TimerId),
}

/// A min-heap of deadlines with lazy cancellation, reset and repeating timers.
#[derive(Debug)]
pub struct TimerHeap<T> {
    heap: BinaryHeap<Reverse<(Instant, usize, u64)>>,
    slots: Slab<Slot<T>>,
    next_uid: u64,
}

impl<T> Default for TimerHeap<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> TimerHeap<T> {
    /// An empty heap.
    pub fn new() -> Self {
        TimerHeap {
            heap: BinaryHeap::new(),
            slots: Slab::new(),
            next_uid: 1,
        }
    }

    /// Schedules `payload` to fire once at `now + delay`.
    pub fn call_later(&mut self, now: Instant, delay: Duration, payload: T) -> TimerId {
        self.insert(now, delay, None, payload)
    }

    /// Schedules `payload` to fire once at `deadline`.
    pub fn call_at(&mut self, deadline: Instant, payload: T) -> TimerId {
        let id = self.insert(deadline, Duration::ZERO, None, payload);
        if let Some(slot) = self.slot_mut(id) {
            slot.delay = Duration::ZERO;
        }
        id
    }

    /// Schedules `payload` to fire every `period`, first at `now + period`.
    pub fn call_every(&mut self, now: Instant, period: Duration, payload: T) -> TimerId {
        self.insert(now, period, Some(period), payload)
    }

    fn insert(
        &mut self,
        now: Instant,
        delay: Duration,
        period: Option<Duration>,
        payload: T,
    ) -> TimerId {
        let uid = self.fresh();
        let deadline = super::deadline(now, delay);
        let key = self.slots.insert(Slot {
            uid,
            stamp: uid,
            deadline,
            delay,
            period,
            payload,
        });
        self.heap.push(Reverse((deadline, key, uid)));
        TimerId { key, uid }
    }

    fn fresh(&mut self) -> u64 {
        let n = self.next_uid;
        self.next_uid += 1;
        n
    }

    fn slot_mut(&mut self, id: TimerId) -> Option<&mut Slot<T>> {
        self.slots.get_mut(id.key).filter(|s| s.uid == id.uid)
    }

    /// Whether `id` still names a pending timer (pyftpdlib's `not cancelled`).
    pub fn is_pending(&self, id: TimerId) -> bool {
        self.slots.get(id.key).is_some_and(|s| s.uid == id.uid)
    }

    /// The deadline of a pending timer.
    pub fn deadline(&self, id: TimerId) -> Option<Instant> {
        self.slots
            .get(id.key)
            .filter(|s| s.uid == id.uid)
            .map(|s| s.deadline)
    }

    /// Unschedules a timer and returns its payload; `None` when it already fired or was
    /// cancelled. The heap entry is left behind and skipped later.
    pub fn cancel(&mut self, id: TimerId) -> Option<T> {
        if !self.is_pending(id) {
            return None;
        }
        let slot = self.slots.remove(id.key);
        self.maybe_compact();
        Some(slot.payload)
    }

    /// Moves a pending timer to `deadline`. Returns `false` when it is no longer pending.
    pub fn reschedule(&mut self, id: TimerId, deadline: Instant) -> bool {
        let stamp = self.fresh();
        let Some(slot) = self.slot_mut(id) else {
            return false;
        };
        if slot.deadline == deadline {
            return true;
        }
        slot.stamp = stamp;
        slot.deadline = deadline;
        self.heap.push(Reverse((deadline, id.key, stamp)));
        self.maybe_compact();
        true
    }

    /// Restarts the countdown: the timer fires `delay` after `now`, `delay` being the one it
    /// was created with (pyftpdlib's `CallLater.reset()`).
    pub fn reset(&mut self, id: TimerId, now: Instant) -> bool {
        match self.slot_mut(id) {
            Some(slot) => {
                let deadline = super::deadline(now, slot.delay);
                self.reschedule(id, deadline)
            }
            None => false,
        }
    }

    /// Fires the timer `delay` after `now` and remembers `delay` for later resets
    /// (pyftpdlib's `CallLater.delay(seconds)`).
    pub fn delay(&mut self, id: TimerId, now: Instant, delay: Duration) -> bool {
        match self.slot_mut(id) {
            Some(slot) => {
                slot.delay = delay;
                self.reschedule(id, super::deadline(now, delay))
            }
            None => false,
        }
    }

    /// The payload of a pending timer.
    pub fn get_mut(&mut self, id: TimerId) -> Option<&mut T> {
        self.slot_mut(id).map(|s| &mut s.payload)
    }

    /// The earliest deadline of any pending timer.
    pub fn next_deadline(&mut self) -> Option<Instant> {
        self.drop_stale_top();
        self.heap.peek().map(|Reverse((d, _, _))| *d)
    }

    /// Pops one timer whose deadline is at or before `now`. Call it in a loop until `None`.
    pub fn pop_due(&mut self, now: Instant) -> Option<Due<T>> {
        self.drop_stale_top();
        let Reverse((deadline, key, _)) = *self.heap.peek()?;
        if deadline > now {
            return None;
        }
        self.heap.pop();
        let stamp = self.fresh();
        // drop_stale_top left a live entry on top, so the slot exists.
        let slot = self.slots.get_mut(key)?;
        let id = TimerId { key, uid: slot.uid };
        match slot.period {
            Some(period) => {
                // Schedule from the old deadline so a repeating timer does not drift, but
                // never into the past, so a stalled loop does not fire it in a burst.
                let mut next = super::deadline(slot.deadline, period);
                if next <= now {
                    next = super::deadline(now, period);
                }
                slot.stamp = stamp;
                slot.deadline = next;
                self.heap.push(Reverse((next, key, stamp)));
                Some(Due::Every(id))
            }
            None => {
                let slot = self.slots.remove(key);
                Some(Due::Once(id, slot.payload))
            }
        }
    }

    /// Number of pending timers.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether no timer is pending.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Number of entries in the heap, stale ones included (for tests and metrics).
    pub fn heap_len(&self) -> usize {
        self.heap.len()
    }

    /// Drops every timer.
    pub fn clear(&mut self) {
        self.heap.clear();
        self.slots.clear();
    }

    fn is_live(&self, key: usize, stamp: u64) -> bool {
        self.slots.get(key).is_some_and(|s| s.stamp == stamp)
    }

    fn drop_stale_top(&mut self) {
        while let Some(&Reverse((_, key, stamp))) = self.heap.peek() {
            if self.is_live(key, stamp) {
                return;
            }
            self.heap.pop();
        }
    }

    fn maybe_compact(&mut self) {
        let len = self.heap.len();
        if len >= COMPACT_MIN && len > 2 * self.slots.len() {
            self.heap = self
                .slots
                .iter()
                .map(|(key, s)| Reverse((s.deadline, key, s.stamp)))
                .collect();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    fn drain(h: &mut TimerHeap<&'static str>, now: Instant) -> Vec<&'static str> {
        let mut out = Vec::new();
        while let Some(due) = h.pop_due(now) {
            match due {
                Due::Once(_, p) => out.push(p),
                Due::Every(id) => out.push(*h.get_mut(id).unwrap()),
            }
        }
        out
    }

    #[test]
    fn duration_max_delays_never_fire_and_never_overflow() {
        let t0 = Instant::now();
        let far = t0 + crate::ioloop::FAR_FUTURE;
        let mut h = TimerHeap::new();
        let once = h.call_later(t0, Duration::MAX, "once");
        let every = h.call_every(t0, Duration::MAX, "every");
        assert_eq!(h.deadline(once), Some(far));
        assert!(h.reset(every, t0 + secs(1)));
        assert!(h.delay(once, t0 + secs(2), Duration::MAX));
        assert_eq!(h.next_deadline(), Some(far + secs(1)));
        assert!(drain(&mut h, t0 + secs(50 * 365 * 86_400)).is_empty());
        // At the far deadline the repeating one fires and is put off again, without panic.
        assert_eq!(drain(&mut h, far + secs(2)), vec!["every", "once"]);
        assert!(h.deadline(every).is_some_and(|d| d > far));
    }

    #[test]
    fn fires_in_deadline_order() {
        let t0 = Instant::now();
        let mut h = TimerHeap::new();
        h.call_later(t0, secs(3), "c");
        h.call_later(t0, secs(1), "a");
        h.call_later(t0, secs(2), "b");
        assert_eq!(h.next_deadline(), Some(t0 + secs(1)));
        assert!(drain(&mut h, t0).is_empty());
        assert_eq!(drain(&mut h, t0 + secs(2)), vec!["a", "b"]);
        assert_eq!(drain(&mut h, t0 + secs(10)), vec!["c"]);
        assert!(h.is_empty());
        assert_eq!(h.next_deadline(), None);
    }

    #[test]
    fn cancel_is_lazy_and_final() {
        let t0 = Instant::now();
        let mut h = TimerHeap::new();
        let a = h.call_later(t0, secs(1), "a");
        h.call_later(t0, secs(2), "b");
        assert_eq!(h.cancel(a), Some("a"));
        assert!(!h.is_pending(a));
        assert_eq!(h.cancel(a), None);
        assert!(!h.reset(a, t0));
        assert_eq!(h.next_deadline(), Some(t0 + secs(2)));
        assert_eq!(drain(&mut h, t0 + secs(5)), vec!["b"]);
    }

    #[test]
    fn reset_restarts_the_countdown() {
        let t0 = Instant::now();
        let mut h = TimerHeap::new();
        let a = h.call_later(t0, secs(10), "a");
        assert!(h.reset(a, t0 + secs(5)));
        assert_eq!(h.deadline(a), Some(t0 + secs(15)));
        assert!(drain(&mut h, t0 + secs(14)).is_empty());
        assert_eq!(drain(&mut h, t0 + secs(15)), vec!["a"]);
    }

    #[test]
    fn delay_moves_earlier_or_later_and_sticks() {
        let t0 = Instant::now();
        let mut h = TimerHeap::new();
        let a = h.call_later(t0, secs(10), "a");
        assert!(h.delay(a, t0, secs(2)));
        assert_eq!(h.next_deadline(), Some(t0 + secs(2)));
        assert!(h.reset(a, t0 + secs(1)));
        assert_eq!(h.deadline(a), Some(t0 + secs(3)));
        assert_eq!(drain(&mut h, t0 + secs(3)), vec!["a"]);
    }

    #[test]
    fn repeating_timer_fires_again_without_drift() {
        let t0 = Instant::now();
        let mut h = TimerHeap::new();
        let e = h.call_every(t0, secs(1), "tick");
        assert_eq!(drain(&mut h, t0 + secs(1)), vec!["tick"]);
        assert_eq!(h.deadline(e), Some(t0 + secs(2)));
        // A stalled loop fires once, not once per missed period.
        assert_eq!(drain(&mut h, t0 + secs(10)), vec!["tick"]);
        assert_eq!(h.deadline(e), Some(t0 + secs(11)));
        assert_eq!(h.cancel(e), Some("tick"));
        assert!(h.is_empty());
    }

    #[test]
    fn reused_slot_does_not_inherit_old_entries() {
        let t0 = Instant::now();
        let mut h = TimerHeap::new();
        let a = h.call_later(t0, secs(1), "a");
        h.cancel(a);
        let b = h.call_later(t0, secs(5), "b");
        assert_ne!(a, b);
        assert!(!h.is_pending(a));
        assert!(drain(&mut h, t0 + secs(1)).is_empty());
        assert_eq!(drain(&mut h, t0 + secs(5)), vec!["b"]);
    }

    #[test]
    fn heap_compacts_when_mostly_stale() {
        let t0 = Instant::now();
        let mut h = TimerHeap::new();
        let ids: Vec<_> = (0..1000)
            .map(|i| h.call_later(t0, secs(i + 1), "x"))
            .collect();
        for id in &ids[..900] {
            h.cancel(*id);
        }
        assert_eq!(h.len(), 100);
        assert!(
            h.heap_len() <= 2 * h.len(),
            "heap kept {} entries",
            h.heap_len()
        );
        // Resetting one timer many times also stays bounded.
        let keep = ids[999];
        for i in 0..10_000 {
            h.reset(keep, t0 + Duration::from_millis(i));
        }
        assert!(
            h.heap_len() <= 2 * h.len().max(COMPACT_MIN),
            "heap kept {}",
            h.heap_len()
        );
        assert_eq!(drain(&mut h, t0 + secs(5000)).len(), 100);
        assert_eq!(h.heap_len(), 0);
    }
}
