//! Callbacks on the reactor thread (pyftpdlib's `CallLater` and `CallEvery`): a
//! [`timer`](super::timer) heap whose payloads are closures over the host that runs them.
//!
//! The host, [`FtpServer`](crate::FtpServer), holds a [`Calls`] of itself and hands itself to
//! each callback mutably, so a callback may schedule, cancel or stop anything. To make that
//! possible the callback leaves the queue while it runs ([`Calls::run_next`]); a repeating
//! one goes back afterwards unless it cancelled itself.
//!
//! Time is passed in, except in the [`CallLater`] methods that pyftpdlib's API gives no
//! time argument: they read the clock at that edge.

use std::fmt;
use std::time::{Duration, Instant};

use super::timer::{Due, TimerHeap, TimerId};

/// A callback: runs on the reactor thread with its host borrowed mutably.
pub type Callback<H> = Box<dyn FnMut(&mut H) + Send>;

/// A handle to a scheduled callback ([`FtpServer::call_later`](crate::FtpServer::call_later),
/// [`FtpServer::call_every`](crate::FtpServer::call_every)); pyftpdlib's `CallLater`.
///
/// Its methods take the host the call was scheduled on, the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallLater {
    id: TimerId,
}

impl CallLater {
    /// Whether the call was cancelled or has already run (one-shot).
    pub fn cancelled<H: AsRef<Calls<H>>>(&self, host: &H) -> bool {
        !host.as_ref().is_pending(*self)
    }

    /// Unschedules the call.
    pub fn cancel<H: AsMut<Calls<H>>>(&self, host: &mut H) {
        host.as_mut().cancel(*self);
    }

    /// Restarts the countdown from now with the original delay.
    pub fn reset<H: AsMut<Calls<H>>>(&self, host: &mut H) {
        host.as_mut().reset(*self, Instant::now());
    }

    /// Reschedules the call `delay` from now.
    pub fn delay<H: AsMut<Calls<H>>>(&self, host: &mut H, delay: Duration) {
        host.as_mut().delay(*self, Instant::now(), delay);
    }
}

/// The callbacks scheduled on a host `H`, in deadline order with lazy cancellation.
pub struct Calls<H> {
    /// `None` while a repeating callback runs.
    heap: TimerHeap<Option<Callback<H>>>,
}

impl<H> Default for Calls<H> {
    fn default() -> Self {
        Self::new()
    }
}

impl<H> fmt::Debug for Calls<H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Calls")
            .field("len", &self.heap.len())
            .finish_non_exhaustive()
    }
}

impl<H> Calls<H> {
    /// No callbacks.
    pub fn new() -> Self {
        Calls {
            heap: TimerHeap::new(),
        }
    }

    /// Runs `f` once at `now + delay`.
    pub fn call_later(
        &mut self,
        now: Instant,
        delay: Duration,
        f: impl FnOnce(&mut H) + Send + 'static,
    ) -> CallLater {
        let mut f = Some(f);
        let cb: Callback<H> = Box::new(move |h| {
            if let Some(f) = f.take() {
                f(h);
            }
        });
        CallLater {
            id: self.heap.call_later(now, delay, Some(cb)),
        }
    }

    /// Runs `f` every `period`, first at `now + period`, until cancelled.
    pub fn call_every(
        &mut self,
        now: Instant,
        period: Duration,
        f: impl FnMut(&mut H) + Send + 'static,
    ) -> CallLater {
        CallLater {
            id: self.heap.call_every(now, period, Some(Box::new(f))),
        }
    }

    /// Whether `call` is still scheduled.
    pub fn is_pending(&self, call: CallLater) -> bool {
        self.heap.is_pending(call.id)
    }

    /// Unschedules `call`; false when it already ran or was cancelled.
    pub fn cancel(&mut self, call: CallLater) -> bool {
        self.heap.cancel(call.id).is_some()
    }

    /// Restarts the countdown of `call` from `now` with its delay.
    pub fn reset(&mut self, call: CallLater, now: Instant) -> bool {
        self.heap.reset(call.id, now)
    }

    /// Reschedules `call` at `now + delay`, the delay later resets use.
    pub fn delay(&mut self, call: CallLater, now: Instant, delay: Duration) -> bool {
        self.heap.delay(call.id, now, delay)
    }

    /// The earliest deadline of any callback.
    pub fn next_deadline(&mut self) -> Option<Instant> {
        self.heap.next_deadline()
    }

    /// Callbacks scheduled.
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// Whether no callback is scheduled.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    /// Drops every callback.
    pub fn clear(&mut self) {
        self.heap.clear();
    }

    /// Runs the next callback due at `now`, if any, with `host`, the owner of this queue;
    /// true when one was due. Call it in a loop until false.
    pub fn run_next(host: &mut H, now: Instant) -> bool
    where
        H: AsMut<Calls<H>>,
    {
        match host.as_mut().heap.pop_due(now) {
            None => false,
            Some(Due::Once(_, f)) => {
                if let Some(mut f) = f {
                    f(host);
                }
                true
            }
            Some(Due::Every(id)) => {
                // Out of the queue while it runs, so it can have the host (and the queue).
                let f = host.as_mut().heap.get_mut(id).and_then(Option::take);
                if let Some(mut f) = f {
                    f(host);
                    // Back in its slot, unless it cancelled itself.
                    if let Some(slot) = host.as_mut().heap.get_mut(id) {
                        *slot = Some(f);
                    }
                }
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A host that records what ran.
    #[derive(Default)]
    struct Host {
        calls: Calls<Host>,
        log: Vec<&'static str>,
    }

    impl AsRef<Calls<Host>> for Host {
        fn as_ref(&self) -> &Calls<Host> {
            &self.calls
        }
    }

    impl AsMut<Calls<Host>> for Host {
        fn as_mut(&mut self) -> &mut Calls<Host> {
            &mut self.calls
        }
    }

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    fn run_due(h: &mut Host, now: Instant) {
        while Calls::run_next(h, now) {}
    }

    #[test]
    fn once_runs_once_in_order() {
        let t0 = Instant::now();
        let mut h = Host::default();
        let b = h.calls.call_later(t0, secs(2), |h| h.log.push("b"));
        h.calls.call_later(t0, secs(1), |h| h.log.push("a"));
        run_due(&mut h, t0 + secs(1));
        assert_eq!(h.log, ["a"]);
        assert!(!b.cancelled(&h));
        run_due(&mut h, t0 + secs(10));
        assert_eq!(h.log, ["a", "b"]);
        assert!(b.cancelled(&h), "a one-shot that ran counts as cancelled");
        assert!(h.calls.is_empty());
    }

    #[test]
    fn every_repeats_until_it_cancels_itself() {
        let t0 = Instant::now();
        let mut h = Host::default();
        let mut n = 0;
        let me = std::sync::Arc::new(std::sync::Mutex::new(None::<CallLater>));
        let me2 = std::sync::Arc::clone(&me);
        let call = h.calls.call_every(t0, secs(1), move |h| {
            n += 1;
            h.log.push("tick");
            if n == 3 {
                if let Some(c) = *me2.lock().unwrap() {
                    c.cancel(h);
                }
            }
        });
        *me.lock().unwrap() = Some(call);
        for s in 1..=5 {
            run_due(&mut h, t0 + secs(s));
        }
        assert_eq!(h.log, ["tick"; 3]);
        assert!(call.cancelled(&h));
        assert_eq!(h.calls.len(), 0);
    }

    #[test]
    fn callbacks_schedule_more_callbacks() {
        let t0 = Instant::now();
        let mut h = Host::default();
        h.calls.call_later(t0, secs(1), move |h| {
            h.log.push("first");
            h.calls.call_later(t0, secs(1), |h| h.log.push("second"));
        });
        run_due(&mut h, t0 + secs(1));
        // Scheduled for a time already due: it runs in the same pass.
        assert_eq!(h.log, ["first", "second"]);
    }

    #[test]
    fn reset_and_delay_move_the_deadline() {
        let t0 = Instant::now();
        let mut h = Host::default();
        let c = h.calls.call_later(t0, secs(5), |h| h.log.push("x"));
        assert!(h.calls.reset(c, t0 + secs(3)));
        assert_eq!(h.calls.next_deadline(), Some(t0 + secs(8)));
        assert!(h.calls.delay(c, t0 + secs(3), secs(1)));
        run_due(&mut h, t0 + secs(3));
        assert!(h.log.is_empty());
        run_due(&mut h, t0 + secs(4));
        assert_eq!(h.log, ["x"]);
        assert!(!h.calls.cancel(c));
    }
}
