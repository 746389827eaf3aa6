//! What the status server shows, read in one go from the database (the server's own
//! read-only connection) and the health registry. `/api/status` is this document as JSON
//! (schema: docs/schemas/api-status.schema.json); `/metrics` and the page are drawn from it.
//!
//! Nothing here writes: the server is read-only (issue 12).

use std::collections::BTreeMap;

use rusqlite::{Connection, OptionalExtension};
use serde::Serialize;
use serde_json::Value;

use crate::clock::rfc3339_us;
use crate::compliance::engine::Summary;
use crate::compliance::schedule::local_date;
use crate::compliance::{HourVerdict, Verdict};
use crate::config::Config;
use crate::daemon::health::JobHealth;
use crate::daemon::verdicts::{hour_json, judge_occurrence};
use crate::evidence::log::LogError;
use crate::media::index;
use crate::sync::outbox::{self, SyncStatus};

/// Reading the snapshot failed.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("reading the database: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("reading the evidence log: {0}")]
    Log(#[from] LogError),
    #[error("judging today's class hours: {0}")]
    Verdicts(#[from] crate::daemon::verdicts::VerdictError),
}

/// The whole document.
#[derive(Debug, Clone, Serialize)]
pub struct Snapshot {
    pub device: String,
    pub version: &'static str,
    pub time: String,
    #[serde(skip)]
    pub time_us: i64,
    pub started: String,
    pub uptime_s: f64,
    pub timezone: String,
    pub cameras: Vec<CameraStatus>,
    pub jobs: BTreeMap<String, JobStatus>,
    pub sessions: Vec<SessionStatus>,
    pub attendance: Attendance,
    pub alarms: Vec<OpenAlarm>,
    pub log: LogStatus,
    pub disk: DiskStatus,
    /// `null` without `[upstream]` (the box runs offline, R7).
    pub upstream: Option<SyncStatus>,
}

/// One camera of the config.
#[derive(Debug, Clone, Serialize)]
pub struct CameraStatus {
    pub id: String,
    /// `recording` | `gap` (an open gap: `gap_cause` says why) | `starting` (nothing yet) |
    /// `off` (`record = false`).
    pub state: &'static str,
    pub gap_cause: Option<String>,
    /// Since when it is in this state (RFC 3339); `null` when unknown.
    pub since: Option<String>,
    pub last_segment: Option<LastSegment>,
    /// Of the last finished segment, bits per second.
    pub bitrate_bps: Option<f64>,
    /// Finished segments (not the one being written).
    pub segments: u64,
    /// Bytes of the finished segments.
    pub recorded_bytes: u64,
    /// Seconds of closed gaps, by cause.
    pub gap_seconds: BTreeMap<String, f64>,
    pub gaps_open: u64,
}

/// The newest finished segment of a camera.
#[derive(Debug, Clone, Serialize)]
pub struct LastSegment {
    pub start: String,
    pub end: String,
    pub bytes: Option<u64>,
    pub path: String,
}

/// One supervised job (from the health registry).
#[derive(Debug, Clone, Serialize)]
pub struct JobStatus {
    pub state: &'static str,
    pub cause: Option<String>,
    pub since: String,
    pub last_beat: String,
    pub beat_age_s: f64,
    pub restarts: u32,
}

/// One of today's session occurrences.
#[derive(Debug, Clone, Serialize)]
pub struct SessionStatus {
    pub session: String,
    pub session_id: String,
    pub class_id: String,
    pub kind: &'static str,
    pub cameras: Vec<String>,
    pub start: String,
    pub end: String,
    /// The same objects as `classproof report --json`'s `class_hours`.
    pub class_hours: Vec<Value>,
    pub summary: Summary,
    #[serde(skip)]
    pub hours: Vec<HourVerdict>,
}

/// Face decisions recorded today, by record kind (`check_in`, `check_out`, …).
#[derive(Debug, Clone, Serialize, Default)]
pub struct Attendance {
    pub today: BTreeMap<String, u64>,
    /// `check_in` records in the whole log.
    pub check_ins_total: u64,
}

/// An alarm whose last record raised it.
#[derive(Debug, Clone, Serialize)]
pub struct OpenAlarm {
    pub alarm: String,
    pub since: String,
    pub seq: i64,
    /// The record's payload.
    pub detail: Value,
}

/// The evidence log.
#[derive(Debug, Clone, Serialize, Default)]
pub struct LogStatus {
    pub head_seq: i64,
    pub records_by_kind: BTreeMap<String, u64>,
    pub last_checkpoint: Option<String>,
    pub checkpoint_age_s: Option<f64>,
}

/// The disk of the data dir and its forecast (from the evidence job's last check).
#[derive(Debug, Clone, Serialize, Default)]
pub struct DiskStatus {
    pub available_bytes: Option<u64>,
    pub capacity_bytes: Option<u64>,
    pub days_left: Option<f64>,
    pub retention_days: f64,
    pub disk_full: bool,
    pub checked: Option<String>,
}

/// Alarm kinds that are one-off events (never cleared): not "open".
const ONE_OFF_ALARMS: &[&str] = &["job_failed", "file_quarantined", "event_set_aside"];

/// Face decision record kinds counted under `attendance`.
pub const ATTENDANCE_KINDS: &[&str] = &[
    "check_in",
    "check_out",
    "absent",
    "unexpected_person",
    "unknown_face",
    "spoof_attempt",
];

/// Reads everything. `jobs` is the health registry's snapshot; `started_us` the daemon's
/// start.
pub fn read(
    conn: &Connection,
    config: &Config,
    jobs: &BTreeMap<String, JobHealth>,
    started_us: i64,
    now_us: i64,
) -> Result<Snapshot, SnapshotError> {
    let tz = config.device.timezone;
    let today = local_date(now_us, tz);

    let mut cameras = Vec::new();
    for cam in &config.cameras {
        cameras.push(camera_status(conn, &cam.id, cam.record, tz)?);
    }

    let jobs = jobs
        .iter()
        .map(|(name, j)| {
            (
                name.clone(),
                JobStatus {
                    state: j.state.as_str(),
                    cause: j.cause.clone(),
                    since: rfc3339_us(j.since_us, tz),
                    last_beat: rfc3339_us(j.last_beat_us, tz),
                    beat_age_s: j.beat_age().as_secs_f64(),
                    restarts: j.restarts,
                },
            )
        })
        .collect();

    // Today's occurrences of the file's sessions and of those the platform stored (issue 10).
    let (with_stored, _) = crate::sync::schedule::effective(conn, config)?;
    let mut sessions = Vec::new();
    for occ in with_stored
        .sessions
        .iter()
        .filter_map(|s| s.occurrence_on(today, tz))
    {
        let hours = judge_occurrence(Some(conn), &with_stored, &occ, now_us)?;
        sessions.push(SessionStatus {
            session: occ.name.clone(),
            session_id: occ.session.id.clone(),
            class_id: occ.session.class_id.clone(),
            kind: occ.session.kind.as_str(),
            cameras: occ.session.cameras.clone(),
            start: rfc3339_us(occ.start_us(), tz),
            end: rfc3339_us(occ.hours.last().map_or(0, |h| h.end_us), tz),
            class_hours: hours.iter().map(|h| hour_json(h, tz)).collect(),
            summary: Summary::of(&hours),
            hours,
        });
    }

    let mut records_by_kind = BTreeMap::new();
    {
        let mut stmt = conn.prepare_cached("SELECT type, count(*) FROM log GROUP BY type")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
        for row in rows {
            let (k, n) = row?;
            records_by_kind.insert(k, n.max(0) as u64);
        }
    }
    let head_seq: i64 = conn.query_row("SELECT coalesce(max(seq), 0) FROM log", [], |r| r.get(0))?;
    let last_cp: Option<i64> = conn.query_row("SELECT max(time_us) FROM checkpoints", [], |r| r.get(0))?;
    let log = LogStatus {
        head_seq,
        last_checkpoint: last_cp.map(|t| rfc3339_us(t, tz)),
        checkpoint_age_s: last_cp.map(|t| (now_us - t).max(0) as f64 / 1e6),
        records_by_kind,
    };

    let day_start_us = day_start_us(today, tz);
    let mut attendance = Attendance {
        check_ins_total: log.records_by_kind.get("check_in").copied().unwrap_or(0),
        ..Attendance::default()
    };
    {
        let mut stmt =
            conn.prepare_cached("SELECT type, count(*) FROM log WHERE time_us >= ?1 GROUP BY type")?;
        let rows = stmt.query_map([day_start_us], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
        })?;
        for row in rows {
            let (k, n) = row?;
            if ATTENDANCE_KINDS.contains(&k.as_str()) {
                attendance.today.insert(k, n.max(0) as u64);
            }
        }
    }

    let alarms = open_alarms(conn, tz, now_us)?;
    let disk = disk_status(conn, config, tz)?;
    let upstream = match &config.upstream {
        Some(_) => Some(outbox::status(conn)?),
        None => None,
    };

    Ok(Snapshot {
        device: config.device.id.clone(),
        version: env!("CARGO_PKG_VERSION"),
        time: rfc3339_us(now_us, tz),
        time_us: now_us,
        started: rfc3339_us(started_us, tz),
        uptime_s: (now_us - started_us).max(0) as f64 / 1e6,
        timezone: tz.to_string(),
        cameras,
        jobs,
        sessions,
        attendance,
        alarms,
        log,
        disk,
        upstream,
    })
}

/// Local midnight of `day` (µs).
fn day_start_us(day: chrono::NaiveDate, tz: chrono_tz::Tz) -> i64 {
    use chrono::TimeZone;
    day.and_hms_opt(0, 0, 0)
        .and_then(|t| tz.from_local_datetime(&t).earliest())
        .map_or(0, |t| t.timestamp_micros())
}

fn camera_status(
    conn: &Connection,
    id: &str,
    record: bool,
    tz: chrono_tz::Tz,
) -> Result<CameraStatus, SnapshotError> {
    let (segments, recorded_bytes): (i64, i64) = conn.query_row(
        "SELECT count(*), coalesce(sum(bytes), 0) FROM segments WHERE camera = ?1 AND state != 'recording'",
        [id],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let mut gap_seconds = BTreeMap::new();
    {
        let mut stmt = conn.prepare_cached(
            "SELECT cause, sum(end_us - start_us) FROM gaps
             WHERE camera = ?1 AND end_us IS NOT NULL GROUP BY cause",
        )?;
        let rows = stmt.query_map([id], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
        for row in rows {
            let (cause, us) = row?;
            gap_seconds.insert(cause, us as f64 / 1e6);
        }
    }
    let open: Option<(i64, String)> = conn
        .query_row(
            "SELECT start_us, cause FROM gaps WHERE camera = ?1 AND end_us IS NULL ORDER BY start_us DESC LIMIT 1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let gaps_open: i64 = conn.query_row(
        "SELECT count(*) FROM gaps WHERE camera = ?1 AND end_us IS NULL",
        [id],
        |r| r.get(0),
    )?;
    // start, end, bytes, path, media duration
    type Last = (i64, i64, Option<i64>, String, Option<i64>);
    let last: Option<Last> = conn
        .query_row(
            "SELECT start_us, end_us, bytes, path, media_duration_us FROM segments
             WHERE camera = ?1 AND state != 'recording' AND end_us IS NOT NULL
             ORDER BY end_us DESC LIMIT 1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )
        .optional()?;
    let recording = !index::recording_segments(conn)?.iter().all(|s| s.camera != id);
    let last_gap_end: Option<i64> = conn.query_row(
        "SELECT max(end_us) FROM gaps WHERE camera = ?1 AND end_us IS NOT NULL",
        [id],
        |r| r.get(0),
    )?;
    let first_start: Option<i64> = conn.query_row(
        "SELECT min(start_us) FROM segments WHERE camera = ?1",
        [id],
        |r| r.get(0),
    )?;
    let (state, gap_cause, since) = match (&open, recording, record) {
        (_, _, false) => ("off", None, None),
        (Some((start, cause)), _, _) => ("gap", Some(cause.clone()), Some(*start)),
        (None, true, _) => ("recording", None, last_gap_end.or(first_start)),
        (None, false, _) => ("starting", None, None),
    };
    let bitrate_bps = last.as_ref().and_then(|(s, e, bytes, _, media)| {
        let us = media.unwrap_or(e - s);
        let b = (*bytes)?;
        (us > 0).then(|| b as f64 * 8.0 / (us as f64 / 1e6))
    });
    Ok(CameraStatus {
        id: id.to_string(),
        state,
        gap_cause,
        since: since.map(|t| rfc3339_us(t, tz)),
        last_segment: last.map(|(s, e, bytes, path, _)| LastSegment {
            start: rfc3339_us(s, tz),
            end: rfc3339_us(e, tz),
            bytes: bytes.map(|b| b.max(0) as u64),
            path,
        }),
        bitrate_bps,
        segments: segments.max(0) as u64,
        recorded_bytes: recorded_bytes.max(0) as u64,
        gap_seconds,
        gaps_open: gaps_open.max(0) as u64,
    })
}

/// Clock steps of the last this long are listed with the open alarms.
const RECENT_CLOCK_STEP_US: i64 = 86_400_000_000;

fn open_alarms(conn: &Connection, tz: chrono_tz::Tz, now_us: i64) -> Result<Vec<OpenAlarm>, SnapshotError> {
    // The last record of each alarm (and what it is about: camera, job, broker).
    let mut last: BTreeMap<String, OpenAlarm> = BTreeMap::new();
    let mut stmt =
        conn.prepare_cached("SELECT seq, time_us, payload FROM log WHERE type = 'alarm' ORDER BY seq")?;
    let rows = stmt.query_map([], |r| {
        Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?, r.get::<_, String>(2)?))
    })?;
    for row in rows {
        let (seq, time_us, payload) = row?;
        let Ok(v) = serde_json::from_str::<Value>(&payload) else {
            continue;
        };
        let name = v["alarm"].as_str().unwrap_or("").to_string();
        if ONE_OFF_ALARMS.contains(&name.as_str()) {
            continue;
        }
        if name == "clock_step" {
            // An event, never cleared: shown for a day.
            if time_us >= now_us - RECENT_CLOCK_STEP_US {
                last.insert(
                    format!("clock_step:{seq}"),
                    OpenAlarm {
                        alarm: name,
                        since: rfc3339_us(time_us, tz),
                        seq,
                        detail: v,
                    },
                );
            }
            continue;
        }
        let about = ["camera", "job", "broker"]
            .iter()
            .filter_map(|k| v[*k].as_str())
            .collect::<Vec<_>>()
            .join("/");
        let key = format!("{name}:{about}");
        if v["state"] == "raised" {
            let since = match last.get(&key) {
                Some(a) => a.since.clone(),
                None => rfc3339_us(time_us, tz),
            };
            last.insert(
                key,
                OpenAlarm {
                    alarm: name,
                    since,
                    seq,
                    detail: v,
                },
            );
        } else {
            last.remove(&key);
        }
    }
    Ok(last.into_values().collect())
}

fn disk_status(conn: &Connection, config: &Config, tz: chrono_tz::Tz) -> Result<DiskStatus, SnapshotError> {
    let retention_days = config.rules.profile.retention.as_secs_f64() / 86_400.0;
    let text = crate::db::meta_get(conn, crate::daemon::evidence::DISK_STATUS)?;
    let v: Value = text
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(Value::Null);
    Ok(DiskStatus {
        available_bytes: v["available_bytes"].as_u64(),
        capacity_bytes: v["capacity_bytes"].as_u64(),
        days_left: v["days_left"].as_f64(),
        retention_days,
        disk_full: v["disk_full"].as_bool().unwrap_or(false),
        checked: v["time_us"].as_i64().map(|t| rfc3339_us(t, tz)),
    })
}

impl Snapshot {
    /// Class hours of today by verdict.
    pub fn class_hours_by_verdict(&self) -> BTreeMap<&'static str, u64> {
        let mut m: BTreeMap<&'static str, u64> =
            [Verdict::Pass, Verdict::Fail, Verdict::AtRisk, Verdict::Pending]
                .into_iter()
                .map(|v| (v.as_str(), 0))
                .collect();
        for s in &self.sessions {
            for h in &s.hours {
                *m.entry(h.verdict.as_str()).or_default() += 1;
            }
        }
        m
    }
}
