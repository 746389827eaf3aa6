//! Spot checks (R8 process attendance, issue 11 item 3): moments drawn unpredictably in each
//! class hour at which every checked-in trainee must be recognised on the session's classroom
//! cameras within `spot_check_window`. Pure: the randomness comes in as numbers (the glue
//! draws them from the operating system's generator when the hour starts, so the moments are
//! not derivable from the config or the log before they happen), the sightings as a list.
//!
//! The moments are *stratified*: the hour (less one window at its end, so a check always ends
//! inside the hour) is cut into as many equal strata as there are checks, and one moment is
//! drawn uniformly in each. Nobody can predict a moment, yet two checks never bunch together
//! and leave most of the hour unwatched.

use std::collections::BTreeSet;

/// The moments (start of each window, µs) of `count` spot checks in the class hour
/// `[start_us, end_us)` with windows of `window_us`; `random` yields uniformly distributed
/// numbers. Sorted; empty when the hour is shorter than a window.
pub fn draw_moments(
    start_us: i64,
    end_us: i64,
    window_us: i64,
    count: u32,
    mut random: impl FnMut() -> u64,
) -> Vec<i64> {
    let span = end_us - window_us - start_us;
    if count == 0 || span <= 0 || window_us < 0 {
        return Vec::new();
    }
    let n = i64::from(count);
    (0..n)
        .map(|i| {
            let (a, b) = (span * i / n, span * (i + 1) / n);
            let width = (b - a).max(1) as u64;
            start_us + a + (random() % width) as i64
        })
        .collect()
}

/// The outcome of one spot check: who was recognised in the window and who was not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpotCheckOutcome {
    pub seen: Vec<String>,
    pub missed: Vec<String>,
}

/// Judges the spot check whose window is `[from_us, to_us]`: `checked_in`, the trainees
/// checked in by then; `sightings`, recognitions (person id, µs) on the classroom cameras.
pub fn judge(
    checked_in: &BTreeSet<String>,
    sightings: &[(String, i64)],
    from_us: i64,
    to_us: i64,
) -> SpotCheckOutcome {
    let seen_in_window: BTreeSet<&str> = sightings
        .iter()
        .filter(|(_, t)| (from_us..=to_us).contains(t))
        .map(|(p, _)| p.as_str())
        .collect();
    let (seen, missed): (Vec<String>, Vec<String>) = checked_in
        .iter()
        .cloned()
        .partition(|p| seen_in_window.contains(p.as_str()));
    SpotCheckOutcome { seen, missed }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const MIN: i64 = 60_000_000;

    #[test]
    fn one_check_per_stratum_each_window_inside_the_hour() {
        let mut n = 0u64;
        let moments = draw_moments(0, 45 * MIN, 2 * MIN, 3, || {
            n += 1;
            n * 7_777_777_777
        });
        assert_eq!(moments.len(), 3);
        for (i, m) in moments.iter().enumerate() {
            let stratum = 43 * MIN / 3;
            assert!(
                *m >= stratum * i as i64 && *m < stratum * (i as i64 + 1),
                "{moments:?}"
            );
            assert!(m + 2 * MIN <= 45 * MIN);
        }
        assert!(draw_moments(0, MIN, 2 * MIN, 1, || 0).is_empty());
        assert!(draw_moments(0, 45 * MIN, 2 * MIN, 0, || 0).is_empty());
    }

    #[test]
    fn who_was_seen_in_the_window() {
        let checked_in: BTreeSet<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        let sightings = vec![
            ("a".to_string(), 10 * MIN),
            ("b".to_string(), 9 * MIN),  // before the window
            ("x".to_string(), 10 * MIN), // not checked in
            ("c".to_string(), 12 * MIN), // the window's last moment counts
        ];
        let o = judge(&checked_in, &sightings, 10 * MIN, 12 * MIN);
        assert_eq!(o.seen, vec!["a", "c"]);
        assert_eq!(o.missed, vec!["b"]);
    }

    proptest! {
        #[test]
        fn moments_are_sorted_inside_the_hour(
            start in 0i64..1_000_000_000,
            len in 1i64..(120 * MIN),
            window in 0i64..(10 * MIN),
            count in 0u32..10,
            seeds in prop::collection::vec(any::<u64>(), 10),
        ) {
            let mut it = seeds.into_iter().cycle();
            let m = draw_moments(start, start + len, window, count, || it.next().unwrap_or(0));
            if len > window && count > 0 {
                prop_assert_eq!(m.len(), count as usize);
            }
            for w in m.windows(2) {
                prop_assert!(w[0] <= w[1]);
            }
            for t in &m {
                prop_assert!(*t >= start && t + window <= start + len);
            }
        }
    }
}
