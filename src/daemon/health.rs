//! The health registry: per supervised job, its state, since when, its last heartbeat and its
//! restarts. The supervisor and the jobs write it; `classproof run` logs a one-line summary when
//! it changes, writes it as JSON to `[daemon] health_file`, and the status page and the systemd
//! watchdog read it (issue 12).
//!
//! A heartbeat only touches memory; the file is rewritten on a change of state, and on a
//! heartbeat only when the file is older than [`FILE_REFRESH`], so a quiet box does not write
//! every second.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::Utc;
use serde::Serialize;
use tracing::{error, info, warn};

/// The health file is rewritten at least this often while jobs beat.
pub const FILE_REFRESH: Duration = Duration::from_secs(10);

/// What a job is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Started, not yet past its own start-up (e.g. the store's recovery).
    Starting,
    /// Doing its work.
    Running,
    /// Up, but its work fails and is being retried (disk full, read-only file system, …);
    /// `cause` says why.
    Failing,
    /// It failed (an error returned or a panic) and is started again after a pause.
    Restarting,
    /// It failed too often: the daemon is exiting so that systemd restarts the process.
    Failed,
    /// It returned normally (the daemon is stopping).
    Stopped,
}

impl JobState {
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Starting => "starting",
            JobState::Running => "running",
            JobState::Failing => "failing",
            JobState::Restarting => "restarting",
            JobState::Failed => "failed",
            JobState::Stopped => "stopped",
        }
    }

    /// A state in which the job does what it is for.
    pub fn is_healthy(self) -> bool {
        matches!(self, JobState::Starting | JobState::Running | JobState::Stopped)
    }
}

/// One job's entry.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobHealth {
    pub state: JobState,
    /// Why it is failing, restarting or failed.
    pub cause: Option<String>,
    /// Since when it is in this state (µs since the epoch).
    pub since_us: i64,
    /// Its last heartbeat (µs since the epoch).
    pub last_beat_us: i64,
    /// How often the supervisor started it again since the daemon started.
    pub restarts: u32,
    #[serde(skip)]
    last_beat: Instant,
}

impl JobHealth {
    /// Time since the last heartbeat.
    pub fn beat_age(&self) -> Duration {
        self.last_beat.elapsed()
    }
}

#[derive(Debug, Serialize)]
struct HealthFile<'a> {
    pid: u32,
    written_us: i64,
    summary: &'a str,
    jobs: &'a BTreeMap<String, JobHealth>,
}

#[derive(Debug, Default)]
struct Inner {
    jobs: BTreeMap<String, JobHealth>,
    summary: String,
    file_written: Option<Instant>,
    file_failing: bool,
}

/// The registry, shared by the supervisor, the jobs and (later) the status server.
#[derive(Debug, Default)]
pub struct Health {
    inner: Mutex<Inner>,
    file: Option<PathBuf>,
}

impl Health {
    pub fn new(file: Option<PathBuf>) -> Health {
        Health {
            inner: Mutex::default(),
            file,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic elsewhere while holding the lock leaves plain data: keep using it.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sets a job's state (registering it on first use). Logs the summary and rewrites the
    /// health file when that changes the picture.
    pub fn set(&self, job: &str, state: JobState, cause: Option<String>) {
        let mut inner = self.lock();
        let now_us = Utc::now().timestamp_micros();
        let entry = inner.jobs.entry(job.to_string()).or_insert_with(|| JobHealth {
            state,
            cause: None,
            since_us: now_us,
            last_beat_us: now_us,
            restarts: 0,
            last_beat: Instant::now(),
        });
        if entry.state == state && entry.cause == cause {
            return;
        }
        if entry.state != state {
            entry.since_us = now_us;
        }
        if state == JobState::Restarting {
            entry.restarts += 1;
        }
        entry.state = state;
        entry.cause = cause;
        entry.last_beat_us = now_us;
        entry.last_beat = Instant::now();
        let summary = summarise(&inner.jobs);
        if summary != inner.summary {
            if inner.jobs.values().all(|j| j.state.is_healthy()) {
                info!(health = %summary, "health");
            } else if inner.jobs.values().any(|j| j.state == JobState::Failed) {
                error!(health = %summary, "health");
            } else {
                warn!(health = %summary, "health");
            }
            inner.summary = summary;
        }
        self.write_file(&mut inner);
    }

    /// A job's heartbeat: it is alive and came round its loop.
    pub fn beat(&self, job: &str) {
        let mut inner = self.lock();
        if let Some(entry) = inner.jobs.get_mut(job) {
            entry.last_beat = Instant::now();
            entry.last_beat_us = Utc::now().timestamp_micros();
        }
        if inner.file_written.is_none_or(|t| t.elapsed() >= FILE_REFRESH) {
            self.write_file(&mut inner);
        }
    }

    /// Every job's entry.
    pub fn snapshot(&self) -> BTreeMap<String, JobHealth> {
        self.lock().jobs.clone()
    }

    /// One job's entry.
    pub fn get(&self, job: &str) -> Option<JobHealth> {
        self.lock().jobs.get(job).cloned()
    }

    /// The one-line summary, e.g. `store running, verdicts running, evidence failing (disk full)`.
    pub fn summary(&self) -> String {
        summarise(&self.lock().jobs)
    }

    fn write_file(&self, inner: &mut Inner) {
        let Some(path) = &self.file else { return };
        inner.file_written = Some(Instant::now());
        let doc = HealthFile {
            pid: std::process::id(),
            written_us: Utc::now().timestamp_micros(),
            summary: &inner.summary,
            jobs: &inner.jobs,
        };
        match write_atomically(path, &doc) {
            Ok(()) => inner.file_failing = false,
            Err(e) if !inner.file_failing => {
                inner.file_failing = true;
                warn!(path = %path.display(), error = %e, "cannot write the health file");
            }
            Err(_) => {}
        }
    }
}

fn summarise(jobs: &BTreeMap<String, JobHealth>) -> String {
    let mut s = String::new();
    for (name, j) in jobs {
        if !s.is_empty() {
            s.push_str(", ");
        }
        let _ = write!(s, "{name} {}", j.state.as_str());
        if let Some(cause) = &j.cause {
            let _ = write!(s, " ({cause})");
        }
    }
    s
}

fn write_atomically(path: &Path, doc: &impl Serialize) -> std::io::Result<()> {
    let text = serde_json::to_vec_pretty(doc).map_err(std::io::Error::other)?;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_names_every_job_with_its_state_and_cause() {
        let h = Health::new(None);
        h.set("store", JobState::Running, None);
        h.set("evidence", JobState::Failing, Some("disk full".into()));
        assert_eq!(h.summary(), "evidence failing (disk full), store running");
        h.set("evidence", JobState::Running, None);
        assert_eq!(h.summary(), "evidence running, store running");
    }

    #[test]
    fn restarts_are_counted_and_since_moves_only_on_a_change_of_state() {
        let h = Health::new(None);
        h.set("verdicts", JobState::Running, None);
        let since = h.get("verdicts").map(|j| j.since_us);
        h.beat("verdicts");
        assert_eq!(h.get("verdicts").map(|j| j.since_us), since);
        h.set("verdicts", JobState::Restarting, Some("boom".into()));
        h.set("verdicts", JobState::Running, None);
        h.set("verdicts", JobState::Restarting, Some("boom".into()));
        assert_eq!(h.get("verdicts").map(|j| j.restarts), Some(2));
    }

    #[test]
    fn the_health_file_is_json_with_every_job() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("health.json");
        let h = Health::new(Some(file.clone()));
        h.set("store", JobState::Failing, Some("read-only file system".into()));
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
        assert_eq!(v["jobs"]["store"]["state"], "failing");
        assert_eq!(v["jobs"]["store"]["cause"], "read-only file system");
        assert_eq!(v["summary"], "store failing (read-only file system)");
    }
}
