//! The recording timeline as the engine sees it: per camera, what was recorded and what is
//! known to be missing, already resolved against `now` (an open segment or gap reaches `now`).
//! Built by the glue (`daemon::verdicts`) from the segment index; built by hand in tests.
//!
//! [`Coverage::of`] folds the timelines of a session's cameras into the pieces of one class
//! hour: recorded stretches and holes. Invariants of its output:
//! - pieces are sorted, do not overlap, alternate kinds (no two adjacent pieces of one kind)
//!   and exactly tile `[from, to)`;
//! - a moment counts as recorded when at least one camera recorded it (cameras hand over);
//! - a hole between two consecutive segments of one stream (same stream id, next sequence
//!   number) is *bridged*: the camera's own media time says nothing was lost, only the box's
//!   wall clock stepped. A bridged hole never breaks a run and never counts as recorded.

/// A stretch a camera recorded: a segment in state `recording` (up to now), `closed` or
/// `recovered`. Damaged segments are not recorded; they become [`Missing`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    pub start_us: i64,
    pub end_us: i64,
    /// The connection that produced it (`segments.stream_id`).
    pub stream: String,
    /// Its number within the stream.
    pub seq: u32,
}

/// A stretch known to be missing and why: a gap row (cause as the recorder named it, e.g.
/// `camera_lost`), or a damaged segment (cause `damaged`). Only used to explain holes: a hole
/// is any time nothing was recorded, whether or not something explains it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Missing {
    pub start_us: i64,
    pub end_us: i64,
    pub cause: String,
}

/// One camera's timeline.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CameraTimeline {
    pub camera: String,
    pub recorded: Vec<Recorded>,
    pub missing: Vec<Missing>,
}

/// A piece of a class hour.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Piece {
    pub start_us: i64,
    pub end_us: i64,
    pub kind: PieceKind,
}

impl Piece {
    pub fn len_us(&self) -> i64 {
        self.end_us - self.start_us
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PieceKind {
    /// At least one camera recorded.
    Recorded,
    /// Nothing recorded. `bridged`: every moment of it lies between two consecutive segments
    /// of one stream. `cause`: the causes of the gap rows (or damaged segments) overlapping it,
    /// in order, joined by `,`; `unrecorded` when nothing explains it, `clock_step` for a
    /// bridged hole without a gap row.
    Hole { bridged: bool, cause: String },
}

/// The pieces of `[from, to)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Coverage {
    pub pieces: Vec<Piece>,
}

/// Sorts and merges intervals (touching ones too).
fn merge(mut v: Vec<(i64, i64)>) -> Vec<(i64, i64)> {
    v.retain(|(a, b)| a < b);
    v.sort_unstable();
    let mut out: Vec<(i64, i64)> = Vec::with_capacity(v.len());
    for (a, b) in v {
        match out.last_mut() {
            Some(last) if a <= last.1 => last.1 = last.1.max(b),
            _ => out.push((a, b)),
        }
    }
    out
}

/// `v` (merged) minus `cut` (merged).
fn subtract(v: &[(i64, i64)], cut: &[(i64, i64)]) -> Vec<(i64, i64)> {
    let mut out = Vec::new();
    let mut j = 0;
    for &(a, b) in v {
        let mut a = a;
        while j < cut.len() && cut[j].1 <= a {
            j += 1;
        }
        let mut k = j;
        while a < b && k < cut.len() && cut[k].0 < b {
            if cut[k].0 > a {
                out.push((a, cut[k].0));
            }
            a = a.max(cut[k].1);
            k += 1;
        }
        if a < b {
            out.push((a, b));
        }
    }
    out
}

impl Coverage {
    /// Folds the cameras' timelines into the pieces of `[from, to)` (empty when `to <= from`).
    pub fn of(cameras: &[CameraTimeline], from: i64, to: i64) -> Coverage {
        if to <= from {
            return Coverage { pieces: Vec::new() };
        }
        let clip = |a: i64, b: i64| (a.max(from), b.min(to));
        let recorded = merge(
            cameras
                .iter()
                .flat_map(|c| c.recorded.iter().map(|r| clip(r.start_us, r.end_us)))
                .collect(),
        );
        let mut bridges = Vec::new();
        for c in cameras {
            let mut segs: Vec<&Recorded> = c.recorded.iter().collect();
            segs.sort_by(|a, b| (&a.stream, a.seq).cmp(&(&b.stream, b.seq)));
            for w in segs.windows(2) {
                let (a, b) = (w[0], w[1]);
                if a.stream == b.stream && a.seq.checked_add(1) == Some(b.seq) && b.start_us > a.end_us {
                    bridges.push(clip(a.end_us, b.start_us));
                }
            }
        }
        let bridges = merge(bridges);
        let holes = subtract(&[(from, to)], &recorded);
        let bridged = merge(
            holes
                .iter()
                .flat_map(|&(a, b)| bridges.iter().map(move |&(x, y)| (a.max(x), b.min(y))))
                .collect(),
        );
        let open = subtract(&holes, &bridged);

        let mut pieces: Vec<Piece> = recorded
            .iter()
            .map(|&(a, b)| Piece {
                start_us: a,
                end_us: b,
                kind: PieceKind::Recorded,
            })
            .chain(
                bridged
                    .iter()
                    .map(|&(a, b)| hole_piece(cameras, a, b, true))
                    .chain(open.iter().map(|&(a, b)| hole_piece(cameras, a, b, false))),
            )
            .collect();
        pieces.sort_by_key(|p| p.start_us);
        Coverage { pieces }
    }

    /// Total recorded time.
    pub fn recorded_us(&self) -> i64 {
        self.pieces
            .iter()
            .filter(|p| p.kind == PieceKind::Recorded)
            .map(Piece::len_us)
            .sum()
    }
}

fn hole_piece(cameras: &[CameraTimeline], a: i64, b: i64, bridged: bool) -> Piece {
    let mut causes: Vec<(i64, &str)> = cameras
        .iter()
        .flat_map(|c| c.missing.iter())
        .filter(|m| m.start_us < b && m.end_us > a)
        .map(|m| (m.start_us, m.cause.as_str()))
        .collect();
    causes.sort();
    let mut names: Vec<&str> = Vec::new();
    for (_, c) in causes {
        if !names.contains(&c) {
            names.push(c);
        }
    }
    let cause = if !names.is_empty() {
        names.join(",")
    } else if bridged {
        "clock_step".to_string()
    } else {
        "unrecorded".to_string()
    };
    Piece {
        start_us: a,
        end_us: b,
        kind: PieceKind::Hole { bridged, cause },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000;

    fn rec(a: i64, b: i64, stream: &str, seq: u32) -> Recorded {
        Recorded {
            start_us: a * S,
            end_us: b * S,
            stream: stream.into(),
            seq,
        }
    }

    fn kinds(c: &Coverage) -> Vec<(i64, i64, &str)> {
        c.pieces
            .iter()
            .map(|p| {
                let k = match &p.kind {
                    PieceKind::Recorded => "rec",
                    PieceKind::Hole { bridged: true, .. } => "bridge",
                    PieceKind::Hole { .. } => "hole",
                };
                (p.start_us / S, p.end_us / S, k)
            })
            .collect()
    }

    #[test]
    fn merge_and_subtract() {
        assert_eq!(
            merge(vec![(5, 7), (1, 3), (3, 4), (6, 9), (2, 2)]),
            vec![(1, 4), (5, 9)]
        );
        assert_eq!(
            subtract(&[(0, 10), (20, 30)], &[(2, 3), (5, 22), (29, 40)]),
            vec![(0, 2), (3, 5), (22, 29)]
        );
        assert_eq!(subtract(&[(0, 10)], &[]), vec![(0, 10)]);
    }

    #[test]
    fn pieces_tile_the_range_and_cameras_hand_over() {
        let front = CameraTimeline {
            camera: "front".into(),
            recorded: vec![rec(0, 20, "a", 0), rec(40, 50, "b", 0)],
            missing: vec![Missing {
                start_us: 20 * S,
                end_us: 40 * S,
                cause: "camera_lost".into(),
            }],
        };
        let back = CameraTimeline {
            camera: "back".into(),
            recorded: vec![rec(15, 30, "c", 0)],
            missing: vec![],
        };
        let c = Coverage::of(&[front, back], 10 * S, 60 * S);
        assert_eq!(
            kinds(&c),
            vec![
                (10, 30, "rec"),
                (30, 40, "hole"),
                (40, 50, "rec"),
                (50, 60, "hole")
            ]
        );
        assert_eq!(
            c.pieces[1].kind,
            PieceKind::Hole {
                bridged: false,
                cause: "camera_lost".into()
            }
        );
        assert_eq!(
            c.pieces[3].kind,
            PieceKind::Hole {
                bridged: false,
                cause: "unrecorded".into()
            }
        );
        assert_eq!(c.recorded_us(), 30 * S);
    }

    #[test]
    fn a_clock_step_inside_one_stream_is_bridged() {
        let cam = CameraTimeline {
            camera: "front".into(),
            // seq 0 → 1 of stream "a" with the wall clock stepping 10 s forward in between;
            // stream "b" starts after a real loss.
            recorded: vec![rec(0, 10, "a", 0), rec(20, 30, "a", 1), rec(35, 40, "b", 0)],
            missing: vec![],
        };
        let c = Coverage::of(&[cam], 0, 40 * S);
        assert_eq!(
            kinds(&c),
            vec![
                (0, 10, "rec"),
                (10, 20, "bridge"),
                (20, 30, "rec"),
                (30, 35, "hole"),
                (35, 40, "rec")
            ]
        );
        assert!(matches!(&c.pieces[1].kind, PieceKind::Hole { cause, .. } if cause == "clock_step"));
    }

    #[test]
    fn empty_range_and_no_cameras() {
        assert!(Coverage::of(&[], 5, 5).pieces.is_empty());
        let c = Coverage::of(&[], 0, 10);
        assert_eq!(c.pieces.len(), 1);
        assert_eq!(c.recorded_us(), 0);
    }
}
