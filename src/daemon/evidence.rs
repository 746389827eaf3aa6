//! Evidence jobs of the daemon (issue 5), on one thread:
//! - signed checkpoints of the log every `checkpoint_records` records or
//!   `checkpoint_interval`, whichever comes first, and one more when stopping;
//! - every `disk_check_interval`: retention (R6) and the disk watch: prune what the policy
//!   allows (only files past retention, ever), forecast the days until the disk is full and
//!   alarm below `alarm_days`, and when the disk is full with nothing left to delete, set
//!   `JobContext::disk_full` so the cameras stop opening segments, and alarm.
//!
//! Alarms are `alarm` records in the log (`record::AlarmKind::DiskFull` / `DiskForecast`,
//! raised or cleared) plus a tracing line, written on each change of state only.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use chrono::Utc;
use rusqlite::Connection;
use serde_json::json;

use super::jobs::{JobContext, LogThrottle};
use super::supervisor::{JobError, JobHandle, Supervisor};
use crate::db;
use crate::evidence::disk::{self, show_size};
use crate::evidence::key::DeviceKey;
use crate::evidence::log;
use crate::evidence::record::{AlarmKind, AlarmState, Kind, Record};
use crate::evidence::retention::{self, DiskPolicy, Expired};
use crate::evidence::store::{self, PruneReason};

/// The longest the job sleeps without looking at the stop flag (a job returns within about a
/// second of it). Waking only loads the flag: the log is looked at when the store announces a
/// change, or when a checkpoint or a disk check falls due, never on a fixed tick (issue 8: a
/// 200 ms look at the log was most of the daemon's idle cost).
const STOP_POLL: Duration = Duration::from_millis(250);
/// `meta` key of the last disk check's outcome (JSON).
pub const DISK_STATUS: &str = "evidence.disk_check";
/// At stop: sign for at most this long while the store records the last segments…
const STOP_LINGER: Duration = Duration::from_millis(900);
/// …and stop once it has been quiet this long.
const STOP_QUIET: Duration = Duration::from_millis(300);
/// Files pruned per transaction (and between looks at the stop flag).
const PRUNE_BATCH: i64 = 500;

/// The job, run under the supervisor as `evidence`. At each start the device key is loaded
/// (created on first start) and registered. A key that cannot be used (unreadable, or replaced
/// behind the database's back) does not stop the daemon: recording and the disk watch matter
/// more (R1, R6). Checkpoints are then not signed, an `alarm` record (`device_key`) and an
/// error say why, and the key is tried again every `checkpoint_interval`. Any other start-up
/// failure (the database cannot be opened) is a job failure for the supervisor.
pub fn job(ctx: JobContext) -> impl FnMut(&JobHandle) -> Result<(), JobError> + Send + 'static {
    move |handle: &JobHandle| {
        let job = start(ctx.clone())?;
        job.run(handle);
        Ok(())
    }
}

/// Runs the job on a thread under a supervisor of its own (tests and tools; the daemon uses
/// [`job`] under its supervisor).
pub fn spawn(ctx: JobContext) -> std::io::Result<Option<std::thread::JoinHandle<()>>> {
    let sup = Supervisor::standalone(ctx.config.device.data_dir.clone(), ctx.stop.clone());
    sup.spawn("evidence", job(ctx)).map(Some)
}

fn start(ctx: JobContext) -> Result<Job, JobError> {
    let data_dir = ctx.config.device.data_dir.clone();
    let mut conn = db::open(&data_dir)?;
    let key = match store::open_device_key(&mut conn, &data_dir, Utc::now()) {
        Ok(k) => Some(k),
        Err(e) => {
            tracing::error!(
                "evidence: cannot use the device key: {e}; checkpoints are not signed until this is fixed"
            );
            let alarm = AlarmKind::DeviceKey {
                detail: Some(e.to_string()),
            };
            store::append_one(&mut conn, Utc::now(), &Record::alarm(alarm, AlarmState::Raised))?;
            None
        }
    };
    // A changed `[device] id` is a record before anything is signed under it (issue 8, item 6).
    let tx = db::write_tx(&mut conn)?;
    store::record_device_id(&tx, &ctx.config.device.id, Utc::now())?;
    tx.commit()?;
    store::finish_pending_unlinks(&conn, &data_dir)?;
    Ok(Job::new(ctx, conn, key, data_dir)?)
}

struct Job {
    ctx: JobContext,
    conn: Connection,
    /// `None` while the key cannot be used (see [`spawn`]).
    key: Option<DeviceKey>,
    /// The last attempt to load an unusable key.
    key_tried: Instant,
    data_dir: PathBuf,
    signed_seq: i64,
    /// When the last checkpoint was signed (`None`: sign as soon as there is anything new).
    signed_at: Option<Instant>,
    next_disk_check: Instant,
    /// When the log must be looked at even if the store announces nothing (records other
    /// writers append are signed by `checkpoint_interval` at the latest).
    next_look: Instant,
    /// The store's change counter at the last look.
    looked_at: Option<u64>,
    forecast_low: bool,
    /// The `disk_full` alarm state the log last recorded (the flag itself is `ctx.disk_full`).
    disk_full_recorded: bool,
    errors: LogThrottle,
}

impl Job {
    fn new(
        ctx: JobContext,
        conn: Connection,
        key: Option<DeviceKey>,
        data_dir: PathBuf,
    ) -> Result<Job, store::StoreError> {
        let signed_seq = store::last_checkpoint_seq(&conn)?;
        // Pick up the alarm states the log last recorded, so a restart does not repeat them.
        let mut disk_full = false;
        let mut forecast_low = false;
        for r in log::read_filtered(&conn, None, Some(Kind::Alarm))? {
            let Record::Alarm(a) = r.record else { continue };
            let raised = a.state == AlarmState::Raised;
            match a.alarm {
                AlarmKind::DiskFull { .. } => disk_full = raised,
                AlarmKind::DiskForecast { .. } => forecast_low = raised,
                _ => {}
            }
        }
        ctx.disk_full.store(disk_full, Ordering::SeqCst);
        Ok(Job {
            ctx,
            conn,
            key,
            key_tried: Instant::now(),
            data_dir,
            signed_seq,
            signed_at: None,
            next_disk_check: Instant::now(),
            next_look: Instant::now(),
            looked_at: None,
            forecast_low,
            disk_full_recorded: disk_full,
            errors: LogThrottle::default(),
        })
    }

    fn run(mut self, handle: &JobHandle) {
        handle.running();
        tracing::info!(
            fingerprint = %self.key.as_ref().map_or("(unusable)".into(), |k| k.public().fingerprint()),
            retention_days = self.ctx.config.rules.profile.retention.as_secs() / 86_400,
            "evidence: job started ({})",
            self.ctx.config.evidence.summary()
        );
        loop {
            handle.beat();
            if self.ctx.stopping() {
                self.sign_while_stopping();
                break;
            }
            let mut failed = false;
            let mut tried = false;
            let version = self.ctx.changes.version();
            if self.looked_at != Some(version) || Instant::now() >= self.next_look {
                self.looked_at = Some(version);
                tried = true;
                if let Err(e) = self.maybe_checkpoint(false) {
                    handle.failing(format!("checkpoint: {e}"));
                    self.report_error("checkpoint", e);
                    failed = true;
                }
                self.next_look = self.next_look_after(Instant::now());
            }
            if Instant::now() >= self.next_disk_check {
                tried = true;
                if let Err(e) = self.disk_pass() {
                    handle.failing(format!("disk check: {e}"));
                    self.report_error("disk check", e);
                    failed = true;
                }
                self.next_disk_check = Instant::now() + self.ctx.config.evidence.disk_check_interval;
            }
            if tried && !failed {
                self.recovered(handle);
            }
            // Sleep until the store announces a change, the next deadline, or the next look at
            // the stop flag, whichever comes first.
            let due = self.next_look.min(self.next_disk_check);
            let timeout = due.saturating_duration_since(Instant::now()).min(STOP_POLL);
            self.ctx.changes.wait(version, timeout);
        }
        tracing::info!(seq = self.signed_seq, "evidence: job stopped");
    }

    /// When the log must next be looked at without a change from the store: when the last
    /// checkpoint is `checkpoint_interval` old (then anything unsigned is due), else a whole
    /// interval from now (nothing was new at this look). An unusable key is retried on the
    /// same schedule.
    fn next_look_after(&self, now: Instant) -> Instant {
        let interval = self.ctx.config.evidence.checkpoint_interval;
        match self.signed_at {
            Some(t) if t + interval > now => t + interval,
            _ => now + interval,
        }
    }

    /// At stop, the cameras close their open segments and the store records them: sign what
    /// comes in until the store has been quiet for a moment (at most [`STOP_LINGER`]), so the
    /// log is not left with an unsigned tail while the daemon is down.
    fn sign_while_stopping(&mut self) {
        let deadline = Instant::now() + STOP_LINGER;
        loop {
            let seen = self.ctx.changes.version();
            if let Err(e) = self.maybe_checkpoint(true) {
                self.report_error("checkpoint", e);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || self.ctx.changes.wait(seen, STOP_QUIET.min(left)) == seen {
                break;
            }
        }
        if let Err(e) = self.maybe_checkpoint(true) {
            self.report_error("checkpoint", e);
        }
    }

    /// The last pass worked: a failure reported before is over.
    fn recovered(&mut self, handle: &JobHandle) {
        if self.errors.clear() {
            tracing::info!("evidence: checkpoints and the disk watch work again");
            handle.running();
        }
    }

    /// Logs a failure once a minute at most (a full disk would otherwise repeat it every tick).
    fn report_error(&mut self, what: &str, e: impl std::fmt::Display) {
        let msg = format!("{what}: {e}");
        if let Some(repeats) = self.errors.allow(&msg) {
            tracing::error!(repeats, "evidence: {msg}");
        }
    }

    fn maybe_checkpoint(&mut self, stopping: bool) -> Result<(), store::StoreError> {
        let cfg = &self.ctx.config.evidence;
        let head = log::last_seq(&self.conn)?;
        if head <= self.signed_seq {
            return Ok(());
        }
        let due = stopping
            || (head - self.signed_seq) as u64 >= cfg.checkpoint_records
            || self
                .signed_at
                .is_none_or(|t| t.elapsed() >= cfg.checkpoint_interval);
        if !due {
            return Ok(());
        }
        let device = self.ctx.config.device.id.clone();
        if self.key.is_none() {
            if self.key_tried.elapsed() < cfg.checkpoint_interval && !stopping {
                return Ok(());
            }
            self.key_tried = Instant::now();
            let key = store::open_device_key(&mut self.conn, &self.data_dir, Utc::now())?;
            tracing::info!(fingerprint = %key.public().fingerprint(), "evidence: the device key is usable again");
            self.alarm(AlarmKind::DeviceKey { detail: None }, AlarmState::Cleared)?;
            self.key = Some(key);
        }
        let Some(key) = &self.key else { return Ok(()) };
        let signed = match store::checkpoint_now(&mut self.conn, key, &device, Utc::now()) {
            Err(store::StoreError::KeyChanged { current }) => {
                // `classproof keys rotate` ran while we were running: sign with the new key.
                let key = crate::evidence::key::load(&self.data_dir, Some(&current))?;
                tracing::info!(fingerprint = %current, "evidence: the device key was rotated; signing with the new key");
                let cp = store::checkpoint_now(&mut self.conn, &key, &device, Utc::now())?;
                self.key = Some(key);
                cp
            }
            other => other?,
        };
        if let Some(cp) = signed {
            tracing::debug!(seq = cp.checkpoint.seq, head = %hex::encode(cp.checkpoint.head), "evidence: checkpoint");
            self.signed_seq = cp.checkpoint.seq;
        } else {
            self.signed_seq = store::last_checkpoint_seq(&self.conn)?;
        }
        self.signed_at = Some(Instant::now());
        Ok(())
    }

    /// Retention and the disk watch.
    fn disk_pass(&mut self) -> Result<(), store::StoreError> {
        let config = self.ctx.config.clone();
        let cfg = &config.evidence;
        let retention = config.rules.profile.retention;
        let measure = |dir: &std::path::Path| {
            disk::measure(dir, cfg.capacity).map_err(|e| {
                store::StoreError::State(format!("{}: cannot measure the disk: {e}", dir.display()))
            })
        };
        let mut view = measure(&self.data_dir)?;
        let reserve = cfg.reserve_for(view.capacity);
        let mut pruned = 0usize;
        loop {
            let now = Utc::now();
            let now_us = now.timestamp_micros();
            let keep_us = retention::keep_for(retention).as_micros().min(i64::MAX as u128) as i64;
            let rows = store::live_files_before(&self.conn, now_us.saturating_sub(keep_us), PRUNE_BATCH)?;
            let expired: Vec<Expired> = rows
                .iter()
                .filter_map(|f| Expired::check(f.seq, f.bytes, f.time_us, now_us, retention))
                .collect();
            let plan = retention::plan(cfg.disk_policy, view.available, reserve, &expired);
            if plan.delete.is_empty() {
                break;
            }
            let files: Vec<_> = rows
                .into_iter()
                .filter(|f| plan.delete.contains(&f.seq))
                .collect();
            let reason = if plan.for_space {
                PruneReason::DiskFull
            } else {
                PruneReason::Retention
            };
            let paths = store::prune(&mut self.conn, &self.data_dir, &files, reason, retention, now)?;
            pruned += paths.len();
            view = measure(&self.data_dir)?;
            if self.ctx.stopping() || (files.len() as i64) < PRUNE_BATCH {
                break;
            }
        }
        if pruned > 0 {
            tracing::info!(
                files = pruned,
                policy = cfg.disk_policy.as_str(),
                available = %show_size(view.available),
                "evidence: deleted files older than the retention (R6), a `pruned` record each"
            );
        }

        let full = retention::is_full(view.available, reserve);
        // The cameras obey the disk at once (R6), even when the alarm cannot be written (the
        // database is on the full disk); the alarm state moves only once its record committed,
        // so a failed write is tried again at the next check.
        self.ctx.disk_full.store(full, Ordering::SeqCst);
        if full != self.disk_full_recorded {
            self.alarm(
                AlarmKind::DiskFull {
                    available_bytes: view.available,
                    capacity_bytes: view.capacity,
                    reserve_bytes: reserve,
                    policy: cfg.disk_policy,
                },
                AlarmState::raised(full),
            )?;
            self.disk_full_recorded = full;
            if full {
                tracing::error!(
                    available = %show_size(view.available),
                    reserve = %show_size(reserve),
                    policy = cfg.disk_policy.as_str(),
                    "evidence: disk full and nothing is past the retention: new recording stops \
                     (R6: nothing younger than the retention is deleted); free space or add a disk"
                );
            } else {
                tracing::info!(available = %show_size(view.available), "evidence: disk space is back, recording resumes");
            }
        }

        let now_us = Utc::now().timestamp_micros();
        let window_us = cfg.forecast_window.as_micros().min(i64::MAX as u128) as i64;
        let since = now_us.saturating_sub(window_us);
        let (bytes, _) = store::bytes_recorded_since(&self.conn, since)?;
        let start = store::first_record_time_us(&self.conn)?.map_or(now_us, |t| t.max(since));
        let covered = Duration::from_micros(now_us.saturating_sub(start).max(0) as u64);
        let forecast = retention::forecast(view.available, reserve, bytes, covered, cfg.forecast_window);
        let days_left = forecast.and_then(|f| f.days_left);
        let low = cfg.alarm_days > 0 && days_left.is_some_and(|d| d < f64::from(cfg.alarm_days));
        if low != self.forecast_low {
            self.alarm(
                AlarmKind::DiskForecast {
                    days_left,
                    alarm_days: cfg.alarm_days,
                    bytes_per_day: forecast.map(|f| f.bytes_per_day.round() as u64),
                    available_bytes: view.available,
                    policy: cfg.disk_policy,
                },
                AlarmState::raised(low),
            )?;
            self.forecast_low = low;
            if low {
                tracing::warn!(
                    days_left = format!("{:.1}", days_left.unwrap_or_default()),
                    per_day = %show_size(forecast.map_or(0, |f| f.bytes_per_day as u64)),
                    "evidence: the disk will be full in less than {} days at the current rate{}",
                    cfg.alarm_days,
                    if cfg.disk_policy == DiskPolicy::Protect {
                        "; recording will then stop (policy protect)"
                    } else {
                        ""
                    }
                );
            } else {
                tracing::info!("evidence: disk forecast back above {} days", cfg.alarm_days);
            }
        }
        // The outcome, for operators (and tests) to read without parsing logs.
        let status = json!({
            "time_us": now_us,
            "available_bytes": view.available,
            "capacity_bytes": view.capacity,
            "reserve_bytes": reserve,
            "disk_full": full,
            "days_left": days_left,
            "pruned": pruned,
        });
        db::meta_set(&self.conn, DISK_STATUS, &status.to_string())?;
        Ok(())
    }

    fn alarm(&mut self, alarm: AlarmKind, state: AlarmState) -> Result<(), store::StoreError> {
        store::append_one(&mut self.conn, Utc::now(), &Record::alarm(alarm, state))?;
        Ok(())
    }
}
