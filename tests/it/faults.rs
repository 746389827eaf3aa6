//! The store and the supervisor under real faults (issue 8, "a store that never loses a fact"):
//! a database disk that fills up while a gap closes, a left-over file that cannot be read, a
//! permanent database error on one camera's events, and the data dir's file system turning
//! read-only under the daemon (ext4 `errors=remount-ro`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use chrono::Utc;
use serde_json::Value;

use crate::recording::{camera, of, time, wait_for_segment_after};
use crate::support::{
    Daemon, RtspServer, Scene, TinyDisk, fill_disk, json_lines, wait_for, wait_for_job_state,
};

fn cfg(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

/// `[daemon]` with the health file outside the data dir (it must be written when the data
/// dir's disk fails) and a short restart pause.
fn daemon_section(scene: &Scene) -> (String, PathBuf) {
    let file = scene.path().join("health.json");
    (
        format!(
            "[daemon]\nhealth_file = \"{}\"\nrestart_pause = \"200ms\"\n",
            file.display()
        ),
        file,
    )
}

/// Segment files of `camera` on disk.
fn segment_files(data_dir: &Path, camera: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(days) = std::fs::read_dir(data_dir.join("video").join(camera)) else {
        return out;
    };
    for day in days.flatten() {
        if let Ok(files) = std::fs::read_dir(day.path()) {
            out.extend(files.flatten().map(|f| f.path()));
        }
    }
    out.sort();
    out
}

fn alarms(config: &Path, alarm: &str) -> Vec<Value> {
    json_lines(&["events", "--config", &cfg(config), "--type", "alarm", "--json"])
        .into_iter()
        .filter(|r| r["alarm"] == alarm)
        .collect()
}

/// Per camera, the index has no open gap, segments and gaps tile the timeline, and every gap
/// has exactly one `gap` record with the same span.
fn assert_tiles_with_a_record_per_gap(config: &Path, all: &[Value], camera: &str) {
    let entries: Vec<&Value> = all.iter().filter(|e| e["camera"] == camera).collect();
    for e in &entries {
        assert!(!e["end"].is_null(), "nothing is left open: {e:#}\nall: {all:#?}");
    }
    for w in entries.windows(2) {
        assert_eq!(
            w[0]["end"], w[1]["start"],
            "no hole, no overlap:\n{:#}\n{:#}",
            w[0], w[1]
        );
    }
    let records = json_lines(&["events", "--config", &cfg(config), "--type", "gap", "--json"]);
    let gaps = of(all, camera, "gap");
    for g in &gaps {
        let (start, end) = (
            time(g, "start").timestamp_micros(),
            time(g, "end").timestamp_micros(),
        );
        let n = records
            .iter()
            .filter(|r| r["camera"] == camera && r["start_us"] == start && r["end_us"] == end)
            .count();
        assert_eq!(
            n, 1,
            "the gap {g:#} has exactly one gap record; records: {records:#?}"
        );
    }
    let of_camera = records.iter().filter(|r| r["camera"] == camera).count();
    assert_eq!(
        of_camera,
        gaps.len(),
        "no gap record without its gap: {records:#?}"
    );
}

fn assert_verifies(config: &Path) {
    let out = crate::support::classproof(&["verify", "--config", &cfg(config)]);
    assert!(
        out.status.success(),
        "verify: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_gap_that_closes_while_the_database_disk_is_full_is_closed_exactly_once_when_space_is_back() {
    let mut server = RtspServer::start("h264");
    let scene = Scene::new();
    // The database's disk is small; the video has a disk of its own (a mount under the data
    // dir), so that the camera records while the database cannot commit.
    let disk = TinyDisk::mount(scene.data_dir(), "4m");
    let video = TinyDisk::mount(scene.data_dir().join("video"), "64m");
    let (daemon_cfg, health) = daemon_section(&scene);
    let config = scene.config(&format!(
        "{}\n{daemon_cfg}",
        camera("front", &server.url(), "2s", "")
    ));
    let mut daemon = Daemon::start(&config);
    wait_for_segment_after(&scene, &config, "front", None, "a first segment");

    // The camera drops: its gap is open in the index.
    server.kill();
    wait_for("an open camera_lost gap", Duration::from_secs(20), || {
        scene
            .segments(&config)
            .iter()
            .any(|e| e["type"] == "gap" && e["cause"] == "camera_lost" && e["end"].is_null())
            .then_some(())
    });
    let before = segment_files(&scene.data_dir(), "front");
    // The database's disk fills up to the last byte, then the camera comes back: closing its
    // gap is a commit that fails with SQLITE_FULL.
    let filler = fill_disk(&disk.path);
    server.restart();
    wait_for(
        "the camera back (a new segment file)",
        Duration::from_secs(20),
        || (segment_files(&scene.data_dir(), "front").len() > before.len()).then_some(()),
    );
    let store = wait_for_job_state(&health, "store", "failing", Duration::from_secs(20));
    assert!(
        store["cause"].as_str().unwrap_or("").contains("full"),
        "the health registry says why: {store:#}"
    );

    // Space is back: everything queued is recorded, once.
    std::fs::remove_file(&filler).unwrap();
    let freed = Utc::now();
    wait_for_segment_after(
        &scene,
        &config,
        "front",
        Some(freed),
        "a segment after space came back",
    );
    wait_for_job_state(&health, "store", "running", Duration::from_secs(20));
    assert!(daemon.terminate(Duration::from_secs(5)).success());

    let all = scene.segments(&config);
    assert_tiles_with_a_record_per_gap(&config, &all, "front");
    assert!(
        of(&all, "front", "gap")
            .iter()
            .any(|g| g["cause"] == "camera_lost"),
        "{all:#?}"
    );
    // The trouble itself is in the log: raised when writes began to fail, cleared after.
    let trouble = alarms(&config, "store_write_failing");
    let states: Vec<&str> = trouble.iter().map(|a| a["state"].as_str().unwrap()).collect();
    assert_eq!(states, ["raised", "cleared"], "{trouble:#?}");
    assert!(
        trouble[0]["detail"].as_str().unwrap().contains("full"),
        "{trouble:#?}"
    );
    assert_verifies(&config);
    drop(video);
    drop(disk);
}

#[test]
fn a_left_over_file_that_cannot_be_read_is_quarantined_and_recording_starts_regardless() {
    let server = RtspServer::start("h264");
    let scene = Scene::new();
    let (daemon_cfg, _health) = daemon_section(&scene);
    let config = scene.config(&format!(
        "{}\n{daemon_cfg}",
        camera("front", &server.url(), "2s", "")
    ));
    // What a crash can leave that no repair can read: here a directory where the segment file
    // of the last run should be (read(2) fails with EISDIR, as root too).
    let rel = classproof::media::camera::segment_path(
        "front",
        Utc::now() - chrono::Duration::seconds(30),
        chrono_tz::Asia::Shanghai,
        "deadbeef",
        0,
    );
    let planted = scene.data_dir().join(&rel);
    std::fs::create_dir_all(&planted).unwrap();
    std::fs::write(planted.join("inside"), b"not a segment").unwrap();

    let mut daemon = Daemon::start(&config);
    wait_for_segment_after(&scene, &config, "front", None, "recording despite the bad file");
    let alarm = wait_for("a file_quarantined alarm", Duration::from_secs(10), || {
        alarms(&config, "file_quarantined").into_iter().next()
    });
    assert!(daemon.terminate(Duration::from_secs(5)).success());

    assert_eq!(alarm["path"], rel.to_string_lossy().as_ref(), "{alarm:#}");
    let moved = scene.data_dir().join(alarm["moved_to"].as_str().unwrap());
    assert!(
        moved.starts_with(scene.data_dir().join("quarantine")),
        "{alarm:#}"
    );
    assert!(
        moved.join("inside").exists(),
        "the bytes are kept: {}",
        moved.display()
    );
    assert!(!planted.exists(), "moved out of video/");
    let all = scene.segments(&config);
    assert!(
        of(&all, "front", "segment")
            .iter()
            .all(|s| !s["path"].as_str().unwrap().contains("deadbeef")),
        "the unreadable file is never stated as a segment: {all:#?}"
    );
    assert_verifies(&config);
}

#[test]
fn a_permanent_error_on_one_cameras_events_does_not_hold_up_the_others() {
    let server = RtspServer::start("h264");
    let scene = Scene::new();
    let (daemon_cfg, _health) = daemon_section(&scene);
    let config = scene.config(&format!(
        "{}\n{}\n{daemon_cfg}",
        camera("refused", &server.url(), "1s", ""),
        camera("fine", &server.url(), "1s", "")
    ));
    let mut daemon = Daemon::start(&config);
    wait_for_segment_after(&scene, &config, "refused", None, "a first segment of refused");
    wait_for_segment_after(&scene, &config, "fine", None, "a first segment of fine");

    // A real, permanent database error for one camera's rows (SQLITE_CONSTRAINT from a
    // trigger): every write of camera `refused` fails, and will fail again if retried.
    let db = rusqlite::Connection::open(scene.data_dir().join("classproof.db")).unwrap();
    db.busy_timeout(Duration::from_secs(5)).unwrap();
    db.execute_batch(
        "CREATE TRIGGER refuse_camera BEFORE INSERT ON segments WHEN NEW.camera = 'refused'
         BEGIN SELECT RAISE(ABORT, 'segments of camera refused are refused'); END;",
    )
    .unwrap();
    let armed = Utc::now();
    let set_aside = wait_for("an event_set_aside alarm", Duration::from_secs(20), || {
        alarms(&config, "event_set_aside").into_iter().next()
    });
    assert_eq!(set_aside["camera"], "refused", "{set_aside:#}");
    assert!(
        set_aside["cause"].as_str().unwrap().contains("are refused"),
        "{set_aside:#}"
    );
    // The other camera's segments keep being recorded meanwhile.
    wait_for(
        "3 segments of fine after the fault",
        Duration::from_secs(20),
        || {
            let all = scene.segments(&config);
            (of(&all, "fine", "segment")
                .iter()
                .filter(|s| time(s, "start") > armed && s["state"] == "closed")
                .count()
                >= 3)
                .then_some(())
        },
    );
    db.execute_batch("DROP TRIGGER refuse_camera").unwrap();
    let cleared = Utc::now();
    wait_for_segment_after(
        &scene,
        &config,
        "refused",
        Some(cleared),
        "refused recorded again",
    );
    assert!(daemon.terminate(Duration::from_secs(5)).success());
    let all = scene.segments(&config);
    assert_tiles_with_a_record_per_gap(&config, &all, "fine");
}

/// An ext4 file system in a loop file, mounted with `errors=remount-ro`, for the life of the
/// value. `fail()` makes the kernel turn it read-only as after an I/O error.
struct Ext4Disk {
    image: PathBuf,
    mount: PathBuf,
    mounted: bool,
}

impl Ext4Disk {
    fn new(image: PathBuf, mount: PathBuf, size_mb: u32) -> Ext4Disk {
        let ok = |c: &mut Command| {
            let out = c.output().unwrap();
            assert!(
                out.status.success(),
                "{c:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        ok(Command::new("truncate")
            .arg("-s")
            .arg(format!("{size_mb}M"))
            .arg(&image));
        ok(Command::new("mkfs.ext4").args(["-q", "-F"]).arg(&image));
        std::fs::create_dir_all(&mount).unwrap();
        let mut d = Ext4Disk {
            image,
            mount,
            mounted: false,
        };
        d.mount();
        d
    }

    fn mount(&mut self) {
        let out = Command::new("mount")
            .args(["-o", "loop,errors=remount-ro"])
            .arg(&self.image)
            .arg(&self.mount)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "this test mounts a real ext4 loop device and needs root: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        self.mounted = true;
    }

    /// The loop device's name, as /sys/fs/ext4 knows it.
    fn device(&self) -> String {
        let out = Command::new("findmnt")
            .args(["-n", "-o", "SOURCE", "--target"])
            .arg(&self.mount)
            .output()
            .unwrap();
        let src = String::from_utf8_lossy(&out.stdout).trim().to_string();
        src.rsplit('/').next().unwrap_or_default().to_string()
    }

    /// What ext4 does after an I/O error with errors=remount-ro.
    fn fail(&self) {
        let trigger = format!("/sys/fs/ext4/{}/trigger_fs_error", self.device());
        std::fs::write(&trigger, "1").unwrap_or_else(|e| panic!("{trigger}: {e}"));
    }

    fn unmount(&mut self) {
        if self.mounted {
            let _ = Command::new("umount").arg(&self.mount).status();
            self.mounted = false;
        }
    }

    /// What the technician does: unmount, fsck, mount again.
    fn fsck_and_remount(&mut self) {
        self.unmount();
        let out = Command::new("fsck.ext4")
            .arg("-fy")
            .arg(&self.image)
            .output()
            .unwrap();
        // 0: clean, 1: errors corrected.
        assert!(
            matches!(out.status.code(), Some(0) | Some(1)),
            "fsck: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        self.mount();
    }
}

impl Drop for Ext4Disk {
    fn drop(&mut self) {
        if self.mounted {
            let _ = Command::new("umount").arg("-l").arg(&self.mount).status();
        }
    }
}

#[test]
fn the_data_dir_turning_read_only_keeps_the_daemon_up_and_loud_and_the_lost_time_is_a_gap() {
    let server = RtspServer::start("h264");
    let scene = Scene::new();
    let mut disk = Ext4Disk::new(scene.path().join("data.img"), scene.data_dir(), 64);
    let (daemon_cfg, health) = daemon_section(&scene);
    let config = scene.config(&format!(
        "{}\n{daemon_cfg}",
        camera("front", &server.url(), "1s", "")
    ));
    let mut daemon = Daemon::start(&config);
    wait_for_segment_after(&scene, &config, "front", None, "a first segment");
    wait_for("3 segments", Duration::from_secs(20), || {
        (of(&scene.segments(&config), "front", "segment").len() >= 3).then_some(())
    });

    disk.fail();
    // Loud: the store says it is failing, and why, in the health registry (which lives off
    // the failed disk).
    let store = wait_for_job_state(&health, "store", "failing", Duration::from_secs(20));
    assert!(
        store["cause"].as_str().unwrap_or("").contains("read-only")
            || store["cause"].as_str().unwrap_or("").contains("readonly"),
        "{store:#}"
    );
    // Up: the store still beats seconds later (the health file is refreshed while jobs beat),
    // and the daemon stops cleanly on SIGTERM.
    let since = store["since_us"].as_i64().unwrap();
    wait_for(
        "the failing store still beating 2 s later",
        Duration::from_secs(20),
        || {
            let j = crate::support::health(&health)?["jobs"]["store"].clone();
            (j["state"] == "failing" && j["last_beat_us"].as_i64()? > since + 2_000_000).then_some(())
        },
    );
    let status = daemon.terminate(Duration::from_secs(8));
    assert!(status.success(), "{status:?}\n{}", daemon.log());

    disk.fsck_and_remount();
    let restarted = Utc::now();
    let mut daemon = Daemon::start(&config);
    wait_for_segment_after(&scene, &config, "front", Some(restarted), "recording after fsck");
    assert!(daemon.terminate(Duration::from_secs(5)).success());

    let all = scene.segments(&config);
    assert_tiles_with_a_record_per_gap(&config, &all, "front");
    let gaps = of(&all, "front", "gap");
    let lost: Vec<&&Value> = gaps
        .iter()
        .filter(|g| time(g, "end") >= restarted - chrono::Duration::seconds(1))
        .collect();
    assert!(
        !lost.is_empty() && lost.iter().all(|g| g["cause"].is_string()),
        "the time lost is a gap with its cause: {all:#?}"
    );
    assert_verifies(&config);
    drop(disk);
}

#[test]
fn a_job_that_keeps_failing_stops_the_daemon_non_zero_for_systemd_to_restart() {
    // A real permanent fault: the database was written by a newer classproof (a downgrade).
    // Every job that opens it fails; the supervisor restarts them, then gives up on the
    // process, so that systemd's restart loop shows it instead of a box quietly not recording.
    let scene = Scene::new();
    std::fs::create_dir_all(scene.data_dir()).unwrap();
    let db = rusqlite::Connection::open(scene.data_dir().join("classproof.db")).unwrap();
    db.pragma_update(None, "user_version", 999).unwrap();
    drop(db);
    let config = scene.config(
        "[[camera]]\nid = \"front\"\nurl = \"rtsp://127.0.0.1:9/cam\"\n\
         [daemon]\nrestart_pause = \"100ms\"\nmax_restarts = 2\nrestart_window = \"1m\"\n",
    );
    let mut daemon = Daemon::start(&config);
    let status = wait_for("the daemon to exit", Duration::from_secs(20), || {
        daemon.try_wait()
    });
    assert!(!status.success(), "{status:?}");
    let log = daemon.log();
    assert!(
        log.contains("schema version 999 is newer"),
        "the cause is named: {log}"
    );
    assert!(
        log.contains("job failed too often"),
        "it is the supervisor that gave up: {log}"
    );
}
