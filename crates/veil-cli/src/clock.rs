//! The wall clock and the `--as-of` time: the only place the CLI reads the time.

/// Milliseconds since the Unix epoch, now.
pub(crate) fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

/// Now as an RFC 3339 timestamp in UTC.
pub(crate) fn now_text() -> String {
    jiff::Timestamp::now().to_string()
}

/// Parses `--as-of`: an RFC 3339 timestamp (`2026-11-01T00:00:00Z`) or a date
/// (`2026-11-01`, midnight UTC).
pub(crate) fn parse_as_of(text: &str) -> Result<i64, String> {
    if let Ok(timestamp) = text.parse::<jiff::Timestamp>() {
        return Ok(timestamp.as_millisecond());
    }
    if let Ok(date) = text.parse::<jiff::civil::Date>() {
        return date
            .to_zoned_datetime(jiff::tz::TimeZone::UTC)
            .map(|zoned| zoned.timestamp().as_millisecond())
            .map_err(|e| e.to_string());
    }
    Err(format!(
        "{text:?} is not a timestamp like 2026-11-01T00:00:00Z or a date like 2026-11-01"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn as_of_accepts_timestamps_and_dates() {
        assert_eq!(parse_as_of("2026-11-01T00:00:00Z"), Ok(1_793_491_200_000));
        assert_eq!(parse_as_of("2026-11-01"), Ok(1_793_491_200_000));
        assert_eq!(
            parse_as_of("2026-11-01T01:00:00+01:00"),
            Ok(1_793_491_200_000)
        );
        assert!(parse_as_of("yesterday").is_err());
    }
}
