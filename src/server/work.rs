//! The worker pool's side of the server: requests sessions hand out and listing pieces data
//! channels need go to the pool (or run at once where cheap), and what comes back is handed
//! to the channel that still waits for it.

use std::sync::Arc;
use std::time::Instant;

use crate::control::session::{request, Completion};
use crate::data::{Piece, PieceDone};
use crate::logger;
use crate::pool::{Done, Reply, WorkerPool};
use crate::stats::Refusal;

use super::FtpServer;

/// What comes back from the worker pool.
pub(super) enum Work {
    /// A session's request, done.
    Session(Completion),
    /// A data channel's piece: a listing's next lines, a file's contents.
    Piece(PieceDone),
}

impl FtpServer {
    /// The pool, started on first use with `config.io_threads` workers.
    pub(super) fn pool(&mut self) -> Option<&WorkerPool<Work>> {
        if self.pool.is_none() {
            self.pool = self.start_pool("worker pool");
        }
        self.pool.as_ref()
    }

    /// The pool of file pieces (see `piece_pool`), as large as the other.
    fn piece_pool(&mut self) -> Option<&WorkerPool<Work>> {
        if self.piece_pool.is_none() {
            self.piece_pool = self.start_pool("pool for file pieces");
        }
        self.piece_pool.as_ref()
    }

    fn start_pool(&self, what: &str) -> Option<WorkerPool<Work>> {
        let waker = self.stop.waker();
        let size = match self.config.io_threads {
            0 => crate::pool::default_size(),
            n => n,
        };
        match WorkerPool::new(size, Arc::new(move || waker.wake())) {
            Ok(p) => Some(p),
            Err(e) => {
                logger::logerror(&format!("can't start the {what}: {e}"));
                None
            }
        }
    }

    /// Runs a session's request: at once where it is cheap, else on the pool.
    pub(super) fn run_request(&mut self, key: usize, mut req: request::Request, now: Instant) {
        let id = req.id;
        if req.is_login() && self.refuse_banned_login(key, id, now) {
            return;
        }
        let c = if let Some(refused) = req.refuse_early() {
            refused
        } else if req.is_inline(now) {
            req.run()
        } else if let Some(pool) = self.pool() {
            let job = move |reply: Reply<Work>| {
                req.start(Box::new(move |c| reply.send(Work::Session(c))));
            };
            return pool.submit_deferred(key, id, Box::new(job));
        } else {
            Completion::panicked()
        };
        // Called from the channel's own turn, which goes on with the reply.
        if let Some(ctl) = self.control_mut(key) {
            ctl.handle_completion(now, id, c);
        }
    }

    /// A session whose address was banned after it connected (it, or others from its
    /// address, failed too often) gets no password check: 421 and closed, as a new
    /// connection from that address is. Otherwise the sessions opened before the ban could
    /// go on guessing. Returns whether it refused.
    fn refuse_banned_login(&mut self, key: usize, id: u64, now: Instant) -> bool {
        let Some(ip) = self.control_mut(key).map(|c| c.peer_ip()) else {
            return false;
        };
        if !self.is_banned(ip, now) {
            return false;
        }
        log::warn!(target: crate::logger::LOG, "{ip} banned: login refused unchecked");
        if let Some(ctl) = self.control_mut(key) {
            let c = Completion::Internal {
                code: 421,
                text: super::accept::refusal_text(Refusal::Banned).into(),
                close: true,
            };
            ctl.handle_completion(now, id, c);
        }
        true
    }

    /// Runs piece `id` of a data channel's work on a pool, whatever the storage: a
    /// listing's next lines on the worker pool (the first piece of a large directory reads
    /// ahead to sort it; the channel sends nothing meanwhile), or a file's contents where
    /// the file is not inline on the pool of file pieces.
    pub(super) fn make_piece(&mut self, key: usize, id: u64, piece: Piece, now: Instant) {
        let file = !matches!(piece, Piece::Listing(_));
        let job = Box::new(move || Work::Piece(piece.run()));
        let pool = if file { self.piece_pool() } else { self.pool() };
        match pool {
            Some(pool) => pool.submit(key, id, job),
            // The piece and what it holds are gone.
            None => self.piece_back(key, id, PieceDone::Lost, now),
        }
    }

    /// A job came back: hand it to the channel that asked, if that channel still waits for
    /// it; otherwise it is dropped here, releasing what it holds.
    pub(super) fn complete(&mut self, d: Done<Work>, now: Instant) {
        match d.result {
            Some(Work::Piece(done)) => self.piece_back(d.key, d.id, done, now),
            Some(Work::Session(c)) => self.completion_back(d.key, d.id, c, now),
            None => {
                // A job panicked: whoever waits for that id learns it failed.
                if self
                    .data(d.key)
                    .is_some_and(|dc| dc.piece_id() == Some(d.id))
                {
                    self.piece_back(d.key, d.id, PieceDone::Lost, now);
                } else {
                    self.completion_back(d.key, d.id, Completion::panicked(), now);
                }
            }
        }
    }

    fn completion_back(&mut self, key: usize, id: u64, c: Completion, now: Instant) {
        if let Some(ctl) = self.control_mut(key) {
            ctl.handle_completion(now, id, c);
            self.drive_control(key, now);
        }
    }

    fn piece_back(&mut self, key: usize, id: u64, done: PieceDone, now: Instant) {
        if self
            .data_mut(key)
            .is_some_and(|dc| dc.put_piece(id, done, now))
        {
            self.enqueue(key);
        }
    }
}
