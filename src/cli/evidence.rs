//! `keys`, `verify` and `export`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};

#[derive(Debug, Args)]
pub struct KeysArgs {
    #[command(subcommand)]
    pub command: KeysCommand,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Print the device's public key and its fingerprint.
    Show {
        #[arg(long)]
        config: PathBuf,
    },
}

/// Check the evidence store, or an exported bundle.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    #[arg(long)]
    pub config: Option<PathBuf>,
    #[arg(long)]
    pub from: Option<String>,
    #[arg(long)]
    pub to: Option<String>,
    #[arg(long)]
    pub bundle: Option<PathBuf>,
    #[arg(long)]
    pub pubkey: Option<String>,
    #[arg(long)]
    pub json: bool,
}

/// Write a session's evidence bundle.
#[derive(Debug, Args)]
pub struct ExportArgs {
    #[arg(long)]
    pub config: PathBuf,
    #[arg(long)]
    pub session: String,
    #[arg(long)]
    pub out: PathBuf,
}

pub fn keys(_args: KeysArgs) -> anyhow::Result<ExitCode> {
    super::not_yet("keys")
}

pub fn verify(_args: VerifyArgs) -> anyhow::Result<ExitCode> {
    super::not_yet("verify")
}

pub fn export(_args: ExportArgs) -> anyhow::Result<ExitCode> {
    super::not_yet("export")
}
