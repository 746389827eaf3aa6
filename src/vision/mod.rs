//! The face pipeline on ONNX Runtime: model manifest and loading, detection, alignment,
//! liveness, embedding, and the 1:N gallery.

pub mod config;
pub mod fetch;
pub mod manifest;

pub use config::VisionConfig;
