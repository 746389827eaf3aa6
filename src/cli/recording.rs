//! `run`, `check-config` and `segments`.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use serde_json::json;

use crate::clock::{parse_time_arg, rfc3339_us};
use crate::db;
use crate::evidence::record::Kind;
use crate::evidence::store;
use crate::media::index::{self, Entry};

/// An index entry's type: the kind of the record that vouches for it.
fn entry_type(e: &Entry) -> &'static str {
    match e {
        Entry::Segment(_) => Kind::Segment.as_str(),
        Entry::Gap(_) => Kind::Gap.as_str(),
    }
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The config file.
    #[arg(long)]
    pub config: PathBuf,
}

#[derive(Debug, Args)]
pub struct CheckConfigArgs {
    /// The config file.
    #[arg(long)]
    pub config: PathBuf,
}

#[derive(Debug, Args)]
pub struct SegmentsArgs {
    /// The config file.
    #[arg(long)]
    pub config: PathBuf,
    /// Only this camera.
    #[arg(long)]
    pub camera: Option<String>,
    /// From this time (RFC 3339, local "YYYY-MM-DD HH:MM" or a date).
    #[arg(long)]
    pub from: Option<String>,
    /// Up to this time.
    #[arg(long)]
    pub to: Option<String>,
    /// One JSON object per line.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let config = super::load_config(&args.config)?;
    let problems = config.check_environment();
    if !problems.is_empty() {
        return Err(crate::config::ConfigError::Invalid {
            file: config.file.clone(),
            problems,
        }
        .into());
    }
    crate::daemon::run(config)?;
    Ok(ExitCode::SUCCESS)
}

pub fn check_config(args: CheckConfigArgs) -> anyhow::Result<ExitCode> {
    let config = match super::load_config(&args.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return Ok(ExitCode::from(super::EXIT_BAD_CONFIG));
        }
    };
    let problems = config.check_environment();
    if !problems.is_empty() {
        eprintln!(
            "{}",
            crate::config::ConfigError::Invalid {
                file: config.file.clone(),
                problems
            }
        );
        return Ok(ExitCode::from(super::EXIT_BAD_CONFIG));
    }
    println!("{}", config.summary());
    println!("ok");
    Ok(ExitCode::SUCCESS)
}

pub fn segments(args: SegmentsArgs) -> anyhow::Result<ExitCode> {
    let config = super::load_config(&args.config)?;
    let tz = config.device.timezone;
    let from = args.from.as_deref().map(|s| parse_time_arg(s, tz)).transpose()?;
    let to = args.to.as_deref().map(|s| parse_time_arg(s, tz)).transpose()?;
    let Some(conn) = db::open_existing(&config.device.data_dir)? else {
        if !args.json {
            eprintln!(
                "nothing recorded yet: {} does not exist (`classproof run` creates it)",
                config.db_path().display()
            );
        }
        return Ok(ExitCode::SUCCESS);
    };
    let entries = index::timeline(
        &conn,
        args.camera.as_deref(),
        from.map(|t| t.timestamp_micros()),
        to.map(|t| t.timestamp_micros()),
    )?;
    let mut out = std::io::stdout().lock();
    if !args.json {
        writeln!(
            out,
            "{:<10} {:<8} {:<29} {:<29} {:>9}  detail",
            "camera", "type", "start", "end", "seconds"
        )?;
    }
    for e in &entries {
        // A segment whose file retention deleted (R6): shown as pruned, with when.
        let pruned = match e {
            Entry::Segment(s) => store::pruned_at(&conn, &s.path.to_string_lossy())?,
            Entry::Gap(_) => None,
        };
        let start = rfc3339_us(e.start_us(), tz);
        let end = e.end_us().map(|u| rfc3339_us(u, tz));
        let duration_s = e.end_us().map(|end| (end - e.start_us()) as f64 / 1e6);
        if args.json {
            let mut obj = json!({
                "type": entry_type(e),
                "camera": e.camera(),
                "start": start,
                "end": end,
                "duration_s": duration_s,
            });
            match e {
                Entry::Segment(s) => {
                    obj["path"] = json!(config.device.data_dir.join(&s.path));
                    obj["bytes"] = json!(s.bytes);
                    obj["sha256"] = json!(s.sha256);
                    obj["state"] = json!(s.state.as_str());
                    obj["codec"] = json!(s.codec);
                    obj["stream_id"] = json!(s.stream_id);
                    obj["stream_seq"] = json!(s.stream_seq);
                    obj["media_duration_s"] = json!(s.media_duration_us.map(|u| u as f64 / 1e6));
                    obj["pruned"] = json!(pruned.map(|(_, t)| rfc3339_us(t, tz)));
                    obj["pruned_seq"] = json!(pruned.map(|(seq, _)| seq));
                }
                Entry::Gap(g) => {
                    obj["cause"] = json!(g.cause);
                    obj["detail"] = json!(g.detail);
                    obj["detected"] = json!(rfc3339_us(g.detected_us, tz));
                }
            }
            writeln!(out, "{obj}")?;
        } else {
            let (kind, detail) = match e {
                Entry::Segment(s) => match pruned {
                    Some((seq, t)) => (
                        entry_type(e),
                        format!(
                            "pruned at {} (record {seq}; was {} {})",
                            rfc3339_us(t, tz),
                            s.state.as_str(),
                            s.path.display()
                        ),
                    ),
                    None => (
                        entry_type(e),
                        format!("{} {}", s.state.as_str(), s.path.display()),
                    ),
                },
                Entry::Gap(g) => (
                    entry_type(e),
                    format!("{} {}", g.cause, g.detail.as_deref().unwrap_or("")),
                ),
            };
            writeln!(
                out,
                "{:<10} {:<8} {:<29} {:<29} {:>9}  {}",
                e.camera(),
                kind,
                start,
                end.unwrap_or_else(|| "(open)".into()),
                duration_s.map(|d| format!("{d:.1}")).unwrap_or_default(),
                detail.trim_end()
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
