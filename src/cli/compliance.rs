//! `report` and `events`.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use chrono::NaiveDate;
use clap::Args;
use serde_json::{Value, json};

use super::UsageError;
use crate::clock::{parse_time_arg, rfc3339_us};
use crate::compliance::engine::Summary;
use crate::compliance::schedule::{Occurrence, local_date, parse_occurrence_name};
use crate::compliance::{HourVerdict, Verdict};
use crate::config::Config;
use crate::daemon::verdicts::{hour_json, judge_occurrence};
use crate::db;
use crate::evidence::log;
use crate::evidence::record::Kind;

/// Verdicts of a session's class hours (exit 1 if any class hour failed).
#[derive(Debug, Args)]
pub struct ReportArgs {
    #[arg(long)]
    pub config: PathBuf,
    /// The session: its id, or for a daily session `ID@YYYY-MM-DD` (the id alone means the
    /// occurrence of --date, or of today).
    #[arg(long)]
    pub session: Option<String>,
    /// Every session occurring on this day (YYYY-MM-DD, local); default today.
    #[arg(long)]
    pub date: Option<String>,
    /// Judge as of this time instead of now (RFC 3339 or local "YYYY-MM-DD HH:MM[:SS]").
    #[arg(long)]
    pub at: Option<String>,
    /// One JSON object per session, one per line.
    #[arg(long)]
    pub json: bool,
    /// Also write the session's class hours as a timeline (SVG) to this file, for an
    /// inspector's report; needs --session. In `[status] language`.
    #[arg(long)]
    pub svg: Option<PathBuf>,
}

/// The recorded events (verdicts, alarms, …).
#[derive(Debug, Args)]
pub struct EventsArgs {
    #[arg(long)]
    pub config: PathBuf,
    /// From this time on (RFC 3339, local "YYYY-MM-DD HH:MM" or a date).
    #[arg(long)]
    pub from: Option<String>,
    /// Only this type, e.g. class_hour_fail; a trailing `*` matches a prefix (class_hour_*).
    #[arg(long = "type")]
    pub kind: Option<String>,
    /// One JSON object per line.
    #[arg(long)]
    pub json: bool,
}

fn parse_date(s: &str) -> anyhow::Result<NaiveDate> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map_err(|_| UsageError(format!("--date {s:?}: expected YYYY-MM-DD")).into())
}

/// What the arguments ask for.
enum Selected<'c> {
    Occurrences(Vec<Occurrence<'c>>),
    /// A daily session asked for on a day its `days` leave out: why there is nothing.
    NotThatDay(String),
}

/// The occurrences the arguments ask for.
fn select<'c>(config: &'c Config, args: &ReportArgs, now_us: i64) -> anyhow::Result<Selected<'c>> {
    let tz = config.device.timezone;
    let date = args.date.as_deref().map(parse_date).transpose()?;
    let today = local_date(now_us, tz);
    let Some(name) = &args.session else {
        let day = date.unwrap_or(today);
        return Ok(Selected::Occurrences(
            config
                .sessions
                .iter()
                .filter_map(|s| s.occurrence_on(day, tz))
                .collect(),
        ));
    };
    let bad = |msg: String| -> anyhow::Error { UsageError(msg).into() };
    let (id, named_date) = parse_occurrence_name(name)
        .ok_or_else(|| bad(format!("--session {name:?}: expected ID or ID@YYYY-MM-DD")))?;
    let session = config.sessions.iter().find(|s| s.id == id).ok_or_else(|| {
        let known: Vec<&str> = config.sessions.iter().map(|s| s.id.as_str()).collect();
        bad(format!(
            "--session {id:?}: no such session in {} (sessions: {})",
            config.file.display(),
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        ))
    })?;
    if named_date.is_some() && date.is_some() && named_date != date {
        return Err(bad(format!("--session {name:?} and --date disagree")));
    }
    let occ = if session.is_daily() {
        let day = named_date.or(date).unwrap_or(today);
        if !session.happens_on(day) {
            return Ok(Selected::NotThatDay(format!(
                "session {:?} has no occurrence on {day} (a {}): it happens on {} only",
                session.id,
                day.format("%A"),
                session.days.names().join(", ")
            )));
        }
        session.occurrence(Some(day), tz)
    } else {
        if named_date.is_some() {
            return Err(bad(format!(
                "--session {name:?}: {id:?} is a one-off session, name it without a date"
            )));
        }
        let occ = session.occurrence(None, tz);
        if let (Some(d), Some(o)) = (date, &occ) {
            let on = local_date(o.start_us(), tz);
            if on != d {
                return Err(bad(format!(
                    "--session {id:?} is a one-off session on {on}, not on {d}"
                )));
            }
        }
        occ
    };
    Ok(Selected::Occurrences(occ.into_iter().collect()))
}

pub fn report(args: ReportArgs) -> anyhow::Result<ExitCode> {
    // Issue 10: with the sessions the platform stored (`schedule.update`); the file's win.
    let config = super::load_config_with_stored_sessions(&args.config)?;
    let tz = config.device.timezone;
    let now_us = match &args.at {
        Some(s) => parse_time_arg(s, tz)?.timestamp_micros(),
        None => chrono::Utc::now().timestamp_micros(),
    };
    let occurrences = match select(&config, &args, now_us)? {
        Selected::Occurrences(o) => o,
        Selected::NotThatDay(why) => {
            // Not judged, nothing to report: said on stdout (stderr with --json, whose stdout
            // has one object per occurrence, here none).
            if args.json {
                eprintln!("classproof: {why}");
            } else {
                println!("{why}");
            }
            return Ok(ExitCode::SUCCESS);
        }
    };
    // No database yet means nothing was ever recorded: every hour is judged on nothing.
    let conn = if config.db_path().exists() {
        Some(db::open_read_only(&config.device.data_dir)?)
    } else {
        eprintln!(
            "classproof: no database at {} yet: judging on no recording at all",
            config.db_path().display()
        );
        None
    };
    let mut out = std::io::stdout().lock();
    if occurrences.is_empty() && !args.json {
        writeln!(out, "no sessions on that day")?;
    }
    if args.svg.is_some() && (args.session.is_none() || occurrences.len() != 1) {
        return Err(UsageError("--svg needs --session naming one occurrence".into()).into());
    }
    let mut any_fail = false;
    for (i, occ) in occurrences.iter().enumerate() {
        let hours =
            judge_occurrence(conn.as_ref(), &config, occ, now_us).context("reading the segment index")?;
        if let Some(file) = &args.svg {
            write_svg(file, &config, occ, &hours, now_us)?;
        }
        any_fail |= hours.iter().any(|h| h.verdict == Verdict::Fail);
        if args.json {
            writeln!(out, "{}", report_json(&config, occ, &hours, now_us))?;
        } else {
            if i > 0 {
                writeln!(out)?;
            }
            write_table(&mut out, &config, occ, &hours, now_us)?;
        }
    }
    Ok(if any_fail {
        ExitCode::from(super::EXIT_PROBLEMS)
    } else {
        ExitCode::SUCCESS
    })
}

/// The occurrence's class hours as a standalone SVG timeline (issue 12).
fn write_svg(
    file: &std::path::Path,
    config: &Config,
    occ: &Occurrence,
    hours: &[HourVerdict],
    now_us: i64,
) -> anyhow::Result<()> {
    use crate::status::config::Language;
    let tz = config.device.timezone;
    let lang = config.status.language;
    let time = |us: i64| {
        crate::clock::from_us(us)
            .with_timezone(&tz)
            .format("%H:%M:%S")
            .to_string()
    };
    let day = local_date(occ.start_us(), tz);
    let kind = occ.session.kind.as_str();
    let (title, subtitle) = match lang {
        Language::ZhCn => (
            format!("课时记录 {} · 班次 {}", occ.name, occ.session.class_id),
            format!(
                "{day} · {} · 设备 {} · 摄像头 {} · 规则 {} · 截至 {}",
                match kind {
                    "theory" => "理论课",
                    "practical" => "实操课",
                    _ => "补课",
                },
                config.device.id,
                occ.session.cameras.join(","),
                config.rules.profile.name,
                rfc3339_us(now_us, tz)
            ),
        ),
        Language::En => (
            format!("Class hours of {} · class {}", occ.name, occ.session.class_id),
            format!(
                "{day} · {kind} · device {} · cameras {} · profile {} · as of {}",
                config.device.id,
                occ.session.cameras.join(","),
                config.rules.profile.name,
                rfc3339_us(now_us, tz)
            ),
        ),
    };
    let svg = crate::status::timeline::session_svg(&title, &subtitle, hours, now_us, lang, &time);
    std::fs::write(file, svg).with_context(|| format!("{}: cannot write the SVG", file.display()))?;
    Ok(())
}

fn report_json(config: &Config, occ: &Occurrence, hours: &[HourVerdict], now_us: i64) -> Value {
    let tz = config.device.timezone;
    json!({
        "session": occ.name,
        "session_id": occ.session.id,
        "date": occ.date.map(|d| d.format("%Y-%m-%d").to_string()),
        "class_id": occ.session.class_id,
        "kind": occ.session.kind.as_str(),
        "profile": config.rules.profile.name,
        "cameras": occ.session.cameras,
        "as_of": rfc3339_us(now_us, tz),
        "class_hours": hours.iter().map(|h| hour_json(h, tz)).collect::<Vec<_>>(),
        "summary": Summary::of(hours),
    })
}

fn dur(us: i64) -> String {
    let s = us as f64 / 1e6;
    if s < 60.0 {
        format!("{s:.1}s")
    } else {
        let whole = s.round() as i64;
        format!("{}m{:02}s", whole / 60, whole % 60)
    }
}

fn write_table(
    out: &mut impl Write,
    config: &Config,
    occ: &Occurrence,
    hours: &[HourVerdict],
    now_us: i64,
) -> std::io::Result<()> {
    let tz = config.device.timezone;
    let time = |us: i64| {
        crate::clock::from_us(us)
            .with_timezone(&tz)
            .format("%H:%M:%S")
            .to_string()
    };
    let day = |us: i64| local_date(us, tz).to_string();
    writeln!(
        out,
        "session {}  class {}  {}  profile {}  cameras {}",
        occ.name,
        occ.session.class_id,
        occ.session.kind.as_str(),
        config.rules.profile.name,
        occ.session.cameras.join(",")
    )?;
    writeln!(
        out,
        "{} (times {}), as of {}",
        day(occ.start_us()),
        tz,
        rfc3339_us(now_us, tz)
    )?;
    writeln!(
        out,
        "{:>3}  {:<8}  {:<8}  {:<4}  {:<7}  {:>8}  {:>8}  {:>8}",
        "#", "start", "end", "rule", "verdict", "needs", "longest", "recorded"
    )?;
    for h in hours {
        let needs = h.required_run_us.map_or_else(|| "all".to_string(), dur);
        writeln!(
            out,
            "{:>3}  {:<8}  {:<8}  {:<4}  {:<7}  {:>8}  {:>8}  {:>8}",
            h.index,
            time(h.start_us),
            time(h.end_us),
            h.rule,
            h.verdict.as_str(),
            needs,
            dur(h.longest_run_us),
            dur(h.recorded_us)
        )?;
        for hole in &h.holes {
            writeln!(
                out,
                "{:>5}hole {}–{} {:>8}  {}{}",
                "",
                time(hole.start_us),
                time(hole.end_us),
                dur(hole.end_us - hole.start_us),
                hole.cause,
                if hole.breaks_run {
                    ""
                } else {
                    " (within tolerance)"
                }
            )?;
        }
        // Issue 11: presence (R3/R4), head count, tamper.
        if let Some(p) = &h.presence {
            let vis = match (p.analysed, p.all_visible) {
                (false, _) => "no classroom camera analysed: judged on recording alone".to_string(),
                (true, None) => "presence pending".to_string(),
                (true, Some(true)) => "the run showed all present trainees".to_string(),
                (true, Some(false)) => format!("not seen in the run: {}", p.not_visible.join(", ")),
            };
            writeln!(out, "{:>5}head count {}  {vis}", "", p.head_count)?;
            if !p.tamper.is_empty() {
                writeln!(out, "{:>5}camera tamper: {}", "", p.tamper.join(", "))?;
            }
        }
    }
    let s = Summary::of(hours);
    writeln!(
        out,
        "summary: {} pass, {} fail, {} at risk, {} pending",
        s.pass, s.fail, s.at_risk, s.pending
    )
}

pub fn events(args: EventsArgs) -> anyhow::Result<ExitCode> {
    let config = super::load_config(&args.config)?;
    let tz = config.device.timezone;
    let from = args
        .from
        .as_deref()
        .map(|s| parse_time_arg(s, tz))
        .transpose()?
        .map(|t| t.timestamp_micros());
    if !config.db_path().exists() {
        eprintln!(
            "classproof: no database at {} yet: no events",
            config.db_path().display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let conn = db::open_read_only(&config.device.data_dir)?;
    let (exact, prefix) = match args.kind.as_deref() {
        Some(k) => match k.strip_suffix('*') {
            Some(p) => (None, Some(p)),
            None => {
                let kind = Kind::parse(k).ok_or_else(|| {
                    let known: Vec<&str> = Kind::ALL.iter().map(|k| k.as_str()).collect();
                    anyhow::Error::from(UsageError(format!(
                        "--type {k:?}: no such record type; known: {}",
                        known.join(", ")
                    )))
                })?;
                (Some(kind), None)
            }
        },
        None => (None, None),
    };
    let records = log::read_filtered(&conn, from, exact)?;
    let mut out = std::io::stdout().lock();
    if !args.json {
        writeln!(
            out,
            "{:>6}  {:<29}  {:<20}  {:<18}  {:>4}  {:<7}",
            "seq", "time", "type", "session", "hour", "verdict"
        )?;
    }
    for r in records
        .iter()
        .filter(|r| prefix.is_none_or(|p| r.record.kind().starts_with(p)))
    {
        let time = crate::clock::rfc3339(r.time, tz);
        let payload = r.record.payload_value();
        if args.json {
            let mut obj = serde_json::Map::new();
            if let Value::Object(p) = &payload {
                obj.extend(p.clone());
            } else {
                obj.insert("payload".into(), payload.clone());
            }
            obj.insert("seq".into(), json!(r.seq));
            obj.insert("time".into(), json!(time));
            obj.insert("type".into(), json!(r.record.kind()));
            obj.entry("session").or_insert(Value::Null);
            obj.entry("class_hour").or_insert(Value::Null);
            obj.entry("verdict").or_insert(Value::Null);
            writeln!(out, "{}", Value::Object(obj))?;
        } else {
            let p = &payload;
            let field = |k: &str| match &p[k] {
                Value::Null => String::new(),
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            // issue 9: a face decision names its person, camera and snapshot.
            let face = match r.record.face_vote() {
                Some(v) => format!(
                    "  {} on {}{}",
                    v.person_id.as_deref().unwrap_or("(nobody)"),
                    v.camera,
                    v.snapshot
                        .as_deref()
                        .map(|s| format!("  snapshot {s}"))
                        .unwrap_or_default()
                ),
                None => String::new(),
            };
            writeln!(
                out,
                "{:>6}  {:<29}  {:<20}  {:<18}  {:>4}  {:<7}{face}",
                r.seq,
                time,
                r.record.kind(),
                field("session"),
                field("class_hour"),
                field("verdict")
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
