//! Retention and disk decisions (R6), pure: which files may go, whether the disk counts as
//! full, how many days are left. Like Frigate's retention decision, it takes numbers and
//! returns a plan; `daemon::evidence` measures the disk and carries the plan out.
//!
//! R6 invariant: a file younger than the retention is never in a plan, whatever the disk
//! says. Plans are built only from [`Expired`] values, which only [`Expired::check`] makes.

use std::time::Duration;

/// A configured "year" of retention: the profiles say 3 × 365 and 2 × 365 days.
pub const YEAR: Duration = Duration::from_secs(365 * 86_400);
const DAY_US: i64 = 86_400_000_000;

/// How long a file is kept at least: the retention plus one day for every full 365 days of it.
/// "3 years" written as 3 × 365 days can be 1096 calendar days (a 29 February inside), and the
/// extra day per year covers that and any timezone offset between the recording's local date
/// and UTC. Shorter retentions (tests, custom profiles in seconds) are taken exactly.
pub fn keep_for(retention: Duration) -> Duration {
    let years = retention.as_secs() / YEAR.as_secs();
    retention + Duration::from_secs(years * 86_400)
}

/// True when a file whose content ends at `file_time_us` may be deleted at `now_us`.
pub fn is_expired(file_time_us: i64, now_us: i64, retention: Duration) -> bool {
    let keep = keep_for(retention).as_micros().min(i64::MAX as u128) as i64;
    now_us.saturating_sub(file_time_us) >= keep
}

/// What to do when the disk is full (`[evidence] disk_policy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiskPolicy {
    /// Default. Files are deleted as they pass the retention. When the disk is full anyway,
    /// new recording stops (the recorder records a `disk_full` gap) and an alarm is raised.
    Protect,
    /// Files are kept past the retention while there is room. When the disk is full, the
    /// oldest files that are past the retention are deleted, oldest first; if none is, it acts
    /// as `protect`.
    DeleteOldest,
}

impl DiskPolicy {
    pub const NAMES: &'static [&'static str] = &["protect", "delete-oldest"];

    pub fn parse(s: &str) -> Option<DiskPolicy> {
        match s {
            "protect" => Some(DiskPolicy::Protect),
            "delete-oldest" => Some(DiskPolicy::DeleteOldest),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            DiskPolicy::Protect => "protect",
            DiskPolicy::DeleteOldest => "delete-oldest",
        }
    }
}

/// A file found past its retention. Only [`Expired::check`] makes one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expired {
    seq: i64,
    bytes: u64,
    time_us: i64,
}

impl Expired {
    /// `Some` only when the file is past its retention at `now_us`.
    pub fn check(
        seq: i64,
        bytes: Option<i64>,
        time_us: i64,
        now_us: i64,
        retention: Duration,
    ) -> Option<Expired> {
        is_expired(time_us, now_us, retention).then(|| Expired {
            seq,
            bytes: bytes.unwrap_or(0).max(0) as u64,
            time_us,
        })
    }

    pub fn seq(&self) -> i64 {
        self.seq
    }
}

/// What one pass should do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Seqs of the files to delete (records referring to them), oldest first.
    pub delete: Vec<i64>,
    /// Delete them because the disk is full (policy `delete-oldest`), not because they expired.
    pub for_space: bool,
    /// The disk stays full after the deletions: stop new recording and alarm.
    pub disk_full: bool,
}

/// The disk counts as full when no more than `reserve` bytes are free.
pub fn is_full(available: u64, reserve: u64) -> bool {
    available <= reserve
}

/// Decides one pass. `available`: bytes free for the data dir now; `reserve`: bytes that must
/// stay free; `expired`: files past retention, oldest first. Unknown file sizes count as
/// freeing nothing.
pub fn plan(policy: DiskPolicy, available: u64, reserve: u64, expired: &[Expired]) -> Plan {
    let mut expired: Vec<&Expired> = expired.iter().collect();
    expired.sort_by_key(|e| (e.time_us, e.seq));
    match policy {
        DiskPolicy::Protect => {
            let freed: u64 = expired.iter().map(|e| e.bytes).sum();
            Plan {
                delete: expired.iter().map(|e| e.seq).collect(),
                for_space: false,
                disk_full: is_full(available.saturating_add(freed), reserve),
            }
        }
        DiskPolicy::DeleteOldest => {
            if !is_full(available, reserve) {
                return Plan {
                    delete: Vec::new(),
                    for_space: false,
                    disk_full: false,
                };
            }
            // Free up to twice the reserve (and more than it), so that the next segment does
            // not make the disk full again at once.
            let target = reserve.saturating_mul(2).max(reserve.saturating_add(1));
            let mut free = available;
            let mut delete = Vec::new();
            for e in expired {
                if free >= target {
                    break;
                }
                free = free.saturating_add(e.bytes);
                delete.push(e.seq);
            }
            Plan {
                delete,
                for_space: true,
                disk_full: is_full(free, reserve),
            }
        }
    }
}

/// Days until the disk is full at the recent write rate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Forecast {
    pub bytes_per_day: f64,
    /// `None` when nothing is being written.
    pub days_left: Option<f64>,
}

/// `bytes` were written over the last `covered` (the forecast window, or less on a new box).
/// `None` until at least a tenth of `window` is covered: a few minutes of data say little.
pub fn forecast(
    available: u64,
    reserve: u64,
    bytes: u64,
    covered: Duration,
    window: Duration,
) -> Option<Forecast> {
    if covered.is_zero() || covered < window / 10 {
        return None;
    }
    let bytes_per_day = bytes as f64 / covered.as_secs_f64() * 86_400.0;
    let usable = available.saturating_sub(reserve) as f64;
    Some(Forecast {
        bytes_per_day,
        days_left: (bytes_per_day > 0.0).then(|| usable / bytes_per_day),
    })
}

/// Whole days, for messages.
pub fn days(us: i64) -> i64 {
    us / DAY_US
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Datelike, NaiveDate, TimeZone, Utc};
    use proptest::prelude::*;

    const HENAN: Duration = Duration::from_secs(3 * 365 * 86_400);
    const YANGQUAN: Duration = Duration::from_secs(2 * 365 * 86_400);

    fn us(y: i32, m: u32, d: u32) -> i64 {
        Utc.from_utc_datetime(
            &NaiveDate::from_ymd_opt(y, m, d)
                .unwrap()
                .and_hms_opt(0, 0, 0)
                .unwrap(),
        )
        .timestamp_micros()
    }

    /// R6 with leap days: a recording from 1 March 2027 must be kept until 1 March 2030 (three
    /// calendar years, 1096 days because of 29 February 2028), and one from 2 January 2028 until
    /// 2 January 2030 (two years, 731 days).
    #[test]
    fn keeps_whole_calendar_years_across_leap_days() {
        let rec = us(2027, 3, 1);
        assert!(!is_expired(rec, us(2030, 3, 1) - 1, HENAN));
        assert!(!is_expired(rec, us(2030, 3, 1), HENAN), "kept one spare day");
        assert!(is_expired(rec, us(2030, 3, 3), HENAN));
        let rec = us(2028, 1, 2);
        assert!(!is_expired(rec, us(2030, 1, 2), YANGQUAN));
        assert!(is_expired(rec, us(2030, 1, 4), YANGQUAN));
        // Test-scale retentions are exact.
        assert!(!is_expired(0, 9_999_999, Duration::from_secs(10)));
        assert!(is_expired(0, 10_000_000, Duration::from_secs(10)));
    }

    fn exp(seq: i64, bytes: i64, time_us: i64) -> Expired {
        Expired::check(seq, Some(bytes), time_us, i64::MAX / 2, Duration::from_secs(1)).unwrap()
    }

    #[test]
    fn protect_prunes_what_expired_and_reports_full() {
        let e = [exp(2, 100, 20), exp(1, 100, 10)];
        let p = plan(DiskPolicy::Protect, 1_000, 500, &e);
        assert_eq!((p.delete, p.disk_full), (vec![1, 2], false));
        let p = plan(DiskPolicy::Protect, 100, 500, &e);
        assert_eq!((p.delete, p.disk_full), (vec![1, 2], true));
        let p = plan(DiskPolicy::Protect, 100, 500, &[]);
        assert!(p.delete.is_empty() && p.disk_full);
    }

    #[test]
    fn delete_oldest_keeps_expired_files_until_space_is_needed() {
        let e = [exp(1, 300, 10), exp(2, 300, 20), exp(3, 300, 30), exp(4, 300, 40)];
        let p = plan(DiskPolicy::DeleteOldest, 1_000, 500, &e);
        assert!(p.delete.is_empty() && !p.disk_full);
        // 100 free, reserve 500: delete oldest until 1000 (twice the reserve) is free.
        let p = plan(DiskPolicy::DeleteOldest, 100, 500, &e);
        assert_eq!((p.delete, p.disk_full, p.for_space), (vec![1, 2, 3], false, true));
        let p = plan(DiskPolicy::DeleteOldest, 100, 500, &e[..1]);
        assert_eq!((p.delete, p.disk_full), (vec![1], true));
        // No reserve, no byte free: still full, and one file is enough.
        let p = plan(DiskPolicy::DeleteOldest, 0, 0, &e);
        assert_eq!((p.delete, p.disk_full), (vec![1], false));
    }

    proptest! {
        /// R6, for any files, ages, disks and policies: nothing younger than the retention is
        /// planned for deletion.
        #[test]
        fn nothing_young_is_ever_planned(
            ages_days in prop::collection::vec(0i64..2_000, 0..40),
            available in 0u64..10_000,
            reserve in 0u64..10_000,
            protect in any::<bool>(),
            henan in any::<bool>(),
        ) {
            let retention = if henan { HENAN } else { YANGQUAN };
            let now = us(2031, 2, 28);
            let files: Vec<(i64, i64)> = ages_days
                .iter()
                .enumerate()
                .map(|(i, d)| (i as i64 + 1, now - d * DAY_US - i as i64))
                .collect();
            let expired: Vec<Expired> = files
                .iter()
                .filter_map(|&(seq, t)| Expired::check(seq, Some(100), t, now, retention))
                .collect();
            let policy = if protect { DiskPolicy::Protect } else { DiskPolicy::DeleteOldest };
            let p = plan(policy, available, reserve, &expired);
            for seq in p.delete {
                let t = files.iter().find(|f| f.0 == seq).unwrap().1;
                // At least the nominal retention, in calendar terms too.
                let rec = Utc.timestamp_micros(t).unwrap();
                let years = (retention.as_secs() / YEAR.as_secs()) as i32;
                let anniversary = rec
                    .with_year(rec.year() + years)
                    .unwrap_or_else(|| rec + chrono::Duration::days(365 * years as i64 + 1));
                prop_assert!(Utc.timestamp_micros(now).unwrap() >= anniversary, "seq {} too young", seq);
            }
        }
    }

    #[test]
    fn forecast_from_the_write_rate() {
        let day = Duration::from_secs(86_400);
        let f = forecast(31_000, 1_000, 1_000, day, day).unwrap();
        assert_eq!(f.bytes_per_day, 1_000.0);
        assert_eq!(f.days_left, Some(30.0));
        assert!(forecast(31_000, 1_000, 1_000, Duration::from_secs(60), day).is_none());
        assert_eq!(forecast(31_000, 1_000, 0, day, day).unwrap().days_left, None);
    }
}
