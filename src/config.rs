//! The one local config file a technician edits (TOML), documented key by key in
//! docs/configuration.md.
//!
//! Reading happens in two steps, as ripgrep does with its flags:
//! 1. [`Config::parse`] checks the text alone (types, ranges, unknown keys, cross references)
//!    and never touches the system;
//! 2. [`Config::check_environment`] looks at the machine (data dir writable, model files
//!    present, ONNX Runtime library present).
//!
//! Both steps collect every problem with its key path, the bad value and what was expected.
//! Each section is read by the module that owns it; this file only composes them.

pub mod reader;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use chrono_tz::Tz;
use thiserror::Error;

use crate::compliance::{RulesConfig, SessionConfig};
use crate::daemon::config::DaemonConfig;
use crate::evidence::EvidenceConfig;
use crate::media::CameraConfig;
use crate::sync::UpstreamConfig;
use crate::vision::VisionConfig;
pub use reader::{Problem, Problems, Section};

/// Default data directory of an installed box.
pub const DEFAULT_DATA_DIR: &str = "/var/lib/classproof";
/// Default timezone: the boxes are deployed in mainland China.
pub const DEFAULT_TIMEZONE: &str = "Asia/Shanghai";

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("{file}: cannot read the config file: {source}")]
    Read {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}: not valid TOML: {message}")]
    Syntax { file: PathBuf, message: String },
    #[error("{}", render_problems(file, problems))]
    Invalid { file: PathBuf, problems: Vec<Problem> },
}

impl ConfigError {
    /// The individual problems (one for read and syntax errors).
    pub fn problems(&self) -> Vec<String> {
        match self {
            ConfigError::Invalid { problems, .. } => problems.iter().map(ToString::to_string).collect(),
            other => vec![other.to_string()],
        }
    }
}

fn render_problems(file: &Path, problems: &[Problem]) -> String {
    let mut s = format!("{}: {} problem(s):", file.display(), problems.len());
    for p in problems {
        let _ = write!(s, "\n  {p}");
    }
    s
}

/// `[device]`: who this box is and where it keeps its data.
#[derive(Debug, Clone)]
pub struct DeviceConfig {
    /// Device id as registered with the provincial system, e.g. `hn-zz-0001-r101`. Letters,
    /// digits, `-`, `_` and `.`, at most 64 characters. Required.
    pub id: String,
    /// Where segments, snapshots, keys and `classproof.db` live. Default `/var/lib/classproof`.
    /// Relative paths are taken from the config file's directory.
    pub data_dir: PathBuf,
    /// IANA timezone for dates in paths and times in reports. Default `Asia/Shanghai`.
    pub timezone: Tz,
}

/// The whole config.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it was read from.
    pub file: PathBuf,
    pub device: DeviceConfig,
    pub rules: RulesConfig,
    pub cameras: Vec<CameraConfig>,
    pub sessions: Vec<SessionConfig>,
    pub vision: VisionConfig,
    pub evidence: EvidenceConfig,
    pub daemon: DaemonConfig,
    /// `[upstream]`; `None`: the box runs offline (R7).
    pub upstream: Option<UpstreamConfig>,
    pub attendance: crate::attendance::config::AttendanceConfig,
    /// `[status]`: the local status server (issue 12).
    pub status: crate::status::StatusConfig,
}

impl Config {
    /// Reads and checks a config file (step 1: no look at the machine beyond reading the file).
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            file: path.to_path_buf(),
            source,
        })?;
        Config::parse(&text, path)
    }

    /// Checks config text that was read from `path` (used for messages and relative paths).
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let table: toml::Table = text.parse().map_err(|e: toml::de::Error| ConfigError::Syntax {
            file: path.to_path_buf(),
            message: e.to_string().trim_end().replace('\n', "\n  "),
        })?;
        // Relative paths in the file are taken from its directory, made absolute so that what
        // the daemon prints and stores does not depend on where it was started.
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let base_dir = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
        let root = Section::root(&table, &base_dir);
        let mut p = Problems::default();

        let device = read_device(&root, &mut p);
        let rules = match root.table(&mut p, "rules") {
            Some(s) => {
                let r = RulesConfig::read(&s, &mut p);
                s.finish(&mut p);
                r
            }
            None => RulesConfig::default(),
        };
        let camera_sections = root.tables(&mut p, "camera");
        check_unique_ids(&camera_sections, "camera", &mut p);
        let cameras: Vec<CameraConfig> = camera_sections
            .into_iter()
            .filter_map(|s| {
                let c = CameraConfig::read(&s, &mut p);
                s.finish(&mut p);
                c
            })
            .collect();

        let camera_ids: Vec<&str> = cameras.iter().map(|c| c.id.as_str()).collect();
        let session_sections = root.tables(&mut p, "session");
        check_unique_ids(&session_sections, "session", &mut p);
        let sessions: Vec<SessionConfig> = session_sections
            .into_iter()
            .filter_map(|s| {
                let c = SessionConfig::read(&s, &mut p, &rules, &camera_ids);
                s.finish(&mut p);
                c
            })
            .collect();

        let vision = section_or_default(&root, &mut p, "vision", VisionConfig::read);
        let evidence = section_or_default(&root, &mut p, "evidence", EvidenceConfig::read);
        let daemon = section_or_default(&root, &mut p, "daemon", DaemonConfig::read);
        let upstream = section_or_default(&root, &mut p, "upstream", UpstreamConfig::read);
        let attendance = section_or_default(
            &root,
            &mut p,
            "attendance",
            crate::attendance::config::AttendanceConfig::read,
        );
        let status = section_or_default(&root, &mut p, "status", crate::status::StatusConfig::read);
        root.finish(&mut p);

        match (device, p.is_empty()) {
            (Some(device), true) => Ok(Config {
                file: path.to_path_buf(),
                device,
                rules,
                cameras,
                sessions,
                vision,
                evidence,
                daemon,
                upstream,
                attendance,
                status,
            }),
            _ => Err(ConfigError::Invalid {
                file: path.to_path_buf(),
                problems: p.0,
            }),
        }
    }

    /// Step 2: what the config needs from this machine. Returns every problem found.
    pub fn check_environment(&self) -> Vec<Problem> {
        let mut p = Problems::default();
        check_writable_dir(&self.device.data_dir, "device.data_dir", &mut p);
        self.vision.check_environment(&mut p);
        if let Some(u) = &self.upstream {
            u.check_environment(&mut p);
        }
        if let Some(f) = self.status.token_file.as_ref().filter(|_| self.status.enabled)
            && let Err(e) = crate::status::config::read_token(f)
        {
            p.push(
                "status.token_file",
                Some(format!("{:?}", f.display().to_string())),
                e,
            );
        }
        for (i, cam) in self.cameras.iter().enumerate() {
            cam.check_environment(&format!("camera[{i}]"), &mut p);
        }
        p.0
    }

    /// Path of the SQLite database.
    pub fn db_path(&self) -> PathBuf {
        self.device.data_dir.join(crate::db::DB_FILE)
    }

    /// A one-screen summary for `check-config`.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        let d = &self.device;
        let _ = writeln!(s, "config      {}", self.file.display());
        let _ = writeln!(s, "device      {}", d.id);
        let _ = writeln!(s, "data dir    {}", d.data_dir.display());
        let _ = writeln!(s, "timezone    {}", d.timezone);
        let _ = writeln!(s, "rules       {}", self.rules.summary());
        let _ = writeln!(s, "cameras     {}", self.cameras.len());
        for c in &self.cameras {
            let _ = writeln!(s, "  {}", c.summary());
        }
        let _ = writeln!(s, "sessions    {}", self.sessions.len());
        for x in &self.sessions {
            let _ = writeln!(s, "  {}", x.summary());
        }
        let _ = writeln!(s, "vision      {}", self.vision.summary());
        let _ = writeln!(s, "evidence    {}", self.evidence.summary());
        let _ = writeln!(s, "daemon      {}", self.daemon.summary());
        let _ = writeln!(
            s,
            "upstream    {}",
            UpstreamConfig::summary(self.upstream.as_ref())
        );
        let _ = writeln!(s, "attendance  {}", self.attendance.summary());
        let _ = write!(s, "status      {}", self.status.summary());
        s
    }
}

fn read_device(root: &Section, p: &mut Problems) -> Option<DeviceConfig> {
    let Some(s) = root.table(p, "device") else {
        root.required::<()>(p, "device", None, "a [device] table with at least `id`");
        return None;
    };
    let id = s.string(p, "id");
    let id = s.required(p, "id", id, "the device id, e.g. \"hn-zz-0001-r101\"");
    let id = id.filter(|id| {
        let ok = is_valid_id(id, 64);
        if !ok {
            p.push(
                s.key_path("id"),
                Some(format!("{id:?}")),
                "1 to 64 letters, digits, '-', '_' or '.'",
            );
        }
        ok
    });
    let data_dir = s
        .path(p, "data_dir")
        .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
    let timezone = match s.string(p, "timezone") {
        Some(tz) => match tz.parse::<Tz>() {
            Ok(tz) => Some(tz),
            Err(_) => {
                p.push(
                    s.key_path("timezone"),
                    Some(format!("{tz:?}")),
                    "an IANA timezone name, e.g. \"Asia/Shanghai\"",
                );
                None
            }
        },
        None => DEFAULT_TIMEZONE.parse().ok(),
    };
    s.finish(p);
    Some(DeviceConfig {
        id: id?,
        data_dir,
        timezone: timezone?,
    })
}

fn section_or_default<T: Default>(
    root: &Section,
    p: &mut Problems,
    key: &str,
    read: impl FnOnce(&Section, &mut Problems) -> T,
) -> T {
    match root.table(p, key) {
        Some(s) => {
            let t = read(&s, p);
            s.finish(p);
            t
        }
        None => T::default(),
    }
}

/// Ids used in paths, topics and reports: letters, digits, `-`, `_`, `.`; not starting with `.`.
pub fn is_valid_id(id: &str, max_len: usize) -> bool {
    !id.is_empty()
        && id.len() <= max_len
        && !id.starts_with('.')
        && id.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

/// Ids of an array of tables must be unique; checked on the raw tables so that an entry with
/// other problems still counts.
fn check_unique_ids(sections: &[Section], table: &str, p: &mut Problems) {
    let mut seen = std::collections::BTreeMap::new();
    let ids = sections
        .iter()
        .enumerate()
        .filter_map(|(i, s)| Some((i, s.raw_table().get("id")?.as_str()?)));
    for (i, id) in ids {
        if let Some(first) = seen.insert(id, i) {
            p.push(
                format!("{table}[{i}].id"),
                Some(format!("{id:?}")),
                format!("an id not used before (already used by {table}[{first}])"),
            );
            seen.insert(id, first);
        }
    }
}

/// Checks that `dir` exists (or can be created) and that we can create files in it.
pub fn check_writable_dir(dir: &Path, key: &str, p: &mut Problems) {
    let shown = Some(format!("{:?}", dir.display().to_string()));
    if let Err(e) = std::fs::create_dir_all(dir) {
        p.push(key, shown, format!("a directory this user can create ({e})"));
        return;
    }
    let probe = dir.join(format!(".classproof-write-test-{}", std::process::id()));
    match std::fs::write(&probe, b"ok") {
        Ok(()) => {
            let _ = std::fs::remove_file(&probe);
        }
        Err(e) => p.push(key, shown, format!("a directory this user can write to ({e})")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(src: &str) -> Vec<String> {
        match Config::parse(src, Path::new("/etc/classproof/test.toml")) {
            Ok(_) => vec![],
            Err(e) => e.problems(),
        }
    }

    #[test]
    fn minimal_config_is_valid() {
        let c = Config::parse("[device]\nid = \"box-1\"\n", Path::new("x.toml")).unwrap();
        assert_eq!(c.device.data_dir, PathBuf::from(DEFAULT_DATA_DIR));
        assert_eq!(c.device.timezone, chrono_tz::Asia::Shanghai);
        assert!(c.cameras.is_empty());
    }

    #[test]
    fn missing_device_id_and_bad_timezone_and_unknown_key_all_reported() {
        let ps = problems("[device]\ntimezone = \"Mars/Olympus\"\ncolour = 1\n");
        assert_eq!(ps.len(), 3, "{ps:#?}");
        assert!(ps[0].starts_with("device.id: missing"), "{ps:#?}");
        assert!(ps[1].contains("device.timezone = \"Mars/Olympus\""), "{ps:#?}");
        assert!(
            ps[2].contains("device.colour = 1: expected no such key"),
            "{ps:#?}"
        );
    }

    #[test]
    fn syntax_error_names_the_file() {
        let e = Config::parse("[device\n", Path::new("/etc/c.toml")).unwrap_err();
        assert!(e.to_string().starts_with("/etc/c.toml: not valid TOML"), "{e}");
    }
}
