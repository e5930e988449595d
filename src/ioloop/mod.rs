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
use std::time::Duration;

use mio::{Events, Poll};

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
