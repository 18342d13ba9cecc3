//! Durations on the command line (`--max-duration 45m`): whole or decimal numbers of hours,
//! minutes and seconds, in that order (`1h30m`, `90s`, `1.5h`); a bare number is seconds.
//!
//! Not responsible for what the deadline does (see `signals`).

use std::time::Duration;

/// The longest duration accepted: thirty days.
const MAX_SECONDS: f64 = 30.0 * 24.0 * 3600.0;

/// Parses a duration such as `45m`, `1h30m`, `90s`, `2.5h` or `600`.
pub(crate) fn parse(text: &str) -> Result<Duration, String> {
    let bad = || format!("{text:?} is not a duration (such as 90s, 45m, 2h or 1h30m)");
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(bad());
    }
    let mut total = 0.0;
    let mut rest = trimmed;
    let mut last_unit = 0.0f64;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number: f64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit = match rest.chars().next() {
            None if total == 0.0 => 1.0,
            Some('h') => 3600.0,
            Some('m') => 60.0,
            Some('s') => 1.0,
            _ => return Err(bad()),
        };
        // Units in order, each once: 1h30m, not 30m1h.
        if last_unit != 0.0 && unit >= last_unit {
            return Err(bad());
        }
        last_unit = unit;
        rest = rest.get(1..).unwrap_or("");
        total += number * unit;
    }
    if !(total > 0.0 && total <= MAX_SECONDS) {
        return Err(format!(
            "{text:?}: a duration must be above zero and at most 30 days"
        ));
    }
    Ok(Duration::from_secs_f64(total))
}

#[cfg(test)]
mod tests {
    use super::parse;
    use std::time::Duration;

    #[test]
    fn durations_read_as_an_operator_writes_them() {
        assert_eq!(parse("45m"), Ok(Duration::from_secs(2700)));
        assert_eq!(parse("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse("600"), Ok(Duration::from_secs(600)));
        assert_eq!(parse("1.5h"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse("2h0m5s"), Ok(Duration::from_secs(7205)));
        for bad in [
            "", "m", "5x", "30m1h", "1h1h", "0", "-5m", "31d", "1e9", "9999h", "1.2.3s",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }
}
