//! `clip.request`: an MP4 of a camera's recording over `[from, to)`, cut from the recorded
//! segments by stream copy (no transcoding), and the spans in it that were not recorded.
//!
//! The clip starts at the last keyframe at or before `from` (so `from` is in it) and ends
//! with the last packet before `to`. Timestamps are the segments' wall-clock times, so a gap
//! between segments stays a gap in the clip's timeline. Segment files are only read (a
//! segment still being written is read up to its last whole fragment).

use std::path::Path;

use ffmpeg::{Packet, Rational, codec, format, media};
use ffmpeg_next as ffmpeg;
use rusqlite::Connection;

use crate::media::index::{self, Entry, SegmentState};

/// Longest clip accepted.
pub const MAX_CLIP_US: i64 = 3600 * 1_000_000;

/// A span of `[from, to)` with no recording.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Hole {
    pub start_us: i64,
    pub end_us: i64,
    /// The gap's cause (`camera_lost`, `daemon_down`, …), or `not_recorded` where the index
    /// has neither a segment nor a gap.
    pub cause: String,
}

/// What was cut.
#[derive(Debug, Clone, PartialEq)]
pub struct Cut {
    pub segments: u32,
    pub packets: u64,
    /// Wall-clock span of the clip's packets.
    pub first_us: i64,
    pub last_us: i64,
    pub holes: Vec<Hole>,
}

/// The holes of `[from, to)` given the camera's timeline (pure).
pub fn holes(entries: &[Entry], from_us: i64, to_us: i64, now_us: i64) -> Vec<Hole> {
    let mut covered: Vec<(i64, i64)> = entries
        .iter()
        .filter_map(|e| match e {
            Entry::Segment(s) if s.state != SegmentState::Damaged => {
                Some((s.start_us, s.end_us.unwrap_or(now_us)))
            }
            _ => None,
        })
        .collect();
    covered.sort();
    let mut out = Vec::new();
    let mut at = from_us;
    let cause_at = |a: i64, b: i64| {
        entries
            .iter()
            .find_map(|e| match e {
                Entry::Gap(g) if g.start_us < b && g.end_us.unwrap_or(now_us) > a => {
                    Some(g.cause.as_str().to_string())
                }
                _ => None,
            })
            .unwrap_or_else(|| "not_recorded".to_string())
    };
    for (s, e) in covered {
        if s > at && at < to_us {
            let end = s.min(to_us);
            out.push(Hole {
                start_us: at,
                end_us: end,
                cause: cause_at(at, end),
            });
        }
        at = at.max(e);
    }
    if at < to_us {
        out.push(Hole {
            start_us: at,
            end_us: to_us,
            cause: cause_at(at, to_us),
        });
    }
    out
}

fn us(t: i64, tb: Rational) -> i64 {
    let (n, d) = (tb.numerator() as i128, tb.denominator().max(1) as i128);
    (t as i128 * n * 1_000_000 / d) as i64
}

/// Cuts `[from, to)` of `camera` into `out` (an MP4 file).
pub fn cut(
    data_dir: &Path,
    conn: &Connection,
    camera: &str,
    from_us: i64,
    to_us: i64,
    now_us: i64,
    out: &Path,
) -> Result<Cut, String> {
    if to_us <= from_us || to_us - from_us > MAX_CLIP_US {
        return Err("from must be before to, by at most 1 hour".into());
    }
    let entries = index::timeline(conn, Some(camera), Some(from_us), Some(to_us))
        .map_err(|e| format!("segment index: {e}"))?;
    let holes = holes(&entries, from_us, to_us, now_us);
    let segs: Vec<_> = entries
        .iter()
        .filter_map(|e| match e {
            Entry::Segment(s) if s.state != SegmentState::Damaged => Some(s.clone()),
            _ => None,
        })
        .collect();
    if segs.is_empty() {
        return Err(format!("camera {camera} recorded nothing in that span"));
    }
    ffmpeg::init().map_err(|e| e.to_string())?;
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let mut octx: Option<(format::context::Output, Rational)> = None;
    // µs timebase of the packets handed to the muxer.
    let in_tb = Rational::new(1, 1_000_000);
    let mut origin: Option<i64> = None;
    let mut last_dts: Option<i64> = None;
    let (mut packets, mut first_us, mut last_us, mut used) = (0u64, i64::MAX, i64::MIN, 0u32);
    // The GOP before `from`, held until `from` is reached.
    let mut held: Vec<(Packet, i64, i64)> = Vec::new();
    for seg in &segs {
        let path = data_dir.join(&seg.path);
        let mut input = match format::input(&path) {
            Ok(i) => i,
            Err(e) => return Err(format!("{}: {e}", seg.path.display())),
        };
        let Some(stream) = input.streams().best(media::Type::Video) else {
            continue;
        };
        let (index, tb, params) = (stream.index(), stream.time_base(), stream.parameters());
        let mut first_ts: Option<i64> = None;
        let mut any = false;
        let mut pkt = Packet::empty();
        loop {
            match pkt.read(&mut input) {
                Ok(()) => {}
                Err(ffmpeg::Error::Other { errno }) if errno == libc::EAGAIN => continue,
                Err(_) => break,
            }
            if pkt.stream() != index {
                continue;
            }
            let Some(dts) = pkt.dts().or(pkt.pts()) else {
                continue;
            };
            let pts = pkt.pts().unwrap_or(dts);
            let base = *first_ts.get_or_insert(pts.min(dts));
            let wall_dts = seg.start_us + us(dts - base, tb);
            let wall_pts = seg.start_us + us(pts - base, tb);
            if wall_pts >= to_us {
                break;
            }
            if wall_pts < from_us {
                if pkt.is_key() {
                    held.clear();
                }
                if pkt.is_key() || !held.is_empty() {
                    held.push((pkt.clone(), wall_dts, wall_pts));
                }
                continue;
            }
            if octx.is_none() {
                octx = Some(open_out(out, &params)?);
            }
            let Some((o, out_tb)) = octx.as_mut() else {
                continue;
            };
            let mut batch = std::mem::take(&mut held);
            if origin.is_none() && batch.is_empty() && !pkt.is_key() {
                continue; // wait for a keyframe
            }
            batch.push((pkt.clone(), wall_dts, wall_pts));
            for (p, d, pt) in batch {
                let org = *origin.get_or_insert(d);
                let d = match last_dts {
                    Some(l) if d <= l => l + 1,
                    _ => d,
                };
                last_dts = Some(d);
                let mut q = p.clone();
                q.set_dts(Some(d - org));
                q.set_pts(Some(pt.max(d) - org));
                q.set_stream(0);
                q.set_position(-1);
                q.set_duration(0);
                q.rescale_ts(in_tb, *out_tb);
                q.write_interleaved(o).map_err(|e| format!("MP4 muxer: {e}"))?;
                packets += 1;
                first_us = first_us.min(pt);
                last_us = last_us.max(pt);
                any = true;
            }
        }
        if any {
            used += 1;
        }
    }
    let Some((mut o, _)) = octx else {
        return Err(format!("camera {camera}: no whole frame recorded in that span"));
    };
    o.write_trailer().map_err(|e| format!("MP4 muxer: {e}"))?;
    drop(o);
    if let Ok(f) = std::fs::File::open(out) {
        let _ = f.sync_all();
    }
    Ok(Cut {
        segments: used,
        packets,
        first_us,
        last_us,
        holes,
    })
}

fn open_out(out: &Path, params: &codec::Parameters) -> Result<(format::context::Output, Rational), String> {
    let fe = |e: ffmpeg::Error| format!("{}: {e}", out.display());
    let mut o = format::output_as(&out, "mp4").map_err(fe)?;
    {
        let mut ost = o.add_stream(ffmpeg::encoder::find(codec::Id::None)).map_err(fe)?;
        ost.set_parameters(params.clone());
        ost.set_time_base(Rational::new(1, 90_000));
        // SAFETY: parameters owned by the output context we hold (see media::segment).
        unsafe {
            (*ost.parameters().as_mut_ptr()).codec_tag = 0;
        }
    }
    let mut opts = ffmpeg::Dictionary::new();
    opts.set("movflags", "+faststart");
    o.write_header_with(opts).map_err(fe)?;
    let tb = o
        .stream(0)
        .map(|s| s.time_base())
        .unwrap_or(Rational::new(1, 90_000));
    Ok((o, tb))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::GapCause;
    use crate::media::index::{GapRow, SegmentRow};
    use std::path::PathBuf;

    fn seg(a: i64, b: Option<i64>) -> Entry {
        Entry::Segment(SegmentRow {
            id: a,
            camera: "c".into(),
            stream_id: "s".into(),
            stream_seq: 0,
            path: PathBuf::from("x.mp4"),
            codec: "h264".into(),
            start_us: a,
            end_us: b,
            media_duration_us: None,
            bytes: None,
            sha256: None,
            state: if b.is_some() {
                SegmentState::Closed
            } else {
                SegmentState::Recording
            },
        })
    }

    fn gap(a: i64, b: i64) -> Entry {
        Entry::Gap(GapRow {
            id: a,
            camera: "c".into(),
            start_us: a,
            end_us: Some(b),
            cause: GapCause::CameraLost,
            detail: None,
            detected_us: a,
        })
    }

    #[test]
    fn holes_are_the_unrecorded_spans_with_their_cause() {
        let e = vec![seg(10, Some(20)), gap(20, 30), seg(30, Some(40)), seg(40, None)];
        assert_eq!(
            holes(&e, 0, 60, 50),
            vec![
                Hole {
                    start_us: 0,
                    end_us: 10,
                    cause: "not_recorded".into()
                },
                Hole {
                    start_us: 20,
                    end_us: 30,
                    cause: "camera_lost".into()
                },
                Hole {
                    start_us: 50,
                    end_us: 60,
                    cause: "not_recorded".into()
                },
            ]
        );
        assert!(holes(&e, 12, 45, 50).iter().all(|h| h.cause == "camera_lost"));
        assert!(holes(&e, 31, 39, 50).is_empty());
    }
}
