//! Opening a camera and reading its video packets: RTSP (over TCP by default), V4L2 and files.
//!
//! FFmpeg's blocking calls are bounded by an interrupt callback (the [`Watchdog`]): it aborts
//! an open that takes longer than the connect timeout, a read that waits longer than the stall
//! timeout, and anything at all once the daemon is stopping. End of stream and I/O errors are
//! both "the camera is gone" for live sources (FFmpeg reports a killed server as a clean end).
//!
//! Files replay like a camera: paced at real time from their timestamps, and when looped the
//! timestamps keep increasing across loops, so the recorder sees one continuous stream.

use std::ffi::CString;
use std::path::PathBuf;
use std::ptr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ffmpeg::{Packet, Rational, codec, media};
use ffmpeg_next as ffmpeg;
use thiserror::Error;

use super::config::{CameraConfig, RtspTransport, Source};

/// Why reading stopped.
#[derive(Debug, Error)]
pub enum ReadError {
    #[error("stopping")]
    Stopped,
    #[error("no packets for {0:?}")]
    Stalled(Duration),
    #[error("{0}")]
    Lost(String),
    /// A file that is not looped reached its end.
    #[error("end of file")]
    Ended,
    /// The stream cannot be recorded (no video stream, …).
    #[error("{0}")]
    Unusable(String),
}

/// Bounds FFmpeg's blocking calls: polled by FFmpeg from inside them (about every 100 ms).
pub struct Watchdog {
    base: Instant,
    /// µs since `base` after which blocking calls are aborted.
    deadline_us: AtomicU64,
    fired: AtomicBool,
    stop: Arc<AtomicBool>,
}

impl Watchdog {
    pub fn new(stop: Arc<AtomicBool>) -> Arc<Watchdog> {
        Arc::new(Watchdog {
            base: Instant::now(),
            deadline_us: AtomicU64::new(u64::MAX),
            fired: AtomicBool::new(false),
            stop,
        })
    }

    /// Blocking calls from now on may take at most `timeout`.
    pub fn arm(&self, timeout: Duration) {
        let at = self.base.elapsed() + timeout;
        self.deadline_us.store(at.as_micros() as u64, Ordering::SeqCst);
        self.fired.store(false, Ordering::SeqCst);
    }

    /// True when the last abort was the deadline (not the stop flag).
    pub fn fired(&self) -> bool {
        self.fired.load(Ordering::SeqCst)
    }

    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    fn should_abort(&self) -> bool {
        if self.stopping() {
            return true;
        }
        if self.base.elapsed().as_micros() as u64 > self.deadline_us.load(Ordering::SeqCst) {
            self.fired.store(true, Ordering::SeqCst);
            return true;
        }
        false
    }
}

/// An open camera.
pub struct Connection {
    input: ffmpeg::format::context::Input,
    watchdog: Arc<Watchdog>,
    cfg: CameraConfig,
    video: usize,
    pub time_base: Rational,
    pub params: codec::Parameters,
    pub codec: String,
    /// Nominal frame duration in `time_base` units.
    pub frame_duration: i64,
    file: Option<FileReplay>,
    got_packet: bool,
}

/// Looping and pacing state of a file source.
struct FileReplay {
    path: PathBuf,
    looped: bool,
    realtime: bool,
    /// Added to the file's timestamps: grows by one file length per loop.
    offset: i64,
    first_dts: Option<i64>,
    last_dts: Option<i64>,
    /// (instant, dts) the pacing is measured from.
    pace_origin: Option<(Instant, i64)>,
}

impl Connection {
    /// Opens the camera. Blocks at most the connect timeout (twice, for open and stream
    /// probing), or until the daemon stops.
    pub fn open(cfg: &CameraConfig, stop: Arc<AtomicBool>) -> Result<Connection, ReadError> {
        let watchdog = Watchdog::new(stop);
        let mut opts = ffmpeg::Dictionary::new();
        let (url, format, file) = match &cfg.source {
            Source::Rtsp { url, transport } => {
                let t = match transport {
                    RtspTransport::Tcp => "tcp",
                    RtspTransport::Udp => "udp",
                };
                opts.set("rtsp_transport", t);
                // Socket I/O timeout in µs (FFmpeg 5 removed `stimeout`).
                opts.set("timeout", &cfg.connect_timeout.as_micros().to_string());
                opts.set("analyzeduration", "2000000");
                (url.clone(), None, None)
            }
            Source::V4l2 { device } => (device.to_string_lossy().into_owned(), Some("video4linux2"), None),
            Source::File {
                path,
                looped,
                realtime,
            } => (
                path.to_string_lossy().into_owned(),
                None,
                Some(FileReplay {
                    path: path.clone(),
                    looped: *looped,
                    realtime: *realtime,
                    offset: 0,
                    first_dts: None,
                    last_dts: None,
                    pace_origin: None,
                }),
            ),
        };
        for (k, v) in &cfg.input_options {
            opts.set(k, v);
        }
        watchdog.arm(cfg.connect_timeout * 2);
        let input = open_input(&url, format, opts, watchdog.clone()).map_err(|e| {
            if watchdog.stopping() {
                ReadError::Stopped
            } else if watchdog.fired() {
                ReadError::Lost(format!("no answer within {:?}", cfg.connect_timeout * 2))
            } else if matches!(e, ffmpeg::Error::InvalidData) {
                ReadError::Unusable(format!("{url}: not a stream the recorder can read: {e}"))
            } else {
                ReadError::Lost(format!("cannot open: {e}"))
            }
        })?;
        let stream = input
            .streams()
            .best(media::Type::Video)
            .ok_or_else(|| ReadError::Unusable("the source has no video stream".into()))?;
        let video = stream.index();
        let time_base = stream.time_base();
        let params = stream.parameters();
        let codec_id = params.id();
        let codec = codec_name(codec_id);
        let rate = Some(stream.avg_frame_rate())
            .filter(|r| r.numerator() > 0 && r.denominator() > 0)
            .or(Some(stream.rate()).filter(|r| r.numerator() > 0 && r.denominator() > 0));
        let frame_duration = rate
            .map(|r| {
                // One frame, 1/rate seconds, in time_base units.
                let num = time_base.denominator() as i64 * r.denominator() as i64;
                let den = time_base.numerator() as i64 * r.numerator() as i64;
                (num / den.max(1)).max(1)
            })
            .unwrap_or_else(|| {
                (time_base.denominator() as i64 / (25 * time_base.numerator().max(1) as i64)).max(1)
            });
        if codec_id == codec::Id::RAWVIDEO {
            return Err(ReadError::Unusable(
                "the camera delivers raw video, which cannot be recorded without transcoding; \
                 set input_options = { input_format = \"mjpeg\" } or \"h264\""
                    .into(),
            ));
        }
        Ok(Connection {
            input,
            watchdog,
            cfg: cfg.clone(),
            video,
            time_base,
            params,
            codec,
            frame_duration,
            file,
            got_packet: false,
        })
    }

    /// The next video packet, with timestamps on one continuous timeline for the life of this
    /// connection (files keep counting up across loops).
    pub fn read(&mut self) -> Result<Packet, ReadError> {
        let timeout = if self.got_packet {
            self.cfg.stall_timeout
        } else {
            // The first packet may take a while (probing, waiting for the camera).
            self.cfg.stall_timeout.max(self.cfg.connect_timeout)
        };
        // One deadline for the wait for the next video packet: retries and packets of other
        // streams do not extend it. Once it has fired, it stays fired: an interrupted RTSP read
        // may still hand out packets it had buffered, and those must not buy the stalled
        // camera another full timeout.
        if !self.watchdog.fired() {
            self.watchdog.arm(timeout);
        }
        loop {
            let mut pkt = Packet::empty();
            match pkt.read(&mut self.input) {
                Ok(()) => {}
                Err(ffmpeg::Error::Eof) => {
                    if self.watchdog.stopping() {
                        return Err(ReadError::Stopped);
                    }
                    match &self.file {
                        Some(f) if f.looped => {
                            self.restart_file()?;
                            continue;
                        }
                        Some(_) => return Err(ReadError::Ended),
                        None => return Err(ReadError::Lost("the camera ended the stream".into())),
                    }
                }
                Err(e) => {
                    if self.watchdog.stopping() {
                        return Err(ReadError::Stopped);
                    }
                    if self.watchdog.fired() {
                        // An interrupted RTSP read may come back as EAGAIN: the stall wins.
                        return Err(ReadError::Stalled(timeout));
                    }
                    if matches!(e, ffmpeg::Error::Other { errno } if errno == libc::EAGAIN) {
                        // V4L2 and some demuxers say "nothing yet": wait a little, same deadline.
                        std::thread::sleep(Duration::from_millis(5));
                        continue;
                    }
                    return Err(ReadError::Lost(e.to_string()));
                }
            }
            if pkt.stream() != self.video {
                continue;
            }
            self.got_packet = true;
            if let Some(f) = &mut self.file {
                let dts = pkt.dts().or(pkt.pts());
                if let Some(d) = dts {
                    f.first_dts.get_or_insert(d);
                    f.last_dts = Some(d);
                }
                let off = f.offset;
                pkt.set_dts(pkt.dts().map(|d| d + off));
                pkt.set_pts(pkt.pts().map(|p| p + off));
                if f.realtime
                    && let Some(d) = dts
                {
                    pace(f, d + off, self.time_base, &self.watchdog)?;
                }
            }
            return Ok(pkt);
        }
    }

    /// Reopens a looped file and moves the timestamp offset on by one file length.
    fn restart_file(&mut self) -> Result<(), ReadError> {
        let frame = self.frame_duration;
        let Some(f) = &mut self.file else {
            return Ok(());
        };
        let (Some(first), Some(last)) = (f.first_dts, f.last_dts) else {
            return Err(ReadError::Unusable(format!(
                "{}: no video packets to loop",
                f.path.display()
            )));
        };
        f.offset += last - first + frame;
        f.last_dts = None;
        let path = f.path.to_string_lossy().into_owned();
        self.watchdog.arm(self.cfg.connect_timeout);
        self.input = open_input(&path, None, ffmpeg::Dictionary::new(), self.watchdog.clone())
            .map_err(|e| ReadError::Lost(format!("cannot reopen for the next loop: {e}")))?;
        Ok(())
    }
}

/// Sleeps until the packet with `dts` is due, in short steps so a stop is noticed.
fn pace(f: &mut FileReplay, dts: i64, tb: Rational, watchdog: &Watchdog) -> Result<(), ReadError> {
    let (t0, d0) = *f.pace_origin.get_or_insert((Instant::now(), dts));
    let ticks = (dts - d0).max(0) as f64;
    let due = t0 + Duration::from_secs_f64(ticks * tb.numerator() as f64 / tb.denominator() as f64);
    loop {
        if watchdog.stopping() {
            return Err(ReadError::Stopped);
        }
        let now = Instant::now();
        if now >= due {
            return Ok(());
        }
        std::thread::sleep((due - now).min(Duration::from_millis(100)));
    }
}

/// Lower-case codec name as stored in the index (`h264`, `hevc`, `mjpeg`, …).
pub fn codec_name(id: codec::Id) -> String {
    ffmpeg::decoder::find(id)
        .map(|c| c.name().to_string())
        .unwrap_or_else(|| format!("{id:?}").to_lowercase())
}

/// `avformat_open_input` + `avformat_find_stream_info` with an interrupt callback, options and
/// an optional forced input format (needed for V4L2 devices).
fn open_input(
    url: &str,
    format: Option<&str>,
    options: ffmpeg::Dictionary,
    watchdog: Arc<Watchdog>,
) -> Result<ffmpeg::format::context::Input, ffmpeg::Error> {
    let c_url = CString::new(url).map_err(|_| ffmpeg::Error::InvalidData)?;
    let c_format = format
        .map(CString::new)
        .transpose()
        .map_err(|_| ffmpeg::Error::InvalidData)?;
    // SAFETY: this mirrors ffmpeg-next's own `input_with_interrupt_and_dictionary`, plus the
    // input format. The interrupt closure is owned by the guard, which the returned `Input`
    // keeps alive for as long as the context exists; on failure `avformat_open_input` frees
    // the context and the guard frees the closure.
    unsafe {
        let mut ps = ffmpeg::ffi::avformat_alloc_context();
        if ps.is_null() {
            return Err(ffmpeg::Error::Other { errno: libc::ENOMEM });
        }
        let interrupt = ffmpeg::util::interrupt::new(Box::new(move || watchdog.should_abort()));
        (*ps).interrupt_callback = interrupt.interrupt;
        let fmt = match &c_format {
            Some(name) => {
                let f = ffmpeg::ffi::av_find_input_format(name.as_ptr());
                if f.is_null() {
                    ffmpeg::ffi::avformat_free_context(ps);
                    return Err(ffmpeg::Error::DemuxerNotFound);
                }
                f
            }
            None => ptr::null(),
        };
        let mut opts = options.disown();
        let res = ffmpeg::ffi::avformat_open_input(&mut ps, c_url.as_ptr(), fmt as _, &mut opts);
        ffmpeg::Dictionary::own(opts);
        if res < 0 {
            return Err(ffmpeg::Error::from(res));
        }
        let res = ffmpeg::ffi::avformat_find_stream_info(ps, ptr::null_mut());
        if res < 0 {
            ffmpeg::ffi::avformat_close_input(&mut ps);
            return Err(ffmpeg::Error::from(res));
        }
        Ok(ffmpeg::format::context::Input::wrap_with_interrupt(
            ps,
            interrupt.guard,
        ))
    }
}
