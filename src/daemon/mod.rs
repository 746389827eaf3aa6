//! `classproof run`: wires cameras, the store and the background jobs together.
//!
//! Threads: one per camera (`media::camera`), one store thread that owns the write path of
//! the segment index and the evidence log (`store`), one per background job (`verdicts`,
//! `evidence`), and the main thread waiting for SIGTERM/SIGINT.

pub mod evidence;
pub mod jobs;
pub mod verdicts;

use thiserror::Error;

use crate::config::Config;

#[derive(Debug, Error)]
pub enum DaemonError {
    #[error("{0}")]
    Db(#[from] crate::db::DbError),
}

/// Runs until SIGTERM or SIGINT. TODO(issue 2): the daemon lands with the recorder.
pub fn run(_config: Config) -> Result<(), DaemonError> {
    Ok(())
}
