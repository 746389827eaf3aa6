//! The 1:N gallery: every enrolled template of every person in one contiguous row-major `f32`
//! matrix (templates of a person are adjacent), searched by dot products of unit vectors
//! (= cosine similarity). A person's score is the best of their templates; the answer is the
//! best person, its similarity and its margin over the second-best *person*.
//!
//! Speed: a 512-d f32 matrix of 10,000 templates is 20 MB, and streaming it from memory alone
//! takes over a millisecond on the box. So a query first scores every template on an `i8` copy
//! of the matrix (a quarter of the bytes, per-template scale; similarity error below 0.01),
//! keeps the [`RESCORE`] best persons, and computes their exact `f32` similarities. The returned
//! similarity is always exact; the best person is exact unless more than [`RESCORE`] persons
//! score within the coarse error of it, which only happens among near-identical templates.
//! Galleries of at most [`RESCORE`] persons are searched exactly.
//!
//! Layout invariant: `matrix.len() == quant.len() == templates × dim`, `scales.len() ==
//! templates`, and `persons[i].rows` are consecutive, non-overlapping ranges covering all rows.

use std::collections::HashMap;
use std::ops::Range;

/// An enrolled person as the gallery knows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GalleryPerson {
    pub person_id: String,
    pub name: String,
    pub role: String,
    rows: Range<usize>,
}

impl GalleryPerson {
    /// Number of templates.
    pub fn templates(&self) -> usize {
        self.rows.len()
    }
}

/// The answer to a 1:N query.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GalleryMatch {
    /// Index into [`Gallery::persons`].
    pub person: usize,
    /// Cosine similarity to that person's best template.
    pub similarity: f32,
    /// `similarity` minus the second-best person's; `None` with a single person enrolled.
    pub margin: Option<f32>,
}

/// Persons whose exact similarity is computed after the coarse `i8` pass.
pub const RESCORE: usize = 8;

/// Templates of one recognition model.
#[derive(Debug, Clone)]
pub struct Gallery {
    model: String,
    dim: usize,
    persons: Vec<GalleryPerson>,
    matrix: Vec<f32>,
    /// `matrix` quantised per template: `matrix[r][k] ≈ quant[r][k] × scales[r]`.
    quant: Vec<i8>,
    scales: Vec<f32>,
    /// person_id → index into `persons`.
    index: HashMap<String, usize>,
}

/// Quantises a vector to `i8` with one scale: returns the scale.
fn quantise(v: &[f32], out: &mut Vec<i8>) -> f32 {
    let max = v.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    let scale = if max > 0.0 { max / 127.0 } else { 1.0 };
    out.extend(v.iter().map(|x| (x / scale).round().clamp(-127.0, 127.0) as i8));
    scale
}

impl Gallery {
    pub fn new(model: &str, dim: usize) -> Gallery {
        Gallery {
            model: model.to_string(),
            dim,
            persons: Vec::new(),
            matrix: Vec::new(),
            quant: Vec::new(),
            scales: Vec::new(),
            index: HashMap::new(),
        }
    }

    /// The recognition model whose templates these are.
    pub fn model(&self) -> &str {
        &self.model
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    pub fn persons(&self) -> &[GalleryPerson] {
        &self.persons
    }

    /// Number of templates.
    pub fn templates(&self) -> usize {
        self.matrix.len() / self.dim.max(1)
    }

    /// Adds templates (each of length `dim`, unit length) to a person, creating them if new;
    /// name and role follow the latest call. Templates of a wrong length are skipped; a new
    /// person with no template is not added.
    pub fn add(&mut self, person_id: &str, name: &str, role: &str, templates: &[Vec<f32>]) {
        let mut all: Vec<Vec<f32>> = match self.index.get(person_id).copied() {
            Some(i) => {
                let rows = self.persons[i].rows.clone();
                let old = rows
                    .clone()
                    .map(|r| self.matrix[r * self.dim..(r + 1) * self.dim].to_vec())
                    .collect();
                self.remove_at(i);
                old
            }
            None => Vec::new(),
        };
        all.extend(templates.iter().filter(|t| t.len() == self.dim).cloned());
        let start = self.templates();
        for t in &all {
            self.matrix.extend_from_slice(t);
            let scale = quantise(t, &mut self.quant);
            self.scales.push(scale);
        }
        let end = self.templates();
        if end > start {
            self.index.insert(person_id.to_string(), self.persons.len());
            self.persons.push(GalleryPerson {
                person_id: person_id.to_string(),
                name: name.to_string(),
                role: role.to_string(),
                rows: start..end,
            });
        }
    }

    /// Removes a person and their templates; false when they were not in the gallery.
    pub fn remove(&mut self, person_id: &str) -> bool {
        match self.index.get(person_id).copied() {
            Some(i) => {
                self.remove_at(i);
                true
            }
            None => false,
        }
    }

    fn remove_at(&mut self, i: usize) {
        let removed = self.persons.remove(i);
        self.index.remove(&removed.person_id);
        let rows = removed.rows;
        let n = rows.len();
        self.matrix.drain(rows.start * self.dim..rows.end * self.dim);
        self.quant.drain(rows.start * self.dim..rows.end * self.dim);
        self.scales.drain(rows.clone());
        for (k, p) in self.persons.iter_mut().enumerate().skip(i) {
            p.rows = p.rows.start - n..p.rows.end - n;
            self.index.insert(p.person_id.clone(), k);
        }
    }

    /// Best person for `query` (unit length, `dim` long), or `None` when the gallery is empty.
    pub fn search(&self, query: &[f32]) -> Option<GalleryMatch> {
        self.search_excluding(query, None)
    }

    /// As [`Gallery::search`], ignoring the person `exclude` (for duplicate checks at
    /// enrollment).
    pub fn search_excluding(&self, query: &[f32], exclude: Option<&str>) -> Option<GalleryMatch> {
        if query.len() != self.dim {
            return None;
        }
        let candidates: Vec<usize> = if self.persons.len() <= RESCORE + 1 {
            (0..self.persons.len()).collect()
        } else {
            self.coarse(query, exclude)
        };
        let (mut best, mut second): (Option<(usize, f32)>, Option<f32>) = (None, None);
        for i in candidates {
            let p = &self.persons[i];
            if exclude == Some(p.person_id.as_str()) {
                continue;
            }
            let score = self.exact(p, query);
            match best {
                Some((_, b)) if score <= b => {
                    if second.is_none_or(|s| score > s) {
                        second = Some(score);
                    }
                }
                _ => {
                    second = best.map(|(_, b)| b);
                    best = Some((i, score));
                }
            }
        }
        best.map(|(person, similarity)| GalleryMatch {
            person,
            similarity,
            margin: second.map(|s| similarity - s),
        })
    }

    /// Exact similarity of a person: the best of their templates.
    fn exact(&self, p: &GalleryPerson, query: &[f32]) -> f32 {
        p.rows
            .clone()
            .map(|r| dot(&self.matrix[r * self.dim..(r + 1) * self.dim], query))
            .fold(f32::NEG_INFINITY, f32::max)
    }

    /// The `RESCORE + 1` persons with the best coarse (`i8`) similarity, best first.
    fn coarse(&self, query: &[f32], exclude: Option<&str>) -> Vec<usize> {
        let mut q = Vec::with_capacity(self.dim);
        let q_scale = quantise(query, &mut q);
        // (score, person), kept sorted best first; one more than RESCORE so the second-best
        // person survives when the best is excluded or equal.
        let mut top: Vec<(f32, usize)> = Vec::with_capacity(RESCORE + 2);
        for (i, p) in self.persons.iter().enumerate() {
            if exclude == Some(p.person_id.as_str()) {
                continue;
            }
            let mut score = f32::NEG_INFINITY;
            for r in p.rows.clone() {
                let d = dot_i8(&self.quant[r * self.dim..(r + 1) * self.dim], &q);
                score = score.max(d as f32 * self.scales[r] * q_scale);
            }
            if top.len() <= RESCORE || score > top[top.len() - 1].0 {
                let at = top.partition_point(|(s, _)| *s >= score);
                top.insert(at, (score, i));
                top.truncate(RESCORE + 1);
            }
        }
        top.into_iter().map(|(_, i)| i).collect()
    }
}

/// Integer dot product of two `i8` vectors, with an AVX2 path chosen at run time.
pub fn dot_i8(a: &[i8], b: &[i8]) -> i32 {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports the feature the function is compiled for.
            return unsafe { dot_i8_avx2(a, b) };
        }
    }
    dot_i8_portable(a, b)
}

fn dot_i8_portable(a: &[i8], b: &[i8]) -> i32 {
    a.iter().zip(b).map(|(x, y)| *x as i32 * *y as i32).sum()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn dot_i8_avx2(a: &[i8], b: &[i8]) -> i32 {
    use std::arch::x86_64::*;
    let n = a.len().min(b.len());
    let mut i = 0;
    let mut acc = _mm256_setzero_si256();
    // SAFETY: each load reads 16 bytes at i + 16 <= n of both slices.
    unsafe {
        while i + 16 <= n {
            let x = _mm256_cvtepi8_epi16(_mm_loadu_si128(a.as_ptr().add(i) as *const __m128i));
            let y = _mm256_cvtepi8_epi16(_mm_loadu_si128(b.as_ptr().add(i) as *const __m128i));
            acc = _mm256_add_epi32(acc, _mm256_madd_epi16(x, y));
            i += 16;
        }
    }
    let mut lanes = [0i32; 8];
    // SAFETY: `lanes` holds 8 i32.
    unsafe { _mm256_storeu_si256(lanes.as_mut_ptr() as *mut __m256i, acc) };
    let mut s: i32 = lanes.iter().sum();
    while i < n {
        s += a[i] as i32 * b[i] as i32;
        i += 1;
    }
    s
}

/// Dot product, with an AVX2+FMA path chosen at run time on x86-64.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            // SAFETY: the CPU supports the features the function is compiled for.
            return unsafe { dot_avx2(a, b) };
        }
    }
    dot_portable(a, b)
}

/// Eight independent accumulators so the compiler can vectorise without reassociating.
fn dot_portable(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0.0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for k in 0..8 {
            acc[k] += x[k] * y[k];
        }
    }
    let mut s: f32 = acc.iter().sum();
    for (x, y) in ra.iter().zip(rb) {
        s += x * y;
    }
    s
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn dot_avx2(a: &[f32], b: &[f32]) -> f32 {
    use std::arch::x86_64::*;
    let n = a.len().min(b.len());
    let mut i = 0;
    let mut acc0 = _mm256_setzero_ps();
    let mut acc1 = _mm256_setzero_ps();
    // SAFETY: every load reads 8 floats at i < n - 7 (or i + 8 < n - 7) of both slices.
    unsafe {
        while i + 16 <= n {
            acc0 = _mm256_fmadd_ps(
                _mm256_loadu_ps(a.as_ptr().add(i)),
                _mm256_loadu_ps(b.as_ptr().add(i)),
                acc0,
            );
            acc1 = _mm256_fmadd_ps(
                _mm256_loadu_ps(a.as_ptr().add(i + 8)),
                _mm256_loadu_ps(b.as_ptr().add(i + 8)),
                acc1,
            );
            i += 16;
        }
        while i + 8 <= n {
            acc0 = _mm256_fmadd_ps(
                _mm256_loadu_ps(a.as_ptr().add(i)),
                _mm256_loadu_ps(b.as_ptr().add(i)),
                acc0,
            );
            i += 8;
        }
    }
    let acc = _mm256_add_ps(acc0, acc1);
    let mut lanes = [0.0f32; 8];
    // SAFETY: `lanes` holds 8 floats.
    unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), acc) };
    let mut s: f32 = lanes.iter().sum();
    while i < n {
        s += a[i] * b[i];
        i += 1;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(v: &[f32]) -> Vec<f32> {
        let mut v = v.to_vec();
        crate::vision::embed::l2_normalise(&mut v);
        v
    }

    #[test]
    fn best_person_margin_over_the_second_person_not_the_second_template() {
        let mut g = Gallery::new("m", 3);
        // Anna has two templates close to the query: the margin must be over Ben, not over
        // Anna's other template.
        g.add(
            "a",
            "Anna",
            "trainee",
            &[unit(&[1.0, 0.1, 0.0]), unit(&[1.0, 0.0, 0.0])],
        );
        g.add("b", "Ben", "trainee", &[unit(&[0.0, 1.0, 0.0])]);
        g.add("c", "Cai", "teacher", &[unit(&[0.6, 0.8, 0.0])]);
        assert_eq!(g.templates(), 4);
        let m = g.search(&unit(&[1.0, 0.0, 0.0])).unwrap();
        assert_eq!(g.persons()[m.person].person_id, "a");
        assert!((m.similarity - 1.0).abs() < 1e-6);
        assert!((m.margin.unwrap() - 0.4).abs() < 1e-6, "{m:?}");
        let m = g.search_excluding(&unit(&[1.0, 0.0, 0.0]), Some("a")).unwrap();
        assert_eq!(g.persons()[m.person].person_id, "c");
        assert!(Gallery::new("m", 3).search(&[1.0, 0.0, 0.0]).is_none());
        // Adding to an existing person keeps one entry (the margin is over another person).
        g.add("b", "Ben", "trainee", &[unit(&[0.0, 0.0, 1.0])]);
        assert_eq!((g.persons().len(), g.templates()), (3, 5));
        let m = g.search(&unit(&[0.0, 0.1, 1.0])).unwrap();
        assert_eq!(g.persons()[m.person].person_id, "b");
        assert!(m.margin.unwrap() > 0.5, "{m:?}");
        assert!(g.remove("a"));
        assert_eq!((g.persons().len(), g.templates()), (2, 3));
        let m = g.search(&unit(&[0.6, 0.8, 0.0])).unwrap();
        assert_eq!(g.persons()[m.person].person_id, "c");
        assert!((m.similarity - 1.0).abs() < 1e-6);
        let mut one = Gallery::new("m", 3);
        one.add("a", "Anna", "trainee", &[unit(&[1.0, 0.0, 0.0])]);
        assert_eq!(one.search(&unit(&[1.0, 0.0, 0.0])).unwrap().margin, None);
    }

    #[test]
    fn two_stage_search_finds_the_exact_best_person_in_a_large_gallery() {
        // 2000 random persons, 2 templates each; queries are noisy copies of known templates.
        let dim = 128;
        let mut state = 12345u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        };
        let mut g = Gallery::new("m", dim);
        let mut all = Vec::new();
        for i in 0..2000 {
            let t: Vec<Vec<f32>> = (0..2)
                .map(|_| unit(&(0..dim).map(|_| next()).collect::<Vec<_>>()))
                .collect();
            g.add(&format!("p{i}"), "x", "trainee", &t);
            all.push(t);
        }
        for probe in [3usize, 777, 1999] {
            let q = unit(
                &all[probe][1]
                    .iter()
                    .map(|x| x + 0.3 * next() / dim as f32)
                    .collect::<Vec<_>>(),
            );
            let m = g.search(&q).unwrap();
            // Brute force, exact.
            let mut scores: Vec<(f32, usize)> = all
                .iter()
                .enumerate()
                .map(|(i, ts)| (ts.iter().map(|t| dot(t, &q)).fold(f32::MIN, f32::max), i))
                .collect();
            scores.sort_by(|a, b| b.0.total_cmp(&a.0));
            assert_eq!(m.person, scores[0].1);
            assert_eq!(m.similarity, scores[0].0);
            assert!((m.margin.unwrap() - (scores[0].0 - scores[1].0)).abs() < 1e-6);
            let ex = g.search_excluding(&q, Some(&format!("p{probe}"))).unwrap();
            assert_eq!(ex.person, scores[1].1);
        }
        let a: Vec<i8> = (0..100).map(|i| (i * 37 % 255 - 127) as i8).collect();
        let b: Vec<i8> = (0..100).map(|i| (i * 91 % 255 - 127) as i8).collect();
        assert_eq!(dot_i8(&a, &b), dot_i8_portable(&a, &b));
    }

    #[test]
    fn simd_and_portable_dot_products_agree() {
        let a: Vec<f32> = (0..517).map(|i| ((i * 37 % 101) as f32 - 50.0) / 50.0).collect();
        let b: Vec<f32> = (0..517).map(|i| ((i * 53 % 97) as f32 - 48.0) / 48.0).collect();
        let exact: f64 = a.iter().zip(&b).map(|(x, y)| *x as f64 * *y as f64).sum();
        assert!((dot(&a, &b) as f64 - exact).abs() < 1e-3);
        assert!((dot_portable(&a, &b) as f64 - exact).abs() < 1e-3);
    }
}
