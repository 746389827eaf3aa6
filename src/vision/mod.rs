//! The face pipeline on ONNX Runtime: model manifest and loading, detection, alignment,
//! liveness, embedding, and the 1:N gallery.

pub mod config;

pub use config::VisionConfig;
