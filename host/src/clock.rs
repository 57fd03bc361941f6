//! The wall clock gantry records: milliseconds since the Unix epoch. One
//! place, so every record's times read the same way.

/// Now, in milliseconds since the Unix epoch (UTC).
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
