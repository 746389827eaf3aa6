//! Recording backbone (issue 2) against real parts: gst-rtsp-server cameras on loopback, the
//! daemon as a child process, real kill -9, ffprobe on every segment.
//!
//! Rules: R1–R3 need unbroken recording and honest holes; R6–R8 need every minute kept and
//! accounted for.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::support::{
    Daemon, RtspServer, Scene, TinyDisk, ffmpeg_decode_frames, ffprobe_duration, fill_disk, wait_for,
};

pub(crate) fn time(v: &Value, key: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(v[key].as_str().unwrap_or_else(|| panic!("{key} in {v}")))
        .unwrap()
        .to_utc()
}

pub(crate) fn of<'a>(entries: &'a [Value], camera: &str, kind: &str) -> Vec<&'a Value> {
    entries
        .iter()
        .filter(|e| e["camera"] == camera && e["type"] == kind)
        .collect()
}

fn secs(a: DateTime<Utc>, b: DateTime<Utc>) -> f64 {
    (b - a).as_seconds_f64()
}

/// Finished segments of `camera` so far (the open one is not counted).
pub(crate) fn closed_segments(scene: &Scene, config: &Path, camera: &str) -> Vec<Value> {
    scene
        .segments(config)
        .into_iter()
        .filter(|e| e["camera"] == camera && e["type"] == "segment" && e["state"] != "recording")
        .collect()
}

/// Waits (at most 30 s) for a finished segment of `camera` that starts after `after`.
pub(crate) fn wait_for_segment_after(
    scene: &Scene,
    config: &Path,
    camera: &str,
    after: Option<DateTime<Utc>>,
    what: &str,
) {
    wait_for(what, Duration::from_secs(30), || {
        closed_segments(scene, config, camera)
            .iter()
            .any(|s| after.is_none_or(|t| time(s, "start") > t))
            .then_some(())
    });
}

pub(crate) fn camera(id: &str, url: &str, segment: &str, extra: &str) -> String {
    format!("[[camera]]\nid = \"{id}\"\nurl = \"{url}\"\nsegment = \"{segment}\"\n{extra}\n")
}

/// Each segment decodes from start to end without errors.
fn assert_playable(entries: &[&Value]) {
    for s in entries {
        let path = PathBuf::from(s["path"].as_str().unwrap());
        let frames =
            ffmpeg_decode_frames(&path).unwrap_or_else(|e| panic!("{} does not decode: {e}", path.display()));
        assert!(frames > 0, "{} has no frames", path.display());
    }
}

/// Segments of one stream follow each other exactly.
fn assert_contiguous(segments: &[&Value]) {
    for w in segments.windows(2) {
        let (a, b) = (w[0], w[1]);
        assert_eq!(a["stream_id"], b["stream_id"], "one connection expected: {a} {b}");
        assert_eq!(
            a["stream_seq"].as_u64().unwrap() + 1,
            b["stream_seq"].as_u64().unwrap()
        );
        assert_eq!(a["end"], b["start"], "segments must be contiguous: {a} {b}");
    }
}

#[test]
fn records_h264_and_h265_continuously_in_playable_segments() {
    let h264 = RtspServer::start("h264");
    let h265 = RtspServer::start("h265");
    let scene = Scene::new();
    let dead = format!("rtsp://127.0.0.1:{}/cam", crate::support::free_port());
    let config = scene.config(&format!(
        "{}{}{}",
        camera("front", &h264.url(), "3s", ""),
        camera("back", &h265.url(), "3s", ""),
        // Nothing listens here: it must not hold up the others.
        camera("gone", &dead, "3s", "")
    ));
    let mut daemon = Daemon::start(&config);
    daemon.wait_log("camera=front", Duration::from_secs(15));
    wait_for(
        "4 finished segments of each camera",
        Duration::from_secs(40),
        || {
            let n = closed_segments(&scene, &config, "front")
                .len()
                .min(closed_segments(&scene, &config, "back").len());
            (n >= 4).then_some(())
        },
    );
    let stop_asked = Instant::now();
    let status = daemon.terminate(Duration::from_secs(5));
    assert!(status.success(), "exit status {status:?}\n{}", daemon.log());
    assert!(stop_asked.elapsed() < Duration::from_secs(5));

    let all = scene.segments(&config);
    for (cam, codec) in [("front", "h264"), ("back", "hevc")] {
        let segs = of(&all, cam, "segment");
        assert!(segs.len() >= 5, "{cam}: {segs:#?}");
        assert!(
            segs.iter().all(|s| s["state"] == "closed" && s["codec"] == codec),
            "{segs:#?}"
        );
        assert!(of(&all, cam, "gap").is_empty(), "{cam} has gaps: {all:#?}");
        assert_contiguous(&segs);
        assert_playable(&segs);
        // Media durations (as ffprobe reads the files) add up to the wall time covered.
        let media: f64 = segs
            .iter()
            .map(|s| ffprobe_duration(Path::new(s["path"].as_str().unwrap())).unwrap())
            .sum();
        let wall = secs(time(segs[0], "start"), time(segs[segs.len() - 1], "end"));
        assert!(
            (media - wall).abs() <= wall * 0.01,
            "{cam}: media {media:.3} s vs wall {wall:.3} s"
        );
        // Full segments are the configured length (cut at the first keyframe after it).
        for s in &segs[..segs.len() - 1] {
            let d = s["duration_s"].as_f64().unwrap();
            assert!((3.0..=4.05).contains(&d), "{cam}: segment of {d} s");
        }
        // The index tells the truth about each file.
        for s in &segs {
            let path = Path::new(s["path"].as_str().unwrap());
            let bytes = std::fs::read(path).unwrap();
            assert_eq!(s["bytes"].as_u64().unwrap(), bytes.len() as u64);
            assert_eq!(s["sha256"].as_str().unwrap(), sha256_hex(&bytes));
            assert!(
                path.starts_with(scene.data_dir().join("video").join(cam)),
                "{}",
                path.display()
            );
        }
    }
    // The camera that never answered is one open-ended camera_lost gap from start-up.
    let gone = of(&all, "gone", "gap");
    assert_eq!(gone.len(), 1, "{gone:#?}");
    assert_eq!(gone[0]["cause"], "camera_lost");
}

#[test]
fn a_camera_outage_is_one_camera_lost_gap_and_recording_resumes_within_5s() {
    let mut server = RtspServer::start("h264");
    let scene = Scene::new();
    let config = scene.config(&camera("front", &server.url(), "2s", "stall_timeout = \"3s\""));
    let mut daemon = Daemon::start(&config);
    wait_for_segment_after(&scene, &config, "front", None, "a first segment");

    server.kill();
    let killed = Utc::now();
    daemon.wait_log("gap opened", Duration::from_secs(10));
    // The outage itself: ten seconds without a camera.
    std::thread::sleep(Duration::from_secs(10));
    server.restart();
    let back = Utc::now();
    let resumed = wait_for("recording to resume", Duration::from_secs(15), || {
        scene
            .segments(&config)
            .into_iter()
            .find(|e| e["type"] == "segment" && time(e, "start") > killed)
    });
    let resumed_at = time(&resumed, "start");
    assert!(
        secs(back, resumed_at) <= 5.0,
        "recording resumed {:.2} s after the camera came back",
        secs(back, resumed_at)
    );
    wait_for_segment_after(
        &scene,
        &config,
        "front",
        Some(killed),
        "a segment after the outage",
    );
    assert!(daemon.terminate(Duration::from_secs(5)).success());

    let all = scene.segments(&config);
    let gaps = of(&all, "front", "gap");
    assert_eq!(gaps.len(), 1, "one gap expected: {all:#?}");
    let gap = gaps[0];
    assert_eq!(gap["cause"], "camera_lost");
    let length = gap["duration_s"].as_f64().unwrap();
    assert!(
        (9.0..=16.0).contains(&length),
        "gap of {length} s for a 10 s outage"
    );
    // The gap sits exactly between the last segment before and the first after.
    let segs = of(&all, "front", "segment");
    let before = segs
        .iter()
        .rfind(|s| time(s, "end") <= time(gap, "start"))
        .unwrap();
    let after = segs
        .iter()
        .find(|s| time(s, "start") >= time(gap, "end"))
        .unwrap();
    assert_eq!(before["end"], gap["start"]);
    assert_eq!(after["start"], gap["end"]);
    assert!(
        (secs(killed, time(gap, "start"))).abs() < 1.5,
        "gap starts where the camera died"
    );
    assert_ne!(
        before["stream_id"], after["stream_id"],
        "a new connection after the outage"
    );
    assert_playable(&segs);

    // `segments --from/--to` returns what overlaps the window, and only that.
    let out = crate::support::classproof(&[
        "segments",
        "--json",
        "--config",
        &config.to_string_lossy(),
        "--camera",
        "front",
        "--from",
        gap["start"].as_str().unwrap(),
        "--to",
        gap["end"].as_str().unwrap(),
    ]);
    let window: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        window.len(),
        1,
        "only the gap lies inside its own span: {window:#?}"
    );
    assert_eq!(window[0]["type"], "gap");
}

#[test]
fn a_stalled_camera_is_a_stall_gap_detected_within_the_stall_timeout() {
    let server = RtspServer::start("h264");
    let scene = Scene::new();
    let config = scene.config(&camera(
        "front",
        &server.url(),
        "2s",
        "stall_timeout = \"2s\"\nconnect_timeout = \"2s\"",
    ));
    let mut daemon = Daemon::start(&config);
    wait_for_segment_after(&scene, &config, "front", None, "a first segment");
    server.freeze();
    let frozen = Instant::now();
    let line = daemon.wait_log("gap opened", Duration::from_secs(10));
    let detected = frozen.elapsed();
    assert!(line.contains("cause=stall"), "{line}");
    assert!(
        detected <= Duration::from_secs(2 + 2),
        "stall noticed after {detected:?} (timeout 2 s)"
    );
    server.thaw();
    let thawed = Utc::now();
    wait_for_segment_after(
        &scene,
        &config,
        "front",
        Some(thawed - chrono::Duration::seconds(1)),
        "recording after the stall",
    );
    assert!(daemon.terminate(Duration::from_secs(5)).success());
    let all = scene.segments(&config);
    let gaps = of(&all, "front", "gap");
    assert_eq!(gaps.len(), 1, "{all:#?}");
    assert_eq!(gaps[0]["cause"], "stall");
    assert_playable(&of(&all, "front", "segment"));
}

#[test]
fn kill_9_mid_segment_loses_at_most_2s_and_the_downtime_is_a_daemon_down_gap() {
    let server = RtspServer::start("h264");
    let scene = Scene::new();
    let config = scene.config(&camera("front", &server.url(), "6s", ""));
    let mut daemon = Daemon::start(&config);
    // Into the second segment, mid-way.
    wait_for_segment_after(&scene, &config, "front", None, "a first finished segment");
    std::thread::sleep(Duration::from_secs(3));
    let killed = Utc::now();
    daemon.kill9();
    // The box is down for a while.
    std::thread::sleep(Duration::from_secs(3));
    let mut daemon = Daemon::start(&config);
    daemon.wait_log("segment recovered", Duration::from_secs(10));
    wait_for_segment_after(
        &scene,
        &config,
        "front",
        Some(killed),
        "a segment after the restart",
    );
    assert!(daemon.terminate(Duration::from_secs(5)).success());

    let all = scene.segments(&config);
    let segs = of(&all, "front", "segment");
    assert_playable(&segs);
    let recovered: Vec<_> = segs.iter().filter(|s| s["state"] == "recovered").collect();
    assert_eq!(
        recovered.len(),
        1,
        "the segment open at the kill is recovered: {all:#?}"
    );
    let lost_end = time(recovered[0], "end");
    let loss = secs(lost_end, killed);
    assert!(
        loss <= 2.0,
        "the crash lost {loss:.2} s of recording (at most ~2 s)"
    );
    let gaps = of(&all, "front", "gap");
    assert_eq!(gaps.len(), 1, "{all:#?}");
    assert_eq!(gaps[0]["cause"], "daemon_down");
    assert_eq!(gaps[0]["start"], recovered[0]["end"]);
    let next = segs.iter().find(|s| time(s, "start") > killed).unwrap();
    assert_eq!(gaps[0]["end"], next["start"]);
}

#[test]
fn a_looped_file_plays_like_a_camera() {
    let scene = Scene::new();
    let video = scene.path().join("clip.mp4");
    let status = std::process::Command::new("ffmpeg")
        .args([
            "-loglevel",
            "error",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x240:rate=25",
            "-t",
            "2",
        ])
        .args(["-c:v", "libx264", "-g", "25", "-bf", "0", "-pix_fmt", "yuv420p"])
        .arg(&video)
        .status()
        .unwrap();
    assert!(status.success());
    let config = scene.config(&format!(
        "[[camera]]\nid = \"demo\"\nurl = \"file://{}\"\nloop = true\nsegment = \"2s\"\n",
        video.display()
    ));
    let mut daemon = Daemon::start(&config);
    // 2 s of file, 3 segments of 2 s: at least two loops, at real-time pace.
    let started = Instant::now();
    wait_for("three segments", Duration::from_secs(20), || {
        (closed_segments(&scene, &config, "demo").len() >= 3).then_some(())
    });
    assert!(
        started.elapsed() >= Duration::from_secs(5),
        "a file must be paced at real time"
    );
    assert!(daemon.terminate(Duration::from_secs(5)).success());
    let all = scene.segments(&config);
    let segs = of(&all, "demo", "segment");
    assert_contiguous(&segs);
    assert_playable(&segs);
    assert!(of(&all, "demo", "gap").is_empty(), "{all:#?}");
}

#[test]
fn a_second_daemon_on_the_same_data_dir_is_refused() {
    let scene = Scene::new();
    let config = scene.config("");
    let mut first = Daemon::start(&config);
    first.wait_log("classproof running", Duration::from_secs(10));
    let out = crate::support::classproof(&["run", "--config", &config.to_string_lossy()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("another classproof is already running"), "{err}");
    assert!(first.terminate(Duration::from_secs(5)).success());
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, bytes).as_ref())
}

/// A fragmented MP4 as the recorder writes it, made with the ffmpeg CLI: `seconds` long, a
/// keyframe and a fragment every second.
fn fragmented_mp4(path: &Path, seconds: u32) {
    let status = std::process::Command::new("ffmpeg")
        .args([
            "-loglevel",
            "error",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x240:rate=25",
            "-t",
        ])
        .arg(seconds.to_string())
        .args(["-c:v", "libx264", "-g", "25", "-bf", "0", "-pix_fmt", "yuv420p"])
        .args(["-movflags", "frag_keyframe+empty_moov+default_base_moof"])
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn a_torn_segment_is_cut_back_to_its_last_whole_fragment() {
    let scene = Scene::new();
    let path = scene.path().join("torn.mp4");
    fragmented_mp4(&path, 6);
    let whole = std::fs::metadata(&path).unwrap().len();
    // Tear the file in the middle of its fourth fragment, as a power cut would.
    let scan = classproof::media::mp4::scan_file(&path).unwrap();
    assert_eq!(scan.fragments, 6);
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len(whole * 4 / 7).unwrap();
    drop(f);
    assert!(
        ffmpeg_decode_frames(&path).is_err(),
        "a torn file is not cleanly decodable"
    );

    let repaired = classproof::media::recover::repair(&path).unwrap();
    assert_eq!(repaired.state, classproof::media::index::SegmentState::Recovered);
    assert_eq!(repaired.cut_from, Some(whole * 4 / 7));
    let d = repaired.media_duration.unwrap().as_secs_f64();
    assert!((2.0..=4.0).contains(&d), "{d} s of 6 s kept");
    let frames = ffmpeg_decode_frames(&path).expect("decodes cleanly after repair");
    assert_eq!(frames as f64, (d * 25.0).round());
    assert_eq!(repaired.bytes, std::fs::metadata(&path).unwrap().len());
}

#[test]
fn a_segment_with_no_whole_fragment_is_kept_and_indexed_as_damaged() {
    let scene = Scene::new();
    let path = scene.path().join("stub.mp4");
    fragmented_mp4(&path, 2);
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len(900).unwrap(); // header only, and a piece of the first fragment
    drop(f);
    let repaired = classproof::media::recover::repair(&path).unwrap();
    assert_eq!(repaired.state, classproof::media::index::SegmentState::Damaged);
    assert!(repaired.media_duration.is_none());
    assert!(path.exists(), "nothing is deleted");
}

#[test]
fn files_the_index_does_not_know_are_found_and_indexed_at_start_up() {
    // The daemon died between creating a segment file and recording it: start-up finds it.
    let scene = Scene::new();
    let config = scene.config("[[camera]]\nid = \"front\"\nurl = \"rtsp://127.0.0.1:9/cam\"\n");
    let now = Utc::now();
    let rel = classproof::media::camera::segment_path(
        "front",
        now - chrono::Duration::seconds(30),
        chrono_tz::Asia::Shanghai,
        "0badf00d",
        0,
    );
    let abs = scene.data_dir().join(&rel);
    std::fs::create_dir_all(abs.parent().unwrap()).unwrap();
    fragmented_mp4(&abs, 3);
    let mut daemon = Daemon::start(&config);
    daemon.wait_log("segment recovered", Duration::from_secs(10));
    assert!(daemon.terminate(Duration::from_secs(5)).success());
    let all = scene.segments(&config);
    let segs = of(&all, "front", "segment");
    assert_eq!(segs.len(), 1, "{all:#?}");
    assert_eq!(segs[0]["state"], "recovered");
    assert_eq!(segs[0]["stream_id"], "0badf00d");
    assert!((segs[0]["duration_s"].as_f64().unwrap() - 3.0).abs() < 0.05);
    // Its recording ended 27 s ago: the daemon was down since.
    let gaps = of(&all, "front", "gap");
    assert_eq!(gaps[0]["cause"], "daemon_down");
    assert_eq!(gaps[0]["start"], segs[0]["end"]);
}

#[test]
fn a_file_that_is_not_video_is_a_stream_error_naming_the_file() {
    let scene = Scene::new();
    let junk = scene.path().join("notes.mp4");
    std::fs::write(&junk, "this is not a video\n".repeat(100)).unwrap();
    let config = scene.config(&format!(
        "[[camera]]\nid = \"junk\"\nurl = \"file://{}\"\nloop = true\n",
        junk.display()
    ));
    let mut daemon = Daemon::start(&config);
    let line = daemon.wait_log("recording interrupted", Duration::from_secs(10));
    assert!(line.contains("stream_error"), "{line}");
    assert!(line.contains("notes.mp4"), "the message names the file: {line}");
    assert!(daemon.terminate(Duration::from_secs(5)).success());
    let all = scene.segments(&config);
    assert_eq!(of(&all, "junk", "gap")[0]["cause"], "stream_error");
}

#[test]
fn a_full_disk_is_a_disk_full_gap_and_recording_resumes_when_space_is_back() {
    let server = RtspServer::start("h264");
    let scene = Scene::new();
    let disk = TinyDisk::mount(scene.data_dir(), "3m");
    let config = scene.config(&camera("front", &server.url(), "2s", ""));
    let mut daemon = Daemon::start(&config);
    wait_for_segment_after(&scene, &config, "front", None, "a first segment");
    // Fill what is left of the disk.
    let filler = fill_disk(&disk.path);
    let line = daemon.wait_log("recording interrupted", Duration::from_secs(15));
    assert!(line.contains("disk_full"), "{line}");
    // Space comes back (the technician cleared something): recording resumes by itself.
    std::fs::remove_file(&filler).unwrap();
    let freed = Utc::now();
    wait_for_segment_after(
        &scene,
        &config,
        "front",
        Some(freed),
        "a segment after the disk was freed",
    );
    assert!(daemon.terminate(Duration::from_secs(5)).success());
    let all = scene.segments(&config);
    let gaps = of(&all, "front", "gap");
    assert!(
        gaps.iter().any(|g| g["cause"] == "disk_full"),
        "the hole is recorded with its cause: {all:#?}"
    );
    // Nothing was lost silently: the timeline is covered without holes between entries.
    let entries: Vec<&Value> = all.iter().filter(|e| e["camera"] == "front").collect();
    for w in entries.windows(2) {
        assert_eq!(w[0]["end"], w[1]["start"], "{:#}\n{:#}", w[0], w[1]);
    }
    drop(disk);
}
