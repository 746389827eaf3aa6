//! ONNX Runtime, loaded at run time from the shared library the config names (`load-dynamic`),
//! and the model sessions built on it.
//!
//! A missing or wrong library is an error (`ort::init_from`), never a panic: without it, `ort`
//! would fall back to `ORT_DYLIB_PATH` and panic on the first call. The library is process-wide:
//! the first successful load wins, later loads of the same path are free.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use ort::environment::Environment;
use ort::session::Session;
use ort::session::builder::GraphOptimizationLevel;
use ring::digest::{SHA256, digest};

use super::VisionError;
use super::manifest::ModelSpec;

/// The loaded runtime; build sessions from it.
#[derive(Clone)]
pub struct Runtime {
    env: Environment,
    threads: usize,
}

/// The library loaded by this process and its environment: ONNX Runtime allows one library
/// and one environment per process, shared by every pipeline.
static LOADED: Mutex<Option<(PathBuf, Environment)>> = Mutex::new(None);

impl Runtime {
    /// Loads the ONNX Runtime library (once per process). `threads` is the intra-op thread
    /// count of each session.
    pub fn load(library: &Path, threads: usize) -> Result<Runtime, VisionError> {
        let mut loaded = LOADED.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((p, env)) = loaded.as_ref() {
            if p != library {
                return Err(VisionError::Runtime(format!(
                    "{}: ONNX Runtime was already loaded from {} in this process",
                    library.display(),
                    p.display()
                )));
            }
            return Ok(Runtime {
                env: env.clone(),
                threads: threads.max(1),
            });
        }
        if !library.is_file() {
            return Err(VisionError::Runtime(format!(
                "{}: no such file (the ONNX Runtime shared library; deploy/setup.sh installs it, \
                 or set vision.ort_library)",
                library.display()
            )));
        }
        let builder = ort::init_from(library).map_err(|e| {
            VisionError::Runtime(format!(
                "{}: not a usable ONNX Runtime library: {e}",
                library.display()
            ))
        })?;
        let env = builder
            .with_name("classproof")
            .build()
            .map_err(|e| VisionError::Runtime(format!("cannot create the ONNX Runtime environment: {e}")))?;
        *loaded = Some((library.to_path_buf(), env.clone()));
        Ok(Runtime {
            env,
            threads: threads.max(1),
        })
    }

    /// Intra-op threads of each session.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Reads a model file, checks it against the manifest's sha256 (only known bytes run on the
    /// box), and returns its bytes.
    pub fn read_model(spec: &ModelSpec, models_dir: &Path) -> Result<Vec<u8>, VisionError> {
        let path = models_dir.join(&spec.file);
        let bytes = std::fs::read(&path).map_err(|e| VisionError::Model {
            name: spec.name.clone(),
            path: path.clone(),
            why: format!(
                "{e}; run `classproof models fetch --dir {}`",
                models_dir.display()
            ),
        })?;
        let sha = hex::encode(digest(&SHA256, &bytes).as_ref());
        if sha != spec.sha256 {
            return Err(VisionError::Model {
                name: spec.name.clone(),
                path,
                why: format!(
                    "sha256 {sha} is not the manifest's {}; run `classproof models fetch --dir {}`",
                    spec.sha256,
                    models_dir.display()
                ),
            });
        }
        Ok(bytes)
    }

    /// A session for model bytes (single-threaded inter-op; `threads` intra-op).
    pub fn session(&self, name: &str, bytes: &[u8]) -> Result<Session, VisionError> {
        let err = |e: String| VisionError::Model {
            name: name.to_string(),
            path: PathBuf::new(),
            why: e,
        };
        Session::builder(&self.env)
            .map_err(|e| err(e.to_string()))?
            .with_optimization_level(GraphOptimizationLevel::All)
            .map_err(|e| err(e.to_string()))?
            .with_intra_threads(self.threads)
            .map_err(|e| err(e.to_string()))?
            .with_inter_threads(1)
            .map_err(|e| err(e.to_string()))?
            // FTZ/DAZ on ONNX Runtime's pool threads (threads > 1); the calling thread is
            // covered by `fpu::flush_subnormals` before each run (see vision::fpu).
            .with_flush_to_zero()
            .map_err(|e| err(e.to_string()))?
            .commit_from_memory(bytes)
            .map_err(|e| err(format!("ONNX Runtime cannot load it: {e}")))
    }
}
