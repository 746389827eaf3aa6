//! Alignment for recognition: the least-squares similarity transform (rotation, uniform scale,
//! translation) taking the 5 detector landmarks onto the ArcFace 112×112 template, then a
//! bilinear warp with a black border (MODELS.md "Alignment for recognition").

use super::VisionError;
use super::image::BgrImage;

/// Side of the aligned crop.
pub const ALIGNED_SIZE: usize = 112;

/// The ArcFace template: right eye, left eye, nose tip, right and left mouth corners.
pub const TEMPLATE: [[f64; 2]; 5] = [
    [38.2946, 51.6963],
    [73.5318, 51.5014],
    [56.0252, 71.7366],
    [41.5493, 92.3655],
    [70.7299, 92.2041],
];

/// The 2×3 matrix `[a -b tx; b a ty]` minimising Σ|M·src − dst|² (Umeyama without reflection;
/// in 2-D it is the complex least-squares fit dst ≈ α·src + β).
pub fn similarity(src: &[[f64; 2]; 5], dst: &[[f64; 2]; 5]) -> [f64; 6] {
    let n = src.len() as f64;
    let mean = |p: &[[f64; 2]; 5]| {
        let s = p.iter().fold([0.0, 0.0], |a, q| [a[0] + q[0], a[1] + q[1]]);
        [s[0] / n, s[1] / n]
    };
    let (ms, md) = (mean(src), mean(dst));
    let (mut num_a, mut num_b, mut den) = (0.0, 0.0, 0.0);
    for (s, d) in src.iter().zip(dst) {
        let (sx, sy) = (s[0] - ms[0], s[1] - ms[1]);
        let (dx, dy) = (d[0] - md[0], d[1] - md[1]);
        num_a += sx * dx + sy * dy;
        num_b += sx * dy - sy * dx;
        den += sx * sx + sy * sy;
    }
    if den <= f64::EPSILON {
        // All landmarks on one point: no orientation to recover; centre the template.
        return [1.0, 0.0, md[0] - ms[0], 0.0, 1.0, md[1] - ms[1]];
    }
    let (a, b) = (num_a / den, num_b / den);
    let tx = md[0] - (a * ms[0] - b * ms[1]);
    let ty = md[1] - (b * ms[0] + a * ms[1]);
    [a, -b, tx, b, a, ty]
}

/// The aligned 112×112 face for these landmarks.
pub fn align(frame: &BgrImage, landmarks: &[[f32; 2]; 5]) -> Result<BgrImage, VisionError> {
    let src = landmarks.map(|[x, y]| [x as f64, y as f64]);
    let m = similarity(&src, &TEMPLATE);
    frame.warp_affine(&m, ALIGNED_SIZE, ALIGNED_SIZE)
}

/// Sharpness of an aligned crop: variance of the 4-neighbour Laplacian of its grey levels.
/// Blurred or out-of-focus faces score low.
pub fn sharpness(crop: &BgrImage) -> f32 {
    let g = crop.grey();
    let (w, h) = (crop.width, crop.height);
    if w < 3 || h < 3 {
        return 0.0;
    }
    let mut vals = Vec::with_capacity((w - 2) * (h - 2));
    for y in 1..h - 1 {
        for x in 1..w - 1 {
            let c = g[y * w + x];
            vals.push(
                g[y * w + x - 1] + g[y * w + x + 1] + g[(y - 1) * w + x] + g[(y + 1) * w + x] - 4.0 * c,
            );
        }
    }
    let n = vals.len() as f32;
    let mean = vals.iter().sum::<f32>() / n;
    vals.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply(m: &[f64; 6], p: [f64; 2]) -> [f64; 2] {
        [m[0] * p[0] + m[1] * p[1] + m[2], m[3] * p[0] + m[4] * p[1] + m[5]]
    }

    #[test]
    fn recovers_a_known_similarity() {
        // Rotate 30°, scale 2.5, shift (100, -40): the fit of template → moved template is it.
        let (c, s) = (30f64.to_radians().cos() * 2.5, 30f64.to_radians().sin() * 2.5);
        let truth = [c, -s, 100.0, s, c, -40.0];
        let moved = TEMPLATE.map(|p| apply(&truth, p));
        let m = similarity(&TEMPLATE, &moved);
        for (a, b) in m.iter().zip(truth) {
            assert!((a - b).abs() < 1e-9, "{m:?} vs {truth:?}");
        }
        // And the inverse direction maps the moved points back onto the template.
        let back = similarity(&moved, &TEMPLATE);
        for (p, t) in moved.iter().zip(TEMPLATE) {
            let q = apply(&back, *p);
            assert!((q[0] - t[0]).abs() < 1e-9 && (q[1] - t[1]).abs() < 1e-9);
        }
    }

    #[test]
    fn sharpness_drops_with_blur() {
        let mut sharp = BgrImage::zeros(32, 32);
        for (i, px) in sharp.data.chunks_exact_mut(3).enumerate() {
            let v = if (i % 32 + i / 32) % 2 == 0 { 255 } else { 0 };
            px.copy_from_slice(&[v, v, v]);
        }
        let blurred = sharp.resize(8, 8).unwrap().resize(32, 32).unwrap();
        assert!(sharpness(&sharp) > 10.0 * sharpness(&blurred).max(1.0));
        assert_eq!(sharpness(&BgrImage::zeros(32, 32)), 0.0);
    }
}
