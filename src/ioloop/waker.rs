//! A cross-thread waker for the reactor: any thread holding a [`Waker`] can make the poll
//! return, and the reactor learns "woken" from its [`WakeReceiver`] without being told why.
//!
//! Whoever wakes the reactor first records what it wants in state of its own (the stop state
//! of a [`StopHandle`](crate::StopHandle), a queue of finished work), then calls
//! [`Waker::wake`]. The reactor, on the receiver's event, calls [`WakeReceiver::drain`] and
//! then looks at every such state. A wake-up therefore carries no message, and several
//! wake-ups before the reactor gets to them are worth one.
//!
//! It is a non-blocking Unix socket pair rather than `mio::Waker`, because mio allows one
//! waker per `Poll` and an embedding program may already own that one. The receiving end is
//! an ordinary [`mio::event::Source`] registered under a token of the server's range.
//!
//! # Coalescing
//!
//! [`Waker::wake`] writes its byte only when no wake-up is pending, so the socket holds at
//! most one byte however many threads wake how often, and a wake-up costs one atomic swap
//! when the reactor is already due to look. The receiver reads every byte first and clears
//! the pending flag afterwards: a `wake` that lands between the two writes nothing, but its
//! state is already set and the reactor, which looks at the states after draining, sees it.

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream as StdUnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use mio::event::Source;
use mio::net::UnixStream;
use mio::{Interest, Registry, Token};

#[derive(Debug)]
struct Shared {
    /// The sending end of the pair.
    tx: StdUnixStream,
    /// A byte is in the socket (or about to be) that the receiver has not drained yet.
    pending: AtomicBool,
}

/// Wakes the reactor from any thread; cheap to clone, one per thread or per task.
///
/// Made with [`pair`] together with the [`WakeReceiver`] the reactor registers.
#[derive(Debug, Clone)]
pub struct Waker {
    shared: Arc<Shared>,
}

/// The reactor's end of a [`pair`]: a mio source that becomes readable after a
/// [`Waker::wake`].
#[derive(Debug)]
pub struct WakeReceiver {
    rx: UnixStream,
    shared: Arc<Shared>,
}

/// A new waker and its receiver, both ends non-blocking.
///
/// # Errors
/// When the socket pair cannot be made (out of file descriptors).
///
/// # Examples
/// ```
/// let (waker, mut rx) = ftpdlib::ioloop::waker::pair().unwrap();
/// let w = waker.clone();
/// std::thread::spawn(move || w.wake()).join().unwrap();
/// waker.wake(); // coalesced with the first: still one byte in the socket
/// assert!(rx.drain());
/// assert!(!rx.drain());
/// ```
pub fn pair() -> io::Result<(Waker, WakeReceiver)> {
    let (tx, rx) = StdUnixStream::pair()?;
    tx.set_nonblocking(true)?;
    rx.set_nonblocking(true)?;
    let shared = Arc::new(Shared {
        tx,
        pending: AtomicBool::new(false),
    });
    Ok((
        Waker {
            shared: Arc::clone(&shared),
        },
        WakeReceiver {
            rx: UnixStream::from_std(rx),
            shared,
        },
    ))
}

impl Waker {
    /// Makes the receiver readable, unless a wake-up is already pending. Never blocks.
    ///
    /// Set whatever the reactor should act on before calling this: the reactor may run
    /// the moment the byte is written.
    pub fn wake(&self) {
        if self.shared.pending.swap(true, Ordering::AcqRel) {
            // A byte is already on its way; the reactor will look at every state then.
            return;
        }
        loop {
            match (&self.shared.tx).write(&[1]) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // WouldBlock cannot happen with at most one byte in the socket; any other
                // error means the receiver is gone, and nobody is left to wake.
                _ => return,
            }
        }
    }
}

impl WakeReceiver {
    /// Reads every pending wake-up byte; true when there was one. Call it on the
    /// receiver's event, then act on the states the wakers set.
    pub fn drain(&mut self) -> bool {
        let mut woken = false;
        let mut buf = [0u8; 64];
        loop {
            match self.rx.read(&mut buf) {
                Ok(0) => break,
                // A short read emptied the stream socket (the socket holds one byte at
                // most anyway): a read more could only say WouldBlock. A wake-up written
                // after it is a new edge, so a new event.
                Ok(n) if n < buf.len() => {
                    woken = true;
                    break;
                }
                Ok(_) => woken = true,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
        // Only now may the next wake write again (see the module docs on the order).
        self.shared.pending.store(false, Ordering::Release);
        woken
    }
}

impl Source for WakeReceiver {
    fn register(
        &mut self,
        registry: &Registry,
        token: Token,
        interests: Interest,
    ) -> io::Result<()> {
        self.rx.register(registry, token, interests)
    }

    fn reregister(
        &mut self,
        registry: &Registry,
        token: Token,
        interests: Interest,
    ) -> io::Result<()> {
        self.rx.reregister(registry, token, interests)
    }

    fn deregister(&mut self, registry: &Registry) -> io::Result<()> {
        self.rx.deregister(registry)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use mio::{Events, Poll};

    use super::*;

    fn assert_send_sync<T: Send + Sync + Clone>() {}

    #[test]
    fn waker_is_shareable() {
        assert_send_sync::<Waker>();
    }

    #[test]
    fn wake_ups_coalesce_until_drained() {
        let (w, mut rx) = pair().unwrap();
        assert!(!rx.drain());
        for _ in 0..1000 {
            w.clone().wake();
        }
        // One byte for a thousand wake-ups.
        let mut buf = [0u8; 16];
        assert_eq!(rx.rx.read(&mut buf).unwrap(), 1);
        assert!(!rx.drain());
        // Drained: the next wake writes again.
        w.wake();
        assert!(rx.drain());
    }

    #[test]
    fn wakes_the_poll_from_other_threads() {
        let (w, mut rx) = pair().unwrap();
        let mut poll = Poll::new().unwrap();
        poll.registry()
            .register(&mut rx, Token(3), Interest::READABLE)
            .unwrap();
        let mut events = Events::with_capacity(4);
        for round in 0..3 {
            let threads: Vec<_> = (0..4)
                .map(|_| {
                    let w = w.clone();
                    std::thread::spawn(move || w.wake())
                })
                .collect();
            for t in threads {
                t.join().unwrap();
            }
            poll.poll(&mut events, Some(Duration::from_secs(5)))
                .unwrap();
            let tokens: Vec<Token> = events.iter().map(|e| e.token()).collect();
            assert_eq!(tokens, vec![Token(3)], "round {round}");
            assert!(rx.drain());
        }
        // Nothing pending: the poll times out.
        poll.poll(&mut events, Some(Duration::from_millis(20)))
            .unwrap();
        assert!(events.is_empty());
    }
}
