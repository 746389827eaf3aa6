//! The store: the one writer of the segment index. It turns camera threads' `MediaEvent`s into
//! rows and evidence records, each fact and its record in one transaction, and repairs what a
//! crash left behind at start-up. It runs as the supervised job `store`.
//!
//! Invariants:
//! - per camera, gaps never overlap and a gap ends exactly where the next segment starts;
//! - memory (`open_gaps`, `last_segment_end`, the queue) changes only after the transaction
//!   that records the change committed: a failed commit leaves it as it was, and the retry does
//!   the same thing exactly once;
//! - a write that fails for a reason that can pass (disk full, busy, I/O, read-only file
//!   system) stays queued and is retried with back-off, loudly (the health registry says
//!   `failing`, the log says it once a minute), never dropped;
//! - an event that fails for good (a file that cannot be read or repaired, a fact that cannot
//!   be stated) is set aside with an `alarm` record, so one camera's bad event never holds up
//!   the others; a left-over file that cannot be repaired is moved to `quarantine/`;
//! - start-up recovery never stops recording: the cameras record while it runs, their events
//!   wait in the queue, and what recovery cannot repair is quarantined, not fatal;
//! - the heartbeat file says until when the daemon was surely alive, so that after a crash the
//!   hole is split honestly between what the cameras were doing and `daemon_down`.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use rusqlite::Connection;
use thiserror::Error;
use tracing::{error, info, warn};

use super::jobs::{Changes, LogThrottle};
use super::supervisor::{JobError, JobHandle};
use crate::clock::{from_us, rfc3339};
use crate::db::{self, DbError};
use crate::evidence::log::{self, LogError};
use crate::evidence::record::{self, AlarmKind, AlarmState, Record};
use crate::media::index::{self, SegmentState};
use crate::media::recover::{self, RecoverError, parse_segment_path};
use crate::media::{ClosedSegment, GapCause, MediaEvent};

/// File in the data dir holding the last time (µs) the daemon was known to be running.
pub const HEARTBEAT_FILE: &str = "heartbeat";
const HEARTBEAT_EVERY: Duration = Duration::from_secs(1);
/// Where left-over files that cannot be repaired or read are moved, under the data dir.
pub const QUARANTINE_DIR: &str = "quarantine";
/// Back-off of retried writes: from this…
const RETRY_FIRST: Duration = Duration::from_millis(250);
/// …doubling up to this.
const RETRY_MAX: Duration = Duration::from_secs(5);

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("{0}")]
    Db(#[from] DbError),
    #[error("database error: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("{0}")]
    Log(#[from] LogError),
    #[error("{0}")]
    Recover(#[from] RecoverError),
    #[error("{path}: cannot move it to the quarantine: {source}")]
    Quarantine {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl StoreError {
    /// A failure that may pass by itself (see `db::is_transient`): the write is retried.
    pub fn is_transient(&self) -> bool {
        match self {
            StoreError::Db(e) => e.is_transient(),
            StoreError::Sql(e) | StoreError::Log(LogError::Db(e)) => db::is_transient(e),
            StoreError::Log(_) => false,
            StoreError::Recover(RecoverError::Io { source, .. }) => db::is_transient_io(source),
            StoreError::Quarantine { source, .. } => db::is_transient_io(source),
        }
    }
}

/// An open gap of a camera: what its closing record will say.
#[derive(Debug, Clone)]
struct OpenGap {
    id: i64,
    start_us: i64,
    cause: GapCause,
    detail: Option<String>,
}

pub struct Store {
    conn: Option<Connection>,
    data_dir: PathBuf,
    tz: Tz,
    changes: Arc<Changes>,
    /// The recording cameras, and when this run started (for start-up recovery).
    cameras: Vec<String>,
    started: DateTime<Utc>,
    recovery: Recovery,
    open_gaps: HashMap<String, OpenGap>,
    /// End (µs) of each camera's latest segment recorded in this run.
    last_segment_end: HashMap<String, i64>,
    pending: VecDeque<MediaEvent>,
    retry_at: Option<Instant>,
    backoff: Duration,
    throttle: LogThrottle,
    last_heartbeat: Option<Instant>,
    heartbeat_failing: bool,
    /// Since when writes fail (the first failure of the current run of them): recorded as an
    /// alarm raised then and cleared when writes work again, so the log states the trouble.
    trouble: Option<Trouble>,
}

#[derive(Debug, Clone)]
struct Trouble {
    since: DateTime<Utc>,
    read_only: bool,
    detail: String,
}

/// How far start-up recovery got (each step is done once, even when a later one is retried).
#[derive(Debug, Default, Clone, PartialEq)]
struct Recovery {
    repaired: bool,
    orphans: bool,
    closed_left_open: bool,
    done: bool,
    report: Startup,
}

/// What start-up found and did.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Startup {
    /// Segments left open by a crash that are playable again.
    pub recovered: Vec<PathBuf>,
    /// Segments left open that could not be made playable (kept, indexed as damaged).
    pub damaged: Vec<PathBuf>,
    /// Left-over files that could not be read or repaired, moved under `quarantine/`:
    /// (original path, new path), both relative to the data dir.
    pub quarantined: Vec<(PathBuf, PathBuf)>,
    /// `daemon_down` gaps opened, per camera: where the known timeline ended.
    pub daemon_down: Vec<(String, DateTime<Utc>)>,
}

impl Store {
    /// A store for `cameras`; nothing is opened or read until [`Store::run`].
    pub fn new(
        data_dir: &Path,
        tz: Tz,
        changes: Arc<Changes>,
        cameras: &[&str],
        started: DateTime<Utc>,
    ) -> Store {
        Store {
            conn: None,
            data_dir: data_dir.to_path_buf(),
            tz,
            changes,
            cameras: cameras.iter().map(|c| c.to_string()).collect(),
            started,
            recovery: Recovery::default(),
            open_gaps: HashMap::new(),
            last_segment_end: HashMap::new(),
            pending: VecDeque::new(),
            retry_at: None,
            backoff: RETRY_FIRST,
            throttle: LogThrottle::default(),
            last_heartbeat: None,
            heartbeat_failing: false,
            trouble: None,
        }
    }

    /// The connection, opened on first use (and again after a failure dropped it).
    fn conn(&mut self) -> Result<&mut Connection, StoreError> {
        let conn = match self.conn.take() {
            Some(c) => c,
            None => db::open(&self.data_dir)?,
        };
        Ok(self.conn.insert(conn))
    }

    /// Start-up recovery, then the events of the cameras until every camera thread is gone
    /// (the channel closes). Transient failures are retried here, with back-off; an `Err` is a
    /// failure for the supervisor (which starts the store again with its memory intact).
    pub fn run(&mut self, rx: &Receiver<MediaEvent>, job: &JobHandle) -> Result<(), JobError> {
        // A connection that saw an error may hold a broken transaction: start afresh.
        self.conn = None;
        while !self.recovery.done {
            match self.startup() {
                Ok(report) => {
                    log_startup(&report, self.tz);
                    self.throttle.clear();
                    self.backoff = RETRY_FIRST;
                    self.record_trouble_over();
                }
                Err(e) if e.is_transient() => {
                    self.report_failure(job, "start-up recovery", &e);
                    if job.stopping() {
                        return Ok(());
                    }
                    job.pause(self.next_backoff());
                }
                Err(e) => return Err(Box::new(e)),
            }
        }
        job.running();
        loop {
            self.heartbeat();
            job.beat();
            let wait = match self.retry_at {
                Some(at) => at.saturating_duration_since(Instant::now()).min(HEARTBEAT_EVERY),
                None => HEARTBEAT_EVERY,
            };
            match rx.recv_timeout(wait) {
                Ok(ev) => {
                    self.pending.push_back(ev);
                    self.pending.extend(rx.try_iter());
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            if self.retry_at.is_none_or(|at| Instant::now() >= at) {
                self.flush_pending(job);
            }
        }
        self.flush_pending(job);
        self.last_heartbeat = None;
        self.heartbeat();
        if !self.pending.is_empty() {
            error!(
                count = self.pending.len(),
                "could not record these events before stopping: {:?}", self.pending
            );
        }
        Ok(())
    }

    fn next_backoff(&mut self) -> Duration {
        let b = self.backoff;
        self.backoff = (self.backoff * 2).min(RETRY_MAX);
        b
    }

    fn report_failure(&mut self, job: &JobHandle, what: &str, e: &StoreError) {
        // SQLite says "disk I/O error" when the file system turned read-only under it: say
        // what the technician has to fix.
        let read_only = is_read_only(&self.data_dir);
        let msg = if read_only {
            format!("{what}: the data dir's file system is read-only: {e}")
        } else {
            format!("{what}: {e}")
        };
        job.failing(&msg);
        if self.trouble.is_none() {
            self.trouble = Some(Trouble {
                since: Utc::now(),
                read_only,
                detail: msg.clone(),
            });
        }
        if let Some(repeats) = self.throttle.allow(&msg) {
            error!(repeats, "cannot record {msg}; will retry");
        }
        // After an error the connection may be unusable (e.g. the file system went away).
        self.conn = None;
    }

    /// Repairs what the previous run left and records the time it was not running: segments
    /// left open are repaired and indexed, segment files the index does not know are indexed,
    /// gaps left open are closed where the daemon was last known alive, and every recording
    /// camera with a history gets a `daemon_down` gap from the end of that history (closed when
    /// its first segment starts). A file that cannot be read or repaired is quarantined.
    /// Idempotent: a step that was done is not done again when a later one is retried.
    pub fn startup(&mut self) -> Result<Startup, StoreError> {
        let now = self.started;
        let last_alive = read_heartbeat(&self.data_dir).filter(|&t| t <= now.timestamp_micros());
        let mut report = std::mem::take(&mut self.recovery.report);
        let result = self.startup_steps(now, last_alive, &mut report);
        self.recovery.report = report;
        result?;
        self.recovery.done = true;
        self.changes.notify();
        Ok(self.recovery.report.clone())
    }

    fn startup_steps(
        &mut self,
        now: DateTime<Utc>,
        last_alive: Option<i64>,
        report: &mut Startup,
    ) -> Result<(), StoreError> {
        if !self.recovery.repaired {
            for row in index::recording_segments(self.conn()?)? {
                self.repair_left_open(
                    &row.camera,
                    &row.stream_id,
                    row.stream_seq,
                    &row.path,
                    &row.codec,
                    row.start_us,
                    report,
                )?;
            }
            self.recovery.repaired = true;
        }
        if !self.recovery.orphans {
            let cameras = self.cameras.clone();
            self.index_orphans(&cameras, now, report)?;
            self.recovery.orphans = true;
        }
        if !self.recovery.closed_left_open {
            let opened_now: BTreeSet<i64> = self.open_gaps.values().map(|g| g.id).collect();
            for row in index::open_gaps(self.conn()?)? {
                if opened_now.contains(&row.id) {
                    continue;
                }
                let end = last_alive.unwrap_or(row.start_us).max(row.start_us);
                let gap = OpenGap {
                    id: row.id,
                    start_us: row.start_us,
                    cause: row.cause,
                    detail: row.detail,
                };
                self.close_gap(&row.camera, &gap, end)?;
            }
            self.recovery.closed_left_open = true;
        }
        let known: BTreeSet<String> = self.cameras.iter().cloned().collect();
        for cam in known {
            if self.open_gaps.contains_key(&cam) {
                continue; // opened by an earlier try
            }
            let Some(end_us) = index::last_end_us(self.conn()?, &cam)? else {
                continue;
            };
            if end_us >= now.timestamp_micros() {
                continue;
            }
            self.open_gap(
                &cam,
                end_us,
                GapCause::DaemonDown,
                "the daemon was not running",
                now.timestamp_micros(),
            )?;
            report.daemon_down.push((cam.to_string(), from_us(end_us)));
        }
        Ok(())
    }

    /// Segment files under video/ that the index does not know (the daemon died between
    /// creating a file and recording its row): repaired and indexed. Only the dates since each
    /// camera's latest indexed segment are looked at.
    fn index_orphans(
        &mut self,
        cameras: &[String],
        now: DateTime<Utc>,
        report: &mut Startup,
    ) -> Result<(), StoreError> {
        for cam in cameras {
            let since = index::last_segment_start_us(self.conn()?, cam)?
                .map(from_us)
                .unwrap_or(now - chrono::Duration::days(1));
            let first_day = since.with_timezone(&self.tz).date_naive();
            let last_day = now.with_timezone(&self.tz).date_naive();
            for day in first_day.iter_days().take_while(|d| *d <= last_day) {
                let rel_dir = Path::new("video")
                    .join(cam)
                    .join(day.format("%Y-%m-%d").to_string());
                let Ok(entries) = std::fs::read_dir(self.data_dir.join(&rel_dir)) else {
                    continue;
                };
                let mut files: Vec<PathBuf> = entries
                    .filter_map(Result::ok)
                    .map(|e| rel_dir.join(e.file_name()))
                    .filter(|p| p.extension().is_some_and(|x| x == "mp4"))
                    .collect();
                files.sort();
                for rel in files {
                    if index::segment_by_path(self.conn()?, &rel)?.is_some() {
                        continue;
                    }
                    let Some(info) = parse_segment_path(&rel, self.tz) else {
                        warn!(path = %rel.display(), "a file under video/ that is not a segment; left alone");
                        continue;
                    };
                    if info.start >= self.started {
                        // This run's cameras record while recovery runs: their files are
                        // indexed from their own events, never repaired from under them.
                        continue;
                    }
                    let codec = "unknown";
                    self.repair_left_open(
                        &info.camera,
                        &info.stream_id,
                        info.stream_seq,
                        &rel,
                        codec,
                        info.start.timestamp_micros(),
                        report,
                    )?;
                }
            }
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn repair_left_open(
        &mut self,
        camera: &str,
        stream_id: &str,
        stream_seq: u32,
        rel: &Path,
        codec: &str,
        start_us: i64,
        report: &mut Startup,
    ) -> Result<(), StoreError> {
        let abs = self.data_dir.join(rel);
        if std::fs::symlink_metadata(&abs).is_err() {
            // Announced but never created: nothing was recorded.
            self.conn()?.execute(
                "DELETE FROM segments WHERE path = ?1 AND state = 'recording'",
                [rel.to_string_lossy()],
            )?;
            return Ok(());
        }
        let repaired = match recover::repair(&abs) {
            Ok(r) => r,
            // Repair writes (it cuts a torn tail): a full or read-only disk is the disk's fault
            // and passes; anything else (the file cannot be read) is the file's.
            Err(RecoverError::Io { source, .. }) if !is_write_blocked(&source) => {
                let moved_to = self.quarantine(camera, rel, &source.to_string())?;
                report.quarantined.push((rel.to_path_buf(), moved_to));
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        };
        let start = from_us(start_us);
        let media = repaired.media_duration.unwrap_or_default();
        let seg = ClosedSegment {
            camera: camera.to_string(),
            stream_id: stream_id.to_string(),
            stream_seq,
            path: rel.to_path_buf(),
            codec: codec.to_string(),
            start,
            end: start + chrono::Duration::microseconds(media.as_micros() as i64),
            media_duration: media,
            bytes: repaired.bytes,
            sha256: repaired.sha256.clone(),
        };
        self.record_segment(&seg, repaired.state)?;
        match repaired.state {
            SegmentState::Recovered => {
                info!(path = %abs.display(), seconds = media.as_secs_f64(), cut_from = ?repaired.cut_from, "segment recovered");
                report.recovered.push(rel.to_path_buf());
            }
            _ => {
                warn!(path = %abs.display(), "segment left open is not playable; kept and indexed as damaged");
                report.damaged.push(rel.to_path_buf());
            }
        }
        Ok(())
    }

    /// Moves a left-over file that cannot be read or repaired to `quarantine/{its path}` (the
    /// bytes are kept for an expert; the index and the log never state it as a segment), drops
    /// its `recording` row, and appends an `alarm` record naming both paths, in one
    /// transaction after the move. Returns the new path, relative to the data dir.
    fn quarantine(&mut self, camera: &str, rel: &Path, cause: &str) -> Result<PathBuf, StoreError> {
        let moved_rel = Path::new(QUARANTINE_DIR).join(rel);
        let to = self.data_dir.join(&moved_rel);
        let from = self.data_dir.join(rel);
        let move_err = |source| StoreError::Quarantine {
            path: from.clone(),
            source,
        };
        if let Some(dir) = to.parent() {
            std::fs::create_dir_all(dir).map_err(move_err)?;
        }
        // A retry after the move but before the commit finds the file already moved.
        if std::fs::symlink_metadata(&from).is_ok() {
            std::fs::rename(&from, &to).map_err(move_err)?;
        }
        let tx = db::write_tx(self.conn()?)?;
        tx.execute(
            "DELETE FROM segments WHERE path = ?1 AND state = 'recording'",
            [rel.to_string_lossy()],
        )?;
        let alarm = AlarmKind::FileQuarantined {
            path: rel.to_string_lossy().into_owned(),
            moved_to: Some(moved_rel.to_string_lossy().into_owned()),
            cause: cause.to_string(),
        };
        log::append(&tx, Utc::now(), &Record::alarm(alarm, AlarmState::Raised))?;
        tx.commit()?;
        error!(
            camera,
            path = %from.display(),
            moved_to = %to.display(),
            cause,
            "a left-over segment file cannot be read or repaired; moved to the quarantine (an alarm record names it)"
        );
        Ok(moved_rel)
    }

    /// Records what is queued, in order. A transient failure keeps the event at the head and
    /// schedules a retry; a permanent one sets that event aside with an alarm record, so that
    /// the events behind it (other cameras' too) get through.
    fn flush_pending(&mut self, job: &JobHandle) {
        while let Some(ev) = self.pending.front().cloned() {
            let outcome = match self.apply(&ev) {
                Err(e) if !e.is_transient() => self.set_aside(&ev, &e),
                other => other,
            };
            match outcome {
                Ok(()) => {
                    self.pending.pop_front();
                    self.changes.notify();
                    self.retry_at = None;
                    self.backoff = RETRY_FIRST;
                    if self.throttle.clear() {
                        info!(queued = self.pending.len(), "recording events are recorded again");
                        job.running();
                    }
                    self.record_trouble_over();
                }
                Err(e) => {
                    self.report_failure(job, &format!("a recording event of camera {}", ev.camera()), &e);
                    let b = self.next_backoff();
                    self.retry_at = Some(Instant::now() + b);
                    return;
                }
            }
        }
    }

    /// Writes work again: the trouble becomes two `alarm` records, raised when it began and
    /// cleared now (`store_read_only` or `store_write_failing`). Kept for the next success if
    /// this write fails too.
    fn record_trouble_over(&mut self) {
        let Some(t) = self.trouble.clone() else { return };
        let alarm = |state| {
            let kind = if t.read_only {
                AlarmKind::StoreReadOnly {
                    detail: t.detail.clone(),
                }
            } else {
                AlarmKind::StoreWriteFailing {
                    detail: t.detail.clone(),
                }
            };
            Record::alarm(kind, state)
        };
        let result = (|| -> Result<(), StoreError> {
            let tx = db::write_tx(self.conn()?)?;
            log::append(&tx, t.since, &alarm(AlarmState::Raised))?;
            log::append(&tx, Utc::now(), &alarm(AlarmState::Cleared))?;
            tx.commit()?;
            Ok(())
        })();
        match result {
            Ok(()) => {
                info!(since = %rfc3339(t.since, self.tz), "the store could not write for a while; recorded as an alarm");
                self.trouble = None;
            }
            Err(e) => warn!(error = %e, "cannot record the store's trouble yet; will retry"),
        }
    }

    /// Records that `ev` could not be recorded for good, and why (an `alarm` record).
    fn set_aside(&mut self, ev: &MediaEvent, cause: &StoreError) -> Result<(), StoreError> {
        let tx = db::write_tx(self.conn()?)?;
        let alarm = AlarmKind::EventSetAside {
            camera: ev.camera().to_string(),
            event: format!("{ev:?}"),
            cause: cause.to_string(),
        };
        log::append(&tx, Utc::now(), &Record::alarm(alarm, AlarmState::Raised))?;
        tx.commit()?;
        error!(camera = ev.camera(), error = %cause, event = ?ev, "a recording event cannot be recorded; set aside with an alarm record");
        Ok(())
    }

    fn heartbeat(&mut self) {
        if self.last_heartbeat.is_some_and(|t| t.elapsed() < HEARTBEAT_EVERY) {
            return;
        }
        self.last_heartbeat = Some(Instant::now());
        let path = self.data_dir.join(HEARTBEAT_FILE);
        match std::fs::write(&path, Utc::now().timestamp_micros().to_string()) {
            Ok(()) => self.heartbeat_failing = false,
            Err(e) if !self.heartbeat_failing => {
                self.heartbeat_failing = true;
                warn!(path = %path.display(), error = %e, "cannot write the heartbeat");
            }
            Err(_) => {}
        }
    }

    /// Records one event. On an error nothing in memory has changed, so the same event can be
    /// applied again.
    pub fn apply(&mut self, ev: &MediaEvent) -> Result<(), StoreError> {
        match ev {
            MediaEvent::SegmentOpened {
                camera,
                stream_id,
                stream_seq,
                path,
                codec,
                start,
            } => {
                let start_us = start.timestamp_micros();
                if let Some(gap) = self.open_gaps.get(camera).cloned() {
                    self.close_gap(camera, &gap, start_us)?;
                    self.open_gaps.remove(camera);
                }
                let tx = db::write_tx(self.conn()?)?;
                index::insert_recording_segment(&tx, camera, stream_id, *stream_seq, path, codec, start_us)?;
                tx.commit()?;
            }
            MediaEvent::SegmentClosed(seg) => {
                self.record_segment(seg, SegmentState::Closed)?;
            }
            MediaEvent::SegmentAbandoned { camera, path } => {
                let row = index::segment_by_path(self.conn()?, path)?;
                let (stream_id, seq, codec, start_us) = match &row {
                    Some(r) => (r.stream_id.clone(), r.stream_seq, r.codec.clone(), r.start_us),
                    None => match parse_segment_path(path, self.tz) {
                        Some(i) => (
                            i.stream_id,
                            i.stream_seq,
                            "unknown".into(),
                            i.start.timestamp_micros(),
                        ),
                        None => return Ok(()),
                    },
                };
                let mut report = Startup::default();
                self.repair_left_open(camera, &stream_id, seq, path, &codec, start_us, &mut report)?;
            }
            MediaEvent::GapOpened {
                camera,
                start,
                cause,
                detail,
                detected,
            } => {
                // A gap starts where the camera's last segment ends. That is where the camera
                // thread says, except after a segment it could not finish: the store repaired
                // that one and knows its true (earlier) end.
                let mut start_us = start.timestamp_micros();
                if let Some(&end) = self.last_segment_end.get(camera) {
                    start_us = start_us.min(end);
                }
                if self.open_gaps.get(camera).is_some_and(|g| start_us <= g.start_us) {
                    return Ok(()); // the open gap already covers it
                }
                if let Some(gap) = self.open_gaps.get(camera).cloned() {
                    self.close_gap(camera, &gap, start_us)?;
                    self.open_gaps.remove(camera);
                }
                self.open_gap(camera, start_us, *cause, detail, detected.timestamp_micros())?;
                info!(
                    camera = %camera,
                    cause = %cause,
                    since = %rfc3339(from_us(start_us), self.tz),
                    detected_after_s = (detected.timestamp_micros() - start_us) as f64 / 1e6,
                    "gap opened"
                );
            }
        }
        Ok(())
    }

    /// Opens a gap of `camera` and, once that committed, remembers it as the camera's open gap.
    fn open_gap(
        &mut self,
        camera: &str,
        start_us: i64,
        cause: GapCause,
        detail: &str,
        detected_us: i64,
    ) -> Result<(), StoreError> {
        let tx = db::write_tx(self.conn()?)?;
        let id = index::open_gap(&tx, camera, start_us, cause, detail, detected_us)?;
        tx.commit()?;
        self.open_gaps.insert(
            camera.to_string(),
            OpenGap {
                id,
                start_us,
                cause,
                detail: Some(detail.to_string()),
            },
        );
        Ok(())
    }

    /// Records a finished segment and its evidence record in one transaction.
    fn record_segment(&mut self, seg: &ClosedSegment, state: SegmentState) -> Result<(), StoreError> {
        let tx = db::write_tx(self.conn()?)?;
        let record = Record::Segment(record::Segment {
            camera: seg.camera.clone(),
            path: seg.path.to_string_lossy().into_owned(),
            start_us: seg.start.timestamp_micros(),
            end_us: seg.end.timestamp_micros(),
            media_duration_us: seg.media_duration.as_micros() as i64,
            bytes: seg.bytes,
            stream_id: seg.stream_id.clone(),
            stream_seq: seg.stream_seq,
            state,
            codec: seg.codec.clone(),
            sha256: seg.sha256.clone(),
        });
        let (seq, _) = log::append(&tx, seg.end, &record)?;
        index::finish_segment(&tx, seg, state, Some(seq))?;
        tx.commit()?;
        self.last_segment_end
            .insert(seg.camera.clone(), seg.end.timestamp_micros());
        Ok(())
    }

    /// Closes a gap at `end_us` and appends its evidence record. The caller takes it out of
    /// `open_gaps` only once this returned `Ok` (the commit is what makes it closed).
    fn close_gap(&mut self, camera: &str, gap: &OpenGap, end_us: i64) -> Result<(), StoreError> {
        let OpenGap {
            id,
            start_us,
            cause,
            ref detail,
        } = *gap;
        let end_us = end_us.max(start_us);
        let tx = db::write_tx(self.conn()?)?;
        let record = Record::Gap(record::Gap {
            camera: camera.to_string(),
            start_us,
            end_us,
            cause,
            detail: detail.clone(),
        });
        let (seq, _) = log::append(&tx, from_us(end_us), &record)?;
        index::close_gap(&tx, id, end_us, Some(seq))?;
        tx.commit()?;
        info!(
            camera = %camera,
            %cause,
            seconds = (end_us - start_us) as f64 / 1e6,
            "gap closed"
        );
        Ok(())
    }
}

fn log_startup(report: &Startup, tz: Tz) {
    for p in &report.recovered {
        info!(path = %p.display(), "recovered a segment left open by the last run");
    }
    for (from, to) in &report.quarantined {
        warn!(path = %from.display(), moved_to = %to.display(), "quarantined a left-over file that cannot be repaired");
    }
    for (cam, since) in &report.daemon_down {
        info!(camera = %cam, since = %rfc3339(*since, tz), "recording was down while the daemon was not running");
    }
}

/// The file system holding `dir` refuses writes as read-only: probed by creating a file, since
/// ext4's `errors=remount-ro` after an I/O error (shown as `emergency_ro`) need not show in
/// statvfs flags.
fn is_read_only(dir: &Path) -> bool {
    let probe = dir.join(".write-probe");
    match std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&probe)
    {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            false
        }
        Err(e) => e.raw_os_error() == Some(libc::EROFS),
    }
}

/// The disk refuses writes for now (full, or read-only): nothing is wrong with the file.
fn is_write_blocked(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT | libc::EROFS))
        || matches!(
            e.kind(),
            std::io::ErrorKind::StorageFull | std::io::ErrorKind::ReadOnlyFilesystem
        )
}

/// The last heartbeat (µs), if readable.
pub fn read_heartbeat(data_dir: &Path) -> Option<i64> {
    std::fs::read_to_string(data_dir.join(HEARTBEAT_FILE))
        .ok()?
        .trim()
        .parse()
        .ok()
}
