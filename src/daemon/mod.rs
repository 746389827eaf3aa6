//! `classproof run`: wires cameras, the store and the background jobs together.
//!
//! Threads: the supervised jobs (`supervisor`): one per recording camera (`media::camera`,
//! each with its own reconnect loop); the store, the only writer of the segment index, which
//! also does start-up recovery while the cameras already record; the verdicts; the evidence
//! job. The main thread waits for SIGTERM/SIGINT, or for the supervisor to say that a job failed
//! too often (the daemon then stops and exits non-zero, for systemd to restart it).
//!
//! Stopping: the stop flag aborts every camera's blocking read at once (FFmpeg's interrupt
//! callback); each camera finishes its open segment and returns; the store drains what they
//! sent and exits; the jobs see the flag and return. All of it within 5 s. Then the WAL is
//! folded into the database file (`db::checkpoint`), so that a clean stop leaves it whole.

pub mod analysis;
pub mod config;
pub mod evidence;
pub mod health;
pub mod jobs;
pub mod presence;
pub mod store;
pub mod supervisor;
pub mod verdicts;

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use chrono::Utc;
use ffmpeg_next as ffmpeg;
use thiserror::Error;
use tracing::{error, info, warn};

use crate::config::Config;
use crate::media::camera::{self, RecorderEnv};
use health::Health;
use jobs::{Changes, JobContext};
use store::{Store, StoreError};
use supervisor::Supervisor;

/// The analysis counters of `media::frames` as metrics: frames analysed and dropped per
/// camera, inference seconds per model (docs/operations.md, "Metrics").
fn analysis_metrics(queues: Arc<crate::media::frames::FrameQueues>) -> crate::status::metrics::ExtraMetrics {
    use prometheus_client::metrics::counter::Counter;
    use prometheus_client::metrics::family::Family;
    Arc::new(move |reg: &mut prometheus_client::registry::Registry| {
        let analysed = Family::<Vec<(&'static str, String)>, Counter>::default();
        let dropped = Family::<Vec<(&'static str, String)>, Counter>::default();
        for c in queues.snapshot() {
            let l = vec![("camera", c.camera.clone())];
            analysed.get_or_create(&l).inc_by(c.frames_analysed);
            dropped.get_or_create(&l).inc_by(c.frames_dropped);
        }
        reg.register(
            "frames_analysed",
            "Frames of the camera a worker analysed",
            analysed,
        );
        reg.register(
            "frames_dropped",
            "Frames of the camera dropped (oldest first) because analysis was behind",
            dropped,
        );
        reg.register(
            "inference_seconds",
            "Time of one model's inference on one frame",
            queues.inference().family(),
        );
    })
}

/// Lock file in the data dir held by the running daemon.
pub const LOCK_FILE: &str = "classproof.lock";

/// Everything must have stopped this long after SIGTERM.
const STOP_BUDGET: Duration = Duration::from_millis(4500);

#[derive(Debug, Error)]
pub enum DaemonError {
    #[error("{0}")]
    Db(#[from] crate::db::DbError),
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("cannot initialise FFmpeg: {0}")]
    Ffmpeg(#[from] ffmpeg::Error),
    #[error("cannot start a thread: {0}")]
    Thread(#[source] std::io::Error),
    #[error("cannot wait for signals: {0}")]
    Signals(#[source] std::io::Error),
    #[error("{path}: another classproof is already running on this data dir{holder}")]
    Locked { path: PathBuf, holder: String },
    #[error("stopped because a job failed too often: {0}")]
    JobFailed(String),
    #[error("{path}: cannot lock the data dir: {source}")]
    Lock {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Takes the data dir's lock file for the life of the returned handle: two daemons writing one
/// index and one evidence log would corrupt both.
pub fn lock_data_dir(data_dir: &Path) -> Result<File, DaemonError> {
    let path = data_dir.join(LOCK_FILE);
    let lock_err = |source| DaemonError::Lock {
        path: path.clone(),
        source,
    };
    std::fs::create_dir_all(data_dir).map_err(lock_err)?;
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(lock_err)?;
    // SAFETY: flock(2) on a file descriptor we own.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        let mut holder = String::new();
        let _ = file.read_to_string(&mut holder);
        let holder = holder.trim();
        return Err(DaemonError::Locked {
            path: path.clone(),
            holder: if holder.is_empty() {
                String::new()
            } else {
                format!(" (pid {holder})")
            },
        });
    }
    file.set_len(0).map_err(lock_err)?;
    file.write_all(std::process::id().to_string().as_bytes())
        .map_err(lock_err)?;
    Ok(file)
}

/// Initialises FFmpeg once and keeps its own logging to errors (we log what matters).
pub fn init_ffmpeg() -> Result<(), ffmpeg::Error> {
    ffmpeg::init()?;
    ffmpeg::util::log::set_level(ffmpeg::util::log::Level::Fatal);
    Ok(())
}

/// Runs until SIGTERM or SIGINT.
pub fn run(config: Config) -> Result<(), DaemonError> {
    let signals = Signals::install()?;
    init_ffmpeg()?;
    let config = Arc::new(config);
    let data_dir = config.device.data_dir.clone();
    let tz = config.device.timezone;
    let started = Utc::now();
    let changes = Arc::new(Changes::default());
    let _lock = lock_data_dir(&data_dir)?;

    let recording: Vec<&crate::media::CameraConfig> = config.cameras.iter().filter(|c| c.record).collect();
    let ids: Vec<&str> = recording.iter().map(|c| c.id.as_str()).collect();
    info!(
        device = %config.device.id,
        database = %config.db_path().display(),
        segments = %data_dir.join("video").display(),
        cameras = recording.len(),
        "classproof running"
    );

    let stop = Arc::new(AtomicBool::new(false));
    let disk_full = Arc::new(AtomicBool::new(false));
    let health = Arc::new(Health::new(config.daemon.health_file.clone()));
    let (fatal_tx, fatal_rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let supervisor = Supervisor::new(
        config.daemon.clone(),
        health,
        stop.clone(),
        supervisor::log_recorder(data_dir.clone()),
        Arc::new(move |why| {
            let _ = fatal_tx.send(why);
        }),
    );

    // Start-up recovery runs in the store job while the cameras already record: their events
    // wait in the channel until it is done, so nothing of this run is recorded before the
    // holes of the last one are.
    let mut store = Store::new(&data_dir, tz, changes.clone(), &ids, started);
    let (tx, rx) = mpsc::channel();
    let store_thread = supervisor
        .spawn("store", move |job| store.run(&rx, job))
        .map_err(DaemonError::Thread)?;

    let env = RecorderEnv {
        data_dir: data_dir.clone(),
        timezone: tz,
        events: tx,
        stop: stop.clone(),
        disk_full: disk_full.clone(),
        started,
    };
    let mut cameras = Vec::new();
    for cam in &recording {
        info!(camera = %cam.id, dir = %data_dir.join("video").join(&cam.id).display(), "recording to");
        let mut record = camera::job((*cam).clone(), env.clone());
        let job = supervisor.spawn(&format!("camera-{}", cam.id), move |job| {
            // A camera in a gap is still doing its job (trying to reconnect): `running`.
            job.running();
            record(&|| job.beat());
            Ok(())
        });
        cameras.push(job.map_err(DaemonError::Thread)?);
    }
    drop(env); // the store stops once the cameras have dropped their senders

    let ctx_changes = changes.clone();
    let ctx = JobContext {
        config: config.clone(),
        changes,
        stop: stop.clone(),
        disk_full,
    };
    let mut jobs: Vec<JoinHandle<()>> = Vec::new();
    if let Some(verdicts) = verdicts::job(ctx.clone()) {
        jobs.push(
            supervisor
                .spawn("verdicts", verdicts)
                .map_err(DaemonError::Thread)?,
        );
    }
    if let Some(sync) = crate::sync::job::job(ctx.clone()) {
        jobs.push(supervisor.spawn("sync", sync).map_err(DaemonError::Thread)?);
    } else {
        info!("no [upstream] section: the box runs offline (R7) and keeps every record");
    }
    // issue 9: face check-in. A sampler per analysed camera (its own connection, never the
    // recorder's) and `[attendance] workers` analysis workers; `analysis.queues()` holds the
    // per-camera counters.
    let _analysis = analysis::Analysis::new(config.clone());
    if let Some(analysis) = &_analysis {
        for (i, cam) in analysis.cameras().iter().enumerate() {
            jobs.push(
                supervisor
                    .spawn(
                        &format!("camera-{}-frames", cam.id),
                        analysis.sampler_job(i, ctx.clone()),
                    )
                    .map_err(DaemonError::Thread)?,
            );
        }
        for n in 0..config.attendance.workers {
            jobs.push(
                supervisor
                    .spawn(&format!("analysis-{n}"), analysis.worker_job(ctx.clone()))
                    .map_err(DaemonError::Thread)?,
            );
        }
    }
    let ctx_clock = ctx.clone();
    jobs.push(
        supervisor
            .spawn("evidence", evidence::job(ctx))
            .map_err(DaemonError::Thread)?,
    );
    // Issue 12: the clock-step watch (a `clock_step` alarm record per step).
    jobs.push(
        supervisor
            .spawn("clock", crate::status::clock::job(ctx_clock))
            .map_err(DaemonError::Thread)?,
    );
    // Issue 12: the status server (page, /metrics, /api/status), read-only. Frame and
    // inference counters of other rooms go in through `extra` (status::metrics::ExtraMetrics).
    let extra = _analysis.as_ref().map(|a| analysis_metrics(a.queues().clone()));
    if let Some(status) = crate::status::server::job(
        config.clone(),
        supervisor.health().clone(),
        started.timestamp_micros(),
        extra,
    ) {
        jobs.push(supervisor.spawn("status", status).map_err(DaemonError::Thread)?);
    }

    // Issue 12: READY=1 after start-up recovery, WATCHDOG=1 while every job beats, STATUS=.
    let mut watchdog = crate::status::watchdog::Watchdog::new(
        supervisor.health().clone(),
        data_dir.clone(),
        ids.iter().map(|s| s.to_string()).collect(),
        config.upstream.is_some(),
        config.daemon.heartbeat_timeout,
    );
    let outcome = signals.wait(fatal_rx, &mut watchdog);
    watchdog.stopping();
    match &outcome {
        Stop::Signal(signal) => info!(signal, "stopping"),
        Stop::JobFailed(why) => error!(%why, "stopping"),
    }
    let deadline = Instant::now() + STOP_BUDGET;
    stop.store(true, Ordering::SeqCst);
    // Jobs waiting for a change wake at once and see the stop flag.
    ctx_changes.notify();
    join_until(cameras, deadline, "camera");
    join_until(vec![store_thread], deadline, "store");
    join_until(jobs, deadline, "job");
    supervisor.flush();
    // Every connection of the jobs is closed by now; the watchdog's goes too. Then the
    // database file is made self-contained.
    drop(watchdog);
    if let Err(e) = crate::db::checkpoint(&data_dir) {
        warn!(error = %e, "could not fold the write-ahead log into the database");
    }
    info!("stopped");
    match outcome {
        Stop::Signal(_) => Ok(()),
        Stop::JobFailed(why) => Err(DaemonError::JobFailed(why)),
    }
}

/// Why the daemon stops.
enum Stop {
    Signal(&'static str),
    JobFailed(String),
}

/// SIGTERM and SIGINT, caught from the moment the daemon starts (a stop asked during start-up
/// recovery must still be a clean stop).
struct Signals {
    rt: tokio::runtime::Runtime,
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> Result<Signals, DaemonError> {
        use tokio::signal::unix::{SignalKind, signal};
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(DaemonError::Signals)?;
        let _guard = rt.enter();
        let term = signal(SignalKind::terminate()).map_err(DaemonError::Signals)?;
        let int = signal(SignalKind::interrupt()).map_err(DaemonError::Signals)?;
        drop(_guard);
        Ok(Signals { rt, term, int })
    }

    /// Blocks until a signal arrives or the supervisor gives up on a job.
    fn wait(
        mut self,
        mut fatal: tokio::sync::mpsc::UnboundedReceiver<String>,
        watchdog: &mut crate::status::watchdog::Watchdog,
    ) -> Stop {
        self.rt.block_on(async {
            let mut tick = tokio::time::interval(watchdog.every());
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = self.term.recv() => return Stop::Signal("SIGTERM"),
                    _ = self.int.recv() => return Stop::Signal("SIGINT"),
                    Some(why) = fatal.recv() => return Stop::JobFailed(why),
                    _ = tick.tick() => watchdog.tick(),
                }
            }
        })
    }
}

fn join_until(handles: Vec<JoinHandle<()>>, deadline: Instant, what: &str) {
    let mut left = handles;
    while !left.is_empty() && Instant::now() < deadline {
        let (done, running): (Vec<_>, Vec<_>) = left.into_iter().partition(|h| h.is_finished());
        for h in done {
            let _ = h.join();
        }
        left = running;
        if !left.is_empty() {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    if !left.is_empty() {
        warn!(
            count = left.len(),
            "{what} threads did not stop in time; exiting anyway"
        );
    }
}
