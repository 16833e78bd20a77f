//! Parsing the pieces of a window as they are written in config files:
//! day names, `HH:MM`, the locksmith forms `"Thu 04:00"` and `"1h30m"`, and
//! the `localtime` time zone. Errors are one phrase saying what was wrong
//! and what to write instead; the config loader adds file and key.

use std::path::Path;

use chrono::{NaiveTime, Weekday};
use chrono_tz::Tz;

/// Longest window, in minutes: one week.
pub const MAX_LENGTH_MINUTES: u32 = 7 * 24 * 60;

const ALL_DAYS: [Weekday; 7] = [
    Weekday::Mon,
    Weekday::Tue,
    Weekday::Wed,
    Weekday::Thu,
    Weekday::Fri,
    Weekday::Sat,
    Weekday::Sun,
];

/// A day name: `Mon`..`Sun` or `Monday`..`Sunday`, any case.
pub fn parse_day(name: &str) -> Result<Weekday, String> {
    let lower = name.to_ascii_lowercase();
    ALL_DAYS
        .into_iter()
        .find(|day| {
            let short = day.to_string().to_ascii_lowercase();
            let long = long_name(*day);
            lower == short || lower == long
        })
        .ok_or_else(|| {
            format!("{name:?} is not a day name: use Mon, Tue, Wed, Thu, Fri, Sat or Sun")
        })
}

fn long_name(day: Weekday) -> &'static str {
    match day {
        Weekday::Mon => "monday",
        Weekday::Tue => "tuesday",
        Weekday::Wed => "wednesday",
        Weekday::Thu => "thursday",
        Weekday::Fri => "friday",
        Weekday::Sat => "saturday",
        Weekday::Sun => "sunday",
    }
}

/// A local time of day written `HH:MM` (24-hour clock, two digits each).
pub fn parse_time_of_day(text: &str) -> Result<NaiveTime, String> {
    let bad = || format!("{text:?} is not a time of day: write HH:MM from 00:00 to 23:59");
    let (h, m) = text.split_once(':').ok_or_else(bad)?;
    let two_digits = |s: &str| s.len() == 2 && s.bytes().all(|b| b.is_ascii_digit());
    if !two_digits(h) || !two_digits(m) {
        return Err(bad());
    }
    let (h, m): (u32, u32) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    NaiveTime::from_hms_opt(h, m, 0).ok_or_else(bad)
}

/// Locksmith's window start: `"Thu 04:00"` (one day) or `"04:00"` (every day).
pub fn parse_locksmith_start(text: &str) -> Result<(Vec<Weekday>, NaiveTime), String> {
    let mut words = text.split_whitespace();
    match (words.next(), words.next(), words.next()) {
        (Some(time), None, None) => Ok((ALL_DAYS.to_vec(), parse_time_of_day(time)?)),
        (Some(day), Some(time), None) => Ok((vec![parse_day(day)?], parse_time_of_day(time)?)),
        _ => Err(format!(
            "{text:?} is not a window start: write \"Thu 04:00\" or \"04:00\" (every day)"
        )),
    }
}

/// Locksmith's window length, a Go duration of whole minutes such as
/// `"1h30m"`, `"90m"` or `"2h"`; returns minutes.
pub fn parse_locksmith_length(text: &str) -> Result<u32, String> {
    let bad = || {
        format!("{text:?} is not a window length: write hours and minutes like \"1h30m\", \"90m\" or \"2h\"")
    };
    let mut seconds: u64 = 0;
    let mut number = String::new();
    let mut any_unit = false;
    for c in text.chars() {
        if c.is_ascii_digit() {
            if number.len() >= 9 {
                return Err(bad());
            }
            number.push(c);
            continue;
        }
        let unit: u64 = match c {
            'h' => 3600,
            'm' => 60,
            's' => 1,
            _ => return Err(bad()),
        };
        let value: u64 = number.parse().map_err(|_| bad())?;
        seconds = seconds.saturating_add(value.saturating_mul(unit));
        number.clear();
        any_unit = true;
    }
    if !number.is_empty() || !any_unit {
        return Err(bad());
    }
    if seconds % 60 != 0 {
        return Err(format!(
            "{text:?} is not a whole number of minutes: windows have minute precision"
        ));
    }
    let minutes = seconds / 60;
    if minutes == 0 || minutes > u64::from(MAX_LENGTH_MINUTES) {
        return Err(format!(
            "{text:?} is out of range: a window lasts from 1 minute to one week (168h)"
        ));
    }
    u32::try_from(minutes).map_err(|_| bad())
}

/// A time zone name: `UTC`, an IANA name such as `Europe/Berlin`.
pub fn parse_time_zone(name: &str) -> Result<Tz, String> {
    name.parse::<Tz>().map_err(|_| {
        format!("{name:?} is not a known time zone: use \"UTC\", an IANA name such as \"Europe/Berlin\", or \"localtime\"")
    })
}

/// The system's local time zone, as `localtime` means it: the `TZ`
/// environment variable when set (a name, or `:name`, or a path into a
/// `zoneinfo` directory), else the target of the `/etc/localtime` symlink;
/// a missing `/etc/localtime` means UTC, as in glibc.
pub fn resolve_localtime(tz_env: Option<&str>, localtime_link: &Path) -> Result<Tz, String> {
    if let Some(value) = tz_env.filter(|v| !v.is_empty()) {
        let value = value.strip_prefix(':').unwrap_or(value);
        let name = zoneinfo_name(value).unwrap_or(value);
        return parse_time_zone(name).map_err(|_| {
            format!("\"localtime\": TZ={value:?} is not a known time zone name; set time_zone to an IANA name")
        });
    }
    match std::fs::read_link(localtime_link) {
        Ok(target) => {
            let target = target.to_string_lossy();
            let name = zoneinfo_name(&target).ok_or_else(|| {
                format!("\"localtime\": {} points to {target}, not into a zoneinfo directory; set time_zone to an IANA name",
                    localtime_link.display())
            })?;
            parse_time_zone(name)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Tz::UTC),
        Err(_) => Err(format!(
            "\"localtime\": {} is not a symlink into zoneinfo, so the zone name is unknown; set time_zone to an IANA name",
            localtime_link.display()
        )),
    }
}

/// `Europe/Berlin` from `/usr/share/zoneinfo/Europe/Berlin`.
fn zoneinfo_name(path: &str) -> Option<&str> {
    path.rsplit_once("zoneinfo/").map(|(_, name)| name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn day_names_short_long_any_case() {
        assert_eq!(parse_day("Mon"), Ok(Weekday::Mon));
        assert_eq!(parse_day("sunday"), Ok(Weekday::Sun));
        assert_eq!(parse_day("THU"), Ok(Weekday::Thu));
        let err = parse_day("Tues").unwrap_err();
        assert!(err.contains("\"Tues\" is not a day name"), "{err}");
    }

    #[test]
    fn times_of_day() {
        assert_eq!(parse_time_of_day("00:00").unwrap().to_string(), "00:00:00");
        assert_eq!(parse_time_of_day("23:59").unwrap().to_string(), "23:59:00");
        for bad in [
            "25:00", "24:00", "12:60", "1:00", "12:5", "12-00", "", "ab:cd", "+1:00",
        ] {
            let err = parse_time_of_day(bad).unwrap_err();
            assert!(err.contains("HH:MM"), "{bad}: {err}");
        }
    }

    #[test]
    fn locksmith_start_forms() {
        let (days, t) = parse_locksmith_start("Thu 04:00").unwrap();
        assert_eq!(days, vec![Weekday::Thu]);
        assert_eq!(t, NaiveTime::from_hms_opt(4, 0, 0).unwrap());
        let (days, _) = parse_locksmith_start("14:00").unwrap();
        assert_eq!(days.len(), 7);
        assert!(parse_locksmith_start("Thu 04:00 extra").is_err());
        assert!(parse_locksmith_start("").is_err());
        assert!(parse_locksmith_start("Thx 04:00")
            .unwrap_err()
            .contains("day name"));
    }

    #[test]
    fn locksmith_lengths() {
        assert_eq!(parse_locksmith_length("1h30m"), Ok(90));
        assert_eq!(parse_locksmith_length("90m"), Ok(90));
        assert_eq!(parse_locksmith_length("2h"), Ok(120));
        assert_eq!(parse_locksmith_length("1h0m120s"), Ok(62));
        assert_eq!(parse_locksmith_length("168h"), Ok(MAX_LENGTH_MINUTES));
        for bad in [
            "",
            "90",
            "1x",
            "h",
            "1h30",
            "0m",
            "169h",
            "-1h",
            "1.5h",
            "9999999999h",
        ] {
            assert!(parse_locksmith_length(bad).is_err(), "{bad}");
        }
        assert!(parse_locksmith_length("30s")
            .unwrap_err()
            .contains("whole number of minutes"));
    }

    #[test]
    fn time_zones() {
        assert_eq!(parse_time_zone("UTC"), Ok(Tz::UTC));
        assert_eq!(parse_time_zone("Europe/Berlin"), Ok(Tz::Europe__Berlin));
        assert!(parse_time_zone("Mars/Olympus")
            .unwrap_err()
            .contains("not a known time zone"));
    }

    #[test]
    fn localtime_from_tz_env_and_symlink() {
        let nowhere = Path::new("/nonexistent/localtime");
        assert_eq!(
            resolve_localtime(Some(":America/New_York"), nowhere),
            Ok(Tz::America__New_York)
        );
        assert_eq!(
            resolve_localtime(Some("/usr/share/zoneinfo/Europe/Berlin"), nowhere),
            Ok(Tz::Europe__Berlin)
        );
        assert!(resolve_localtime(Some("Nowhere/Town"), nowhere).is_err());
        // No TZ and no /etc/localtime: UTC, as glibc does.
        assert_eq!(resolve_localtime(None, nowhere), Ok(Tz::UTC));

        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("localtime");
        std::os::unix::fs::symlink("/usr/share/zoneinfo/Asia/Tokyo", &link).unwrap();
        assert_eq!(resolve_localtime(None, &link), Ok(Tz::Asia__Tokyo));

        let plain = dir.path().join("plain");
        std::fs::write(&plain, b"TZif").unwrap();
        assert!(resolve_localtime(None, &plain)
            .unwrap_err()
            .contains("not a symlink"));
        let odd = dir.path().join("odd");
        std::os::unix::fs::symlink("/somewhere/else", &odd).unwrap();
        assert!(resolve_localtime(None, &odd)
            .unwrap_err()
            .contains("not into a zoneinfo"));
    }
}
