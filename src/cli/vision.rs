//! `models`, `enroll`, `roster`, `identify` and `calibrate`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};

#[derive(Debug, Args)]
pub struct ModelsArgs {
    #[command(subcommand)]
    pub command: ModelsCommand,
}

#[derive(Debug, Subcommand)]
pub enum ModelsCommand {
    /// Fetch the models of models/manifest.toml, checked by sha256.
    Fetch {
        /// Folder to install the models into.
        #[arg(long, default_value = crate::vision::config::DEFAULT_MODELS_DIR)]
        dir: PathBuf,
        /// A local folder holding byte-identical copies (checked by sha256).
        #[arg(long)]
        mirror: Option<PathBuf>,
    },
    /// Check the installed models against their sha256.
    Verify {
        #[arg(long, default_value = crate::vision::config::DEFAULT_MODELS_DIR)]
        dir: PathBuf,
    },
}

#[derive(Debug, Args)]
pub struct EnrollArgs {
    #[arg(long)]
    pub config: PathBuf,
    #[arg(long)]
    pub person: String,
    #[arg(long)]
    pub name: String,
    #[arg(long)]
    pub role: String,
    pub photos: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct RosterArgs {
    #[command(subcommand)]
    pub command: RosterCommand,
}

#[derive(Debug, Subcommand)]
pub enum RosterCommand {
    /// Enroll everyone listed in a CSV file.
    Import {
        #[arg(long)]
        config: PathBuf,
        file: PathBuf,
    },
    /// Show who is enrolled.
    List {
        #[arg(long)]
        config: PathBuf,
    },
}

#[derive(Debug, Args)]
pub struct IdentifyArgs {
    #[arg(long)]
    pub config: PathBuf,
    pub images: Vec<PathBuf>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct CalibrateArgs {
    #[arg(long)]
    pub config: Option<PathBuf>,
    #[arg(long)]
    pub labels: Option<PathBuf>,
    #[arg(long)]
    pub pairs: Option<PathBuf>,
    #[arg(long)]
    pub target_far: Option<f64>,
    #[arg(long)]
    pub scores: Option<PathBuf>,
    #[arg(long)]
    pub json: bool,
}

pub fn models(_args: ModelsArgs) -> anyhow::Result<ExitCode> {
    super::not_yet("models")
}

pub fn enroll(_args: EnrollArgs) -> anyhow::Result<ExitCode> {
    super::not_yet("enroll")
}

pub fn roster(_args: RosterArgs) -> anyhow::Result<ExitCode> {
    super::not_yet("roster")
}

pub fn identify(_args: IdentifyArgs) -> anyhow::Result<ExitCode> {
    super::not_yet("identify")
}

pub fn calibrate(_args: CalibrateArgs) -> anyhow::Result<ExitCode> {
    super::not_yet("calibrate")
}
