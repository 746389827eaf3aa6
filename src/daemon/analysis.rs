//! Face check-in in the running daemon (issue 9): camera frames become `check_in`,
//! `check_out`, `absent`, `unexpected_person`, `unknown_face` and `spoof_attempt` records.
//!
//! Jobs (under the supervisor):
//! - `camera-{id}-frames`, one per analysed camera: the sampler (`media::frames`), its own
//!   connection, never the recorder's;
//! - `analysis-{n}`, `[attendance] workers` of them: each owns one `vision::Pipeline` and takes
//!   frames fairly from every camera's queue. Per frame: detection, alignment, liveness and
//!   embedding (timed per model into the camera's counters), tracking (`attendance::track`),
//!   then for every open session occurrence the camera serves (the session's `cameras`) a search
//!   of the occurrence's own roster (its class's trainees and the teachers, R14) and one
//!   observation into its state machine (`attendance::checkin`).
//!
//! Every decision: the JPEG snapshot (the whole frame with the face crop beside it) is written
//! under `{data_dir}/snapshots/{camera}/{date}/` and fsynced, then the record (with the
//! snapshot's path and sha256) is appended in one transaction, and only after the commit is it
//! applied to the machine (R16: memory follows commits). A failed commit leaves the machine as
//! it was; the next frame decides again.
//!
//! Occurrences open at `start − checkin_opens` and close after `end + checkout_window` once
//! their `absent` records are written; an occurrence opened after a restart is rebuilt from the
//! log (`Occurrence::rebuild`): nothing decided is lost or decided twice. `unknown_face`
//! snapshots are pruned after `[attendance] unknown_face_retention` with a `pruned` record each
//! (R15). Every 2 s the counters are written to `{data_dir}/analysis.json`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use ring::digest::{SHA256, digest};
use rusqlite::Connection;
use tracing::{info, warn};

use super::jobs::JobContext;
use super::supervisor::{JobError, JobHandle};
use crate::attendance::checkin::{Expected, Observation, Occurrence, Timing, VoteRules};
use crate::attendance::roster;
use crate::attendance::track::{Seen, Tracker};
use crate::config::Config;
use crate::db;
use crate::evidence::log::{self, LogError};
use crate::evidence::record::{Kind, Record};
use crate::media::CameraConfig;
use crate::media::config::Analyze;
use crate::media::frames::{self, Frame, FrameQueues};
use crate::media::tamper::{TamperConfig, TamperDetector, TamperEvent, Thumb};
use crate::vision::{BgrImage, Gallery, Pipeline, Stages};

/// Where the counters are written, relative to the data dir.
pub const STATS_FILE: &str = "analysis.json";
/// Snapshots, relative to the data dir.
pub const SNAPSHOT_DIR: &str = "snapshots";
/// JPEG quality of snapshots.
const JPEG_QUALITY: i32 = 90;
/// How often the open occurrences are looked at without a frame (absent at the end).
const REFRESH: Duration = Duration::from_millis(500);
/// How often the roster of open occurrences is read again (enrollments while they are open).
const ROSTER_REFRESH: Duration = Duration::from_secs(30);

/// How far back an occurrence that closed while the daemon was not running still gets its
/// `absent` records when it starts again.
const CATCH_UP: Duration = Duration::from_secs(7 * 24 * 3600);

/// `meta` key: when face analysis first ran on this box (µs). Occurrences that closed before it
/// were never watched, and get no `absent` records afterwards (an upgrade, or a box that
/// recorded only, must not mark a week of classes absent).
const ANALYSIS_SINCE: &str = "analysis_since_us";

/// What stops a worker's step (it is retried: the job reports `failing` meanwhile).
#[derive(Debug, thiserror::Error)]
pub enum AnalysisError {
    #[error("database: {0}")]
    Db(#[from] rusqlite::Error),
    #[error("cannot open the database: {0}")]
    Open(#[from] db::DbError),
    #[error("evidence log: {0}")]
    Log(#[from] LogError),
    #[error("roster: {0}")]
    Roster(#[from] roster::RosterError),
    #[error("face pipeline: {0}")]
    Vision(#[from] crate::vision::VisionError),
    #[error("judging a class hour: {0}")]
    Verdicts(#[from] crate::daemon::verdicts::VerdictError),
    #[error("evidence store: {0}")]
    Store(#[from] crate::evidence::store::StoreError),
    #[error("cannot append a {kind} record: {source}")]
    Append {
        kind: &'static str,
        source: crate::evidence::store::StoreError,
    },
    #[error("{}: cannot {what}: {source}", path.display())]
    File {
        path: std::path::PathBuf,
        what: &'static str,
        source: std::io::Error,
    },
}

type Result<T> = std::result::Result<T, AnalysisError>;

/// One open session occurrence.
struct Open {
    machine: Occurrence,
    cameras: Vec<String>,
    /// The occurrence's own roster (R14).
    roster: Gallery,
    expected: BTreeSet<String>,
    /// Past `end + checkout_window`: closed once its `absent` records are written.
    closes_us: i64,
    /// Issue 11: what the classroom cameras saw.
    watch: super::presence::Watch,
}

/// What the analysis jobs share.
pub struct Analysis {
    config: Arc<Config>,
    cameras: Vec<CameraConfig>,
    queues: Arc<FrameQueues>,
    trackers: Vec<Mutex<Tracker>>,
    /// Issue 11: one tamper detector per analysed camera.
    tampers: Vec<Mutex<TamperDetector>>,
    open: Mutex<BTreeMap<String, Arc<Mutex<Open>>>>,
    /// Every template of the box: a face best matching someone off the session's roster is
    /// `unexpected_person`, not a weak match of someone on it.
    everyone: Mutex<Option<Arc<Gallery>>>,
    last_refresh: Mutex<Option<Instant>>,
    last_stats: Mutex<Option<Instant>>,
    last_prune: Mutex<Option<Instant>>,
    last_roster: Mutex<Option<Instant>>,
    /// The config with the sessions the platform stored (`schedule.update`, issue 10) added,
    /// and the stored schedule's version it was read at: remote sessions are analysed like
    /// the file's.
    effective: Mutex<(Option<i64>, Arc<Config>)>,
    /// Whether this start's catch-up of `absent` records is done.
    caught_up: Mutex<bool>,
}

impl Analysis {
    /// `None` when no camera is analysed.
    pub fn new(config: Arc<Config>) -> Option<Arc<Analysis>> {
        let cameras: Vec<CameraConfig> = config
            .cameras
            .iter()
            .filter(|c| c.analyze != Analyze::Off)
            .cloned()
            .collect();
        if cameras.is_empty() {
            return None;
        }
        if !config.vision.enabled {
            warn!("analysis: cameras have analyze set but [vision] enabled = false: no face check-in");
            return None;
        }
        let ids: Vec<String> = cameras.iter().map(|c| c.id.clone()).collect();
        Some(Arc::new(Analysis {
            trackers: cameras.iter().map(|_| Mutex::new(Tracker::default())).collect(),
            tampers: cameras
                .iter()
                .map(|_| {
                    Mutex::new(TamperDetector::new(TamperConfig::new(
                        config.attendance.tamper_after,
                    )))
                })
                .collect(),
            queues: Arc::new(FrameQueues::new(&ids, frames::QUEUE_LEN)),
            cameras,
            open: Mutex::new(BTreeMap::new()),
            everyone: Mutex::new(None),
            last_refresh: Mutex::new(None),
            last_stats: Mutex::new(None),
            last_prune: Mutex::new(None),
            last_roster: Mutex::new(None),
            effective: Mutex::new((None, config.clone())),
            caught_up: Mutex::new(false),
            config,
        }))
    }

    /// The per-camera counters (for the daemon's metrics).
    pub fn queues(&self) -> &Arc<FrameQueues> {
        &self.queues
    }

    pub fn cameras(&self) -> &[CameraConfig] {
        &self.cameras
    }

    /// The sampler job of camera `index` (`camera-{id}-frames`).
    pub fn sampler_job(
        self: &Arc<Self>,
        index: usize,
        ctx: JobContext,
    ) -> impl FnMut(&JobHandle) -> std::result::Result<(), JobError> + Send + 'static {
        let me = self.clone();
        move |job: &JobHandle| {
            let Some(cam) = me.cameras.get(index) else {
                return Ok(());
            };
            job.running();
            let failing = std::cell::Cell::new(false);
            frames::run_sampler(cam, index, &me.queues, &ctx.stop, &|| job.beat(), &|h| match h {
                Ok(()) if failing.get() => {
                    failing.set(false);
                    job.running();
                }
                Ok(()) => {}
                Err(e) => {
                    failing.set(true);
                    job.failing(e);
                }
            });
            Ok(())
        }
    }

    /// The worker job `analysis-{n}`.
    pub fn worker_job(
        self: &Arc<Self>,
        ctx: JobContext,
    ) -> impl FnMut(&JobHandle) -> std::result::Result<(), JobError> + Send + 'static {
        let me = self.clone();
        move |job: &JobHandle| {
            me.work(&ctx, job);
            Ok(())
        }
    }

    fn work(&self, ctx: &JobContext, job: &JobHandle) {
        // Models and the database are retried, never given up on (a missing model is shown
        // as `failing` in the health registry; recording goes on).
        let (mut pipeline, mut conn) = loop {
            if ctx.stopping() {
                return;
            }
            let started = Pipeline::load(&self.config.vision)
                .map_err(|e| format!("cannot load the face models: {e}"))
                .and_then(|p| {
                    db::open(&self.config.device.data_dir)
                        .map(|c| (p, c))
                        .map_err(|e| e.to_string())
                });
            match started {
                Ok(x) => break x,
                Err(e) => {
                    warn!(error = %e, "analysis: cannot start; retrying");
                    job.failing(e);
                    job.pause(Duration::from_secs(5));
                }
            }
        };
        info!(cameras = self.cameras.len(), "analysis: worker running");
        job.running();
        let mut failing = false;
        while !ctx.stopping() {
            job.beat();
            let now = now_us();
            let mut outcome = self.housekeeping(&mut conn, &pipeline, now);
            if let Some(frame) = self.queues.take(Duration::from_millis(250)) {
                let cam = frame.camera;
                let r = self.analyse(&mut pipeline, &mut conn, frame);
                self.queues.done(cam);
                outcome = outcome.and(r);
            }
            match outcome {
                Ok(written) => {
                    if failing {
                        info!("analysis: works again");
                        job.running();
                        failing = false;
                    }
                    if written {
                        ctx.changes.notify();
                    }
                }
                Err(e) => {
                    if !failing {
                        warn!(error = %e, "analysis: failed, retrying");
                        job.failing(&e);
                    }
                    failing = true;
                }
            }
        }
    }

    /// Opens and closes occurrences, writes `absent`, the stats file and prunes unknown faces
    /// (at most every [`REFRESH`], by whichever worker comes first).
    fn housekeeping(&self, conn: &mut Connection, pipeline: &Pipeline, now: i64) -> Result<bool> {
        {
            let mut last = lock(&self.last_refresh);
            if last.is_some_and(|t| t.elapsed() < REFRESH) {
                return Ok(false);
            }
            *last = Some(Instant::now());
        }
        self.write_stats();
        self.prune_unknown_faces(conn, now)?;
        let mut written = false;
        let a = &self.config.attendance;
        let tz = self.config.device.timezone;
        let opens = a.checkin_opens.as_micros() as i64;
        let after = a.checkout_window.as_micros() as i64;
        // Which occurrences are open now, of the file's sessions and the platform's.
        let config = self.effective_config(conn);
        {
            let mut done = lock(&self.caught_up);
            if !*done {
                written |= self.catch_up_absent(conn, &config, now)?;
                *done = true;
            }
        }
        let mut want: Vec<(Timing, Vec<String>)> = Vec::new();
        for s in &config.sessions {
            if !s.cameras.iter().any(|c| self.cameras.iter().any(|a| &a.id == c)) {
                continue;
            }
            for occ in s.occurrences_between(now - after, now + opens + 1, tz) {
                let t = Timing::of(&occ, a);
                if t.observes(now) || (now > t.end_us && now <= t.end_us + after) {
                    want.push((t, s.cameras.clone()));
                }
            }
        }
        let mut open = lock(&self.open);
        for (timing, cameras) in want {
            if open.contains_key(&timing.session) {
                continue;
            }
            let o = self.open_occurrence(conn, pipeline, timing, cameras)?;
            info!(session = %o.machine.timing().session, expected = o.expected.len(), "analysis: check-in open");
            open.insert(o.machine.timing().session.clone(), Arc::new(Mutex::new(o)));
        }
        // The roster may change while an occurrence is open (an enrollment, a removal): read
        // again every ROSTER_REFRESH.
        let refresh = {
            let mut last = lock(&self.last_roster);
            let due = last.is_none_or(|t| t.elapsed() >= ROSTER_REFRESH);
            if due {
                *last = Some(Instant::now());
            }
            due
        };
        if refresh && !open.is_empty() {
            let (model, dim) = pipeline.recognition_model();
            let everyone = roster::load_gallery(conn, model, dim)?;
            *lock(&self.everyone) = Some(Arc::new(everyone));
            for o in open.values() {
                let mut o = lock(o);
                let class = o.machine.timing().class_id.clone();
                let (expected, ids, gallery) = load_roster(conn, pipeline, &class)?;
                o.machine.set_expected(expected);
                o.expected = ids;
                o.roster = gallery;
            }
        }
        let mut closed = Vec::new();
        for (name, o) in open.iter() {
            let mut o = lock(o);
            // One transaction for all of an occurrence's `absent` records: a crash between
            // two would leave the rest unwritten for good (the rebuilt machine sees `absent`
            // written once any of them is in the log).
            let due = o.machine.advance(now);
            if !due.is_empty() {
                append_all(conn, &due)?;
                for (_, rec) in &due {
                    o.machine.apply(rec);
                }
                written = true;
            }
            // Issue 11: spot checks, presence, R4, teachers, left early.
            let checked_in = o.machine.decided().checked_in.clone();
            written |= o.watch.step(conn, &config, now, &checked_in)?;
            // Past the check-out window and every due record committed (an error above
            // returned before this): closed. A class without trainees has no `absent`.
            if now > o.closes_us {
                closed.push(name.clone());
            }
        }
        for name in closed {
            open.remove(&name);
            info!(session = %name, "analysis: check-in closed");
        }
        Ok(written)
    }

    /// Once per start: the `absent` records of occurrences that closed (end and check-out
    /// window) while the daemon was not running, within [`CATCH_UP`] and after analysis first
    /// ran, marked `after_downtime`. The machine is rebuilt from the log as at a restart, so an
    /// occurrence whose `absent` records are in the log, or whose trainees all checked in, gets
    /// nothing: running it again writes nothing. A trainee enrolled after the occurrence ended
    /// was not expected then and is not counted.
    fn catch_up_absent(&self, conn: &mut Connection, config: &Config, now: i64) -> Result<bool> {
        let since = match db::meta_get(conn, ANALYSIS_SINCE)?.and_then(|v| v.parse::<i64>().ok()) {
            Some(t) => t,
            None => {
                db::meta_set(conn, ANALYSIS_SINCE, &now.to_string())?;
                return Ok(false);
            }
        };
        let a = &self.config.attendance;
        let tz = config.device.timezone;
        let rules = VoteRules::from_config(&self.config.vision, a);
        let from = since.max(now - i64::try_from(CATCH_UP.as_micros()).unwrap_or(i64::MAX));
        let mut written = false;
        for s in &config.sessions {
            if !s.cameras.iter().any(|c| self.cameras.iter().any(|a| &a.id == c)) {
                continue;
            }
            for occ in s.occurrences_between(from, now, tz) {
                let t = Timing::of(&occ, a);
                let closes = t.end_us + t.checkout_window_us;
                if closes < since || now <= closes {
                    continue; // closed before analysis ever ran, or still open (the live path's)
                }
                let mut expected = Expected::load(conn, &t.class_id)?;
                let mut enrolled_then = BTreeSet::new();
                for p in &expected.trainees {
                    if roster::enrolled_us(conn, p)?.is_some_and(|e| e <= t.end_us) {
                        enrolled_then.insert(p.clone());
                    }
                }
                expected.trainees = enrolled_then;
                let records = occurrence_records(conn, &t)?;
                let session = t.session.clone();
                let machine = Occurrence::rebuild(rules.clone(), t, expected, records.iter());
                let mut due = machine.advance(now);
                if due.is_empty() {
                    continue;
                }
                for (_, r) in &mut due {
                    if let Record::Absent(x) = r {
                        x.after_downtime = true;
                    }
                }
                append_all(conn, &due)?;
                warn!(
                    session = %session,
                    absent = due.len(),
                    "analysis: the daemon was not running when this occurrence closed; absent records written now"
                );
                written = true;
            }
        }
        Ok(written)
    }

    /// The config with the platform's stored sessions, read again when their version changed.
    /// A database error keeps the sessions last read (the file's at least).
    fn effective_config(&self, conn: &Connection) -> Arc<Config> {
        let mut eff = lock(&self.effective);
        match crate::sync::schedule::version(conn) {
            Ok(v) if eff.0 != Some(v) => match crate::sync::schedule::effective_arc(conn, &self.config) {
                Ok(c) => {
                    if eff.0.is_some() || c.sessions.len() > self.config.sessions.len() {
                        info!(
                            sessions = c.sessions.len(),
                            "analysis: sessions from the platform updated"
                        );
                    }
                    *eff = (Some(v), c);
                }
                Err(e) => warn!(error = %e, "analysis: cannot read the platform's sessions"),
            },
            Ok(_) => {}
            Err(e) => warn!(error = %e, "analysis: cannot read the stored schedule's version"),
        }
        eff.1.clone()
    }

    fn open_occurrence(
        &self,
        conn: &Connection,
        pipeline: &Pipeline,
        timing: Timing,
        cameras: Vec<String>,
    ) -> Result<Open> {
        let (model, dim) = pipeline.recognition_model();
        let (expected, ids, gallery) = load_roster(conn, pipeline, &timing.class_id)?;
        let everyone = roster::load_gallery(conn, model, dim)?;
        *lock(&self.everyone) = Some(Arc::new(everyone));
        // After a restart: what the log already holds for this occurrence (R16).
        let records = occurrence_records(conn, &timing)?;
        let rules = VoteRules::from_config(&self.config.vision, &self.config.attendance);
        let closes_us = timing.end_us + timing.checkout_window_us;
        let classroom: Vec<String> = cameras
            .iter()
            .filter(|c| {
                self.cameras
                    .iter()
                    .any(|a| &a.id == *c && a.analyze == Analyze::Classroom)
            })
            .cloned()
            .collect();
        let watch = super::presence::Watch::open(conn, &timing, classroom, &expected)?;
        let machine = Occurrence::rebuild(rules, timing, expected, records.iter());
        Ok(Open {
            machine,
            cameras,
            roster: gallery,
            expected: ids,
            closes_us,
            watch,
        })
    }

    /// One frame: faces, tracks, observations, decisions. Returns whether records were written.
    fn analyse(&self, pipeline: &mut Pipeline, conn: &mut Connection, frame: Frame) -> Result<bool> {
        let Some(cam) = self.cameras.get(frame.camera) else {
            return Ok(false);
        };
        let Some(counters) = self.queues.counters(frame.camera).cloned() else {
            return Ok(false);
        };
        let us = |t: Instant| t.elapsed().as_micros() as u64;
        let inference = self.queues.inference();
        let t0 = Instant::now();
        let dets = pipeline.detect(&frame.image)?;
        counters.detect_us.fetch_add(us(t0), Ordering::Relaxed);
        inference.observe("detect", t0.elapsed().as_secs_f64());
        let mut faces = pipeline.analyse_detections(
            &frame.image,
            dets,
            Stages {
                liveness: false,
                embedding: false,
            },
        )?;
        let t1 = Instant::now();
        let mut live = Vec::with_capacity(faces.len());
        for f in &faces {
            live.push(pipeline.liveness(&frame.image, &f.detection)?.real());
        }
        counters.liveness_us.fetch_add(us(t1), Ordering::Relaxed);
        inference.observe("liveness", t1.elapsed().as_secs_f64());
        let t2 = Instant::now();
        if !faces.is_empty() {
            let crops: Vec<&BgrImage> = faces.iter().map(|f| &f.aligned).collect();
            let e = pipeline.embed_aligned(&crops)?;
            for (f, e) in faces.iter_mut().zip(e) {
                f.embedding = Some(e);
            }
        }
        counters.embed_us.fetch_add(us(t2), Ordering::Relaxed);
        inference.observe("embed", t2.elapsed().as_secs_f64());
        counters.frames_analysed.fetch_add(1, Ordering::Relaxed);
        let seen: Vec<Seen> = faces
            .iter()
            .map(|f| {
                let d = &f.detection;
                Seen {
                    bbox: [d.x, d.y, d.x + d.w, d.y + d.h],
                    embedding: f.embedding.clone().unwrap_or_default(),
                }
            })
            .collect();
        let tracks = match self.trackers.get(frame.camera) {
            Some(t) => lock(t).update(frame.time_us, &seen),
            None => return Ok(false),
        };
        let mut written = self.tamper(conn, frame.camera, &cam.id, &frame)?;
        let occs: Vec<Arc<Mutex<Open>>> = lock(&self.open)
            .values()
            .filter(|o| lock(o).cameras.iter().any(|c| c == &cam.id))
            .cloned()
            .collect();
        // Issue 11: every face of a classroom frame, identified against each occurrence's
        // roster, is a sighting; the frame's face count is its head count.
        for occ in &occs {
            let mut o = lock(occ);
            if !o.watch.watches(&cam.id) {
                continue;
            }
            let persons: BTreeSet<String> = faces
                .iter()
                .filter_map(|f| f.embedding.as_ref())
                .filter_map(|e| pipeline.identify(&o.roster, e))
                .filter(|x| x.accepted)
                .map(|x| x.person_id)
                .collect();
            written |= o.watch.frame(
                conn,
                &cam.id,
                frame.time_us,
                faces.len() as u32,
                &persons,
                &frame.image,
            )?;
        }
        if faces.is_empty() {
            return Ok(written);
        }
        let everyone = lock(&self.everyone).clone();
        for occ in occs {
            let mut o = lock(&occ);
            for (i, f) in faces.iter().enumerate() {
                let Some(e) = &f.embedding else { continue };
                let mine = pipeline.identify(&o.roster, e);
                // Someone off the roster who matches better than anyone on it (R14).
                let other = everyone
                    .as_ref()
                    .and_then(|g| pipeline.identify(g, e))
                    .filter(|x| x.accepted && !o.expected.contains(&x.person_id));
                let id = match (mine, other) {
                    (Some(m), Some(x)) if x.similarity > m.similarity => Some(x),
                    (None, Some(x)) => Some(x),
                    (m, _) => m,
                };
                let obs = Observation {
                    camera: cam.id.clone(),
                    track: tracks[i],
                    time_us: frame.time_us,
                    person_id: id.as_ref().map(|x| x.person_id.clone()),
                    similarity: id.as_ref().map_or(0.0, |x| x.similarity),
                    margin: id.as_ref().and_then(|x| x.margin),
                    liveness: live[i],
                };
                for (time, mut rec) in o.machine.observe(obs) {
                    let kind = rec.kind();
                    if let Some(v) = rec.face_vote_mut() {
                        let rel = write_snapshot(
                            &self.config.device.data_dir,
                            &cam.id,
                            time,
                            kind,
                            tracks[i],
                            &frame.image,
                            &f.aligned,
                            self.config.device.timezone,
                        )?;
                        v.snapshot = Some(rel.0);
                        v.snapshot_sha256 = Some(rel.1);
                    }
                    append(conn, time, &rec)?;
                    info!(
                        kind = rec.kind(),
                        session = %o.machine.timing().session,
                        camera = %cam.id,
                        person = rec.face_vote().and_then(|v| v.person_id.as_deref()).unwrap_or("-"),
                        "analysis: recorded"
                    );
                    o.machine.apply(&rec);
                    written = true;
                }
            }
        }
        Ok(written)
    }

    /// Issue 11, camera tamper: the frame's luma thumbnail into the camera's detector; a
    /// `camera_tamper` (with a snapshot of the frame) or `camera_tamper_cleared` per event.
    fn tamper(&self, conn: &mut Connection, index: usize, camera: &str, frame: &Frame) -> Result<bool> {
        let img = &frame.image;
        let luma: Vec<u8> = img
            .data
            .chunks_exact(3)
            .map(|p| ((29 * u32::from(p[0]) + 150 * u32::from(p[1]) + 77 * u32::from(p[2])) >> 8) as u8)
            .collect();
        let Some(thumb) = Thumb::from_luma(&luma, img.width, img.height, img.width) else {
            return Ok(false);
        };
        let Some(det) = self.tampers.get(index) else {
            return Ok(false);
        };
        let events = lock(det).observe(frame.time_us, thumb);
        let mut written = false;
        for ev in events {
            let rec = match ev {
                TamperEvent::Raised { kind, since_us } => {
                    let snap = write_room_snapshot(
                        &self.config.device.data_dir,
                        camera,
                        frame.time_us,
                        "camera_tamper",
                        img,
                        self.config.device.timezone,
                    )?;
                    warn!(camera, tamper = kind.as_str(), "analysis: camera tamper");
                    Record::CameraTamper(crate::evidence::record::CameraTamper {
                        camera: camera.to_string(),
                        tamper: kind.as_str().to_string(),
                        since_us,
                        snapshot: Some(snap.0),
                        snapshot_sha256: Some(snap.1),
                    })
                }
                TamperEvent::Cleared { kind, since_us } => {
                    info!(camera, tamper = kind.as_str(), "analysis: camera tamper cleared");
                    Record::CameraTamperCleared(crate::evidence::record::CameraTamperCleared {
                        camera: camera.to_string(),
                        tamper: kind.as_str().to_string(),
                        since_us,
                    })
                }
            };
            append(conn, frame.time_us, &rec)?;
            written = true;
        }
        Ok(written)
    }

    fn write_stats(&self) {
        {
            let mut last = lock(&self.last_stats);
            if last.is_some_and(|t| t.elapsed() < Duration::from_secs(2)) {
                return;
            }
            *last = Some(Instant::now());
        }
        let doc = serde_json::json!({
            "time": crate::clock::rfc3339(Utc::now(), self.config.device.timezone),
            "cameras": self.queues.snapshot(),
        });
        let path = self.config.device.data_dir.join(STATS_FILE);
        let tmp = path.with_extension("json.tmp");
        let ok = std::fs::write(&tmp, doc.to_string()).and_then(|()| std::fs::rename(&tmp, &path));
        if let Err(e) = ok {
            warn!(path = %path.display(), error = %e, "analysis: cannot write the counters");
        }
    }

    /// R15: snapshots of unknown faces are deleted after `unknown_face_retention`, a `pruned`
    /// record each (once a minute).
    fn prune_unknown_faces(&self, conn: &mut Connection, now: i64) -> Result<()> {
        {
            let mut last = lock(&self.last_prune);
            if last.is_some_and(|t| {
                t.elapsed() < Duration::from_secs(60).min(self.config.attendance.unknown_face_retention)
            }) {
                return Ok(());
            }
            *last = Some(Instant::now());
        }
        let keep = self.config.attendance.unknown_face_retention;
        let cutoff = now - keep.as_micros() as i64;
        let files = crate::evidence::store::live_files_of_kind_before(conn, Kind::UnknownFace, cutoff, 1000)?;
        if files.is_empty() {
            return Ok(());
        }
        let paths = crate::evidence::store::prune(
            conn,
            &self.config.device.data_dir,
            &files,
            crate::evidence::store::PruneReason::Retention,
            keep,
            Utc::now(),
        )?;
        info!(
            files = paths.len(),
            "analysis: deleted unknown-face snapshots past unknown_face_retention (R15)"
        );
        Ok(())
    }
}

/// Who an occurrence of `class_id` expects, their ids, and the gallery of their templates (the
/// occurrence's own roster, R14).
fn load_roster(
    conn: &Connection,
    pipeline: &Pipeline,
    class_id: &str,
) -> Result<(Expected, BTreeSet<String>, Gallery)> {
    let (model, dim) = pipeline.recognition_model();
    let expected = Expected::load(conn, class_id)?;
    let mut gallery = Gallery::new(model, dim);
    let ids: BTreeSet<String> = expected
        .trainees
        .iter()
        .chain(expected.teachers.iter())
        .cloned()
        .collect();
    for id in &ids {
        let Some(p) = roster::get_person(conn, id)? else {
            continue;
        };
        let t = roster::load_gallery_of(conn, model, dim, id)?;
        if !t.is_empty() {
            gallery.add(id, &p.name, p.role.as_str(), &t);
        }
    }
    Ok((expected, ids, gallery))
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn now_us() -> i64 {
    Utc::now().timestamp_micros()
}

/// The face decision records the log holds from `timing`'s check-in opening on, in log order
/// (the machine keeps only those of its own occurrence).
fn occurrence_records(conn: &Connection, timing: &Timing) -> Result<Vec<Record>> {
    let from = timing.checkin_opens_at() - 1;
    let mut records = Vec::new();
    for kind in [
        Kind::CheckIn,
        Kind::CheckOut,
        Kind::Absent,
        Kind::UnexpectedPerson,
        Kind::UnknownFace,
        Kind::SpoofAttempt,
    ] {
        for s in log::read_filtered(conn, Some(from), Some(kind))? {
            records.push((s.seq, s.record));
        }
    }
    records.sort_by_key(|(seq, _)| *seq);
    Ok(records.into_iter().map(|(_, r)| r).collect())
}

/// Appends `records` (each with its time, µs) in one transaction: all or none.
fn append_all(conn: &mut Connection, records: &[(i64, Record)]) -> Result<()> {
    let tx = db::write_tx(conn)?;
    for (time_us, rec) in records {
        log::append(&tx, crate::clock::from_us(*time_us), rec).map_err(|e| AnalysisError::Append {
            kind: rec.kind(),
            source: e.into(),
        })?;
    }
    tx.commit()?;
    Ok(())
}

pub(super) fn append(conn: &mut Connection, time_us: i64, rec: &Record) -> Result<()> {
    crate::evidence::store::append_one(conn, crate::clock::from_us(time_us), rec)
        .map(|_| ())
        .map_err(|source| AnalysisError::Append {
            kind: rec.kind(),
            source,
        })
}

/// The whole frame with the face crop (scaled to a third of the frame's height) beside it, as
/// one JPEG.
pub fn compose(
    frame: &BgrImage,
    face: &BgrImage,
) -> std::result::Result<BgrImage, crate::vision::VisionError> {
    let side = (frame.height / 3).max(face.height).min(frame.height);
    let crop = face.resize(side, side)?;
    let w = frame.width + side;
    let mut out = BgrImage::zeros(w, frame.height);
    for y in 0..frame.height {
        let dst = y * w * 3;
        out.data[dst..dst + frame.width * 3]
            .copy_from_slice(&frame.data[y * frame.width * 3..(y + 1) * frame.width * 3]);
        if y < side {
            let d = dst + frame.width * 3;
            out.data[d..d + side * 3].copy_from_slice(&crop.data[y * side * 3..(y + 1) * side * 3]);
        }
    }
    Ok(out)
}

/// Writes the snapshot, fsyncs the file and its directory; returns (path relative to the data
/// dir, sha256 hex).
#[allow(clippy::too_many_arguments)]
fn write_snapshot(
    data_dir: &Path,
    camera: &str,
    time_us: i64,
    kind: &str,
    track: u64,
    frame: &BgrImage,
    face: &BgrImage,
    tz: chrono_tz::Tz,
) -> Result<(String, String)> {
    let jpeg = compose(frame, face).and_then(|i| i.encode_jpeg(JPEG_QUALITY))?;
    write_jpeg(data_dir, camera, time_us, &format!("{kind}-{track}"), &jpeg, tz)
}

/// Issue 11: a snapshot of the whole room (a spot check, a tamper alarm); (path, sha256).
pub(super) fn write_room_snapshot(
    data_dir: &Path,
    camera: &str,
    time_us: i64,
    kind: &str,
    frame: &BgrImage,
    tz: chrono_tz::Tz,
) -> Result<(String, String)> {
    let jpeg = frame.encode_jpeg(JPEG_QUALITY)?;
    write_jpeg(data_dir, camera, time_us, kind, &jpeg, tz)
}

fn write_jpeg(
    data_dir: &Path,
    camera: &str,
    time_us: i64,
    stem: &str,
    jpeg: &[u8],
    tz: chrono_tz::Tz,
) -> Result<(String, String)> {
    let local = crate::clock::from_us(time_us).with_timezone(&tz);
    let rel_dir = PathBuf::from(SNAPSHOT_DIR)
        .join(camera)
        .join(local.format("%Y-%m-%d").to_string());
    let name = format!("{}-{stem}.jpg", local.format("%H%M%S%.6f"));
    let dir = data_dir.join(&rel_dir);
    let io = |what: &'static str, p: &Path, source: std::io::Error| AnalysisError::File {
        path: p.to_path_buf(),
        what,
        source,
    };
    std::fs::create_dir_all(&dir).map_err(|e| io("create", &dir, e))?;
    let path = dir.join(&name);
    let tmp = dir.join(format!(".{name}.tmp"));
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp).map_err(|e| io("create", &tmp, e))?;
        f.write_all(jpeg).map_err(|e| io("write", &tmp, e))?;
        f.sync_all().map_err(|e| io("fsync", &tmp, e))?;
    }
    std::fs::rename(&tmp, &path).map_err(|e| io("rename", &tmp, e))?;
    std::fs::File::open(&dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io("fsync", &dir, e))?;
    let sha = hex::encode(digest(&SHA256, jpeg).as_ref());
    let rel = rel_dir.join(name).to_string_lossy().replace('\\', "/");
    Ok((rel, sha))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_is_the_frame_with_the_face_beside_it() {
        let mut frame = BgrImage::zeros(30, 12);
        frame.data.iter_mut().for_each(|b| *b = 7);
        let face = BgrImage::zeros(4, 4);
        let out = compose(&frame, &face).unwrap();
        assert_eq!((out.width, out.height), (34, 12));
        assert_eq!(out.data[0], 7);
        assert_eq!(out.data[30 * 3], 0, "the crop starts right of the frame");
    }
}
