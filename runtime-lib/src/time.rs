//! UTC timestamps in the formats the wrapper prints and sends, without a time zone database.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Broken-down UTC time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UtcTime {
    /// Year.
    pub year: i64,
    /// Month, 1-12.
    pub month: u32,
    /// Day of the month, 1-31.
    pub day: u32,
    /// Hour, 0-23.
    pub hour: u32,
    /// Minute, 0-59.
    pub minute: u32,
    /// Second, 0-59.
    pub second: u32,
    /// Microseconds, 0-999999.
    pub micros: u32,
}

impl UtcTime {
    /// Converts a system time (times before 1970 are clamped to the epoch).
    pub fn from_system(t: SystemTime) -> Self {
        let d = t.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
        let secs = i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
        let days = secs.div_euclid(86_400);
        let rem = secs.rem_euclid(86_400);
        let (year, month, day) = civil_from_days(days);
        // rem < 86400, so these conversions cannot truncate.
        let rem = u32::try_from(rem).unwrap_or(0);
        Self {
            year,
            month,
            day,
            hour: rem / 3600,
            minute: rem % 3600 / 60,
            second: rem % 60,
            micros: d.subsec_micros(),
        }
    }

    /// Now.
    pub fn now() -> Self {
        Self::from_system(SystemTime::now())
    }

    /// `2024-01-31 13:45:07,123` (the timestamp of Python's logging module).
    pub(crate) fn log_format(&self) -> String {
        format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02},{:03}",
            self.year,
            self.month,
            self.day,
            self.hour,
            self.minute,
            self.second,
            self.micros / 1000
        )
    }

    /// `2024-01-31 13:45:07+00:00` (the final summary line).
    pub(crate) fn summary_format(&self) -> String {
        format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02}+00:00",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )
    }

    /// `2024-01-31T13:45:07.123Z` (ISO 8601 with milliseconds, as Lambda's JSON logs write
    /// it).
    pub(crate) fn iso8601_millis(&self) -> String {
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
            self.year,
            self.month,
            self.day,
            self.hour,
            self.minute,
            self.second,
            self.micros / 1000
        )
    }

    /// `2024-01-31T13:45:07.123456+00:00` (ISO-8601, as sent to the API server).
    pub fn iso8601(&self) -> String {
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}+00:00",
            self.year, self.month, self.day, self.hour, self.minute, self.second, self.micros
        )
    }
}

/// Days since 1970-01-01 to (year, month, day), after Howard Hinnant's `civil_from_days`.
/// Days since 1970-01-01 of a civil date (the inverse of `civil_from_days`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Parses an RFC 3339 UTC time as Lambda's telemetry writes it
/// (`2026-11-27T10:00:03.123Z`, fraction optional, `Z` or `+00:00`). `None` for anything
/// else, including other offsets and times before 1970.
pub fn parse_rfc3339_utc(text: &str) -> Option<SystemTime> {
    let text = text.trim();
    let rest = text
        .strip_suffix('Z')
        .or_else(|| text.strip_suffix("+00:00"))?;
    parse_naive(rest)
}

/// Parses an RFC 3339 time with any UTC offset (`2026-11-27T11:00:00+01:00`,
/// `2026-11-27T05:00:00.5-05:00`, `Z` or `z`; also `+0100` and `+01`, which ISO 8601 and
/// dateutil accept, as botocore reads credential expiry times). `None` for anything else,
/// and for times before 1970.
pub fn parse_rfc3339(text: &str) -> Option<SystemTime> {
    let text = text.trim();
    if let Some(rest) = text.strip_suffix(['Z', 'z']) {
        return parse_naive(rest);
    }
    // The offset starts at the last sign after the time of day (dates hold '-' too).
    let t = text.find(['T', 't', ' '])?;
    let sign_at = t + text[t..].rfind(['+', '-'])?;
    let (rest, offset) = text.split_at(sign_at);
    let (sign, digits) = offset.split_at(1);
    let digits: String = digits.chars().filter(|c| *c != ':').collect();
    if !matches!(digits.len(), 2 | 4) || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let hours: u64 = digits[..2].parse().ok()?;
    let minutes: u64 = if digits.len() == 4 {
        digits[2..].parse().ok()?
    } else {
        0
    };
    if hours > 23 || minutes > 59 {
        return None;
    }
    let offset = Duration::from_secs(hours * 3600 + minutes * 60);
    let local = parse_naive(rest)?;
    // Local time = UTC + offset, so UTC = local - offset.
    if sign == "+" {
        local.checked_sub(offset)
    } else {
        local.checked_add(offset)
    }
}

/// `YYYY-MM-DDTHH:MM:SS[.fraction]` read as UTC.
fn parse_naive(rest: &str) -> Option<SystemTime> {
    let (date, time) = rest.split_once(['T', 't', ' '])?;
    let mut date_parts = date.splitn(3, '-');
    let num = |s: Option<&str>, len: usize| -> Option<i64> {
        let s = s?;
        (s.len() == len && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.parse().ok())?
    };
    let (y, mo, d) = (
        num(date_parts.next(), 4)?,
        num(date_parts.next(), 2)?,
        num(date_parts.next(), 2)?,
    );
    let (hms, fraction) = match time.split_once('.') {
        Some((hms, f)) => (hms, Some(f)),
        None => (time, None),
    };
    let mut time_parts = hms.splitn(3, ':');
    let (h, mi, s) = (
        num(time_parts.next(), 2)?,
        num(time_parts.next(), 2)?,
        num(time_parts.next(), 2)?,
    );
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    let nanos = match fraction {
        None => 0,
        Some(f) if !f.is_empty() && f.len() <= 9 && f.bytes().all(|b| b.is_ascii_digit()) => {
            let padded = format!("{f:0<9}");
            padded.parse::<u32>().ok()?
        }
        Some(_) => return None,
    };
    let secs = days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + s;
    let secs = u64::try_from(secs).ok()?;
    UNIX_EPOCH.checked_add(Duration::new(secs, nanos))
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    // d is in 1..=31 and m in 1..=12 by construction.
    (
        y,
        u32::try_from(m).unwrap_or(1),
        u32::try_from(d).unwrap_or(1),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_times_with_any_offset() {
        let utc = parse_rfc3339("2026-11-27T10:00:00Z").unwrap();
        for text in [
            "2026-11-27T11:00:00+01:00",
            "2026-11-27T05:00:00-05:00",
            "2026-11-27t10:00:00z",
            "2026-11-27T10:00:00+00:00",
            "2026-11-27T10:00:00-00:00",
            "2026-11-27T15:30:00+0530",
            "2026-11-27T12:00:00+02",
            " 2026-11-27 10:00:00Z ",
        ] {
            assert_eq!(parse_rfc3339(text), Some(utc), "{text}");
        }
        assert_eq!(
            parse_rfc3339("2026-11-27T11:00:00.250+01:00"),
            utc.checked_add(Duration::from_millis(250))
        );
        for bad in [
            "2026-11-27T10:00:00",
            "2026-11-27T10:00:00+1:00",
            "2026-11-27T10:00:00+24:00",
            "2026-11-27T10:00:00+01:60",
            "2026-11-27",
            "",
            "1969-12-31T23:00:00-02:00x",
            "not a time",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
        // Lambda's parser stays strict.
        assert_eq!(parse_rfc3339_utc("2026-11-27T11:00:00+01:00"), None);
    }

    #[test]
    fn rfc3339_times_from_telemetry() {
        let t = parse_rfc3339_utc("2021-08-16T14:26:54.123Z").unwrap();
        assert_eq!(
            UtcTime::from_system(t).iso8601(),
            "2021-08-16T14:26:54.123000+00:00"
        );
        let t = parse_rfc3339_utc("2000-02-29T00:00:00+00:00").unwrap();
        assert_eq!(
            UtcTime::from_system(t).iso8601(),
            "2000-02-29T00:00:00.000000+00:00"
        );
        assert_eq!(parse_rfc3339_utc("1970-01-01T00:00:00Z"), Some(UNIX_EPOCH));
        for bad in [
            "",
            "2021-08-16T14:26:54",
            "2021-08-16T14:26:54+02:00",
            "2021-13-16T14:26:54Z",
            "2021-08-16T24:00:00Z",
            "2021-08-16T14:26:54.Z",
            "2021-08-16T14:26:54.1234567890Z",
            "1969-12-31T23:59:59Z",
            "21-08-16T14:26:54Z",
            "２０２１-08-16T14:26:54Z",
        ] {
            assert_eq!(parse_rfc3339_utc(bad), None, "{bad}");
        }
    }

    #[test]
    fn formats_known_instants() {
        let t = UtcTime::from_system(UNIX_EPOCH + Duration::from_micros(1_629_124_014_123_456));
        assert_eq!(t.iso8601(), "2021-08-16T14:26:54.123456+00:00");
        assert_eq!(t.log_format(), "2021-08-16 14:26:54,123");
        assert_eq!(t.summary_format(), "2021-08-16 14:26:54+00:00");
        let leap = UtcTime::from_system(UNIX_EPOCH + Duration::from_secs(951_782_400));
        assert_eq!(leap.iso8601(), "2000-02-29T00:00:00.000000+00:00");
        assert_eq!(
            UtcTime::from_system(UNIX_EPOCH).iso8601(),
            "1970-01-01T00:00:00.000000+00:00"
        );
    }
}
