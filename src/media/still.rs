//! A still picture of a camera: the last keyframe of its newest segment (closed or still being
//! written), decoded and encoded as JPEG. Used by `snapshot.request` (issue 10) and the status
//! page's thumbnails.
//!
//! Never touches the recorder: the segment file is opened read-only by its own demuxer. A
//! segment being written is a fragmented MP4 whose flushed fragments are readable; a torn last
//! fragment just ends the read. When the newest segment has no whole keyframe yet (it opened
//! less than a fragment ago), the one before it is used.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use ffmpeg::{Packet, Rational, codec, format, frame, media, software::scaling};
use ffmpeg_next as ffmpeg;
use rusqlite::{Connection, params};
use thiserror::Error;

use crate::vision::image::BgrImage;

/// JPEG quality of a still.
const QUALITY: i32 = 90;
/// How many of the newest segments are tried before giving up.
const TRY_SEGMENTS: usize = 2;

/// A camera's picture.
#[derive(Clone, PartialEq, Eq)]
pub struct Still {
    pub jpeg: Vec<u8>,
    /// When the keyframe was recorded (segment start + its media timestamp).
    pub time: DateTime<Utc>,
    pub width: u32,
    pub height: u32,
}

impl std::fmt::Debug for Still {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Still({}x{} at {}, {} bytes)",
            self.width,
            self.height,
            self.time,
            self.jpeg.len()
        )
    }
}

#[derive(Debug, Error)]
pub enum StillError {
    #[error("camera {camera:?} has no recorded segment")]
    NoSegment { camera: String },
    #[error("reading the segment index: {0}")]
    Db(#[from] rusqlite::Error),
    #[error("{path}: {message}")]
    Media { path: PathBuf, message: String },
    #[error("{path}: no whole keyframe in the file")]
    NoKeyframe { path: PathBuf },
}

/// The newest picture of `camera`: the last keyframe of its newest segment that has one.
pub fn latest_jpeg(data_dir: &Path, camera: &str, conn: &Connection) -> Result<Still, StillError> {
    let mut stmt = conn.prepare_cached(
        "SELECT path, start_us FROM segments
         WHERE camera = ?1 AND state IN ('recording', 'closed', 'recovered')
         ORDER BY start_us DESC, id DESC LIMIT ?2",
    )?;
    let rows = stmt
        .query_map(params![camera, TRY_SEGMENTS as i64], |r| {
            Ok((PathBuf::from(r.get::<_, String>(0)?), r.get::<_, i64>(1)?))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut last_err = None;
    for (rel, start_us) in rows {
        match still_of_file(&data_dir.join(&rel), start_us) {
            Ok(s) => return Ok(s),
            Err(e) => last_err = Some(e),
        }
    }
    Err(last_err.unwrap_or_else(|| StillError::NoSegment {
        camera: camera.to_string(),
    }))
}

/// The last keyframe of a segment file whose media time 0 is `start_us`.
pub fn still_of_file(path: &Path, start_us: i64) -> Result<Still, StillError> {
    let media = |message: String| StillError::Media {
        path: path.to_path_buf(),
        message,
    };
    let fe = |what: &'static str| {
        move |e: ffmpeg::Error| StillError::Media {
            path: path.to_path_buf(),
            message: format!("{what}: {e}"),
        }
    };
    ffmpeg::init().map_err(fe("ffmpeg init"))?;
    let mut input = format::input(path).map_err(fe("open"))?;
    let (index, tb, params) = {
        let stream = input
            .streams()
            .best(media::Type::Video)
            .ok_or_else(|| media("no video stream".into()))?;
        (stream.index(), stream.time_base(), stream.parameters())
    };
    let (first_ts, key) = last_keyframe(&mut input, index).ok_or_else(|| StillError::NoKeyframe {
        path: path.to_path_buf(),
    })?;
    let frame = decode_one(params, &key).map_err(|e| media(format!("decode: {e}")))?;
    let bgr = to_bgr(&frame).map_err(|e| media(format!("convert: {e}")))?;
    let jpeg = bgr
        .encode_jpeg(QUALITY)
        .map_err(|e| media(format!("encode: {e}")))?;
    // Media time from the segment's first frame (its start): with B-frames the first PTS is
    // not 0.
    let offset_us = key
        .pts()
        .or(key.dts())
        .map(|t| rescale_us(t - first_ts, tb))
        .unwrap_or(0)
        .max(0);
    let time = DateTime::from_timestamp_micros(start_us.saturating_add(offset_us))
        .ok_or_else(|| media(format!("time {start_us} + {offset_us} µs out of range")))?;
    Ok(Still {
        jpeg,
        time,
        width: bgr.width as u32,
        height: bgr.height as u32,
    })
}

/// Reads the whole stream and keeps its first timestamp and its last keyframe packet. A read
/// error (a torn fragment at the end of a file being written) ends the read like the end of the
/// file.
fn last_keyframe(input: &mut format::context::Input, index: usize) -> Option<(i64, Packet)> {
    let mut last = None;
    let mut first: Option<i64> = None;
    let mut pkt = Packet::empty();
    loop {
        match pkt.read(input) {
            Ok(()) => {
                if pkt.stream() != index {
                    continue;
                }
                if first.is_none() {
                    first = pkt.pts().or(pkt.dts());
                }
                if pkt.is_key() && !pkt.is_corrupt() && pkt.size() > 0 {
                    last = Some(pkt.clone());
                }
            }
            Err(ffmpeg::Error::Other { errno }) if errno == libc::EAGAIN => continue,
            Err(_) => break,
        }
    }
    last.map(|k| (first.unwrap_or(0), k))
}

/// Decodes one keyframe on its own (it needs no other frame).
fn decode_one(params: codec::Parameters, key: &Packet) -> Result<frame::Video, ffmpeg::Error> {
    let ctx = codec::Context::from_parameters(params)?;
    let mut dec = ctx.decoder().video()?;
    dec.send_packet(key)?;
    dec.send_eof()?;
    let mut frame = frame::Video::empty();
    dec.receive_frame(&mut frame)?;
    Ok(frame)
}

/// Packed BGR24 of a decoded frame.
fn to_bgr(frame: &frame::Video) -> Result<BgrImage, String> {
    let (w, h) = (frame.width(), frame.height());
    let mut sws = scaling::Context::get(
        frame.format(),
        w,
        h,
        format::Pixel::BGR24,
        w,
        h,
        scaling::Flags::BILINEAR,
    )
    .map_err(|e| e.to_string())?;
    let mut out = frame::Video::empty();
    sws.run(frame, &mut out).map_err(|e| e.to_string())?;
    let stride = out.stride(0);
    let row = w as usize * 3;
    let data = out.data(0);
    let mut packed = Vec::with_capacity(row * h as usize);
    for y in 0..h as usize {
        let from = y * stride;
        let line = data
            .get(from..from + row)
            .ok_or_else(|| format!("row {y} outside the converted frame"))?;
        packed.extend_from_slice(line);
    }
    BgrImage::from_raw(w as usize, h as usize, packed).map_err(|e| e.to_string())
}

fn rescale_us(t: i64, tb: Rational) -> i64 {
    let (num, den) = (tb.numerator() as i128, tb.denominator() as i128);
    if den == 0 {
        return 0;
    }
    (t as i128 * num * 1_000_000 / den) as i64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db;
    use crate::media::index;
    use std::process::Command;

    /// A fragmented MP4 like the recorder's: 10 fps, a keyframe every second, `secs` long.
    fn make_segment(path: &Path, secs: u32) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let out = Command::new("ffmpeg")
            .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
            .arg("testsrc=size=320x240:rate=10")
            .args([
                "-t",
                &secs.to_string(),
                "-c:v",
                "libx264",
                "-g",
                "10",
                "-pix_fmt",
                "yuv420p",
            ])
            .args([
                "-movflags",
                "frag_keyframe+empty_moov+default_base_moof",
                "-f",
                "mp4",
            ])
            .arg(path)
            .output()
            .expect("ffmpeg runs");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }

    fn add(conn: &mut Connection, cam: &str, rel: &str, start_us: i64) {
        let tx = db::write_tx(conn).unwrap();
        index::insert_recording_segment(&tx, cam, "s1", 1, Path::new(rel), "h264", start_us).unwrap();
        tx.commit().unwrap();
    }

    const T0: i64 = 1_800_000_000_000_000;

    #[test]
    fn last_keyframe_of_the_newest_segment() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = db::open(dir.path()).unwrap();
        make_segment(&dir.path().join("video/a/old.mp4"), 2);
        make_segment(&dir.path().join("video/a/new.mp4"), 3);
        add(&mut conn, "a", "video/a/old.mp4", T0);
        add(&mut conn, "a", "video/a/new.mp4", T0 + 10_000_000);
        let s = latest_jpeg(dir.path(), "a", &conn).unwrap();
        assert_eq!((s.width, s.height), (320, 240));
        // Keyframes at 0, 1 and 2 s of the newest segment: the last is at 2 s.
        assert_eq!(s.time.timestamp_micros(), T0 + 12_000_000);
        assert_eq!(&s.jpeg[..2], &[0xff, 0xd8], "a JPEG");
        let back = BgrImage::decode(&s.jpeg).unwrap();
        assert_eq!((back.width, back.height), (320, 240));
        // testsrc is colourful: not a black or uniform picture.
        let (min, max) = back
            .data
            .iter()
            .fold((255u8, 0u8), |(a, b), &v| (a.min(v), b.max(v)));
        assert!(max - min > 100, "a real picture, {min}..{max}");
    }

    #[test]
    fn torn_open_segment_gives_its_last_whole_keyframe() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = db::open(dir.path()).unwrap();
        let path = dir.path().join("video/a/open.mp4");
        make_segment(&path, 3);
        let len = std::fs::metadata(&path).unwrap().len();
        // Cut into the last fragment, as a file being written looks.
        let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        f.set_len(len - 2_000).unwrap();
        add(&mut conn, "a", "video/a/open.mp4", T0);
        let s = latest_jpeg(dir.path(), "a", &conn).unwrap();
        assert_eq!((s.width, s.height), (320, 240));
        assert!(s.time.timestamp_micros() >= T0 + 1_000_000, "{s:?}");
    }

    #[test]
    fn newest_without_a_keyframe_falls_back_to_the_one_before() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = db::open(dir.path()).unwrap();
        make_segment(&dir.path().join("video/a/old.mp4"), 2);
        let fresh = dir.path().join("video/a/fresh.mp4");
        std::fs::write(&fresh, b"").unwrap();
        add(&mut conn, "a", "video/a/old.mp4", T0);
        add(&mut conn, "a", "video/a/fresh.mp4", T0 + 10_000_000);
        let s = latest_jpeg(dir.path(), "a", &conn).unwrap();
        assert_eq!(s.time.timestamp_micros(), T0 + 1_000_000);
    }

    #[test]
    fn unknown_camera_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let conn = db::open(dir.path()).unwrap();
        let e = latest_jpeg(dir.path(), "nope", &conn).unwrap_err();
        assert!(matches!(e, StillError::NoSegment { .. }), "{e}");
        assert!(e.to_string().contains("nope"));
    }
}
