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

    /// Appends the wire form, CRLF-terminated, to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let lines: Vec<&str> = self.text.split('\n').collect();
        let last = lines.len() - 1;
        for (i, line) in lines.iter().enumerate() {
            // Text given with CRLF line ends: the CR belongs to the line break.
            let line = if i < last {
                line.strip_suffix('\r').unwrap_or(line)
            } else {
                line
            };
            let head = if i == 0 {
                let sep = if last == 0 { ' ' } else { '-' };
                format!("{}{sep}", self.code)
            } else if i == last {
                format!("{} ", self.code)
            } else if line.starts_with(|c: char| c.is_ascii_digit()) {
                " ".to_string()
            } else {
                String::new()
            };
            out.extend_from_slice(head.as_bytes());
            for piece in line.as_bytes().split_inclusive(|&b| b == b'\r') {
                out.extend_from_slice(piece);
                if piece.ends_with(b"\r") {
                    out.push(0);
                }
            }
            out.extend_from_slice(b"\r\n");
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
