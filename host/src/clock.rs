//! The wall clock gantry records: milliseconds since the Unix epoch, and
//! how such a time is shown. One place, so every record's times read the
//! same way.

/// The longest span a configured number of seconds stands for: ten years
/// (anything longer means "never", and an `Instant` plus it still fits).
pub const LONGEST: std::time::Duration = std::time::Duration::from_secs(10 * 365 * 86_400);

/// A configured number of seconds as a duration: negative or NaN is zero,
/// more than [`LONGEST`] (1e300, infinity) is `LONGEST`. Never panics, as
/// `Duration::from_secs_f64` does on such values.
pub fn seconds(s: f64) -> std::time::Duration {
    if s.is_nan() || s <= 0.0 {
        return std::time::Duration::ZERO;
    }
    std::time::Duration::try_from_secs_f64(s)
        .unwrap_or(LONGEST)
        .min(LONGEST)
}

/// Now, in milliseconds since the Unix epoch (UTC).
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// A time in milliseconds since the epoch as tables and logs show it:
/// `2026-11-29 10:18:25 UTC`, or `-` for none.
pub fn when(ms: Option<i64>) -> String {
    ms.and_then(chrono::DateTime::from_timestamp_millis)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|| "-".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn any_number_of_seconds_is_a_duration_that_fits() {
        assert_eq!(seconds(1.5), Duration::from_millis(1500));
        assert_eq!(seconds(-3.0), Duration::ZERO);
        assert_eq!(seconds(f64::NAN), Duration::ZERO);
        assert_eq!(seconds(1e300), LONGEST);
        assert_eq!(seconds(f64::INFINITY), LONGEST);
        let _ = std::time::Instant::now() + seconds(1e300);
    }
}
