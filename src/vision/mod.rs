//! The face pipeline on ONNX Runtime: model manifest and loading, detection, alignment,
//! liveness, embedding, and the 1:N gallery.
//!
//! [`Pipeline`] is the one entry point for a BGR frame: it returns every face with its box,
//! landmarks, liveness, embedding and (given a [`Gallery`]) its best match. Enrollment,
//! `identify`, `calibrate` and the camera check-in all go through it, so they cannot disagree on
//! preprocessing.

pub mod align;
pub mod calibrate;
pub mod config;
pub mod detect;
pub mod embed;
pub mod fetch;
pub mod fpu;
pub mod gallery;
pub mod image;
pub mod liveness;
pub mod manifest;
pub mod onnx_edit;
pub mod pipeline;
pub mod runtime;

use std::path::PathBuf;

use thiserror::Error;

pub use config::VisionConfig;
pub use detect::Detection;
pub use gallery::{Gallery, GalleryMatch};
pub use image::BgrImage;
pub use liveness::Liveness;
pub use pipeline::{Face, Identity, Pipeline, Stages};

#[derive(Debug, Error)]
pub enum VisionError {
    #[error("ONNX Runtime: {0}")]
    Runtime(String),
    #[error("model {name} ({}): {why}", path.display())]
    Model {
        name: String,
        path: PathBuf,
        why: String,
    },
    #[error("inference failed: {0}")]
    Inference(String),
    #[error("image: {0}")]
    Image(String),
    #[error("{}: {why}", path.display())]
    ImageFile { path: PathBuf, why: String },
    #[error(transparent)]
    Manifest(#[from] manifest::ManifestError),
}
