//! FTP replies: a three-digit code and text, one line or several (RFC 959 section 4.2).

use std::fmt;

/// One reply on the control connection.
///
/// Text with newlines becomes a multi-line reply (RFC 959 section 4.2): `230-first`, then
/// the middle lines as given, except that one starting with a digit gets a space in front
/// so that none can pass for a last line, then `230 last`. Lines that must start with a
/// space (FEAT's features, RFC 2389; MLST's fact line, RFC 3659) are given with it; a
/// listing sent by STAT goes bare, as pyftpdlib sends it.
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
        let lines: Vec<&str> = self
            .text
            .split('\n')
            .map(|l| l.trim_end_matches('\r'))
            .collect();
        let last = lines.len() - 1;
        for (i, line) in lines.iter().enumerate() {
            let text = if i == 0 {
                let sep = if last == 0 { ' ' } else { '-' };
                format!("{}{sep}{line}\r\n", self.code)
            } else if i == last {
                format!("{} {line}\r\n", self.code)
            } else if line.starts_with(|c: char| c.is_ascii_digit()) {
                format!(" {line}\r\n")
            } else {
                format!("{line}\r\n")
            };
            out.extend_from_slice(text.as_bytes());
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
    }

    #[test]
    fn quoting() {
        assert_eq!(quote_path("/a\"b"), "\"/a\"\"b\"");
    }
}
