//! One thread per camera: a supervisor around a disposable connection (MediaMTX's pattern).
//!
//! The supervisor connects, records until the connection fails, reports the hole as a gap
//! with its cause, waits a capped exponential backoff and connects afresh; it never patches a
//! half-broken connection. A connection records into segments cut at keyframes; its first
//! keyframe anchors media time to the wall clock, and every packet checks the two against each
//! other: a disagreement beyond the tolerance (a clock step, a camera whose timestamps jump)
//! ends the connection as a `clock_jump` gap rather than stretching a file.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use ffmpeg_next::{Packet, Rational};
use tracing::{info, warn};

use super::segment::{SegmentError, SegmentWriter};
use super::source::{Connection, ReadError};
use super::{CameraConfig, ClosedSegment, GapCause, MediaEvent};

/// Media time over which the first segment's wall-clock anchor is refined (see
/// `Recording::refine_anchor`) before the segment is announced.
const ANCHOR_SETTLE: f64 = 1.0;

/// First reconnect delay; doubles up to the camera's `reconnect_max_backoff`.
pub const BACKOFF_START: Duration = Duration::from_millis(250);

/// What every camera thread shares with the daemon.
#[derive(Clone)]
pub struct RecorderEnv {
    pub data_dir: PathBuf,
    pub timezone: Tz,
    pub events: Sender<MediaEvent>,
    /// Set on SIGTERM/SIGINT.
    pub stop: Arc<AtomicBool>,
    /// Set while the disk is full and nothing may be deleted (R6): no new segments.
    pub disk_full: Arc<AtomicBool>,
    /// When the daemon started: where the first gap starts if the camera never comes up.
    pub started: DateTime<Utc>,
}

/// Starts the camera's thread (tools and tests; the daemon runs [`job`] under its supervisor).
pub fn spawn(cfg: CameraConfig, env: RecorderEnv) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name(format!("camera-{}", cfg.id))
        .spawn(move || Supervisor::new(cfg, env).run(&|| {}))
}

/// The camera's recording loop as a job that can be started again after a panic: what it knows
/// (where recording last ended, whether a gap is open, which segment was open) survives, so a
/// restart abandons the open segment (the store repairs it) and opens a `daemon_down` gap from
/// where recording stopped. `beat` is called as the loop goes round (at most every 500 ms).
pub fn job(cfg: CameraConfig, env: RecorderEnv) -> impl FnMut(&dyn Fn()) + Send + 'static {
    let mut camera = Supervisor::new(cfg, env);
    move |beat: &dyn Fn()| camera.run(beat)
}

struct Supervisor {
    cfg: CameraConfig,
    env: RecorderEnv,
    /// Wall time where recording last stopped (a gap, if one opens, starts here).
    last_end: DateTime<Utc>,
    /// A gap has been reported and no segment has started since.
    in_gap: bool,
    /// The segment being written, until its closing (or abandoning) was sent to the store.
    open_path: Option<PathBuf>,
    /// `run` was entered before (this is a restart after a failure).
    started_before: bool,
    last_beat: Option<Instant>,
}

/// How a connection ended.
struct Ended {
    cause: Option<GapCause>,
    detail: String,
    /// The connection recorded at least one segment.
    recorded: bool,
    /// Reconnecting makes no sense (a file that ended).
    final_: bool,
}

impl Supervisor {
    fn new(cfg: CameraConfig, env: RecorderEnv) -> Supervisor {
        let last_end = env.started;
        Supervisor {
            cfg,
            env,
            last_end,
            in_gap: false,
            open_path: None,
            started_before: false,
            last_beat: None,
        }
    }

    fn stopping(&self) -> bool {
        self.env.stop.load(Ordering::SeqCst)
    }

    fn run(&mut self, beat: &dyn Fn()) {
        if std::mem::replace(&mut self.started_before, true) {
            self.after_failure();
        }
        info!(camera = %self.cfg.id, url = %self.cfg.display_url(), "camera starting");
        let mut backoff = BACKOFF_START;
        while !self.stopping() {
            self.beat(beat);
            if self.env.disk_full.load(Ordering::SeqCst) {
                self.open_gap(
                    GapCause::DiskFull,
                    "disk full; recording paused to protect retention (R6)",
                );
                self.sleep(Duration::from_millis(500));
                continue;
            }
            let ended = self.connect_and_record(beat);
            if let Some(cause) = ended.cause {
                if ended.recorded || !self.in_gap {
                    warn!(camera = %self.cfg.id, %cause, detail = %ended.detail, "recording interrupted");
                }
                self.open_gap(cause, &ended.detail);
            }
            if ended.final_ || self.stopping() {
                break;
            }
            if ended.recorded {
                backoff = BACKOFF_START;
            }
            self.sleep(backoff);
            backoff = (backoff * 2).min(self.cfg.reconnect_max_backoff);
        }
        info!(camera = %self.cfg.id, "camera stopped");
    }

    /// The last run ended in a panic: the segment it had open is abandoned to the store (which
    /// repairs it and knows its true end), and the time until recording resumes is a gap.
    fn after_failure(&mut self) {
        if let Some(path) = self.open_path.take() {
            self.send(MediaEvent::SegmentAbandoned {
                camera: self.cfg.id.clone(),
                path,
            });
            // The store starts the gap at the repaired segment's end, when that is earlier.
            self.last_end = Utc::now();
            self.in_gap = false;
        }
        self.open_gap(
            GapCause::DaemonDown,
            "the camera's recording job failed and was started again",
        );
    }

    fn beat(&mut self, beat: &dyn Fn()) {
        if self
            .last_beat
            .is_none_or(|t| t.elapsed() >= Duration::from_millis(500))
        {
            self.last_beat = Some(Instant::now());
            beat();
        }
    }

    fn open_gap(&mut self, cause: GapCause, detail: &str) {
        if self.in_gap {
            return;
        }
        self.in_gap = true;
        self.send(MediaEvent::GapOpened {
            camera: self.cfg.id.clone(),
            start: self.last_end,
            cause,
            detail: detail.to_string(),
            detected: Utc::now(),
        });
    }

    fn send(&self, ev: MediaEvent) {
        // The store outlives the cameras; a send error means it is gone and we are stopping.
        let _ = self.env.events.send(ev);
    }

    fn sleep(&self, d: Duration) {
        let until = Instant::now() + d;
        while !self.stopping() {
            let now = Instant::now();
            if now >= until {
                break;
            }
            std::thread::sleep((until - now).min(Duration::from_millis(50)));
        }
    }

    fn connect_and_record(&mut self, beat: &dyn Fn()) -> Ended {
        let mut conn = match Connection::open(&self.cfg, self.env.stop.clone()) {
            Ok(c) => c,
            Err(e) => return self.ended_by(e.into(), false),
        };
        let stream_id = new_stream_id();
        let mut rec = Recording {
            stream_id,
            seq: 0,
            anchor: None,
            anchor_frozen: false,
            segment: None,
            tb: conn.time_base,
            frame: conn.frame_duration,
        };
        let result = self.record(&mut conn, &mut rec, beat);
        // Whatever ended the connection, close the open segment cleanly.
        let closed_ok = self.close_segment(&mut rec, None);
        let recorded = rec.seq > 0 || rec.segment.is_some();
        match (result, closed_ok) {
            (Err(e), _) => self.ended_by(e, recorded),
            (Ok(()), Err(e)) => self.ended_by(e, recorded),
            (Ok(()), Ok(())) => Ended {
                cause: None,
                detail: String::new(),
                recorded,
                final_: true,
            },
        }
    }

    fn ended_by(&self, e: StopReason, recorded: bool) -> Ended {
        let (cause, final_) = match &e {
            StopReason::Read(ReadError::Stopped) => (None, true),
            StopReason::Read(ReadError::Stalled(_)) => (Some(GapCause::Stall), false),
            StopReason::Read(ReadError::Lost(_)) => (Some(GapCause::CameraLost), false),
            StopReason::Read(ReadError::Ended) => (Some(GapCause::CameraLost), !self.is_looped_file()),
            StopReason::Read(ReadError::Unusable(_)) => (Some(GapCause::StreamError), false),
            StopReason::Segment(SegmentError::DiskFull { .. }) => (Some(GapCause::DiskFull), false),
            StopReason::Segment(SegmentError::Disk { .. }) => (Some(GapCause::DiskError), false),
            StopReason::Segment(SegmentError::Mux { .. }) => (Some(GapCause::StreamError), false),
            StopReason::ClockJump(_) => (Some(GapCause::ClockJump), false),
            StopReason::DiskFullFlag => (Some(GapCause::DiskFull), false),
        };
        Ended {
            cause,
            detail: e.to_string(),
            recorded,
            final_,
        }
    }

    fn is_looped_file(&self) -> bool {
        matches!(self.cfg.source, super::Source::File { looped: true, .. })
    }

    /// Reads and writes packets until something ends the connection.
    fn record(
        &mut self,
        conn: &mut Connection,
        rec: &mut Recording,
        beat: &dyn Fn(),
    ) -> Result<(), StopReason> {
        let segment_ticks = duration_to_ticks(self.cfg.segment, rec.tb);
        let tolerance = self.cfg.clock_tolerance.as_secs_f64();
        loop {
            self.beat(beat);
            let pkt = conn.read()?;
            let Some(pts) = pkt.pts().or(pkt.dts()) else {
                continue;
            };
            let now = Utc::now();
            if rec.segment.is_none() {
                if !pkt.is_key() {
                    continue; // a segment starts at a keyframe
                }
                if self.env.disk_full.load(Ordering::SeqCst) {
                    return Err(StopReason::DiskFullFlag);
                }
                let anchor = *rec.anchor.get_or_insert((now, pts));
                self.open_segment(conn, rec, &pkt, pts, anchor)?;
            } else if pkt.is_key() && rec.elapsed_ticks(pts) + rec.frame / 2 >= segment_ticks {
                self.close_segment(rec, Some(pts))?;
                if self.env.disk_full.load(Ordering::SeqCst) {
                    return Err(StopReason::DiskFullFlag);
                }
                let anchor = rec.anchor.unwrap_or((now, pts));
                self.open_segment(conn, rec, &pkt, pts, anchor)?;
            }
            rec.refine_anchor(now, pts);
            if let Some((wall0, pts0)) = rec.anchor {
                let expected = ticks_to_secs(pts - pts0, rec.tb);
                let actual = (now - wall0).as_seconds_f64();
                if (actual - expected).abs() > tolerance && self.realtime() {
                    return Err(StopReason::ClockJump(actual - expected));
                }
            }
            if let Some(seg) = &mut rec.segment {
                seg.end_pts = seg.end_pts.max(pts + packet_duration(&pkt, rec.frame));
                seg.writer.write(&pkt)?;
                if !seg.announced && ticks_to_secs(seg.end_pts - seg.start_pts, rec.tb) >= ANCHOR_SETTLE {
                    self.announce(rec);
                }
            }
        }
    }

    fn realtime(&self) -> bool {
        !matches!(self.cfg.source, super::Source::File { realtime: false, .. })
    }

    fn open_segment(
        &mut self,
        conn: &Connection,
        rec: &mut Recording,
        pkt: &Packet,
        pts: i64,
        anchor: (DateTime<Utc>, i64),
    ) -> Result<(), StopReason> {
        let start = anchor.0 + chrono_secs(ticks_to_secs(pts - anchor.1, rec.tb));
        let rel = segment_path(&self.cfg.id, start, self.env.timezone, &rec.stream_id, rec.seq);
        let abs = self.env.data_dir.join(&rel);
        let origin = pkt.dts().unwrap_or(pts);
        let writer = SegmentWriter::create(&abs, &conn.params, rec.tb, origin)?;
        if self.in_gap || rec.seq == 0 {
            info!(camera = %self.cfg.id, path = %abs.display(), codec = %conn.codec, "recording");
        }
        self.open_path = Some(rel.clone());
        rec.segment = Some(OpenSegment {
            writer,
            rel_path: rel,
            start_pts: pts,
            end_pts: pts,
            start,
            codec: conn.codec.clone(),
            announced: false,
        });
        if rec.anchor_frozen {
            self.announce(rec);
        }
        Ok(())
    }

    /// Tells the store the open segment exists, with its start on the (now frozen) anchor. A
    /// crash between creating the file and this is covered by start-up's scan for files the
    /// index does not know.
    fn announce(&mut self, rec: &mut Recording) {
        rec.anchor_frozen = true;
        let (wall0, pts0) = rec.anchor.unwrap_or((Utc::now(), 0));
        let Some(seg) = &mut rec.segment else {
            return;
        };
        if seg.announced {
            return;
        }
        seg.announced = true;
        seg.start = wall0 + chrono_secs(ticks_to_secs(seg.start_pts - pts0, rec.tb));
        self.in_gap = false;
        let ev = MediaEvent::SegmentOpened {
            camera: self.cfg.id.clone(),
            stream_id: rec.stream_id.clone(),
            stream_seq: rec.seq,
            path: seg.rel_path.clone(),
            codec: seg.codec.clone(),
            start: seg.start,
        };
        self.send(ev);
    }

    /// Closes the open segment (if any) at `end_pts` (default: after its last frame).
    fn close_segment(&mut self, rec: &mut Recording, end_pts: Option<i64>) -> Result<(), StopReason> {
        self.announce(rec);
        let Some(seg) = rec.segment.take() else {
            return Ok(());
        };
        let end_pts = end_pts.unwrap_or(seg.end_pts).max(seg.start_pts);
        let (anchor_wall, anchor_pts) = rec.anchor.unwrap_or((seg.start, seg.start_pts));
        let end = anchor_wall + chrono_secs(ticks_to_secs(end_pts - anchor_pts, rec.tb));
        let media = Duration::from_secs_f64(ticks_to_secs(end_pts - seg.start_pts, rec.tb).max(0.0));
        let seq = rec.seq;
        rec.seq += 1;
        self.last_end = end;
        let result = match seg.writer.finish() {
            Ok(done) => {
                self.send(MediaEvent::SegmentClosed(ClosedSegment {
                    camera: self.cfg.id.clone(),
                    stream_id: rec.stream_id.clone(),
                    stream_seq: seq,
                    path: seg.rel_path,
                    codec: seg.codec,
                    start: seg.start,
                    end,
                    media_duration: media,
                    bytes: done.bytes,
                    sha256: done.sha256,
                }));
                Ok(())
            }
            Err(e) => {
                // The file holds what was flushed; the store repairs and indexes it.
                self.send(MediaEvent::SegmentAbandoned {
                    camera: self.cfg.id.clone(),
                    path: seg.rel_path,
                });
                Err(e.into())
            }
        };
        self.open_path = None;
        result
    }
}

/// Why a connection stopped recording.
#[derive(Debug, thiserror::Error)]
enum StopReason {
    #[error("{0}")]
    Read(#[from] ReadError),
    #[error("{0}")]
    Segment(#[from] SegmentError),
    #[error("media time and wall clock differ by {0:.1} s")]
    ClockJump(f64),
    #[error("disk full; recording paused to protect retention (R6)")]
    DiskFullFlag,
}

struct Recording {
    stream_id: String,
    seq: u32,
    /// (wall clock, pts) mapping media time to the wall clock for this connection.
    anchor: Option<(DateTime<Utc>, i64)>,
    /// The anchor no longer moves (see `refine_anchor`).
    anchor_frozen: bool,
    segment: Option<OpenSegment>,
    tb: Rational,
    frame: i64,
}

impl Recording {
    /// Until the first segment is announced, moves the anchor earlier whenever a packet arrives
    /// earlier than the anchor predicts. FFmpeg probes a live stream before handing out its
    /// first packets, so the first keyframe is read late; the packets after the probe buffer
    /// arrive on time, and the earliest arrival is the best estimate of capture time.
    fn refine_anchor(&mut self, now: DateTime<Utc>, pts: i64) {
        if self.anchor_frozen {
            return;
        }
        if let Some((wall0, pts0)) = &mut self.anchor {
            let candidate = now - chrono_secs(ticks_to_secs(pts - *pts0, self.tb));
            if candidate < *wall0 {
                *wall0 = candidate;
            }
        }
    }

    fn elapsed_ticks(&self, pts: i64) -> i64 {
        self.segment.as_ref().map(|s| pts - s.start_pts).unwrap_or(0)
    }
}

struct OpenSegment {
    writer: SegmentWriter,
    rel_path: PathBuf,
    start_pts: i64,
    /// End of the last frame written so far.
    end_pts: i64,
    start: DateTime<Utc>,
    codec: String,
    /// `SegmentOpened` has been sent.
    announced: bool,
}

fn packet_duration(pkt: &Packet, frame: i64) -> i64 {
    if pkt.duration() > 0 { pkt.duration() } else { frame }
}

fn ticks_to_secs(ticks: i64, tb: Rational) -> f64 {
    ticks as f64 * tb.numerator() as f64 / tb.denominator().max(1) as f64
}

fn duration_to_ticks(d: Duration, tb: Rational) -> i64 {
    (d.as_secs_f64() * tb.denominator() as f64 / tb.numerator().max(1) as f64).round() as i64
}

fn chrono_secs(s: f64) -> chrono::Duration {
    chrono::Duration::microseconds((s * 1e6).round() as i64)
}

/// A fresh id for one camera connection: 8 hex digits.
fn new_stream_id() -> String {
    use ring::rand::{SecureRandom, SystemRandom};
    let mut b = [0u8; 4];
    if SystemRandom::new().fill(&mut b).is_err() {
        let t = Utc::now().timestamp_subsec_nanos();
        b = t.to_be_bytes();
    }
    hex::encode(b)
}

/// `video/{camera}/{YYYY-MM-DD}/{HHMMSS}-{mmm}_{stream}_{seq}.mp4`, date and time local to `tz`.
pub fn segment_path(camera: &str, start: DateTime<Utc>, tz: Tz, stream_id: &str, seq: u32) -> PathBuf {
    let local = start.with_timezone(&tz);
    Path::new("video")
        .join(camera)
        .join(local.format("%Y-%m-%d").to_string())
        .join(format!("{}_{stream_id}_{seq:04}.mp4", local.format("%H%M%S-%3f")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_paths_use_the_local_date() {
        let t = DateTime::parse_from_rfc3339("2026-11-22T17:30:05.250Z")
            .unwrap()
            .to_utc();
        let p = segment_path("front", t, chrono_tz::Asia::Shanghai, "0a1b2c3d", 7);
        assert_eq!(
            p,
            Path::new("video/front/2026-11-23/013005-250_0a1b2c3d_0007.mp4")
        );
    }

    fn camera(tx: std::sync::mpsc::Sender<MediaEvent>) -> Supervisor {
        let text = "[device]\nid = \"t\"\n[[camera]]\nid = \"front\"\nurl = \"rtsp://127.0.0.1:9/cam\"\n";
        let config = crate::config::Config::parse(text, Path::new("/tmp/t.toml")).unwrap();
        Supervisor::new(
            config.cameras[0].clone(),
            RecorderEnv {
                data_dir: PathBuf::from("/tmp"),
                timezone: chrono_tz::Asia::Shanghai,
                events: tx,
                stop: Arc::new(AtomicBool::new(true)),
                disk_full: Arc::new(AtomicBool::new(false)),
                started: Utc::now(),
            },
        )
    }

    #[test]
    fn a_restart_after_a_panic_abandons_the_open_segment_and_opens_a_gap() {
        let (tx, rx) = std::sync::mpsc::channel();
        let mut cam = camera(tx);
        cam.run(&|| {}); // the first run (the stop flag is set: it returns at once)
        let open = PathBuf::from("video/front/2026-12-01/100000-000_0a1b2c3d_0003.mp4");
        cam.open_path = Some(open.clone()); // as a panic mid-segment leaves it
        cam.run(&|| {}); // what the supervisor does after the panic
        let events: Vec<MediaEvent> = rx.try_iter().collect();
        assert!(
            matches!(&events[0], MediaEvent::SegmentAbandoned { camera, path } if camera == "front" && *path == open),
            "{events:?}"
        );
        assert!(
            matches!(
                &events[1],
                MediaEvent::GapOpened {
                    cause: GapCause::DaemonDown,
                    ..
                }
            ),
            "{events:?}"
        );
        assert_eq!(events.len(), 2, "{events:?}");
        assert!(cam.open_path.is_none());
    }

    #[test]
    fn ticks_round_trip() {
        let tb = Rational::new(1, 90_000);
        assert_eq!(duration_to_ticks(Duration::from_secs(60), tb), 5_400_000);
        assert!((ticks_to_secs(45_000, tb) - 0.5).abs() < 1e-9);
    }
}
