//! `classproof sync status`: the outbox and the broker connection as the sync job left them.

use std::path::PathBuf;
use std::process::ExitCode;

use chrono::Utc;
use clap::{Args, Subcommand};
use serde_json::json;

use crate::clock::rfc3339_us;
use crate::db;
use crate::sync::{UpstreamConfig, outbox};

#[derive(Debug, Args)]
pub struct SyncArgs {
    #[command(subcommand)]
    pub command: SyncCommand,
}

#[derive(Debug, Subcommand)]
pub enum SyncCommand {
    /// Broker, connection, cursor, backlog and the last error.
    Status(StatusArgs),
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The config file.
    #[arg(long)]
    pub config: PathBuf,
    /// One JSON object.
    #[arg(long)]
    pub json: bool,
}

pub fn sync(args: SyncArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        SyncCommand::Status(a) => status(a),
    }
}

fn status(args: StatusArgs) -> anyhow::Result<ExitCode> {
    let config = super::load_config(&args.config)?;
    let tz = config.device.timezone;
    let configured = config.upstream.as_ref().map(|u| u.broker.to_string());
    let s = match db::open_existing(&config.device.data_dir)? {
        Some(conn) => Some(outbox::status(&conn)?),
        None => None,
    };
    let now = Utc::now().timestamp_micros();
    let t = |us: Option<i64>| us.map(|u| rfc3339_us(u, tz));
    if args.json {
        let v = match &s {
            Some(s) => json!({
                "upstream": configured,
                "broker": s.broker.clone().or(configured.clone()),
                "connected": s.connected,
                "since": t(s.since_us),
                "cursor": s.cursor,
                "checkpoint_cursor": s.checkpoint_cursor,
                "head": s.head,
                "backlog": {
                    "records": s.backlog_records,
                    "oldest": t(s.backlog_oldest_us),
                    "oldest_age_s": s.backlog_oldest_us.map(|o| (now - o).max(0) / 1_000_000),
                },
                "last_error": s.last_error,
                "last_error_time": t(s.last_error_us),
                "alarms": {"upstream": s.upstream_alarm, "sync_backlog": s.backlog_alarm},
            }),
            None => json!({"upstream": configured, "connected": false, "cursor": 0, "head": 0,
                           "backlog": {"records": 0, "oldest": null, "oldest_age_s": null}}),
        };
        println!("{v}");
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "upstream    {}",
        UpstreamConfig::summary(config.upstream.as_ref())
    );
    let Some(s) = s else {
        println!(
            "nothing recorded yet: {} does not exist",
            config.db_path().display()
        );
        return Ok(ExitCode::SUCCESS);
    };
    let since = t(s.since_us).unwrap_or_else(|| "never".into());
    match (&s.broker, s.connected) {
        (Some(b), true) => println!("connection  connected to {b} since {since}"),
        (Some(b), false) => println!("connection  not connected to {b} since {since}"),
        (None, _) => println!("connection  never connected"),
    }
    println!(
        "cursor      record {} of {} (checkpoint row {})",
        s.cursor, s.head, s.checkpoint_cursor
    );
    match s.backlog_oldest_us {
        Some(o) => println!(
            "backlog     {} records, the oldest from {} ({} ago)",
            s.backlog_records,
            rfc3339_us(o, tz),
            humantime::format_duration(std::time::Duration::from_secs(
                ((now - o).max(0) / 1_000_000) as u64
            ))
        ),
        None => println!("backlog     none"),
    }
    match (&s.last_error, s.last_error_us) {
        (Some(e), Some(at)) => println!("last error  {} at {}", e, rfc3339_us(at, tz)),
        _ => println!("last error  none"),
    }
    if s.upstream_alarm || s.backlog_alarm {
        println!(
            "alarms      {}",
            [("upstream", s.upstream_alarm), ("sync_backlog", s.backlog_alarm)]
                .iter()
                .filter(|(_, on)| *on)
                .map(|(n, _)| *n)
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(ExitCode::SUCCESS)
}
