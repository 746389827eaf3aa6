//! `live.start` / `live.stop`: the camera's live stream pushed by stream copy to a media
//! server the platform names (rtmp:// or rtsp://), for remote live inspection (R9) with no
//! port open on the box.
//!
//! Recording is untouched: the push opens its own connection to the camera
//! (`media::source::Connection`), never the recorder's. At most one push per camera; a push
//! ends at its duration (at most `[upstream] live_max`), on `live.stop`, when the daemon
//! stops, or on an error; it is then a `live` record with its start and end.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use ffmpeg::{Rational, codec};
use ffmpeg_next as ffmpeg;
use tracing::{info, warn};

use crate::evidence::record::{self, Record};
use crate::media::CameraConfig;
use crate::media::config::redact_url;
use crate::media::source::{Connection, ReadError};

/// The pushes running, by camera: their stop flags.
#[derive(Debug, Default, Clone)]
pub struct LivePushes(Arc<Mutex<HashMap<String, Arc<AtomicBool>>>>);

impl LivePushes {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<AtomicBool>>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Stops the camera's push; `false` if there was none.
    pub fn stop(&self, camera: &str) -> bool {
        match self.lock().get(camera) {
            Some(f) => {
                f.store(true, Ordering::SeqCst);
                true
            }
            None => false,
        }
    }
}

/// A push that started: the caller acks, the push runs on its own thread.
pub struct Started {
    pub start_us: i64,
    pub until_us: i64,
}

/// Why a push ended.
fn ended_text(e: &ReadError) -> String {
    match e {
        ReadError::Stopped => "stopped".into(),
        other => format!("camera: {other}"),
    }
}

/// Starts pushing `camera` to `push_url` for `duration`; `on_end(record)` is called with the
/// `live` record once it ends (the caller appends it).
pub fn start(
    pushes: &LivePushes,
    daemon_stop: Arc<AtomicBool>,
    cam: &CameraConfig,
    command_id: &str,
    push_url: &str,
    duration: Duration,
    on_end: impl FnOnce(Record) + Send + 'static,
) -> Result<Started, String> {
    let format = if push_url.starts_with("rtmp://") {
        "flv"
    } else if push_url.starts_with("rtsp://") {
        "rtsp"
    } else {
        return Err(format!(
            "push_url {}: an rtmp:// or rtsp:// URL",
            redact_url(push_url)
        ));
    };
    let stop = Arc::new(AtomicBool::new(false));
    {
        let mut map = pushes.lock();
        if map.contains_key(&cam.id) {
            return Err(format!(
                "camera {} is already being pushed; live.stop it first",
                cam.id
            ));
        }
        map.insert(cam.id.clone(), stop.clone());
    }
    let forget = |pushes: &LivePushes, camera: &str| {
        pushes.lock().remove(camera);
    };
    let opened = open(cam, push_url, format, stop.clone());
    let (conn, octx) = match opened {
        Ok(x) => x,
        Err(e) => {
            forget(pushes, &cam.id);
            return Err(e);
        }
    };
    let start_us = Utc::now().timestamp_micros();
    let until_us = start_us + duration.as_micros() as i64;
    let (pushes2, camera, id, url) = (
        pushes.clone(),
        cam.id.clone(),
        command_id.to_string(),
        redact_url(push_url),
    );
    let spawned = std::thread::Builder::new()
        .name(format!("live-{camera}"))
        .spawn(move || {
            let deadline = Instant::now() + duration;
            let (packets, ended) = pump(conn, octx, &stop, &daemon_stop, deadline);
            forget(&pushes2, &camera);
            let end_us = Utc::now().timestamp_micros();
            info!(camera = %camera, packets, ended = %ended, "sync: live push ended");
            on_end(Record::Live(record::Live {
                command_id: id,
                camera,
                push_url: url,
                start_us,
                end_us,
                packets,
                ended,
            }));
        });
    if let Err(e) = spawned {
        forget(pushes, &cam.id);
        return Err(format!("cannot start the push thread: {e}"));
    }
    Ok(Started { start_us, until_us })
}

type Output = (ffmpeg::format::context::Output, Rational, Rational);

fn open(
    cam: &CameraConfig,
    push_url: &str,
    format: &str,
    stop: Arc<AtomicBool>,
) -> Result<(Connection, Output), String> {
    let conn = Connection::open(cam, stop).map_err(|e| format!("camera {}: {e}", cam.id))?;
    let fe = |what: &str, e: ffmpeg::Error| format!("{what} {}: {e}", redact_url(push_url));
    let mut octx = ffmpeg::format::output_as(&push_url, format).map_err(|e| fe("cannot open", e))?;
    {
        let mut ost = octx
            .add_stream(ffmpeg::encoder::find(codec::Id::None))
            .map_err(|e| fe("stream for", e))?;
        ost.set_parameters(conn.params.clone());
        ost.set_time_base(conn.time_base);
        // SAFETY: the output context we own holds these parameters; the camera's tag means
        // nothing to FLV/RTSP (as in media::segment).
        unsafe {
            (*ost.parameters().as_mut_ptr()).codec_tag = 0;
        }
    }
    let mut opts = ffmpeg::Dictionary::new();
    if format == "rtsp" {
        opts.set("rtsp_transport", "tcp");
    }
    octx.write_header_with(opts)
        .map_err(|e| fe("cannot connect to", e))?;
    let out_tb = octx.stream(0).map(|s| s.time_base()).unwrap_or(conn.time_base);
    let in_tb = conn.time_base;
    Ok((conn, (octx, in_tb, out_tb)))
}

/// Copies packets from the first keyframe on until the deadline or a stop; returns the
/// packets written and why it ended.
fn pump(
    mut conn: Connection,
    (mut octx, in_tb, out_tb): Output,
    stop: &AtomicBool,
    daemon_stop: &AtomicBool,
    deadline: Instant,
) -> (u64, String) {
    let mut origin: Option<i64> = None;
    let mut last_dts: Option<i64> = None;
    let mut packets = 0u64;
    let ended = loop {
        if daemon_stop.load(Ordering::SeqCst) {
            stop.store(true, Ordering::SeqCst);
            break "daemon stopping".to_string();
        }
        if stop.load(Ordering::SeqCst) {
            break "live.stop".to_string();
        }
        if Instant::now() >= deadline {
            break "duration".to_string();
        }
        let pkt = match conn.read() {
            Ok(p) => p,
            Err(e) => break ended_text(&e),
        };
        if origin.is_none() {
            if !pkt.is_key() {
                continue;
            }
            origin = pkt.dts().or(pkt.pts());
        }
        let o = origin.unwrap_or(0);
        let dts = pkt.dts().or(pkt.pts()).unwrap_or(o);
        let dts = match last_dts {
            Some(l) if dts <= l => l + 1,
            _ => dts,
        };
        last_dts = Some(dts);
        let pts = pkt.pts().unwrap_or(dts).max(dts);
        let mut out = pkt.clone();
        out.set_dts(Some(dts - o));
        out.set_pts(Some(pts - o));
        out.set_stream(0);
        out.set_position(-1);
        out.rescale_ts(in_tb, out_tb);
        if let Err(e) = out.write_interleaved(&mut octx) {
            warn!("sync: live push: the media server refused a packet: {e}");
            break format!("media server: {e}");
        }
        packets += 1;
    };
    if let Err(e) = octx.write_trailer() {
        warn!("sync: live push: trailer: {e}");
    }
    (packets, ended)
}
