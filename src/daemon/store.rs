//! The store: the one writer of the segment index. It turns camera threads' `MediaEvent`s into
//! rows and evidence records, each fact and its record in one transaction, and repairs what a
//! crash left behind at start-up.
//!
//! Invariants:
//! - per camera, gaps never overlap and a gap ends exactly where the next segment starts;
//! - a write that fails (disk full, I/O error) is kept in memory and retried, loudly, never
//!   dropped;
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

use super::jobs::Changes;
use crate::clock::{from_us, rfc3339};
use crate::db::{self, DbError};
use crate::evidence::log::{self, LogError};
use crate::evidence::record::{self, Record};
use crate::media::index::{self, SegmentState};
use crate::media::recover::{self, parse_segment_path};
use crate::media::{ClosedSegment, GapCause, MediaEvent};

/// File in the data dir holding the last time (µs) the daemon was known to be running.
pub const HEARTBEAT_FILE: &str = "heartbeat";
const HEARTBEAT_EVERY: Duration = Duration::from_secs(1);

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("{0}")]
    Db(#[from] DbError),
    #[error("database error: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("{0}")]
    Log(#[from] LogError),
    #[error("{0}")]
    Recover(#[from] recover::RecoverError),
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
    conn: Connection,
    data_dir: PathBuf,
    tz: Tz,
    changes: Arc<Changes>,
    open_gaps: HashMap<String, OpenGap>,
    /// End (µs) of each camera's latest segment recorded in this run.
    last_segment_end: HashMap<String, i64>,
    pending: VecDeque<MediaEvent>,
    last_heartbeat: Option<Instant>,
    heartbeat_failing: bool,
}

/// What start-up found and did.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Startup {
    /// Segments left open by a crash that are playable again.
    pub recovered: Vec<PathBuf>,
    /// Segments left open that could not be made playable (kept, indexed as damaged).
    pub damaged: Vec<PathBuf>,
    /// `daemon_down` gaps opened, per camera: where the known timeline ended.
    pub daemon_down: Vec<(String, DateTime<Utc>)>,
}

impl Store {
    pub fn open(data_dir: &Path, tz: Tz, changes: Arc<Changes>) -> Result<Store, StoreError> {
        Ok(Store {
            conn: db::open(data_dir)?,
            data_dir: data_dir.to_path_buf(),
            tz,
            changes,
            open_gaps: HashMap::new(),
            last_segment_end: HashMap::new(),
            pending: VecDeque::new(),
            last_heartbeat: None,
            heartbeat_failing: false,
        })
    }

    /// Repairs what the previous run left and records the time it was not running: segments
    /// left open are repaired and indexed, segment files the index does not know are indexed,
    /// gaps left open are closed where the daemon was last known alive, and every recording
    /// camera with a history gets a `daemon_down` gap from the end of that history (closed when
    /// its first segment starts).
    pub fn startup(&mut self, cameras: &[&str], now: DateTime<Utc>) -> Result<Startup, StoreError> {
        let mut report = Startup::default();
        let last_alive = read_heartbeat(&self.data_dir).filter(|&t| t <= now.timestamp_micros());

        for row in index::recording_segments(&self.conn)? {
            self.repair_left_open(
                &row.camera,
                &row.stream_id,
                row.stream_seq,
                &row.path,
                &row.codec,
                row.start_us,
                &mut report,
            )?;
        }
        self.index_orphans(cameras, now, &mut report)?;

        for row in index::open_gaps(&self.conn)? {
            let end = last_alive.unwrap_or(row.start_us).max(row.start_us);
            let gap = OpenGap {
                id: row.id,
                start_us: row.start_us,
                cause: row.cause,
                detail: row.detail,
            };
            self.close_gap(&row.camera, &gap, end)?;
        }

        let known: BTreeSet<&str> = cameras.iter().copied().collect();
        for cam in known {
            let Some(end_us) = index::last_end_us(&self.conn, cam)? else {
                continue;
            };
            if end_us >= now.timestamp_micros() {
                continue;
            }
            self.open_gap(
                cam,
                end_us,
                GapCause::DaemonDown,
                "the daemon was not running",
                now.timestamp_micros(),
            )?;
            report.daemon_down.push((cam.to_string(), from_us(end_us)));
        }
        self.changes.notify();
        Ok(report)
    }

    /// Segment files under video/ that the index does not know (the daemon died between
    /// creating a file and recording its row): repaired and indexed. Only the dates since each
    /// camera's latest indexed segment are looked at.
    fn index_orphans(
        &mut self,
        cameras: &[&str],
        now: DateTime<Utc>,
        report: &mut Startup,
    ) -> Result<(), StoreError> {
        for cam in cameras {
            let since = index::last_segment_start_us(&self.conn, cam)?
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
                    if index::segment_by_path(&self.conn, &rel)?.is_some() {
                        continue;
                    }
                    let Some(info) = parse_segment_path(&rel, self.tz) else {
                        warn!(path = %rel.display(), "a file under video/ that is not a segment; left alone");
                        continue;
                    };
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
        if !abs.exists() {
            // Announced but never created: nothing was recorded.
            self.conn.execute(
                "DELETE FROM segments WHERE path = ?1 AND state = 'recording'",
                [rel.to_string_lossy()],
            )?;
            return Ok(());
        }
        let repaired = recover::repair(&abs)?;
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

    /// Runs until every camera thread is gone (the channel closes), retrying failed writes.
    pub fn run(mut self, rx: Receiver<MediaEvent>) {
        loop {
            self.heartbeat();
            match rx.recv_timeout(Duration::from_millis(500)) {
                Ok(ev) => {
                    self.pending.push_back(ev);
                    self.flush_pending();
                }
                Err(RecvTimeoutError::Timeout) => self.flush_pending(),
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        self.flush_pending();
        self.last_heartbeat = None;
        self.heartbeat();
        if !self.pending.is_empty() {
            error!(
                count = self.pending.len(),
                "could not record these events before stopping: {:?}", self.pending
            );
        }
    }

    fn flush_pending(&mut self) {
        while let Some(ev) = self.pending.front().cloned() {
            match self.apply(&ev) {
                Ok(()) => {
                    self.pending.pop_front();
                    self.changes.notify();
                }
                Err(e) => {
                    error!(error = %e, camera = ev.camera(), "cannot record a recording event; will retry");
                    return;
                }
            }
        }
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

    /// Records one event.
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
                if let Some(gap) = self.open_gaps.remove(camera) {
                    self.close_gap(camera, &gap, start_us)?;
                }
                let tx = db::write_tx(&mut self.conn)?;
                index::insert_recording_segment(&tx, camera, stream_id, *stream_seq, path, codec, start_us)?;
                tx.commit()?;
            }
            MediaEvent::SegmentClosed(seg) => {
                self.record_segment(seg, SegmentState::Closed)?;
            }
            MediaEvent::SegmentAbandoned { camera, path } => {
                let row = index::segment_by_path(&self.conn, path)?;
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
                if let Some(gap) = self.open_gaps.remove(camera) {
                    self.close_gap(camera, &gap, start_us)?;
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

    /// Opens a gap of `camera` and remembers it as the camera's open gap.
    fn open_gap(
        &mut self,
        camera: &str,
        start_us: i64,
        cause: GapCause,
        detail: &str,
        detected_us: i64,
    ) -> Result<(), StoreError> {
        let tx = db::write_tx(&mut self.conn)?;
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
        let tx = db::write_tx(&mut self.conn)?;
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

    /// Closes a gap at `end_us` and appends its evidence record. The caller has taken it out
    /// of `open_gaps`.
    fn close_gap(&mut self, camera: &str, gap: &OpenGap, end_us: i64) -> Result<(), StoreError> {
        let OpenGap {
            id,
            start_us,
            cause,
            ref detail,
        } = *gap;
        let end_us = end_us.max(start_us);
        let tx = db::write_tx(&mut self.conn)?;
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

/// The last heartbeat (µs), if readable.
pub fn read_heartbeat(data_dir: &Path) -> Option<i64> {
    std::fs::read_to_string(data_dir.join(HEARTBEAT_FILE))
        .ok()?
        .trim()
        .parse()
        .ok()
}
