//! Issue 9: face check-in in the running daemon, end to end, with the real models on real faces
//! of ../shared/faces-dev, videos composed with the ffmpeg CLI at test time (looped stills) or
//! taken from faces-dev `videos/`, served by the test RTSP camera or as `file:` cameras. Minutes
//! are scaled to seconds through `[attendance]` and a custom rules profile.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use crate::recording::{camera, of};
use crate::support::path_str as s;
use crate::support::{
    Daemon, RtspServer, Scene, classproof, ffmpeg, json_lines, models_dir, shared, wait_for,
};

/// A looped slideshow of `photos` (each shown 1/`per_s` s), H.264 at 10 fps, a keyframe each
/// second.
fn slideshow(dir: &Path, name: &str, photos: &[PathBuf], per_s: u32) -> PathBuf {
    let frames = dir.join(format!("{name}-frames"));
    std::fs::create_dir_all(&frames).unwrap();
    for (i, p) in photos.iter().enumerate() {
        std::fs::copy(p, frames.join(format!("{i:03}.jpg"))).unwrap();
    }
    let out = dir.join(format!("{name}.mp4"));
    ffmpeg(&[
        "-framerate",
        &per_s.to_string(),
        "-i",
        &s(&frames.join("%03d.jpg")),
        "-vf",
        "fps=10,scale=640:480,format=yuv420p",
        "-c:v",
        "libx264",
        "-g",
        "10",
        &s(&out),
    ]);
    out
}

fn nuaa(kind: &str, subject: &str, stems: &[&str]) -> Vec<PathBuf> {
    stems
        .iter()
        .map(|st| {
            shared()
                .join("faces-dev/nuaa")
                .join(kind)
                .join(subject)
                .join(format!("{subject}_{st}.jpg"))
        })
        .collect()
}

fn events(config: &Path, kind: &str) -> Vec<Value> {
    json_lines(&["events", "--config", &s(config), "--type", kind, "--json"])
}

fn enroll(config: &Path, person: &str, class: &str, photo: &Path) {
    let out = classproof(&[
        "enroll",
        "--config",
        &s(config),
        "--person",
        person,
        "--name",
        person,
        "--role",
        "trainee",
        "--class",
        class,
        &s(photo),
    ]);
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("1 of 1 photo(s) enrolled"),
        "enroll {person}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn sha256_hex(path: &Path) -> String {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    hex::encode(ring::digest::digest(&ring::digest::SHA256, &bytes).as_ref())
}

/// RFC 3339 in +08:00 of `now + secs`, whole seconds.
fn at(secs: i64) -> String {
    let t = chrono::Utc::now() + chrono::TimeDelta::seconds(secs);
    t.with_timezone(&chrono::FixedOffset::east_opt(8 * 3600).unwrap())
        .format("%Y-%m-%dT%H:%M:%S+08:00")
        .to_string()
}

const RULES: &str = r#"
[rules]
profile = "custom"
base = "henan"
min_class_hour = "4s"
practical_min_run = "3s"
continuity_tolerance = "1s"
"#;

/// One session, three analysed cameras: the door (an enrolled person's video over RTSP), a
/// printed photo of another enrolled trainee held up to a camera, and an unenrolled stranger.
/// The daemon is killed with SIGKILL after the check-in and restarted.
#[test]
fn faces_check_in_once_with_snapshots_prints_are_spoofs_strangers_unknown_and_a_kill_loses_nothing() {
    let scene = Scene::new();
    let dir = scene.path();
    // The door: a real webcam-style video of one person (faces-dev videos/); enrolled from a
    // frame of it taken 2 s in.
    let (video, door_photo) = crate::support::door_person(dir);
    let door = RtspServer::start_file(&video);
    // A print attack: NUAA printed photos of subject 0001, who is enrolled from a live capture.
    let print = slideshow(
        dir,
        "print",
        &nuaa(
            "print",
            "0001",
            &["00_00_01_0", "00_00_01_102", "00_00_01_201", "00_00_01_297"],
        ),
        2,
    );
    // A stranger: NUAA live captures of subject 0002, not enrolled.
    let stranger = slideshow(
        dir,
        "stranger",
        &nuaa(
            "live",
            "0002",
            &["01_00_01_124", "01_00_01_212", "01_00_01_331", "01_00_01_496"],
        ),
        2,
    );
    // Check-in opens at once; the one class hour starts in 15 s and lasts 30 s; late after 15 s;
    // check-out within 6 s of the end.
    let start = at(15);
    let file_cam = |id: &str, f: &Path| {
        camera(
            id,
            &format!("file://{}", f.display()),
            "4s",
            "loop = true\nrealtime = true\nanalyze = \"entrance\"\nanalyze_fps = 3\n",
        )
    };
    let config = scene.config(&format!(
        r#"{RULES}
[vision]
models_dir = "{models}"

[attendance]
checkin_opens = "60s"
late_after = "15s"
checkout_window = "6s"
unknown_face_retention = "1d"

{door_cam}
{print_cam}
{stranger_cam}
[[session]]
id = "s1"
class_id = "c1"
kind = "practical"
cameras = ["door", "print", "stranger"]
start = "{start}"
class_hours = 1
class_hour = "30s"
break = "0s"
"#,
        models = models_dir(),
        door_cam = camera("door", &door.url(), "4s", "analyze = \"entrance\"\n"),
        print_cam = file_cam("print", &print),
        stranger_cam = file_cam("stranger", &stranger),
    ));
    enroll(&config, "p1", "c1", &door_photo);
    enroll(&config, "p2", "c1", &nuaa("live", "0001", &["00_00_01_101"])[0]);

    let mut daemon = Daemon::start(&config);
    let check_in = wait_for("p1's check_in", Duration::from_secs(45), || {
        events(&config, "check_in").into_iter().next()
    });
    assert_eq!(check_in["person_id"], "p1", "{check_in:#}");
    assert_eq!(check_in["camera"], "door");
    assert_eq!(check_in["late"], false, "on time: {check_in:#}");
    assert_eq!(check_in["role"], "trainee");
    assert!(check_in["similarity"].as_f64().unwrap() >= 0.5, "{check_in:#}");
    assert!(check_in["liveness"].as_f64().unwrap() >= 0.5, "{check_in:#}");
    // R14, R19: the snapshot is on disk and its sha256 is the record's.
    let snap = scene.data_dir().join(check_in["snapshot"].as_str().unwrap());
    assert!(
        check_in["snapshot"]
            .as_str()
            .unwrap()
            .starts_with("snapshots/door/"),
        "{check_in:#}"
    );
    assert_eq!(sha256_hex(&snap), check_in["snapshot_sha256"].as_str().unwrap());

    // kill -9 mid-session, then restart: the state machine resumes from the log.
    daemon.kill9();
    let mut daemon = Daemon::start(&config);
    // The end: check-out of p1 in the window, `absent` for p2 (only a print was shown).
    let absent = wait_for("absent at the end", Duration::from_secs(60), || {
        let a = events(&config, "absent");
        (!a.is_empty()).then_some(a)
    });
    let check_out = wait_for("p1's check_out", Duration::from_secs(15), || {
        events(&config, "check_out").into_iter().next()
    });
    // One more second of frames in the check-out window: nothing new is decided for p1.
    std::thread::sleep(Duration::from_secs(2));
    let status = daemon.terminate(Duration::from_secs(10));
    assert!(status.success(), "{status:?}\n{}", daemon.log());

    let ins = events(&config, "check_in");
    assert_eq!(
        ins.len(),
        1,
        "one check-in, not repeated, not duplicated by the restart: {ins:#?}"
    );
    assert_eq!(check_out["person_id"], "p1");
    assert_eq!(events(&config, "check_out").len(), 1);
    let absent: Vec<&str> = absent.iter().map(|a| a["person_id"].as_str().unwrap()).collect();
    assert_eq!(absent, ["p2"], "the printed photo checked nobody in");
    let spoofs = events(&config, "spoof_attempt");
    assert!(
        spoofs.iter().any(|v| v["camera"] == "print"),
        "the print is a spoof_attempt: {spoofs:#?}"
    );
    let unknown = events(&config, "unknown_face");
    let stranger_tracks: Vec<u64> = unknown
        .iter()
        .filter(|v| v["camera"] == "stranger")
        .map(|v| v["track"].as_u64().unwrap())
        .collect();
    assert!(
        !stranger_tracks.is_empty(),
        "the stranger is an unknown_face: {unknown:#?}"
    );
    let mut unique = stranger_tracks.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(
        unique.len(),
        stranger_tracks.len(),
        "one unknown_face per track: {unknown:#?}"
    );
    // No false check-ins and no unexpected persons.
    assert!(events(&config, "unexpected_person").is_empty());
    for v in spoofs.iter().chain(&unknown) {
        assert!(
            v["snapshot_sha256"].is_string(),
            "every decision has its snapshot: {v:#}"
        );
    }

    // The report.
    let r = &json_lines(&["attendance", "--config", &s(&config), "--session", "s1", "--json"])[0];
    assert_eq!(r["session"], "s1");
    assert_eq!(r["summary"]["expected"], 2, "{r:#}");
    assert_eq!(r["summary"]["present"], 1, "{r:#}");
    assert_eq!(r["summary"]["absent"], 1, "{r:#}");
    assert_eq!(r["summary"]["opening_head_count"], 1, "R12: {r:#}");
    let p1 = r["persons"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["person_id"] == "p1")
        .unwrap();
    assert_eq!(p1["status"], "present");
    assert!(
        p1["check_in"].is_string() && p1["check_out"].is_string(),
        "{p1:#}"
    );

    // Snapshots are evidence files: verify checks them (and finds a changed one, below), and
    // the exported bundle carries the session's snapshots.
    let bundle = dir.join("bundle");
    crate::support::verify_then_export(&config, "s1", &bundle);
    let exported = bundle.join(check_in["snapshot"].as_str().unwrap());
    assert_eq!(
        sha256_hex(&exported),
        check_in["snapshot_sha256"].as_str().unwrap()
    );
    let keys =
        String::from_utf8_lossy(&classproof(&["keys", "show", "--config", &s(&config)]).stdout).to_string();
    let key = keys
        .split_whitespace()
        .find(|w| w.starts_with("ed25519:"))
        .unwrap_or_else(|| panic!("no key in {keys}"))
        .to_string();
    let verify_bundle = || classproof(&["verify", "--bundle", &s(&bundle), "--pubkey", &key]);
    let out = verify_bundle();
    assert!(
        out.status.success(),
        "verify --bundle: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    std::fs::write(&exported, b"not the snapshot").unwrap();
    let out = verify_bundle();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    std::fs::write(&snap, b"not the snapshot").unwrap();
    let out = classproof(&["verify", "--config", &s(&config)]);
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains(check_in["snapshot"].as_str().unwrap()), "{text}");
}

/// Analysis far beyond what the machine can do (30 fps of a 1080p crowd on two cameras, one
/// worker) drops frames, counts them, and changes nothing in the recording.
#[test]
fn saturated_analysis_drops_and_counts_frames_and_recording_is_untouched() {
    let scene = Scene::new();
    // 4.2 s of 1080p pedestrians (2–4 faces a frame), four times over (a keyframe each second):
    // the test camera plays a file once.
    let video = scene.path().join("crowd.mp4");
    ffmpeg(&[
        "-stream_loop",
        "3",
        "-i",
        &s(&shared().join("faces-dev/videos/facenet_pytorch_video.mp4")),
        "-an",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-g",
        "25",
        &s(&video),
    ]);
    let a = RtspServer::start_file(&video);
    let b = RtspServer::start_file(&video);
    // A third camera (a generated stream, a keyframe each second) analysed at 0.9 fps:
    // keyframes suffice, so only they are decoded.
    let k = RtspServer::start("h264");
    let analysed = "analyze = \"classroom\"\nanalyze_fps = 30\n";
    let config = scene.config(&format!(
        "[vision]\nmodels_dir = \"{}\"\n[attendance]\nworkers = 1\n{}{}{}",
        models_dir(),
        camera("a", &a.url(), "2s", analysed),
        camera("b", &b.url(), "2s", analysed),
        camera(
            "k",
            &k.url(),
            "2s",
            "analyze = \"classroom\"\nanalyze_fps = 0.9\n"
        ),
    ));
    let mut daemon = Daemon::start(&config);
    let stats = scene.data_dir().join("analysis.json");
    let counters = wait_for("dropped frames counted", Duration::from_secs(40), || {
        let v: Value = serde_json::from_slice(&std::fs::read(&stats).ok()?).ok()?;
        let cams: Vec<Value> = v["cameras"]
            .as_array()?
            .iter()
            .filter(|c| c["camera"] != "k")
            .cloned()
            .collect();
        let ok = cams.len() == 2
            && cams.iter().all(|c| {
                c["frames_dropped"].as_u64().unwrap_or(0) > 0
                    && c["frames_analysed"].as_u64().unwrap_or(0) > 0
            })
            && cams
                .iter()
                .all(|c| c["detect_seconds"].as_f64().unwrap_or(0.0) > 0.0);
        ok.then_some(cams)
    });
    // Let recording run on while analysis stays saturated.
    std::thread::sleep(Duration::from_secs(8));
    // The same counters on /metrics (issue 12), with the inference histogram per model.
    let text = std::fs::read_to_string(&config).unwrap();
    let port: u16 = text
        .split("listen = \"127.0.0.1:")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .and_then(|p| p.parse().ok())
        .expect("the scene's status port");
    let (code, body) = crate::status::http_get(port, "/metrics", None).expect("GET /metrics");
    assert_eq!(code, 200, "{body}");
    let m = crate::status::series(&body);
    for cam in ["a", "b"] {
        let dropped = m.get(&format!("classproof_frames_dropped_total{{camera=\"{cam}\"}}"));
        assert!(dropped.is_some_and(|d| *d > 0.0), "dropped on {cam}: {body}");
        let analysed = m.get(&format!("classproof_frames_analysed_total{{camera=\"{cam}\"}}"));
        assert!(analysed.is_some_and(|d| *d > 0.0), "analysed on {cam}: {body}");
    }
    for model in ["detect", "liveness", "embed"] {
        let n = m.get(&format!(
            "classproof_inference_seconds_count{{model=\"{model}\"}}"
        ));
        assert!(n.is_some_and(|n| *n > 0.0), "{model} observed: {body}");
    }
    let v: Value = serde_json::from_slice(&std::fs::read(&stats).unwrap()).unwrap();
    let kc = v["cameras"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["camera"] == "k")
        .unwrap()
        .clone();
    let status = daemon.terminate(Duration::from_secs(10));
    assert!(status.success(), "{status:?}\n{}", daemon.log());
    assert_eq!(kc["keyframes_only"], true, "{kc:#}");
    // At 25 fps a full decode decodes ~25 frames a second (~350 in this test); keyframes only,
    // ~1 a second after the first keyframe interval (fully decoded while it is measured).
    let decoded = kc["frames_decoded"].as_u64().unwrap();
    assert!((1..=80).contains(&decoded), "keyframes only: {kc:#}");
    let all = scene.segments(&config);
    for cam in ["a", "b", "k"] {
        let segs = of(&all, cam, "segment");
        assert!(segs.len() >= 3, "camera {cam} recorded: {all:#?}");
        assert!(of(&all, cam, "gap").is_empty(), "no gap on {cam}: {all:#?}");
        for w in segs.windows(2) {
            assert_eq!(
                w[0]["end"], w[1]["start"],
                "contiguous on {cam}: {} {}",
                w[0], w[1]
            );
            assert_eq!(w[0]["stream_id"], w[1]["stream_id"], "one connection on {cam}");
        }
    }
    eprintln!("counters: {counters:#?}");
}

/// The power goes before the class ends: the daemon checked p1 in and was killed; it comes back
/// only after the occurrence's end and check-out window. At start-up it writes the `absent`
/// records it missed (p2 only: p1 checked in), marked `after_downtime`, with the occurrence's
/// end as their time (R8, R16: nothing about attendance is silently lost).
#[test]
fn absent_records_missed_while_the_daemon_was_down_are_written_when_it_starts_again() {
    let scene = Scene::new();
    let dir = scene.path();
    let (video, door_photo) = crate::support::door_person(dir);
    // Check-in open at once; the one class hour starts in 10 s and lasts 20 s; check-out
    // window 2 s.
    let start_in = 10;
    let start = at(start_in);
    let closes = std::time::Instant::now() + Duration::from_secs(start_in as u64 + 20 + 2);
    let config = scene.config(&format!(
        r#"{RULES}
[vision]
models_dir = "{models}"

[attendance]
checkin_opens = "60s"
late_after = "15s"
checkout_window = "2s"

{door_cam}
[[session]]
id = "s1"
class_id = "c1"
kind = "practical"
cameras = ["door"]
start = "{start}"
class_hours = 1
class_hour = "20s"
break = "0s"
"#,
        models = models_dir(),
        door_cam = camera(
            "door",
            &format!("file://{}", video.display()),
            "4s",
            "loop = true\nrealtime = true\nanalyze = \"entrance\"\nanalyze_fps = 3\n",
        ),
    ));
    enroll(&config, "p1", "c1", &door_photo);
    enroll(&config, "p2", "c1", &nuaa("live", "0001", &["00_00_01_101"])[0]);

    let mut daemon = Daemon::start(&config);
    let check_in = wait_for("p1's check_in", Duration::from_secs(25), || {
        events(&config, "check_in").into_iter().next()
    });
    assert_eq!(check_in["person_id"], "p1", "{check_in:#}");
    daemon.kill9();
    // The outage itself: down through the end and the check-out window.
    std::thread::sleep(closes.saturating_duration_since(std::time::Instant::now()) + Duration::from_secs(1));
    assert!(
        events(&config, "absent").is_empty(),
        "nobody wrote absent while down"
    );

    let mut daemon = Daemon::start(&config);
    let absent = wait_for(
        "the absent records after the downtime",
        Duration::from_secs(30),
        || {
            let a = events(&config, "absent");
            (!a.is_empty()).then_some(a)
        },
    );
    assert!(
        daemon.terminate(Duration::from_secs(10)).success(),
        "{}",
        daemon.log()
    );
    assert_eq!(absent.len(), 1, "{absent:#?}");
    assert_eq!(absent[0]["person_id"], "p2", "p1 checked in: {absent:#?}");
    assert_eq!(absent[0]["after_downtime"], true, "{absent:#?}");
    assert_eq!(absent[0]["session_id"], "s1", "{absent:#?}");
    // Nobody checked out: the daemon was down in the check-out window.
    assert!(events(&config, "check_out").is_empty());
    // The attendance report says the same.
    let out = classproof(&["attendance", "--json", "--session", "s1", "--config", &s(&config)]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["summary"]["present"], 1, "{report:#}");
    assert_eq!(report["summary"]["absent"], 1, "{report:#}");
    // The log still verifies end to end.
    let out = classproof(&["verify", "--config", &s(&config)]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
}
