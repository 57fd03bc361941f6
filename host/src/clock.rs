//! The wall clock gantry records: milliseconds since the Unix epoch, and
//! how such a time is shown. One place, so every record's times read the
//! same way.

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
