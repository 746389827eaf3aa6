//! The command-line edge: each command's arguments and what it prints. `main.rs` only parses
//! and dispatches here. This is the one place that uses `anyhow`.

pub mod attendance;
pub mod compliance;
pub mod doctor;
pub mod evidence;
pub mod recording;
pub mod sync;
pub mod upstream;
pub mod vision;

use std::path::Path;
use std::process::ExitCode;

use crate::config::{Config, ConfigError};

/// Exit code for a bad config or bad arguments.
pub const EXIT_BAD_CONFIG: u8 = 2;
/// Exit code for "ran, and found problems" (e.g. `verify` found tampering).
pub const EXIT_PROBLEMS: u8 = 1;

/// Loads the config; the error maps to exit code 2 in `exit_code_for`.
pub fn load_config(path: &Path) -> Result<Config, ConfigError> {
    Config::load(path)
}

/// The config with the sessions the platform stored (`schedule.update`, issue 10) added; the
/// file's win an id clash, said on stderr.
pub fn load_config_with_stored_sessions(path: &Path) -> anyhow::Result<Config> {
    let config = load_config(path)?;
    Ok(match crate::db::open_existing(&config.device.data_dir)? {
        Some(conn) => {
            let (c, warnings) = crate::sync::schedule::effective(&conn, &config)?;
            for w in warnings {
                eprintln!("classproof: {w}");
            }
            c
        }
        None => config,
    })
}

/// The exit code for an error that reached `main`: 2 for config errors, 1 otherwise.
pub fn exit_code_for(err: &anyhow::Error) -> ExitCode {
    if err.chain().any(|e| e.is::<ConfigError>() || e.is::<UsageError>()) {
        ExitCode::from(EXIT_BAD_CONFIG)
    } else {
        ExitCode::FAILURE
    }
}

/// Arguments that parse but make no sense together (exit code 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// True when the error is stdout closing under us (`classproof segments | head`): not an error.
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain()
        .filter_map(|e| e.downcast_ref::<std::io::Error>())
        .any(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
}

/// Prints an error and its whole cause chain once, ripgrep style.
pub fn report_error(err: &anyhow::Error) {
    let mut msg = format!("classproof: {err}");
    for cause in err.chain().skip(1) {
        let c = cause.to_string();
        if !msg.contains(&c) {
            msg += &format!("\n  caused by: {c}");
        }
    }
    eprintln!("{msg}");
}

/// A command that is specified but not built yet.
pub fn not_yet(what: &str) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`{what}` is not available in this build yet")
}
