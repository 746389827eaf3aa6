//! The status server, `/metrics`, `/api/status` and the systemd watchdog (issue 12), against a
//! real daemon recording a real RTSP camera on loopback, and a real `NOTIFY_SOCKET`.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::time::{Duration, Instant};

use chrono::Utc;
use serde_json::Value;

use crate::recording::{camera, closed_segments};
use crate::support::{Daemon, RtspServer, Scene, classproof, free_port, json_lines, wait_for};

fn cfg(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

/// A plain HTTP/1.1 GET: (status code, body).
pub fn http_get(port: u16, path: &str, token: Option<&str>) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n{auth}\r\n"
    )
    .ok()?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).ok()?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n")?;
    let code = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((code, body.to_string()))
}

/// `name{labels} value` lines of an exposition, keyed by the whole series.
pub fn series(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect()
}

fn local(t: chrono::DateTime<Utc>) -> String {
    t.with_timezone(&chrono_tz::Asia::Shanghai)
        .format("%Y-%m-%dT%H:%M:%S+08:00")
        .to_string()
}

/// Metric values equal what `classproof segments` and `report` say for the same run: the
/// camera recorded, lost its server (a closed gap), recorded again and is now down (an open
/// gap), so nothing moves while both are read.
#[test]
fn metrics_and_api_status_agree_with_segments_and_report() {
    let scene = Scene::new();
    let mut server = RtspServer::start("h264");
    let port = free_port();
    // A one-off session of 2 class hours of 40 s that started 20 s ago.
    let start = local(Utc::now() - chrono::Duration::seconds(20));
    let config = scene.config(&format!(
        "[status]\nlisten = \"127.0.0.1:{port}\"\nlanguage = \"en\"\n\n\
         [rules]\nprofile = \"custom\"\nbase = \"henan\"\nmin_class_hour = \"40s\"\n\
         practical_min_run = \"10s\"\ncontinuity_tolerance = \"1s\"\n\n{}\n\
         [[session]]\nid = \"today\"\nclass_id = \"c1\"\nkind = \"practical\"\ncameras = [\"front\"]\n\
         start = \"{start}\"\nclass_hours = 2\nclass_hour = \"40s\"\nbreak = \"0s\"\n",
        camera(
            "front",
            &server.url(),
            "2s",
            "stall_timeout = \"2s\"\nconnect_timeout = \"2s\"\nreconnect_max_backoff = \"1s\""
        )
    ));
    let mut daemon = Daemon::start(&config);
    wait_for("two segments", Duration::from_secs(30), || {
        (closed_segments(&scene, &config, "front").len() >= 2).then_some(())
    });
    // Up and serving, while recording.
    let (code, body) = wait_for("/api/status", Duration::from_secs(10), || {
        http_get(port, "/api/status", None).filter(|(c, _)| *c == 200)
    });
    assert_eq!(code, 200);
    let doc: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(doc["cameras"][0]["id"], "front");
    assert_eq!(doc["cameras"][0]["state"], "recording", "{doc:#}");

    // A closed gap, then recording again, then an open gap.
    server.kill();
    wait_for("an open gap", Duration::from_secs(20), || {
        scene
            .segments(&config)
            .iter()
            .any(|e| e["type"] == "gap" && e["end"].is_null())
            .then_some(())
    });
    server.restart();
    wait_for(
        "the gap closed and a segment after it",
        Duration::from_secs(30),
        || {
            let all = scene.segments(&config);
            let gap_end = all
                .iter()
                .filter(|e| e["type"] == "gap" && !e["end"].is_null())
                .filter_map(|e| e["end"].as_str().map(str::to_string))
                .max()?;
            all.iter()
                .any(|e| {
                    e["type"] == "segment"
                        && e["state"] == "closed"
                        && e["start"].as_str().is_some_and(|s| s >= gap_end.as_str())
                })
                .then_some(())
        },
    );
    server.kill();
    wait_for(
        "the camera down again, nothing being written",
        Duration::from_secs(20),
        || {
            let all = scene.segments(&config);
            let open_gap = all.iter().any(|e| e["type"] == "gap" && e["end"].is_null());
            let writing = all.iter().any(|e| e["state"] == "recording");
            (open_gap && !writing).then_some(())
        },
    );

    // Class hours: the same verdicts as `report --json` around the scrape (verdicts move on
    // as time passes while the camera is down: retried until the reports before and after the
    // scrape agree).
    let verdicts = |report: &[Value]| {
        let mut v: BTreeMap<String, f64> = BTreeMap::new();
        for h in report[0]["class_hours"].as_array().unwrap() {
            *v.entry(h["verdict"].as_str().unwrap().to_string()).or_default() += 1.0;
        }
        v
    };
    let (text, hours) = wait_for(
        "a scrape between two equal reports",
        Duration::from_secs(30),
        || {
            let before = verdicts(&json_lines(&["report", "--config", &cfg(&config), "--json"]));
            let (code, text) = http_get(port, "/metrics", None)?;
            let after = verdicts(&json_lines(&["report", "--config", &cfg(&config), "--json"]));
            (code == 200 && before == after).then_some((text, after))
        },
    );
    let m = series(&text);
    for (v, n) in &hours {
        let key = format!("classproof_class_hours_total{{verdict=\"{v}\"}}");
        assert_eq!(m.get(&key).copied(), Some(*n), "{key} in\n{text}");
    }
    let segs = scene.segments(&config);
    let closed: Vec<&Value> = segs
        .iter()
        .filter(|e| e["type"] == "segment" && e["state"] != "recording")
        .collect();
    assert_eq!(
        m.get("classproof_segments_total{camera=\"front\"}").copied(),
        Some(closed.len() as f64),
        "{text}"
    );
    let bytes: u64 = closed.iter().map(|s| s["bytes"].as_u64().unwrap_or(0)).sum();
    assert_eq!(
        m.get("classproof_recorded_bytes_total{camera=\"front\"}")
            .copied(),
        Some(bytes as f64)
    );
    let mut gap_s: BTreeMap<String, f64> = BTreeMap::new();
    for g in segs.iter().filter(|e| e["type"] == "gap" && !e["end"].is_null()) {
        *gap_s.entry(g["cause"].as_str().unwrap().to_string()).or_default() +=
            g["duration_s"].as_f64().unwrap();
    }
    assert!(!gap_s.is_empty());
    for (cause, secs) in &gap_s {
        let key = format!("classproof_gap_seconds_total{{camera=\"front\",cause=\"{cause}\"}}");
        let got = m.get(&key).copied().unwrap_or_else(|| panic!("{key} in\n{text}"));
        assert!((got - secs).abs() < 1.0, "{key}: {got} vs segments {secs}");
    }
    assert_eq!(
        m.get("classproof_gaps_open{camera=\"front\"}").copied(),
        Some(1.0)
    );
    assert_eq!(
        m.get("classproof_camera_up{camera=\"front\"}").copied(),
        Some(0.0)
    );

    // Log records by kind equal the log (the daemon writes no record while the camera is
    // down and nothing closes, except possibly a checkpoint: compare the segment records).
    let seg_records = json_lines(&["events", "--config", &cfg(&config), "--type", "segment", "--json"]);
    assert_eq!(
        m.get("classproof_log_records_total{kind=\"segment\"}").copied(),
        Some(seg_records.len() as f64),
        "{text}"
    );
    for job in ["store", "evidence", "verdicts", "status", "camera-front"] {
        let key = format!("classproof_job_up{{job=\"{job}\"}}");
        assert_eq!(m.get(&key).copied(), Some(1.0), "{key} in\n{text}");
    }
    assert!(m.contains_key("classproof_checkins_total"), "{text}");

    let (_, body) = http_get(port, "/api/status", None).expect("status");
    let doc: Value = serde_json::from_str(&body).unwrap();
    let cam = &doc["cameras"][0];
    assert_eq!(cam["state"], "gap", "{doc:#}");
    assert_eq!(cam["segments"].as_u64(), Some(closed.len() as u64));
    assert_eq!(doc["sessions"][0]["session_id"], "today");
    assert_eq!(
        doc["sessions"][0]["class_hours"].as_array().map(Vec::len),
        Some(2)
    );
    assert_eq!(doc["device"], "test-box");
    assert!(doc["jobs"]["store"]["state"] == "running", "{doc:#}");
    crate::status::assert_schema(&doc);
    daemon.terminate(Duration::from_secs(10));
}

/// Checks a document against docs/schemas/api-status.schema.json.
pub fn assert_schema(doc: &Value) {
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(crate::support::repo().join("docs/schemas/api-status.schema.json")).unwrap(),
    )
    .unwrap();
    let v = jsonschema::validator_for(&schema).expect("a valid schema");
    let errors: Vec<String> = v
        .iter_errors(doc)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{errors:#?}\n{doc:#}");
}

/// Off loopback, a token file is required (check-config refuses otherwise) and every request
/// needs the bearer token.
#[test]
fn off_loopback_every_request_needs_the_bearer_token() {
    let scene = Scene::new();
    let port = free_port();
    let config = scene.config(&format!("[status]\nlisten = \"0.0.0.0:{port}\"\n"));
    let out = classproof(&["check-config", "--config", &cfg(&config)]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("status.token_file"), "{err}");

    let token = "s3cret-token-0123456789abcdef";
    std::fs::write(scene.path().join("status.token"), format!("{token}\n")).unwrap();
    let config = scene.config(&format!(
        "[status]\nlisten = \"0.0.0.0:{port}\"\ntoken_file = \"status.token\"\n"
    ));
    let out = classproof(&["check-config", "--config", &cfg(&config)]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut daemon = Daemon::start(&config);
    let (code, _) = wait_for("the server", Duration::from_secs(20), || {
        http_get(port, "/api/status", Some(token)).filter(|(c, _)| *c == 200)
    });
    assert_eq!(code, 200);
    for path in ["/", "/metrics", "/api/status"] {
        assert_eq!(http_get(port, path, None).map(|r| r.0), Some(401), "{path}");
        assert_eq!(
            http_get(port, path, Some("s3cret-token-0123456789abcdeX")).map(|r| r.0),
            Some(401),
            "{path}"
        );
        assert_eq!(
            http_get(port, path, Some(token)).map(|r| r.0),
            Some(200),
            "{path}"
        );
    }
    daemon.terminate(Duration::from_secs(10));
}

/// The datagrams the daemon sends to `NOTIFY_SOCKET`, with when they arrived.
fn receive(sock: &UnixDatagram, until: Instant, got: &mut Vec<(Instant, String)>) {
    let mut buf = [0u8; 4096];
    while Instant::now() < until {
        sock.set_read_timeout(Some(
            until
                .saturating_duration_since(Instant::now())
                .max(Duration::from_millis(1)),
        ))
        .unwrap();
        if let Ok(n) = sock.recv(&mut buf) {
            got.push((Instant::now(), String::from_utf8_lossy(&buf[..n]).into_owned()));
        }
    }
}

/// READY=1 after recovery, WATCHDOG=1 pings while the jobs beat, a STATUS= line; a store hung
/// on a database another process holds locked (BEGIN EXCLUSIVE) stops the pings until it is
/// released.
#[test]
fn the_watchdog_pings_only_while_every_job_beats() {
    let scene = Scene::new();
    let server = RtspServer::start("h264");
    let socket_path = scene.path().join("notify.sock");
    let sock = UnixDatagram::bind(&socket_path).unwrap();
    let config = scene.config(&format!(
        "[daemon]\nheartbeat_timeout = \"2s\"\n\n{}",
        camera("front", &server.url(), "1s", "")
    ));
    let mut daemon = Daemon::start_env(
        &config,
        &[
            ("NOTIFY_SOCKET", &socket_path.to_string_lossy()),
            ("WATCHDOG_USEC", "1500000"),
        ],
    );
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline
        && !got
            .iter()
            .any(|(_, m): &(Instant, String)| m.contains("STATUS=recording 1/1 cameras"))
    {
        receive(&sock, Instant::now() + Duration::from_millis(200), &mut got);
    }
    let ready = got.iter().position(|(_, m)| m.contains("READY=1"));
    assert!(ready.is_some(), "no READY=1 in {got:?}\n{}", daemon.log());
    assert!(
        got.iter()
            .any(|(_, m)| m.contains("STATUS=recording 1/1 cameras, offline")),
        "{got:?}"
    );
    // Pings at least every 0.5 s (a third of WatchdogSec) while all is well.
    got.clear();
    receive(&sock, Instant::now() + Duration::from_secs(2), &mut got);
    let pings = got.iter().filter(|(_, m)| m.contains("WATCHDOG=1")).count();
    assert!(pings >= 3, "{got:?}");

    // Another process holds the write lock: the store's next write waits (busy timeout 10 s)
    // and its heartbeat goes stale.
    let lock = rusqlite::Connection::open(scene.data_dir().join("classproof.db")).unwrap();
    lock.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let locked_at = Instant::now();
    got.clear();
    receive(&sock, locked_at + Duration::from_secs(6), &mut got);
    let last_ping = got
        .iter()
        .filter(|(_, m)| m.contains("WATCHDOG=1"))
        .map(|(t, _)| *t)
        .max();
    // The pings stop within the heartbeat timeout and a tick or two, and stay stopped.
    let stopped_by = last_ping.map_or(Duration::ZERO, |t| t - locked_at);
    assert!(
        stopped_by < Duration::from_secs(4),
        "pings went on {stopped_by:?} after the lock: {got:?}"
    );
    assert!(
        got.iter().any(|(_, m)| m.contains("has not beaten")),
        "the STATUS line names the hung job: {got:?}"
    );
    lock.execute_batch("ROLLBACK").unwrap();
    drop(lock);
    got.clear();
    let released = Instant::now();
    receive(&sock, released + Duration::from_secs(15), &mut got);
    assert!(
        got.iter().any(|(_, m)| m.contains("WATCHDOG=1")),
        "pings resume once the lock is gone: {got:?}"
    );
    let status = daemon.terminate(Duration::from_secs(10));
    assert!(status.success());
    receive(&sock, Instant::now() + Duration::from_millis(100), &mut got);
    assert!(got.iter().any(|(_, m)| m.contains("STOPPING=1")), "{got:?}");
}

/// `cameras probe` measures what a real camera sends; a keyframe every 3 s is a warning
/// (segments cut only at keyframes), one a second is not.
#[test]
fn cameras_probe_measures_codec_size_fps_keyframes_and_bitrate() {
    let good =
        RtspServer::start_with("h264", None, &["--fps", "25", "--gop", "25", "--size", "640x360"]).unwrap();
    let slow = RtspServer::start_with("h264", None, &["--fps", "10", "--gop", "30"]).unwrap();
    let out = classproof(&["cameras", "probe", &good.url(), "--seconds", "3", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["codec"], "h264");
    assert_eq!(
        (v["width"].as_u64(), v["height"].as_u64()),
        (Some(640), Some(360))
    );
    let fps = v["fps"].as_f64().unwrap();
    assert!((fps - 25.0).abs() < 2.0, "{v}");
    let k = v["keyframe_interval_s"].as_f64().unwrap();
    assert!((k - 1.0).abs() < 0.2, "{v}");
    assert!(v["bitrate_bps"].as_f64().unwrap() > 50_000.0, "{v}");
    assert_eq!(v["warnings"].as_array().map(Vec::len), Some(0), "{v}");

    let out = classproof(&["cameras", "probe", &slow.url(), "--seconds", "3"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("warning") && text.contains("keyframe interval 3.0s"),
        "{text}"
    );

    let dead = format!("rtsp://127.0.0.1:{}/cam", free_port());
    let out = classproof(&["cameras", "probe", &dead, "--seconds", "1"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// `doctor` says ok for what is right and names the problem and its fix for what is not;
/// exit 1 on a problem.
#[test]
fn doctor_checks_config_cameras_disk_clock_key_and_data_dir() {
    let scene = Scene::new();
    let server = RtspServer::start("h264");
    let dead = format!("rtsp://127.0.0.1:{}/cam", free_port());
    let config = scene.config(&format!(
        "{}{}",
        camera("front", &server.url(), "2s", ""),
        camera("gone", &dead, "2s", "connect_timeout = \"1s\"")
    ));
    let out = classproof(&["doctor", "--config", &cfg(&config), "--probe-seconds", "2"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let line = |prefix: &str, what: &str| text.lines().any(|l| l.starts_with(prefix) && l.contains(what));
    assert!(line("ok", "config:"), "{text}");
    assert!(line("ok", "data dir:"), "{text}");
    assert!(line("ok", "camera front: h264 640x360"), "{text}");
    assert!(line("problem", "camera gone:"), "{text}");
    assert!(text.contains("fix: check the camera is powered"), "{text}");
    assert!(line("ok", "disk:"), "{text}");
    assert!(text.lines().any(|l| l.contains("clock:")), "{text}");
    // No daemon ran yet: the key is created at its first start.
    assert!(line("warning", "device key:"), "{text}");

    // Only the good camera: no problem, exit 0.
    let config = scene.config(&camera("front", &server.url(), "2s", ""));
    let out = classproof(&["doctor", "--config", &cfg(&config), "--probe-seconds", "2"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
}

/// Headless chromium (Debian's), as a technician's browser: `--dump-dom` or `--screenshot`.
fn chromium(args: &[&str], url: &str) -> std::process::Output {
    let profile = tempfile::tempdir().unwrap();
    std::process::Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--window-size=1280,1100",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .arg(url)
        .output()
        .expect("chromium (deploy/setup.sh installs it)")
}

/// The page in a real browser shows each camera with its state and each of today's class
/// hours with its verdict and rule, in Chinese by default and in English on request; and
/// `report --svg` draws the same class hours.
#[test]
fn the_status_page_in_a_real_browser_shows_every_camera_and_class_hour() {
    let scene = Scene::new();
    let server = RtspServer::start("h264");
    let port = free_port();
    let dead = format!("rtsp://127.0.0.1:{}/cam", free_port());
    let start = local(Utc::now() - chrono::Duration::seconds(30));
    let config = scene.config(&format!(
        "[status]\nlisten = \"127.0.0.1:{port}\"\n\n\
         [rules]\nprofile = \"custom\"\nbase = \"henan\"\nmin_class_hour = \"40s\"\n\
         practical_min_run = \"10s\"\ncontinuity_tolerance = \"1s\"\n\n{}{}\n\
         [[session]]\nid = \"today\"\nclass_id = \"c1\"\nkind = \"practical\"\ncameras = [\"front\"]\n\
         start = \"{start}\"\nclass_hours = 3\nclass_hour = \"40s\"\nbreak = \"0s\"\n",
        camera("front", &server.url(), "2s", ""),
        camera("back", &dead, "2s", "connect_timeout = \"1s\"")
    ));
    let mut daemon = Daemon::start(&config);
    wait_for(
        "a segment and the dead camera's gap",
        Duration::from_secs(30),
        || {
            let all = scene.segments(&config);
            let seg = all
                .iter()
                .any(|e| e["camera"] == "front" && e["type"] == "segment" && e["state"] == "closed");
            let gap = all.iter().any(|e| e["camera"] == "back" && e["type"] == "gap");
            (seg && gap).then_some(())
        },
    );
    let url = format!("http://127.0.0.1:{port}/");
    let out = chromium(&["--dump-dom"], &url);
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(dom.contains("<html lang=\"zh-CN\">"), "{dom}");
    assert!(
        dom.contains("id=\"camera-front\"") && dom.contains("data-state=\"recording\""),
        "{dom}"
    );
    assert!(dom.contains("id=\"camera-back\""), "{dom}");
    assert!(
        dom.contains("中断：摄像头断线"),
        "the dead camera's gap and its cause: {dom}"
    );
    let report = json_lines(&["report", "--config", &cfg(&config), "--json"]);
    for h in report[0]["class_hours"].as_array().unwrap() {
        let i = h["index"].as_u64().unwrap();
        let id = format!("id=\"hour-today-{i}\" data-index=\"{i}\" data-verdict=\"");
        let at = dom.find(&id).unwrap_or_else(|| panic!("{id} in {dom}"));
        let rest = &dom[at + id.len()..];
        let verdict = rest.split('"').next().unwrap();
        // The verdict may move on between the two reads only from pending/at_risk.
        assert!(
            verdict == h["verdict"] || h["verdict"] == "pending" || verdict == "pending",
            "hour {i}: page {verdict}, report {}",
            h["verdict"]
        );
        assert!(rest.contains(&format!("data-rule=\"{}\"", h["rule"].as_str().unwrap())));
        assert!(dom.contains(&format!("第{i}学时")), "{dom}");
    }
    assert!(dom.contains("签到") && dom.contains("课时"), "{dom}");
    // The thumbnail: the last keyframe of the camera's newest segment, as a JPEG.
    assert!(dom.contains("src=\"camera/front/still.jpg\""), "{dom}");
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "GET /camera/front/still.jpg HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let body_at = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert!(
        raw.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&raw[..body_at])
    );
    assert!(raw[body_at..].starts_with(&[0xff, 0xd8]), "a JPEG");

    let out = chromium(&["--dump-dom"], &format!("{url}?lang=en"));
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(
        dom.contains("<html lang=\"en\">") && dom.contains("class hour 1"),
        "{dom}"
    );

    let shot = scene.path().join("page.png");
    let out = chromium(&[&format!("--screenshot={}", shot.display())], &url);
    let png = std::fs::read(&shot).unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stderr)));
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "{} bytes",
        png.len()
    );
    if let Some(keep) = std::env::var_os("CLASSPROOF_KEEP_SCREENSHOT") {
        std::fs::copy(&shot, keep).unwrap();
    }

    let svg = scene.path().join("today.svg");
    let out = classproof(&[
        "report",
        "--config",
        &cfg(&config),
        "--session",
        "today",
        "--svg",
        &cfg(&svg),
    ]);
    assert!(
        out.status.code().is_some_and(|c| c <= 1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(text.starts_with("<?xml") && text.contains("<svg"), "{text}");
    for i in 1..=3 {
        assert!(text.contains(&format!("data-index=\"{i}\"")), "{text}");
        assert!(text.contains(&format!("第{i}学时")), "{text}");
    }
    assert!(text.contains("依据 R2"), "{text}");
    daemon.terminate(Duration::from_secs(10));
}

/// A step of the wall clock (libfaketime moving one daemon's wall clock 120 s ahead; its
/// monotonic clock left alone) appends a `clock_step` alarm record with the times and the step.
#[test]
fn a_wall_clock_step_is_a_clock_step_alarm_record() {
    let lib = Path::new("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1");
    assert!(lib.exists(), "faketime (deploy/setup.sh installs it)");
    let scene = Scene::new();
    let offset = scene.path().join("faketime");
    std::fs::write(&offset, "+0\n").unwrap();
    let config = scene.config("");
    let mut daemon = Daemon::start_env(
        &config,
        &[
            ("LD_PRELOAD", &lib.to_string_lossy()),
            ("FAKETIME_TIMESTAMP_FILE", &offset.to_string_lossy()),
            ("FAKETIME_CACHE_DURATION", "1"),
            ("FAKETIME_DONT_FAKE_MONOTONIC", "1"),
        ],
    );
    daemon.wait_log("classproof running", Duration::from_secs(20));
    // Let the clock job take its first reading, then step.
    wait_for("the clock job running", Duration::from_secs(10), || {
        http_status_jobs(&config).filter(|j| j["clock"]["state"] == "running")
    });
    std::fs::write(&offset, "+120\n").unwrap();
    let alarm = wait_for("a clock_step record", Duration::from_secs(20), || {
        json_lines(&["events", "--config", &cfg(&config), "--type", "alarm", "--json"])
            .into_iter()
            .find(|r| r["alarm"] == "clock_step")
    });
    let step = alarm["step_s"].as_f64().unwrap();
    assert!((step - 120.0).abs() < 3.0, "{alarm}");
    assert_eq!(alarm["state"], "raised");
    assert!(
        alarm["old"].as_str().is_some() && alarm["new"].as_str().is_some(),
        "{alarm}"
    );
    // The page's alarms list it for a day, and doctor warns about it.
    let doc = wait_for("the clock step on /api/status", Duration::from_secs(10), || {
        let text = std::fs::read_to_string(&config).ok()?;
        let port: u16 = text
            .lines()
            .find_map(|l| l.strip_prefix("listen = \"127.0.0.1:"))?
            .trim_end_matches('"')
            .parse()
            .ok()?;
        let (_, body) = http_get(port, "/api/status", None)?;
        serde_json::from_str::<Value>(&body).ok()
    });
    assert!(
        doc["alarms"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["alarm"] == "clock_step"),
        "{doc:#}"
    );
    let out = classproof(&["doctor", "--config", &cfg(&config)]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.lines()
            .any(|l| l.starts_with("warning") && l.contains("clock step: the wall clock stepped")),
        "{text}"
    );
    daemon.terminate(Duration::from_secs(10));
}

/// The jobs of the daemon of `config`, from its status server.
fn http_status_jobs(config: &Path) -> Option<Value> {
    let text = std::fs::read_to_string(config).ok()?;
    let port: u16 = text
        .lines()
        .find_map(|l| l.strip_prefix("listen = \"127.0.0.1:"))?
        .trim_end_matches('"')
        .parse()
        .ok()?;
    let (code, body) = http_get(port, "/api/status", None)?;
    let v: Value = serde_json::from_str(&body).ok()?;
    (code == 200).then(|| v["jobs"].clone())
}

/// Under systemd (`JOURNAL_STREAM` set) the daemon logs to the journal's native socket, each
/// event's fields as journal fields: `CAMERA=front` is what `journalctl CAMERA=front` selects.
#[test]
fn under_systemd_log_lines_carry_camera_as_a_journal_field() {
    let path = Path::new("/run/systemd/journal/socket");
    if path.exists() {
        // A real journald: ask it.
        eprintln!("a real journald runs here; this test needs the socket free");
        return;
    }
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let sock = UnixDatagram::bind(path).unwrap();
    struct Remove<'a>(&'a Path);
    impl Drop for Remove<'_> {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(self.0);
        }
    }
    let _remove = Remove(path);
    let scene = Scene::new();
    let server = RtspServer::start("h264");
    let config = scene.config(&camera("front", &server.url(), "2s", ""));
    let mut daemon = Daemon::start_env(&config, &[("JOURNAL_STREAM", "8:12345")]);
    let mut got: Vec<BTreeMap<String, String>> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut buf = vec![0u8; 65536];
    sock.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let has_camera = |m: &BTreeMap<String, String>| m.get("CAMERA").is_some_and(|c| c == "front");
    while Instant::now() < deadline && !got.iter().any(has_camera) {
        if let Ok(n) = sock.recv(&mut buf) {
            got.push(journal_fields(&buf[..n]));
        }
    }
    let entry = got
        .iter()
        .find(|m| has_camera(m))
        .unwrap_or_else(|| panic!("no CAMERA=front in {got:#?}"));
    assert_eq!(
        entry.get("SYSLOG_IDENTIFIER").map(String::as_str),
        Some("classproof"),
        "{entry:?}"
    );
    assert!(
        entry.contains_key("PRIORITY") && entry.contains_key("MESSAGE"),
        "{entry:?}"
    );
    // Keep reading, as journald would: a full socket would hold up the daemon's logging.
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 65536];
        // Until the test removed the socket file (the read timeout wakes it to look).
        while Path::new("/run/systemd/journal/socket").exists() {
            let _ = sock.recv(&mut buf);
        }
    });
    daemon.terminate(Duration::from_secs(10));
}

/// The fields of one datagram of journald's native protocol: `KEY=VALUE\n`, or `KEY\n`, a
/// little-endian u64 length, the value and `\n`.
fn journal_fields(mut b: &[u8]) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    while !b.is_empty() {
        let Some(nl) = b.iter().position(|&c| c == b'\n') else {
            break;
        };
        let line = &b[..nl];
        if let Some(eq) = line.iter().position(|&c| c == b'=') {
            out.insert(
                String::from_utf8_lossy(&line[..eq]).into_owned(),
                String::from_utf8_lossy(&line[eq + 1..]).into_owned(),
            );
            b = &b[nl + 1..];
        } else {
            let key = String::from_utf8_lossy(line).into_owned();
            let rest = &b[nl + 1..];
            if rest.len() < 8 {
                break;
            }
            let len = u64::from_le_bytes(rest[..8].try_into().unwrap()) as usize;
            let value = &rest[8..8 + len.min(rest.len() - 8)];
            out.insert(key, String::from_utf8_lossy(value).into_owned());
            b = &rest[(8 + len + 1).min(rest.len())..];
        }
    }
    out
}

/// `./deploy/setup.sh deb` builds `classproof_<version>_amd64.deb` (cargo-deb) that lintian
/// passes without an error; it unpacks into a root made here and the binary from it serves the
/// status page; and it installs on this machine (the postinst makes the user and the data dir)
/// and purges cleanly, the machine restored. `./deploy/setup.sh test` installs cargo-deb
/// before the tests.
#[test]
fn the_debian_package_builds_passes_lintian_installs_starts_and_purges() {
    // Heavy: runs while no real-time test camera does (support::heavy).
    let _heavy = crate::support::heavy();
    let repo = crate::support::repo();
    let out = std::process::Command::new("bash")
        .arg(repo.join("deploy/setup.sh"))
        .arg("deb")
        .current_dir(&repo)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "setup.sh deb failed:\n{err}");
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or(repo.join("target"), std::path::PathBuf::from);
    let deb = target.join(format!(
        "debian/classproof_{}_amd64.deb",
        env!("CARGO_PKG_VERSION")
    ));
    assert!(deb.exists(), "{} in\n{err}", deb.display());
    let lintian = std::process::Command::new("lintian")
        .arg("--fail-on")
        .arg("error")
        .arg(&deb)
        .output()
        .unwrap();
    assert!(
        lintian.status.success(),
        "{}",
        String::from_utf8_lossy(&lintian.stdout)
    );

    // Unpacked into a root of our own: the files where they belong, and the binary runs.
    let root = tempfile::tempdir().unwrap();
    let x = std::process::Command::new("dpkg-deb")
        .arg("-x")
        .arg(&deb)
        .arg(root.path())
        .status()
        .unwrap();
    assert!(x.success());
    for f in [
        "usr/bin/classproof",
        "lib/systemd/system/classproof.service",
        "etc/classproof/classproof.toml",
        "usr/share/doc/classproof/operations.zh-CN.md",
    ] {
        assert!(root.path().join(f).exists(), "{f}");
    }
    let unit = std::fs::read_to_string(root.path().join("lib/systemd/system/classproof.service")).unwrap();
    assert!(
        unit.contains("ExecStart=/usr/bin/classproof run") && unit.contains("Type=notify"),
        "{unit}"
    );
    let conffiles = std::process::Command::new("dpkg-deb")
        .arg("-I")
        .arg(&deb)
        .arg("conffiles")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&conffiles.stdout).contains("/etc/classproof/classproof.toml"));
    let scene = Scene::new();
    let port = free_port();
    let config = scene.config(&format!("[status]\nlisten = \"127.0.0.1:{port}\"\n"));
    let mut child = std::process::Command::new(root.path().join("usr/bin/classproof"))
        .args(["run", "--config"])
        .arg(&config)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let served = wait_for(
        "the packaged binary's status page",
        Duration::from_secs(20),
        || http_get(port, "/metrics", None).filter(|(c, _)| *c == 200),
    );
    assert!(served.1.contains("classproof_job_up"));
    crate::support::signal(child.id(), libc::SIGTERM);
    assert!(child.wait().unwrap().success());

    // Installed on this machine and purged; what the test created is removed again.
    let had_user = std::process::Command::new("id")
        .arg("classproof")
        .output()
        .unwrap()
        .status
        .success();
    let had_data = Path::new("/var/lib/classproof").exists();
    let install = std::process::Command::new("dpkg")
        .arg("-i")
        .arg(&deb)
        .output()
        .unwrap();
    let installed = install.status.success();
    let id_ok = std::process::Command::new("id")
        .arg("classproof")
        .output()
        .unwrap()
        .status
        .success();
    let data_ok = Path::new("/var/lib/classproof").is_dir();
    let version = std::process::Command::new("/usr/bin/classproof")
        .arg("--version")
        .output()
        .ok();
    let purge = std::process::Command::new("dpkg")
        .args(["--purge", "classproof"])
        .output()
        .unwrap();
    let gone =
        !Path::new("/usr/bin/classproof").exists() && !Path::new("/etc/classproof/classproof.toml").exists();
    if !had_data {
        let _ = std::fs::remove_dir_all("/var/lib/classproof");
    }
    if !had_user {
        let _ = std::process::Command::new("userdel").arg("classproof").status();
    }
    assert!(installed, "{}", String::from_utf8_lossy(&install.stderr));
    assert!(id_ok && data_ok, "postinst made the user and /var/lib/classproof");
    assert!(version.is_some_and(|o| o.status.success()));
    assert!(
        purge.status.success(),
        "{}",
        String::from_utf8_lossy(&purge.stderr)
    );
    assert!(gone, "purge removes the binary and the conffile");
}

/// `doctor` reaches the upstream broker over TLS with the configured certificates (a real
/// mosquitto requiring client certificates), and names a CA that does not match as a problem.
#[test]
fn doctor_checks_the_upstream_broker_over_tls() {
    let scene = Scene::new();
    let pki = crate::support::Pki::make(&scene.path().join("pki"));
    let broker = crate::support::Mosquitto::start(&scene.path().join("broker"), &pki);
    let upstream = |ca: &Path| {
        format!(
            "[upstream]\nurl = \"mqtts://127.0.0.1:{}\"\nca_file = \"{}\"\nclient_cert_file = \"{}\"\nclient_key_file = \"{}\"\n",
            broker.port,
            ca.display(),
            pki.file("device.pem").display(),
            pki.file("device.key").display()
        )
    };
    let config = scene.config(&upstream(&pki.file("ca.pem")));
    let out = classproof(&["doctor", "--config", &cfg(&config)]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.lines()
            .any(|l| l.starts_with("ok") && l.contains("reachable over TLS")),
        "{text}"
    );
    assert_eq!(out.status.code(), Some(0), "{text}");

    let other = crate::support::Pki::make(&scene.path().join("other-pki"));
    let config = scene.config(&upstream(&other.file("ca.pem")));
    let out = classproof(&["doctor", "--config", &cfg(&config)]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.lines()
            .any(|l| l.starts_with("problem") && l.contains("upstream") && l.contains("TLS")),
        "{text}"
    );
    assert!(text.contains("fix: check [upstream] ca_file"), "{text}");
    assert_eq!(out.status.code(), Some(1), "{text}");
}
