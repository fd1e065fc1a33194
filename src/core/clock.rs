//! Time as a value. The shell reads the clocks (`shell::clock`) and passes `Now` to the core, so
//! the core never asks the system and a test can run it on a simulated clock. Also the calendar
//! arithmetic the server needs: HTTP dates and snapshot file names.

/// One reading of both clocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    /// Milliseconds on a monotonic clock; only differences mean anything. Deadlines use this.
    pub mono_ms: u64,
    /// Milliseconds since the Unix epoch, for times shown to people and peers.
    pub unix_ms: u64,
}

/// A deadline on the monotonic clock (the default, 0, has always fired).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Deadline(pub u64);

impl Deadline {
    pub fn after(now: Now, ms: u64) -> Deadline {
        Deadline(now.mono_ms.saturating_add(ms))
    }

    pub fn fired(self, now: Now) -> bool {
        now.mono_ms >= self.0
    }

    /// Milliseconds from `now` until the deadline (0 once it has fired).
    pub fn remaining_ms(self, now: Now) -> u64 {
        self.0.saturating_sub(now.mono_ms)
    }
}

/// Seconds (of a flag or a query) as the milliseconds the core counts in.
pub fn seconds_to_ms(seconds: u64) -> u64 {
    seconds.saturating_mul(1000)
}

/// A UTC calendar time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Civil {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
    /// Day of the week, 0 = Sunday.
    pub weekday: u32,
}

impl Civil {
    /// The calendar time of a Unix time in seconds (Howard Hinnant's `civil_from_days`).
    pub fn from_unix(seconds: u64) -> Civil {
        let days = i64::try_from(seconds / 86_400).expect("u64 seconds / 86400 fits i64");
        let rest = u32::try_from(seconds % 86_400).expect("below 86400");
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = u32::try_from(doy - (153 * mp + 2) / 5 + 1).expect("day of month");
        let month = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).expect("month");
        let year = yoe + era * 400 + i64::from(month <= 2);
        Civil {
            year,
            month,
            day,
            hour: rest / 3600,
            minute: rest / 60 % 60,
            second: rest % 60,
            weekday: u32::try_from((days + 4).rem_euclid(7)).expect("weekday"),
        }
    }

    /// ISO 8601 without the fraction: `2026-12-05T13:24:06` with `-` and `:` as separators, the
    /// basic `20261205T132406` with none.
    pub fn iso8601(&self, date_separator: &str, time_separator: &str) -> String {
        let (d, t) = (date_separator, time_separator);
        let Civil { year, month, day, hour, minute, second, .. } = self;
        format!("{year:04}{d}{month:02}{d}{day:02}T{hour:02}{t}{minute:02}{t}{second:02}")
    }

    /// Days since the Unix epoch of a calendar date (Howard Hinnant's `days_from_civil`).
    pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
        let year = if month <= 2 { year - 1 } else { year };
        let era = year.div_euclid(400);
        let yoe = year.rem_euclid(400);
        let month = i64::from(month);
        let doy = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + i64::from(day) - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        era * 146_097 + doe - 719_468
    }
}

/// An IMF-fixdate for the `Date` header: `Sun, 06 Nov 1994 08:49:37 GMT`.
pub fn http_date(unix_seconds: u64) -> String {
    const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let c = Civil::from_unix(unix_seconds);
    format!(
        "{}, {:02} {} {:04} {:02}:{:02}:{:02} GMT",
        DAYS[c.weekday as usize],
        c.day,
        MONTHS[c.month as usize - 1],
        c.year,
        c.hour,
        c.minute,
        c.second
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_dates_match_known_instants() {
        assert_eq!(http_date(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(http_date(951_782_400), "Tue, 29 Feb 2000 00:00:00 GMT");
        assert_eq!(http_date(1_798_761_599), "Thu, 31 Dec 2026 23:59:59 GMT");
    }

    #[test]
    fn days_round_trip_through_the_calendar() {
        for days in [0u64, 59, 60, 365, 10_957, 11_016, 20_000, 100_000] {
            let c = Civil::from_unix(days * 86_400);
            assert_eq!(Civil::days_from_civil(c.year, c.month, c.day), i64::try_from(days).unwrap());
        }
    }

    #[test]
    fn deadlines_fire_at_their_time() {
        let now = Now { mono_ms: 1000, unix_ms: 0 };
        let deadline = Deadline::after(now, 500);
        assert!(!deadline.fired(now));
        assert!(deadline.fired(Now { mono_ms: 1500, unix_ms: 0 }));
    }
}
