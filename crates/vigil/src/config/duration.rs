//! Durations as operators write them: `1500` (milliseconds, as in the seed's `application.yml`),
//! or a number with a unit: `250ms`, `1.5s`, `2m`, `1h`.

use std::time::Duration;

/// Parses a duration; a bare number is milliseconds.
pub fn parse(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let number: f64 = number
        .trim()
        .parse()
        .map_err(|_| "expected a duration such as 1500 (ms), 500ms, 1.5s or 2m".to_string())?;
    let millis_per_unit = match unit.trim() {
        "" | "ms" => 1.0,
        "s" => 1_000.0,
        "m" => 60_000.0,
        "h" => 3_600_000.0,
        other => return Err(format!("unknown unit `{other}`; use ms, s, m or h")),
    };
    if !number.is_finite() || number < 0.0 {
        return Err("must be a non-negative duration".into());
    }
    let secs = number * millis_per_unit / 1000.0;
    if secs > 365.0 * 24.0 * 3600.0 {
        return Err("longer than a year".into());
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Renders a duration in the shortest exact unit, the inverse of [`parse`].
pub fn render(d: Duration) -> String {
    let ms = d.as_millis();
    if d.subsec_nanos() % 1_000_000 != 0 {
        return format!("{}ms", d.as_secs_f64() * 1000.0);
    }
    match ms {
        0 => "0ms".into(),
        ms if ms % 3_600_000 == 0 => format!("{}h", ms / 3_600_000),
        ms if ms % 60_000 == 0 => format!("{}m", ms / 60_000),
        ms if ms % 1000 == 0 => format!("{}s", ms / 1000),
        ms => format!("{ms}ms"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_numbers_are_milliseconds_as_in_the_seed() {
        assert_eq!(parse("1500").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse("15000").unwrap(), Duration::from_secs(15));
    }

    #[test]
    fn units_are_understood() {
        assert_eq!(parse("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse(" 1h ").unwrap(), Duration::from_secs(3600));
    }

    #[test]
    fn garbage_is_rejected_with_a_hint() {
        assert!(parse("fast").unwrap_err().contains("1.5s"));
        assert!(parse("3 parsecs").unwrap_err().contains("unit"));
        assert!(parse("-1s").is_err());
        assert!(parse("").is_err());
    }

    #[test]
    fn render_round_trips() {
        for d in [0, 1, 200, 1500, 1000, 60_000, 3_600_000, 90_000] {
            let d = Duration::from_millis(d);
            assert_eq!(parse(&render(d)).unwrap(), d);
        }
    }
}
