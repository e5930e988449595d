//! The control connection (pyftpdlib's `FTPHandler` as a channel): a socket, its line
//! buffer, and the [`Session`] that interprets the lines.
//!
//! The channel reads until `WouldBlock` (mio delivers readiness edges, so a read left short
//! would never be signalled again), splits the input into lines of at most
//! [`command::MAX_LINE`] bytes, hands them to the session one by one while it accepts
//! commands, and writes the session's replies back.
//!
//! The socket is a `tls::Stream`: plain, or TLS from the first byte (implicit FTPS) or from the
//! moment the 234 reply to AUTH has been written. At that moment every byte already read is
//! dropped: the client sent it before it could have seen the 234, so it is not the TLS
//! handshake, and executing it would let a man in the middle inject commands into the
//! protected session (the STARTTLS injection of CVE-2011-1575).

pub mod command;
pub mod reply;
pub mod session;

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::Instant;

use mio::net::TcpStream;

use crate::logger;
use crate::tls::{self, SessionTls, Stream, TlsConfig};

pub use session::Session;

/// Stop reading from a client that sends faster than it lets us answer.
const MAX_BUFFERED_INPUT: usize = 64 * 1024;
/// Stop handing commands to the session while this much output is unsent.
const MAX_BUFFERED_OUTPUT: usize = 256 * 1024;

/// A line taken from the input buffer.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Line {
    /// A complete line without its line ending.
    Complete(Vec<u8>),
    /// A line longer than the limit was dropped.
    TooLong,
}

/// The line splitter, apart from the socket so it can be tested alone.
#[derive(Debug, Default)]
pub(crate) struct LineBuffer {
    buf: Vec<u8>,
    /// Inside an over-long line: drop bytes up to the next LF.
    discarding: bool,
}

impl LineBuffer {
    pub fn extend(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Whether [`next_line`](Self::next_line) would return something.
    pub fn has_line(&self) -> bool {
        self.discarding || self.buf.len() >= command::MAX_LINE || self.buf.contains(&b'\n')
    }

    /// The next line, if one is complete (or an over-long line has to be reported).
    pub fn next_line(&mut self) -> Option<Line> {
        loop {
            let nl = self.buf.iter().position(|&b| b == b'\n');
            if self.discarding {
                match nl {
                    Some(i) => {
                        self.buf.drain(..=i);
                        self.discarding = false;
                        continue;
                    }
                    None => {
                        self.buf.clear();
                        return None;
                    }
                }
            }
            return match nl {
                Some(i) if i + 1 > command::MAX_LINE => {
                    self.buf.drain(..=i);
                    Some(Line::TooLong)
                }
                Some(i) => {
                    let mut line: Vec<u8> = self.buf.drain(..=i).collect();
                    line.pop();
                    if line.last() == Some(&b'\r') {
                        line.pop();
                    }
                    Some(Line::Complete(line))
                }
                None if self.buf.len() >= command::MAX_LINE => {
                    self.buf.clear();
                    self.discarding = true;
                    Some(Line::TooLong)
                }
                None => None,
            };
        }
    }
}

/// One client's control connection.
#[doc(alias = "FTPHandler")]
#[derive(Debug)]
pub(crate) struct ControlChannel {
    pub stream: Stream,
    pub session: Session,
    pub input: LineBuffer,
    /// Slab key of the data channel, if any.
    pub data: Option<usize>,
    /// When the session closed, for the lingering flush of its last replies.
    pub closed_at: Option<Instant>,
    pub peer: SocketAddr,
    /// The peer closed its side or the socket failed.
    pub eof: bool,
    /// FTPS settings, if the server has a certificate.
    tls: Option<TlsConfig>,
    /// The session's TLS keys, shared with its data connections.
    pub keys: SessionTls,
    /// AUTH answered: switch to TLS once the reply is written.
    tls_pending: bool,
    /// CCC accepted; our close_notify goes once the 200 is written.
    ccc_pending: bool,
    /// CCC under way: reading up to the client's close_notify.
    ccc_draining: bool,
    /// A TLS handshake on this connection must be done by then.
    handshake_deadline: Option<Instant>,
    /// close_notify queued after the session ended.
    closing: bool,
}

impl ControlChannel {
    /// A control channel; with implicit FTPS its TLS handshake starts at once.
    pub fn new(
        stream: TcpStream,
        mut session: Session,
        peer: SocketAddr,
        tls: Option<TlsConfig>,
        now: Instant,
    ) -> ControlChannel {
        let implicit = tls.as_ref().is_some_and(|t| t.implicit);
        if implicit {
            session.set_implicit_tls();
        }
        let mut c = ControlChannel {
            stream: Stream::Plain(stream),
            session,
            input: LineBuffer::default(),
            data: None,
            closed_at: None,
            peer,
            eof: false,
            tls,
            keys: SessionTls::default(),
            tls_pending: false,
            ccc_pending: false,
            ccc_draining: false,
            handshake_deadline: None,
            closing: false,
        };
        if implicit {
            c.switch_to_tls(now);
        }
        c
    }

    /// The session accepted CCC ([`Action::EndTls`](session::Action::EndTls)).
    pub fn request_plain(&mut self) {
        self.ccc_pending = true;
        self.stream.cut_records();
    }

    /// Drives CCC: sends our close_notify once the 200 is out, and switches to plaintext
    /// once the client's close_notify is read; true when it switched.
    pub fn end_tls_if_due(&mut self, now: Instant) -> bool {
        if self.ccc_pending && self.session.output().is_empty() && !self.stream.wants_write() {
            self.ccc_pending = false;
            self.ccc_draining = true;
            self.stream.begin_ccc();
            // The client's close_notify may already be here.
            self.fill();
        }
        if !self.ccc_draining || !self.stream.ccc_done() {
            return false;
        }
        self.ccc_draining = false;
        let tls = std::mem::replace(&mut self.stream, Stream::Switching);
        let (plain, rest) = tls.end_tls();
        self.stream = plain;
        self.input = LineBuffer::default();
        self.input.extend(&rest);
        self.session.handle_tls_ended(now);
        // More plaintext may sit in the socket behind what was already read.
        self.fill();
        true
    }

    /// The session asked for TLS ([`Action::StartTls`](session::Action::StartTls)).
    pub fn request_tls(&mut self) {
        self.tls_pending = true;
    }

    /// Switches to TLS once the 234 is out; true when it did.
    pub fn start_tls_if_due(&mut self, now: Instant) -> bool {
        if !self.tls_pending || !self.session.output().is_empty() || self.eof {
            return false;
        }
        self.tls_pending = false;
        if self.input.len() > 0 {
            log::warn!(
                target: logger::LOG,
                "{} discarded {} plaintext bytes sent after AUTH",
                self.peer,
                self.input.len()
            );
        }
        self.input = LineBuffer::default();
        self.switch_to_tls(now);
        if !self.eof {
            self.session.handle_tls_started(now);
        }
        true
    }

    fn switch_to_tls(&mut self, now: Instant) {
        let Some(config) = self.tls.as_ref() else {
            self.eof = true;
            return;
        };
        let plain = std::mem::replace(&mut self.stream, Stream::Switching);
        match plain.start_control_tls(config, &mut self.keys) {
            Ok(s) => {
                self.stream = s;
                self.handshake_deadline = Some(now + config.handshake_timeout);
            }
            Err((s, e)) => {
                logger::logerror(&format!("{} can't start TLS: {e}", self.peer));
                self.stream = s;
                self.eof = true;
            }
        }
    }

    /// The next deadline of the channel: the session's, or the handshake's.
    pub fn poll_timeout(&self) -> Option<Instant> {
        tls::earliest(self.session.poll_timeout(), self.handshake_deadline)
    }

    /// Ends a connection whose TLS handshake did not finish in time; true if it did so.
    pub fn handshake_expired(&mut self, now: Instant) -> bool {
        match self.handshake_deadline {
            Some(d) if d <= now && self.stream.is_handshaking() => {
                log::info!(target: logger::LOG, "{} TLS handshake timed out", self.peer);
                self.eof = true;
                true
            }
            _ => false,
        }
    }

    fn note_handshake(&mut self) {
        if self.handshake_deadline.is_some() && !self.stream.is_handshaking() {
            self.handshake_deadline = None;
        }
    }

    /// Whether every reply, TLS records included, is on the wire.
    pub fn drained(&self) -> bool {
        self.session.output().is_empty() && !self.stream.wants_write()
    }

    /// Reads what the socket has, unless enough is already waiting.
    pub fn fill(&mut self) {
        let mut chunk = [0u8; 4096];
        while !self.eof && self.input.len() < MAX_BUFFERED_INPUT {
            match self.stream.read(&mut chunk) {
                // During CCC the client's close_notify ends the TLS stream, not the session.
                Ok(0) if self.ccc_pending || self.ccc_draining => break,
                Ok(0) => self.eof = true,
                Ok(n) => self.input.extend(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    if let Some(why) = tls::tls_failure(&e) {
                        log::info!(target: logger::LOG, "{} {why}", self.peer);
                    }
                    self.eof = true;
                }
            }
        }
        self.note_handshake();
    }

    /// Whether the session may be handed another line now.
    pub fn wants_line(&self) -> bool {
        self.session.accepts_commands() && self.session.output().len() < MAX_BUFFERED_OUTPUT
    }

    /// Writes pending replies until the socket blocks.
    pub fn flush(&mut self) {
        while !self.session.output().is_empty() {
            match self.stream.write(self.session.output()) {
                Ok(0) => {
                    self.eof = true;
                    break;
                }
                Ok(n) => self.session.consume_output(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    self.eof = true;
                    break;
                }
            }
        }
        if self.session.is_closed() && self.session.output().is_empty() && !self.closing {
            self.closing = true;
            if self.stream.close_notify().is_err() {
                self.eof = true;
            }
        }
        // TLS records queued earlier go out on this writable edge.
        match self.stream.flush() {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(_) => self.eof = true,
        }
        // Writing during a TLS handshake reads the peer's handshake messages, and the
        // client's first command may have come in the same segment: take it now, its
        // readiness edge is spent.
        if self.stream.is_tls() {
            self.fill();
        }
        self.note_handshake();
    }

    /// The next line for the session, if it wants one.
    pub fn next_line(&mut self, _now: Instant) -> Option<Line> {
        if !self.wants_line() {
            return None;
        }
        self.input.next_line()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_lines_and_drops_long_ones() {
        let mut b = LineBuffer::default();
        b.extend(b"NOOP\r\nUSER a\nPA");
        assert_eq!(b.next_line(), Some(Line::Complete(b"NOOP".to_vec())));
        assert_eq!(b.next_line(), Some(Line::Complete(b"USER a".to_vec())));
        assert_eq!(b.next_line(), None);
        b.extend(b"SS x\r\n");
        assert_eq!(b.next_line(), Some(Line::Complete(b"PASS x".to_vec())));

        b.extend(&vec![b'A'; 5000]);
        assert_eq!(b.next_line(), Some(Line::TooLong));
        assert_eq!(b.next_line(), None);
        b.extend(b"AAAA\r\nNOOP\r\n");
        assert_eq!(b.next_line(), Some(Line::Complete(b"NOOP".to_vec())));

        // A long line that arrives whole is reported once too.
        let mut long = vec![b'B'; 3000];
        long.extend_from_slice(b"\r\nSYST\r\n");
        b.extend(&long);
        assert_eq!(b.next_line(), Some(Line::TooLong));
        assert_eq!(b.next_line(), Some(Line::Complete(b"SYST".to_vec())));
    }

    #[test]
    fn limit_is_inclusive_of_crlf() {
        let mut b = LineBuffer::default();
        let mut ok = vec![b'N'; command::MAX_LINE - 2];
        ok.extend_from_slice(b"\r\n");
        b.extend(&ok);
        assert!(matches!(b.next_line(), Some(Line::Complete(_))));
        let mut long = vec![b'N'; command::MAX_LINE - 1];
        long.extend_from_slice(b"\r\n");
        b.extend(&long);
        assert_eq!(b.next_line(), Some(Line::TooLong));
    }
}
