//! The control connection (pyftpdlib's `FTPHandler` as a channel): a socket, its line
//! buffer, and the [`Session`] that interprets the lines.
//!
//! The channel reads until `WouldBlock` (mio delivers readiness edges, so a read left short
//! would never be signalled again), splits the input into lines of at most
//! [`command::MAX_LINE`] bytes, hands them to the session one by one while it accepts
//! commands, and writes the session's replies back.

pub mod command;
pub mod reply;
pub mod session;

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::Instant;

use mio::net::TcpStream;

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
    pub stream: TcpStream,
    pub session: Session,
    pub input: LineBuffer,
    /// Slab key of the data channel, if any.
    pub data: Option<usize>,
    /// When the session closed, for the lingering flush of its last replies.
    pub closed_at: Option<Instant>,
    pub peer: SocketAddr,
    /// The peer closed its side or the socket failed.
    pub eof: bool,
}

impl ControlChannel {
    pub fn new(stream: TcpStream, session: Session, peer: SocketAddr) -> ControlChannel {
        ControlChannel {
            stream,
            session,
            input: LineBuffer::default(),
            data: None,
            closed_at: None,
            peer,
            eof: false,
        }
    }

    /// Reads what the socket has, unless enough is already waiting.
    pub fn fill(&mut self) {
        let mut chunk = [0u8; 4096];
        while !self.eof && self.input.len() < MAX_BUFFERED_INPUT {
            match self.stream.read(&mut chunk) {
                Ok(0) => self.eof = true,
                Ok(n) => self.input.extend(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => self.eof = true,
            }
        }
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
