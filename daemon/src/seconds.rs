//! SECS, the value of every option that takes a duration (`--timeout`, `--login-timeout`,
//! `--auth-failed-delay`, `--ban-time`, `--shutdown-grace`, `--proxy-header-timeout`), from
//! the command line, the environment and the `--config` file alike.

use std::time::Duration;

/// The longest duration a SECS option takes: 10 years (315,360,000 s). Longer ones mean
/// nothing for a server, and the library would have to clamp them anyway.
pub(crate) const MAX_SECS: u64 = 10 * 365 * 86_400;

/// A SECS value, the one parser of every option that takes seconds: a whole or decimal
/// number (`30`, `0.5`, `1e3`) from 0 to [`MAX_SECS`]. Negative, NaN, infinite and longer
/// values are refused here, so they can neither reach `Duration::from_secs_f64` (which
/// panics on them) nor, through a SIGHUP reload, replace working settings.
pub(crate) fn seconds(v: &str) -> Result<Duration, String> {
    let s: f64 = v
        .trim()
        .parse()
        .map_err(|_| format!("invalid number of seconds {v:?}"))?;
    if !s.is_finite() || s < 0.0 {
        return Err(format!(
            "invalid number of seconds {v:?} (want 0 to {MAX_SECS})"
        ));
    }
    // MAX_SECS is far below 2^53: the f64 holds it exactly.
    if s > MAX_SECS as f64 {
        return Err(format!(
            "{v} seconds is more than {MAX_SECS} (10 years), the longest allowed"
        ));
    }
    Duration::try_from_secs_f64(s).map_err(|e| format!("invalid number of seconds {v:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_whole_and_decimal_seconds_up_to_ten_years() {
        assert_eq!(seconds("0"), Ok(Duration::ZERO));
        assert_eq!(seconds("-0"), Ok(Duration::ZERO));
        assert_eq!(seconds("0.5"), Ok(Duration::from_millis(500)));
        assert_eq!(seconds("1e3"), Ok(Duration::from_secs(1000)));
        assert_eq!(seconds("315360000"), Ok(Duration::from_secs(MAX_SECS)));
        for bad in [
            "-1",
            "nan",
            "inf",
            "-inf",
            "1e300",
            "315360000.001",
            "9223372036854775807",
            "x",
            "",
        ] {
            assert!(seconds(bad).is_err(), "{bad}");
        }
    }
}
