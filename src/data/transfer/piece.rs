//! Work a transfer hands to the worker pool, a piece at a time: a listing's next lines,
//! and the contents of a file whose reads or writes wait on the network (an object store:
//! [`FileReader::is_inline`], [`FileWriter::is_inline`]).
//!
//! The transfer takes its listing or file out ([`Running::take_piece`]), the pool runs the
//! [`Piece`] and the transfer gets the listing or file back with the result
//! ([`Running::put_piece`]); meanwhile the reactor goes on with the socket:
//!
//! - a download reads one piece ahead: the next [`PIECE`] bytes are read while the last
//!   are sent;
//! - an upload reads the next piece from the client while the last is written; with a
//!   piece waiting and the file still away it stops reading, and TCP's flow control holds
//!   the client back;
//! - the end of an upload is a last write that also completes the file
//!   ([`FileWriter::finish`]), on the pool too.
//!
//! A piece that fails ends the transfer with the file's error (a write that fails for want
//! of room first reads the rest of the upload and drops it, as an upload into a local file
//! does, so the client reads the 452/552); a transfer that ends while a piece is away
//! leaves the piece to come back to nobody, and what it holds (a writer whose upload is
//! then aborted) is dropped. Time a piece spends away is not counted as the client's
//! stall (see `DataChannel::handle_timeout`).

use std::io::{self, Read, Write};

use super::{
    client_done, from_crlf, interrupted, is_exhaustion, scratch, to_crlf, would_block, Running,
    Step,
};
use crate::control::session::{Direction, Source, TransferError};
use crate::filesystem::{FileReader, FileWriter};
use crate::listing::{Listing, CHUNK_ENTRIES};
use crate::tls::Stream;

/// Bytes of a file read or written per trip to the pool.
pub(crate) const PIECE: usize = 1 << 20;

/// Work for the pool.
pub(crate) enum Piece {
    /// A listing's next lines.
    Listing(Box<Listing>),
    /// Fill `buf` (to its capacity) from the file.
    Read {
        /// The file, positioned where the last piece ended.
        file: Box<dyn FileReader>,
        /// Empty, with the capacity to fill.
        buf: Vec<u8>,
    },
    /// Write `data` into the file and, when `finish`, complete it.
    Write {
        /// The file being written.
        file: Box<dyn FileWriter>,
        /// The bytes, in order after the last piece's.
        data: Vec<u8>,
        /// Whether this is the upload's end.
        finish: bool,
    },
}

/// A piece done, with what it took out.
pub(crate) enum PieceDone {
    /// The listing and its next lines (`None`: the listing is complete).
    Listing(Box<Listing>, io::Result<Option<Vec<u8>>>),
    /// The file and the bytes read (empty: the end of the file).
    Read(Box<dyn FileReader>, io::Result<Vec<u8>>),
    /// The file, the emptied buffer (to be filled again) and how the write went.
    Write(Box<dyn FileWriter>, Vec<u8>, io::Result<()>),
    /// The job panicked: what it held is gone.
    Lost,
}

impl Piece {
    /// Does the work; runs on a worker thread.
    pub(crate) fn run(self) -> PieceDone {
        match self {
            Piece::Listing(mut listing) => {
                // As the user, like every storage call of the session (system users).
                let piece = listing.next_chunk_as_user(CHUNK_ENTRIES);
                PieceDone::Listing(listing, piece)
            }
            Piece::Read { mut file, mut buf } => {
                let result = fill(&mut *file, &mut buf).map(|()| buf);
                PieceDone::Read(file, result)
            }
            Piece::Write {
                mut file,
                mut data,
                finish,
            } => {
                let mut result = file.write_all(&data);
                if finish && result.is_ok() {
                    result = file.finish();
                }
                data.clear();
                PieceDone::Write(file, data, result)
            }
        }
    }
}

/// Reads into `buf` up to its capacity or the end of the file.
fn fill(file: &mut dyn FileReader, buf: &mut Vec<u8>) -> io::Result<()> {
    let cap = buf.capacity();
    buf.resize(cap, 0);
    let mut got = 0;
    while got < cap {
        match file.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if interrupted(&e) => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(got);
    Ok(())
}

/// Stands in a transfer for its file while the file is away on the pool; never read or
/// written (the transfer waits for the file to come back).
#[derive(Debug)]
struct Away;

impl Read for Away {
    fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
        Err(io::Error::other("the file is away on the worker pool"))
    }
}

impl Write for Away {
    fn write(&mut self, _: &[u8]) -> io::Result<usize> {
        Err(io::Error::other("the file is away on the worker pool"))
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl FileReader for Away {
    fn size(&self) -> u64 {
        0
    }
}

impl FileWriter for Away {}

/// Where an offloaded file's upload or download is, beyond what `Running` tracks for all.
#[derive(Debug, Default)]
pub(super) struct Offload {
    /// Whether the file's contents go through the pool (the file is not inline).
    pub(super) on: bool,
    /// The id of the file's piece away on the pool, if one is.
    pub(super) away: Option<u64>,
    /// Downloads: the next piece read (empty: the end of the file), not yet sent.
    pub(super) ahead: Option<Vec<u8>>,
    /// Uploads: bytes read from the client, not yet handed to the file.
    pub(super) pending: Vec<u8>,
    /// A buffer back from the pool, for the next piece.
    pub(super) spare: Vec<u8>,
    /// Uploads: the client has sent everything.
    pub(super) received_all: bool,
    /// Uploads: the last piece, which completes the file, has been handed out.
    pub(super) finishing: bool,
    /// Uploads: the file is complete.
    pub(super) finished: bool,
}

impl Offload {
    /// A buffer of [`PIECE`] capacity, the spare one if there is one.
    fn buffer(&mut self) -> Vec<u8> {
        let mut buf = std::mem::take(&mut self.spare);
        buf.clear();
        buf.reserve(PIECE);
        buf
    }
}

impl Running {
    /// Work for the pool, with an id from `id` (called only then): the listing's next
    /// piece once its buffer is sent, an offloaded download's next piece, or an offloaded
    /// upload's piece once a whole one is read (or the client is done). `None` when there
    /// is nothing to hand out now.
    pub fn take_piece(&mut self, id: impl FnOnce() -> u64) -> Option<(u64, Piece)> {
        if self.offload.on {
            return self.take_file_piece(id);
        }
        let (id, listing) = self.take_listing(id)?;
        Some((id, Piece::Listing(listing)))
    }

    /// Whether an offloaded file has work to hand out now.
    fn file_piece_due(&self) -> bool {
        let o = &self.offload;
        if !o.on || o.away.is_some() || self.chunk_error.is_some() || self.write_error.is_some() {
            return false;
        }
        match &self.transfer.direction {
            Direction::Send(Source::File { .. }) => !self.source_done && o.ahead.is_none(),
            Direction::Receive(_) => !o.finishing && (o.pending.len() >= PIECE || o.received_all),
            Direction::Send(Source::Listing(_)) => false,
        }
    }

    /// The offloaded file's next piece (see [`take_piece`](Self::take_piece)).
    fn take_file_piece(&mut self, id: impl FnOnce() -> u64) -> Option<(u64, Piece)> {
        if !self.file_piece_due() {
            return None;
        }
        let id = id();
        let piece = match &mut self.transfer.direction {
            Direction::Send(Source::File { file, .. }) => Piece::Read {
                file: std::mem::replace(file, Box::new(Away)),
                buf: self.offload.buffer(),
            },
            Direction::Receive(file) => {
                let next = self.offload.buffer();
                let finish = self.offload.received_all;
                self.offload.finishing = finish;
                Piece::Write {
                    file: std::mem::replace(file, Box::new(Away)),
                    data: std::mem::replace(&mut self.offload.pending, next),
                    finish,
                }
            }
            Direction::Send(Source::Listing(_)) => return None,
        };
        self.offload.away = Some(id);
        Some((id, piece))
    }

    /// Whether this is an upload whose client has sent everything, its file being
    /// completed on the pool: an ABOR now waits for the outcome rather than cut it.
    pub fn is_committing(&self) -> bool {
        self.offload.on
            && self.offload.received_all
            && matches!(self.transfer.direction, Direction::Receive(_))
    }

    /// The id of the piece away on the pool, if one is.
    pub fn piece_id(&self) -> Option<u64> {
        self.offload.away.or_else(|| self.chunk_id())
    }

    /// Piece `id` is back; returns false, and drops it, when that is not the piece awaited.
    pub fn put_piece(&mut self, id: u64, done: PieceDone) -> bool {
        if self.piece_id() != Some(id) {
            return false;
        }
        match done {
            PieceDone::Listing(listing, piece) => return self.put_chunk(id, listing, piece),
            PieceDone::Lost if self.offload.away.is_none() => {
                let e = io::Error::other("listing failed");
                return self.put_chunk(id, Box::new(Listing::empty()), Err(e));
            }
            PieceDone::Lost => {
                self.chunk_error = Some(io::Error::other("the storage call failed"));
            }
            PieceDone::Read(back, result) => {
                if let Direction::Send(Source::File { file, .. }) = &mut self.transfer.direction {
                    *file = back;
                }
                match result {
                    Ok(bytes) => self.offload.ahead = Some(bytes),
                    Err(e) => self.chunk_error = Some(e),
                }
            }
            PieceDone::Write(back, buf, result) => {
                if let Direction::Receive(file) = &mut self.transfer.direction {
                    *file = back;
                }
                self.offload.spare = buf;
                match result {
                    Ok(()) => self.offload.finished = self.offload.finishing,
                    // Out of room: as for a file written here, the rest of the upload is
                    // read and dropped, so the client finishes sending and reads the
                    // 452/552 rather than a reset (see `receive_offloaded`).
                    Err(e) if is_exhaustion(&e) => {
                        self.offload.pending = Vec::new();
                        self.write_error = Some(e);
                    }
                    Err(e) => self.chunk_error = Some(e),
                }
            }
        }
        self.offload.away = None;
        true
    }

    /// An offloaded download's next bytes into `buf`, when they are here: `Some(step)`
    /// when the send must stop here (wait for the pool, or the end of the file).
    pub(super) fn load_ahead(&mut self, stream: &mut Stream) -> Option<Step> {
        let Some(bytes) = self.offload.ahead.take() else {
            // Away, or about to be handed out after this turn.
            return Some(Step::Blocked);
        };
        if bytes.is_empty() {
            self.source_done = true;
            return Some(Self::finish_send(stream));
        }
        if self.transfer.ascii {
            self.buf.clear();
            to_crlf(&bytes, &mut self.last_cr, &mut self.buf);
            self.offload.spare = bytes;
        } else {
            self.offload.spare = std::mem::replace(&mut self.buf, bytes);
        }
        self.pos = 0;
        self.len = self.buf.len();
        None
    }

    /// An upload into an offloaded file: reads the client's bytes into the pending piece
    /// until the socket blocks, the budget is spent, a whole piece waits while the file is
    /// away, or the client is done; the pool takes the pieces (see the module docs).
    pub(super) fn receive_offloaded(
        &mut self,
        stream: &mut Stream,
        budget: usize,
        buf: &mut Vec<u8>,
    ) -> Step {
        let buf = scratch(buf, self.in_buf);
        let mut spent = 0usize;
        loop {
            if let Some(e) = self.chunk_error.take() {
                return Step::Done(Err(TransferError::File(e)));
            }
            if self.write_error.is_some() {
                // The file is out of room: read the rest and drop it, then end with the
                // file's error, as an upload into a local file does.
                return self.receive_buffered(stream, budget.saturating_sub(spent), buf);
            }
            if self.offload.finished {
                return Step::Done(Ok(()));
            }
            if self.offload.received_all {
                // The last piece is away, or handed out after this turn.
                return Step::Blocked;
            }
            let room = PIECE.saturating_sub(self.offload.pending.len());
            if room == 0 {
                // A whole piece waits: handed out after this turn, or once the file is back.
                return Step::Blocked;
            }
            if spent >= budget {
                if client_done(stream) {
                    self.end_offloaded_upload();
                    continue;
                }
                return Step::Budget;
            }
            let want = room.min(budget - spent).min(buf.len());
            match stream.read(&mut buf[..want]) {
                Ok(0) => {
                    // As `receive_buffered`: the client's close_notify or FIN.
                    let _ = stream.close_notify();
                    self.end_offloaded_upload();
                }
                Ok(n) => {
                    self.bytes += n as u64;
                    spent += n;
                    if self.transfer.ascii {
                        from_crlf(&buf[..n], &mut self.last_cr, &mut self.offload.pending);
                    } else {
                        self.offload.pending.extend_from_slice(&buf[..n]);
                    }
                }
                Err(e) if would_block(&e) => return Step::Blocked,
                Err(e) if interrupted(&e) => {}
                Err(e) => return Step::Done(Err(TransferError::Connection(e))),
            }
        }
    }

    /// The client has sent everything: a CR held back by the ASCII conversion goes in.
    fn end_offloaded_upload(&mut self) {
        if self.transfer.ascii && self.last_cr {
            self.offload.pending.push(b'\r');
            self.last_cr = false;
        }
        self.offload.received_all = true;
    }
}
