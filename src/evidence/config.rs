//! `[evidence]`: checkpoints, the disk watch and the disk policy. Key reference with types,
//! defaults and ranges: docs/evidence.md ("Configuration"). Retention itself is a rule of the
//! profile (`[rules] retention`, R6).

use std::time::Duration;

use super::disk::{parse_size, show_size};
use super::retention::DiskPolicy;
use crate::config::{Problems, Section};

/// Default: sign a checkpoint at least once a minute while records are appended.
pub const DEFAULT_CHECKPOINT_INTERVAL: Duration = Duration::from_secs(60);
/// Default: sign a checkpoint after this many new records, even within the interval.
pub const DEFAULT_CHECKPOINT_RECORDS: u64 = 1_000;
/// Default: how often retention and the disk are checked.
pub const DEFAULT_DISK_CHECK_INTERVAL: Duration = Duration::from_secs(60);
/// Default: space that must stay free on the data dir's disk (for the database, the log and
/// the alarms themselves).
pub const DEFAULT_RESERVE: u64 = 1_000_000_000;
/// Default: alarm when the disk is forecast to be full within this many days.
pub const DEFAULT_ALARM_DAYS: u32 = 30;
/// Default: the write rate for the forecast is measured over this window.
pub const DEFAULT_FORECAST_WINDOW: Duration = Duration::from_secs(86_400);

const MIN_SIZE: u64 = 1_000_000;
const MAX_SIZE: u64 = 1_000_000_000_000_000;

/// `[evidence]`.
#[derive(Debug, Clone, PartialEq)]
pub struct EvidenceConfig {
    /// A signed checkpoint is made at least this often while records are appended. Default
    /// 60s; 1s to 24h.
    pub checkpoint_interval: Duration,
    /// A signed checkpoint is also made once this many records were appended since the last
    /// one. Default 1000; 1 to 10,000,000.
    pub checkpoint_records: u64,
    /// How often expired files are looked for and the disk is measured. Default 60s; 1s to 24h.
    pub disk_check_interval: Duration,
    /// Treat the data dir's disk as this big (bytes; "200MB", "2TB", "512GiB"), counting what
    /// the data dir holds as used. Default: unset, the file system's own size and free space.
    pub capacity: Option<u64>,
    /// Space that must stay free; this much or less free counts as a full disk. 0 to 1 PB, and
    /// below `capacity`. Default (`None`): 1 GB, or a tenth of the disk if that is less (see
    /// [`EvidenceConfig::reserve_for`]).
    pub reserve: Option<u64>,
    /// Alarm when the disk is forecast to be full within this many days. Default 30; 0 (off)
    /// to 3650.
    pub alarm_days: u32,
    /// The write rate for the forecast is measured over this window. Default 24h; 1s to 90d.
    pub forecast_window: Duration,
    /// What to do when the disk is full: `protect` (default) or `delete-oldest`.
    pub disk_policy: DiskPolicy,
}

impl Default for EvidenceConfig {
    fn default() -> Self {
        EvidenceConfig {
            checkpoint_interval: DEFAULT_CHECKPOINT_INTERVAL,
            checkpoint_records: DEFAULT_CHECKPOINT_RECORDS,
            disk_check_interval: DEFAULT_DISK_CHECK_INTERVAL,
            capacity: None,
            reserve: None,
            alarm_days: DEFAULT_ALARM_DAYS,
            forecast_window: DEFAULT_FORECAST_WINDOW,
            disk_policy: DiskPolicy::Protect,
        }
    }
}

fn size(s: &Section, p: &mut Problems, key: &str, min: u64, max: u64) -> Option<u64> {
    let v = s.raw(key)?;
    let parsed = match v {
        toml::Value::Integer(i) => u64::try_from(*i).ok(),
        toml::Value::String(t) => parse_size(t),
        _ => None,
    };
    match parsed.filter(|b| (min..=max).contains(b)) {
        Some(b) => Some(b),
        None => {
            p.push(
                s.key_path(key),
                Some(crate::config::reader::show(v)),
                format!(
                    "a size from {} to {}, as bytes or with a unit, e.g. \"200MB\", \"2TB\", \"512GiB\"",
                    show_size(min),
                    show_size(max)
                ),
            );
            None
        }
    }
}

impl EvidenceConfig {
    pub fn read(s: &Section, p: &mut Problems) -> EvidenceConfig {
        let d = EvidenceConfig::default();
        let secs = Duration::from_secs;
        let checkpoint_interval = s
            .duration(p, "checkpoint_interval", secs(1), secs(86_400))
            .unwrap_or(d.checkpoint_interval);
        let checkpoint_records = s
            .integer(p, "checkpoint_records", 1, 10_000_000)
            .map(|n| n as u64)
            .unwrap_or(d.checkpoint_records);
        let disk_check_interval = s
            .duration(p, "disk_check_interval", secs(1), secs(86_400))
            .unwrap_or(d.disk_check_interval);
        let capacity = size(s, p, "capacity", MIN_SIZE, MAX_SIZE);
        let reserve = size(s, p, "reserve", 0, MAX_SIZE);
        if let (Some(cap), Some(r)) = (capacity, reserve)
            && r >= cap
        {
            p.push(
                s.key_path("reserve"),
                Some(format!("{:?}", show_size(r))),
                format!("less than capacity ({})", show_size(cap)),
            );
        }
        let alarm_days = s
            .integer(p, "alarm_days", 0, 3650)
            .map(|n| n as u32)
            .unwrap_or(d.alarm_days);
        let forecast_window = s
            .duration(p, "forecast_window", secs(1), secs(90 * 86_400))
            .unwrap_or(d.forecast_window);
        let disk_policy = s
            .choice(p, "disk_policy", DiskPolicy::NAMES)
            .and_then(|n| DiskPolicy::parse(&n))
            .unwrap_or(d.disk_policy);
        EvidenceConfig {
            checkpoint_interval,
            checkpoint_records,
            disk_check_interval,
            capacity,
            reserve,
            alarm_days,
            forecast_window,
            disk_policy,
        }
    }

    /// The reserve on a disk of `capacity` bytes: as configured, or by default 1 GB or a tenth
    /// of the disk, whichever is less (a small disk would otherwise always count as full).
    pub fn reserve_for(&self, capacity: u64) -> u64 {
        self.reserve.unwrap_or(DEFAULT_RESERVE.min(capacity / 10))
    }

    pub fn summary(&self) -> String {
        format!(
            "checkpoint every {} or {} records; disk checked every {}, {}, reserve {}, alarm below {} days, policy {}",
            humantime::format_duration(self.checkpoint_interval),
            self.checkpoint_records,
            humantime::format_duration(self.disk_check_interval),
            match self.capacity {
                Some(c) => format!("capacity {}", show_size(c)),
                None => "capacity of the file system".into(),
            },
            match self.reserve {
                Some(r) => show_size(r),
                None => format!("{} or a tenth of the disk", show_size(DEFAULT_RESERVE)),
            },
            self.alarm_days,
            self.disk_policy.as_str()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn read(src: &str) -> (EvidenceConfig, Vec<String>) {
        let t: toml::Table = src.parse().unwrap();
        let dir = Path::new("/etc");
        let root = Section::root(&t, dir);
        let mut p = Problems::default();
        let s = root.table(&mut p, "evidence").unwrap();
        let c = EvidenceConfig::read(&s, &mut p);
        s.finish(&mut p);
        (c, p.0.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn defaults_and_every_key() {
        let (c, p) = read("[evidence]\n");
        assert!(p.is_empty());
        assert_eq!(c, EvidenceConfig::default());
        let (c, p) = read(
            "[evidence]\ncheckpoint_interval = \"2s\"\ncheckpoint_records = 10\ndisk_check_interval = \"1s\"\n\
             capacity = \"200MB\"\nreserve = \"20MB\"\nalarm_days = 7\nforecast_window = \"10s\"\n\
             disk_policy = \"delete-oldest\"\n",
        );
        assert!(p.is_empty(), "{p:?}");
        assert_eq!(c.capacity, Some(200_000_000));
        assert_eq!(c.reserve, Some(20_000_000));
        assert_eq!(c.reserve_for(200_000_000), 20_000_000);
        assert_eq!(c.disk_policy, DiskPolicy::DeleteOldest);
        assert_eq!(c.checkpoint_records, 10);
    }

    #[test]
    fn every_problem_is_reported_with_its_key() {
        let (_, p) = read(
            "[evidence]\ncapacity = \"lots\"\nreserve = -1\ndisk_policy = \"yolo\"\nalarm_days = 9999\ncolour = 1\n",
        );
        let keys: Vec<&str> = p.iter().map(|x| x.split([':', ' ']).next().unwrap()).collect();
        assert_eq!(
            keys,
            [
                "evidence.capacity",
                "evidence.reserve",
                "evidence.alarm_days",
                "evidence.disk_policy",
                "evidence.colour"
            ],
            "{p:#?}"
        );
        let (_, p) = read("[evidence]\ncapacity = \"10MB\"\nreserve = \"20MB\"\n");
        assert!(p[0].contains("less than capacity"), "{p:?}");
        let (c, p) = read("[evidence]\ncapacity = \"10MB\"\n");
        assert!(p.is_empty());
        assert_eq!(c.reserve_for(10_000_000), 1_000_000);
        assert_eq!(c.reserve_for(2_000_000_000_000), 1_000_000_000);
    }
}
