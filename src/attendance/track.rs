//! Face tracking across consecutive frames of one camera (issue 9, item 2): decisions are made
//! per tracked face, not per frame. Pure: frames carry their time.
//!
//! A face continues a track when its box overlaps the track's last box (IoU ≥
//! [`MIN_IOU`]) and its embedding is close to the track's last one (cosine ≥ [`MIN_COSINE`]),
//! or, for a face that moved fast, when the embedding alone is very close (≥
//! [`SAME_FACE_COSINE`]). Pairs are assigned greedily, best score first; a face continues at
//! most one track. A track not seen for [`TRACK_TIMEOUT_US`] ends. Track ids are derived from
//! the time the track started (µs, made strictly increasing), so they are never reused, not even
//! after a restart.

/// A box overlapping the last one at least this much may continue the track.
pub const MIN_IOU: f32 = 0.3;
/// … if the embeddings agree at least this much.
pub const MIN_COSINE: f32 = 0.3;
/// Embeddings this close continue a track whatever the boxes.
pub const SAME_FACE_COSINE: f32 = 0.6;
/// A track not seen for this long ends.
pub const TRACK_TIMEOUT_US: i64 = 2_000_000;

/// One face of a frame, as the tracker needs it.
#[derive(Debug, Clone)]
pub struct Seen {
    /// x0, y0, x1, y1 in pixels.
    pub bbox: [f32; 4],
    /// Unit-length embedding.
    pub embedding: Vec<f32>,
}

#[derive(Debug, Clone)]
struct Track {
    id: u64,
    bbox: [f32; 4],
    embedding: Vec<f32>,
    last_us: i64,
}

/// The tracks of one camera.
#[derive(Debug, Clone, Default)]
pub struct Tracker {
    tracks: Vec<Track>,
    last_id: u64,
}

pub fn iou(a: &[f32; 4], b: &[f32; 4]) -> f32 {
    let w = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let h = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = w * h;
    let area = |r: &[f32; 4]| (r[2] - r[0]).max(0.0) * (r[3] - r[1]).max(0.0);
    let union = area(a) + area(b) - inter;
    if union <= 0.0 { 0.0 } else { inter / union }
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

impl Tracker {
    /// Track ids for the faces of a frame at `time_us`, in the order given.
    pub fn update(&mut self, time_us: i64, faces: &[Seen]) -> Vec<u64> {
        self.tracks.retain(|t| time_us - t.last_us <= TRACK_TIMEOUT_US);
        let mut pairs = Vec::new();
        for (fi, f) in faces.iter().enumerate() {
            for (ti, t) in self.tracks.iter().enumerate() {
                let o = iou(&f.bbox, &t.bbox);
                let c = cosine(&f.embedding, &t.embedding);
                if (o >= MIN_IOU && c >= MIN_COSINE) || c >= SAME_FACE_COSINE {
                    pairs.push((o + c, fi, ti));
                }
            }
        }
        pairs.sort_by(|a, b| b.0.partial_cmp(&a.0).unwrap_or(std::cmp::Ordering::Equal));
        let mut face_track: Vec<Option<usize>> = vec![None; faces.len()];
        let mut taken = vec![false; self.tracks.len()];
        for (_, fi, ti) in pairs {
            if face_track[fi].is_none() && !taken[ti] {
                face_track[fi] = Some(ti);
                taken[ti] = true;
            }
        }
        let mut ids = Vec::with_capacity(faces.len());
        for (fi, f) in faces.iter().enumerate() {
            let ti = match face_track[fi] {
                Some(ti) => ti,
                None => {
                    let id = (time_us.max(0) as u64).max(self.last_id + 1);
                    self.last_id = id;
                    self.tracks.push(Track {
                        id,
                        bbox: f.bbox,
                        embedding: f.embedding.clone(),
                        last_us: time_us,
                    });
                    self.tracks.len() - 1
                }
            };
            let t = &mut self.tracks[ti];
            t.bbox = f.bbox;
            t.embedding.clone_from(&f.embedding);
            t.last_us = time_us;
            ids.push(t.id);
        }
        ids
    }

    pub fn len(&self) -> usize {
        self.tracks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tracks.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(v: &[f32]) -> Vec<f32> {
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter().map(|x| x / n).collect()
    }

    fn seen(x: f32, e: &[f32]) -> Seen {
        Seen {
            bbox: [x, 0.0, x + 100.0, 100.0],
            embedding: unit(e),
        }
    }

    #[test]
    fn a_face_keeps_its_track_and_a_new_one_gets_a_new_id() {
        let mut t = Tracker::default();
        let a = [1.0, 0.0, 0.0];
        let b = [0.0, 1.0, 0.0];
        let ids0 = t.update(1_000, &[seen(0.0, &a)]);
        let ids1 = t.update(201_000, &[seen(10.0, &a), seen(400.0, &b)]);
        assert_eq!(ids1[0], ids0[0]);
        assert_ne!(ids1[1], ids0[0]);
        // Two faces swapping places are told apart by their embeddings.
        let ids2 = t.update(401_000, &[seen(400.0, &a), seen(10.0, &b)]);
        assert_eq!(ids2, [ids1[0], ids1[1]]);
        // A different face in the same place is a new track.
        let ids3 = t.update(601_000, &[seen(400.0, &[0.0, 0.0, 1.0])]);
        assert!(!ids2.contains(&ids3[0]));
        // After the timeout, the same face starts a new track.
        let ids4 = t.update(601_000 + TRACK_TIMEOUT_US + 1, &[seen(400.0, &a)]);
        assert!(!ids2.contains(&ids4[0]) && ids4[0] != ids3[0]);
    }

    #[test]
    fn iou_of_boxes() {
        assert_eq!(iou(&[0.0, 0.0, 10.0, 10.0], &[0.0, 0.0, 10.0, 10.0]), 1.0);
        assert_eq!(iou(&[0.0, 0.0, 10.0, 10.0], &[20.0, 0.0, 30.0, 10.0]), 0.0);
        assert!((iou(&[0.0, 0.0, 10.0, 10.0], &[5.0, 0.0, 15.0, 10.0]) - 1.0 / 3.0).abs() < 1e-6);
    }
}
