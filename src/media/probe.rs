//! `classproof cameras probe URL` and `doctor`'s camera check: open a camera as the recorder
//! does, read its video packets for a few seconds and say what it sends (codec, resolution,
//! frame rate, keyframe interval, bitrate). Segments are cut only at keyframes, so a keyframe
//! interval above [`MAX_KEYFRAME_INTERVAL_S`] makes segments and the gaps at reconnects longer
//! than configured: a warning.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use ffmpeg_next as ffmpeg;
use serde::Serialize;

use super::config::CameraConfig;
use super::source::{Connection, ReadError};

/// Keyframe intervals above this are warned about.
pub const MAX_KEYFRAME_INTERVAL_S: f64 = 2.0;

/// What a camera sends.
#[derive(Debug, Clone, Serialize)]
pub struct Probe {
    pub codec: String,
    pub width: u32,
    pub height: u32,
    /// Frames per second measured from the packets' timestamps.
    pub fps: Option<f64>,
    /// Mean seconds between keyframes; `None` when fewer than two were seen.
    pub keyframe_interval_s: Option<f64>,
    pub keyframes: u32,
    pub bitrate_bps: Option<f64>,
    /// Seconds of stream read.
    pub seconds: f64,
    pub packets: u64,
}

impl Probe {
    /// Warnings a technician should act on.
    pub fn warnings(&self) -> Vec<String> {
        let mut w = Vec::new();
        match self.keyframe_interval_s {
            Some(k) if k > MAX_KEYFRAME_INTERVAL_S => w.push(format!(
                "keyframe interval {k:.1}s is above {MAX_KEYFRAME_INTERVAL_S:.0}s: segments cut only at \
                 keyframes; set the camera's I-frame interval (GOP) to at most 2x its frame rate"
            )),
            None => w.push(format!(
                "fewer than two keyframes in {:.0}s: the keyframe interval is above that; set the \
                 camera's I-frame interval (GOP) to at most 2x its frame rate",
                self.seconds
            )),
            _ => {}
        }
        if !matches!(self.codec.as_str(), "h264" | "hevc" | "h265") {
            w.push(format!(
                "codec {}: H.264 or H.265 keeps segments small and playable everywhere",
                self.codec
            ));
        }
        w
    }

    /// One line: `h264 1280x720 25.0 fps, keyframe every 1.0s, 2.1 Mbit/s`.
    pub fn summary(&self) -> String {
        format!(
            "{} {}x{} {}, {}, {}",
            self.codec,
            self.width,
            self.height,
            self.fps.map_or("? fps".into(), |f| format!("{f:.1} fps")),
            self.keyframe_interval_s
                .map_or("keyframe interval unknown".into(), |k| format!(
                    "keyframe every {k:.1}s"
                )),
            self.bitrate_bps
                .map_or("bitrate unknown".into(), |b| format!("{:.2} Mbit/s", b / 1e6))
        )
    }
}

/// Opens `cfg`'s source and reads it for `window` (longer, up to 3 × `window`, until a second
/// keyframe arrived).
pub fn probe(cfg: &CameraConfig, window: Duration) -> Result<Probe, ReadError> {
    let stop = Arc::new(AtomicBool::new(false));
    let mut conn = Connection::open(cfg, stop)?;
    let (width, height) = dimensions(&conn.params);
    let tb = conn.time_base;
    let secs = |ticks: i64| ticks as f64 * f64::from(tb.numerator()) / f64::from(tb.denominator().max(1));
    let started = Instant::now();
    let mut first_pts: Option<i64> = None;
    let mut last_pts: Option<i64> = None;
    let mut keys: Vec<i64> = Vec::new();
    let mut bytes: u64 = 0;
    let mut packets: u64 = 0;
    loop {
        let pkt = conn.read()?;
        let Some(pts) = pkt.pts().or(pkt.dts()) else {
            continue;
        };
        packets += 1;
        bytes += pkt.size() as u64;
        first_pts = Some(first_pts.map_or(pts, |f: i64| f.min(pts)));
        last_pts = Some(last_pts.map_or(pts, |l: i64| l.max(pts)));
        if pkt.is_key() {
            keys.push(pts);
        }
        let elapsed = started.elapsed();
        if (elapsed >= window && keys.len() >= 2) || elapsed >= window * 3 {
            break;
        }
    }
    let span = match (first_pts, last_pts) {
        (Some(a), Some(b)) if b > a => secs(b - a),
        _ => 0.0,
    };
    keys.sort_unstable();
    keys.dedup();
    let keyframe_interval_s =
        (keys.len() >= 2).then(|| secs(keys[keys.len() - 1] - keys[0]) / (keys.len() - 1) as f64);
    Ok(Probe {
        codec: conn.codec.clone(),
        width,
        height,
        fps: (span > 0.0 && packets > 1).then(|| (packets - 1) as f64 / span),
        keyframe_interval_s,
        keyframes: keys.len() as u32,
        bitrate_bps: (span > 0.0).then(|| bytes as f64 * 8.0 / span),
        seconds: started.elapsed().as_secs_f64(),
        packets,
    })
}

fn dimensions(params: &ffmpeg::codec::Parameters) -> (u32, u32) {
    ffmpeg::codec::context::Context::from_parameters(params.clone())
        .ok()
        .and_then(|c| c.decoder().video().ok())
        .map_or((0, 0), |v| (v.width(), v.height()))
}
