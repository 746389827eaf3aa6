//! `[attendance]`: how faces become check-ins (issue 9, "Interface to keep stable"). Key
//! reference: docs/configuration.md ("[attendance]"). Every duration takes seconds too, so
//! tests scale minutes to seconds through the config.

use std::time::Duration;

use crate::config::{Problems, Section};

pub const DEFAULT_WORKERS: u32 = 1;
pub const DEFAULT_CHECKIN_OPENS: Duration = Duration::from_secs(15 * 60);
pub const DEFAULT_LATE_AFTER: Duration = Duration::from_secs(5 * 60);
pub const DEFAULT_CHECKOUT_WINDOW: Duration = Duration::from_secs(15 * 60);
pub const DEFAULT_MIN_FRAMES: u32 = 3;
pub const DEFAULT_VOTE_FRAMES: u32 = 5;
pub const DEFAULT_UNKNOWN_FACE_RETENTION: Duration = Duration::from_secs(30 * 86_400);
// --- issue 11: classroom presence ---
pub const DEFAULT_LEFT_EARLY_AFTER: Duration = Duration::from_secs(15 * 60);
pub const DEFAULT_SPOT_CHECKS_PER_CLASS_HOUR: u32 = 1;
pub const DEFAULT_SPOT_CHECK_WINDOW: Duration = Duration::from_secs(2 * 60);
pub const DEFAULT_TAMPER_AFTER: Duration = Duration::from_secs(10);

/// `[attendance]`.
#[derive(Debug, Clone, PartialEq)]
pub struct AttendanceConfig {
    /// Analysis workers, each owning one face pipeline, serving every analysed camera. 1–16.
    pub workers: u32,
    /// Check-in opens this long before a session starts. 0s–24h.
    pub checkin_opens: Duration,
    /// A check-in later than this after the start is marked late. 0s–24h.
    pub late_after: Duration,
    /// Check-out is recorded within this long before and after the end. 0s–24h.
    pub checkout_window: Duration,
    /// Frames of the vote that must match the same person. 1–100, at most `vote_frames`.
    pub min_frames: u32,
    /// The vote is over the last this many observations of a tracked face. 1–100.
    pub vote_frames: u32,
    /// Snapshots of unknown faces are deleted after this (R15). 1s–10 years.
    pub unknown_face_retention: Duration,
    /// Issue 11: a checked-in trainee not seen on the classroom cameras for longer than this
    /// before the session's end is `left_early`. 1s–24h.
    pub left_early_after: Duration,
    /// Issue 11 (R8): spot checks drawn per class hour. 0–60.
    pub spot_checks_per_class_hour: u32,
    /// Issue 11: every checked-in trainee must be recognised within this window. 1s–24h.
    pub spot_check_window: Duration,
    /// Issue 11: a covered, frozen or turned camera for longer than this is `camera_tamper`.
    /// 1s–24h.
    pub tamper_after: Duration,
}

impl Default for AttendanceConfig {
    fn default() -> Self {
        AttendanceConfig {
            workers: DEFAULT_WORKERS,
            checkin_opens: DEFAULT_CHECKIN_OPENS,
            late_after: DEFAULT_LATE_AFTER,
            checkout_window: DEFAULT_CHECKOUT_WINDOW,
            min_frames: DEFAULT_MIN_FRAMES,
            vote_frames: DEFAULT_VOTE_FRAMES,
            unknown_face_retention: DEFAULT_UNKNOWN_FACE_RETENTION,
            left_early_after: DEFAULT_LEFT_EARLY_AFTER,
            spot_checks_per_class_hour: DEFAULT_SPOT_CHECKS_PER_CLASS_HOUR,
            spot_check_window: DEFAULT_SPOT_CHECK_WINDOW,
            tamper_after: DEFAULT_TAMPER_AFTER,
        }
    }
}

impl AttendanceConfig {
    pub fn read(s: &Section, p: &mut Problems) -> AttendanceConfig {
        let d = AttendanceConfig::default();
        let day = Duration::from_secs(86_400);
        let dur = |p: &mut Problems, key: &str, min: Duration, max: Duration, default: Duration| {
            s.duration(p, key, min, max).unwrap_or(default)
        };
        let int = |p: &mut Problems, key: &str, min: i64, max: i64, default: u32| {
            s.integer(p, key, min, max).map_or(default, |n| n as u32)
        };
        let c = AttendanceConfig {
            workers: int(p, "workers", 1, 16, d.workers),
            checkin_opens: dur(p, "checkin_opens", Duration::ZERO, day, d.checkin_opens),
            late_after: dur(p, "late_after", Duration::ZERO, day, d.late_after),
            checkout_window: dur(p, "checkout_window", Duration::ZERO, day, d.checkout_window),
            min_frames: int(p, "min_frames", 1, 100, d.min_frames),
            vote_frames: int(p, "vote_frames", 1, 100, d.vote_frames),
            unknown_face_retention: dur(
                p,
                "unknown_face_retention",
                Duration::from_secs(1),
                day * 3650,
                d.unknown_face_retention,
            ),
            left_early_after: dur(
                p,
                "left_early_after",
                Duration::from_secs(1),
                day,
                d.left_early_after,
            ),
            spot_checks_per_class_hour: int(
                p,
                "spot_checks_per_class_hour",
                0,
                60,
                d.spot_checks_per_class_hour,
            ),
            spot_check_window: dur(
                p,
                "spot_check_window",
                Duration::from_secs(1),
                day,
                d.spot_check_window,
            ),
            tamper_after: dur(p, "tamper_after", Duration::from_secs(1), day, d.tamper_after),
        };
        if c.min_frames > c.vote_frames {
            p.push(
                s.key_path("min_frames"),
                Some(c.min_frames.to_string()),
                format!("at most vote_frames ({})", c.vote_frames),
            );
        }
        c
    }

    /// One line for `check-config`.
    pub fn summary(&self) -> String {
        let h = humantime::format_duration;
        format!(
            "{} worker(s); check-in from {} before the start, late after {}, check-out within {} of the end; \
             {} of {} frames must agree; unknown faces kept {}; left early after {} unseen, {} spot check(s) \
             of {} per class hour, tamper after {}",
            self.workers,
            h(self.checkin_opens),
            h(self.late_after),
            h(self.checkout_window),
            self.min_frames,
            self.vote_frames,
            h(self.unknown_face_retention),
            h(self.left_early_after),
            self.spot_checks_per_class_hour,
            h(self.spot_check_window),
            h(self.tamper_after)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use std::path::Path;

    fn parse(extra: &str) -> Result<Config, String> {
        Config::parse(
            &format!("[device]\nid = \"t\"\ndata_dir = \"/tmp/x\"\n{extra}"),
            Path::new("/tmp/c.toml"),
        )
        .map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_keys_and_bad_values() {
        assert_eq!(parse("").unwrap().attendance, AttendanceConfig::default());
        let c = parse(
            "[attendance]\nworkers = 2\ncheckin_opens = \"30s\"\nlate_after = \"5s\"\ncheckout_window = \"0s\"\n\
             min_frames = 2\nvote_frames = 4\nunknown_face_retention = \"1d\"\n",
        )
        .unwrap()
        .attendance;
        assert_eq!(
            c,
            AttendanceConfig {
                workers: 2,
                checkin_opens: Duration::from_secs(30),
                late_after: Duration::from_secs(5),
                checkout_window: Duration::ZERO,
                min_frames: 2,
                vote_frames: 4,
                unknown_face_retention: Duration::from_secs(86_400),
                ..AttendanceConfig::default()
            }
        );
        let c = parse(
            "[attendance]\nleft_early_after = \"20s\"\nspot_checks_per_class_hour = 2\n\
             spot_check_window = \"5s\"\ntamper_after = \"3s\"\n",
        )
        .unwrap()
        .attendance;
        assert_eq!(
            (
                c.left_early_after,
                c.spot_checks_per_class_hour,
                c.spot_check_window,
                c.tamper_after
            ),
            (
                Duration::from_secs(20),
                2,
                Duration::from_secs(5),
                Duration::from_secs(3)
            )
        );
        let e = parse("[attendance]\nspot_check_window = \"0s\"\n").unwrap_err();
        assert!(e.contains("attendance.spot_check_window"), "{e}");
        let e = parse("[attendance]\nmin_frames = 6\n").unwrap_err();
        assert!(
            e.contains("attendance.min_frames") && e.contains("at most vote_frames (5)"),
            "{e}"
        );
        let e = parse("[attendance]\nworkers = 0\nlate_afterr = \"1m\"\n").unwrap_err();
        assert!(
            e.contains("attendance.workers") && e.contains("late_afterr"),
            "{e}"
        );
    }
}
