//! Mapping slab keys to mio tokens inside a range the embedding program chooses.

use mio::Token;

/// How many tokens a server claims from its first one: the first is its wake-up pipe, the
/// rest are slab keys.
pub const TOKEN_SPAN: usize = 1 << 24;

/// The token range `[base, base + TOKEN_SPAN)` of one server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenRange {
    base: usize,
}

impl TokenRange {
    /// A range starting at `first`.
    pub fn new(first: Token) -> TokenRange {
        TokenRange { base: first.0 }
    }

    /// The token of the wake-up pipe.
    pub fn waker(&self) -> Token {
        Token(self.base)
    }

    /// The token of slab entry `key`, or `None` when the key is beyond the span.
    pub fn token(&self, key: usize) -> Option<Token> {
        (key + 1 < TOKEN_SPAN).then(|| Token(self.base + 1 + key))
    }

    /// The slab key of a token in this range (`None` for the waker or a foreign token).
    pub fn key(&self, token: Token) -> Option<usize> {
        let off = token.0.checked_sub(self.base)?;
        (1..TOKEN_SPAN).contains(&off).then(|| off - 1)
    }

    /// Whether the token belongs to this range.
    pub fn contains(&self, token: Token) -> bool {
        token
            .0
            .checked_sub(self.base)
            .is_some_and(|off| off < TOKEN_SPAN)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let r = TokenRange::new(Token(100));
        assert_eq!(r.waker(), Token(100));
        assert_eq!(r.token(0), Some(Token(101)));
        assert_eq!(r.key(Token(101)), Some(0));
        assert_eq!(r.key(Token(100)), None);
        assert_eq!(r.key(Token(99)), None);
        assert!(r.contains(Token(100)));
        assert!(!r.contains(Token(100 + TOKEN_SPAN)));
        assert_eq!(r.token(TOKEN_SPAN), None);
    }
}
