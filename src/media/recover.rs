//! Making segments left open by a crash (or abandoned after a write error) playable again.
//!
//! A torn fragmented MP4 is cut back to its last whole fragment (see `mp4`), its duration is
//! measured from the packets that remain, and it is hashed as it now is. A file with no whole
//! fragment is kept as found and indexed as damaged: nothing is deleted.

use std::fs::OpenOptions;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use ffmpeg_next as ffmpeg;
use thiserror::Error;

use super::index::SegmentState;
use super::mp4;
use super::segment::hash_file;

#[derive(Debug, Error)]
pub enum RecoverError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// The state a left-open segment file was brought to.
#[derive(Debug, Clone, PartialEq)]
pub struct Repaired {
    /// `Recovered` (playable) or `Damaged`.
    pub state: SegmentState,
    pub bytes: u64,
    pub sha256: String,
    /// Media duration of what remains; `None` when nothing is playable.
    pub media_duration: Option<Duration>,
    /// The length the file had before it was cut back, if it was.
    pub cut_from: Option<u64>,
}

/// Repairs `path` in place: cuts a torn tail, measures, hashes.
pub fn repair(path: &Path) -> Result<Repaired, RecoverError> {
    let io_err = |source| RecoverError::Io {
        path: path.to_path_buf(),
        source,
    };
    let scan = mp4::scan_file(path).map_err(io_err)?;
    let mut cut_from = None;
    if scan.has_header && scan.complete_len < scan.file_len {
        let f = OpenOptions::new().write(true).open(path).map_err(io_err)?;
        f.set_len(scan.complete_len).map_err(io_err)?;
        f.sync_all().map_err(io_err)?;
        cut_from = Some(scan.file_len);
    }
    let media_duration = if scan.fragments > 0 {
        probe_duration(path).ok().filter(|d| !d.is_zero())
    } else {
        None
    };
    let hashed = hash_file(path).map_err(io_err)?;
    Ok(Repaired {
        state: if media_duration.is_some() {
            SegmentState::Recovered
        } else {
            SegmentState::Damaged
        },
        bytes: hashed.bytes,
        sha256: hashed.sha256,
        media_duration,
        cut_from,
    })
}

/// Media duration of a file's first video stream, from its packets' timestamps.
pub fn probe_duration(path: &Path) -> Result<Duration, ffmpeg::Error> {
    let mut input = ffmpeg::format::input(path)?;
    let stream = input
        .streams()
        .best(ffmpeg::media::Type::Video)
        .ok_or(ffmpeg::Error::StreamNotFound)?;
    let index = stream.index();
    let tb = stream.time_base();
    let rate = stream.avg_frame_rate();
    let frame = if rate.numerator() > 0 {
        (tb.denominator() as i64 * rate.denominator() as i64)
            / (tb.numerator() as i64 * rate.numerator() as i64)
    } else {
        0
    };
    let (mut first, mut end) = (i64::MAX, i64::MIN);
    for (s, pkt) in input.packets() {
        if s.index() != index {
            continue;
        }
        if let Some(pts) = pkt.pts().or(pkt.dts()) {
            first = first.min(pts);
            end = end.max(pts + if pkt.duration() > 0 { pkt.duration() } else { frame });
        }
    }
    if first == i64::MAX {
        return Ok(Duration::ZERO);
    }
    let secs = (end - first) as f64 * tb.numerator() as f64 / tb.denominator() as f64;
    Ok(Duration::from_secs_f64(secs.max(0.0)))
}

/// What a segment's path says about it: `video/{camera}/{date}/{HHMMSS}-{mmm}_{stream}_{seq}.mp4`
/// (see `camera::segment_path`). Used for files found on disk that the index does not know.
#[derive(Debug, Clone, PartialEq)]
pub struct PathInfo {
    pub camera: String,
    pub start: DateTime<Utc>,
    pub stream_id: String,
    pub stream_seq: u32,
}

pub fn parse_segment_path(rel: &Path, tz: Tz) -> Option<PathInfo> {
    let parts: Vec<&str> = rel.iter().map(|c| c.to_str()).collect::<Option<_>>()?;
    let [video, camera, date, file] = parts.as_slice() else {
        return None;
    };
    if *video != "video" {
        return None;
    }
    let stem = file.strip_suffix(".mp4")?;
    let mut it = stem.split('_');
    let (time, stream, seq) = (it.next()?, it.next()?, it.next()?);
    if it.next().is_some() {
        return None;
    }
    let date = NaiveDate::parse_from_str(date, "%Y-%m-%d").ok()?;
    let time = NaiveTime::parse_from_str(time, "%H%M%S-%3f").ok()?;
    let start = tz
        .from_local_datetime(&date.and_time(time))
        .earliest()?
        .with_timezone(&Utc);
    Some(PathInfo {
        camera: camera.to_string(),
        start,
        stream_id: stream.to_string(),
        stream_seq: seq.parse().ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::camera::segment_path;

    #[test]
    fn segment_paths_parse_back() {
        let tz = chrono_tz::Asia::Shanghai;
        let t = DateTime::parse_from_rfc3339("2026-11-22T17:30:05.250Z")
            .unwrap()
            .to_utc();
        let p = segment_path("front", t, tz, "0a1b2c3d", 7);
        let info = parse_segment_path(&p, tz).unwrap();
        assert_eq!(
            info,
            PathInfo {
                camera: "front".into(),
                start: t,
                stream_id: "0a1b2c3d".into(),
                stream_seq: 7
            }
        );
        assert!(parse_segment_path(Path::new("video/front/x.mp4"), tz).is_none());
        assert!(parse_segment_path(Path::new("snap/front/2026-11-22/010101-000_a_1.mp4"), tz).is_none());
    }
}
