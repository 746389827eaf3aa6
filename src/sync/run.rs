//! Running an accepted downlink command (docs/protocol.md, "Commands"). Each command runs on
//! its own thread with its own database connection, never on the sync job's event loop (so
//! publishing and keepalive go on) and never on a camera thread (recording is untouched). The
//! outcome comes back to the job as the body of its ack.
//!
//! Evidence a command produces (a snapshot) is a record, with its file's sha256, appended
//! BEFORE it leaves the box, so what was sent is in the chain.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use rusqlite::Connection;
use serde_json::{Value, json};
use tracing::{info, warn};

use super::command::{
    Accepted, AttendanceRequest, Body, ClipRequest, LiveStart, Photo, RosterUpdate, ScheduleUpdate,
    SnapshotRequest,
};
use super::message::time_text;
use super::source;
use crate::config::Config;
use crate::db;
use crate::evidence::record::{self, Record};
use crate::media::still;

/// First retry of a failed upload; doubled up to [`UPLOAD_RETRY_MAX`], until the command
/// expires.
const UPLOAD_RETRY_FIRST: Duration = Duration::from_secs(1);
const UPLOAD_RETRY_MAX: Duration = Duration::from_secs(30);

/// What a command needs from the daemon.
#[derive(Clone)]
pub struct RunContext {
    pub config: Arc<Config>,
    /// The daemon's stop flag (a live push ends with the daemon).
    pub stop: Arc<std::sync::atomic::AtomicBool>,
    pub live: super::live::LivePushes,
    /// Wakes the verdicts job after a schedule change.
    pub changes: Arc<crate::daemon::jobs::Changes>,
}

/// The result body of an `ok` ack, or why the command failed.
pub type Outcome = Result<Value, String>;

/// Runs one accepted command to its end (the caller acks with the outcome).
pub fn run(ctx: &RunContext, a: &Accepted) -> Outcome {
    match &a.body {
        Body::SnapshotRequest(s) => snapshot(ctx, a, s),
        Body::LiveStart(l) => live_start(ctx, a, l),
        Body::ClipRequest(c) => clip(ctx, a, c),
        Body::RosterUpdate(r) => roster_update(ctx, a, r),
        Body::ScheduleUpdate(u) => schedule_update(ctx, a, u),
        Body::AttendanceRequest(r) => attendance(ctx, r),
        Body::LiveStop(l) => {
            if ctx.live.stop(&l.camera) {
                Ok(json!({"camera": l.camera, "stopping": true}))
            } else {
                Err(format!("no live push of camera {:?} is running", l.camera))
            }
        }
    }
}

fn open_db(ctx: &RunContext) -> Result<Connection, String> {
    db::open(&ctx.config.device.data_dir).map_err(|e| format!("database: {e}"))
}

fn known_camera(ctx: &RunContext, camera: &str) -> Result<(), String> {
    if ctx.config.cameras.iter().any(|c| c.id == camera && c.record) {
        Ok(())
    } else {
        let ids: Vec<&str> = ctx
            .config
            .cameras
            .iter()
            .filter(|c| c.record)
            .map(|c| c.id.as_str())
            .collect();
        Err(format!(
            "no recording camera {camera:?} on this box (cameras: {})",
            ids.join(", ")
        ))
    }
}

/// A file name part made of a command id (anything but letters, digits, `-`, `_`, `.` is `_`).
fn safe_name(id: &str) -> String {
    id.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Where a command's evidence file goes: `commands/{date}/{command id}.{ext}` under the data
/// dir (relative path, absolute path).
fn evidence_path(ctx: &RunContext, id: &str, ext: &str) -> (String, PathBuf) {
    let tz = ctx.config.device.timezone;
    let date = Utc::now().with_timezone(&tz).format("%Y-%m-%d");
    let rel = format!("commands/{date}/{}.{ext}", safe_name(id));
    let abs = ctx.config.device.data_dir.join(&rel);
    (rel, abs)
}

fn write_durably(path: &Path, bytes: &[u8]) -> Result<(), String> {
    use std::io::Write as _;
    let fail = |e: std::io::Error| format!("{}: {e}", path.display());
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(fail)?;
    }
    let mut f = std::fs::File::create(path).map_err(fail)?;
    f.write_all(bytes).map_err(fail)?;
    f.sync_all().map_err(fail)?;
    if let Some(dir) = path.parent()
        && let Ok(d) = std::fs::File::open(dir)
    {
        let _ = d.sync_all();
    }
    Ok(())
}

fn sha256_hex(b: &[u8]) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, b).as_ref())
}

/// `snapshot.request`: the camera's newest keyframe as JPEG, recorded, then uploaded.
fn snapshot(ctx: &RunContext, a: &Accepted, s: &SnapshotRequest) -> Outcome {
    known_camera(ctx, &s.camera)?;
    check_upload_url(&s.upload_url)?;
    let mut conn = open_db(ctx)?;
    let pic = still::latest_jpeg(&ctx.config.device.data_dir, &s.camera, &conn).map_err(|e| e.to_string())?;
    let (rel, abs) = evidence_path(ctx, &a.command.id, "jpg");
    write_durably(&abs, &pic.jpeg)?;
    let sha = sha256_hex(&pic.jpeg);
    let rec = Record::Snapshot(record::Snapshot {
        command_id: a.command.id.clone(),
        camera: s.camera.clone(),
        path: rel.clone(),
        bytes: pic.jpeg.len() as u64,
        frame_us: pic.time.timestamp_micros(),
        width: pic.width,
        height: pic.height,
        sha256: sha.clone(),
    });
    let seq = source::append(&mut conn, &rec).map_err(|e| format!("recording the snapshot: {e}"))?;
    info!(command = %a.command.id, camera = %s.camera, seq, "sync: snapshot recorded; uploading");
    let upload = upload(ctx, a, &s.upload_url, "image/jpeg", pic.jpeg, &sha)?;
    Ok(json!({
        "camera": s.camera,
        "seq": seq,
        "path": rel,
        "sha256": sha,
        "bytes": rec.file_bytes(),
        "time": time_text(pic.time.timestamp_micros(), ctx.config.device.timezone),
        "width": pic.width,
        "height": pic.height,
        "upload": upload,
    }))
}

fn check_upload_url(u: &str) -> Result<(), String> {
    match url::Url::parse(u) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host_str().is_some() => Ok(()),
        _ => Err(format!("upload_url {u:?}: an http:// or https:// URL")),
    }
}

fn http_client() -> Result<reqwest::blocking::Client, String> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::blocking::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(300))
        .user_agent(concat!("classproof/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("HTTP client: {e}"))
}

/// HTTP(S) PUT of an evidence file with its sha256 and the device id, retried with back-off
/// until the command expires. Returns the upload's facts for the ack.
fn upload(
    ctx: &RunContext,
    a: &Accepted,
    url: &str,
    content_type: &str,
    bytes: Vec<u8>,
    sha: &str,
) -> Outcome {
    let client = http_client()?;
    let mut retry = UPLOAD_RETRY_FIRST;
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        let started = Instant::now();
        let sent = client
            .put(url)
            .header("Content-Type", content_type)
            .header("X-Content-SHA256", sha)
            .header("X-Classproof-Device", &ctx.config.device.id)
            .header("X-Classproof-Command", &a.command.id)
            .body(bytes.clone())
            .send();
        let why = match sent {
            Ok(r) if r.status().is_success() => {
                return Ok(json!({
                    "url": url,
                    "status": r.status().as_u16(),
                    "attempts": attempts,
                    "seconds": (started.elapsed().as_millis() as f64) / 1000.0,
                }));
            }
            Ok(r) => format!("HTTP {}", r.status()),
            Err(e) => e.to_string(),
        };
        let now = Utc::now().timestamp_micros();
        let next = now + retry.as_micros() as i64;
        if next >= a.expires_us {
            return Err(format!(
                "upload to {url} failed {attempts} times (last: {why}); the command expired"
            ));
        }
        warn!(command = %a.command.id, attempts, "sync: upload to {url} failed ({why}); retrying in {}", humantime::format_duration(retry));
        std::thread::sleep(retry);
        retry = (retry * 2).min(UPLOAD_RETRY_MAX);
    }
}

/// `live.start`: the push runs on its own thread; the ack says it started. Its `live` record
/// is appended when it ends.
fn live_start(ctx: &RunContext, a: &Accepted, l: &LiveStart) -> Outcome {
    known_camera(ctx, &l.camera)?;
    let max = ctx
        .config
        .upstream
        .as_ref()
        .map(|u| u.live_max)
        .unwrap_or(super::config::DEFAULT_LIVE_MAX);
    let duration =
        humantime::parse_duration(&l.duration).map_err(|e| format!("duration {:?}: {e}", l.duration))?;
    if duration.is_zero() || duration > max {
        return Err(format!(
            "duration {:?}: more than 0 and at most upstream.live_max ({})",
            l.duration,
            humantime::format_duration(max)
        ));
    }
    let cam = ctx
        .config
        .cameras
        .iter()
        .find(|c| c.id == l.camera)
        .ok_or_else(|| format!("no camera {:?}", l.camera))?;
    let data_dir = ctx.config.device.data_dir.clone();
    let on_end = move |rec: Record| {
        let appended = db::open(&data_dir)
            .map_err(|e| e.to_string())
            .and_then(|mut c| source::append(&mut c, &rec).map_err(|e| e.to_string()));
        if let Err(e) = appended {
            warn!("sync: cannot record the end of a live push: {e}");
        }
    };
    let started = super::live::start(
        &ctx.live,
        ctx.stop.clone(),
        cam,
        &a.command.id,
        &l.push_url,
        duration,
        on_end,
    )?;
    let tz = ctx.config.device.timezone;
    Ok(json!({
        "camera": l.camera,
        "push_url": crate::media::config::redact_url(&l.push_url),
        "started": time_text(started.start_us, tz),
        "until": time_text(started.until_us, tz),
    }))
}

/// `clip.request`: cut by stream copy, recorded, then uploaded; the ack lists the holes.
fn clip(ctx: &RunContext, a: &Accepted, c: &ClipRequest) -> Outcome {
    known_camera(ctx, &c.camera)?;
    check_upload_url(&c.upload_url)?;
    let t = |field: &str, s: &str| {
        chrono::DateTime::parse_from_rfc3339(s)
            .map(|t| t.timestamp_micros())
            .map_err(|e| format!("{field} {s:?}: an RFC 3339 time with offset ({e})"))
    };
    let (from_us, to_us) = (t("from", &c.from)?, t("to", &c.to)?);
    let mut conn = open_db(ctx)?;
    let (rel, abs) = evidence_path(ctx, &a.command.id, "mp4");
    let now = Utc::now().timestamp_micros();
    let cut = super::clip::cut(
        &ctx.config.device.data_dir,
        &conn,
        &c.camera,
        from_us,
        to_us,
        now,
        &abs,
    )?;
    let bytes = std::fs::read(&abs).map_err(|e| format!("{}: {e}", abs.display()))?;
    let sha = sha256_hex(&bytes);
    let rec = Record::Clip(record::Clip {
        command_id: a.command.id.clone(),
        camera: c.camera.clone(),
        path: rel.clone(),
        bytes: bytes.len() as u64,
        from_us,
        to_us,
        segments: cut.segments,
        holes: cut.holes.clone(),
        sha256: sha.clone(),
    });
    let seq = source::append(&mut conn, &rec).map_err(|e| format!("recording the clip: {e}"))?;
    info!(command = %a.command.id, camera = %c.camera, seq, "sync: clip recorded; uploading");
    let n = bytes.len();
    let upload = upload(ctx, a, &c.upload_url, "video/mp4", bytes, &sha)?;
    let tz = ctx.config.device.timezone;
    Ok(json!({
        "camera": c.camera,
        "seq": seq,
        "path": rel,
        "sha256": sha,
        "bytes": n,
        "from": time_text(from_us, tz),
        "to": time_text(to_us, tz),
        "first_frame": time_text(cut.first_us, tz),
        "last_frame": time_text(cut.last_us, tz),
        "segments": cut.segments,
        "gaps": cut.holes.iter().map(|h| json!({
            "start": time_text(h.start_us, tz),
            "end": time_text(h.end_us, tz),
            "seconds": (h.end_us - h.start_us) as f64 / 1e6,
            "cause": h.cause,
        })).collect::<Vec<_>>(),
        "upload": upload,
    }))
}

/// Largest photo fetched for a `roster.update`.
const MAX_PHOTO_BYTES: u64 = 20 << 20;

/// One photo of a `roster.update`, fetched (checked against its sha256) or decoded, written
/// to `path`; `Err` names why it was refused.
fn get_photo(client: &reqwest::blocking::Client, photo: &Photo, path: &Path) -> Result<(), String> {
    use base64::Engine as _;
    let bytes = match photo {
        Photo::Url { url, sha256 } => {
            let u = url::Url::parse(url).map_err(|e| format!("url: {e}"))?;
            if !matches!(u.scheme(), "http" | "https") {
                return Err("url: http:// or https:// only".into());
            }
            let r = client.get(u).send().map_err(|e| format!("fetch: {e}"))?;
            if !r.status().is_success() {
                return Err(format!("fetch: HTTP {}", r.status()));
            }
            let mut body = Vec::new();
            use std::io::Read as _;
            r.take(MAX_PHOTO_BYTES + 1)
                .read_to_end(&mut body)
                .map_err(|e| format!("fetch: {e}"))?;
            if body.len() as u64 > MAX_PHOTO_BYTES {
                return Err(format!("larger than {MAX_PHOTO_BYTES} bytes"));
            }
            let got = sha256_hex(&body);
            if !got.eq_ignore_ascii_case(sha256) {
                return Err(format!(
                    "sha256 mismatch: the file's is {got}, the command says {sha256}"
                ));
            }
            body
        }
        Photo::Inline { jpeg_base64 } => base64::engine::general_purpose::STANDARD
            .decode(jpeg_base64.trim())
            .map_err(|e| format!("jpeg_base64: {e}"))?,
    };
    write_durably(path, &bytes)
}

fn photo_label(p: &Photo, j: usize) -> String {
    match p {
        Photo::Url { url, .. } => url.clone(),
        Photo::Inline { .. } => format!("jpeg_base64 #{}", j + 1),
    }
}

/// `roster.update`: the same code as `roster import` (R10 for the whole update first, then
/// `attendance::enroll::enroll` per person); photos are fetched and checked against their
/// sha256 first, and deleted after (only templates are kept, R15). The ack lists each
/// person's result and every rejected photo with its reason; never an ID number (R15).
fn roster_update(ctx: &RunContext, a: &Accepted, r: &RosterUpdate) -> Outcome {
    use crate::attendance::enroll;
    use crate::attendance::roster::{self, ClassChange, Person, Role};
    roster::check_class_id(&r.class_id).map_err(|e| e.to_string())?;
    let mut conn = open_db(ctx)?;
    let classes = vec![r.class_id.clone()];
    // Who can be taken at all.
    let mut results: Vec<Value> = Vec::new();
    let mut people: Vec<(usize, Person)> = Vec::new();
    for (i, p) in r.persons.iter().enumerate() {
        let checked = roster::check_person_id(&p.person_id)
            .and_then(|()| Role::parse(&p.role))
            .map_err(|e| e.to_string());
        match checked {
            Ok(role) => people.push((
                i,
                Person {
                    person_id: p.person_id.clone(),
                    name: p.name.clone(),
                    role,
                    id_number: p.id_number.clone().filter(|s| !s.is_empty()),
                },
            )),
            Err(e) => results.push(json!({"person_id": p.person_id, "result": "rejected", "reason": e})),
        }
    }
    let changes: Vec<(String, Role, ClassChange)> = people
        .iter()
        .map(|(_, p)| (p.person_id.clone(), p.role, ClassChange::Add(&classes)))
        .collect();
    if let Err(big) = roster::check_class_sizes(&conn, &changes, ctx.config.rules.profile.max_trainees)
        .map_err(|e| e.to_string())?
    {
        return Err(format!(
            "person {}: class {} would have {} trainees, more than [rules] max_trainees = {} (R10); nothing was changed",
            changes[big.at].0, big.class_id, big.trainees, big.max
        ));
    }
    drop(changes);
    let tmp = ctx
        .config
        .device
        .data_dir
        .join("commands/tmp")
        .join(safe_name(&a.command.id));
    let outcome = (|| -> Result<(), String> {
        let client = http_client()?;
        let mut pipeline = crate::vision::pipeline::Pipeline::load(&ctx.config.vision)
            .map_err(|e| format!("loading the face models: {e}"))?;
        let (model, dim) = pipeline.recognition_model();
        let mut gallery = roster::load_gallery(&conn, model, dim).map_err(|e| e.to_string())?;
        for (i, person) in &people {
            let mut rejected = Vec::new();
            let mut files = Vec::new();
            let mut labels = Vec::new();
            for (j, photo) in r.persons[*i].photos.iter().enumerate() {
                let path = tmp.join(format!("{i}-{j}.jpg"));
                match get_photo(&client, photo, &path) {
                    Ok(()) => {
                        files.push(path);
                        labels.push(photo_label(photo, j));
                    }
                    Err(why) => rejected.push(json!({"photo": photo_label(photo, j), "reason": why})),
                }
            }
            if files.is_empty() {
                results.push(json!({"person_id": person.person_id, "result": "rejected",
                    "reason": "no usable photo", "rejected_photos": rejected}));
                continue;
            }
            match enroll::enroll(
                &mut conn,
                &mut pipeline,
                &mut gallery,
                person,
                ClassChange::Add(&classes),
                &files,
                Utc::now(),
            ) {
                Ok(rep) => {
                    for (k, o) in rep.photos.iter().enumerate() {
                        if let Err(why) = &o.result {
                            rejected.push(json!({"photo": labels.get(k), "reason": why.code(), "detail": why.to_string()}));
                        }
                    }
                    let warnings: Vec<String> = rep
                        .warnings
                        .iter()
                        .map(|w| w.to_string().replace(&tmp.display().to_string(), "photo"))
                        .collect();
                    results.push(json!({
                        "person_id": person.person_id,
                        "result": if rep.templates > 0 { "enrolled" } else { "rejected" },
                        "templates_added": rep.added,
                        "templates": rep.templates,
                        "rejected_photos": rejected,
                        "warnings": warnings,
                    }));
                }
                Err(e) => results.push(json!({"person_id": person.person_id, "result": "rejected",
                    "reason": e.to_string(), "rejected_photos": rejected})),
            }
        }
        Ok(())
    })();
    let _ = std::fs::remove_dir_all(&tmp);
    outcome?;
    let mut removed = Vec::new();
    for id in &r.remove {
        match roster::remove_person(&mut conn, id, Utc::now()) {
            Ok(Some(x)) => {
                removed.push(json!({"person_id": id, "removed": true, "templates_removed": x.templates}))
            }
            Ok(None) => removed.push(json!({"person_id": id, "removed": false, "reason": "no such person"})),
            Err(e) => removed.push(json!({"person_id": id, "removed": false, "reason": e.to_string()})),
        }
    }
    info!(command = %a.command.id, class = %r.class_id, persons = results.len(), removed = removed.len(), "sync: roster updated");
    Ok(json!({"class_id": r.class_id, "persons": results, "removed": removed}))
}

/// `schedule.update`: sessions checked by the `[[session]]` code, stored, judged like the
/// config file's (which win on an id clash: a warning in the ack).
fn schedule_update(ctx: &RunContext, a: &Accepted, u: &ScheduleUpdate) -> Outcome {
    let cfg = &ctx.config;
    let valid = super::schedule::validate(cfg, &u.sessions).map_err(|ps| ps.join("; "))?;
    let mut warnings: Vec<String> = Vec::new();
    for (id, _) in &valid {
        if cfg.sessions.iter().any(|s| &s.id == id) {
            warnings.push(format!(
                "session {id}: the config file has a session with this id; the config file's is judged"
            ));
        }
    }
    for id in &u.remove {
        if cfg.sessions.iter().any(|s| &s.id == id) {
            warnings.push(format!(
                "session {id} is in the config file: it cannot be removed by a command"
            ));
        }
    }
    let mut conn = open_db(ctx)?;
    let removed = super::schedule::store(
        &mut conn,
        &valid,
        &u.remove,
        &a.command.id,
        Utc::now().timestamp_micros(),
    )
    .map_err(|e| format!("database: {e}"))?;
    ctx.changes.notify();
    info!(command = %a.command.id, stored = valid.len(), removed = removed.len(), "sync: schedule updated");
    Ok(json!({
        "stored": valid.iter().map(|(id, _)| id.clone()).collect::<Vec<_>>(),
        "removed": removed,
        "warnings": warnings,
    }))
}

/// `attendance.request`: the occurrence's check-in report (the object of `classproof
/// attendance --json`) when anyone checked in to it, else its class-hour report (the object of
/// `classproof report --json`, judged now from the index).
fn attendance(ctx: &RunContext, r: &AttendanceRequest) -> Outcome {
    use crate::compliance::engine::Summary;
    use crate::daemon::verdicts::{hour_json, judge_occurrence};
    let conn = open_db(ctx)?;
    let (config, _) = super::schedule::effective(&conn, &ctx.config).map_err(|e| format!("database: {e}"))?;
    let tz = config.device.timezone;
    let date = chrono::NaiveDate::parse_from_str(&r.date, "%Y-%m-%d")
        .map_err(|_| format!("date {:?}: YYYY-MM-DD", r.date))?;
    let session = config
        .sessions
        .iter()
        .find(|s| s.id == r.session)
        .ok_or_else(|| format!("no session {:?} on this box", r.session))?;
    let occ = session
        .occurrence_on(date, tz)
        .ok_or_else(|| format!("session {:?} has no occurrence on {date}", r.session))?;
    let target = crate::attendance::report::ReportOccurrence {
        name: occ.name.clone(),
        class_id: occ.session.class_id.clone(),
        start_us: occ.start_us(),
    };
    let checked_in = crate::attendance::report::attendance_report(&conn, &target, tz)
        .map_err(|e| format!("attendance report: {e}"))?;
    let s = &checked_in.summary;
    if s.present + s.late + s.teachers > 0 {
        return serde_json::to_value(&checked_in).map_err(|e| format!("attendance report: {e}"));
    }
    let now = Utc::now().timestamp_micros();
    let hours =
        judge_occurrence(Some(&conn), &config, &occ, now).map_err(|e| format!("segment index: {e}"))?;
    Ok(json!({
        "report": "class_hours",
        "session": occ.name,
        "session_id": occ.session.id,
        "date": occ.date.map(|d| d.format("%Y-%m-%d").to_string()),
        "class_id": occ.session.class_id,
        "kind": occ.session.kind.as_str(),
        "profile": config.rules.profile.name,
        "cameras": occ.session.cameras,
        "as_of": time_text(now, tz),
        "class_hours": hours.iter().map(|h| hour_json(h, tz)).collect::<Vec<_>>(),
        "summary": Summary::of(&hours),
    }))
}
