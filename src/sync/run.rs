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

use super::command::{Accepted, Body, ClipRequest, LiveStart, SnapshotRequest};
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
}

/// The result body of an `ok` ack, or why the command failed.
pub type Outcome = Result<Value, String>;

/// Runs one accepted command to its end (the caller acks with the outcome).
pub fn run(ctx: &RunContext, a: &Accepted) -> Outcome {
    match &a.body {
        Body::SnapshotRequest(s) => snapshot(ctx, a, s),
        Body::LiveStart(l) => live_start(ctx, a, l),
        Body::ClipRequest(c) => clip(ctx, a, c),
        Body::LiveStop(l) => {
            if ctx.live.stop(&l.camera) {
                Ok(json!({"camera": l.camera, "stopping": true}))
            } else {
                Err(format!("no live push of camera {:?} is running", l.camera))
            }
        }
        other => Err(format!(
            "{} is not supported by this version of classproof yet ({:?})",
            a.kind.as_str(),
            std::mem::discriminant(other)
        )),
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
