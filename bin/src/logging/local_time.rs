//! The local offset from UTC at an instant, from the C library's `localtime_r`: it knows the
//! zone's rules (`TZ`, `/etc/localtime`, daylight saving) without a time-zone crate or a copy of
//! the tz database. glibc and musl both fall back to UTC when no zone is configured (a static musl
//! binary in an empty container), and so does this on any error. The C library reads `TZ` itself;
//! that is the one variable read outside `main`, and it only changes how times look.
//!
//! The one `unsafe` block of the binary is here: calling `localtime_r` with a `time_t` and a
//! `tm` we own, which it fills in; it keeps no pointer to either.

/// Offsets beyond a day are not real zones; anything else the C library answers is refused.
const MAX_OFFSET_SECONDS: i64 = 24 * 60 * 60;

/// Seconds east of UTC of local time at `unix_seconds`; 0 (UTC) if the C library cannot say.
// `libc` marks `time_t` deprecated on musl targets because it will follow musl 1.2's 64-bit
// `time_t`; the conversion below is written to be right for either width.
#[allow(unsafe_code, deprecated)]
pub fn utc_offset_seconds(unix_seconds: i64) -> i32 {
    // Where `time_t` is 32 bits, an instant past 2038 is asked about as the last one it holds.
    let time = libc::time_t::try_from(unix_seconds).unwrap_or(if unix_seconds < 0 {
        libc::time_t::MIN
    } else {
        libc::time_t::MAX
    });
    // SAFETY: `tm` is plain data (integers and a pointer that may be null), so all-zero is a valid
    // value; `localtime_r` only reads `time` and writes `tm`, both live for the call, and is
    // thread-safe (unlike `localtime`).
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    let filled = unsafe { libc::localtime_r(&time, &mut tm) };
    if filled.is_null() {
        return 0;
    }
    // `c_long` is 32 bits on some targets, so the conversion is not useless everywhere.
    #[allow(clippy::useless_conversion)]
    let offset = i64::from(tm.tm_gmtoff);
    if offset.abs() > MAX_OFFSET_SECONDS {
        return 0;
    }
    i32::try_from(offset).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_offset_is_within_a_day_whatever_the_instant() {
        for at in [
            0,
            1_796_177_045,
            -86_400,
            i64::from(i32::MAX) + 1,
            i64::MAX,
            i64::MIN,
        ] {
            let offset = utc_offset_seconds(at);
            assert!(
                i64::from(offset).abs() <= MAX_OFFSET_SECONDS,
                "{at}: {offset}"
            );
        }
    }
}
