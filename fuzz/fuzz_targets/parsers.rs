//! The parsers a client or an administrator feeds: the command line (verb and argument),
//! path normalisation, masquerade rules, rates, permission letters, password-hash
//! detection and the calendar arithmetic behind MDTM and MFMT.
//!
//! Invariants: nothing panics; a verb is upper-case and the argument keeps its bytes; a
//! normalised path is absolute, has no `.`, `..` or empty parts, and normalising it again
//! changes nothing; calendar times survive the round trip.
#![no_main]

use arbitrary::Arbitrary;
use ftpdlib::authorizer::crypt;
use ftpdlib::control::command::{is_urgent, lookup, parse_line};
use ftpdlib::filesystem::ftpnorm;
use ftpdlib::listing::{mode_string, CivilTime};
use ftpdlib::throttle::parse_rate;
use ftpdlib::{MasqueradeRule, Perms};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
struct Input<'a> {
    line: &'a [u8],
    cwd: &'a [u8],
    text: &'a str,
    secs: i64,
    mode: u32,
}

fuzz_target!(|input: Input| {
    let req = parse_line(input.line);
    assert_eq!(req.name, req.name.to_ascii_uppercase());
    assert!(
        input.line.ends_with(&req.arg),
        "the argument keeps its bytes"
    );
    let _ = lookup(&req.name);
    let _ = is_urgent(input.line);

    // ftpnorm is given a normalised current directory, as sessions keep one.
    let cwd = ftpnorm(b"/", input.cwd);
    let norm = ftpnorm(&cwd, input.line);
    assert_eq!(norm.first(), Some(&b'/'), "{norm:?}");
    if norm.len() > 1 {
        for part in norm[1..].split(|&b| b == b'/') {
            assert!(!matches!(part, b"" | b"." | b".."), "{norm:?}");
        }
    }
    assert_eq!(ftpnorm(b"/", &norm), norm, "normalising twice");
    assert_eq!(ftpnorm(&norm, b"."), norm);

    if let Some(rule) = MasqueradeRule::parse(input.text) {
        let _ = rule.matches(rule.address);
        let _ = rule.matches(rule.network);
    }
    if let Ok(rate) = parse_rate(input.text) {
        assert_eq!(parse_rate(&rate.to_string()), Ok(rate), "{:?}", input.text);
    }
    if let Ok(p) = Perms::parse(input.text) {
        let _ = p.contains(Perms::RETR);
    }
    let _ = crypt::is_hash(input.text);
    let _ = crypt::Method::parse(input.text);

    // MDTM/MFMT times: any time of years 0..=9999 converts and back.
    let secs = input.secs.rem_euclid(253_402_300_800) - 62_167_219_200;
    let civil = CivilTime::from_unix(secs);
    assert_eq!(civil.to_unix(), secs);
    assert_eq!(civil.time_val().len(), 14, "{civil:?}");
    let _ = CivilTime::from_unix(input.secs);
    assert_eq!(mode_string(input.mode).len(), 10);
});
