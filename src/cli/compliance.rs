//! `report` and `events`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

/// Verdicts of a session's class hours.
#[derive(Debug, Args)]
pub struct ReportArgs {
    #[arg(long)]
    pub config: PathBuf,
    /// The session to report on.
    #[arg(long, conflicts_with = "date")]
    pub session: Option<String>,
    /// Report every session of this day (YYYY-MM-DD, local).
    #[arg(long)]
    pub date: Option<String>,
    /// One JSON object per session.
    #[arg(long)]
    pub json: bool,
}

/// The recorded events (verdicts, alarms, …).
#[derive(Debug, Args)]
pub struct EventsArgs {
    #[arg(long)]
    pub config: PathBuf,
    #[arg(long)]
    pub from: Option<String>,
    #[arg(long = "type")]
    pub kind: Option<String>,
    #[arg(long)]
    pub json: bool,
}

pub fn report(_args: ReportArgs) -> anyhow::Result<ExitCode> {
    super::not_yet("report")
}

pub fn events(_args: EventsArgs) -> anyhow::Result<ExitCode> {
    super::not_yet("events")
}
