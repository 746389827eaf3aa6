//! `attendance`: who checked in to a session occurrence (issue 9, item 7).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use chrono::NaiveDate;
use clap::Args;

use super::UsageError;
use crate::attendance::report::{ReportOccurrence, attendance_report};
use crate::compliance::schedule::{local_date, parse_occurrence_name};
use crate::db;

/// Attendance of one session occurrence: present, late, absent, check-in and check-out times.
#[derive(Debug, Args)]
pub struct AttendanceArgs {
    #[arg(long)]
    pub config: PathBuf,
    /// The session: its id, or for a daily session `ID@YYYY-MM-DD`.
    #[arg(long)]
    pub session: String,
    /// The day of a daily session's occurrence (YYYY-MM-DD, local); default today.
    #[arg(long)]
    pub date: Option<String>,
    /// One JSON object.
    #[arg(long)]
    pub json: bool,
}

pub fn attendance(args: AttendanceArgs) -> anyhow::Result<ExitCode> {
    // Issue 10: a session the platform stored is reported like one of the file.
    let config = super::load_config_with_stored_sessions(&args.config)?;
    let tz = config.device.timezone;
    let date = args
        .date
        .as_deref()
        .map(|s| {
            NaiveDate::parse_from_str(s, "%Y-%m-%d")
                .map_err(|_| UsageError(format!("--date {s:?}: expected YYYY-MM-DD")))
        })
        .transpose()?;
    let (id, named) = parse_occurrence_name(&args.session).ok_or_else(|| {
        UsageError(format!(
            "--session {:?}: expected ID or ID@YYYY-MM-DD",
            args.session
        ))
    })?;
    let session = config.sessions.iter().find(|s| s.id == id).ok_or_else(|| {
        let known: Vec<&str> = config.sessions.iter().map(|s| s.id.as_str()).collect();
        UsageError(format!(
            "--session {id:?}: no such session in {}; known: {}",
            args.config.display(),
            known.join(", ")
        ))
    })?;
    let day = named
        .or(date)
        .unwrap_or_else(|| local_date(chrono::Utc::now().timestamp_micros(), tz));
    let occ = session
        .occurrence(Some(day), tz)
        .ok_or_else(|| UsageError(format!("session {id:?} does not happen on {day}")))?;
    let target = ReportOccurrence {
        name: occ.name.clone(),
        class_id: session.class_id.clone(),
        start_us: occ.start_us(),
    };
    if !config.db_path().exists() {
        anyhow::bail!(
            "no database at {} yet: nobody enrolled or checked in",
            config.db_path().display()
        );
    }
    let conn = db::open_read_only(&config.device.data_dir)?;
    let report = attendance_report(&conn, &target, tz)?;
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string(&report)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    let s = &report.summary;
    writeln!(
        out,
        "session {}  date {}  class {}",
        report.session, report.date, session.class_id
    )?;
    writeln!(
        out,
        "expected {}  present {}  late {}  absent {}  teachers {}  opening head count {}",
        s.expected, s.present, s.late, s.absent, s.teachers, s.opening_head_count
    )?;
    writeln!(
        out,
        "{:<12}  {:<16}  {:<7}  {:<18}  {:<7}  {:<32}  {:<32}  {:>5}  {:>5}",
        "person", "name", "role", "id number", "status", "check-in", "check-out", "sim", "live"
    )?;
    let f = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.2}"));
    for p in &report.persons {
        writeln!(
            out,
            "{:<12}  {:<16}  {:<7}  {:<18}  {:<7}  {:<32}  {:<32}  {:>5}  {:>5}",
            p.person_id,
            p.name,
            p.role.as_str(),
            p.id_number.as_deref().unwrap_or("-"),
            p.status.as_str(),
            p.check_in.as_deref().unwrap_or("-"),
            p.check_out.as_deref().unwrap_or("-"),
            f(p.similarity),
            f(p.liveness)
        )?;
    }
    // Issue 11: classroom presence.
    if report
        .persons
        .iter()
        .any(|p| p.last_seen.is_some() || p.spot_checks_seen + p.spot_checks_missed > 0)
    {
        writeln!(
            out,
            "{:<12}  {:>10}  {:>12}  {:<10}  {:<32}",
            "person", "spot seen", "spot missed", "left early", "last seen"
        )?;
        for p in &report.persons {
            writeln!(
                out,
                "{:<12}  {:>10}  {:>12}  {:<10}  {:<32}",
                p.person_id,
                p.spot_checks_seen,
                p.spot_checks_missed,
                if p.left_early { "yes" } else { "no" },
                p.last_seen.as_deref().unwrap_or("-")
            )?;
        }
    }
    for h in &report.class_hours {
        let vis = match h.all_visible {
            Some(true) => "all visible".to_string(),
            Some(false) => format!("not all visible: {}", h.not_visible.join(", ")),
            None => "not analysed: judged on recording alone".to_string(),
        };
        writeln!(
            out,
            "class hour {}  head count {}  {vis}",
            h.class_hour, h.head_count
        )?;
    }
    Ok(ExitCode::SUCCESS)
}
