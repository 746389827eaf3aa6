//! The live class-hour judge: re-evaluates the schedule as segments close and gaps open, and
//! appends verdict events (issue 3). Glue between the store and the pure `compliance` module;
//! `classproof report` uses the same functions, so the report and the live events agree.
//!
//! Events (evidence log types, one per class hour occurrence and type at most):
//! - `class_hour_pass`, `class_hour_at_risk`, `class_hour_fail`: what the judge saw while the
//!   hour ran (up to its end plus the settle time). Live observations: an event written in
//!   error by a camera whose stall was not noticed yet is never taken back, but
//! - `class_hour_final`: the verdict, written once the hour has ended and the cameras'
//!   stall timeouts have passed (the settle time), so that a hole at the very end is known.
//!
//! Restarts: events already in the log are never written again; hours that ended while the
//! daemon was down get their `class_hour_final` at the next start (going back at most
//! [`CATCH_UP`], and never before the judge first ran on this box, `meta.compliance_since`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use rusqlite::Connection;
use serde_json::{Value, json};
use thiserror::Error;
use tracing::{info, warn};

use super::jobs::JobContext;
use super::supervisor::{JobError, JobHandle, Supervisor};
use crate::clock::{from_us, rfc3339_us};
use crate::compliance::schedule::Occurrence;
use crate::compliance::timeline::{CameraTimeline, Missing, Recorded};
use crate::compliance::{HourVerdict, Verdict, judge_hour};
use crate::config::Config;
use crate::db;
use crate::evidence::log::{self, LogError};
use crate::evidence::record::{ClassHour, HourHole, Record};
use crate::media::index::{self, Entry, SegmentState};

/// How soon the judge steps again after a failed evaluation. (At-risk and fail moments come
/// from the clock alone and must be written within 2 s of becoming true: the judge predicts
/// them, see [`Judge::next_look_us`], instead of looking on a tick; issue 8.)
pub const TICK: Duration = Duration::from_millis(250);
/// The longest the job sleeps without looking at the stop flag and the wall clock (a job
/// returns within about a second of the flag; a clock step is noticed this late at most).
const STOP_POLL: Duration = Duration::from_millis(250);
/// How far ahead [`Judge::next_look_us`] looks for the next class hour.
const LOOK_AHEAD_US: i64 = 86_400_000_000;
/// While a class hour runs, the judge steps at least this often even when it predicts no
/// change (a margin on the prediction; each step reads the index, about 0.4 ms).
const LIVE_RECHECK: Duration = Duration::from_secs(10);
/// How far back a restarted judge still writes missing final verdicts.
pub const CATCH_UP: Duration = Duration::from_secs(7 * 86_400);
/// Added to the cameras' largest stall timeout before a final verdict is written.
pub const SETTLE_MARGIN: Duration = Duration::from_secs(1);
/// Segments that start this long before a class hour are read too, so that a clock step
/// inside a stream at the hour's start is recognised (see `compliance::timeline`).
const LOOKBACK_US: i64 = 10 * 60 * 1_000_000;
/// `meta` key: when the judge first ran on this box (µs).
const META_SINCE: &str = "compliance_since";

#[derive(Debug, Error)]
pub enum VerdictError {
    #[error("verdicts: database error: {0}")]
    Db(#[from] rusqlite::Error),
    #[error("verdicts: {0}")]
    Open(#[from] db::DbError),
    #[error("{0}")]
    Log(#[from] LogError),
    /// Issue 11: reading the classroom presence of an hour.
    #[error("verdicts: presence: {0}")]
    Presence(Box<crate::daemon::analysis::AnalysisError>),
}

/// The event types, in the order they can happen (defined with the records they are).
pub use crate::evidence::record::ClassHourEvent as EventKind;

/// Converts one camera's index rows into the engine's timeline, resolved at `now`: an open
/// segment counts as recorded up to now, an open gap is a hole up to now, a damaged segment
/// is not recorded, and nothing at or after `now` exists yet.
pub fn to_timeline(camera: &str, entries: &[Entry], now_us: i64) -> CameraTimeline {
    let mut t = CameraTimeline {
        camera: camera.to_string(),
        ..Default::default()
    };
    for e in entries
        .iter()
        .filter(|e| e.camera() == camera && e.start_us() < now_us)
    {
        match e {
            Entry::Segment(s) => {
                let end = match s.state {
                    SegmentState::Recording => now_us,
                    _ => s.end_us.unwrap_or(s.start_us),
                }
                .min(now_us);
                if s.state == SegmentState::Damaged {
                    t.missing.push(Missing {
                        start_us: s.start_us,
                        end_us: s.end_us.unwrap_or(now_us).min(now_us),
                        cause: "damaged".into(),
                    });
                } else {
                    t.recorded.push(Recorded {
                        start_us: s.start_us,
                        end_us: end,
                        stream: s.stream_id.clone(),
                        seq: s.stream_seq,
                    });
                }
            }
            Entry::Gap(g) => t.missing.push(Missing {
                start_us: g.start_us,
                end_us: g.end_us.unwrap_or(now_us).min(now_us),
                cause: g.cause.as_str().to_string(),
            }),
        }
    }
    t
}

/// The timelines of `cameras` around `[from_us, to_us)`, resolved at `now`.
pub fn load_timelines(
    conn: &Connection,
    cameras: &[String],
    from_us: i64,
    to_us: i64,
    now_us: i64,
) -> rusqlite::Result<Vec<CameraTimeline>> {
    cameras
        .iter()
        .map(|c| {
            let rows = index::timeline(conn, Some(c), Some(from_us - LOOKBACK_US), Some(to_us))?;
            Ok(to_timeline(c, &rows, now_us))
        })
        .collect()
}

/// Judges one class hour of an occurrence from the index (`conn = None`: nothing recorded).
pub fn judge_one(
    conn: Option<&Connection>,
    config: &Config,
    occ: &Occurrence,
    hour: &crate::compliance::ClassHour,
    now_us: i64,
) -> Result<HourVerdict, VerdictError> {
    let timelines = match conn {
        Some(c) => load_timelines(c, &occ.session.cameras, hour.start_us, hour.end_us, now_us)?,
        None => Vec::new(),
    };
    let rule = occ.session.rule(&config.rules);
    let tolerance = config.rules.profile.continuity_tolerance.as_micros() as i64;
    let mut v = judge_hour(hour, &rule, tolerance, &timelines, now_us);
    if let Some(conn) = conn {
        with_presence(conn, config, occ, hour, now_us, &mut v)?;
    }
    Ok(v)
}

/// Issue 11: for a session with a classroom camera, the hour's presence (R3: a run that did
/// not show all present trainees fails the hour under `run_must_show_all_trainees`), head
/// count and the tamper alarms overlapping it. An hour with no classroom frame analysed is
/// judged on recording alone (`presence.analysed = false`).
fn with_presence(
    conn: &Connection,
    config: &Config,
    occ: &Occurrence,
    hour: &crate::compliance::ClassHour,
    now_us: i64,
    v: &mut HourVerdict,
) -> Result<(), VerdictError> {
    use crate::compliance::presence::{self as rules, PresenceOutcome, Visibility};
    use crate::media::config::Analyze;
    let classroom = occ.session.cameras.iter().any(|c| {
        config
            .cameras
            .iter()
            .any(|k| &k.id == c && k.analyze == Analyze::Classroom)
    });
    if !classroom || !super::presence::has_tables(conn)? {
        return Ok(());
    }
    let p = |e: crate::daemon::analysis::AnalysisError| VerdictError::Presence(Box::new(e));
    let from = occ.start_us() - config.attendance.checkin_opens.as_micros() as i64 - 1;
    let hp = super::presence::hour_presence(conn, &occ.name, &occ.session.class_id, hour, from).map_err(p)?;
    let rule = occ.session.rule(&config.rules);
    let vis = rules::visibility(v, &rule, &hp);
    let judged = rules::apply_r3(v.clone(), &config.rules.profile, &vis);
    *v = judged;
    let mut not_visible = Vec::new();
    if let Visibility::NotAllVisible { missing, .. } = &vis {
        for id in missing {
            let person = crate::attendance::roster::get_person(conn, id).map_err(|e| p(e.into()))?;
            not_visible.push(match person {
                Some(x) => match x.id_number_masked() {
                    Some(m) => format!("{} ({m})", x.name),
                    None => format!("{} ({id})", x.name),
                },
                None => id.clone(),
            });
        }
    }
    let head_count: Option<u32> = conn.query_row(
        "SELECT MAX(head_count) FROM head_counts WHERE session = ?1 AND class_hour = ?2",
        rusqlite::params![occ.name, hour.index],
        |r| r.get(0),
    )?;
    let tamper =
        super::presence::tamper_overlapping(conn, &occ.session.cameras, hour.start_us, hour.end_us, now_us)
            .map_err(p)?;
    v.presence = Some(PresenceOutcome {
        analysed: hp.analysed,
        all_visible: vis.all_visible(),
        not_visible,
        head_count: head_count.unwrap_or(0),
        tamper,
    });
    Ok(())
}

/// Judges every class hour of an occurrence.
pub fn judge_occurrence(
    conn: Option<&Connection>,
    config: &Config,
    occ: &Occurrence,
    now_us: i64,
) -> Result<Vec<HourVerdict>, VerdictError> {
    occ.hours
        .iter()
        .map(|h| judge_one(conn, config, occ, h, now_us))
        .collect()
}

fn secs(us: i64) -> f64 {
    (us as f64 / 1e3).round() / 1e3
}

/// A class hour's verdict as JSON (the report's `class_hours[]` items; event payloads).
pub fn hour_json(v: &HourVerdict, tz: chrono_tz::Tz) -> Value {
    let mut j = hour_json_recording(v, tz);
    // Issue 11: only for sessions with a classroom camera.
    if let (Some(p), Some(o)) = (&v.presence, j.as_object_mut()) {
        o.insert(
            "presence".into(),
            json!({
                "analysed": p.analysed,
                "judged_on": if p.analysed { "recording and presence" } else { "recording alone" },
                "head_count": p.head_count,
                "all_visible": p.all_visible,
                "not_visible": p.not_visible,
                "camera_tamper": p.tamper,
            }),
        );
    }
    j
}

fn hour_json_recording(v: &HourVerdict, tz: chrono_tz::Tz) -> Value {
    json!({
        "index": v.index,
        "start": rfc3339_us(v.start_us, tz),
        "end": rfc3339_us(v.end_us, tz),
        "rule": v.rule,
        "verdict": v.verdict.as_str(),
        "required_run_s": v.required_run_us.map(secs),
        "longest_run_s": secs(v.longest_run_us),
        "recorded_s": secs(v.recorded_us),
        "holes": v.holes.iter().map(|h| json!({
            "start": rfc3339_us(h.start_us, tz),
            "end": rfc3339_us(h.end_us, tz),
            "cause": h.cause,
            "duration_s": secs(h.end_us - h.start_us),
            "breaks_run": h.breaks_run,
        })).collect::<Vec<_>>(),
    })
}

/// How long after a class hour's end its final verdict waits: the largest stall timeout of
/// the session's cameras (a camera that froze just before the end is noticed only then) plus
/// a margin.
pub fn settle(config: &Config, occ: &Occurrence) -> Duration {
    config
        .cameras
        .iter()
        .filter(|c| occ.session.cameras.contains(&c.id))
        .map(|c| c.stall_timeout)
        .max()
        .unwrap_or(crate::media::config::DEFAULT_STALL_TIMEOUT)
        + SETTLE_MARGIN
}

/// An event the judge wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct Written {
    pub kind: EventKind,
    pub session: String,
    pub class_hour: u32,
    pub verdict: Verdict,
    pub seq: i64,
}

type HourKey = (String, u32);

/// The judge's memory between evaluations: which events each class hour already has.
pub struct Judge {
    config: Arc<Config>,
    since_us: i64,
    /// Events already in the log, per class hour, with the hour's end (for forgetting).
    written: HashMap<HourKey, (i64, Vec<EventKind>)>,
}

impl Judge {
    /// Judges the sessions of `config` from now on (issue 10: sessions stored by
    /// `schedule.update` joined the config file's).
    pub fn set_config(&mut self, config: Arc<Config>) {
        self.config = config;
    }

    /// Starts judging: remembers (or records) when judging began on this box and which events
    /// the log already holds.
    pub fn new(conn: &Connection, config: Arc<Config>, now_us: i64) -> Result<Judge, VerdictError> {
        let since_us = match db::meta_get(conn, META_SINCE)?.and_then(|s| s.parse().ok()) {
            Some(s) => s,
            None => {
                db::meta_set(conn, META_SINCE, &now_us.to_string())?;
                now_us
            }
        };
        let mut judge = Judge {
            config,
            since_us,
            written: HashMap::new(),
        };
        // Events are written while their hour runs or soon after; an hour still of interest
        // ended at most CATCH_UP ago and lasted at most a day.
        let from = now_us - CATCH_UP.as_micros() as i64 - 2 * 86_400_000_000;
        for kind in EventKind::ALL {
            for rec in log::read_filtered(conn, Some(from), Some(kind.kind()))? {
                let Some((_, h)) = rec.record.as_class_hour() else {
                    continue;
                };
                judge
                    .written
                    .entry((h.session.clone(), h.class_hour))
                    .or_insert((h.end_us, Vec::new()))
                    .1
                    .push(kind);
            }
        }
        Ok(judge)
    }

    /// When judging began on this box (µs).
    pub fn since_us(&self) -> i64 {
        self.since_us
    }

    fn has(&self, key: &HourKey, kind: EventKind) -> bool {
        self.written.get(key).is_some_and(|(_, k)| k.contains(&kind))
    }

    /// One evaluation at `now`: judges every class hour that started and still lacks its final
    /// verdict, and appends the events that became due, all in one transaction.
    pub fn step(&mut self, conn: &mut Connection, now_us: i64) -> Result<Vec<Written>, VerdictError> {
        let config = self.config.clone();
        let tz = config.device.timezone;
        let oldest = self.since_us.max(now_us - CATCH_UP.as_micros() as i64);
        let mut due: Vec<(EventKind, ClassHour, HourVerdict, String)> = Vec::new();
        for session in &config.sessions {
            for occ in session.occurrences_between(oldest, now_us + 1, tz) {
                let settle = settle(&config, &occ).as_micros() as i64;
                for hour in &occ.hours {
                    let key = (occ.name.clone(), hour.index);
                    if hour.start_us > now_us
                        || hour.end_us <= self.since_us
                        || hour.end_us + settle < oldest
                        || self.has(&key, EventKind::Final)
                    {
                        continue;
                    }
                    let v = judge_one(Some(conn), &config, &occ, hour, now_us)?;
                    let settled = now_us >= hour.end_us + settle;
                    let kind = if settled {
                        Some(EventKind::Final)
                    } else {
                        match v.verdict {
                            Verdict::Pass => Some(EventKind::Pass),
                            Verdict::AtRisk => Some(EventKind::AtRisk),
                            Verdict::Fail => Some(EventKind::Fail),
                            Verdict::Pending => None,
                        }
                    };
                    if let Some(kind) = kind.filter(|k| !self.has(&key, *k)) {
                        let payload = event_payload(&config, &occ, &v, tz);
                        due.push((kind, payload, v, occ.name.clone()));
                    }
                }
            }
        }
        self.forget_old(now_us);
        if due.is_empty() {
            return Ok(Vec::new());
        }
        let tx = db::write_tx(conn)?;
        let mut written = Vec::new();
        for (kind, payload, v, session) in due {
            let (seq, _) = log::append(&tx, from_us(now_us), &Record::class_hour(kind, payload))?;
            written.push(Written {
                kind,
                session,
                class_hour: v.index,
                verdict: v.verdict,
                seq,
            });
        }
        tx.commit()?;
        for w in &written {
            let v = w.verdict.as_str();
            match w.kind {
                EventKind::AtRisk | EventKind::Fail => warn!(
                    session = %w.session, class_hour = w.class_hour, verdict = v, seq = w.seq,
                    kind = w.kind.as_str(), "{}", w.kind.as_str()
                ),
                EventKind::Final if w.verdict == Verdict::Fail => warn!(
                    session = %w.session, class_hour = w.class_hour, verdict = v, seq = w.seq,
                    kind = w.kind.as_str(), "{}", w.kind.as_str()
                ),
                _ => info!(
                    session = %w.session, class_hour = w.class_hour, verdict = v, seq = w.seq,
                    kind = w.kind.as_str(), "{}", w.kind.as_str()
                ),
            }
            let end = written_end(&config, w, tz);
            self.written
                .entry((w.session.clone(), w.class_hour))
                .or_insert((end, Vec::new()))
                .1
                .push(w.kind);
        }
        Ok(written)
    }

    /// When the judge must step again if the store announces no change (µs): for a class hour
    /// still running, the first moment its verdict changes with the clock alone (found by
    /// bisection on the rows read once now: with the rows fixed, a verdict never returns to a
    /// value it left, see `compliance::engine`), but at most [`LIVE_RECHECK`] ahead; for an
    /// hour that ended, when its final verdict is due; else when the next class hour starts
    /// (at most a day ahead). Reads the index once per running class hour.
    pub fn next_look_us(&self, conn: &Connection, now_us: i64) -> rusqlite::Result<i64> {
        let config = &self.config;
        let tz = config.device.timezone;
        let tolerance = config.rules.profile.continuity_tolerance.as_micros() as i64;
        let oldest = self.since_us.max(now_us - CATCH_UP.as_micros() as i64);
        let horizon = now_us + LOOK_AHEAD_US;
        let mut next = horizon;
        for session in &config.sessions {
            for occ in session.occurrences_between(oldest, horizon, tz) {
                let settle = settle(config, &occ).as_micros() as i64;
                let rule = occ.session.rule(&config.rules);
                for hour in &occ.hours {
                    let key = (occ.name.clone(), hour.index);
                    if hour.end_us <= self.since_us
                        || hour.end_us + settle < oldest
                        || self.has(&key, EventKind::Final)
                    {
                        continue;
                    }
                    let at = if hour.start_us > now_us {
                        hour.start_us
                    } else if hour.end_us > now_us {
                        let rows = occ
                            .session
                            .cameras
                            .iter()
                            .map(|c| {
                                let from = Some(hour.start_us - LOOKBACK_US);
                                Ok((c, index::timeline(conn, Some(c), from, Some(hour.end_us))?))
                            })
                            .collect::<rusqlite::Result<Vec<_>>>()?;
                        let verdict_at = |t: i64| {
                            let timelines: Vec<CameraTimeline> =
                                rows.iter().map(|(c, r)| to_timeline(c, r, t)).collect();
                            judge_hour(hour, &rule, tolerance, &timelines, t).verdict
                        };
                        let first_change = first_change_us(verdict_at, now_us, hour.end_us);
                        first_change.min(now_us + LIVE_RECHECK.as_micros() as i64)
                    } else {
                        hour.end_us + settle
                    };
                    next = next.min(at);
                }
            }
        }
        Ok(next)
    }

    fn forget_old(&mut self, now_us: i64) {
        let horizon = now_us - CATCH_UP.as_micros() as i64 - 86_400_000_000;
        self.written.retain(|_, (end, _)| *end >= horizon);
    }
}

/// The first moment in `(now, end]` (to the millisecond, rounded up) at which `verdict_at`
/// differs from its value at `now`; `end` if it does not before. Bisection, valid because a
/// verdict with the rows fixed never returns to a value it left.
fn first_change_us(verdict_at: impl Fn(i64) -> Verdict, now_us: i64, end_us: i64) -> i64 {
    let v0 = verdict_at(now_us);
    if matches!(v0, Verdict::Pass | Verdict::Fail) {
        // Decided: nothing changes before the end (the final verdict is due after it).
        return end_us;
    }
    let (mut lo, mut hi) = (now_us, end_us);
    while hi - lo > 1000 {
        let mid = lo + (hi - lo) / 2;
        if verdict_at(mid) == v0 {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    hi
}

/// The end of the class hour an event was written for (for forgetting it later).
fn written_end(config: &Config, w: &Written, tz: chrono_tz::Tz) -> i64 {
    let Some((id, date)) = crate::compliance::schedule::parse_occurrence_name(&w.session) else {
        return i64::MAX;
    };
    config
        .sessions
        .iter()
        .find(|s| s.id == id)
        .and_then(|s| s.occurrence(date, tz))
        .and_then(|o| {
            let i = (w.class_hour as usize).checked_sub(1)?;
            o.hours.get(i).map(|h| h.end_us)
        })
        .unwrap_or(i64::MAX)
}

/// The payload of a class-hour event: the verdict as the report shows it (`hour_json`), with
/// the occurrence it belongs to.
fn event_payload(config: &Config, occ: &Occurrence, v: &HourVerdict, tz: chrono_tz::Tz) -> ClassHour {
    ClassHour {
        session: occ.name.clone(),
        session_id: occ.session.id.clone(),
        date: occ.date.map(|d| d.format("%Y-%m-%d").to_string()),
        class_id: occ.session.class_id.clone(),
        kind: occ.session.kind,
        profile: config.rules.profile.name.clone(),
        cameras: occ.session.cameras.clone(),
        class_hour: v.index,
        start: rfc3339_us(v.start_us, tz),
        end: rfc3339_us(v.end_us, tz),
        start_us: v.start_us,
        end_us: v.end_us,
        rule: v.rule.to_string(),
        verdict: v.verdict,
        required_run_s: v.required_run_us.map(secs),
        longest_run_s: secs(v.longest_run_us),
        recorded_s: secs(v.recorded_us),
        holes: v
            .holes
            .iter()
            .map(|h| HourHole {
                start: rfc3339_us(h.start_us, tz),
                end: rfc3339_us(h.end_us, tz),
                cause: h.cause.clone(),
                duration_s: secs(h.end_us - h.start_us),
                breaks_run: h.breaks_run,
            })
            .collect(),
        not_visible: v
            .presence
            .as_ref()
            .map(|p| p.not_visible.clone())
            .unwrap_or_default(),
    }
}

/// The job (run under the supervisor as `verdicts`); `None` when there is nothing to judge
/// (no sessions).
pub fn job(ctx: JobContext) -> Option<impl FnMut(&JobHandle) -> Result<(), JobError> + Send + 'static> {
    // Issue 10: a platform that may sign commands may send sessions (`schedule.update`).
    let downlink = ctx
        .config
        .upstream
        .as_ref()
        .is_some_and(|u| u.platform_key_file.is_some());
    if ctx.config.sessions.is_empty() && !downlink {
        return None;
    }
    Some(move |job: &JobHandle| {
        run(&ctx, job);
        Ok(())
    })
}

/// Runs the job on a thread under a supervisor of its own (tests and tools; the daemon uses
/// [`job`] under its supervisor); `None` when there are no sessions.
pub fn spawn(ctx: JobContext) -> std::io::Result<Option<std::thread::JoinHandle<()>>> {
    let sup = Supervisor::standalone(ctx.config.device.data_dir.clone(), ctx.stop.clone());
    match job(ctx) {
        Some(j) => sup.spawn("verdicts", j).map(Some),
        None => Ok(None),
    }
}

fn now_us() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

fn run(ctx: &JobContext, job: &JobHandle) {
    // The database and the judge are retried, never given up on: the verdicts are the box's
    // point, and a locked or briefly unavailable database must not end them.
    let mut failures = 0u32;
    let (mut conn, mut judge) = loop {
        if ctx.stopping() {
            return;
        }
        let started = db::open(&ctx.config.device.data_dir)
            .map_err(VerdictError::from)
            .and_then(|c| Ok((Judge::new(&c, ctx.config.clone(), now_us())?, c)));
        match started {
            Ok((j, c)) => break (c, j),
            Err(e) => {
                failures += 1;
                job.failing(format!("cannot start the judge: {e}"));
                if failures == 1 || failures.is_multiple_of(60) {
                    warn!(error = %e, "verdicts: cannot start the judge, retrying");
                }
                job.pause(Duration::from_secs(1));
            }
        }
    };
    info!(
        sessions = ctx.config.sessions.len(),
        since = %rfc3339_us(judge.since_us(), ctx.config.device.timezone),
        "verdicts: judging class hours"
    );
    // Steps when the store announces a change or when `next_look_us` says the clock alone may
    // have made something due; in between it only looks at the stop flag.
    let mut judged: Option<u64> = None;
    let mut next_us = i64::MIN;
    let mut failing = false;
    let mut stored_version = 0i64;
    job.running();
    while !ctx.stopping() {
        job.beat();
        let version = ctx.changes.version();
        let now = now_us();
        if judged != Some(version) || now >= next_us {
            judged = Some(version);
            // Issue 10: sessions stored by `schedule.update` (sync::schedule), re-read when
            // their version changes.
            if let Ok(v) = crate::sync::schedule::version(&conn)
                && v != stored_version
                && let Ok(c) = crate::sync::schedule::effective_arc(&conn, &ctx.config)
            {
                info!(
                    sessions = c.sessions.len(),
                    "verdicts: sessions from the platform updated"
                );
                stored_version = v;
                judge.set_config(c);
            }
            match judge.step(&mut conn, now) {
                Ok(written) => {
                    if failing {
                        info!("verdicts: evaluation works again");
                        job.running();
                    }
                    failing = false;
                    next_us = judge
                        .next_look_us(&conn, now)
                        .unwrap_or(now + TICK.as_micros() as i64);
                    if !written.is_empty() {
                        // New records for the evidence job to sign (it waits on changes too).
                        ctx.changes.notify();
                    }
                }
                Err(e) => {
                    if !failing {
                        warn!(error = %e, "verdicts: evaluation failed, retrying");
                        job.failing(format!("evaluation failed: {e}"));
                    }
                    failing = true;
                    next_us = now + TICK.as_micros() as i64;
                }
            }
        }
        let wait_us = next_us.saturating_sub(now_us()).max(0) as u64;
        ctx.changes
            .wait(version, Duration::from_micros(wait_us).min(STOP_POLL));
    }
}

#[cfg(test)]
mod tests;
