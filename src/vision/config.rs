//! `[vision]`: models, ONNX Runtime and thresholds.

use std::path::PathBuf;

use crate::config::{Problems, Section};

/// Where the set-up command installs the models listed in models/manifest.toml.
pub const DEFAULT_MODELS_DIR: &str = "/usr/local/share/classproof/models";
/// Where the set-up command installs the ONNX Runtime shared library.
pub const DEFAULT_ORT_LIBRARY: &str = "/usr/local/lib/classproof/libonnxruntime.so.1.31.1";

/// `[vision]`.
#[derive(Debug, Clone)]
pub struct VisionConfig {
    /// Load the face models. Default true; a recording-only box may switch it off.
    pub enabled: bool,
    /// Folder holding the model files. Default `/usr/local/share/classproof/models`.
    pub models_dir: PathBuf,
    /// The ONNX Runtime shared library. Default `/usr/local/lib/classproof/libonnxruntime.so.1.31.1`.
    pub ort_library: PathBuf,
}

impl Default for VisionConfig {
    fn default() -> Self {
        VisionConfig {
            enabled: true,
            models_dir: PathBuf::from(DEFAULT_MODELS_DIR),
            ort_library: PathBuf::from(DEFAULT_ORT_LIBRARY),
        }
    }
}

impl VisionConfig {
    pub fn read(s: &Section, p: &mut Problems) -> VisionConfig {
        let d = VisionConfig::default();
        VisionConfig {
            enabled: s.bool(p, "enabled").unwrap_or(d.enabled),
            models_dir: s.path(p, "models_dir").unwrap_or(d.models_dir),
            ort_library: s.path(p, "ort_library").unwrap_or(d.ort_library),
        }
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
                "the ONNX Runtime library (installed by deploy/setup.sh)",
            );
        }
        if !self.models_dir.is_dir() {
            p.push(
                "vision.models_dir",
                Some(format!("{:?}", self.models_dir.display().to_string())),
                "a folder with the model files (run `classproof models fetch`)",
            );
        }
    }

    pub fn summary(&self) -> String {
        if self.enabled {
            format!(
                "models {} | runtime {}",
                self.models_dir.display(),
                self.ort_library.display()
            )
        } else {
            "off".into()
        }
    }
}
