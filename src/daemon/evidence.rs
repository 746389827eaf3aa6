//! Evidence jobs of the daemon: signed checkpoints, retention and disk watch (issue 5).

use std::thread::JoinHandle;

use super::jobs::JobContext;

/// Starts the job; `None` when there is nothing to do.
pub fn spawn(_ctx: JobContext) -> std::io::Result<Option<JoinHandle<()>>> {
    Ok(None)
}
