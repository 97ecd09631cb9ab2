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
    pub fn log_format(&self) -> String {
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
    pub fn summary_format(&self) -> String {
        format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02}+00:00",
            self.year, self.month, self.day, self.hour, self.minute, self.second
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
