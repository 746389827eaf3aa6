//! The `clock` job (issue 12, item 9): once a second, the wall clock is compared with the
//! monotonic clock; a step larger than the cameras' smallest `clock_tolerance` appends a
//! `clock_step` alarm record with the time predicted and the time found. The recorder already
//! cuts its segments at such a step (`clock_jump` gaps); this record says so once for the
//! whole box, for the status page and `doctor`.

use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Utc};
use tracing::warn;

use crate::daemon::jobs::JobContext;
use crate::daemon::supervisor::{JobError, JobHandle};
use crate::evidence::record::{AlarmKind, AlarmState, Record};
use crate::evidence::store;

/// How often the clocks are compared.
const EVERY: Duration = Duration::from_secs(1);

/// A step of the wall clock: `Some(step in µs)` when `wall_now - wall_then` differs from
/// `mono_elapsed` by more than `tolerance`. Pure.
pub fn step_us(
    wall_then_us: i64,
    wall_now_us: i64,
    mono_elapsed: Duration,
    tolerance: Duration,
) -> Option<i64> {
    let expected = wall_then_us.saturating_add(mono_elapsed.as_micros().min(i64::MAX as u128) as i64);
    let step = wall_now_us.saturating_sub(expected);
    (step.unsigned_abs() > tolerance.as_micros().min(u64::MAX as u128) as u64).then_some(step)
}

/// The tolerance: the smallest `clock_tolerance` of the cameras, or the default without any.
pub fn tolerance(config: &crate::config::Config) -> Duration {
    config
        .cameras
        .iter()
        .map(|c| c.clock_tolerance)
        .min()
        .unwrap_or(crate::media::config::DEFAULT_CLOCK_TOLERANCE)
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// The job.
pub fn job(ctx: JobContext) -> impl FnMut(&JobHandle) -> Result<(), JobError> + Send + 'static {
    // A step noticed but not yet recorded (the database was busy): kept across restarts.
    let mut unrecorded: Option<Record> = None;
    move |job: &JobHandle| -> Result<(), JobError> {
        let tol = tolerance(&ctx.config);
        let mut conn = crate::db::open(&ctx.config.device.data_dir)?;
        job.running();
        let mut then = (Utc::now(), Instant::now());
        while !job.stopping() {
            job.beat();
            if let Some(rec) = &unrecorded {
                store::append_one(&mut conn, Utc::now(), rec)?;
                unrecorded = None;
            }
            std::thread::sleep(EVERY);
            let now = (Utc::now(), Instant::now());
            let elapsed = now.1.duration_since(then.1);
            if let Some(step) = step_us(then.0.timestamp_micros(), now.0.timestamp_micros(), elapsed, tol) {
                let old = then.0 + chrono::Duration::from_std(elapsed).unwrap_or_default();
                warn!(
                    old = %rfc3339(old),
                    new = %rfc3339(now.0),
                    step_s = step as f64 / 1e6,
                    kind = "alarm",
                    "the wall clock stepped"
                );
                unrecorded = Some(Record::alarm(
                    AlarmKind::ClockStep {
                        old: rfc3339(old),
                        new: rfc3339(now.0),
                        step_s: step as f64 / 1e6,
                    },
                    AlarmState::Raised,
                ));
            }
            then = now;
        }
        if let Some(rec) = unrecorded.take() {
            store::append_one(&mut conn, Utc::now(), &rec)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_is_the_wall_time_against_the_monotonic_time_beyond_the_tolerance() {
        let s = Duration::from_secs(1);
        let tol = Duration::from_secs(5);
        assert_eq!(step_us(0, 1_000_000, s, tol), None);
        assert_eq!(step_us(0, 5_900_000, s, tol), None);
        assert_eq!(step_us(0, 121_000_000, s, tol), Some(120_000_000));
        assert_eq!(step_us(100_000_000, 41_000_000, s, tol), Some(-60_000_000));
    }
}
