//! Recognition accuracy on a labelled photo set, and the threshold that meets a target false
//! accept rate (`classproof calibrate`, docs/calibration.md). The metrics are pure functions of
//! similarity scores, so they are unit-tested without models.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use thiserror::Error;

use super::VisionError;
use super::image::BgrImage;
use super::pipeline::{Pipeline, Stages};

#[derive(Debug, Error)]
pub enum CalibrateError {
    #[error("{}: {why}", path.display())]
    Csv { path: PathBuf, why: String },
    #[error(transparent)]
    Vision(#[from] VisionError),
}

/// Photo extensions read from a labels file (other rows, e.g. videos, are skipped).
const IMAGE_EXTENSIONS: [&str; 6] = ["jpg", "jpeg", "png", "bmp", "webp", "tif"];

/// A labelled photo set: photos (paths as written, resolved against `base`), the pairs to
/// score, and each photo's identity (an index).
#[derive(Debug, Clone, Default)]
pub struct PhotoSet {
    pub base: PathBuf,
    pub photos: Vec<String>,
    /// (photo a, photo b, same identity)
    pub pairs: Vec<(usize, usize, bool)>,
    pub identity: Vec<usize>,
}

fn read_csv(path: &Path) -> Result<(Vec<String>, Vec<csv::StringRecord>), CalibrateError> {
    let bad = |why: String| CalibrateError::Csv {
        path: path.to_path_buf(),
        why,
    };
    let mut r = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::All)
        .from_path(path)
        .map_err(|e| bad(e.to_string()))?;
    let headers: Vec<String> = r
        .headers()
        .map_err(|e| bad(e.to_string()))?
        .iter()
        .map(|h| h.to_ascii_lowercase())
        .collect();
    let rows = r
        .records()
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(e.to_string()))?;
    Ok((headers, rows))
}

fn column(headers: &[String], names: &[&str], path: &Path) -> Result<usize, CalibrateError> {
    headers
        .iter()
        .position(|h| names.contains(&h.as_str()))
        .ok_or_else(|| CalibrateError::Csv {
            path: path.to_path_buf(),
            why: format!(
                "no column {} (columns: {})",
                names.join(" or "),
                headers.join(",")
            ),
        })
}

fn base_of(path: &Path) -> PathBuf {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf()
}

impl PhotoSet {
    /// `path,identity[,kind,…]`: every photo with an identity; all pairs among them are formed
    /// (same identity = genuine). Rows without an identity, with `unknown`, or naming several
    /// people (`a;b`) are skipped, as are non-image files. With `kinds`, only rows whose `kind`
    /// column is one of them.
    pub fn from_labels(path: &Path, kinds: &[String]) -> Result<PhotoSet, CalibrateError> {
        let (headers, rows) = read_csv(path)?;
        let c_path = column(&headers, &["path"], path)?;
        let c_id = column(&headers, &["identity"], path)?;
        let c_kind = if kinds.is_empty() {
            None
        } else {
            Some(column(&headers, &["kind"], path)?)
        };
        let mut set = PhotoSet {
            base: base_of(path),
            ..PhotoSet::default()
        };
        let mut ids: BTreeMap<String, usize> = BTreeMap::new();
        for row in &rows {
            let (Some(p), Some(id)) = (row.get(c_path), row.get(c_id)) else {
                continue;
            };
            let is_image = Path::new(p)
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()));
            let kind_ok = c_kind.is_none_or(|c| kinds.iter().any(|k| Some(k.as_str()) == row.get(c)));
            if id.is_empty()
                || id.eq_ignore_ascii_case("unknown")
                || id.contains(';')
                || !is_image
                || !kind_ok
            {
                continue;
            }
            let next = ids.len();
            set.identity.push(*ids.entry(id.to_string()).or_insert(next));
            set.photos.push(p.to_string());
        }
        for a in 0..set.photos.len() {
            for b in a + 1..set.photos.len() {
                set.pairs.push((a, b, set.identity[a] == set.identity[b]));
            }
        }
        Ok(set)
    }

    /// `path_a,path_b,same` (or `same_identity`), same = 1 or 0. Identities for rank-1 come from
    /// the genuine pairs (connected photos are one person).
    pub fn from_pairs(path: &Path) -> Result<PhotoSet, CalibrateError> {
        let (headers, rows) = read_csv(path)?;
        let ca = column(&headers, &["path_a"], path)?;
        let cb = column(&headers, &["path_b"], path)?;
        let cs = column(&headers, &["same", "same_identity"], path)?;
        let mut set = PhotoSet {
            base: base_of(path),
            ..PhotoSet::default()
        };
        let mut index: BTreeMap<String, usize> = BTreeMap::new();
        for (line, row) in rows.iter().enumerate() {
            let (Some(a), Some(b), Some(same)) = (row.get(ca), row.get(cb), row.get(cs)) else {
                continue;
            };
            let same = match same {
                "1" | "true" => true,
                "0" | "false" => false,
                other => {
                    return Err(CalibrateError::Csv {
                        path: path.to_path_buf(),
                        why: format!("row {}: same = {other:?}, expected 1 or 0", line + 2),
                    });
                }
            };
            let mut idx = |p: &str, photos: &mut Vec<String>| {
                *index.entry(p.to_string()).or_insert_with(|| {
                    photos.push(p.to_string());
                    photos.len() - 1
                })
            };
            let ia = idx(a, &mut set.photos);
            let ib = idx(b, &mut set.photos);
            set.pairs.push((ia, ib, same));
        }
        let genuine: Vec<(usize, usize)> = set.pairs.iter().filter(|p| p.2).map(|p| (p.0, p.1)).collect();
        set.identity = identities_from_pairs(set.photos.len(), &genuine);
        Ok(set)
    }

    /// The file of photo `i`.
    pub fn resolve(&self, i: usize) -> PathBuf {
        let p = Path::new(&self.photos[i]);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base.join(p)
        }
    }
}

/// One scored pair (`--scores`).
#[derive(Debug, Clone, PartialEq)]
pub struct PairScore {
    pub a: usize,
    pub b: usize,
    pub same: bool,
    /// `None` when either photo had no face.
    pub similarity: Option<f32>,
}

/// The result of a calibration run; serialises to exactly the keys of `calibrate --json`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    pub genuine_pairs: Stats,
    pub impostor_pairs: Stats,
    pub tar_at_far: BTreeMap<&'static str, Option<f64>>,
    pub eer: Option<f64>,
    pub rank1: Option<f64>,
    pub no_face: usize,
    pub ms_per_face: Option<f64>,
    /// Lowest similarity threshold meeting the target FAR.
    pub threshold: Option<f32>,
}

/// What happened to each photo.
#[derive(Debug, Clone)]
pub struct PhotoResult {
    pub embedding: Option<Vec<f32>>,
    /// Why there is no embedding (no face, unreadable file).
    pub problem: Option<String>,
}

/// Embeds the largest face of every photo and scores every pair.
pub fn run(
    pipeline: &mut Pipeline,
    set: &PhotoSet,
    target_far: f64,
) -> (Report, Vec<PairScore>, Vec<PhotoResult>) {
    let mut results = Vec::with_capacity(set.photos.len());
    let mut elapsed = 0.0f64;
    let mut faces = 0usize;
    for i in 0..set.photos.len() {
        let result = BgrImage::load(&set.resolve(i))
            .map_err(|e| e.to_string())
            .and_then(|img| {
                let t0 = Instant::now();
                let dets = pipeline.detect(&img).map_err(|e| e.to_string())?;
                let Some(largest) = dets
                    .into_iter()
                    .max_by(|a, b| (a.w * a.h).total_cmp(&(b.w * b.h)))
                else {
                    return Ok(None);
                };
                let f = pipeline
                    .analyse_detections(&img, vec![largest], Stages::EMBEDDING)
                    .map_err(|e| e.to_string())?;
                elapsed += t0.elapsed().as_secs_f64();
                faces += 1;
                Ok(f.into_iter().next().and_then(|f| f.embedding))
            });
        results.push(match result {
            Ok(Some(e)) => PhotoResult {
                embedding: Some(e),
                problem: None,
            },
            Ok(None) => PhotoResult {
                embedding: None,
                problem: Some("no face found".into()),
            },
            Err(e) => PhotoResult {
                embedding: None,
                problem: Some(e),
            },
        });
    }
    let emb = |i: usize| results[i].embedding.as_deref();
    let scores: Vec<PairScore> = set
        .pairs
        .iter()
        .map(|&(a, b, same)| PairScore {
            a,
            b,
            same,
            similarity: emb(a).zip(emb(b)).map(|(x, y)| super::embed::cosine(x, y)),
        })
        .collect();
    let pick = |same: bool| -> Vec<f32> {
        scores
            .iter()
            .filter(|s| s.same == same)
            .filter_map(|s| s.similarity)
            .collect()
    };
    let (genuine, impostors) = (pick(true), pick(false));
    let has_face: Vec<bool> = results.iter().map(|r| r.embedding.is_some()).collect();
    let report = Report {
        genuine_pairs: stats(&genuine),
        impostor_pairs: stats(&impostors),
        tar_at_far: tar_at_far(&genuine, &impostors),
        eer: eer(&genuine, &impostors),
        rank1: rank1(&set.identity, &has_face, |a, b| match (emb(a), emb(b)) {
            (Some(x), Some(y)) => super::embed::cosine(x, y),
            _ => f32::NEG_INFINITY,
        }),
        no_face: has_face.iter().filter(|h| !**h).count(),
        ms_per_face: (faces > 0).then(|| elapsed * 1000.0 / faces as f64),
        threshold: threshold_at_far(&impostors, target_far),
    };
    (report, scores, results)
}

/// The FARs reported, with their JSON keys.
pub const FARS: [(&str, f64); 3] = [("1e-2", 1e-2), ("1e-3", 1e-3), ("1e-4", 1e-4)];

/// Summary statistics of a set of similarities.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Stats {
    pub count: usize,
    pub mean: Option<f64>,
    pub std: Option<f64>,
    pub min: Option<f64>,
    pub max: Option<f64>,
}

pub fn stats(scores: &[f32]) -> Stats {
    let n = scores.len();
    if n == 0 {
        return Stats {
            count: 0,
            mean: None,
            std: None,
            min: None,
            max: None,
        };
    }
    let mean = scores.iter().map(|&s| s as f64).sum::<f64>() / n as f64;
    let var = scores.iter().map(|&s| (s as f64 - mean).powi(2)).sum::<f64>() / n as f64;
    Stats {
        count: n,
        mean: Some(mean),
        std: Some(var.sqrt()),
        min: scores.iter().map(|&s| s as f64).reduce(f64::min),
        max: scores.iter().map(|&s| s as f64).reduce(f64::max),
    }
}

/// The lowest threshold `t` (a match is `similarity >= t`) that accepts at most
/// `floor(far × impostors)` impostor pairs; `None` without enough impostor pairs to measure that
/// FAR (fewer than `1 / far`).
pub fn threshold_at_far(impostors: &[f32], far: f64) -> Option<f32> {
    let n = impostors.len();
    if n == 0 || (n as f64) < (1.0 / far).round() {
        return None;
    }
    let mut sorted = impostors.to_vec();
    sorted.sort_by(|a, b| b.total_cmp(a));
    let allowed = (far * n as f64 + 1e-9).floor() as usize;
    // Accept the `allowed` highest impostors (ties make it fewer), reject the next one.
    Some(next_up(sorted[allowed.min(n - 1)]))
}

/// The smallest f32 above `x`.
fn next_up(x: f32) -> f32 {
    if x.is_nan() || x == f32::INFINITY {
        return x;
    }
    if x == 0.0 {
        return f32::from_bits(1);
    }
    let b = x.to_bits();
    f32::from_bits(if x > 0.0 { b + 1 } else { b - 1 })
}

/// Fraction of `scores` at or above `t`.
pub fn rate_at_or_above(scores: &[f32], t: f32) -> f64 {
    if scores.is_empty() {
        return 0.0;
    }
    scores.iter().filter(|&&s| s >= t).count() as f64 / scores.len() as f64
}

/// True accept rate at each of [`FARS`] (`None` where there are too few impostor pairs).
pub fn tar_at_far(genuine: &[f32], impostors: &[f32]) -> BTreeMap<&'static str, Option<f64>> {
    FARS.iter()
        .map(|&(key, far)| {
            let tar = threshold_at_far(impostors, far)
                .filter(|_| !genuine.is_empty())
                .map(|t| rate_at_or_above(genuine, t));
            (key, tar)
        })
        .collect()
}

/// Equal error rate: the threshold where the false reject rate (genuine below) and the false
/// accept rate (impostors at or above) are closest; their mean there.
pub fn eer(genuine: &[f32], impostors: &[f32]) -> Option<f64> {
    if genuine.is_empty() || impostors.is_empty() {
        return None;
    }
    let mut candidates: Vec<f32> = genuine.iter().chain(impostors).copied().collect();
    candidates.push(f32::INFINITY);
    let mut best: Option<(f64, f64)> = None;
    for t in candidates {
        let frr = 1.0 - rate_at_or_above(genuine, t);
        let far = rate_at_or_above(impostors, t);
        let gap = (frr - far).abs();
        if best.is_none_or(|(g, _)| gap < g) {
            best = Some((gap, (frr + far) / 2.0));
        }
    }
    best.map(|(_, e)| e)
}

/// Groups items into identities from genuine pairs (connected components; union-find), for a
/// pair list without identity labels. Returns the identity index of each item.
pub fn identities_from_pairs(items: usize, genuine: &[(usize, usize)]) -> Vec<usize> {
    let mut parent: Vec<usize> = (0..items).collect();
    fn find(p: &mut [usize], mut x: usize) -> usize {
        while p[x] != x {
            p[x] = p[p[x]];
            x = p[x];
        }
        x
    }
    for &(a, b) in genuine {
        let (ra, rb) = (find(&mut parent, a), find(&mut parent, b));
        if ra != rb {
            parent[ra.max(rb)] = ra.min(rb);
        }
    }
    (0..items).map(|i| find(&mut parent, i)).collect()
}

/// 1:N rank-1 accuracy: the first photo (in order) of each identity is its gallery template;
/// every other photo is a probe, correct when its most similar gallery photo is of its identity.
/// `None` without probes. `sim(a, b)` is the similarity of photos a and b; photos with `None`
/// embeddings (no face) are left out.
pub fn rank1(identity: &[usize], has_face: &[bool], sim: impl Fn(usize, usize) -> f32) -> Option<f64> {
    let mut gallery: BTreeMap<usize, usize> = BTreeMap::new();
    let mut probes = Vec::new();
    for (i, &id) in identity.iter().enumerate() {
        if !has_face[i] {
            continue;
        }
        if let std::collections::btree_map::Entry::Vacant(e) = gallery.entry(id) {
            e.insert(i);
        } else {
            probes.push(i);
        }
    }
    if probes.is_empty() {
        return None;
    }
    let correct = probes
        .iter()
        .filter(|&&p| {
            gallery
                .iter()
                .max_by(|a, b| sim(p, *a.1).total_cmp(&sim(p, *b.1)))
                .is_some_and(|(&id, _)| id == identity[p])
        })
        .count();
    Some(correct as f64 / probes.len() as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threshold_accepts_at_most_the_allowed_impostors() {
        let impostors: Vec<f32> = (0..1000).map(|i| i as f32 / 1000.0).collect();
        // FAR 1e-2 on 1000 pairs: 10 accepted → t just above 0.989.
        let t = threshold_at_far(&impostors, 1e-2).unwrap();
        assert_eq!(rate_at_or_above(&impostors, t), 0.01);
        // FAR 1e-3: 1 accepted.
        let t = threshold_at_far(&impostors, 1e-3).unwrap();
        assert_eq!(rate_at_or_above(&impostors, t), 0.001);
        // FAR 1e-4 needs 10,000 impostor pairs.
        assert_eq!(threshold_at_far(&impostors, 1e-4), None);
        let tar = tar_at_far(&[0.995, 0.5], &impostors);
        assert_eq!(tar["1e-2"], Some(0.5));
        assert_eq!(tar["1e-4"], None);
    }

    #[test]
    fn eer_of_separated_and_overlapping_scores() {
        assert_eq!(eer(&[0.8, 0.9], &[0.1, 0.2]), Some(0.0));
        // At t = 0.5 one genuine of two is rejected and one impostor of two accepted.
        assert_eq!(eer(&[0.3, 0.9], &[0.1, 0.5]), Some(0.5));
        assert_eq!(eer(&[], &[0.1]), None);
    }

    #[test]
    fn identities_and_rank1() {
        // Photos 0,1,2 are one person (0~1, 1~2), 3,4 another, 5 alone.
        let id = identities_from_pairs(6, &[(0, 1), (1, 2), (3, 4)]);
        assert_eq!(id, [0, 0, 0, 3, 3, 5]);
        let emb = [0.0f32, 0.1, 0.9, 1.0, 1.1, 2.0];
        let sim = |a: usize, b: usize| -(emb[a] - emb[b]).abs();
        // Probes: 1 (→0 ok), 2 (0.9 is nearer to 3's 1.0: wrong), 4 (→3 ok).
        let r = rank1(&id, &[true; 6], sim).unwrap();
        assert!((r - 2.0 / 3.0).abs() < 1e-9);
        assert_eq!(rank1(&[0, 1], &[true, true], sim), None);
        let s = stats(&[0.0, 1.0]);
        assert_eq!(
            (s.count, s.mean, s.min, s.max),
            (2, Some(0.5), Some(0.0), Some(1.0))
        );
    }
}
