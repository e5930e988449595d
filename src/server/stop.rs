//! Stopping a server: [`StopHandle`] for other threads and callbacks, and the server's own
//! `close` and `close_all` (pyftpdlib's).
//!
//! The handle raises an atomic stop state (running, close, close all; it only goes up) and
//! wakes the reactor through the server's [`Waker`]; the reactor, woken for whatever reason,
//! looks at the state and applies it. Calls sent with [`StopHandle::call`] wait in a
//! mailbox the reactor empties at the same wake-up.

use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::ioloop::waker::Waker;

use super::{Channel, FtpServer};

const RUNNING: u8 = 0;
pub(super) const CLOSE: u8 = 1;
pub(super) const CLOSE_ALL: u8 = 2;

/// A function sent to run on the reactor thread.
type Mail = Box<dyn FnOnce(&mut FtpServer) + Send>;

/// Stops a server from another thread (or from inside a callback), or runs a function on
/// its reactor thread ([`call`](Self::call)).
#[derive(Clone)]
pub struct StopHandle {
    /// `RUNNING`, `CLOSE` or `CLOSE_ALL`; only ever raised.
    state: Arc<AtomicU8>,
    waker: Waker,
    /// Functions waiting for the reactor; `None` once the server has closed everything,
    /// after which functions sent are dropped at once.
    mailbox: Arc<Mutex<Option<Vec<Mail>>>>,
}

impl std::fmt::Debug for StopHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StopHandle")
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
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
            mailbox: Arc::new(Mutex::new(Some(Vec::new()))),
        }
    }

    /// Runs `f` on the server's reactor thread at its next wake-up, which this call causes,
    /// with the server in hand: the way to change a running server from another thread
    /// (say [`set_config`](FtpServer::set_config) on SIGHUP). Functions run in the order
    /// sent. One sent to a server that has closed everything ([`close_all`], or
    /// [`close`] and its last session ended), or does so first, never runs: it is dropped,
    /// with what it holds.
    ///
    /// [`close_all`]: FtpServer::close_all
    /// [`close`]: FtpServer::close
    pub fn call(&self, f: impl FnOnce(&mut FtpServer) + Send + 'static) {
        let mut mailbox = self.mailbox();
        match mailbox.as_mut() {
            Some(list) => list.push(Box::new(f)),
            None => return,
        }
        drop(mailbox);
        self.waker.wake();
    }

    // A poisoned mailbox only means a sender panicked mid-push: the list is whole.
    fn mailbox(&self) -> std::sync::MutexGuard<'_, Option<Vec<Mail>>> {
        self.mailbox.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes the functions sent so far.
    fn take_mail(&self) -> Vec<Mail> {
        self.mailbox()
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    /// Drops the functions waiting and every one sent from now on.
    fn close_mailbox(&self) {
        let pending = self.mailbox().take();
        // Dropped outside the lock: what they hold may run code of its own when dropped.
        drop(pending);
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
        for p in [&self.pool, &self.piece_pool].into_iter().flatten() {
            drop(p.drain());
        }
        // The flood table stays: it outlives a reactor of a group, whose others share it.
        self.flood_timer = None;
        self.stop.close_mailbox();
    }

    /// The last resort after a panic that [`close_all`](Self::close_all) could not get past
    /// (code that panics again as its session closes, such as an authorizer's quit
    /// message): drops every channel without calling into its session, giving each
    /// session's slot back to the limits. Dropping a channel can still panic (a storage's
    /// upload file whose drop panics, as another one did in `close_all`): the rest are
    /// dropped all the same.
    pub(super) fn abandon(&mut self) {
        self.stop.raise(CLOSE_ALL);
        self.stop.close_mailbox();
        let keys: Vec<usize> = self.channels.iter().map(|(k, _)| k).collect();
        for key in keys {
            if let Some(c) = self.control_mut(key) {
                let ip = c.peer_ip();
                self.sessions = self.sessions.saturating_sub(1);
                self.unadmit(ip);
            }
            // `remove` has taken the entry out of the slab, its timer, queue place and
            // registration with it, before the entry drops: a panic in that drop leaves
            // the server consistent, and the entry's other parts (its sockets) are still
            // dropped as the panic unwinds.
            let _ = panic::catch_unwind(AssertUnwindSafe(|| self.remove(key)));
        }
        self.ready.clear();
        self.queued.clear();
        self.timers.clear();
        self.calls.clear();
        self.flood_timer = None;
    }

    pub(super) fn drain_wake(&mut self, now: Instant) {
        // Woken by the stop handle or by the worker pool: look at both.
        self.wake_rx.drain();
        self.apply_stop();
        for f in self.stop.take_mail() {
            f(self);
        }
        let done: Vec<_> = [&self.pool, &self.piece_pool]
            .into_iter()
            .flatten()
            .flat_map(crate::pool::WorkerPool::drain)
            .collect();
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
