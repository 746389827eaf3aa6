//! Silent anti-spoofing (R14): MiniFASNetV2 on a 2.7× crop and MiniFASNetV1SE on a 4.0× crop of
//! the detector box, 80×80 raw BGR, softmax of each, averaged (the official fusion). Class 1 is
//! "real"; a face is live when the fused P(real) reaches `vision.liveness_threshold`.

use ort::session::Session;
use ort::value::TensorRef;

use super::VisionError;
use super::detect::Detection;
use super::image::BgrImage;
use super::manifest::{InputSpec, ModelSpec};
use super::runtime::Runtime;

/// Index of the "real" class in MiniFASNet outputs.
pub const REAL: usize = 1;

/// The liveness verdict of one face.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Liveness {
    /// Fused softmax (3 classes; 1 = real).
    pub probs: [f32; 3],
    /// Per-model softmax, in the order of `manifest::LIVENESS`.
    pub per_model: [[f32; 3]; 2],
}

impl Liveness {
    /// Fused P(real).
    pub fn real(&self) -> f32 {
        self.probs[REAL]
    }
}

/// The crop rectangle `(x0, y0, x1, y1)`, inclusive, of the official MiniFASNet preprocessing:
/// the box scaled by `scale` about its centre (scale capped so the crop fits the frame), shifted
/// back inside the frame, truncated to integers.
pub fn crop_box(frame_w: usize, frame_h: usize, d: &Detection, scale: f32) -> (usize, usize, usize, usize) {
    let (fw, fh) = (frame_w as f32, frame_h as f32);
    let (bw, bh) = (d.w.max(1.0), d.h.max(1.0));
    let scale = scale.min((fh - 1.0) / bh).min((fw - 1.0) / bw);
    let (nw, nh) = (bw * scale, bh * scale);
    let (cx, cy) = (d.x + bw / 2.0, d.y + bh / 2.0);
    let (mut x0, mut y0) = (cx - nw / 2.0, cy - nh / 2.0);
    let (mut x1, mut y1) = (cx + nw / 2.0, cy + nh / 2.0);
    if x0 < 0.0 {
        x1 -= x0;
        x0 = 0.0;
    }
    if y0 < 0.0 {
        y1 -= y0;
        y0 = 0.0;
    }
    if x1 > fw - 1.0 {
        x0 -= x1 - fw + 1.0;
        x1 = fw - 1.0;
    }
    if y1 > fh - 1.0 {
        y0 -= y1 - fh + 1.0;
        y1 = fh - 1.0;
    }
    let clamp = |v: f32, max: f32| v.clamp(0.0, max) as usize;
    (
        clamp(x0, fw - 1.0),
        clamp(y0, fh - 1.0),
        clamp(x1, fw - 1.0),
        clamp(y1, fh - 1.0),
    )
}

/// Softmax of logits.
pub fn softmax(logits: &[f32]) -> [f32; 3] {
    let m = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let e: Vec<f32> = logits.iter().map(|x| (x - m).exp()).collect();
    let s: f32 = e.iter().sum();
    let mut out = [0.0; 3];
    for (o, v) in out.iter_mut().zip(&e) {
        *o = v / s;
    }
    out
}

struct Model {
    session: Session,
    input: InputSpec,
    scale: f32,
    tensor: Vec<f32>,
}

/// The two MiniFASNet models.
pub struct LivenessModels {
    models: Vec<Model>,
}

impl LivenessModels {
    pub fn new(rt: &Runtime, specs: [(&ModelSpec, &[u8]); 2]) -> Result<LivenessModels, VisionError> {
        let mut models = Vec::new();
        for (spec, bytes) in specs {
            let (h, w) = spec.input.size();
            models.push(Model {
                session: rt.session(&spec.name, bytes)?,
                input: spec.input.clone(),
                scale: spec.crop_scale.unwrap_or(1.0),
                tensor: vec![0.0; 3 * h * w],
            });
        }
        Ok(LivenessModels { models })
    }

    /// Fused liveness of one detected face.
    pub fn check(&mut self, frame: &BgrImage, d: &Detection) -> Result<Liveness, VisionError> {
        let mut per_model = [[0.0; 3]; 2];
        for (k, m) in self.models.iter_mut().enumerate() {
            let (h, w) = m.input.size();
            let (x0, y0, x1, y1) = crop_box(frame.width, frame.height, d, m.scale);
            let crop = frame.crop_resize((x0, y0, x1 + 1, y1 + 1), w, h)?;
            crop.write_chw(m.input.channel_order, m.input.mean, m.input.scale, &mut m.tensor);
            let input = TensorRef::from_array_view(([1usize, 3, h, w], &m.tensor[..]))
                .map_err(|e| VisionError::Inference(format!("liveness input: {e}")))?;
            super::fpu::flush_subnormals(); // see vision::fpu
            let out = m
                .session
                .run(ort::inputs![input])
                .map_err(|e| VisionError::Inference(format!("liveness: {e}")))?;
            let (_, logits) = out[0]
                .try_extract_tensor::<f32>()
                .map_err(|e| VisionError::Inference(format!("liveness output: {e}")))?;
            if logits.len() != 3 {
                return Err(VisionError::Inference(format!(
                    "liveness: expected 3 logits, got {}",
                    logits.len()
                )));
            }
            per_model[k] = softmax(logits);
        }
        let mut probs = [0.0; 3];
        for (c, p) in probs.iter_mut().enumerate() {
            *p = (per_model[0][c] + per_model[1][c]) / 2.0;
        }
        Ok(Liveness { probs, per_model })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn det(x: f32, y: f32, w: f32, h: f32) -> Detection {
        Detection {
            x,
            y,
            w,
            h,
            score: 1.0,
            landmarks: [[0.0; 2]; 5],
        }
    }

    #[test]
    fn crop_is_scaled_about_the_centre_and_kept_inside_the_frame() {
        // 100×100 box centred at (320, 240) in 640×480, scale 2.7 → 270×270.
        assert_eq!(
            crop_box(640, 480, &det(270.0, 190.0, 100.0, 100.0), 2.7),
            (185, 105, 455, 375)
        );
        // Near the left edge: shifted right, same size.
        assert_eq!(
            crop_box(640, 480, &det(0.0, 190.0, 100.0, 100.0), 2.7),
            (0, 105, 270, 375)
        );
        // Scale capped by the frame height: (480-1)/200 = 2.395.
        let (x0, y0, x1, y1) = crop_box(640, 480, &det(220.0, 140.0, 200.0, 200.0), 4.0);
        assert_eq!((y0, y1), (0, 479));
        assert_eq!(x1 - x0, 479);
    }

    #[test]
    fn softmax_sums_to_one() {
        let p = softmax(&[1.0, 3.0, -2.0]);
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!(p[1] > p[0] && p[0] > p[2]);
    }
}
