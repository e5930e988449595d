//! The reactor's parts (pyftpdlib's `ioloop.py`): the [`timer`] heap, the [`call`]backs
//! scheduled on it (`CallLater`, `CallEvery`), the [`token`] range, the cross-thread
//! [`waker`], and [`IoLoop`], the `Poll` a server runs on when it is not embedded in another
//! loop.
//!
//! One thread, one `Poll`, a slab of channels and a timer heap: each loop iteration waits
//! for readiness or the next deadline, hands the events to the server, then fires the
//! timers that are due.

pub mod call;
pub mod timer;
pub mod token;
pub mod waker;

use std::io;
use std::time::{Duration, Instant};

use mio::{Events, Poll};

/// How far ahead [`deadline`] puts a deadline whose delay is too long to mean anything:
/// 100 years, "never" for any server.
pub const FAR_FUTURE: Duration = Duration::from_secs(100 * 365 * 86_400);

/// The instant `after` from `now`, the one way the server turns a configured duration into a
/// deadline. It never panics: a delay longer than [`FAR_FUTURE`] (`Duration::MAX`, say) is
/// cut to it, and on a platform whose `Instant` cannot go that far it gives the latest
/// instant it can reach, so such a deadline is, in effect, never.
///
/// ```
/// use std::time::{Duration, Instant};
/// use ftpdlib::ioloop::{deadline, FAR_FUTURE};
///
/// let now = Instant::now();
/// assert_eq!(deadline(now, Duration::from_secs(5)), now + Duration::from_secs(5));
/// assert_eq!(deadline(now, Duration::MAX), now + FAR_FUTURE);
/// ```
pub fn deadline(now: Instant, after: Duration) -> Instant {
    let mut after = after.min(FAR_FUTURE);
    loop {
        if let Some(t) = now.checked_add(after) {
            return t;
        }
        // Halving ends at zero, which any instant can add.
        after /= 2;
    }
}

/// A `Poll` and its event buffer: what `serve_forever` runs on.
#[derive(Debug)]
pub struct IoLoop {
    /// The poll instance.
    pub poll: Poll,
    /// Events of the last wait.
    pub events: Events,
}

impl IoLoop {
    /// A new poll with room for 1024 events per wait.
    pub fn new() -> io::Result<IoLoop> {
        Ok(IoLoop {
            poll: Poll::new()?,
            events: Events::with_capacity(1024),
        })
    }

    /// Waits for events for at most `timeout`; an interrupted wait counts as an empty one.
    pub fn wait(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        match self.poll.poll(&mut self.events, timeout) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                self.events.clear();
                Ok(())
            }
            other => other,
        }
    }
}
