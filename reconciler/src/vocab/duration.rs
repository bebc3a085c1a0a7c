//! Durations written the way people read them: `2 days`, `1 hour 30 minutes`, `500 ms` (not
//! `2days` or `1h 30m`). humantime parses every form this writes, so a duration shown in a plan
//! or a schema can be pasted back into a fleet.

/// `d` in whole units, largest first: days, hours, minutes, seconds, and milliseconds only
/// below a second.
pub fn readable(d: std::time::Duration) -> String {
    let secs = d.as_secs();
    if secs == 0 {
        return format!("{} ms", d.subsec_millis());
    }
    let units = [(86_400, "day"), (3_600, "hour"), (60, "minute"), (1, "second")];
    let mut rest = secs;
    let mut parts = Vec::new();
    for (size, name) in units {
        let n = rest / size;
        rest %= size;
        if n > 0 {
            parts.push(format!("{n} {name}{}", if n == 1 { "" } else { "s" }));
        }
    }
    parts.join(" ")
}

#[cfg(test)]
mod tests {
    use super::readable;
    use std::time::Duration;

    #[test]
    fn durations_read_as_words_and_parse_back() {
        for (d, text) in [
            (Duration::from_secs(48 * 3600), "2 days"),
            (Duration::from_secs(3600), "1 hour"),
            (Duration::from_secs(5400), "1 hour 30 minutes"),
            (Duration::from_secs(86_400 + 61), "1 day 1 minute 1 second"),
            (Duration::from_millis(500), "500 ms"),
        ] {
            assert_eq!(readable(d), text);
            assert_eq!(humantime::parse_duration(text).ok(), Some(d), "{text}");
        }
    }
}
