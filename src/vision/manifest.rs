//! models/manifest.toml, compiled into the binary: which model files exist, their sha256, where
//! to get them, and how each model's input is prepared (channel order, normalisation).
//!
//! Architecture invariant: preprocessing facts (channel order, mean, scale, input size) are read
//! from here, not repeated as literals in the stages, so the manifest stays the one place that
//! says what a model expects.

use serde::Deserialize;
use thiserror::Error;

/// The manifest text as committed.
pub const MANIFEST_TOML: &str = include_str!("../../models/manifest.toml");

#[derive(Debug, Error)]
pub enum ManifestError {
    #[error("models/manifest.toml: {0}")]
    Parse(String),
    #[error("no model named {name:?} in models/manifest.toml (known: {known})")]
    Unknown { name: String, known: String },
}

/// What a model is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Task {
    Detection,
    Recognition,
    Liveness,
}

/// Channel order of the pixels fed to a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum ChannelOrder {
    #[serde(rename = "BGR")]
    Bgr,
    #[serde(rename = "RGB")]
    Rgb,
}

/// A model's input tensor and its normalisation: `x' = (x - mean) * scale` on 0..255 pixels.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputSpec {
    pub name: String,
    /// NCHW; -1 marks a dynamic dimension.
    pub shape: [i64; 4],
    pub channel_order: ChannelOrder,
    pub mean: f32,
    pub scale: f32,
}

impl InputSpec {
    /// Input height and width.
    pub fn size(&self) -> (usize, usize) {
        (self.shape[2].max(1) as usize, self.shape[3].max(1) as usize)
    }
}

/// One `[[model]]` entry.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    pub name: String,
    pub file: String,
    pub task: Task,
    /// Fetched without being asked for by name.
    pub default: bool,
    pub sha256: String,
    pub bytes: u64,
    pub urls: Vec<String>,
    pub licence: String,
    pub licence_note: String,
    pub preprocess: String,
    pub output: String,
    pub input: InputSpec,
    /// Recognition models: length of the embedding.
    #[serde(default)]
    pub embedding_dim: Option<usize>,
    /// Liveness models: how much larger than the detector box the crop is.
    #[serde(default)]
    pub crop_scale: Option<f32>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub model: Vec<ModelSpec>,
}

impl Manifest {
    /// The manifest compiled into this binary.
    pub fn embedded() -> Result<Manifest, ManifestError> {
        Manifest::parse(MANIFEST_TOML)
    }

    pub fn parse(text: &str) -> Result<Manifest, ManifestError> {
        let m: Manifest = toml::from_str(text).map_err(|e| ManifestError::Parse(e.to_string()))?;
        for spec in &m.model {
            let bad = |what: &str| ManifestError::Parse(format!("model {:?}: {what}", spec.name));
            if spec.sha256.len() != 64 || !spec.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(bad("sha256 must be 64 hex digits"));
            }
            if spec
                .urls
                .iter()
                .any(|u| u.contains("/main/") || u.contains("/master/"))
            {
                return Err(bad("URLs must be pinned to a commit, not a branch"));
            }
            if spec.task == Task::Recognition && spec.embedding_dim.is_none() {
                return Err(bad("a recognition model needs embedding_dim"));
            }
            if spec.task == Task::Liveness && spec.crop_scale.is_none() {
                return Err(bad("a liveness model needs crop_scale"));
            }
        }
        Ok(m)
    }

    /// The model called `name`.
    pub fn get(&self, name: &str) -> Result<&ModelSpec, ManifestError> {
        self.model
            .iter()
            .find(|m| m.name == name)
            .ok_or_else(|| ManifestError::Unknown {
                name: name.to_string(),
                known: self.names().join(", "),
            })
    }

    /// Names of every model, in manifest order.
    pub fn names(&self) -> Vec<&str> {
        self.model.iter().map(|m| m.name.as_str()).collect()
    }

    /// The models fetched when none is asked for by name.
    pub fn defaults(&self) -> Vec<&ModelSpec> {
        self.model.iter().filter(|m| m.default).collect()
    }

    /// Names of the models with this task.
    pub fn names_for(&self, task: Task) -> Vec<&str> {
        self.model
            .iter()
            .filter(|m| m.task == task)
            .map(|m| m.name.as_str())
            .collect()
    }
}

/// Name of the detector the pipeline uses.
pub const DETECTOR: &str = "yunet_2023mar";
/// Names of the two liveness models, fused by averaging (official MiniFASNet fusion).
pub const LIVENESS: [&str; 2] = ["minifasnet_v2", "minifasnet_v1se"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_manifest_parses_and_describes_the_default_set() {
        let m = Manifest::embedded().unwrap();
        let defaults: Vec<_> = m.defaults().iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            defaults,
            ["yunet_2023mar", "fr_feature", "minifasnet_v2", "minifasnet_v1se"]
        );
        let sface = m.get("sface").unwrap();
        assert!(!sface.default);
        assert_eq!(sface.embedding_dim, Some(128));
        assert_eq!(sface.input.channel_order, ChannelOrder::Rgb);
        let fr = m.get("fr_feature").unwrap();
        assert_eq!(fr.input.channel_order, ChannelOrder::Bgr);
        assert_eq!((fr.input.mean, fr.input.scale), (127.0, 1.0 / 128.0));
        assert_eq!(m.get("minifasnet_v1se").unwrap().crop_scale, Some(4.0));
        for spec in &m.model {
            assert!(!spec.urls.is_empty(), "{} has no URL", spec.name);
            assert!(spec.urls.iter().all(|u| u.starts_with("https://")));
        }
        assert!(m.get(DETECTOR).is_ok());
        assert!(LIVENESS.iter().all(|n| m.get(n).is_ok()));
    }

    #[test]
    fn unpinned_urls_and_unknown_names_are_refused() {
        let text = MANIFEST_TOML.replacen("0047ac24afb1a50a0c6105001c89d1b5b805dbf1", "main", 1);
        let e = Manifest::parse(&text).unwrap_err();
        assert!(e.to_string().contains("pinned to a commit"), "{e}");
        let e = Manifest::embedded().unwrap().get("arcface").unwrap_err();
        assert!(e.to_string().contains("known: yunet_2023mar, fr_feature"), "{e}");
    }
}
