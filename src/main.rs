//! `classproof`: parses the command line and hands over to `classproof::cli`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use classproof::cli::{self, attendance, compliance, doctor, evidence, recording, sync, vision};

/// classproof: the classroom evidence box for subsidised vocational training.
#[derive(Debug, Parser)]
#[command(version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the daemon in the foreground (logs to stderr).
    Run(recording::RunArgs),
    /// Check a config file and print a summary (exit 2 listing every problem).
    CheckConfig(recording::CheckConfigArgs),
    /// List recorded segments and gaps.
    Segments(recording::SegmentsArgs),
    /// Class-hour verdicts of a session or a day.
    Report(compliance::ReportArgs),
    /// Recorded events (verdicts, alarms, …).
    Events(compliance::EventsArgs),
    /// Who checked in to a session: present, late, absent (issue 9).
    Attendance(attendance::AttendanceArgs),
    /// Fetch or verify the face models.
    Models(vision::ModelsArgs),
    /// Enroll one person from photos.
    Enroll(vision::EnrollArgs),
    /// Import or list the roster.
    Roster(vision::RosterArgs),
    /// Detect and identify faces in images.
    Identify(vision::IdentifyArgs),
    /// Measure recognition on a labelled photo set and pick a threshold.
    Calibrate(vision::CalibrateArgs),
    /// The device's signing key.
    Keys(evidence::KeysArgs),
    /// Verify the evidence store or an exported bundle.
    Verify(evidence::VerifyArgs),
    /// Export a session's evidence bundle.
    Export(evidence::ExportArgs),
    /// Upstream sync: the outbox and the broker connection.
    Sync(sync::SyncArgs),
    /// Check everything a technician needs: config, models, cameras, disk, clock, key, upstream.
    Doctor(doctor::DoctorArgs),
    /// Cameras before they go into the config.
    Cameras(doctor::CamerasArgs),
}

fn main() -> ExitCode {
    let args = Cli::parse();
    classproof::logging::init();
    let result = match args.command {
        Command::Run(a) => recording::run(a),
        Command::CheckConfig(a) => recording::check_config(a),
        Command::Segments(a) => recording::segments(a),
        Command::Report(a) => compliance::report(a),
        Command::Events(a) => compliance::events(a),
        Command::Attendance(a) => attendance::attendance(a),
        Command::Models(a) => vision::models(a),
        Command::Enroll(a) => vision::enroll(a),
        Command::Roster(a) => vision::roster(a),
        Command::Identify(a) => vision::identify(a),
        Command::Calibrate(a) => vision::calibrate(a),
        Command::Keys(a) => evidence::keys(a),
        Command::Verify(a) => evidence::verify(a),
        Command::Export(a) => evidence::export(a),
        Command::Sync(a) => sync::sync(a),
        Command::Doctor(a) => doctor::doctor(a),
        Command::Cameras(a) => doctor::cameras(a),
    };
    match result {
        Ok(code) => code,
        Err(err) if cli::is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            cli::report_error(&err);
            cli::exit_code_for(&err)
        }
    }
}
