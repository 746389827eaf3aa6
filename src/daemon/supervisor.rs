//! The supervisor: every long-lived job of the daemon (the store, the verdicts, the evidence
//! job, and the analysis, sync and status jobs to come) runs on its own thread under it.
//!
//! - A job is a function that runs until the daemon stops. It handles transient failures
//!   itself (a full disk, a busy database: it retries and says `failing` in the health
//!   registry); an error it returns, or a panic, is a job failure.
//! - A failure is logged, recorded as an `alarm` record (`job_failed`, the job, the cause),
//!   and the job is started again after `[daemon] restart_pause`. An alarm that cannot be
//!   written yet (the database is what failed) is kept and written with the next one.
//! - More than `[daemon] max_restarts` restarts of one job within `restart_window` make the
//!   daemon stop and exit non-zero, so that systemd restarts the process: a job that cannot
//!   run is not left failing quietly inside a process that looks healthy.

use std::any::Any;
use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tracing::{error, info, warn};

use super::config::DaemonConfig;
use super::health::{Health, JobState};
use crate::db;
use crate::evidence::log;
use crate::evidence::record::{AlarmKind, AlarmState, Record};

/// What a job returns when it fails.
pub type JobError = Box<dyn std::error::Error + Send + Sync>;

/// What a running job is given: its heartbeat, its health and the stop flag.
#[derive(Clone)]
pub struct JobHandle {
    name: Arc<str>,
    health: Arc<Health>,
    stop: Arc<AtomicBool>,
}

impl JobHandle {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The daemon is stopping: return soon.
    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// Alive and round the loop once more.
    pub fn beat(&self) {
        self.health.beat(&self.name);
    }

    /// Doing its work (again).
    pub fn running(&self) {
        self.health.set(&self.name, JobState::Running, None);
    }

    /// Up, but its work fails and is retried.
    pub fn failing(&self, cause: impl std::fmt::Display) {
        self.health
            .set(&self.name, JobState::Failing, Some(cause.to_string()));
    }

    /// Sleeps for `pause`, or less if the daemon stops meanwhile.
    pub fn pause(&self, pause: Duration) {
        let until = Instant::now() + pause;
        while !self.stopping() {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            std::thread::sleep(left.min(Duration::from_millis(100)));
        }
    }
}

/// How the supervisor records a job failure in the evidence log.
pub type FailureRecorder = dyn Fn(&JobFailure) -> Result<(), String> + Send + Sync;

/// One failure of one job.
#[derive(Debug, Clone, PartialEq)]
pub struct JobFailure {
    pub job: String,
    pub cause: String,
    pub time: DateTime<Utc>,
}

/// Starts jobs and watches them. Cloned into every job thread.
#[derive(Clone)]
pub struct Supervisor {
    health: Arc<Health>,
    stop: Arc<AtomicBool>,
    config: DaemonConfig,
    record: Arc<FailureRecorder>,
    /// Failures not yet recorded (the database was unavailable).
    unrecorded: Arc<Mutex<Vec<JobFailure>>>,
    /// Told once when a job failed too often; the daemon then stops and exits non-zero.
    fatal: Arc<dyn Fn(String) + Send + Sync>,
}

impl Supervisor {
    pub fn new(
        config: DaemonConfig,
        health: Arc<Health>,
        stop: Arc<AtomicBool>,
        record: Arc<FailureRecorder>,
        fatal: Arc<dyn Fn(String) + Send + Sync>,
    ) -> Supervisor {
        Supervisor {
            health,
            stop,
            config,
            record,
            unrecorded: Arc::default(),
            fatal,
        }
    }

    /// A supervisor of its own for one job outside `classproof run` (tests, tools): default
    /// restart policy, failures recorded in the data dir's log, a fatal failure only logged.
    pub fn standalone(data_dir: PathBuf, stop: Arc<AtomicBool>) -> Supervisor {
        Supervisor::new(
            DaemonConfig {
                health_file: None,
                ..DaemonConfig::default()
            },
            Arc::new(Health::default()),
            stop,
            log_recorder(data_dir),
            Arc::new(|why| error!(%why, "a standalone job failed too often")),
        )
    }

    pub fn health(&self) -> &Arc<Health> {
        &self.health
    }

    /// Runs `job` on a thread named `name`, again after each failure, until it returns `Ok`
    /// or it failed too often.
    pub fn spawn<F>(&self, name: &str, mut job: F) -> std::io::Result<JoinHandle<()>>
    where
        F: FnMut(&JobHandle) -> Result<(), JobError> + Send + 'static,
    {
        let sup = self.clone();
        let handle = JobHandle {
            name: name.into(),
            health: self.health.clone(),
            stop: self.stop.clone(),
        };
        self.health.set(name, JobState::Starting, None);
        std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                let name: &str = &handle.name.clone();
                let mut restarts: VecDeque<Instant> = VecDeque::new();
                loop {
                    let outcome = catch_unwind(AssertUnwindSafe(|| job(&handle)));
                    let cause = match outcome {
                        Ok(Ok(())) => {
                            sup.health.set(name, JobState::Stopped, None);
                            break;
                        }
                        Ok(Err(e)) => e.to_string(),
                        Err(panic) => format!("panicked: {}", panic_message(&panic)),
                    };
                    sup.record_failure(JobFailure {
                        job: name.to_string(),
                        cause: cause.clone(),
                        time: Utc::now(),
                    });
                    if handle.stopping() {
                        error!(job = name, %cause, "job failed while the daemon stops");
                        sup.health.set(name, JobState::Stopped, Some(cause));
                        break;
                    }
                    let now = Instant::now();
                    restarts.retain(|t| now.duration_since(*t) < sup.config.restart_window);
                    restarts.push_back(now);
                    if restarts.len() as u32 > sup.config.max_restarts {
                        let why = format!(
                            "job {name} failed {} times within {}: {cause}",
                            restarts.len(),
                            humantime::format_duration(sup.config.restart_window)
                        );
                        error!(job = name, %cause, "job failed too often; the daemon stops so that it is restarted");
                        sup.health.set(name, JobState::Failed, Some(cause));
                        (sup.fatal)(why);
                        break;
                    }
                    error!(
                        job = name,
                        %cause,
                        restart_in = %humantime::format_duration(sup.config.restart_pause),
                        "job failed; starting it again"
                    );
                    sup.health.set(name, JobState::Restarting, Some(cause));
                    handle.pause(sup.config.restart_pause);
                    if handle.stopping() {
                        sup.health.set(name, JobState::Stopped, None);
                        break;
                    }
                    sup.health.set(name, JobState::Starting, None);
                }
            })
    }

    /// Appends `failure` (and any not yet recorded) to the log; what cannot be written now is
    /// kept for the next time.
    fn record_failure(&self, failure: JobFailure) {
        let mut left = self.unrecorded.lock().unwrap_or_else(|e| e.into_inner());
        left.push(failure);
        while let Some(f) = left.first() {
            match (self.record)(f) {
                Ok(()) => {
                    left.remove(0);
                }
                Err(e) => {
                    warn!(job = %f.job, error = %e, kept = left.len(), "cannot record the job failure yet; it is kept");
                    return;
                }
            }
        }
    }

    /// At stop: one last try to record what is still unrecorded.
    pub fn flush(&self) {
        let mut left = self.unrecorded.lock().unwrap_or_else(|e| e.into_inner());
        left.retain(|f| (self.record)(f).is_err());
        if !left.is_empty() {
            error!(count = left.len(), failures = ?*left, "job failures that could not be recorded in the log");
        } else {
            info!("supervisor: every job failure is recorded");
        }
    }
}

/// The production recorder: an `alarm` record `job_failed` in the data dir's evidence log.
pub fn log_recorder(data_dir: PathBuf) -> Arc<FailureRecorder> {
    Arc::new(move |f: &JobFailure| {
        let mut conn = db::open(&data_dir).map_err(|e| e.to_string())?;
        let tx = db::write_tx(&mut conn).map_err(|e| e.to_string())?;
        let alarm = AlarmKind::JobFailed {
            job: f.job.clone(),
            cause: f.cause.clone(),
        };
        log::append(&tx, f.time, &Record::alarm(alarm, AlarmState::Raised)).map_err(|e| e.to_string())?;
        tx.commit().map_err(|e| e.to_string())
    })
}

fn panic_message(panic: &Box<dyn Any + Send>) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "(no message)".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evidence::record::Kind;
    use std::sync::atomic::AtomicU32;
    use std::sync::mpsc;

    fn fast(max_restarts: u32) -> DaemonConfig {
        DaemonConfig {
            restart_pause: Duration::from_millis(10),
            max_restarts,
            restart_window: Duration::from_secs(60),
            health_file: None,
            ..DaemonConfig::default()
        }
    }

    fn supervisor(
        config: DaemonConfig,
        record: Arc<FailureRecorder>,
    ) -> (Supervisor, mpsc::Receiver<String>, Arc<AtomicBool>) {
        let (tx, rx) = mpsc::channel();
        let tx = Mutex::new(tx);
        let stop = Arc::new(AtomicBool::new(false));
        let sup = Supervisor::new(
            config,
            Arc::new(Health::default()),
            stop.clone(),
            record,
            Arc::new(move |why| {
                let _ = tx.lock().unwrap().send(why);
            }),
        );
        (sup, rx, stop)
    }

    fn collecting() -> (Arc<FailureRecorder>, Arc<Mutex<Vec<JobFailure>>>) {
        let seen: Arc<Mutex<Vec<JobFailure>>> = Arc::default();
        let s = seen.clone();
        (
            Arc::new(move |f: &JobFailure| {
                s.lock().unwrap().push(f.clone());
                Ok(())
            }),
            seen,
        )
    }

    #[test]
    fn a_panicking_job_is_recorded_and_started_again() {
        let (record, seen) = collecting();
        let (sup, _fatal, _stop) = supervisor(fast(5), record);
        let runs = Arc::new(AtomicU32::new(0));
        let r = runs.clone();
        let t = sup
            .spawn("flaky", move |_h| {
                if r.fetch_add(1, Ordering::SeqCst) < 2 {
                    panic!("the disk went away");
                }
                Ok(())
            })
            .unwrap();
        t.join().unwrap();
        assert_eq!(runs.load(Ordering::SeqCst), 3);
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[0].job, "flaky");
        assert_eq!(seen[0].cause, "panicked: the disk went away");
        let h = sup.health().get("flaky").unwrap();
        assert_eq!((h.state, h.restarts), (JobState::Stopped, 2));
    }

    #[test]
    fn an_error_return_is_a_failure_too() {
        let (record, seen) = collecting();
        let (sup, _fatal, _stop) = supervisor(fast(5), record);
        let mut first = true;
        sup.spawn("verdicts", move |_h| {
            if std::mem::take(&mut first) {
                return Err("database is locked".into());
            }
            Ok(())
        })
        .unwrap()
        .join()
        .unwrap();
        assert_eq!(seen.lock().unwrap()[0].cause, "database is locked");
    }

    #[test]
    fn too_many_restarts_within_the_window_are_fatal() {
        let (record, seen) = collecting();
        let (sup, fatal, _stop) = supervisor(fast(2), record);
        sup.spawn("evidence", |_h| Err("no key".into()))
            .unwrap()
            .join()
            .unwrap();
        let why = fatal.try_recv().expect("the daemon is told to stop");
        assert!(why.contains("job evidence failed 3 times"), "{why}");
        assert_eq!(seen.lock().unwrap().len(), 3);
        assert_eq!(sup.health().get("evidence").unwrap().state, JobState::Failed);
    }

    #[test]
    fn a_failure_that_cannot_be_recorded_is_kept_and_recorded_with_the_next() {
        let writable = Arc::new(AtomicBool::new(false));
        let seen: Arc<Mutex<Vec<JobFailure>>> = Arc::default();
        let (w, s) = (writable.clone(), seen.clone());
        let record: Arc<FailureRecorder> = Arc::new(move |f: &JobFailure| {
            if !w.load(Ordering::SeqCst) {
                return Err("attempt to write a readonly database".into());
            }
            s.lock().unwrap().push(f.clone());
            Ok(())
        });
        let (sup, _fatal, _stop) = supervisor(fast(5), record);
        let mut n = 0;
        let w = writable.clone();
        sup.spawn("store", move |_h| {
            n += 1;
            match n {
                1 => Err("first".into()),
                2 => {
                    w.store(true, Ordering::SeqCst);
                    Err("second".into())
                }
                _ => Ok(()),
            }
        })
        .unwrap()
        .join()
        .unwrap();
        let causes: Vec<String> = seen.lock().unwrap().iter().map(|f| f.cause.clone()).collect();
        assert_eq!(causes, ["first", "second"]);
    }

    #[test]
    fn a_stop_during_the_pause_ends_the_job_without_a_restart() {
        let (record, _seen) = collecting();
        let mut config = fast(5);
        config.restart_pause = Duration::from_secs(30);
        let (sup, _fatal, stop) = supervisor(config, record);
        let runs = Arc::new(AtomicU32::new(0));
        let r = runs.clone();
        let t = sup
            .spawn("sync", move |_h| {
                r.fetch_add(1, Ordering::SeqCst);
                Err("broker refused".into())
            })
            .unwrap();
        while sup.health().get("sync").unwrap().state != JobState::Restarting {
            std::thread::sleep(Duration::from_millis(5));
        }
        stop.store(true, Ordering::SeqCst);
        let started = Instant::now();
        t.join().unwrap();
        assert!(started.elapsed() < Duration::from_secs(2));
        assert_eq!(runs.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn job_failed_is_an_alarm_record_in_a_real_log() {
        let dir = tempfile::tempdir().unwrap();
        let record = log_recorder(dir.path().to_path_buf());
        record(&JobFailure {
            job: "evidence".into(),
            cause: "panicked: boom".into(),
            time: Utc::now(),
        })
        .unwrap();
        let conn = db::open(dir.path()).unwrap();
        let recs = log::read_filtered(&conn, None, Some(Kind::Alarm)).unwrap();
        assert_eq!(recs.len(), 1);
        let Record::Alarm(a) = &recs[0].record else {
            panic!("{:?}", recs[0].record)
        };
        assert_eq!(a.state, AlarmState::Raised);
        assert_eq!(
            a.alarm,
            AlarmKind::JobFailed {
                job: "evidence".into(),
                cause: "panicked: boom".into()
            }
        );
    }
}
