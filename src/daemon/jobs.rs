//! What the daemon's background jobs (verdicts, checkpoints, retention) are given.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::config::Config;

/// Everything a background job needs. Jobs open their own database connection
/// (`db::open(&config.device.data_dir)`); SQLite in WAL mode serialises writers.
#[derive(Clone)]
pub struct JobContext {
    pub config: Arc<Config>,
    /// Bumped by the store after every committed change to segments and gaps.
    pub changes: Arc<Changes>,
    /// Set on SIGTERM/SIGINT; a job returns within about a second.
    pub stop: Arc<AtomicBool>,
    /// Set by the evidence job when the disk is full and nothing may be deleted (R6): camera
    /// threads then stop writing new segments and record a `disk_full` gap; cleared when
    /// space is back.
    pub disk_full: Arc<AtomicBool>,
}

impl JobContext {
    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }
}

/// A change counter jobs can wait on.
#[derive(Debug, Default)]
pub struct Changes {
    version: Mutex<u64>,
    cv: Condvar,
}

impl Changes {
    /// Announces a committed change.
    pub fn notify(&self) {
        let mut v = self.version.lock().unwrap_or_else(|e| e.into_inner());
        *v += 1;
        self.cv.notify_all();
    }

    /// The current version.
    pub fn version(&self) -> u64 {
        *self.version.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until the version differs from `seen` or `timeout` passes; returns the version.
    pub fn wait(&self, seen: u64, timeout: Duration) -> u64 {
        let guard = self.version.lock().unwrap_or_else(|e| e.into_inner());
        let (guard, _) = self
            .cv
            .wait_timeout_while(guard, timeout, |v| *v == seen)
            .unwrap_or_else(|e| e.into_inner());
        *guard
    }
}

/// The same failure is logged at most once this often.
pub const LOG_EVERY: Duration = Duration::from_secs(60);

/// Logs a repeated failure once per [`LOG_EVERY`], with how often it happened meanwhile (a
/// full disk would otherwise repeat the same line at every retry).
#[derive(Debug, Default)]
pub struct LogThrottle {
    last: Option<(String, Instant)>,
    suppressed: u64,
}

impl LogThrottle {
    /// Whether to log `msg` now; returns the number of repeats suppressed since the last line.
    pub fn allow(&mut self, msg: &str) -> Option<u64> {
        match &self.last {
            Some((m, at)) if m == msg && at.elapsed() < LOG_EVERY => {
                self.suppressed += 1;
                None
            }
            _ => {
                self.last = Some((msg.to_string(), Instant::now()));
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }

    /// The failure is over: returns whether one was being reported.
    pub fn clear(&mut self) -> bool {
        self.suppressed = 0;
        self.last.take().is_some()
    }
}
