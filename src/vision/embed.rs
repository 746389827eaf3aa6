//! Face embeddings: aligned 112×112 crops in, L2-normalised vectors out, channel order and
//! normalisation from the manifest. Several faces go through one inference when the model
//! allows a batch (fr_feature after `onnx_edit::dynamic_batch`); otherwise one at a time.

use ort::session::Session;
use ort::value::TensorRef;

use super::VisionError;
use super::image::BgrImage;
use super::manifest::{InputSpec, ModelSpec};
use super::onnx_edit;
use super::runtime::Runtime;

/// Largest number of faces in one inference (bounds the input buffer).
pub const MAX_BATCH: usize = 16;

/// An L2-normalised embedding.
pub type Embedding = Vec<f32>;

/// Scales `v` to unit length (a zero vector stays zero).
pub fn l2_normalise(v: &mut [f32]) {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if n > 0.0 {
        v.iter_mut().for_each(|x| *x /= n);
    }
}

/// Cosine similarity of two unit vectors.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// The recognition model.
pub struct Embedder {
    session: Session,
    /// The model name (templates are tagged with it).
    pub model: String,
    input: InputSpec,
    dim: usize,
    batched: bool,
    tensor: Vec<f32>,
}

impl Embedder {
    pub fn new(rt: &Runtime, spec: &ModelSpec, bytes: &[u8]) -> Result<Embedder, VisionError> {
        let dim = spec.embedding_dim.unwrap_or(0);
        let patched = if spec.input.shape[0] == 1 {
            onnx_edit::dynamic_batch(bytes, dim)
        } else {
            None
        };
        let batched = patched.is_some() || spec.input.shape[0] < 0;
        let session = rt.session(&spec.name, patched.as_deref().unwrap_or(bytes))?;
        if !batched {
            tracing::debug!(model = %spec.name, "recognition model runs one face per inference");
        }
        Ok(Embedder {
            session,
            model: spec.name.clone(),
            input: spec.input.clone(),
            dim,
            batched,
            tensor: Vec::new(),
        })
    }

    /// Length of the embeddings.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// True when several faces go through one inference.
    pub fn batched(&self) -> bool {
        self.batched
    }

    /// Embeddings of aligned crops, in order.
    pub fn embed(&mut self, crops: &[&BgrImage]) -> Result<Vec<Embedding>, VisionError> {
        let mut out = Vec::with_capacity(crops.len());
        let chunk = if self.batched { MAX_BATCH } else { 1 };
        for part in crops.chunks(chunk) {
            out.extend(self.run(part)?);
        }
        Ok(out)
    }

    fn run(&mut self, crops: &[&BgrImage]) -> Result<Vec<Embedding>, VisionError> {
        let (h, w) = self.input.size();
        let plane = 3 * h * w;
        self.tensor.resize(plane * crops.len(), 0.0);
        for (i, c) in crops.iter().enumerate() {
            if (c.width, c.height) != (w, h) {
                return Err(VisionError::Inference(format!(
                    "embedding: crop is {}x{}, the model takes {w}x{h}",
                    c.width, c.height
                )));
            }
            let (mean, scale) = (self.input.mean, self.input.scale);
            c.write_chw(
                self.input.channel_order,
                mean,
                scale,
                &mut self.tensor[i * plane..(i + 1) * plane],
            );
        }
        let input = TensorRef::from_array_view(([crops.len(), 3, h, w], &self.tensor[..]))
            .map_err(|e| VisionError::Inference(format!("embedding input: {e}")))?;
        super::fpu::flush_subnormals(); // see vision::fpu
        let outputs = self
            .session
            .run(ort::inputs![input])
            .map_err(|e| VisionError::Inference(format!("embedding: {e}")))?;
        let (_, data) = outputs[0]
            .try_extract_tensor::<f32>()
            .map_err(|e| VisionError::Inference(format!("embedding output: {e}")))?;
        if data.len() != self.dim * crops.len() {
            return Err(VisionError::Inference(format!(
                "embedding: got {} values for {} face(s) of dimension {}",
                data.len(),
                crops.len(),
                self.dim
            )));
        }
        Ok(data
            .chunks_exact(self.dim)
            .map(|v| {
                let mut v = v.to_vec();
                l2_normalise(&mut v);
                v
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalised_vectors_have_unit_cosine_with_themselves() {
        let mut v = vec![3.0, 4.0];
        l2_normalise(&mut v);
        assert_eq!(v, [0.6, 0.8]);
        assert!((cosine(&v, &v) - 1.0).abs() < 1e-6);
        let mut z = vec![0.0; 3];
        l2_normalise(&mut z);
        assert_eq!(z, [0.0; 3]);
    }
}
