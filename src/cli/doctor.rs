//! `doctor` and `cameras probe` (issue 12): everything a technician needs checked, one line
//! each, `ok` / `warning` / `problem` with the fix. Exit 1 when any problem was found.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Subcommand};

use crate::config::{Config, Problems};
use crate::media::probe::{self, Probe};

/// How long each camera is read.
const PROBE_WINDOW: Duration = Duration::from_secs(4);

#[derive(Debug, Args)]
pub struct DoctorArgs {
    #[arg(long)]
    pub config: PathBuf,
    /// Seconds to read each camera.
    #[arg(long, default_value_t = PROBE_WINDOW.as_secs())]
    pub probe_seconds: u64,
}

#[derive(Debug, Args)]
pub struct CamerasArgs {
    #[command(subcommand)]
    pub command: CamerasCommand,
}

#[derive(Debug, Subcommand)]
pub enum CamerasCommand {
    /// Check one camera URL before it goes into the config: codec, resolution, frame rate,
    /// keyframe interval, bitrate (exit 1 when it cannot be recorded).
    Probe(ProbeArgs),
}

#[derive(Debug, Args)]
pub struct ProbeArgs {
    /// rtsp://…, /dev/videoN or a file.
    pub url: String,
    /// Seconds to read.
    #[arg(long, default_value_t = PROBE_WINDOW.as_secs())]
    pub seconds: u64,
    /// One JSON object.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Level {
    Ok,
    Warning,
    Problem,
}

struct Report {
    worst: Level,
    out: std::io::Stdout,
}

impl Report {
    fn line(&mut self, level: Level, what: &str, detail: &str, fix: Option<&str>) {
        self.worst = self.worst.max(level);
        let tag = match level {
            Level::Ok => "ok     ",
            Level::Warning => "warning",
            Level::Problem => "problem",
        };
        let mut out = self.out.lock();
        let _ = writeln!(out, "{tag}  {what}: {detail}");
        if let Some(fix) = fix {
            let _ = writeln!(out, "         fix: {fix}");
        }
    }
}

pub fn doctor(args: DoctorArgs) -> anyhow::Result<ExitCode> {
    let mut r = Report {
        worst: Level::Ok,
        out: std::io::stdout(),
    };
    let config = match Config::load(&args.config) {
        Ok(c) => c,
        Err(e) => {
            for p in e.problems() {
                r.line(
                    Level::Problem,
                    "config",
                    &p,
                    Some(&format!("edit {} (docs/configuration.md)", args.config.display())),
                );
            }
            return Ok(ExitCode::from(super::EXIT_PROBLEMS));
        }
    };
    let env_problems = config.check_environment();
    if env_problems.is_empty() {
        r.line(
            Level::Ok,
            "config",
            &format!("{} is valid", config.file.display()),
            None,
        );
    } else {
        for p in &env_problems {
            r.line(
                Level::Problem,
                "config",
                &p.to_string(),
                Some("see the expected value above; `classproof check-config` lists the same"),
            );
        }
    }
    check_data_dir(&mut r, &config);
    check_models(&mut r, &config);
    check_cameras(&mut r, &config, Duration::from_secs(args.probe_seconds.max(1)));
    check_disk(&mut r, &config);
    check_clock(&mut r, &config);
    check_device_key(&mut r, &config);
    check_upstream(&mut r, &config);
    let _ = r.out.flush();
    Ok(if r.worst == Level::Problem {
        ExitCode::from(super::EXIT_PROBLEMS)
    } else {
        ExitCode::SUCCESS
    })
}

fn check_data_dir(r: &mut Report, config: &Config) {
    let mut p = Problems::default();
    crate::config::check_writable_dir(&config.device.data_dir, "device.data_dir", &mut p);
    if p.is_empty() {
        r.line(
            Level::Ok,
            "data dir",
            &format!("{} is writable", config.device.data_dir.display()),
            None,
        );
    } else {
        for x in p.0 {
            r.line(
                Level::Problem,
                "data dir",
                &x.to_string(),
                Some(&format!(
                    "chown classproof:classproof {} and check the disk is mounted read-write",
                    config.device.data_dir.display()
                )),
            );
        }
    }
}

fn check_models(r: &mut Report, config: &Config) {
    let v = &config.vision;
    if !v.enabled {
        r.line(
            Level::Ok,
            "models",
            "vision is off ([vision] enabled = false)",
            None,
        );
        return;
    }
    let fetch = format!("classproof models fetch --dir {}", v.models_dir.display());
    match crate::vision::manifest::Manifest::embedded() {
        Ok(m) => {
            for name in v.needed_models() {
                let Ok(spec) = m.get(name) else { continue };
                match crate::vision::fetch::verify(spec, &v.models_dir) {
                    Ok(_) => r.line(
                        Level::Ok,
                        "model",
                        &format!("{name} ({}) matches its sha256", spec.file),
                        None,
                    ),
                    Err(e) => r.line(Level::Problem, "model", &format!("{name}: {e}"), Some(&fetch)),
                }
            }
        }
        Err(e) => r.line(Level::Problem, "models", &e.to_string(), None),
    }
    match crate::vision::runtime::Runtime::load(&v.ort_library, 1) {
        Ok(_) => r.line(
            Level::Ok,
            "ONNX Runtime",
            &format!("{} loads", v.ort_library.display()),
            None,
        ),
        Err(e) => r.line(
            Level::Problem,
            "ONNX Runtime",
            &e.to_string(),
            Some(
                "run ./deploy/setup.sh, which installs libonnxruntime.so from the onnxruntime==1.31.1 wheel",
            ),
        ),
    }
}

fn check_cameras(r: &mut Report, config: &Config, window: Duration) {
    if config.cameras.is_empty() {
        r.line(
            Level::Warning,
            "cameras",
            "none configured",
            Some("add a [[camera]] (docs/configuration.md)"),
        );
        return;
    }
    if let Err(e) = crate::daemon::init_ffmpeg() {
        r.line(
            Level::Problem,
            "cameras",
            &format!("cannot initialise FFmpeg: {e}"),
            None,
        );
        return;
    }
    for cam in &config.cameras {
        let what = format!("camera {}", cam.id);
        match probe::probe(cam, window) {
            Ok(p) => camera_lines(r, &what, &p),
            Err(e) => r.line(
                Level::Problem,
                &what,
                &format!("{}: {e}", cam.display_url()),
                Some("check the camera is powered and on the network, and the URL, user and password (docs/configuration.md lists the URL forms of common brands)"),
            ),
        }
    }
}

fn camera_lines(r: &mut Report, what: &str, p: &Probe) {
    let warnings = p.warnings();
    r.line(
        if warnings.is_empty() {
            Level::Ok
        } else {
            Level::Warning
        },
        what,
        &p.summary(),
        None,
    );
    for w in warnings {
        let (detail, fix) = w.split_once("; ").unwrap_or((&w, ""));
        r.line(Level::Warning, what, detail, (!fix.is_empty()).then_some(fix));
    }
}

fn check_disk(r: &mut Report, config: &Config) {
    let retention_days = config.rules.profile.retention.as_secs_f64() / 86_400.0;
    match crate::evidence::disk::statvfs(&config.device.data_dir) {
        Ok(view) => r.line(
            Level::Ok,
            "disk",
            &format!(
                "{} free of {}",
                crate::evidence::disk::show_size(view.available),
                crate::evidence::disk::show_size(view.capacity)
            ),
            None,
        ),
        Err(e) => r.line(Level::Problem, "disk", &e.to_string(), None),
    }
    let days_left = crate::db::open_existing(&config.device.data_dir)
        .ok()
        .flatten()
        .and_then(|c| {
            crate::db::meta_get(&c, crate::daemon::evidence::DISK_STATUS)
                .ok()
                .flatten()
        })
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| v["days_left"].as_f64());
    match days_left {
        Some(d) if d < retention_days => r.line(
            Level::Warning,
            "disk forecast",
            &format!(
                "{d:.0} days left at the recent rate, less than the retention of {retention_days:.0} days (R6)"
            ),
            Some("add a larger disk, or lower the cameras' bitrate (the sub-stream for classroom cameras)"),
        ),
        Some(d) => r.line(
            Level::Ok,
            "disk forecast",
            &format!("{d:.0} days left at the recent rate (retention {retention_days:.0} days)"),
            None,
        ),
        None => r.line(
            Level::Ok,
            "disk forecast",
            "no forecast yet (the daemon needs a tenth of [evidence] forecast_window of recording)",
            None,
        ),
    }
}

/// Whether the system clock is synchronised: systemd-timesyncd (timedatectl), else chrony.
fn clock_synchronised() -> Option<(bool, String)> {
    if let Ok(out) = Command::new("timedatectl")
        .args(["show", "-p", "NTPSynchronized", "--value"])
        .output()
        && out.status.success()
    {
        let v = String::from_utf8_lossy(&out.stdout).trim().to_string();
        return Some((v == "yes", format!("timedatectl NTPSynchronized={v}")));
    }
    if let Ok(out) = Command::new("chronyc").args(["-n", "tracking"]).output()
        && out.status.success()
    {
        let text = String::from_utf8_lossy(&out.stdout);
        let leap = text
            .lines()
            .find(|l| l.starts_with("Leap status"))
            .and_then(|l| l.split(':').nth(1))
            .map(|s| s.trim().to_string())
            .unwrap_or_default();
        return Some((leap == "Normal", format!("chrony leap status {leap}")));
    }
    None
}

fn check_clock(r: &mut Report, config: &Config) {
    match clock_synchronised() {
        Some((true, how)) => r.line(Level::Ok, "clock", &format!("synchronised ({how})"), None),
        Some((false, how)) => r.line(
            Level::Warning,
            "clock",
            &format!("not synchronised ({how})"),
            Some("enable NTP: timedatectl set-ntp true (or configure chrony); evidence times come from this clock"),
        ),
        None => r.line(
            Level::Warning,
            "clock",
            "cannot tell whether the clock is synchronised (neither timedatectl nor chronyc answers)",
            Some("install systemd-timesyncd or chrony"),
        ),
    }
    let Ok(Some(conn)) = crate::db::open_existing(&config.device.data_dir) else {
        return;
    };
    let since = chrono::Utc::now().timestamp_micros() - 86_400_000_000;
    let steps: Vec<String> = conn
        .prepare("SELECT payload FROM log WHERE type = 'alarm' AND time_us >= ?1 AND payload LIKE '%\"clock_step\"%' ORDER BY seq")
        .and_then(|mut s| {
            s.query_map([since], |r| r.get::<_, String>(0))?
                .collect::<rusqlite::Result<Vec<_>>>()
        })
        .unwrap_or_default();
    if steps.is_empty() {
        r.line(Level::Ok, "clock steps", "none in the last 24 hours", None);
    } else {
        for s in steps {
            let v: serde_json::Value = serde_json::from_str(&s).unwrap_or_default();
            r.line(
                Level::Warning,
                "clock step",
                &format!(
                    "the wall clock stepped {}s ({} -> {})",
                    v["step_s"], v["old"].as_str().unwrap_or("?"), v["new"].as_str().unwrap_or("?")
                ),
                Some("keep NTP on so the clock is right before recording starts; class hours around a step show clock_step holes"),
            );
        }
    }
}

fn check_device_key(r: &mut Report, config: &Config) {
    let path = crate::evidence::key::private_path(&config.device.data_dir);
    match std::fs::File::open(&path) {
        Ok(_) => r.line(
            Level::Ok,
            "device key",
            &format!("{} present", path.display()),
            None,
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => r.line(
            Level::Warning,
            "device key",
            &format!("{} does not exist yet", path.display()),
            Some("the daemon creates it at its first start (`classproof keys show` afterwards)"),
        ),
        Err(e) => r.line(
            Level::Problem,
            "device key",
            &format!("{}: {e}", path.display()),
            Some("the key must be readable by the classproof user only (chmod 600, chown classproof)"),
        ),
    }
}

fn check_upstream(r: &mut Report, config: &Config) {
    let Some(u) = &config.upstream else {
        r.line(
            Level::Ok,
            "upstream",
            "none configured (the box runs offline, R7)",
            None,
        );
        return;
    };
    let addr = format!("{}:{}", u.broker.host, u.broker.port);
    let fix_net = "check the network, the firewall and [upstream] url";
    let sock = match addr
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| format!("cannot resolve {addr}"))
        .and_then(|a| {
            TcpStream::connect_timeout(&a, Duration::from_secs(5)).map_err(|e| format!("{addr}: {e}"))
        }) {
        Ok(s) => s,
        Err(e) => return r.line(Level::Problem, "upstream", &e, Some(fix_net)),
    };
    if !u.broker.tls {
        r.line(
            Level::Warning,
            "upstream",
            &format!("{} reachable, without TLS", u.broker),
            Some("use mqtts:// for evidence leaving the box"),
        );
        return;
    }
    match tls_handshake(sock, u) {
        Ok(()) => r.line(Level::Ok, "upstream", &format!("{} reachable over TLS with the configured certificates", u.broker), None),
        Err(e) => r.line(
            Level::Problem,
            "upstream",
            &format!("{}: TLS: {e}", u.broker),
            Some("check [upstream] ca_file, client_cert_file and client_key_file and their dates (openssl x509 -noout -dates -in FILE)"),
        ),
    }
}

fn tls_handshake(mut sock: TcpStream, u: &crate::sync::UpstreamConfig) -> Result<(), String> {
    let cfg = crate::sync::tls::client_config(u).map_err(|e| e.to_string())?;
    let name = rustls::pki_types::ServerName::try_from(u.broker.host.clone()).map_err(|e| e.to_string())?;
    let mut conn = rustls::ClientConnection::new(Arc::clone(&cfg), name).map_err(|e| e.to_string())?;
    sock.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    while conn.is_handshaking() {
        conn.complete_io(&mut sock).map_err(|e| e.to_string())?;
    }
    // A TLS 1.3 server may reject the client certificate only after the handshake: read once
    // (an MQTT broker then waits for CONNECT: a timeout is a pass).
    sock.set_read_timeout(Some(Duration::from_secs(1)))
        .map_err(|e| e.to_string())?;
    let mut buf = [0u8; 1];
    let mut stream = rustls::Stream::new(&mut conn, &mut sock);
    let _ = stream.flush();
    sock_peek(&mut stream, &mut buf)
}

fn sock_peek(stream: &mut impl Read, buf: &mut [u8]) -> Result<(), String> {
    match stream.read(buf) {
        Ok(_) => Ok(()),
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) =>
        {
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::InvalidData => Err(e.to_string()),
        Err(e) => Err(e.to_string()),
    }
}

pub fn cameras(args: CamerasArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        CamerasCommand::Probe(a) => probe_url(a),
    }
}

fn probe_url(args: ProbeArgs) -> anyhow::Result<ExitCode> {
    // The camera section as a technician would write it, read by the config's own reader.
    let text = format!(
        "[device]\nid = \"probe\"\ndata_dir = \"/nonexistent\"\n[[camera]]\nid = \"probe\"\nurl = {}\n",
        toml::Value::String(args.url.clone())
    );
    let config = Config::parse(&text, Path::new("cameras-probe.toml"))
        .map_err(|e| super::UsageError(format!("not a camera URL: {}", e.problems().join("; "))))?;
    let Some(cam) = config.cameras.first() else {
        return Err(super::UsageError("not a camera URL".into()).into());
    };
    let shown = cam.display_url();
    crate::daemon::init_ffmpeg()?;
    match probe::probe(cam, Duration::from_secs(args.seconds.max(1))) {
        Ok(p) => {
            if args.json {
                let mut v = serde_json::to_value(&p)?;
                v["warnings"] = serde_json::json!(p.warnings());
                println!("{v}");
            } else {
                let mut r = Report {
                    worst: Level::Ok,
                    out: std::io::stdout(),
                };
                camera_lines(&mut r, &shown, &p);
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            if args.json {
                println!("{}", serde_json::json!({"error": e.to_string()}));
            } else {
                println!("problem  {shown}: {e}");
                println!(
                    "         fix: check the camera is powered and reachable, and the URL, user and password"
                );
            }
            Ok(ExitCode::from(super::EXIT_PROBLEMS))
        }
    }
}
