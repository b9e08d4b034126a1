//! The text line of one record, for a person at a terminal:
//! `2026-12-02 03:04:05.678 +01:00 INFO  registered web.1 (web) on 10.0.0.2`. Local time with its
//! offset from UTC (found by `local_time.rs`), the level as a word, the message with control
//! characters escaped so that no message can move the cursor, colour the terminal or forge a
//! line. The JSON format is `json.rs`.

use log::Level;

/// One record as a text line. `offset_seconds` is the local offset from UTC at that instant.
pub fn format_line(level: Level, unix_millis: i64, offset_seconds: i32, message: &str) -> String {
    let local_millis = unix_millis.saturating_add(i64::from(offset_seconds) * 1000);
    let (secs, millis) = (local_millis.div_euclid(1000), local_millis.rem_euclid(1000));
    let (days, second_of_day) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (year, month, day) = civil_date(days);
    let (hour, minute, second) = (
        second_of_day / 3600,
        second_of_day % 3600 / 60,
        second_of_day % 60,
    );
    let sign = if offset_seconds < 0 { '-' } else { '+' };
    let offset_minutes = offset_seconds.unsigned_abs() / 60;
    let level = match level {
        Level::Error => "ERROR",
        Level::Warn => "WARN",
        Level::Info => "INFO",
        Level::Debug => "DEBUG",
        Level::Trace => "TRACE",
    };
    format!(
        "{year:04}-{month:02}-{day:02} {hour:02}:{minute:02}:{second:02}.{millis:03} \
         {sign}{:02}:{:02} {level:<5} {}\n",
        offset_minutes / 60,
        offset_minutes % 60,
        escaped(message),
    )
}

/// Year, month (1–12) and day (1–31) of the day `days` after 1970-01-01, in the proleptic
/// Gregorian calendar. Counts in 400-year eras of 146,097 days from 0000-03-01, so that the leap
/// day ends a year of the count.
fn civil_date(days: i64) -> (i64, i64, i64) {
    const DAYS_FROM_0000_03_01_TO_EPOCH: i64 = 719_468;
    let days = days + DAYS_FROM_0000_03_01_TO_EPOCH;
    let era = days.div_euclid(146_097);
    let day_of_era = days.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    // Months from March: 31, 30, 31, 30, 31, 31, 30, 31, 30, 31, 31, 28/29 days.
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// `message` with every control or invisible formatting character escaped (`\n`, `\u{1b}`,
/// `\u{202e}`); quotes and backslashes stay as they are, since nothing parses this format.
fn escaped(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    for c in message.chars() {
        match c {
            '"' | '\'' | '\\' => out.push(c),
            c => out.extend(c.escape_debug()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_has_local_time_with_its_offset_the_level_word_and_the_message() {
        // 2026-12-02 02:04:05.678 UTC.
        let at = 1_796_177_045_678;
        assert_eq!(
            format_line(Level::Info, at, 3600, "registered web.1 (web) on 10.0.0.2"),
            "2026-12-02 03:04:05.678 +01:00 INFO  registered web.1 (web) on 10.0.0.2\n"
        );
        assert_eq!(
            format_line(Level::Error, at, 0, "x"),
            "2026-12-02 02:04:05.678 +00:00 ERROR x\n"
        );
        // Half-hour zones west of UTC, across midnight and into the previous day.
        assert_eq!(
            format_line(Level::Warn, at, -(3 * 3600 + 30 * 60), "y"),
            "2026-12-01 22:34:05.678 -03:30 WARN  y\n"
        );
        assert_eq!(
            format_line(Level::Debug, 0, 0, "z"),
            "1970-01-01 00:00:00.000 +00:00 DEBUG z\n"
        );
    }

    #[test]
    fn dates_are_right_across_leap_days_and_centuries() {
        let day = |y, m, d| (y, m, d);
        // Days since 1970-01-01, from `date -u -d … +%s` / 86400.
        for (days, date) in [
            (0, day(1970, 1, 1)),
            (-1, day(1969, 12, 31)),
            (11_016, day(2000, 2, 29)),
            (11_017, day(2000, 3, 1)),
            (47_540, day(2100, 2, 28)),
            (47_541, day(2100, 3, 1)),
            (20_789, day(2026, 12, 2)),
        ] {
            assert_eq!(civil_date(days), date, "{days}");
        }
    }

    #[test]
    fn a_message_cannot_forge_a_line_or_drive_the_terminal() {
        let line = format_line(
            Level::Info,
            0,
            0,
            "web\n1970-01-01 00:00:00.000 +00:00 ERROR forged \u{1b}[2J\r\u{202e}\"q\"",
        );
        assert_eq!(line.matches('\n').count(), 1, "{line}");
        assert!(line.ends_with('\n'));
        assert!(!line.contains('\u{1b}') && !line.contains('\r') && !line.contains('\u{202e}'));
        assert!(line.contains(r#"web\n1970"#), "{line}");
        assert!(line.contains(r#"\u{1b}[2J\r\u{202e}"q""#), "{line}");
        // Ordinary text, non-ASCII included, is left alone.
        assert!(format_line(Level::Info, 0, 0, "café ✓").ends_with("INFO  café ✓\n"));
    }
}
