//! The free argument parsers: LIST flags, RFC 3659 time-vals, PORT and EPRT addresses.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::listing;

/// Takes one `ls`-style flag word (`-l`, `-la`, `-1`, ...) off the front of a LIST/NLST
/// argument: what follows it, or `None` when the argument does not start with one.
pub(super) fn strip_ls_flag(arg: &[u8]) -> Option<&[u8]> {
    let arg = arg.trim_ascii_start();
    if !arg.starts_with(b"-") {
        return None;
    }
    Some(match arg.iter().position(|&b| b == b' ') {
        Some(i) => arg[i..].trim_ascii_start(),
        None => b"",
    })
}

/// Splits an argument at its first space: a word and the rest (MFMT's time and path, SITE's
/// subcommand and arguments); `None` without a space.
pub(super) fn split_word(arg: &[u8]) -> Option<(&[u8], &[u8])> {
    let i = arg.iter().position(|&b| b == b' ')?;
    Some((&arg[..i], &arg[i + 1..]))
}

/// Parses an RFC 3659 time-val, `YYYYMMDDHHMMSS` with optional `.sss`, into Unix seconds.
pub(super) fn parse_time_val(s: &str) -> Option<i64> {
    let digits = s.split_once('.').map_or(s, |(d, frac)| {
        if frac.bytes().all(|b| b.is_ascii_digit()) {
            d
        } else {
            ""
        }
    });
    if digits.len() != 14 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n = |a: usize, b: usize| digits[a..b].parse::<u32>().ok();
    let t = listing::CivilTime {
        year: i64::from(n(0, 4)?),
        month: n(4, 6)?,
        day: n(6, 8)?,
        hour: n(8, 10)?,
        minute: n(10, 12)?,
        second: n(12, 14)?,
    };
    let valid = (1..=12).contains(&t.month)
        && (1..=31).contains(&t.day)
        && t.hour < 24
        && t.minute < 60
        && t.second < 61;
    // Round-tripping rejects dates such as February 30.
    let secs = t.to_unix();
    (valid && listing::CivilTime::from_unix(secs).day == t.day).then_some(secs)
}

/// Parses PORT's `h1,h2,h3,h4,p1,p2`.
pub(super) fn parse_port(arg: &str) -> Option<SocketAddr> {
    let nums: Vec<u8> = arg
        .trim()
        .split(',')
        .map(|p| p.trim().parse().ok())
        .collect::<Option<_>>()?;
    if nums.len() != 6 {
        return None;
    }
    let ip = Ipv4Addr::new(nums[0], nums[1], nums[2], nums[3]);
    let port = u16::from(nums[4]) << 8 | u16::from(nums[5]);
    Some(SocketAddr::new(IpAddr::V4(ip), port))
}

/// Parses EPRT's `|af|addr|port|`: `Ok((af, addr))`, or `Err(())` for bad syntax.
pub(super) fn parse_eprt(arg: &str) -> Result<(String, Option<SocketAddr>), ()> {
    let delim = arg.chars().next().ok_or(())?;
    if !(33..=126).contains(&(delim as u32)) {
        return Err(());
    }
    let parts: Vec<&str> = arg.split(delim).collect();
    if parts.len() != 5 || !parts[0].is_empty() || !parts[4].is_empty() {
        return Err(());
    }
    let af = parts[1].to_string();
    let port: u16 = parts[3].parse().map_err(|_| ())?;
    let ip = match af.as_str() {
        "1" => parts[2].parse::<Ipv4Addr>().map(IpAddr::V4).ok(),
        "2" => parts[2].parse::<Ipv6Addr>().map(IpAddr::V6).ok(),
        _ => return Ok((af, None)),
    };
    match ip {
        Some(ip) if port != 0 => Ok((af, Some(SocketAddr::new(ip, port)))),
        _ => Err(()),
    }
}
