//! Frames for analysis (issue 9, item 1), never at recording's expense.
//!
//! Each analysed camera (`analyze = "entrance" | "classroom"`) gets a sampler of its own: a
//! second connection to `analyze_url` when set (the camera's sub-stream), else to the camera's
//! own `url`; the recorder's thread, connection and timing are never touched. The sampler
//! decodes only what it needs: while the stream's keyframes come at least `analyze_fps` often
//! (measured over the last few keyframes), only keyframes are decoded (a full decode of a 1080p25 stream costs ~20× more); otherwise
//! every frame is decoded and one is kept every 1/`analyze_fps` seconds of media time.
//!
//! Kept frames go into [`FrameQueues`]: a bounded queue per camera that drops the *oldest*
//! frame when full and counts the drop, so slow analysis only ever loses frames, never delays
//! the sampler. Workers take frames fairly (round robin over cameras), one frame of a camera at
//! a time, so that a camera's frames are analysed in order (tracking needs it).
//!
//! [`CameraCounters`] are plain atomics per camera (frames decoded, analysed, dropped,
//! inference time per model), for the daemon to export.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};

use ffmpeg::format::Pixel;
use ffmpeg::software::scaling;
use ffmpeg::util::frame::Video as VideoFrame;
use ffmpeg_next as ffmpeg;
use serde::Serialize;
use tracing::{info, warn};

use super::camera::BACKOFF_START;
use super::config::CameraConfig;
use super::source::{Connection, ReadError};
use crate::vision::BgrImage;

/// Frames waiting per camera; the oldest is dropped beyond this.
pub const QUEUE_LEN: usize = 2;
/// Decoded frames wider than this are scaled down (the detector works on 640×640 anyway).
pub const MAX_WIDTH: u32 = 1280;

/// Per-camera counters (monotonic).
#[derive(Debug, Default)]
pub struct CameraCounters {
    /// Frames the sampler decoded.
    pub frames_decoded: AtomicU64,
    /// Frames a worker analysed.
    pub frames_analysed: AtomicU64,
    /// Frames dropped from the queue (oldest first) because analysis was behind.
    pub frames_dropped: AtomicU64,
    /// Inference time per model, µs.
    pub detect_us: AtomicU64,
    pub liveness_us: AtomicU64,
    pub embed_us: AtomicU64,
    /// The sampler decodes keyframes only (they come often enough for `analyze_fps`).
    pub keyframes_only: AtomicBool,
}

/// A plain copy of [`CameraCounters`] (for `analysis.json` and the daemon's metrics).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CountersSnapshot {
    pub camera: String,
    pub frames_decoded: u64,
    pub frames_analysed: u64,
    pub frames_dropped: u64,
    pub detect_seconds: f64,
    pub liveness_seconds: f64,
    pub embed_seconds: f64,
    pub keyframes_only: bool,
}

impl CameraCounters {
    pub fn snapshot(&self, camera: &str) -> CountersSnapshot {
        let s = |a: &AtomicU64| a.load(Ordering::Relaxed) as f64 / 1e6;
        CountersSnapshot {
            camera: camera.to_string(),
            frames_decoded: self.frames_decoded.load(Ordering::Relaxed),
            frames_analysed: self.frames_analysed.load(Ordering::Relaxed),
            frames_dropped: self.frames_dropped.load(Ordering::Relaxed),
            detect_seconds: s(&self.detect_us),
            liveness_seconds: s(&self.liveness_us),
            embed_seconds: s(&self.embed_us),
            keyframes_only: self.keyframes_only.load(Ordering::Relaxed),
        }
    }
}

/// Inference time per model (`detect`, `liveness`, `embed`), one observation per analysed
/// frame, for `/metrics` (`classproof_inference_seconds`). Cloning shares the histograms.
#[derive(Debug, Clone)]
pub struct InferenceTimes {
    family: InferenceFamily,
}

/// The histograms by `model` label.
pub type InferenceFamily = Family<Vec<(&'static str, &'static str)>, Histogram, fn() -> Histogram>;

impl Default for InferenceTimes {
    fn default() -> Self {
        fn buckets() -> Histogram {
            // 1 ms … ~4 s: one detection on a 640×640 frame takes tens of ms on this class of
            // box, a classroom's embeddings a few hundred.
            Histogram::new(exponential_buckets(0.001, 2.0, 13))
        }
        InferenceTimes {
            family: Family::new_with_constructor(buckets),
        }
    }
}

impl InferenceTimes {
    pub fn observe(&self, model: &'static str, seconds: f64) {
        self.family
            .get_or_create(&vec![("model", model)])
            .observe(seconds);
    }

    /// The histograms, to register with a Prometheus registry.
    pub fn family(&self) -> InferenceFamily {
        self.family.clone()
    }
}

/// One frame kept for analysis.
#[derive(Debug, Clone)]
pub struct Frame {
    /// Index of the camera in [`FrameQueues`].
    pub camera: usize,
    /// Wall clock when it was decoded, µs.
    pub time_us: i64,
    pub image: BgrImage,
}

struct QueueState {
    queues: Vec<VecDeque<Frame>>,
    /// A worker holds a frame of this camera.
    busy: Vec<bool>,
    /// Where the next round-robin scan starts.
    next: usize,
}

/// The bounded per-camera queues between the samplers and the workers.
pub struct FrameQueues {
    cameras: Vec<(String, Arc<CameraCounters>)>,
    inference: InferenceTimes,
    cap: usize,
    state: Mutex<QueueState>,
    cv: Condvar,
}

impl FrameQueues {
    pub fn new(cameras: &[String], cap: usize) -> FrameQueues {
        FrameQueues {
            cameras: cameras
                .iter()
                .map(|c| (c.clone(), Arc::new(CameraCounters::default())))
                .collect(),
            inference: InferenceTimes::default(),
            cap: cap.max(1),
            state: Mutex::new(QueueState {
                queues: cameras.iter().map(|_| VecDeque::new()).collect(),
                busy: vec![false; cameras.len()],
                next: 0,
            }),
            cv: Condvar::new(),
        }
    }

    pub fn cameras(&self) -> &[(String, Arc<CameraCounters>)] {
        &self.cameras
    }

    pub fn inference(&self) -> &InferenceTimes {
        &self.inference
    }

    pub fn counters(&self, camera: usize) -> Option<&Arc<CameraCounters>> {
        self.cameras.get(camera).map(|c| &c.1)
    }

    pub fn snapshot(&self) -> Vec<CountersSnapshot> {
        self.cameras.iter().map(|(id, c)| c.snapshot(id)).collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, QueueState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues a frame; drops (and counts) the oldest of its camera when full.
    pub fn push(&self, frame: Frame) {
        let cam = frame.camera;
        let mut s = self.lock();
        let Some(q) = s.queues.get_mut(cam) else {
            return;
        };
        while q.len() >= self.cap {
            q.pop_front();
            if let Some(c) = self.counters(cam) {
                c.frames_dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
        q.push_back(frame);
        drop(s);
        self.cv.notify_one();
    }

    /// The next frame of a camera no other worker is busy with, round robin over cameras;
    /// `None` after `timeout`. The caller calls [`FrameQueues::done`] when finished with it.
    pub fn take(&self, timeout: Duration) -> Option<Frame> {
        let until = Instant::now() + timeout;
        let mut s = self.lock();
        loop {
            let n = s.queues.len();
            for k in 0..n {
                let i = (s.next + k) % n;
                if !s.busy[i]
                    && let Some(f) = s.queues[i].pop_front()
                {
                    s.busy[i] = true;
                    s.next = (i + 1) % n;
                    return Some(f);
                }
            }
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            s = self.cv.wait_timeout(s, left).unwrap_or_else(|e| e.into_inner()).0;
        }
    }

    /// The worker is done with its frame of `camera`.
    pub fn done(&self, camera: usize) {
        let mut s = self.lock();
        if let Some(b) = s.busy.get_mut(camera) {
            *b = false;
        }
        drop(s);
        self.cv.notify_all();
    }
}

/// Picks which decoded frames to keep: one per 1/fps of media time.
#[derive(Debug, Clone)]
pub struct RateGate {
    period_s: f64,
    next_s: Option<f64>,
}

impl RateGate {
    pub fn new(fps: f64) -> RateGate {
        RateGate {
            period_s: 1.0 / fps.max(0.01),
            next_s: None,
        }
    }

    /// Whether the frame at media time `t_s` is kept.
    pub fn keep(&mut self, t_s: f64) -> bool {
        match self.next_s {
            Some(n) if t_s + 1e-6 < n => false,
            Some(n) => {
                // Catch up after a pause without a burst of frames.
                let mut n = n + self.period_s;
                if n < t_s {
                    n = t_s + self.period_s;
                }
                self.next_s = Some(n);
                true
            }
            None => {
                self.next_s = Some(t_s + self.period_s);
                true
            }
        }
    }
}

/// Decides whether keyframes alone come often enough: the largest of the last few keyframe
/// intervals must be at most the analysis period.
#[derive(Debug, Clone, Default)]
pub struct KeyframePolicy {
    last_key_s: Option<f64>,
    intervals: VecDeque<f64>,
}

impl KeyframePolicy {
    /// Notes a keyframe at media time `t_s`; returns whether keyframes-only suffices for `fps`,
    /// `None` while the interval is not known yet (before the second keyframe).
    pub fn keyframe(&mut self, t_s: f64, fps: f64) -> Option<bool> {
        if let Some(l) = self.last_key_s
            && t_s > l
        {
            self.intervals.push_back(t_s - l);
            while self.intervals.len() > 4 {
                self.intervals.pop_front();
            }
        }
        self.last_key_s = Some(t_s);
        (!self.intervals.is_empty())
            .then(|| self.intervals.iter().cloned().fold(0.0, f64::max) <= 1.0 / fps + 1e-3)
    }
}

/// The sampler of one camera: connects, decodes, queues, reconnects with backoff. Returns when
/// the daemon stops. `beat` is called at least every few seconds; `health(Err)` on trouble.
pub fn run_sampler(
    cam: &CameraConfig,
    index: usize,
    queues: &FrameQueues,
    stop: &Arc<AtomicBool>,
    beat: &dyn Fn(),
    health: &dyn Fn(Result<(), String>),
) {
    let mut cfg = cam.clone();
    if let Some(src) = &cam.analyze_source {
        cfg.source = src.clone();
    }
    let mut backoff = BACKOFF_START;
    let mut logged = false;
    while !stop.load(Ordering::SeqCst) {
        beat();
        match sample_connection(&cfg, index, queues, stop, beat, health) {
            Ok(()) | Err(ReadError::Stopped) => return,
            Err(e) => {
                if !logged {
                    warn!(camera = %cam.id, error = %e, "frames: analysis stream lost; reconnecting");
                    logged = true;
                }
                health(Err(format!("analysis stream: {e}")));
            }
        }
        let until = Instant::now() + backoff;
        while Instant::now() < until && !stop.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(50));
        }
        backoff = (backoff * 2).min(cam.reconnect_max_backoff.max(BACKOFF_START));
    }
}

fn sample_connection(
    cfg: &CameraConfig,
    index: usize,
    queues: &FrameQueues,
    stop: &Arc<AtomicBool>,
    beat: &dyn Fn(),
    health: &dyn Fn(Result<(), String>),
) -> Result<(), ReadError> {
    let mut conn = Connection::open(cfg, stop.clone())?;
    let ctx = ffmpeg::codec::context::Context::from_parameters(conn.params.clone())
        .map_err(|e| ReadError::Unusable(format!("no decoder: {e}")))?;
    let mut decoder = ctx
        .decoder()
        .video()
        .map_err(|e| ReadError::Unusable(format!("no video decoder: {e}")))?;
    let tb = conn.time_base;
    let secs = |ts: i64| ts as f64 * tb.numerator() as f64 / tb.denominator().max(1) as f64;
    let counters = queues.counters(index).cloned().unwrap_or_default();
    let mut gate = RateGate::new(cfg.analyze_fps);
    let mut policy = KeyframePolicy::default();
    let mut keys_only = false;
    let mut scaler: Option<(scaling::Context, (Pixel, u32, u32))> = None;
    let mut decoded = VideoFrame::empty();
    let mut started = false;
    let mut last_beat = Instant::now();
    info!(camera = %cfg.id, fps = cfg.analyze_fps, "frames: sampling for analysis");
    loop {
        if last_beat.elapsed() > Duration::from_millis(500) {
            beat();
            last_beat = Instant::now();
        }
        let pkt = conn.read()?;
        let t = pkt.pts().or(pkt.dts()).map(secs).unwrap_or(0.0);
        if pkt.is_key() {
            // Until the keyframe interval is known (one interval), every frame is decoded.
            let suffices = policy.keyframe(t, cfg.analyze_fps).unwrap_or(false);
            if suffices != keys_only {
                keys_only = suffices;
                counters.keyframes_only.store(keys_only, Ordering::Relaxed);
                // A decoder switched to keyframes only starts clean at this keyframe.
                decoder.flush();
            }
            started = true;
        }
        if !started || (keys_only && !pkt.is_key()) {
            continue;
        }
        if decoder.send_packet(&pkt).is_err() {
            // A damaged packet: skip to the next keyframe.
            started = false;
            decoder.flush();
            continue;
        }
        while decoder.receive_frame(&mut decoded).is_ok() {
            counters.frames_decoded.fetch_add(1, Ordering::Relaxed);
            let ft = decoded.pts().map(secs).unwrap_or(t);
            if !gate.keep(ft) {
                continue;
            }
            let image = match to_bgr(&decoded, &mut scaler) {
                Ok(i) => i,
                Err(e) => {
                    health(Err(format!("cannot convert a frame: {e}")));
                    continue;
                }
            };
            health(Ok(()));
            queues.push(Frame {
                camera: index,
                time_us: chrono::Utc::now().timestamp_micros(),
                image,
            });
        }
    }
}

/// A decoded frame as packed BGR24, scaled down to [`MAX_WIDTH`].
fn to_bgr(
    f: &VideoFrame,
    scaler: &mut Option<(scaling::Context, (Pixel, u32, u32))>,
) -> Result<BgrImage, String> {
    let (w, h, fmt) = (f.width(), f.height(), f.format());
    let (ow, oh) = if w > MAX_WIDTH {
        (
            MAX_WIDTH,
            ((h as u64 * MAX_WIDTH as u64 / w as u64) as u32).max(2) & !1,
        )
    } else {
        (w, h)
    };
    if scaler.as_ref().is_none_or(|(_, k)| *k != (fmt, w, h)) {
        let ctx = scaling::Context::get(fmt, w, h, Pixel::BGR24, ow, oh, scaling::Flags::BILINEAR)
            .map_err(|e| e.to_string())?;
        *scaler = Some((ctx, (fmt, w, h)));
    }
    let Some((ctx, _)) = scaler.as_mut() else {
        return Err("no scaler".into());
    };
    let mut out = VideoFrame::empty();
    ctx.run(f, &mut out).map_err(|e| e.to_string())?;
    let (ow, oh) = (out.width() as usize, out.height() as usize);
    let stride = out.stride(0);
    let src = out.data(0);
    let mut data = Vec::with_capacity(ow * oh * 3);
    for y in 0..oh {
        let row = &src[y * stride..y * stride + ow * 3];
        data.extend_from_slice(row);
    }
    BgrImage::from_raw(ow, oh, data).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(camera: usize, t: i64) -> Frame {
        Frame {
            camera,
            time_us: t,
            image: BgrImage::zeros(2, 2),
        }
    }

    #[test]
    fn a_full_queue_drops_the_oldest_and_counts_it() {
        let q = FrameQueues::new(&["a".into()], 2);
        for t in 0..5 {
            q.push(frame(0, t));
        }
        assert_eq!(q.snapshot()[0].frames_dropped, 3);
        let f = q.take(Duration::ZERO).unwrap();
        assert_eq!(f.time_us, 3, "the newest frames are kept");
        // One frame of a camera at a time: the next waits for done().
        assert!(q.take(Duration::ZERO).is_none());
        q.done(0);
        assert_eq!(q.take(Duration::ZERO).unwrap().time_us, 4);
    }

    #[test]
    fn workers_are_served_round_robin() {
        let q = FrameQueues::new(&["a".into(), "b".into()], 4);
        for t in 0..3 {
            q.push(frame(0, t));
        }
        q.push(frame(1, 10));
        let a = q.take(Duration::ZERO).unwrap();
        let b = q.take(Duration::ZERO).unwrap();
        assert_eq!((a.camera, b.camera), (0, 1));
    }

    #[test]
    fn the_rate_gate_keeps_one_frame_per_period() {
        let mut g = RateGate::new(5.0);
        let kept = (0..50).filter(|i| g.keep(*i as f64 / 25.0)).count();
        assert_eq!(kept, 10, "5 fps of 2 s of 25 fps");
    }

    #[test]
    fn keyframes_suffice_only_when_they_come_often_enough() {
        let mut p = KeyframePolicy::default();
        let r: Vec<Option<bool>> = (0..4).map(|i| p.keyframe(i as f64 * 0.2, 5.0)).collect();
        assert_eq!(r, [None, Some(true), Some(true), Some(true)]);
        let mut p = KeyframePolicy::default();
        let r: Vec<Option<bool>> = (0..4).map(|i| p.keyframe(i as f64 * 2.0, 5.0)).collect();
        assert_eq!(r, [None, Some(false), Some(false), Some(false)]);
        // A longer interval later switches back to a full decode.
        assert_eq!(p.keyframe(6.2, 5.0), Some(false));
        let mut p = KeyframePolicy::default();
        p.keyframe(0.0, 5.0);
        p.keyframe(0.2, 5.0);
        assert_eq!(p.keyframe(1.2, 5.0), Some(false));
    }
}
