//! `[vision]`: models, ONNX Runtime and thresholds. Every key is documented in docs/vision.md.

use std::path::{Path, PathBuf};

use crate::config::{Problems, Section};

use super::manifest::{DETECTOR, LIVENESS, Manifest, Task};

/// Where the set-up command installs the models listed in models/manifest.toml.
pub const DEFAULT_MODELS_DIR: &str = "/usr/local/share/classproof/models";
/// Where the set-up command installs the ONNX Runtime shared library.
pub const DEFAULT_ORT_LIBRARY: &str = "/usr/local/lib/classproof/libonnxruntime.so.1.31.1";
/// Default recognition model (works offline, shipped in the mirror); `sface` is the production
/// choice where the box can download it (models/manifest.toml).
pub const DEFAULT_RECOGNITION_MODEL: &str = "fr_feature";
/// Default intra-op threads of each model session: one per analysis worker (the box has 2
/// cores and records at the same time).
pub const DEFAULT_THREADS: usize = 1;
/// Default detector score threshold (YuNet score = sqrt(cls·obj)).
pub const DEFAULT_DETECTION_SCORE: f32 = 0.6;
/// Default IoU above which overlapping detections are merged (non-maximum suppression).
pub const DEFAULT_NMS_IOU: f32 = 0.3;
/// Default smallest face reported, in frame pixels (shorter side of the detector box).
pub const DEFAULT_MIN_FACE: u32 = 40;
/// Default cosine similarity at or above which a face matches an enrolled person. Set from the
/// impostor side (R14: 替课): 0.02 % of impostor pairs accepted on a held-out East-Asian webcam
/// set (TAR 97.0 %), above every impostor pair of ../shared/faces-dev (NUAA maximum 0.153,
/// celebrity 0.302) and below every NUAA genuine pair (minimum 0.609); docs/calibration.md.
pub const DEFAULT_MATCH_THRESHOLD: f32 = 0.50;
/// Default margin the best person must have over the second-best one for a match: genuine
/// photos of faces-dev beat the best other person by at least 0.316 (docs/calibration.md).
pub const DEFAULT_MATCH_MARGIN: f32 = 0.10;
/// Default fused MiniFASNet P(real) at or above which a face counts as live (R14).
pub const DEFAULT_LIVENESS_THRESHOLD: f32 = 0.5;
/// Default smallest face accepted for enrollment (shorter side of the box, pixels).
pub const DEFAULT_ENROLL_MIN_FACE: u32 = 80;
/// Default smallest sharpness accepted for enrollment (variance of the Laplacian of the
/// aligned 112×112 grey crop).
pub const DEFAULT_ENROLL_MIN_SHARPNESS: f32 = 100.0;
/// Default smallest detector score of an enrollment face: stricter than detection, so that an
/// animal or a face-like pattern is "no face" at enrollment (faces-dev: real faces ≥ 0.90,
/// a dog 0.85).
pub const DEFAULT_ENROLL_MIN_SCORE: f32 = 0.9;

/// `[vision]`.
#[derive(Debug, Clone)]
pub struct VisionConfig {
    /// Load the face models. Default true; a recording-only box may switch it off.
    pub enabled: bool,
    /// Folder holding the model files. Default `/usr/local/share/classproof/models`.
    pub models_dir: PathBuf,
    /// The ONNX Runtime shared library. Default `/usr/local/lib/classproof/libonnxruntime.so.1.31.1`.
    pub ort_library: PathBuf,
    /// Which recognition model makes the templates: `fr_feature` (default) or `sface`.
    /// Templates of one model never match the other's: re-enroll after changing it.
    pub recognition_model: String,
    /// Intra-op threads per model session. Default 1, from 1 to 16.
    pub threads: usize,
    /// Detector score threshold. Default 0.6, from 0.1 to 0.99.
    pub detection_score: f32,
    /// IoU of the non-maximum suppression. Default 0.3, from 0.05 to 0.95.
    pub nms_iou: f32,
    /// Smallest face reported (shorter side of the box, frame pixels). Default 40, 8 to 2000.
    pub min_face: u32,
    /// Cosine similarity at or above which a face is the enrolled person. Default 0.50, from
    /// -1 to 1.
    pub match_threshold: f32,
    /// Margin over the second-best person a match also needs. Default 0.10, 0 to 1 (0 = off).
    pub match_margin: f32,
    /// Fused liveness P(real) at or above which a face counts as live. Default 0.5, 0 to 1.
    pub liveness_threshold: f32,
    /// Smallest face accepted at enrollment (pixels). Default 80, 16 to 2000.
    pub enroll_min_face: u32,
    /// Smallest sharpness accepted at enrollment. Default 100, 0 to 10000.
    pub enroll_min_sharpness: f32,
    /// Smallest detector score of an enrollment face. Default 0.9, from 0.1 to 0.99.
    pub enroll_min_score: f32,
    /// Similarity to another enrolled person above which enrollment warns of a possible
    /// duplicate or swapped identity. Default: `match_threshold`.
    pub duplicate_threshold: f32,
    /// Check liveness at enrollment (reject spoof photos). Default true; switch off only to
    /// enroll from scans of ID photos, which look like prints to the liveness models.
    pub enroll_liveness: bool,
}

impl Default for VisionConfig {
    fn default() -> Self {
        VisionConfig {
            enabled: true,
            models_dir: PathBuf::from(DEFAULT_MODELS_DIR),
            ort_library: PathBuf::from(DEFAULT_ORT_LIBRARY),
            recognition_model: DEFAULT_RECOGNITION_MODEL.into(),
            threads: DEFAULT_THREADS,
            detection_score: DEFAULT_DETECTION_SCORE,
            nms_iou: DEFAULT_NMS_IOU,
            min_face: DEFAULT_MIN_FACE,
            match_threshold: DEFAULT_MATCH_THRESHOLD,
            match_margin: DEFAULT_MATCH_MARGIN,
            liveness_threshold: DEFAULT_LIVENESS_THRESHOLD,
            enroll_min_face: DEFAULT_ENROLL_MIN_FACE,
            enroll_min_sharpness: DEFAULT_ENROLL_MIN_SHARPNESS,
            enroll_min_score: DEFAULT_ENROLL_MIN_SCORE,
            duplicate_threshold: DEFAULT_MATCH_THRESHOLD,
            enroll_liveness: true,
        }
    }
}

impl VisionConfig {
    pub fn read(s: &Section, p: &mut Problems) -> VisionConfig {
        let d = VisionConfig::default();
        let f = |p: &mut Problems, key: &str, min: f64, max: f64, def: f32| {
            s.float(p, key, min, max).map(|x| x as f32).unwrap_or(def)
        };
        let recognition = match Manifest::embedded() {
            Ok(m) => m.names_for(Task::Recognition).join(" "),
            Err(_) => DEFAULT_RECOGNITION_MODEL.to_string(),
        };
        let recognition: Vec<&str> = recognition.split(' ').collect();
        let match_threshold = f(p, "match_threshold", -1.0, 1.0, d.match_threshold);
        VisionConfig {
            enabled: s.bool(p, "enabled").unwrap_or(d.enabled),
            models_dir: s.path(p, "models_dir").unwrap_or(d.models_dir),
            ort_library: s.path(p, "ort_library").unwrap_or(d.ort_library),
            recognition_model: s
                .choice(p, "recognition_model", &recognition)
                .unwrap_or(d.recognition_model),
            threads: s.integer(p, "threads", 1, 16).map_or(d.threads, |t| t as usize),
            detection_score: f(p, "detection_score", 0.1, 0.99, d.detection_score),
            nms_iou: f(p, "nms_iou", 0.05, 0.95, d.nms_iou),
            min_face: s.integer(p, "min_face", 8, 2000).map_or(d.min_face, |x| x as u32),
            match_threshold,
            match_margin: f(p, "match_margin", 0.0, 1.0, d.match_margin),
            liveness_threshold: f(p, "liveness_threshold", 0.0, 1.0, d.liveness_threshold),
            enroll_min_face: s
                .integer(p, "enroll_min_face", 16, 2000)
                .map_or(d.enroll_min_face, |x| x as u32),
            enroll_min_sharpness: f(p, "enroll_min_sharpness", 0.0, 10000.0, d.enroll_min_sharpness),
            enroll_min_score: f(p, "enroll_min_score", 0.1, 0.99, d.enroll_min_score),
            duplicate_threshold: f(p, "duplicate_threshold", -1.0, 1.0, match_threshold),
            enroll_liveness: s.bool(p, "enroll_liveness").unwrap_or(d.enroll_liveness),
        }
    }

    /// Names of the models this config needs, in manifest order of roles: detector,
    /// recognition, the two liveness models.
    pub fn needed_models(&self) -> Vec<&str> {
        let mut v = vec![DETECTOR, self.recognition_model.as_str()];
        v.extend(LIVENESS);
        v
    }

    /// Path of a model file in `models_dir`.
    pub fn model_path(&self, file: &str) -> PathBuf {
        self.models_dir.join(file)
    }

    /// Model files and the runtime library must be where the config says.
    pub fn check_environment(&self, p: &mut Problems) {
        if !self.enabled {
            return;
        }
        if !self.ort_library.is_file() {
            p.push(
                "vision.ort_library",
                Some(format!("{:?}", self.ort_library.display().to_string())),
                "the ONNX Runtime shared library (deploy/setup.sh installs it from the \
                 onnxruntime==1.31.1 wheel)",
            );
        }
        let manifest = match Manifest::embedded() {
            Ok(m) => m,
            Err(e) => {
                p.push("vision", None, e.to_string());
                return;
            }
        };
        let models_dir = Some(format!("{:?}", self.models_dir.display().to_string()));
        for name in self.needed_models() {
            let Ok(spec) = manifest.get(name) else { continue };
            let file = self.models_dir.join(&spec.file);
            if !file.is_file() {
                let fetch = format!(
                    "run `classproof models fetch --dir {}{}`",
                    shell_word(&self.models_dir),
                    if spec.default {
                        String::new()
                    } else {
                        format!(" --model {name}")
                    }
                );
                if name == self.recognition_model {
                    p.push(
                        "vision.recognition_model",
                        Some(format!("{name:?}")),
                        format!(
                            "a model installed in {}: {} is missing; {fetch}",
                            self.models_dir.display(),
                            spec.file
                        ),
                    );
                } else {
                    p.push(
                        "vision.models_dir",
                        models_dir.clone(),
                        format!("a folder holding {} (model {name}); {fetch}", spec.file),
                    );
                }
            }
        }
    }

    pub fn summary(&self) -> String {
        if self.enabled {
            format!(
                "models {} ({}) | runtime {} | match ≥ {:.2} | live ≥ {:.2}",
                self.models_dir.display(),
                self.recognition_model,
                self.ort_library.display(),
                self.match_threshold,
                self.liveness_threshold
            )
        } else {
            "off".into()
        }
    }
}

fn shell_word(p: &Path) -> String {
    let s = p.display().to_string();
    if s.chars().all(|c| c.is_ascii_alphanumeric() || "/._-".contains(c)) {
        s
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(src: &str) -> (VisionConfig, Vec<String>) {
        let t: toml::Table = src.parse().unwrap();
        let dir = PathBuf::from("/etc/classproof");
        let root = Section::root(&t, &dir);
        let mut p = Problems::default();
        let c = VisionConfig::read(&root, &mut p);
        root.finish(&mut p);
        (c, p.0.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn defaults_and_overrides() {
        let (c, ps) = read("");
        assert!(ps.is_empty(), "{ps:?}");
        assert_eq!(c.recognition_model, "fr_feature");
        assert_eq!(
            c.needed_models(),
            ["yunet_2023mar", "fr_feature", "minifasnet_v2", "minifasnet_v1se"]
        );
        let (c, ps) = read("recognition_model = \"sface\"\nmatch_threshold = 0.5\nthreads = 2\n");
        assert!(ps.is_empty(), "{ps:?}");
        assert_eq!(c.needed_models()[1], "sface");
        assert_eq!(c.match_threshold, 0.5);
        assert_eq!(c.duplicate_threshold, 0.5, "follows match_threshold");
        assert_eq!(c.threads, 2);
    }

    #[test]
    fn bad_values_are_reported_with_their_key() {
        let (_, ps) = read("recognition_model = \"arcface\"\nthreads = 0\nliveness_threshold = 2\n");
        assert_eq!(ps.len(), 3, "{ps:?}");
        assert!(ps[0].contains("recognition_model = \"arcface\": expected one of fr_feature | sface"));
        assert!(ps[1].starts_with("threads = 0"));
        assert!(ps[2].starts_with("liveness_threshold = 2"));
    }

    #[test]
    fn missing_models_and_library_are_named_with_the_command_to_run() {
        let dir = tempfile::tempdir().unwrap();
        let c = VisionConfig {
            models_dir: dir.path().to_path_buf(),
            ort_library: dir.path().join("libonnxruntime.so"),
            recognition_model: "sface".into(),
            ..VisionConfig::default()
        };
        let mut p = Problems::default();
        c.check_environment(&mut p);
        let ps: Vec<String> = p.0.iter().map(ToString::to_string).collect();
        assert_eq!(ps.len(), 5, "{ps:#?}");
        assert!(ps[0].starts_with("vision.ort_library"), "{ps:#?}");
        assert!(ps[1].contains("face_detection_yunet_2023mar.onnx (model yunet_2023mar)"));
        assert!(ps[1].contains("run `classproof models fetch --dir "), "{ps:#?}");
        assert!(
            ps[2].starts_with("vision.recognition_model = \"sface\""),
            "{ps:#?}"
        );
        assert!(ps[2].ends_with("--model sface`"), "{ps:#?}");
    }
}
