//! One fragmented-MP4 segment file: stream copy (no transcoding), started at a keyframe,
//! fragments written and flushed at least every second, fdatasync'ed about every second, so a
//! power cut loses at most ~2 s. The sha256 and size are computed while writing: the muxer
//! writes through a non-seekable sink, so the bytes hashed are exactly the bytes on disk.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ffmpeg::format::context::StreamIo;
use ffmpeg::{Packet, Rational, codec};
use ffmpeg_next as ffmpeg;
use ring::digest::{Context, SHA256};
use thiserror::Error;

/// Longest stretch of media kept in the muxer before a fragment is written.
const FRAGMENT: Duration = Duration::from_secs(1);
/// How often written fragments are forced to the disk.
const SYNC_EVERY: Duration = Duration::from_secs(1);

#[derive(Debug, Error)]
pub enum SegmentError {
    /// The disk is full (ENOSPC / EDQUOT).
    #[error("{path}: disk full: {source}")]
    DiskFull {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Any other failure to create, write or sync the file.
    #[error("{path}: {source}")]
    Disk {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The muxer refused the stream or a packet.
    #[error("{path}: the MP4 muxer refused the stream: {message}")]
    Mux { path: PathBuf, message: String },
}

impl SegmentError {
    fn from_io(path: &Path, e: io::Error) -> SegmentError {
        let full = matches!(e.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT))
            || e.kind() == io::ErrorKind::StorageFull;
        if full {
            SegmentError::DiskFull {
                path: path.to_path_buf(),
                source: e,
            }
        } else {
            SegmentError::Disk {
                path: path.to_path_buf(),
                source: e,
            }
        }
    }
}

/// The file end of the muxer: writes, hashes and counts, and remembers the first I/O error so
/// it can be told apart from a muxer error.
struct Sink {
    file: File,
    hash: Context,
    bytes: u64,
    error: Option<io::Error>,
}

#[derive(Clone)]
struct SinkWriter(Arc<Mutex<Sink>>);

impl Write for SinkWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut sink = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if sink.error.is_some() {
            return Err(io::Error::other("an earlier write to this segment failed"));
        }
        match sink.file.write_all(buf) {
            Ok(()) => {
                sink.hash.update(buf);
                sink.bytes += buf.len() as u64;
                Ok(buf.len())
            }
            Err(e) => {
                let kind = e.kind();
                let raw = e.raw_os_error();
                sink.error.get_or_insert(e);
                Err(match raw {
                    Some(code) => io::Error::from_raw_os_error(code),
                    None => io::Error::from(kind),
                })
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// What a finished segment file is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finished {
    pub bytes: u64,
    pub sha256: String,
}

/// A segment being written.
pub struct SegmentWriter {
    octx: ffmpeg::format::context::Output,
    sink: Arc<Mutex<Sink>>,
    path: PathBuf,
    in_tb: Rational,
    out_tb: Rational,
    /// The first packet's DTS: timestamps in the file start from 0 here.
    origin: i64,
    last_dts: Option<i64>,
    last_sync: Instant,
}

impl SegmentWriter {
    /// Creates the file and writes the MP4 header. `params` are the camera stream's codec
    /// parameters, `in_tb` its time base, `origin` the DTS of the first (key)frame.
    pub fn create(
        path: &Path,
        params: &codec::Parameters,
        in_tb: Rational,
        origin: i64,
    ) -> Result<SegmentWriter, SegmentError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| SegmentError::from_io(path, e))?;
        }
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(|e| SegmentError::from_io(path, e))?;
        let sink = Arc::new(Mutex::new(Sink {
            file,
            hash: Context::new(&SHA256),
            bytes: 0,
            error: None,
        }));
        let mux_err = |e: ffmpeg::Error| SegmentError::Mux {
            path: path.to_path_buf(),
            message: e.to_string(),
        };
        let io = StreamIo::from_write(SinkWriter(sink.clone())).map_err(mux_err)?;
        let mut octx = ffmpeg::format::output_to_stream(io, Some(&path.to_string_lossy()), Some("mp4"))
            .map_err(mux_err)?;
        {
            let mut ost = octx
                .add_stream(ffmpeg::encoder::find(codec::Id::None))
                .map_err(mux_err)?;
            ost.set_parameters(params.clone());
            ost.set_time_base(in_tb);
            // SAFETY: the stream's codec parameters are owned by the output context we hold.
            // The camera's codec tag (from RTSP/another container) means nothing to MP4; 0 lets
            // the muxer pick its own (avc1, hev1, …) instead of refusing the stream.
            unsafe {
                (*ost.parameters().as_mut_ptr()).codec_tag = 0;
            }
        }
        // SAFETY: setting a flag on the context we own: avio_flush after every packet, so each
        // finished fragment reaches the file at once.
        unsafe {
            (*octx.as_mut_ptr()).flags |= ffmpeg::ffi::AVFMT_FLAG_FLUSH_PACKETS;
        }
        let mut opts = ffmpeg::Dictionary::new();
        opts.set("movflags", "frag_keyframe+empty_moov+default_base_moof");
        opts.set("frag_duration", &FRAGMENT.as_micros().to_string());
        let rest = octx.write_header_with(opts).map_err(|e| {
            let err = sink_error(&sink, path);
            err.unwrap_or_else(|| mux_err(e))
        })?;
        drop(rest);
        let out_tb = octx.stream(0).map(|s| s.time_base()).unwrap_or(in_tb);
        Ok(SegmentWriter {
            octx,
            sink,
            path: path.to_path_buf(),
            in_tb,
            out_tb,
            origin,
            last_dts: None,
            last_sync: Instant::now(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes one packet of the camera's video stream (timestamps in the stream's time base,
    /// on the connection's continuous timeline).
    pub fn write(&mut self, pkt: &Packet) -> Result<(), SegmentError> {
        let mut out = pkt.clone();
        let dts = pkt.dts().or(pkt.pts()).unwrap_or(self.origin);
        // The MP4 muxer refuses DTS that do not increase; cameras occasionally repeat one.
        let dts = match self.last_dts {
            Some(last) if dts <= last => last + 1,
            _ => dts,
        };
        let pts = pkt.pts().unwrap_or(dts).max(dts);
        self.last_dts = Some(dts);
        out.set_dts(Some(dts - self.origin));
        out.set_pts(Some(pts - self.origin));
        out.set_stream(0);
        out.set_position(-1);
        out.rescale_ts(self.in_tb, self.out_tb);
        if let Err(e) = out.write(&mut self.octx) {
            return Err(self.error_for(e));
        }
        if self.last_sync.elapsed() >= SYNC_EVERY {
            self.sync()?;
        }
        Ok(())
    }

    /// Forces what was written so far to the disk.
    pub fn sync(&mut self) -> Result<(), SegmentError> {
        self.last_sync = Instant::now();
        let sink = self.sink.lock().unwrap_or_else(|e| e.into_inner());
        sink.file
            .sync_data()
            .map_err(|e| SegmentError::from_io(&self.path, e))
    }

    /// Writes the trailer, syncs and closes the file.
    pub fn finish(mut self) -> Result<Finished, SegmentError> {
        if let Err(e) = self.octx.write_trailer() {
            return Err(self.error_for(e));
        }
        // Dropping the output context flushes the sink's last bytes.
        let SegmentWriter { octx, sink, path, .. } = self;
        drop(octx);
        let sink = Arc::try_unwrap(sink)
            .map_err(|_| SegmentError::Mux {
                path: path.clone(),
                message: "the muxer still holds the file".into(),
            })?
            .into_inner()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(e) = sink.error {
            return Err(SegmentError::from_io(&path, e));
        }
        sink.file
            .sync_all()
            .map_err(|e| SegmentError::from_io(&path, e))?;
        Ok(Finished {
            bytes: sink.bytes,
            sha256: hex::encode(sink.hash.finish().as_ref()),
        })
    }

    fn error_for(&self, e: ffmpeg::Error) -> SegmentError {
        sink_error(&self.sink, &self.path).unwrap_or_else(|| SegmentError::Mux {
            path: self.path.clone(),
            message: e.to_string(),
        })
    }
}

/// The sink's first I/O error, if any. It stays recorded: once a write failed the file's tail
/// is uncertain, so the segment can only be finished by repairing it from disk.
fn sink_error(sink: &Arc<Mutex<Sink>>, path: &Path) -> Option<SegmentError> {
    let s = sink.lock().unwrap_or_else(|e| e.into_inner());
    s.error.as_ref().map(|e| {
        let copy = match e.raw_os_error() {
            Some(code) => io::Error::from_raw_os_error(code),
            None => io::Error::new(e.kind(), e.to_string()),
        };
        SegmentError::from_io(path, copy)
    })
}

/// sha256 (hex) and size of a file on disk.
pub fn hash_file(path: &Path) -> io::Result<Finished> {
    let mut f = File::open(path)?;
    let mut ctx = Context::new(&SHA256);
    let mut buf = vec![0u8; 1 << 16];
    let mut bytes = 0u64;
    loop {
        let n = io::Read::read(&mut f, &mut buf)?;
        if n == 0 {
            break;
        }
        ctx.update(&buf[..n]);
        bytes += n as u64;
    }
    Ok(Finished {
        bytes,
        sha256: hex::encode(ctx.finish().as_ref()),
    })
}
