//! A strict reader over a parsed TOML table that collects *every* problem instead of stopping
//! at the first one, so `check-config` can list them all with their key paths.
//!
//! Each section of the config is read by the module that owns it (`media::CameraConfig::read`,
//! `compliance::RulesConfig::read`, …) through a [`Section`]. Keys that nobody read are
//! reported as unknown when the section is finished.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// One thing wrong with a config file: where, what was there, and what was expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Key path, e.g. `camera[1].segment`.
    pub key: String,
    /// The offending value as written (TOML syntax), if there was one.
    pub value: Option<String>,
    /// What would have been accepted.
    pub expected: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.value {
            Some(v) => write!(f, "{} = {}: expected {}", self.key, v, self.expected),
            None => write!(f, "{}: {}", self.key, self.expected),
        }
    }
}

/// The problems found so far while reading one file.
#[derive(Debug, Default)]
pub struct Problems(pub Vec<Problem>);

impl Problems {
    pub fn push(&mut self, key: impl Into<String>, value: Option<String>, expected: impl Into<String>) {
        self.0.push(Problem {
            key: key.into(),
            value,
            expected: expected.into(),
        });
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Short TOML rendering of a value for error messages (long values are cut).
pub fn show(value: &toml::Value) -> String {
    let mut s = match value {
        toml::Value::String(s) => format!("{s:?}"),
        toml::Value::Table(_) => "{…}".to_string(),
        other => other.to_string(),
    };
    if s.chars().count() > 80 {
        s = s.chars().take(77).collect::<String>() + "…";
    }
    s
}

/// A table of the config being read, with its key path and the directory that relative paths
/// are resolved against (the config file's directory).
pub struct Section<'t> {
    path: String,
    table: &'t toml::Table,
    base_dir: &'t Path,
    seen: RefCell<BTreeSet<String>>,
}

impl<'t> Section<'t> {
    pub fn root(table: &'t toml::Table, base_dir: &'t Path) -> Self {
        Section {
            path: String::new(),
            table,
            base_dir,
            seen: RefCell::new(BTreeSet::new()),
        }
    }

    /// Key path of `key` inside this section.
    pub fn key_path(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    /// The directory relative paths are resolved against.
    pub fn base_dir(&self) -> &Path {
        self.base_dir
    }

    /// True when the key is present (and marks it as read).
    pub fn has(&self, key: &str) -> bool {
        self.raw(key).is_some()
    }

    /// The raw value, marking the key as read.
    pub fn raw(&self, key: &str) -> Option<&'t toml::Value> {
        let v = self.table.get(key);
        if v.is_some() {
            self.seen.borrow_mut().insert(key.to_string());
        }
        v
    }

    fn typed<T>(
        &self,
        p: &mut Problems,
        key: &str,
        expected: &str,
        conv: impl FnOnce(&toml::Value) -> Option<T>,
    ) -> Option<T> {
        let v = self.raw(key)?;
        match conv(v) {
            Some(t) => Some(t),
            None => {
                p.push(self.key_path(key), Some(show(v)), expected);
                None
            }
        }
    }

    /// A required key: a missing key is a problem.
    pub fn required<T>(&self, p: &mut Problems, key: &str, got: Option<T>, expected: &str) -> Option<T> {
        if got.is_none() && !self.table.contains_key(key) {
            p.push(self.key_path(key), None, format!("missing; {expected}"));
        }
        got
    }

    pub fn string(&self, p: &mut Problems, key: &str) -> Option<String> {
        self.typed(p, key, "a string", |v| v.as_str().map(str::to_string))
    }

    pub fn bool(&self, p: &mut Problems, key: &str) -> Option<bool> {
        self.typed(p, key, "true or false", toml::Value::as_bool)
    }

    pub fn integer(&self, p: &mut Problems, key: &str, min: i64, max: i64) -> Option<i64> {
        let expected = format!("an integer from {min} to {max}");
        self.typed(p, key, &expected, |v| {
            v.as_integer().filter(|i| (min..=max).contains(i))
        })
    }

    pub fn float(&self, p: &mut Problems, key: &str, min: f64, max: f64) -> Option<f64> {
        let expected = format!("a number from {min} to {max}");
        self.typed(p, key, &expected, |v| {
            v.as_float()
                .or_else(|| v.as_integer().map(|i| i as f64))
                .filter(|f| (min..=max).contains(f))
        })
    }

    /// A humantime duration ("60s", "15m", "1h 30m") within `[min, max]`.
    pub fn duration(&self, p: &mut Problems, key: &str, min: Duration, max: Duration) -> Option<Duration> {
        let expected = format!(
            "a duration from {} to {} with its unit, e.g. \"60s\" or \"15m\"",
            humantime::format_duration(min),
            humantime::format_duration(max)
        );
        self.typed(p, key, &expected, |v| {
            v.as_str()
                .and_then(|s| humantime::parse_duration(s).ok())
                .filter(|d| (min..=max).contains(d))
        })
    }

    /// One of a fixed set of words.
    pub fn choice(&self, p: &mut Problems, key: &str, choices: &[&str]) -> Option<String> {
        let expected = format!("one of {}", choices.join(" | "));
        self.typed(p, key, &expected, |v| {
            v.as_str().filter(|s| choices.contains(s)).map(str::to_string)
        })
    }

    /// A path; relative paths are taken from the config file's directory.
    pub fn path(&self, p: &mut Problems, key: &str) -> Option<PathBuf> {
        self.typed(p, key, "a path (a non-empty string)", |v| {
            v.as_str().filter(|s| !s.is_empty()).map(|s| self.resolve_path(s))
        })
    }

    /// Resolves a path as written in the config against the config file's directory.
    pub fn resolve_path(&self, s: &str) -> PathBuf {
        let path = Path::new(s);
        if path.is_absolute() {
            path.to_path_buf()
        } else {
            normalize(&self.base_dir.join(path))
        }
    }

    /// A list of strings.
    pub fn strings(&self, p: &mut Problems, key: &str) -> Option<Vec<String>> {
        self.typed(p, key, "a list of strings, e.g. [\"front\", \"back\"]", |v| {
            v.as_array()?
                .iter()
                .map(|x| x.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()
        })
    }

    /// A sub-table (`[device]`, `{ start = …, end = … }`).
    pub fn table(&self, p: &mut Problems, key: &str) -> Option<Section<'t>> {
        let v = self.raw(key)?;
        let Some(t) = v.as_table() else {
            p.push(self.key_path(key), Some(show(v)), "a table");
            return None;
        };
        Some(Section {
            path: self.key_path(key),
            table: t,
            base_dir: self.base_dir,
            seen: RefCell::new(BTreeSet::new()),
        })
    }

    /// An array of tables (`[[camera]]`, `hours = [{…}, {…}]`); missing means empty.
    pub fn tables(&self, p: &mut Problems, key: &str) -> Vec<Section<'t>> {
        let Some(v) = self.raw(key) else {
            return Vec::new();
        };
        let Some(items) = v.as_array() else {
            p.push(
                self.key_path(key),
                Some(show(v)),
                "an array of tables, e.g. [[camera]]",
            );
            return Vec::new();
        };
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let path = format!("{}[{i}]", self.key_path(key));
            match item.as_table() {
                Some(t) => out.push(Section {
                    path,
                    table: t,
                    base_dir: self.base_dir,
                    seen: RefCell::new(BTreeSet::new()),
                }),
                None => p.push(path, Some(show(item)), "a table"),
            }
        }
        out
    }

    /// Reports every key of this section that no reader asked for.
    pub fn finish(self, p: &mut Problems) {
        let seen = self.seen.borrow();
        for (k, v) in self.table {
            if !seen.contains(k) {
                p.push(
                    self.key_path(k),
                    Some(show(v)),
                    "no such key here (misspelt, or in the wrong section?)",
                );
            }
        }
    }

    /// Marks a key as known without reading it (for keys read elsewhere).
    pub fn skip(&self, key: &str) {
        self.seen.borrow_mut().insert(key.to_string());
    }

    /// The table itself, for sections with free-form keys (mark keys read with [`Section::skip`]
    /// or by reading them).
    pub fn raw_table(&self) -> &'t toml::Table {
        self.table
    }

    /// This section's own key path (empty for the root).
    pub fn path_str(&self) -> &str {
        &self.path
    }
}

/// Removes `.` and `..` components lexically (`/srv/deploy/../var` → `/srv/var`), so the
/// paths the daemon prints and stores read the way a technician expects.
fn normalize(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(src: &str) -> (toml::Table, PathBuf) {
        (
            src.parse::<toml::Table>().unwrap(),
            PathBuf::from("/etc/classproof"),
        )
    }

    #[test]
    fn collects_every_problem_with_key_paths() {
        let (t, dir) = read("a = 1\n[s]\nd = \"0s\"\nx = true\n[[c]]\nb = \"yes\"\n");
        let root = Section::root(&t, &dir);
        let mut p = Problems::default();
        root.string(&mut p, "a");
        let s = root.table(&mut p, "s").unwrap();
        s.duration(&mut p, "d", Duration::from_secs(1), Duration::from_secs(60));
        s.finish(&mut p);
        for c in root.tables(&mut p, "c") {
            c.bool(&mut p, "b");
            c.finish(&mut p);
        }
        root.finish(&mut p);
        let keys: Vec<_> = p.0.iter().map(|x| x.key.as_str()).collect();
        assert_eq!(keys, ["a", "s.d", "s.x", "c[0].b"]);
        assert!(p.0[1].to_string().contains("\"0s\""), "{}", p.0[1]);
    }

    #[test]
    fn relative_paths_follow_the_config_file() {
        let (t, dir) = read("p = \"../data\"\nq = \"/abs\"\n");
        let root = Section::root(&t, &dir);
        let mut p = Problems::default();
        assert_eq!(root.path(&mut p, "p").unwrap(), PathBuf::from("/etc/data"));
        assert_eq!(root.path(&mut p, "q").unwrap(), PathBuf::from("/abs"));
    }
}
