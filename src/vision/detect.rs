//! Face detection with YuNet 2023mar: letterbox any frame into the model's fixed 640×640 input,
//! decode the three stride heads (8, 16, 32), threshold, non-maximum suppression, and map boxes
//! and the 5 landmarks back to frame pixels (MODELS.md "YuNet 2023mar").

use ort::session::Session;
use ort::value::TensorRef;

use super::VisionError;
use super::image::BgrImage;
use super::manifest::{InputSpec, ModelSpec};
use super::runtime::Runtime;

/// Strides of YuNet's three heads.
pub const STRIDES: [usize; 3] = [8, 16, 32];

/// One detected face, in frame pixels.
#[derive(Debug, Clone, PartialEq)]
pub struct Detection {
    /// Top-left corner, width and height of the box.
    pub x: f32,
    pub y: f32,
    pub w: f32,
    pub h: f32,
    /// sqrt(cls · obj), 0..1.
    pub score: f32,
    /// Right eye (image left), left eye, nose tip, right and left mouth corners.
    pub landmarks: [[f32; 2]; 5],
}

impl Detection {
    /// The shorter side of the box: the "face size" the thresholds talk about.
    pub fn size(&self) -> f32 {
        self.w.min(self.h)
    }

    fn area(&self) -> f32 {
        self.w.max(0.0) * self.h.max(0.0)
    }

    /// Intersection over union of two boxes.
    pub fn iou(&self, o: &Detection) -> f32 {
        let ix = (self.x + self.w).min(o.x + o.w) - self.x.max(o.x);
        let iy = (self.y + self.h).min(o.y + o.h) - self.y.max(o.y);
        if ix <= 0.0 || iy <= 0.0 {
            return 0.0;
        }
        let inter = ix * iy;
        inter / (self.area() + o.area() - inter)
    }
}

/// Thresholds of one detection call (from `[vision]`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DetectParams {
    pub score: f32,
    pub nms_iou: f32,
    /// Smallest face kept (shorter side, frame pixels).
    pub min_face: f32,
}

/// The raw outputs of one stride: `cls`, `obj` (N), `bbox` (N×4), `kps` (N×10).
pub struct Head<'a> {
    pub stride: usize,
    pub cls: &'a [f32],
    pub obj: &'a [f32],
    pub bbox: &'a [f32],
    pub kps: &'a [f32],
}

/// Decodes the heads of a `width × height` input into detections above `score` (input pixels).
pub fn decode(heads: &[Head], width: usize, score: f32) -> Vec<Detection> {
    let mut out = Vec::new();
    for h in heads {
        let cols = width / h.stride;
        let s = h.stride as f32;
        for i in 0..h.cls.len() {
            let sc = (h.cls[i].clamp(0.0, 1.0) * h.obj[i].clamp(0.0, 1.0)).sqrt();
            if sc < score {
                continue;
            }
            let (row, col) = ((i / cols) as f32, (i % cols) as f32);
            let b = &h.bbox[i * 4..i * 4 + 4];
            let cx = (col + b[0]) * s;
            let cy = (row + b[1]) * s;
            let w = b[2].exp() * s;
            let hh = b[3].exp() * s;
            let k = &h.kps[i * 10..i * 10 + 10];
            let mut landmarks = [[0.0; 2]; 5];
            for (j, lm) in landmarks.iter_mut().enumerate() {
                *lm = [(col + k[2 * j]) * s, (row + k[2 * j + 1]) * s];
            }
            out.push(Detection {
                x: cx - w / 2.0,
                y: cy - hh / 2.0,
                w,
                h: hh,
                score: sc,
                landmarks,
            });
        }
    }
    out
}

/// Greedy non-maximum suppression: best score first, drop boxes overlapping a kept one by more
/// than `iou`.
pub fn nms(mut dets: Vec<Detection>, iou: f32) -> Vec<Detection> {
    dets.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut keep: Vec<Detection> = Vec::with_capacity(dets.len());
    for d in dets {
        if keep.iter().all(|k| k.iou(&d) <= iou) {
            keep.push(d);
        }
    }
    keep
}

/// Letterbox geometry: the frame is scaled by `scale` to `width × height` and placed top-left.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Letterbox {
    pub scale: f32,
    pub width: usize,
    pub height: usize,
}

impl Letterbox {
    pub fn new(frame_w: usize, frame_h: usize, input_w: usize, input_h: usize) -> Letterbox {
        let scale = (input_w as f32 / frame_w as f32).min(input_h as f32 / frame_h as f32);
        Letterbox {
            scale,
            width: ((frame_w as f32 * scale).round() as usize).clamp(1, input_w),
            height: ((frame_h as f32 * scale).round() as usize).clamp(1, input_h),
        }
    }
}

/// Writes `src` (at most `iw × ih`) into the planar input tensor at the top-left, the rest
/// padded with the normalised value of black, without an intermediate canvas.
fn letterbox_chw(src: &BgrImage, iw: usize, ih: usize, input: &InputSpec, out: &mut [f32]) {
    let plane = iw * ih;
    let pad = (0.0 - input.mean) * input.scale;
    out.fill(pad);
    let order = match input.channel_order {
        super::manifest::ChannelOrder::Bgr => [0, 1, 2],
        super::manifest::ChannelOrder::Rgb => [2, 1, 0],
    };
    for y in 0..src.height.min(ih) {
        let row = &src.data[y * src.width * 3..(y + 1) * src.width * 3];
        for (c, &ch) in order.iter().enumerate() {
            let dst = &mut out[c * plane + y * iw..c * plane + y * iw + src.width.min(iw)];
            for (d, px) in dst.iter_mut().zip(row.chunks_exact(3)) {
                *d = (px[ch] as f32 - input.mean) * input.scale;
            }
        }
    }
}

/// YuNet on ONNX Runtime.
pub struct Detector {
    session: Session,
    input: InputSpec,
    tensor: Vec<f32>,
}

impl Detector {
    pub fn new(rt: &Runtime, spec: &ModelSpec, bytes: &[u8]) -> Result<Detector, VisionError> {
        let session = rt.session(&spec.name, bytes)?;
        let (h, w) = spec.input.size();
        Ok(Detector {
            session,
            input: spec.input.clone(),
            tensor: vec![0.0; 3 * w * h],
        })
    }

    /// Input width and height of the model.
    pub fn input_size(&self) -> (usize, usize) {
        let (h, w) = self.input.size();
        (w, h)
    }

    /// Faces in `frame`, best score first, in frame pixels.
    pub fn detect(&mut self, frame: &BgrImage, p: &DetectParams) -> Result<Vec<Detection>, VisionError> {
        let (iw, ih) = self.input_size();
        let lb = Letterbox::new(frame.width, frame.height, iw, ih);
        let resized;
        let src = if (lb.width, lb.height) == (frame.width, frame.height) {
            frame
        } else {
            resized = frame.resize(lb.width, lb.height)?;
            &resized
        };
        letterbox_chw(src, iw, ih, &self.input, &mut self.tensor);

        let input = TensorRef::from_array_view(([1usize, 3, ih, iw], &self.tensor[..]))
            .map_err(|e| VisionError::Inference(format!("detector input: {e}")))?;
        super::fpu::flush_subnormals(); // see vision::fpu
        let outputs = self
            .session
            .run(ort::inputs![input])
            .map_err(|e| VisionError::Inference(format!("detector: {e}")))?;
        let get = |name: String| -> Result<&[f32], VisionError> {
            let v = outputs
                .get(&name)
                .ok_or_else(|| VisionError::Inference(format!("detector: no output {name}")))?;
            v.try_extract_tensor::<f32>()
                .map(|(_, d)| d)
                .map_err(|e| VisionError::Inference(format!("detector output {name}: {e}")))
        };
        let mut heads = Vec::with_capacity(3);
        for s in STRIDES {
            let n = (iw / s) * (ih / s);
            let head = Head {
                stride: s,
                cls: get(format!("cls_{s}"))?,
                obj: get(format!("obj_{s}"))?,
                bbox: get(format!("bbox_{s}"))?,
                kps: get(format!("kps_{s}"))?,
            };
            if head.cls.len() != n
                || head.obj.len() != n
                || head.bbox.len() != 4 * n
                || head.kps.len() != 10 * n
            {
                return Err(VisionError::Inference(format!(
                    "detector: stride {s} outputs do not have {n} anchors"
                )));
            }
            heads.push(head);
        }
        let dets = nms(decode(&heads, iw, p.score), p.nms_iou);
        let inv = 1.0 / lb.scale;
        Ok(dets
            .into_iter()
            .map(|d| Detection {
                x: d.x * inv,
                y: d.y * inv,
                w: d.w * inv,
                h: d.h * inv,
                score: d.score,
                landmarks: d.landmarks.map(|[x, y]| [x * inv, y * inv]),
            })
            .filter(|d| d.size() >= p.min_face)
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn det(x: f32, y: f32, w: f32, h: f32, score: f32) -> Detection {
        Detection {
            x,
            y,
            w,
            h,
            score,
            landmarks: [[0.0; 2]; 5],
        }
    }

    #[test]
    fn decode_places_anchors_row_major_per_stride() {
        // A 64×32 input: stride 32 has 2 columns, 1 row. Anchor 1 = row 0, col 1.
        let cls = [0.0, 0.81];
        let obj = [1.0, 1.0];
        let bbox = [0.0, 0.0, 0.0, 0.0, 0.5, 0.25, 1.0f32.ln(), 2.0f32.ln()];
        let mut kps = [0.0f32; 20];
        kps[10] = 0.1;
        kps[11] = 0.2;
        let heads = [Head {
            stride: 32,
            cls: &cls,
            obj: &obj,
            bbox: &bbox,
            kps: &kps,
        }];
        let d = decode(&heads, 64, 0.5);
        assert_eq!(d.len(), 1);
        let d = &d[0];
        assert!((d.score - 0.9).abs() < 1e-6);
        // centre ((1 + 0.5)·32, (0 + 0.25)·32) = (48, 8); size 32 × 64.
        assert_eq!((d.w, d.h), (32.0, 64.0));
        assert_eq!((d.x, d.y), (48.0 - 16.0, 8.0 - 32.0));
        assert!((d.landmarks[0][0] - 1.1 * 32.0).abs() < 1e-4);
        assert!((d.landmarks[0][1] - 0.2 * 32.0).abs() < 1e-4);
    }

    #[test]
    fn nms_keeps_the_best_of_overlapping_boxes() {
        let kept = nms(
            vec![
                det(0.0, 0.0, 10.0, 10.0, 0.7),
                det(1.0, 1.0, 10.0, 10.0, 0.9),
                det(50.0, 50.0, 10.0, 10.0, 0.8),
            ],
            0.3,
        );
        let scores: Vec<f32> = kept.iter().map(|d| d.score).collect();
        assert_eq!(scores, [0.9, 0.8]);
        assert_eq!(
            det(0.0, 0.0, 10.0, 10.0, 1.0).iou(&det(20.0, 0.0, 5.0, 5.0, 1.0)),
            0.0
        );
    }

    #[test]
    fn letterbox_fits_the_longer_side() {
        let lb = Letterbox::new(1920, 1080, 640, 640);
        assert_eq!((lb.width, lb.height), (640, 360));
        let lb = Letterbox::new(480, 640, 640, 640);
        assert_eq!((lb.width, lb.height, lb.scale), (480, 640, 1.0));
        let lb = Letterbox::new(320, 200, 640, 640);
        assert_eq!((lb.width, lb.height, lb.scale), (640, 400, 2.0));
    }
}
