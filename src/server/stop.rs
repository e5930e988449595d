//! Stopping a server: [`StopHandle`] for other threads and callbacks, and the server's own
//! `close` and `close_all` (pyftpdlib's).
//!
//! The handle raises an atomic stop state (running, close, close all; it only goes up) and
//! wakes the reactor through the server's [`Waker`]; the reactor, woken for whatever reason,
//! looks at the state and applies it.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crate::ioloop::waker::Waker;

use super::{Channel, FtpServer};

const RUNNING: u8 = 0;
pub(super) const CLOSE: u8 = 1;
pub(super) const CLOSE_ALL: u8 = 2;

/// Stops a server from another thread (or from inside a callback).
#[derive(Debug, Clone)]
pub struct StopHandle {
    /// `RUNNING`, `CLOSE` or `CLOSE_ALL`; only ever raised.
    state: Arc<AtomicU8>,
    waker: Waker,
}

impl StopHandle {
    /// The waker the handle signals through (the worker pool wakes the reactor with it too).
    pub(super) fn waker(&self) -> Waker {
        self.waker.clone()
    }

    /// A handle in the running state that wakes the reactor through `waker`.
    pub(super) fn new(waker: Waker) -> StopHandle {
        StopHandle {
            state: Arc::new(AtomicU8::new(RUNNING)),
            waker,
        }
    }

    fn signal(&self, state: u8) {
        // The state first: the reactor may look the moment it is woken.
        self.state.fetch_max(state, Ordering::SeqCst);
        self.waker.wake();
    }

    pub(super) fn state(&self) -> u8 {
        self.state.load(Ordering::SeqCst)
    }

    pub(super) fn raise(&self, state: u8) {
        self.state.fetch_max(state, Ordering::SeqCst);
    }

    /// Stops listening; sessions already connected carry on (pyftpdlib's `close()`).
    pub fn close(&self) {
        self.signal(CLOSE);
    }

    /// Stops listening and drops every session (pyftpdlib's `close_all()`).
    pub fn close_all(&self) {
        self.signal(CLOSE_ALL);
    }
}

impl FtpServer {
    /// Stops listening; connected sessions carry on (pyftpdlib's `close()`).
    pub fn close(&mut self) {
        self.stop.raise(CLOSE);
        self.unregistered.clear();
        let keys: Vec<usize> = self
            .channels
            .iter()
            .filter(|(_, e)| matches!(e.chan, Channel::Listener(_)))
            .map(|(k, _)| k)
            .collect();
        for key in keys {
            self.remove(key);
        }
    }

    /// Stops listening and drops every session, leaving no socket or timer behind
    /// (pyftpdlib's `close_all()`).
    pub fn close_all(&mut self) {
        self.stop.raise(CLOSE_ALL);
        self.close();
        let now = Instant::now();
        let keys: Vec<usize> = self.channels.iter().map(|(k, _)| k).collect();
        for key in keys {
            if matches!(
                self.channels.get(key).map(|e| &e.chan),
                Some(Channel::Control(_))
            ) {
                self.remove_control(key, now);
            }
        }
        let keys: Vec<usize> = self.channels.iter().map(|(k, _)| k).collect();
        for key in keys {
            self.remove(key);
        }
        self.ready.clear();
        self.queued.clear();
        self.timers.clear();
        self.calls.clear();
        // Work already done for channels now gone: drop it, releasing its files.
        if let Some(p) = &self.pool {
            drop(p.drain());
        }
        self.flood_timer = None;
        self.flood.clear();
    }

    pub(super) fn drain_wake(&mut self, now: Instant) {
        // Woken by the stop handle or by the worker pool: look at both.
        self.wake_rx.drain();
        self.apply_stop();
        let done = self
            .pool
            .as_ref()
            .map(crate::pool::WorkerPool::drain)
            .unwrap_or_default();
        for d in done {
            self.complete(d, now);
        }
    }

    pub(super) fn apply_stop(&mut self) {
        match self.stop.state() {
            CLOSE_ALL if !self.channels.is_empty() || self.timer_count() > 0 => self.close_all(),
            CLOSE
                if self
                    .channels
                    .iter()
                    .any(|(_, e)| matches!(e.chan, Channel::Listener(_))) =>
            {
                self.close()
            }
            _ => {}
        }
    }
}
