//! FTP replies: a three-digit code and text, one line or several (RFC 959 section 4.2).

use std::fmt;

/// One reply on the control connection.
///
/// Text with newlines becomes a multi-line reply (RFC 959 section 4.2): `230-first`, then
/// the middle lines as given, except that one starting with a digit gets a space in front
/// so that none can pass for a last line, then `230 last`. Lines that must start with a
/// space (FEAT's features, RFC 2389; MLST's fact line, RFC 3659) are given with it; a
/// listing sent by STAT goes bare, as pyftpdlib sends it.
///
/// A CR in the text that does not end a line (the client's own bytes echoed back, a path
/// with a CR in it) goes as CR NUL, the Telnet rule for a carriage return alone (RFC 854,
/// which RFC 959 section 4.2 builds on): no text can end a reply line but its CRLF.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The reply code, e.g. 226.
    pub code: u16,
    /// The text after the code; may contain `\n`.
    pub text: String,
}

impl Reply {
    /// A reply with the given code and text.
    pub fn new(code: u16, text: impl Into<String>) -> Reply {
        Reply {
            code,
            text: text.into(),
        }
    }

    /// Appends the wire form, CRLF-terminated, to `out`. Every reply goes through here,
    /// so it formats nothing and collects nothing: bytes are appended as they are found.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let mut lines = self.text.split('\n').peekable();
        let mut first = true;
        while let Some(line) = lines.next() {
            let last = lines.peek().is_none();
            // Text given with CRLF line ends: the CR belongs to the line break.
            let line = if last {
                line
            } else {
                line.strip_suffix('\r').unwrap_or(line)
            };
            if first || last {
                self.push_code(out);
                out.push(if first && !last { b'-' } else { b' ' });
            } else if line.starts_with(|c: char| c.is_ascii_digit()) {
                out.push(b' ');
            }
            first = false;
            for piece in line.as_bytes().split_inclusive(|&b| b == b'\r') {
                out.extend_from_slice(piece);
                if piece.ends_with(b"\r") {
                    out.push(0);
                }
            }
            out.extend_from_slice(b"\r\n");
        }
    }

    /// Appends the code's digits.
    fn push_code(&self, out: &mut Vec<u8>) {
        let c = self.code;
        if (100..1000).contains(&c) {
            // Three digits, each below 10: the casts keep every value.
            out.extend_from_slice(&[
                b'0' + (c / 100) as u8,
                b'0' + (c / 10 % 10) as u8,
                b'0' + (c % 10) as u8,
            ]);
        } else {
            out.extend_from_slice(c.to_string().as_bytes());
        }
    }

    /// Whether the code is 4xx or 5xx.
    pub fn is_error(&self) -> bool {
        self.code >= 400
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.code, self.text.replace('\n', " | "))
    }
}

/// Quotes a path for a 257 reply, doubling embedded quotes (RFC 959 appendix II).
pub fn quote_path(path: &str) -> String {
    format!("\"{}\"", path.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_and_multi_line() {
        let mut out = Vec::new();
        Reply::new(200, "ok").encode(&mut out);
        assert_eq!(out, b"200 ok\r\n");
        out.clear();
        Reply::new(230, "Welcome\nto the\n 123 server\nbye").encode(&mut out);
        assert_eq!(out, b"230-Welcome\r\nto the\r\n 123 server\r\n230 bye\r\n");
        out.clear();
        // A middle line that starts with the code and a space would end the reply early.
        Reply::new(211, "a\n211 b\nc").encode(&mut out);
        assert_eq!(out, b"211-a\r\n 211 b\r\n211 c\r\n");
        out.clear();
        Reply::new(211, "a\r\nb\r\nc").encode(&mut out);
        assert_eq!(out, b"211-a\r\nb\r\n211 c\r\n");
        out.clear();
        // Empty text, an empty last line, codes outside three digits.
        Reply::new(200, "").encode(&mut out);
        Reply::new(211, "a\n").encode(&mut out);
        Reply::new(7, "x").encode(&mut out);
        Reply::new(1000, "y").encode(&mut out);
        assert_eq!(out, b"200 \r\n211-a\r\n211 \r\n7 x\r\n1000 y\r\n");
    }

    #[test]
    fn a_carriage_return_alone_goes_as_cr_nul() {
        let mut out = Vec::new();
        Reply::new(500, "Command \"C\r\u{1d}\" not understood.").encode(&mut out);
        assert_eq!(out, b"500 Command \"C\r\0\x1d\" not understood.\r\n");
        out.clear();
        Reply::new(257, "\"/a\r\" created.\nnext\r").encode(&mut out);
        assert_eq!(out, b"257-\"/a\r\0\" created.\r\n257 next\r\0\r\n");
    }

    #[test]
    fn quoting() {
        assert_eq!(quote_path("/a\"b"), "\"/a\"\"b\"");
    }
}
