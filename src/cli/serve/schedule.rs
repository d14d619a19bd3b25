//! When a job runs: a cron expression read in Europe/Stockholm (croner), DST-safe: a time the
//! spring change skips runs at the first instant after it; one the autumn change repeats, once.

use chrono::{DateTime, Duration, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Europe::Stockholm;
use croner::Cron;
use std::str::FromStr;

/// A job's schedule.
#[derive(Debug, Clone)]
pub(crate) struct Schedule {
    cron: Cron,
    text: String,
}

impl Schedule {
    /// Five fields (minute granularity) or six (with seconds first).
    pub(crate) fn parse(text: &str) -> anyhow::Result<Self> {
        let cron = Cron::from_str(text)
            .map_err(|e| anyhow::anyhow!("schedule '{text}' is not a cron expression: {e}"))?;
        Ok(Schedule {
            cron,
            text: text.to_owned(),
        })
    }

    /// The next run strictly after `after`. The pattern is matched against Stockholm's wall
    /// clock, minute by minute in local time: a wall time the spring change skips (02:30 on
    /// the last Sunday of March) maps to the first instant after the gap, and a wall time the
    /// autumn change repeats maps to its first occurrence only, so a daily job runs once on
    /// both days.
    pub(crate) fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = after.with_timezone(&Stockholm).naive_local();
        let mut from = local;
        // A year of candidates is more than any pattern needs; a pattern that never matches
        // (31 February) gives None.
        for _ in 0..400 {
            let naive: NaiveDateTime = self.cron.find_next_occurrence(&from, false).ok()?;
            let at = match Stockholm.from_local_datetime(&naive) {
                chrono::LocalResult::Single(t) => t,
                // Repeated hour: the first of the two instants.
                chrono::LocalResult::Ambiguous(first, _) => first,
                // Skipped hour: the first instant after the gap.
                chrono::LocalResult::None => {
                    let mut probe = naive;
                    loop {
                        probe += Duration::minutes(1);
                        if let Some(t) = Stockholm.from_local_datetime(&probe).earliest() {
                            break t;
                        }
                    }
                }
            }
            .with_timezone(&Utc);
            if at > after {
                return Some(at);
            }
            from = naive;
        }
        None
    }

    /// The expression as written.
    pub(crate) fn text(&self) -> &str {
        &self.text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    /// The runs of a daily 02:30 job from `from` for `days` days, in local time.
    fn runs(s: &Schedule, from: &str, days: usize) -> Vec<String> {
        let mut at = utc(from);
        let mut out = Vec::new();
        for _ in 0..days {
            at = s.next_after(at).unwrap();
            out.push(
                at.with_timezone(&Stockholm)
                    .format("%m-%d %H:%M %z")
                    .to_string(),
            );
        }
        out
    }

    #[test]
    fn a_daily_0230_job_runs_once_a_day_across_both_clock_changes() {
        let s = Schedule::parse("30 2 * * *").unwrap();
        // Spring 2026: the clocks go 02:00 → 03:00 on 29 March; 02:30 does not exist.
        assert_eq!(
            runs(&s, "2026-03-27T12:00:00Z", 4),
            [
                "03-28 02:30 +0100",
                "03-29 03:00 +0200",
                "03-30 02:30 +0200",
                "03-31 02:30 +0200"
            ]
        );
        // Autumn 2026: 03:00 → 02:00 on 25 October; 02:30 happens twice, the job runs once.
        assert_eq!(
            runs(&s, "2026-10-23T12:00:00Z", 4),
            [
                "10-24 02:30 +0200",
                "10-25 02:30 +0200",
                "10-26 02:30 +0100",
                "10-27 02:30 +0100"
            ]
        );
    }

    #[test]
    fn seconds_are_allowed_and_a_bad_pattern_names_itself() {
        let s = Schedule::parse("*/2 * * * * *").unwrap();
        let a = utc("2026-06-01T10:00:00Z");
        assert_eq!(s.next_after(a), Some(utc("2026-06-01T10:00:02Z")));
        let e = Schedule::parse("every night").unwrap_err().to_string();
        assert!(e.contains("every night"), "{e}");
    }
}
