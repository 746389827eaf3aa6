//! The test camera itself (tests/support/rtsp_server.py) and the set-up's element check: a
//! camera whose GStreamer pipeline cannot run fails the test at once with GStreamer's own
//! error, not after a wait for a segment that never comes (issue 8, item 1).

use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::{RtspServer, repo};

/// Well under any wait for a segment (those are 30 s).
const AT_ONCE: Duration = Duration::from_secs(10);

#[test]
fn a_test_camera_missing_an_element_fails_at_once_with_gstreamers_error() {
    // What a machine without gstreamer1.0-x does with `timeoverlay`.
    let t0 = Instant::now();
    let err = match RtspServer::start_with("h264", None, &["--overlay", "nosuchoverlay"]) {
        Ok(cam) => panic!("a camera with a missing element started on {}", cam.url()),
        Err(e) => e,
    };
    assert!(t0.elapsed() < AT_ONCE, "took {:?}: {err}", t0.elapsed());
    assert!(err.contains("no element \"nosuchoverlay\""), "{err}");
}

#[test]
fn a_test_camera_on_a_file_that_is_not_mp4_fails_at_once_with_gstreamers_error() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("not-a-video.mp4");
    std::fs::write(&bad, "this is not an MP4 file\n".repeat(100)).unwrap();
    let t0 = Instant::now();
    let err = match RtspServer::start_with("h264", Some(&bad), &[]) {
        Ok(cam) => panic!("a camera on a broken file started on {}", cam.url()),
        Err(e) => e,
    };
    assert!(t0.elapsed() < AT_ONCE, "took {:?}: {err}", t0.elapsed());
    // qtdemux's own words.
    assert!(err.contains("qtdemux") && err.contains("invalid"), "{err}");
}

#[test]
fn a_test_camera_on_a_short_good_file_passes_its_check_and_serves_it() {
    // The pre-roll of a file reaches its end at once (no clock): still a camera that works.
    let dir = tempfile::tempdir().unwrap();
    let clip = dir.path().join("clip.mp4");
    let status = Command::new("ffmpeg")
        .args([
            "-loglevel",
            "error",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x240:rate=25",
        ])
        .args(["-t", "2", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-g", "25"])
        .arg(&clip)
        .status()
        .unwrap();
    assert!(status.success());
    let cam = RtspServer::start_with("h264", Some(&clip), &[]).unwrap_or_else(|e| panic!("{e}"));
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-rtsp_transport",
            "tcp",
            "-show_entries",
            "stream=codec_name,width",
        ])
        .args(["-of", "csv=p=0", &cam.url()])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "h264,320",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn every_element_of_the_test_cameras_exists_here() {
    // What deploy/setup.sh checks before the suite runs; failing, it names the Debian package.
    let out = Command::new("/usr/bin/python3")
        .arg(repo().join("tests/support/rtsp_server.py"))
        .arg("--check")
        .output()
        .expect("run tests/support/rtsp_server.py --check");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
