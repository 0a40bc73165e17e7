//! Wall-clock timestamps for log lines (UTC), formatted without a date library.

use std::time::{SystemTime, UNIX_EPOCH};

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// A UTC time split into its calendar fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Utc {
    /// Year.
    pub year: i64,
    /// Month, 1-12.
    pub month: u32,
    /// Day of the month, 1-31.
    pub day: u32,
    /// Hour, minute, second.
    pub hms: (u32, u32, u32),
    /// Milliseconds.
    pub millis: u32,
}

impl Utc {
    /// The current time.
    pub fn now() -> Utc {
        let d = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Utc::from_unix_millis(i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
    }

    /// The time `ms` milliseconds after the Unix epoch.
    pub fn from_unix_millis(ms: i64) -> Utc {
        let secs = ms.div_euclid(1000);
        let days = secs.div_euclid(86_400);
        let rem = secs.rem_euclid(86_400) as u32;
        // Days to civil date (proleptic Gregorian), the era-based method.
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
        let year = yoe + era * 400 + i64::from(month <= 2);
        Utc {
            year,
            month,
            day,
            hms: (rem / 3600, rem / 60 % 60, rem % 60),
            millis: ms.rem_euclid(1000) as u32,
        }
    }

    /// `01/Dec/2026:06:55:00 +0000` (the common log format).
    pub fn clf(&self) -> String {
        let (h, m, s) = self.hms;
        let mon = MONTHS[(self.month as usize).saturating_sub(1).min(11)];
        format!(
            "{:02}/{mon}/{}:{h:02}:{m:02}:{s:02} +0000",
            self.day, self.year
        )
    }

    /// `2026-12-01T06:55:00.123Z` (RFC 3339).
    pub fn rfc3339(&self) -> String {
        let (h, m, s) = self.hms;
        format!(
            "{}-{:02}-{:02}T{h:02}:{m:02}:{s:02}.{:03}Z",
            self.year, self.month, self.day, self.millis
        )
    }
}

#[cfg(test)]
mod tests {
    use super::Utc;

    #[test]
    fn known_instants() {
        assert_eq!(
            Utc::from_unix_millis(0).rfc3339(),
            "1970-01-01T00:00:00.000Z"
        );
        // 2000-02-29 12:34:56.789 UTC
        let t = Utc::from_unix_millis(951_827_696_789);
        assert_eq!(t.rfc3339(), "2000-02-29T12:34:56.789Z");
        assert_eq!(t.clf(), "29/Feb/2000:12:34:56 +0000");
        // 2026-12-01 06:55:00 UTC
        assert_eq!(
            Utc::from_unix_millis(1_796_108_100_000).clf(),
            "01/Dec/2026:06:55:00 +0000"
        );
    }
}
