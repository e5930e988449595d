//! The PROXY protocol on the control connection (and, where the proxies relay them, on the
//! passive data connections): a load balancer in front of the server (HAProxy, or any
//! proxy that speaks it) opens each connection with a header that names the client it
//! relays, and the server then treats that client as the peer.
//!
//! Before working on this file read HAProxy's "The PROXY protocol, versions 1 & 2"
//! (<https://www.haproxy.org/download/2.9/doc/proxy-protocol.txt>): sections 2.1 (the
//! text header, at most 107 bytes ending in CRLF), 2.2 (the binary header: a 12-byte
//! signature, 4 bytes of version, command, family and length, then the addresses and TLVs)
//! and 2.4 (a receiver reads the header before anything else, and must not guess: a
//! connection without a valid header is closed).
//!
//! The header is parsed by the [`ppp`] crate. This module adds what it leaves to the
//! receiver: reading without over-reading from a non-blocking socket, a deadline, and which
//! sources may send a header at all.
//!
//! # Reading
//!
//! The header is read before the 220 greeting and before anything else on the connection:
//! the client's first command may follow it in the same segment (a pipelined USER), and with
//! implicit FTPS the TLS ClientHello does. So the reader never takes a byte past the header:
//! it peeks at what the socket holds, lets the parser find the end, and reads exactly up to
//! it. Whatever follows stays in the socket for the control channel. Bytes that are certainly
//! part of the header (an incomplete header) are read at once, so every wait starts from an
//! empty receive queue and the next segment brings a new readiness edge.

use std::fmt;
use std::io::{self, Read};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use ppp::{v1, v2, HeaderResult, PartialResult};

/// Reading the PROXY protocol header at the start of every control connection (HAProxy's
/// `send-proxy` and `send-proxy-v2`, versions 1 and 2 of the protocol); set in
/// [`Config::proxy_protocol`](crate::Config::proxy_protocol).
///
/// With it on, every control connection must begin with a valid header, and the client
/// named there is the session's peer: its address is in the logs, the hooks and the
/// transfer log, counts for `max_cons_per_ip`, the failed-login bans and the flood limits,
/// and is the only address a passive data connection is accepted from and PORT/EPRT may
/// point at (data connections go to the server directly, not through the proxy, unless
/// [`passive`](Self::passive) says the proxies relay the passive ports too). A header
/// with no client address (`PROXY UNKNOWN`, or a version 2 `LOCAL` command such as
/// HAProxy's health checks) leaves the proxy's own address as the peer.
///
/// A connection whose header is missing, malformed, or not complete within
/// [`header_timeout`](Self::header_timeout), and a connection from a source outside
/// [`trusted`](Self::trusted), is closed with nothing sent; the reason is logged at
/// warning level. Per-address limits are checked once the header is in, against the
/// client it names.
///
/// # Examples
/// Accept headers from the proxies on 10.0.0.0/24 only:
/// ```
/// use std::time::Duration;
/// use ftpdlib::proxy::{ProxyNetwork, ProxyProtocol};
/// use ftpdlib::Config;
/// let proxy = ProxyProtocol::default()
///     .with_trusted(vec![ProxyNetwork::parse("10.0.0.0/24").unwrap()])
///     .with_header_timeout(Duration::from_secs(3));
/// let mut config = Config::default();
/// config.proxy_protocol = Some(proxy);
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ProxyProtocol {
    /// The networks the proxies connect from; a connection from anywhere else is closed at
    /// accept, before it is read. Default empty, meaning any source: then anyone who can
    /// reach the port can claim any client address, so leave it empty only where a firewall
    /// lets the proxies alone reach the server.
    pub trusted: Vec<ProxyNetwork>,
    /// Time from accept to a complete header; default 5 s. A proxy sends the header at once,
    /// in the connection's first segment, so this only ends connections that are not from a
    /// proxy or are stalled.
    pub header_timeout: Duration,
    /// The proxies relay the passive data connections too, each opened with a header; default
    /// false, for data connections that go to the server directly. With it, a connection to
    /// a passive port from a source in [`trusted`](Self::trusted) must begin with a header
    /// (within [`header_timeout`](Self::header_timeout)) naming the session's client, or it
    /// is closed as a stranger's and the port waits on for the client; connections from
    /// other sources are checked against the client's address as without a proxy. So the
    /// passive ports can sit behind the balancer (one range per server, each relayed to its
    /// server alone) and the check that only the session's client takes its data
    /// connection still holds: without headers, every relayed connection would come from
    /// the proxy's address.
    pub passive: bool,
}

impl ProxyProtocol {
    /// Sets [`trusted`](Self::trusted).
    pub fn with_trusted(mut self, trusted: Vec<ProxyNetwork>) -> Self {
        self.trusted = trusted;
        self
    }

    /// Sets [`header_timeout`](Self::header_timeout).
    pub fn with_header_timeout(mut self, timeout: Duration) -> Self {
        self.header_timeout = timeout;
        self
    }

    /// Sets [`passive`](Self::passive).
    pub fn with_passive(mut self, passive: bool) -> Self {
        self.passive = passive;
        self
    }

    /// Whether a connection from `ip` may send a header (see [`trusted`](Self::trusted)).
    pub fn trusts(&self, ip: IpAddr) -> bool {
        self.trusted.is_empty() || self.trusted.iter().any(|n| n.contains(ip))
    }
}

impl Default for ProxyProtocol {
    fn default() -> Self {
        ProxyProtocol {
            trusted: Vec::new(),
            header_timeout: Duration::from_secs(5),
            passive: false,
        }
    }
}

/// A network in CIDR notation, for [`ProxyProtocol::trusted`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProxyNetwork {
    /// The network's address.
    pub network: IpAddr,
    /// Its prefix length in bits: up to 32 for IPv4, 128 for IPv6.
    pub prefix: u8,
}

impl ProxyNetwork {
    /// Parses `ADDRESS/PREFIX` (`10.0.0.0/8`, `fd00::/8`) or a bare address (one host);
    /// `None` for anything else or a prefix longer than the address.
    pub fn parse(s: &str) -> Option<ProxyNetwork> {
        let s = s.trim();
        let (network, prefix) = match s.split_once('/') {
            Some((n, p)) => (n.trim().parse::<IpAddr>().ok()?, Some(p.trim())),
            None => (s.parse::<IpAddr>().ok()?, None),
        };
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max)?,
            None => max,
        };
        Some(ProxyNetwork { network, prefix })
    }

    /// Whether `ip` lies in the network (IPv4-mapped IPv6 addresses count as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network.to_canonical(), ip.to_canonical()) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let bits = u32::from(self.prefix.min(32));
                let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let bits = u32::from(self.prefix.min(128));
                let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

impl fmt::Display for ProxyNetwork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// The parser's verdict on the bytes read so far.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Parse {
    /// A prefix of a header: read more.
    Incomplete,
    /// A header of `len` bytes; `client` is `None` when it names no client (v1 `UNKNOWN`,
    /// v2 `LOCAL` or an address family other than IPv4 and IPv6).
    Complete {
        len: usize,
        client: Option<SocketAddr>,
    },
    /// Not a header.
    Invalid(String),
}

/// Longest text (version 1) header, CRLF included (section 2.1).
const V1_MAX: usize = 107;

/// Parses the start of a connection, `buf`, as a PROXY protocol header of either version.
pub(crate) fn parse(buf: &[u8]) -> Parse {
    // A text header is a line: judged once it is whole, since the parser takes a line cut
    // after a space for one with an empty field. Until then only its start is checked, so
    // that a client speaking FTP straight away is turned away at once.
    let text = buf.first() == Some(&b'P');
    let line = if text {
        if let Some(i) = buf.iter().position(|&b| b == b'\r') {
            if buf.get(i + 1).is_some_and(|&b| b != b'\n') {
                return Parse::Invalid("CR without LF in version 1 header".into());
            }
        }
        match buf.iter().position(|&b| b == b'\n') {
            Some(i) => &buf[..=i],
            None if buf.len() >= V1_MAX => {
                return Parse::Invalid(format!("no CRLF in the first {V1_MAX} bytes"))
            }
            None if b"PROXY ".starts_with(&buf[..buf.len().min(6)]) => return Parse::Incomplete,
            None => return Parse::Invalid("not a PROXY protocol header".into()),
        }
    } else if buf.starts_with(v2::PROTOCOL_PREFIX) || v2::PROTOCOL_PREFIX.starts_with(buf) {
        buf
    } else {
        return Parse::Invalid("not a PROXY protocol header".into());
    };
    let result = HeaderResult::parse(line);
    if result.is_incomplete() {
        if text && line.last() == Some(&b'\n') {
            // A whole line the parser still finds short: fields are missing.
            return Parse::Invalid("malformed version 1 header".into());
        }
        return Parse::Incomplete;
    }
    match result {
        HeaderResult::V1(Ok(h)) => {
            let client = match h.addresses {
                v1::Addresses::Tcp4(a) => {
                    Some(SocketAddr::new(IpAddr::V4(a.source_address), a.source_port))
                }
                v1::Addresses::Tcp6(a) => {
                    Some(SocketAddr::new(IpAddr::V6(a.source_address), a.source_port))
                }
                v1::Addresses::Unknown => None,
            };
            Parse::Complete {
                len: h.header.len(),
                client,
            }
        }
        HeaderResult::V2(Ok(h)) => {
            let client = match (h.command, h.addresses) {
                (v2::Command::Proxy, v2::Addresses::IPv4(a)) => {
                    Some(SocketAddr::new(IpAddr::V4(a.source_address), a.source_port))
                }
                (v2::Command::Proxy, v2::Addresses::IPv6(a)) => {
                    Some(SocketAddr::new(IpAddr::V6(a.source_address), a.source_port))
                }
                _ => None,
            };
            Parse::Complete {
                len: h.len(),
                client,
            }
        }
        HeaderResult::V1(Err(e)) => Parse::Invalid(format!("bad PROXY header: {e}")),
        HeaderResult::V2(Err(e)) => Parse::Invalid(format!("bad PROXY v2 header: {e}")),
    }
}

/// Where reading a header stands.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// Nothing more to read now: wait for the next event or the deadline.
    Wait,
    /// The header is in; the connection now starts at the byte after it. `client` as in
    /// [`Parse::Complete`].
    Done(Option<SocketAddr>),
    /// Close the connection, for this reason.
    Fail(String),
}

/// Peek window: a whole text header, or the fixed part and addresses of a binary one.
const PEEK: usize = 512;

/// A connection whose PROXY header is being read.
#[derive(Debug)]
pub(crate) struct HeaderWait {
    stream: TcpStream,
    /// The proxy: the connection's source as accepted.
    peer: SocketAddr,
    /// The part of the header read so far.
    got: Vec<u8>,
    deadline: Instant,
}

impl HeaderWait {
    /// Starts reading a header from `stream`, accepted from `peer` at `now`.
    pub fn new(stream: TcpStream, peer: SocketAddr, now: Instant, timeout: Duration) -> HeaderWait {
        HeaderWait {
            stream,
            peer,
            got: Vec::new(),
            deadline: crate::ioloop::deadline(now, timeout),
        }
    }

    /// The connection's source as accepted.
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// When the header must be complete.
    pub fn poll_timeout(&self) -> Instant {
        self.deadline
    }

    /// The socket, for registering and deregistering.
    pub fn stream_mut(&mut self) -> &mut TcpStream {
        &mut self.stream
    }

    /// The socket, once [`read`](Self::read) said [`Step::Done`].
    pub fn into_stream(self) -> TcpStream {
        self.stream
    }

    /// Reads what the socket has of the header, never past its end.
    pub fn read(&mut self) -> Step {
        let mut window = [0u8; PEEK];
        loop {
            let n = match self.stream.peek(&mut window) {
                Ok(0) => return Step::Fail(self.closed_early()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Step::Wait,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Step::Fail(format!("read failed before the PROXY header: {e}")),
            };
            let mut seen = std::mem::take(&mut self.got);
            let before = seen.len();
            seen.extend_from_slice(&window[..n]);
            let (take, step) = match parse(&seen) {
                Parse::Complete { len, client } => (len - before, Some(Step::Done(client))),
                // Every byte of an incomplete header is header: take them all.
                Parse::Incomplete => (n, None),
                Parse::Invalid(why) => return Step::Fail(why),
            };
            seen.truncate(before);
            self.got = seen;
            if let Err(e) = self.consume(take) {
                return Step::Fail(format!("read failed in the PROXY header: {e}"));
            }
            if let Some(step) = step {
                return step;
            }
        }
    }

    /// Reads `n` bytes the last peek showed, into `got`.
    fn consume(&mut self, mut n: usize) -> io::Result<()> {
        let mut buf = [0u8; PEEK];
        while n > 0 {
            match self.stream.read(&mut buf[..n.min(PEEK)]) {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(k) => {
                    self.got.extend_from_slice(&buf[..k]);
                    n -= k;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn closed_early(&self) -> String {
        if self.got.is_empty() {
            "closed without a PROXY header".into()
        } else {
            format!("closed after {} bytes of a PROXY header", self.got.len())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const V2_SIG: &[u8] = b"\r\n\r\n\0\r\nQUIT\n";

    fn v2(command: u8, family: u8, addrs: &[u8]) -> Vec<u8> {
        let mut h = V2_SIG.to_vec();
        h.push(0x20 | command);
        h.push(family);
        h.extend_from_slice(&(addrs.len() as u16).to_be_bytes());
        h.extend_from_slice(addrs);
        h
    }

    #[test]
    fn text_headers() {
        let h = b"PROXY TCP4 192.0.2.7 198.51.100.1 40000 21\r\nUSER a\r\n";
        assert_eq!(
            parse(h),
            Parse::Complete {
                len: h.len() - 8,
                client: Some("192.0.2.7:40000".parse().unwrap())
            }
        );
        let h = b"PROXY TCP6 2001:db8::7 2001:db8::1 40000 21\r\n";
        assert_eq!(
            parse(h),
            Parse::Complete {
                len: h.len(),
                client: Some("[2001:db8::7]:40000".parse().unwrap())
            }
        );
        assert_eq!(
            parse(b"PROXY UNKNOWN\r\nX"),
            Parse::Complete {
                len: 15,
                client: None
            }
        );
        // Any prefix of a header asks for more.
        let full = b"PROXY TCP4 192.0.2.7 198.51.100.1 40000 21\r\n";
        for i in 0..full.len() {
            assert_eq!(parse(&full[..i]), Parse::Incomplete, "{i}");
        }
    }

    #[test]
    fn binary_headers() {
        let mut a4 = vec![192, 0, 2, 7, 198, 51, 100, 1];
        a4.extend_from_slice(&40000u16.to_be_bytes());
        a4.extend_from_slice(&21u16.to_be_bytes());
        let mut h = v2(1, 0x11, &a4);
        let len = h.len();
        h.extend_from_slice(b"USER a\r\n");
        assert_eq!(
            parse(&h),
            Parse::Complete {
                len,
                client: Some("192.0.2.7:40000".parse().unwrap())
            }
        );
        for i in 0..len {
            assert_eq!(parse(&h[..i]), Parse::Incomplete, "{i}");
        }
        // LOCAL (a health check) names no client.
        let local = v2(0, 0x00, &[]);
        assert_eq!(
            parse(&local),
            Parse::Complete {
                len: 16,
                client: None
            }
        );
        // TLVs after the addresses belong to the header.
        let mut with_tlv = a4.clone();
        with_tlv.extend_from_slice(&[0x04, 0, 2, 1, 2]);
        let h = v2(1, 0x11, &with_tlv);
        assert!(matches!(parse(&h), Parse::Complete { len, .. } if len == h.len()));
    }

    #[test]
    fn garbage_is_refused_as_soon_as_seen() {
        for bad in [
            &b"USER anonymous\r\n"[..],
            b"GET / HTTP/1.0\r\n",
            b"PROXY TCP4 1.2.3.4\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX",
            b"PROXY TCP4 999.2.3.4 5.6.7.8 1 2\r\n",
            b"PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n",
        ] {
            assert!(matches!(parse(bad), Parse::Invalid(_)), "{bad:?}");
        }
        // No CRLF within the 107 bytes a text header may take.
        let long = [b"PROXY TCP4 ".as_slice(), &[b'1'; 120]].concat();
        assert!(matches!(parse(&long), Parse::Invalid(_)));
        // A bad version or command in a binary header.
        let mut h = v2(1, 0x11, &[0; 12]);
        h[12] = 0x31;
        assert!(matches!(parse(&h), Parse::Invalid(_)));
    }

    #[test]
    fn networks() {
        let n = ProxyNetwork::parse("10.0.0.0/8").unwrap();
        assert!(n.contains("10.1.2.3".parse().unwrap()));
        assert!(n.contains("::ffff:10.1.2.3".parse().unwrap()));
        assert!(!n.contains("11.0.0.1".parse().unwrap()));
        assert_eq!(n.to_string(), "10.0.0.0/8");
        let host = ProxyNetwork::parse("192.0.2.7").unwrap();
        assert_eq!(host.prefix, 32);
        assert!(host.contains("192.0.2.7".parse().unwrap()));
        assert!(!host.contains("192.0.2.8".parse().unwrap()));
        let all = ProxyNetwork::parse("0.0.0.0/0").unwrap();
        assert!(all.contains("203.0.113.9".parse().unwrap()));
        assert!(!all.contains("::1".parse().unwrap()));
        let v6 = ProxyNetwork::parse("fd00::/8").unwrap();
        assert!(v6.contains("fd12::5".parse().unwrap()));
        assert!(ProxyNetwork::parse("10.0.0.0/33").is_none());
        assert!(ProxyNetwork::parse("fd00::/129").is_none());
        assert!(ProxyNetwork::parse("proxy.example").is_none());

        let mut p = ProxyProtocol::default();
        assert!(p.trusts("203.0.113.9".parse().unwrap()));
        p.trusted = vec![n];
        assert!(!p.trusts("203.0.113.9".parse().unwrap()));
        assert!(p.trusts("10.9.9.9".parse().unwrap()));
    }
}
