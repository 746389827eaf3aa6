//! `keys`, `verify` and `export`.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use chrono::{NaiveDate, Utc};
use clap::{Args, Subcommand};
use serde_json::json;

use super::UsageError;
use crate::clock::{parse_time_arg, rfc3339_us};
use crate::compliance::schedule::session_span;
use crate::db;
use crate::evidence::bundle::{self, Span};
use crate::evidence::check::Problem;
use crate::evidence::key::{self, PublicKey};
use crate::evidence::store;
use crate::evidence::verify::{self, Options, Report};

#[derive(Debug, Args)]
pub struct KeysArgs {
    #[command(subcommand)]
    pub command: KeysCommand,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Print the device's public key and its fingerprint (and the keys it had before).
    Show {
        /// The config file.
        #[arg(long)]
        config: PathBuf,
        /// One JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Replace the device key; old checkpoints stay verifiable (docs/evidence.md). Run as the
    /// daemon's user; the daemon may keep running.
    Rotate {
        /// The config file.
        #[arg(long)]
        config: PathBuf,
    },
}

/// Check the evidence store, or an exported bundle.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The config file (to check the box's own store).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Only records from this time on (RFC 3339, local "YYYY-MM-DD HH:MM" or a date).
    #[arg(long)]
    pub from: Option<String>,
    /// Only records up to this time.
    #[arg(long)]
    pub to: Option<String>,
    /// A bundle directory written by `classproof export`.
    #[arg(long)]
    pub bundle: Option<PathBuf>,
    /// The device's public key ("ed25519:…", or a file holding it). Required for a bundle;
    /// for the store, trust only this key instead of the box's own key table.
    #[arg(long)]
    pub pubkey: Option<String>,
    /// One JSON object with every problem.
    #[arg(long)]
    pub json: bool,
}

/// Write a session's evidence bundle.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The config file.
    #[arg(long)]
    pub config: PathBuf,
    /// The session (its span and cameras come from the schedule).
    #[arg(long)]
    pub session: Option<String>,
    /// Which day's occurrence of a recurring session (local date; default today).
    #[arg(long)]
    pub date: Option<String>,
    /// Instead of a session: from this time…
    #[arg(long)]
    pub from: Option<String>,
    /// …to this time.
    #[arg(long)]
    pub to: Option<String>,
    /// With --from/--to: these cameras (repeat; default every configured camera).
    #[arg(long)]
    pub camera: Vec<String>,
    /// A new (or empty) directory for the bundle.
    #[arg(long)]
    pub out: PathBuf,
}

pub fn keys(args: KeysArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        KeysCommand::Show { config, json } => keys_show(config, json),
        KeysCommand::Rotate { config } => keys_rotate(config),
    }
}

fn keys_show(config: PathBuf, json: bool) -> anyhow::Result<ExitCode> {
    let config = super::load_config(&config)?;
    let tz = config.device.timezone;
    // Read-only: `keys show` is often run as root, and must not create a key file the
    // daemon's user cannot read. The daemon creates the key on its first start.
    let no_key = || {
        anyhow::anyhow!(
            "no device key yet: it is created when the daemon first starts (`classproof run --config {}`)",
            config.file.display()
        )
    };
    let conn = db::open_read_only(&config.device.data_dir).map_err(|_| no_key())?;
    let rows = store::keys(&conn)?;
    let current = store::current_fingerprint(&conn)?.ok_or_else(no_key)?;
    let row = rows
        .iter()
        .find(|k| k.fingerprint == current)
        .ok_or_else(no_key)?;
    let public = PublicKey::parse(&row.public_key)?;
    let mut out = std::io::stdout().lock();
    if json {
        let history: Vec<_> = rows
            .iter()
            .map(|k| {
                json!({
                    "fingerprint": k.fingerprint,
                    "public_key": k.public_key,
                    "created": rfc3339_us(k.created_us, tz),
                    "retired": k.retired_us.map(|u| rfc3339_us(u, tz)),
                    "retired_seq": k.retired_seq,
                })
            })
            .collect();
        let obj = json!({
            "device": config.device.id,
            "public_key": public.to_text(),
            "fingerprint": public.fingerprint(),
            "key_file": key::private_path(&config.device.data_dir),
            "keys": history,
        });
        writeln!(out, "{obj}")?;
    } else {
        writeln!(out, "device       {}", config.device.id)?;
        writeln!(out, "public key   {}", public.to_text())?;
        writeln!(out, "fingerprint  {}", group(&public.fingerprint()))?;
        writeln!(out, "created      {}", rfc3339_us(row.created_us, tz))?;
        for k in rows.iter().filter(|k| k.retired_us.is_some()) {
            writeln!(
                out,
                "retired      {} (until seq {}, {})",
                group(&k.fingerprint),
                k.retired_seq.unwrap_or_default(),
                k.retired_us.map(|u| rfc3339_us(u, tz)).unwrap_or_default()
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A fingerprint in groups of four, for reading out over the phone.
fn group(fp: &str) -> String {
    fp.as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

fn keys_rotate(config: PathBuf) -> anyhow::Result<ExitCode> {
    let config = super::load_config(&config)?;
    let data_dir = &config.device.data_dir;
    let mut conn = db::open(data_dir)?;
    let (old, new, seq) = store::rotate_key(&mut conn, data_dir, &config.device.id, Utc::now())
        .context("rotating the device key")?;
    println!(
        "retired      {} (signs up to seq {seq})",
        group(&old.fingerprint())
    );
    println!("public key   {}", new.to_text());
    println!("fingerprint  {}", group(&new.fingerprint()));
    println!("register the new public key upstream; keep the old one for checking older evidence");
    Ok(ExitCode::SUCCESS)
}

pub fn verify(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let pubkey = args.pubkey.as_deref().map(PublicKey::from_arg).transpose()?;
    let (report, bundle_info) = if let Some(dir) = &args.bundle {
        if args.from.is_some() || args.to.is_some() {
            return Err(UsageError("--from/--to apply to the store, not to a bundle".into()).into());
        }
        let Some(pubkey) = pubkey else {
            return Err(UsageError(
                "--bundle needs --pubkey: the device's public key as registered (ed25519:…)".into(),
            )
            .into());
        };
        let (r, info) = bundle::verify_bundle(dir, &pubkey)?;
        (r, Some(info))
    } else {
        let Some(config) = &args.config else {
            return Err(
                UsageError("give --config FILE (the store) or --bundle DIR --pubkey KEY".into()).into(),
            );
        };
        let config = super::load_config(config)?;
        let tz = config.device.timezone;
        let from = args.from.as_deref().map(|s| parse_time_arg(s, tz)).transpose()?;
        let to = args.to.as_deref().map(|s| parse_time_arg(s, tz)).transpose()?;
        let opts = Options {
            from_us: from.map(|t| t.timestamp_micros()),
            to_us: to.map(|t| t.timestamp_micros()),
            pubkey,
            retention: config.rules.profile.retention,
        };
        let report = verify::verify_store(&config.device.data_dir, &config.device.id, &opts)
            .with_context(|| "nothing recorded yet? (the database is created by `classproof run`)")?;
        (report, None)
    };
    let mut out = std::io::stdout().lock();
    if args.json {
        let mut v = serde_json::to_value(&report)?;
        if let Some(info) = &bundle_info {
            v["bundle"] = serde_json::to_value(info)?;
        }
        writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
    } else {
        print_report(&mut out, &report)?;
        if let Some(info) = &bundle_info {
            writeln!(
                out,
                "bundle       {} {} .. {} cameras {}{}",
                info.session.as_deref().unwrap_or("(span)"),
                info.from,
                info.to,
                info.cameras.join(","),
                if info.complete {
                    ""
                } else {
                    " (the checkpoints do not bracket the whole span)"
                }
            )?;
            for (cam, c) in &info.coverage {
                writeln!(out, "  {cam:<10} {c}")?;
            }
        }
    }
    Ok(if report.intact {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(super::EXIT_PROBLEMS)
    })
}

fn print_report(out: &mut impl Write, r: &Report) -> std::io::Result<()> {
    writeln!(out, "device       {}", r.device)?;
    writeln!(
        out,
        "records      {} (seq {}..={}), {} after the last checkpoint",
        r.records, r.first_seq, r.last_seq, r.unsigned_records
    )?;
    writeln!(
        out,
        "checkpoints  {} with a good signature, {} compared with the log",
        r.checkpoints, r.checkpoints_matched
    )?;
    writeln!(
        out,
        "files        {} checked, {} pruned after retention",
        r.files_checked, r.files_pruned
    )?;
    writeln!(out, "trusted keys {}", r.trusted_keys.join(", "))?;
    for p in &r.problems {
        writeln!(out, "{}", Problem::to_string(p))?;
    }
    if r.intact {
        writeln!(out, "intact")
    } else {
        writeln!(out, "{} problem(s)", r.problems.len())
    }
}

pub fn export(args: ExportArgs) -> anyhow::Result<ExitCode> {
    let config = super::load_config(&args.config)?;
    let tz = config.device.timezone;
    let span = match (&args.session, &args.from, &args.to) {
        (Some(id), None, None) => {
            let date = args
                .date
                .as_deref()
                .map(|d| {
                    NaiveDate::parse_from_str(d, "%Y-%m-%d")
                        .map_err(|_| UsageError(format!("--date {d:?}: expected YYYY-MM-DD")))
                })
                .transpose()?;
            let date = date.or_else(|| Some(Utc::now().with_timezone(&tz).date_naive()));
            let (from, to, cameras) = session_span(&config, id, date).ok_or_else(|| {
                UsageError(format!(
                    "session {id:?} has no occurrence on {} in this config (or the schedule is not available); \
                     use --from/--to [--camera] instead",
                    date.map(|d| d.to_string()).unwrap_or_default()
                ))
            })?;
            Span {
                session: Some(id.clone()),
                from_us: from.timestamp_micros(),
                to_us: to.timestamp_micros(),
                cameras,
            }
        }
        (None, Some(from), Some(to)) => {
            let from = parse_time_arg(from, tz)?;
            let to = parse_time_arg(to, tz)?;
            if to <= from {
                return Err(UsageError("--to must be after --from".into()).into());
            }
            let cameras = if args.camera.is_empty() {
                config.cameras.iter().map(|c| c.id.clone()).collect()
            } else {
                args.camera.clone()
            };
            Span {
                session: None,
                from_us: from.timestamp_micros(),
                to_us: to.timestamp_micros(),
                cameras,
            }
        }
        _ => {
            return Err(UsageError(
                "give either --session ID [--date D], or --from T --to T [--camera C]".into(),
            )
            .into());
        }
    };
    if span.cameras.is_empty() {
        return Err(UsageError("no cameras: configure [[camera]] entries or give --camera".into()).into());
    }
    let data_dir = &config.device.data_dir;
    let mut conn = db::open(data_dir)?;
    // The key signs a fresh checkpoint if none covers the span's end yet; without read access
    // to it (not the daemon's user) the export uses the checkpoints already made.
    let current = store::current_fingerprint(&conn)?;
    let signer = key::load(data_dir, current.as_deref()).ok();
    let summary = bundle::export(&mut conn, &config, &span, &args.out, signer.as_ref(), Utc::now())?;
    println!(
        "wrote        {} ({} files, {:.1} MB)",
        args.out.display(),
        summary.files,
        summary.bytes as f64 / 1e6
    );
    println!(
        "records      seq {}..={} ({}){}",
        summary.first_seq,
        summary.last_seq,
        summary.records,
        if summary.signed_now {
            ", signed a checkpoint now"
        } else {
            ""
        }
    );
    if summary.pruned > 0 {
        println!(
            "note         {} segment(s) of the span were deleted after the retention (R6) and are not in the bundle",
            summary.pruned
        );
    }
    println!(
        "verify with  classproof verify --bundle {} --pubkey KEY",
        args.out.display()
    );
    Ok(ExitCode::SUCCESS)
}
