//! The systemd side of the daemon (issue 12): `READY=1` once start-up recovery is done,
//! `WATCHDOG=1` only while every supervised job's heartbeat is fresh, and a `STATUS=` line
//! ("recording 2/2 cameras, upstream connected, backlog 0"). Through the `sd-notify` crate;
//! without `$NOTIFY_SOCKET` (not under systemd) every notification is a no-op.
//!
//! A job that hangs (a store blocked on a locked database, a thread stuck in a system call)
//! stops beating; once its last beat is older than `[daemon] heartbeat_timeout` the pings stop
//! and systemd, after `WatchdogSec=`, kills and restarts the process.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rusqlite::Connection;
use sd_notify::NotifyState;
use tracing::{error, info, warn};

use crate::daemon::health::{Health, JobHealth, JobState};

/// Whether every job is alive: `Err` names the first that is not.
pub fn all_fresh(jobs: &BTreeMap<String, JobHealth>, timeout: Duration) -> Result<(), String> {
    for (name, j) in jobs {
        match j.state {
            JobState::Stopped => {}
            JobState::Failed => return Err(format!("job {name} failed")),
            _ if j.beat_age() > timeout => {
                return Err(format!(
                    "job {name} has not beaten for {:.0}s",
                    j.beat_age().as_secs_f64()
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

/// The watchdog's state, ticked by the daemon's main thread.
pub struct Watchdog {
    health: Arc<Health>,
    data_dir: PathBuf,
    cameras: Vec<String>,
    upstream: bool,
    timeout: Duration,
    /// systemd's `WatchdogSec=` (from `$WATCHDOG_USEC`), when set.
    interval: Option<Duration>,
    ready: bool,
    stale: Option<String>,
    status: String,
    conn: Option<Connection>,
    send_failing: bool,
}

impl Watchdog {
    pub fn new(
        health: Arc<Health>,
        data_dir: PathBuf,
        cameras: Vec<String>,
        upstream: bool,
        timeout: Duration,
    ) -> Watchdog {
        let interval = sd_notify::watchdog_enabled();
        if let Some(i) = interval {
            info!(
                watchdog = %humantime::format_duration(i),
                heartbeat_timeout = %humantime::format_duration(timeout),
                "systemd watchdog on"
            );
        }
        Watchdog {
            health,
            data_dir,
            cameras,
            upstream,
            timeout,
            interval,
            ready: false,
            stale: None,
            status: String::new(),
            conn: None,
            send_failing: false,
        }
    }

    /// How often to tick: at most a second, and at least three times per watchdog interval.
    pub fn every(&self) -> Duration {
        let d = Duration::from_secs(1);
        match self.interval {
            Some(i) => d.min(i / 3).max(Duration::from_millis(10)),
            None => d,
        }
    }

    fn send(&mut self, states: &[NotifyState]) {
        match sd_notify::notify(states) {
            Ok(()) => self.send_failing = false,
            Err(e) if !self.send_failing => {
                self.send_failing = true;
                warn!(error = %e, "cannot notify systemd");
            }
            Err(_) => {}
        }
    }

    /// One look: READY once the store finished its start-up recovery, the STATUS line when
    /// it changed, and the ping while every job is fresh.
    pub fn tick(&mut self) {
        let jobs = self.health.snapshot();
        if !self.ready {
            // The store is `running` once start-up recovery is done (daemon::store).
            let recovered = jobs
                .get("store")
                .is_none_or(|j| !matches!(j.state, JobState::Starting));
            if !recovered {
                return;
            }
            self.ready = true;
            let status = self.status_line(&jobs);
            self.send(&[NotifyState::Ready, NotifyState::Status(&status)]);
            info!(status = %status, "ready (start-up recovery done)");
            self.status = status;
        }
        let fresh = all_fresh(&jobs, self.timeout);
        match (&fresh, &self.stale) {
            (Err(why), None) => error!(
                why = %why,
                "a job is not alive: the systemd watchdog pings stop (systemd restarts the daemon)"
            ),
            (Ok(()), Some(_)) => info!("every job is alive again: the watchdog pings resume"),
            _ => {}
        }
        self.stale = fresh.as_ref().err().cloned();
        let mut status = self.status_line(&jobs);
        if let Err(why) = &fresh {
            status = format!("{status}; {why}");
        }
        let changed = status != self.status;
        match (fresh.is_ok() && self.interval.is_some(), changed) {
            (true, true) => self.send(&[NotifyState::Watchdog, NotifyState::Status(&status)]),
            (true, false) => self.send(&[NotifyState::Watchdog]),
            (false, true) => self.send(&[NotifyState::Status(&status)]),
            (false, false) => {}
        }
        self.status = status;
    }

    /// Tells systemd the daemon is stopping.
    pub fn stopping(&mut self) {
        self.send(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
    }

    /// "recording 2/2 cameras, upstream connected, backlog 0", plus the jobs not running.
    fn status_line(&mut self, jobs: &BTreeMap<String, JobHealth>) -> String {
        let (recording, upstream) = match self.read_db() {
            Ok(x) => x,
            Err(e) => {
                self.conn = None;
                return format!("cannot read the database: {e}");
            }
        };
        let mut s = format!("recording {recording}/{} cameras", self.cameras.len());
        match upstream {
            Some((connected, backlog)) => {
                s.push_str(if connected {
                    ", upstream connected"
                } else {
                    ", upstream disconnected"
                });
                s.push_str(&format!(", backlog {backlog}"));
            }
            None if self.upstream => s.push_str(", upstream not yet seen"),
            None => s.push_str(", offline (no [upstream])"),
        }
        let unwell: Vec<String> = jobs
            .iter()
            .filter(|(_, j)| !j.state.is_healthy())
            .map(|(n, j)| match &j.cause {
                Some(c) => format!("{n} {} ({c})", j.state.as_str()),
                None => format!("{n} {}", j.state.as_str()),
            })
            .collect();
        if !unwell.is_empty() {
            s.push_str("; ");
            s.push_str(&unwell.join(", "));
        }
        s
    }

    #[allow(clippy::type_complexity)]
    fn read_db(&mut self) -> Result<(usize, Option<(bool, i64)>), String> {
        if self.conn.is_none() {
            match crate::db::open_existing(&self.data_dir) {
                Ok(Some(c)) => {
                    // Never hold up the main thread (signals) for long.
                    let _ = c.busy_timeout(Duration::from_millis(200));
                    self.conn = Some(c);
                }
                Ok(None) => return Ok((0, None)),
                Err(e) => return Err(e.to_string()),
            }
        }
        let Some(conn) = &self.conn else {
            return Ok((0, None));
        };
        let mut recording = 0;
        for cam in &self.cameras {
            let up: bool = conn
                .query_row(
                    "SELECT EXISTS (SELECT 1 FROM segments WHERE camera = ?1 AND state = 'recording')
                        AND NOT EXISTS (SELECT 1 FROM gaps WHERE camera = ?1 AND end_us IS NULL)",
                    [cam],
                    |r| r.get(0),
                )
                .map_err(|e| e.to_string())?;
            recording += usize::from(up);
        }
        let upstream = if self.upstream {
            let s = crate::sync::outbox::status(conn).map_err(|e| e.to_string())?;
            s.broker.as_ref().map(|_| (s.connected, s.backlog_records))
        } else {
            None
        };
        Ok((recording, upstream))
    }
}
