//! Moving the bytes of one transfer between a data socket and a file or buffer
//! (pyftpdlib's producers and `DTPHandler.handle_read`).
//!
//! Binary downloads of files use sendfile(2), and binary uploads into a local file splice(2)
//! through a pipe (see the splice module), so the bytes never enter user space. ASCII
//! transfers, listings, TLS, storage without a file descriptor and systems without these
//! calls use a buffer, converting line endings on the way: bare LF to CRLF when sending,
//! CRLF to LF when receiving (RFC 959 section 3.1.1.1). Uploads read through a buffer use
//! the reactor's one buffer of [`MAX_READ`] (see [`Running::step`]), so a fast upload is
//! read in large pieces and a thousand uploads cost no more buffer than one.
//!
//! Under TLS there is no sendfile: files go through the buffer in large writes, so rustls
//! cuts them into full-size records. A send ends only once the TLS close_notify is on the
//! wire. A receive ends on the client's close_notify, or on a TCP FIN that falls between two
//! TLS records where the policy allows it (`TlsConfig::data_close_notify_required` off, the
//! default); a reset, or a FIN inside a record, is a failed transfer, never a complete one.

use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;

mod piece;

pub(crate) use piece::{Piece, PieceDone};

use super::splice::{self, Pipe};
use crate::control::session::{Direction, Source, Transfer, TransferError};
use crate::filesystem::{FileReader, FileWriter};
use crate::listing::Listing;
use crate::stats::TransferGauge;
use crate::throttle::Way;
use crate::tls::Stream;
use piece::Offload;

/// Smallest file read per refill under TLS: sixteen full TLS records.
const TLS_CHUNK: usize = 256 * 1024;

/// How much of an upload is read and thrown away after its file failed (a full disk, a
/// quota), so the client finishes sending, the data connection closes cleanly and the
/// client reads the reply. Past this the connection is closed at once (the peer then
/// sees a reset, as it would have for any size before).
const DISCARD_LIMIT: u64 = 256 << 20;

/// Reads of a buffered upload, unless the configured buffer is larger.
pub(crate) const MAX_READ: usize = 256 << 10;

/// How an upload's bytes reach the file.
#[derive(Debug)]
enum Sink {
    /// Not decided yet: the first step decides.
    Undecided,
    /// splice(2) through this pipe.
    Splice(Pipe),
    /// read(2) into `buf`, then a write to the file.
    Buffered,
}

/// How a spliced step ended.
enum Spliced {
    Step(Step),
    /// Go on through the buffer, with this much of the budget spent.
    Buffered(usize),
}

/// What one [`Running::step`] achieved.
#[derive(Debug)]
pub(crate) enum Step {
    /// The socket would block; wait for readiness.
    Blocked,
    /// The byte budget is spent; more can be done right away.
    Budget,
    /// A listing's buffer is sent: its next piece is due ([`Running::take_piece`]), made
    /// off the reactor and handed back ([`Running::put_piece`]).
    NeedChunk,
    /// The transfer ended.
    Done(Result<(), TransferError>),
}

/// Where a listing being sent is.
#[derive(Debug)]
enum ListingAt {
    /// Not a listing.
    None,
    /// Here, ready to make its next piece.
    Here(Box<Listing>),
    /// Away, making the piece with this id.
    Away(u64),
}

/// A transfer in progress.
#[derive(Debug)]
pub(crate) struct Running {
    transfer: Transfer,
    bytes: u64,
    buf: Vec<u8>,
    /// ASCII downloads: the file's bytes before line-ending conversion into `buf`.
    raw: Vec<u8>,
    pos: usize,
    /// Bytes ready to send in `buf[pos..len]`.
    len: usize,
    /// File offset for sendfile.
    offset: i64,
    in_buf: usize,
    /// Last byte seen, for line-ending conversion across buffer boundaries.
    last_cr: bool,
    source_done: bool,
    listing: ListingAt,
    /// A listing's piece failed: the transfer ends with it.
    chunk_error: Option<io::Error>,
    /// An upload's file failed to take a write: the rest of the upload is read and
    /// dropped, up to [`DISCARD_LIMIT`], and the transfer then ends with this error.
    write_error: Option<io::Error>,
    /// Bytes dropped since `write_error`.
    discarded: u64,
    /// An upload's way to its file.
    sink: Sink,
    /// A file whose contents go through the worker pool (see the piece module).
    offload: Offload,
    /// Counts the transfer in `transfers_running` while it lives.
    _gauge: TransferGauge,
}

fn would_block(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock
}

fn interrupted(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::Interrupted
}

/// LF to CRLF for bare LFs; `last_cr` carries whether the previous chunk ended in CR.
fn to_crlf(input: &[u8], last_cr: &mut bool, out: &mut Vec<u8>) {
    for &b in input {
        if b == b'\n' && !*last_cr {
            out.push(b'\r');
        }
        out.push(b);
        *last_cr = b == b'\r';
    }
}

/// CRLF to LF; a CR at the end of a chunk is held back until the next byte is known.
fn from_crlf(input: &[u8], pending_cr: &mut bool, out: &mut Vec<u8>) {
    for &b in input {
        if *pending_cr {
            *pending_cr = false;
            if b != b'\n' {
                out.push(b'\r');
            }
        }
        if b == b'\r' {
            *pending_cr = true;
        } else {
            out.push(b);
        }
    }
}

impl Running {
    pub fn new(transfer: Transfer, in_buf: usize, out_buf: usize, gauge: TransferGauge) -> Running {
        // Under TLS, read the file in large chunks: rustls fills whole records from them.
        let out_buf = if transfer.tls {
            out_buf.max(TLS_CHUNK)
        } else {
            out_buf
        };
        let mut transfer = transfer;
        let listing = match &mut transfer.direction {
            Direction::Send(Source::Listing(l)) => {
                ListingAt::Here(std::mem::replace(l, Box::new(Listing::empty())))
            }
            _ => ListingAt::None,
        };
        let (buf, offset) = match &transfer.direction {
            Direction::Send(Source::Listing(_)) => (Vec::new(), 0),
            Direction::Send(Source::File { offset, .. }) => {
                (Vec::with_capacity(out_buf.max(512)), *offset as i64)
            }
            // Uploads read into the reactor's buffer (see `step`).
            Direction::Receive(_) => (Vec::new(), 0),
        };
        let mut r = Running {
            transfer,
            bytes: 0,
            buf,
            raw: Vec::new(),
            pos: 0,
            len: 0,
            offset,
            in_buf: in_buf.max(512),
            last_cr: false,
            source_done: false,
            listing,
            chunk_error: None,
            write_error: None,
            discarded: 0,
            sink: Sink::Undecided,
            offload: Offload::default(),
            _gauge: gauge,
        };
        r.offload.on = match &r.transfer.direction {
            Direction::Send(Source::File { file, .. }) => !file.is_inline(),
            Direction::Receive(file) => !file.is_inline(),
            Direction::Send(Source::Listing(_)) => false,
        };
        if !matches!(r.transfer.direction, Direction::Receive(_)) {
            r.buf.reserve(out_buf.max(512));
        }
        r
    }

    /// Takes the listing out to make its next piece, once its buffer is sent (after
    /// [`Step::NeedChunk`]), under an id from `id` (called only then); `None` before that.
    fn take_listing(&mut self, id: impl FnOnce() -> u64) -> Option<(u64, Box<Listing>)> {
        let sent = self.pos == self.len && !self.source_done && self.chunk_error.is_none();
        if !sent || !matches!(self.listing, ListingAt::Here(_)) {
            return None;
        }
        let id = id();
        match std::mem::replace(&mut self.listing, ListingAt::Away(id)) {
            ListingAt::Here(l) => Some((id, l)),
            other => {
                self.listing = other;
                None
            }
        }
    }

    /// The id of the listing piece being made, if one is.
    fn chunk_id(&self) -> Option<u64> {
        match self.listing {
            ListingAt::Away(id) => Some(id),
            _ => None,
        }
    }

    /// The listing is back with piece `id` (`None`: it is complete). Returns false, and
    /// drops them, when that is not the piece awaited.
    fn put_chunk(
        &mut self,
        id: u64,
        listing: Box<Listing>,
        piece: io::Result<Option<Vec<u8>>>,
    ) -> bool {
        if self.chunk_id() != Some(id) {
            return false;
        }
        let done = listing.is_done();
        self.listing = ListingAt::Here(listing);
        match piece {
            Ok(Some(bytes)) => {
                self.len = bytes.len();
                self.buf = bytes;
                self.pos = 0;
                // The last piece: no trip to the pool for an empty one after it.
                self.source_done = done;
            }
            Ok(None) => self.source_done = true,
            Err(e) => self.chunk_error = Some(e),
        }
        true
    }

    /// Bytes moved over the data connection so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Bytes left to send, when cheap to know: a listing's buffer, or the rest of a file
    /// sent with sendfile (the file's size now, less the offset reached). `None` for
    /// uploads, converted (TYPE A) downloads and files read on the pool (never sent with
    /// sendfile, and away most of the time: the stand-in's size is no size).
    pub fn remaining(&self) -> Option<u64> {
        match &self.transfer.direction {
            Direction::Send(Source::Listing(_)) if self.source_done => {
                Some((self.len - self.pos) as u64)
            }
            Direction::Send(Source::File { file, .. })
                if self.transfer.use_sendfile && !self.offload.on =>
            {
                Some(file.size().saturating_sub(self.offset as u64))
            }
            _ => None,
        }
    }

    /// Which limit applies: reading for uploads, writing for downloads and listings.
    /// Whether a file moves (RETR, STOR, APPE, STOU), not a listing.
    pub fn is_file(&self) -> bool {
        !matches!(self.transfer.direction, Direction::Send(Source::Listing(_)))
    }

    pub fn way(&self) -> Way {
        match self.transfer.direction {
            Direction::Receive(_) => Way::Read,
            Direction::Send(_) => Way::Write,
        }
    }

    /// Moves bytes until the socket blocks, the budget is spent or the transfer ends. An
    /// upload that is not spliced reads into `upload_buf`, shared by the uploads of one
    /// reactor (nothing in it is kept from one step to the next), so a thousand uploads
    /// take one buffer's memory and cache rather than a thousand.
    pub fn step(&mut self, stream: &mut Stream, budget: usize, upload_buf: &mut Vec<u8>) -> Step {
        match &self.transfer.direction {
            Direction::Receive(_) => self.receive(stream, budget, upload_buf),
            // Not a file that is not inline, even with a descriptor behind it (a network
            // filesystem): sendfile would read it on the reactor thread.
            Direction::Send(Source::File { .. })
                if self.transfer.use_sendfile && stream.plain().is_some() && !self.offload.on =>
            {
                self.sendfile(stream, budget)
            }
            Direction::Send(_) => self.send_buffered(stream, budget),
        }
    }

    fn sendfile(&mut self, stream: &mut Stream, budget: usize) -> Step {
        let Direction::Send(Source::File { file, .. }) = &self.transfer.direction else {
            return Step::Done(Ok(()));
        };
        let Some(sock) = stream.plain() else {
            return self.send_buffered(stream, budget);
        };
        let Some(in_fd) = file.raw_fd() else {
            return self.send_buffered(stream, budget);
        };
        let out_fd = sock.as_raw_fd();
        let mut spent = 0usize;
        loop {
            if spent >= budget {
                // A throttled transfer that has sent the whole file ends now, not after
                // waiting for more allowance only to find the end of the file.
                if self.offset as u64 >= file.size() {
                    return Step::Done(Ok(()));
                }
                return Step::Budget;
            }
            let chunk = (budget - spent).min(1 << 20);
            let mut off: libc::off_t = self.offset;
            // SAFETY: both descriptors are open for the duration of the call (owned by
            // `file` and `stream`), and `off` is a valid pointer to a local.
            let n = unsafe { libc::sendfile(out_fd, in_fd, &mut off, chunk) };
            if n > 0 {
                self.offset = off;
                self.bytes += n as u64;
                spent += n as usize;
                continue;
            }
            if n == 0 {
                return Step::Done(Ok(()));
            }
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EAGAIN) => return Step::Blocked,
                Some(libc::EINTR) => continue,
                // Files that cannot be mapped (some special or network filesystems): fall
                // back to reading, before anything was sent. sendfile reads at its own
                // offset, so the file is still positioned where it was opened (REST).
                Some(libc::EINVAL) | Some(libc::ENOSYS) | Some(libc::EOPNOTSUPP)
                    if self.bytes == 0 =>
                {
                    self.transfer.use_sendfile = false;
                    return self.send_buffered(stream, budget);
                }
                Some(libc::EIO) => return Step::Done(Err(TransferError::File(e))),
                _ => return Step::Done(Err(TransferError::Connection(e))),
            }
        }
    }

    /// Refills `buf` from the file (with conversion); false at end of file. Binary reads go
    /// straight into `buf`, sized once: no buffer is allocated, zeroed or copied per read.
    /// ASCII reads go through `raw`, also kept from one refill to the next.
    fn refill(&mut self) -> Result<bool, TransferError> {
        // The reader was opened at the restart offset: read on from where it is.
        let Direction::Send(Source::File { file, .. }) = &mut self.transfer.direction else {
            return Ok(false);
        };
        let cap = self.buf.capacity().max(512);
        if !self.transfer.ascii {
            if self.buf.len() < cap {
                self.buf.resize(cap, 0);
            }
            let n = read_file(file, &mut self.buf[..cap])?;
            self.pos = 0;
            self.len = n;
            return Ok(n > 0);
        }
        if self.raw.len() < cap / 2 {
            self.raw.resize(cap / 2, 0);
        }
        let n = read_file(file, &mut self.raw[..cap / 2])?;
        if n == 0 {
            return Ok(false);
        }
        self.buf.clear();
        to_crlf(&self.raw[..n], &mut self.last_cr, &mut self.buf);
        self.pos = 0;
        self.len = self.buf.len();
        Ok(true)
    }

    /// The end of a send: under TLS the close_notify must be written before the socket
    /// closes, or the client cannot tell the end of the file from a cut connection.
    fn finish_send(stream: &mut Stream) -> Step {
        match stream.close_notify() {
            Ok(true) => Step::Done(Ok(())),
            Ok(false) => Step::Blocked,
            Err(e) => Step::Done(Err(TransferError::Connection(e))),
        }
    }

    fn send_buffered(&mut self, stream: &mut Stream, budget: usize) -> Step {
        let mut spent = 0usize;
        loop {
            if self.pos == self.len {
                if let Some(e) = self.chunk_error.take() {
                    return Step::Done(Err(TransferError::File(e)));
                }
                if self.source_done {
                    return Self::finish_send(stream);
                }
                match self.listing {
                    ListingAt::Here(_) => return Step::NeedChunk,
                    // The piece is being made; the owner drives the channel when it is back.
                    ListingAt::Away(_) => return Step::Blocked,
                    ListingAt::None => {}
                }
                if self.offload.on {
                    if let Some(step) = self.load_ahead(stream) {
                        return step;
                    }
                } else {
                    match self.refill() {
                        Ok(true) => {}
                        Ok(false) => {
                            self.source_done = true;
                            return Self::finish_send(stream);
                        }
                        Err(e) => return Step::Done(Err(e)),
                    }
                }
            }
            if spent >= budget {
                return Step::Budget;
            }
            let end = self.len.min(self.pos + (budget - spent));
            match stream.write(&self.buf[self.pos..end]) {
                Ok(0) => {
                    return Step::Done(Err(TransferError::Connection(
                        io::ErrorKind::WriteZero.into(),
                    )))
                }
                Ok(n) => {
                    self.pos += n;
                    self.bytes += n as u64;
                    spent += n;
                }
                Err(e) if would_block(&e) => return Step::Blocked,
                Err(e) if interrupted(&e) => {}
                Err(e) => return Step::Done(Err(TransferError::Connection(e))),
            }
        }
    }

    /// Whether this upload is spliced (decided at its first step).
    #[cfg(test)]
    pub fn is_spliced(&self) -> bool {
        matches!(self.sink, Sink::Splice(_))
    }

    fn receive(&mut self, stream: &mut Stream, budget: usize, buf: &mut Vec<u8>) -> Step {
        if self.offload.on {
            return self.receive_offloaded(stream, budget, buf);
        }
        if matches!(self.sink, Sink::Undecided) {
            self.sink = self.choose_sink(stream);
        }
        let spent = match self.sink {
            Sink::Splice(_) => match self.receive_spliced(stream, budget, buf) {
                Spliced::Step(step) => return step,
                Spliced::Buffered(spent) => {
                    // The pipe is empty, or holds what a failed file will never take:
                    // dropping it closes both ends.
                    self.sink = Sink::Buffered;
                    spent
                }
            },
            _ => 0,
        };
        let buf = scratch(buf, self.in_buf);
        self.receive_buffered(stream, budget.saturating_sub(spent), buf)
    }

    /// Splice when the upload is binary, in the clear, into a file with a descriptor that
    /// takes direct writes, and a pipe can be had; else read through the buffer.
    fn choose_sink(&self, stream: &mut Stream) -> Sink {
        let Direction::Receive(file) = &self.transfer.direction else {
            return Sink::Buffered;
        };
        // `use_sendfile`: binary, no TLS, and the server allows the kernel's copy.
        if !self.transfer.use_sendfile || self.transfer.ascii || stream.plain().is_none() {
            return Sink::Buffered;
        }
        let Some(fd) = file.raw_fd() else {
            return Sink::Buffered;
        };
        match Pipe::for_file(fd) {
            Ok(pipe) => Sink::Splice(pipe),
            Err(e) => {
                // Out of descriptors (EMFILE), an O_APPEND file (APPE), a small pipe: the
                // buffered path works for all of them.
                log::debug!(target: crate::logger::LOG, "upload read, not spliced: {e}");
                Sink::Buffered
            }
        }
    }

    /// Socket to pipe to file, until the socket blocks, the budget is spent or the upload
    /// ends. Every byte counted in `bytes` is in the file, or dropped after a failed write.
    fn receive_spliced(
        &mut self,
        stream: &mut Stream,
        budget: usize,
        buf: &mut Vec<u8>,
    ) -> Spliced {
        let Running {
            transfer,
            bytes,
            in_buf,
            sink,
            write_error,
            discarded,
            ..
        } = self;
        let (Sink::Splice(pipe), Direction::Receive(file), Some(sock)) =
            (sink, &mut transfer.direction, stream.plain())
        else {
            return Spliced::Buffered(0);
        };
        let Some(fd) = file.raw_fd() else {
            return Spliced::Buffered(0);
        };
        let sock = sock.as_raw_fd();
        let mut spent = 0usize;
        loop {
            if spent >= budget {
                if client_done(stream) {
                    return Spliced::Step(end_of_upload(file, false, false));
                }
                return Spliced::Step(Step::Budget);
            }
            // No more than the budget, so a throttled upload stays within its bytes.
            let filled = pipe.fill(sock, budget - spent);
            // splice(2) moves nothing at TCP's urgent mark (a byte the client sent with
            // MSG_OOB): it neither steps over the urgent byte nor goes past it, and says so
            // as the end (once the FIN is in) or as an empty socket. Bytes still there then
            // mean the mark: the rest of the upload is read, which steps over it. Asked
            // only at the end and when a turn moved nothing, not on the busy path.
            let nothing = match &filled {
                Ok(0) => true,
                Err(e) => would_block(e) && spent == 0,
                Ok(_) => false,
            };
            if nothing && bytes_waiting(stream) {
                log::debug!(target: crate::logger::LOG, "urgent data in an upload; the upload goes on read");
                return Spliced::Buffered(spent);
            }
            match filled {
                Ok(0) => return Spliced::Step(end_of_upload(file, false, false)),
                Ok(n) => {
                    *bytes += n as u64;
                    spent += n;
                }
                Err(e) if would_block(&e) => return Spliced::Step(Step::Blocked),
                Err(e) if interrupted(&e) => continue,
                Err(e) if splice::unsupported(&e) => {
                    log::debug!(target: crate::logger::LOG, "splice from the data socket: {e}; the upload goes on read");
                    return Spliced::Buffered(spent);
                }
                Err(e) => return Spliced::Step(Step::Done(Err(TransferError::Connection(e)))),
            }
            match pipe.drain_to(fd) {
                Ok(()) => {}
                Err(e) if splice::unsupported(&e) => {
                    log::debug!(target: crate::logger::LOG, "splice into the file: {e}; the upload goes on read");
                    // What the pipe holds goes into the file by write(2), in order.
                    let buf = scratch(buf, *in_buf);
                    while pipe.held() > 0 {
                        let n = match pipe.read_out(buf) {
                            Ok(n) => n,
                            Err(e) if interrupted(&e) => continue,
                            Err(e) => {
                                return Spliced::Step(Step::Done(Err(TransferError::File(e))))
                            }
                        };
                        match write_all(file, &buf[..n]) {
                            Ok(()) => {}
                            Err(TransferError::File(e)) if is_exhaustion(&e) => {
                                *write_error = Some(e);
                                *discarded += pipe.held() as u64;
                                break;
                            }
                            Err(e) => return Spliced::Step(Step::Done(Err(e))),
                        }
                    }
                    return Spliced::Buffered(spent);
                }
                // Out of room: what the pipe still holds is dropped with it, and the rest of
                // the upload is read and dropped, as on the buffered path.
                Err(e) if is_exhaustion(&e) => {
                    *write_error = Some(e);
                    *discarded += pipe.held() as u64;
                    return Spliced::Buffered(spent);
                }
                Err(e) => return Spliced::Step(Step::Done(Err(TransferError::File(e)))),
            }
        }
    }

    fn receive_buffered(&mut self, stream: &mut Stream, budget: usize, buf: &mut [u8]) -> Step {
        let ascii = self.transfer.ascii;
        let Direction::Receive(file) = &mut self.transfer.direction else {
            return Step::Done(Ok(()));
        };
        let mut converted = Vec::new();
        let mut spent = 0usize;
        loop {
            if spent >= budget {
                // When the client has finished sending, end now rather than after waiting
                // for more allowance only to read the end of the stream.
                if client_done(stream) {
                    return match self.write_error.take() {
                        Some(e) => Step::Done(Err(TransferError::File(e))),
                        None => end_of_upload(file, ascii, self.last_cr),
                    };
                }
                return Step::Budget;
            }
            // Read no more than the budget, so a throttled upload stays within its bytes.
            let room = (budget - spent).min(buf.len());
            let n = match stream.read(&mut buf[..room]) {
                Ok(0) => {
                    // The client's close_notify or, where allowed, a FIN between TLS
                    // records (under TLS), or its FIN (plain): answer a close_notify
                    // with ours, as far as the socket takes it; the upload is whole.
                    let _ = stream.close_notify();
                    // After a failed write the file is left as it is (partial, like an
                    // aborted upload) and never finished.
                    return match self.write_error.take() {
                        Some(e) => Step::Done(Err(TransferError::File(e))),
                        None => end_of_upload(file, ascii, self.last_cr),
                    };
                }
                Ok(n) => n,
                Err(e) if would_block(&e) => return Step::Blocked,
                Err(e) if interrupted(&e) => continue,
                Err(e) => {
                    // What the client did after the file failed does not change the
                    // reply: the file's error is the cause.
                    return Step::Done(Err(match self.write_error.take() {
                        Some(f) => TransferError::File(f),
                        None => TransferError::Connection(e),
                    }));
                }
            };
            self.bytes += n as u64;
            spent += n;
            if self.write_error.is_some() {
                self.discarded += n as u64;
                if self.discarded > DISCARD_LIMIT {
                    return Step::Done(Err(self.write_error.take().map_or_else(
                        || TransferError::Connection(io::ErrorKind::Other.into()),
                        TransferError::File,
                    )));
                }
                continue;
            }
            let result = if ascii {
                converted.clear();
                from_crlf(&buf[..n], &mut self.last_cr, &mut converted);
                write_all(file, &converted)
            } else {
                write_all(file, &buf[..n])
            };
            match result {
                Ok(()) => {}
                // The storage is out of room, or out of the user's allocation: keep
                // reading so the client can finish sending and read the 452/552, rather
                // than resetting a connection it is still writing to.
                Err(TransferError::File(e)) if is_exhaustion(&e) => self.write_error = Some(e),
                Err(e) => return Step::Done(Err(e)),
            }
        }
    }
}

/// The reactor's upload buffer, made at its first use: reads of the largest configured
/// size.
fn scratch(buf: &mut Vec<u8>, in_buf: usize) -> &mut [u8] {
    let size = in_buf.max(MAX_READ);
    if buf.len() < size {
        *buf = vec![0; size];
    }
    buf
}

/// Whether the client has finished sending an upload (its FIN is next in the socket).
/// Plain TCP only: under TLS the end is a close_notify record, read in the normal way.
fn client_done(stream: &mut Stream) -> bool {
    let mut probe = [0u8; 1];
    stream
        .plain()
        .is_some_and(|tcp| matches!(tcp.peek(&mut probe), Ok(0)))
}

/// One read from a file being sent, retried when interrupted.
fn read_file(file: &mut Box<dyn FileReader>, buf: &mut [u8]) -> Result<usize, TransferError> {
    loop {
        match file.read(buf) {
            Ok(n) => return Ok(n),
            Err(e) if interrupted(&e) => continue,
            Err(e) => return Err(TransferError::File(e)),
        }
    }
}

/// Whether bytes wait in the socket (plain TCP only): with no FIN before them, a peek
/// shows one.
fn bytes_waiting(stream: &mut Stream) -> bool {
    let mut probe = [0u8; 1];
    stream
        .plain()
        .is_some_and(|tcp| matches!(tcp.peek(&mut probe), Ok(n) if n > 0))
}

/// Whether a write failed for want of room (a full filesystem, a quota, a size limit)
/// rather than of a broken file: the cases where the rest of an upload is read and
/// dropped.
fn is_exhaustion(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ENOSPC) | Some(libc::EDQUOT) | Some(libc::EFBIG)
    ) || matches!(
        e.kind(),
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded | io::ErrorKind::FileTooLarge
    )
}

/// The client closed the data connection: the upload is complete. A CR held back by the
/// ASCII conversion was not part of a CRLF, so it goes into the file.
fn end_of_upload(file: &mut Box<dyn FileWriter>, ascii: bool, pending_cr: bool) -> Step {
    if ascii && pending_cr {
        if let Err(e) = write_all(file, b"\r") {
            return Step::Done(Err(e));
        }
    }
    match file.finish() {
        Ok(()) => Step::Done(Ok(())),
        Err(e) => Step::Done(Err(TransferError::File(e))),
    }
}

fn write_all(file: &mut Box<dyn FileWriter>, data: &[u8]) -> Result<(), TransferError> {
    file.write_all(data).map_err(TransferError::File)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crlf_conversion_across_chunks() {
        let mut out = Vec::new();
        let mut last = false;
        to_crlf(b"a\nb\r", &mut last, &mut out);
        to_crlf(b"\nc\n", &mut last, &mut out);
        assert_eq!(out, b"a\r\nb\r\nc\r\n");

        let mut out = Vec::new();
        let mut cr = false;
        from_crlf(b"a\r\nb\r", &mut cr, &mut out);
        from_crlf(b"\nc\rd", &mut cr, &mut out);
        assert_eq!(out, b"a\nb\nc\rd");
        assert!(!cr);
    }
}
