//! Wall-clock times as the box stores and shows them.
//!
//! Stored: µs since the Unix epoch (UTC), so ranges are integer comparisons. Shown: RFC 3339
//! with the configured timezone's offset, e.g. `2026-11-22T10:00:00+08:00`.

use chrono::{DateTime, NaiveDate, NaiveDateTime, SecondsFormat, TimeZone, Utc};
use chrono_tz::Tz;
use thiserror::Error;

/// µs since the Unix epoch → UTC time (out-of-range values clamp to the epoch).
pub fn from_us(us: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(us).unwrap_or_default()
}

/// RFC 3339 with the offset of `tz`, with as many fractional digits as the stored µs need (none
/// for whole seconds): a time printed and read back selects exactly the same rows.
pub fn rfc3339(t: DateTime<Utc>, tz: Tz) -> String {
    t.with_timezone(&tz).to_rfc3339_opts(SecondsFormat::AutoSi, false)
}

/// RFC 3339 of a stored µs value.
pub fn rfc3339_us(us: i64, tz: Tz) -> String {
    rfc3339(from_us(us), tz)
}

#[derive(Debug, Error)]
#[error(
    "{value:?}: expected a time as RFC 3339 (2026-11-22T10:00:00+08:00), a local date and time (2026-11-22 10:00) or a date (2026-11-22)"
)]
pub struct TimeArgError {
    pub value: String,
}

/// Parses a time given on the command line: RFC 3339, a local `YYYY-MM-DD HH:MM[:SS]`
/// (or with `T`), or a local date meaning its midnight.
pub fn parse_time_arg(s: &str, tz: Tz) -> Result<DateTime<Utc>, TimeArgError> {
    let err = || TimeArgError { value: s.to_string() };
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    let local = [
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M",
    ]
    .iter()
    .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())
    .or_else(|| {
        NaiveDate::parse_from_str(s, "%Y-%m-%d")
            .ok()
            .and_then(|d| d.and_hms_opt(0, 0, 0))
    })
    .ok_or_else(err)?;
    tz.from_local_datetime(&local)
        .earliest()
        .map(|t| t.with_timezone(&Utc))
        .ok_or_else(err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::Asia::Shanghai;

    #[test]
    fn shows_the_configured_offset() {
        let t = parse_time_arg("2026-11-22T02:00:00Z", Shanghai).unwrap();
        assert_eq!(rfc3339(t, Shanghai), "2026-11-22T10:00:00+08:00");
    }

    #[test]
    fn local_forms() {
        let a = parse_time_arg("2026-11-22 10:00", Shanghai).unwrap();
        let b = parse_time_arg("2026-11-22T10:00:00+08:00", Shanghai).unwrap();
        assert_eq!(a, b);
        let d = parse_time_arg("2026-11-22", Shanghai).unwrap();
        assert_eq!(rfc3339(d, Shanghai), "2026-11-22T00:00:00+08:00");
        assert!(parse_time_arg("yesterday", Shanghai).is_err());
    }
}
