//! Frame in, faces out: detection → alignment → liveness → embedding (batched per frame) →
//! 1:N match. Thresholds come from `[vision]`.

use super::VisionError;
use super::align::{self, ALIGNED_SIZE};
use super::config::VisionConfig;
use super::detect::{DetectParams, Detection, Detector};
use super::embed::{Embedder, Embedding};
use super::gallery::{Gallery, GalleryMatch};
use super::image::BgrImage;
use super::liveness::{Liveness, LivenessModels};
use super::manifest::{DETECTOR, LIVENESS, Manifest};
use super::runtime::Runtime;

/// Which stages to run after detection (detection and alignment always run).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stages {
    pub liveness: bool,
    pub embedding: bool,
}

impl Stages {
    pub const ALL: Stages = Stages {
        liveness: true,
        embedding: true,
    };
    pub const EMBEDDING: Stages = Stages {
        liveness: false,
        embedding: true,
    };
}

/// One face of a frame.
#[derive(Debug, Clone)]
pub struct Face {
    pub detection: Detection,
    /// The 112×112 aligned crop (the input of the recognition model).
    pub aligned: BgrImage,
    /// Sharpness of the aligned crop (`align::sharpness`).
    pub sharpness: f32,
    pub liveness: Option<Liveness>,
    /// Unit-length embedding.
    pub embedding: Option<Embedding>,
}

/// A face's best enrolled person under the configured thresholds.
#[derive(Debug, Clone, PartialEq)]
pub struct Identity {
    pub person_id: String,
    pub name: String,
    pub role: String,
    pub similarity: f32,
    pub margin: Option<f32>,
    /// Similarity and margin pass `match_threshold` and `match_margin`.
    pub accepted: bool,
}

/// The loaded models and the thresholds of one `[vision]` config. Not shareable between threads
/// (sessions run with `&mut`): each analysis worker owns one.
pub struct Pipeline {
    config: VisionConfig,
    detector: Detector,
    liveness: LivenessModels,
    embedder: Embedder,
}

impl Pipeline {
    /// Loads the runtime and the models the config names, each checked by sha256.
    pub fn load(config: &VisionConfig) -> Result<Pipeline, VisionError> {
        // Subnormals off on this thread now, and again before every run on whichever thread
        // the pipeline moved to (vision::fpu).
        super::fpu::flush_subnormals();
        let rt = Runtime::load(&config.ort_library, config.threads)?;
        let manifest = Manifest::embedded()?;
        let read = |name: &str| -> Result<_, VisionError> {
            let spec = manifest.get(name)?;
            Ok((spec, Runtime::read_model(spec, &config.models_dir)?))
        };
        let (det_spec, det_bytes) = read(DETECTOR)?;
        let (rec_spec, rec_bytes) = read(&config.recognition_model)?;
        let (l0_spec, l0_bytes) = read(LIVENESS[0])?;
        let (l1_spec, l1_bytes) = read(LIVENESS[1])?;
        Ok(Pipeline {
            config: config.clone(),
            detector: Detector::new(&rt, det_spec, &det_bytes)?,
            liveness: LivenessModels::new(&rt, [(l0_spec, &l0_bytes), (l1_spec, &l1_bytes)])?,
            embedder: Embedder::new(&rt, rec_spec, &rec_bytes)?,
        })
    }

    pub fn config(&self) -> &VisionConfig {
        &self.config
    }

    /// The recognition model (name, embedding length): a gallery must be of the same model.
    pub fn recognition_model(&self) -> (&str, usize) {
        (&self.embedder.model, self.embedder.dim())
    }

    /// True when several faces go through the recognition model in one inference.
    pub fn embedding_batched(&self) -> bool {
        self.embedder.batched()
    }

    /// An empty gallery for this pipeline's recognition model.
    pub fn empty_gallery(&self) -> Gallery {
        Gallery::new(&self.embedder.model, self.embedder.dim())
    }

    /// Detection thresholds from the config.
    pub fn detect_params(&self) -> DetectParams {
        DetectParams {
            score: self.config.detection_score,
            nms_iou: self.config.nms_iou,
            min_face: self.config.min_face as f32,
        }
    }

    /// Faces in a frame, best detector score first.
    pub fn detect(&mut self, frame: &BgrImage) -> Result<Vec<Detection>, VisionError> {
        let p = self.detect_params();
        self.detector.detect(frame, &p)
    }

    /// Detects faces with explicit thresholds.
    pub fn detect_with(&mut self, frame: &BgrImage, p: &DetectParams) -> Result<Vec<Detection>, VisionError> {
        self.detector.detect(frame, p)
    }

    /// Every face of `frame` with the chosen stages run.
    pub fn analyse(&mut self, frame: &BgrImage, stages: Stages) -> Result<Vec<Face>, VisionError> {
        let dets = self.detect(frame)?;
        self.analyse_detections(frame, dets, stages)
    }

    /// Runs alignment and the chosen stages on given detections of `frame`.
    pub fn analyse_detections(
        &mut self,
        frame: &BgrImage,
        dets: Vec<Detection>,
        stages: Stages,
    ) -> Result<Vec<Face>, VisionError> {
        let mut faces = Vec::with_capacity(dets.len());
        for d in dets {
            let aligned = align::align(frame, &d.landmarks)?;
            debug_assert_eq!(aligned.width, ALIGNED_SIZE);
            let liveness = if stages.liveness {
                Some(self.liveness.check(frame, &d)?)
            } else {
                None
            };
            faces.push(Face {
                sharpness: align::sharpness(&aligned),
                detection: d,
                aligned,
                liveness,
                embedding: None,
            });
        }
        if stages.embedding && !faces.is_empty() {
            let crops: Vec<&BgrImage> = faces.iter().map(|f| &f.aligned).collect();
            let embeddings = self.embedder.embed(&crops)?;
            for (f, e) in faces.iter_mut().zip(embeddings) {
                f.embedding = Some(e);
            }
        }
        Ok(faces)
    }

    /// Embeddings of already aligned 112×112 crops (batched).
    pub fn embed_aligned(&mut self, crops: &[&BgrImage]) -> Result<Vec<Embedding>, VisionError> {
        self.embedder.embed(crops)
    }

    /// Fused liveness of one detection.
    pub fn liveness(&mut self, frame: &BgrImage, d: &Detection) -> Result<Liveness, VisionError> {
        self.liveness.check(frame, d)
    }

    /// True when the liveness passes `liveness_threshold` (R14).
    pub fn is_live(&self, l: &Liveness) -> bool {
        l.real() >= self.config.liveness_threshold
    }

    /// The best enrolled person for an embedding, with the verdict of the thresholds.
    pub fn identify(&self, gallery: &Gallery, embedding: &[f32]) -> Option<Identity> {
        let GalleryMatch {
            person,
            similarity,
            margin,
        } = gallery.search(embedding)?;
        let p = &gallery.persons()[person];
        let accepted =
            similarity >= self.config.match_threshold && margin.is_none_or(|m| m >= self.config.match_margin);
        Some(Identity {
            person_id: p.person_id.clone(),
            name: p.name.clone(),
            role: p.role.clone(),
            similarity,
            margin,
            accepted,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pipeline_moves_to_its_worker_thread_and_a_gallery_is_shared() {
        fn send<T: Send>() {}
        fn sync<T: Send + Sync>() {}
        send::<Pipeline>();
        sync::<Gallery>();
    }
}
