//! Integration tests for the evidence room (issue 5): every tampering of a store or a bundle
//! is detected and named; intact stores and bundles verify; retention never deletes anything
//! younger than the retention in any disk situation (R6), with the disk filled for real through
//! the configured capacity.
//!
//! Real parts: SQLite files written through the same library calls the recorder's store makes,
//! real MP4 segment files (made once with the ffmpeg CLI), the `classproof` binary for `keys`,
//! `verify` and `export`, and the evidence job's own thread (`daemon::evidence::spawn`).
//! Tampering cases are data: tables of (what is done, what `verify` must name).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use classproof::config::Config;
use classproof::daemon::jobs::{Changes, JobContext};
use classproof::db;
use classproof::evidence::checkpoint::Checkpoint;
use classproof::evidence::key::DeviceKey;
use classproof::evidence::log;
use classproof::evidence::record::{self, AlarmKind, AlarmState, Kind, Record};
use classproof::evidence::verify::sha256_file;
use classproof::evidence::{disk, store};
use classproof::media::index::{self, SegmentState};
use classproof::media::{ClosedSegment, GapCause};
use serde_json::{Value, json};

use crate::support::{Daemon, RtspServer, Scene, classproof as cp, wait_for};

/// Twelve distinct real MP4 files (640×360 H.264, 1 s, ~220 kB each), made once per build.
fn clips() -> &'static [PathBuf] {
    static CLIPS: OnceLock<Vec<PathBuf>> = OnceLock::new();
    CLIPS.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("evidence-clips");
        let names: Vec<PathBuf> = (0..12).map(|i| dir.join(format!("clip{i:02}.mp4"))).collect();
        if names.iter().all(|n| n.metadata().is_ok_and(|m| m.len() > 10_000)) {
            return names;
        }
        let tmp = dir.with_extension(format!("tmp{}", std::process::id()));
        std::fs::create_dir_all(&tmp).unwrap();
        let status = Command::new("ffmpeg")
            .args([
                "-v",
                "error",
                "-y",
                "-f",
                "lavfi",
                "-i",
                "testsrc2=size=640x360:rate=25",
                "-t",
                "12",
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
                "-pix_fmt",
                "yuv420p",
                "-g",
                "25",
                "-f",
                "segment",
                "-segment_time",
                "1",
                "-reset_timestamps",
                "1",
            ])
            .arg(tmp.join("clip%02d.mp4"))
            .status()
            .expect("ffmpeg CLI");
        assert!(status.success());
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::rename(&tmp, &dir)
            .or_else(|_| std::fs::remove_dir_all(&tmp))
            .unwrap();
        names
    })
}

fn sha_hex(path: &Path) -> String {
    hex::encode(sha256_file(path).unwrap().unwrap())
}

/// Sets a file's modification time, as if it had been written at `t`.
fn set_mtime(path: &Path, t: DateTime<Utc>) {
    let f = std::fs::File::options().write(true).open(path).unwrap();
    f.set_modified(t.into()).unwrap();
}

fn secs(t: DateTime<Utc>, s: i64) -> DateTime<Utc> {
    t + chrono::Duration::seconds(s)
}

/// A segment written into a store.
#[derive(Debug, Clone)]
struct Seg {
    seq: i64,
    path: String,
}

/// An evidence store made the way the daemon makes it: segment rows and their records in one
/// transaction, gaps likewise, checkpoints signed by the device key.
struct Store {
    scene: Scene,
    config: PathBuf,
    conn: rusqlite::Connection,
    key: DeviceKey,
    segs: Vec<Seg>,
    stream_seq: u32,
}

impl Store {
    fn new(rest: &str) -> Store {
        let scene = Scene::new();
        let config = scene.config(rest);
        let mut conn = db::open(&scene.data_dir()).unwrap();
        let key = store::open_device_key(&mut conn, &scene.data_dir(), Utc::now()).unwrap();
        Store {
            scene,
            config,
            conn,
            key,
            segs: Vec::new(),
            stream_seq: 0,
        }
    }

    fn data(&self) -> PathBuf {
        self.scene.data_dir()
    }

    fn cfg(&self) -> String {
        self.config.to_string_lossy().into_owned()
    }

    /// Appends a closed segment of `clip` covering `[start, start + len_s)`.
    fn segment(&mut self, camera: &str, start: DateTime<Utc>, len_s: i64, clip: usize) -> Seg {
        let end = secs(start, len_s);
        self.stream_seq += 1;
        let rel = format!(
            "video/{camera}/{}/{}-{:03}.mp4",
            start.format("%Y-%m-%d"),
            start.format("%H%M%S"),
            self.stream_seq
        );
        let full = self.data().join(&rel);
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::fs::copy(&clips()[clip], &full).unwrap();
        set_mtime(&full, end);
        let sha = sha_hex(&full);
        let bytes = full.metadata().unwrap().len();
        let tx = db::write_tx(&mut self.conn).unwrap();
        index::insert_recording_segment(
            &tx,
            camera,
            "s1",
            self.stream_seq,
            Path::new(&rel),
            "h264",
            start.timestamp_micros(),
        )
        .unwrap();
        let segment = Record::Segment(record::Segment {
            camera: camera.into(),
            path: rel.clone(),
            start_us: start.timestamp_micros(),
            end_us: end.timestamp_micros(),
            media_duration_us: len_s * 1_000_000,
            bytes,
            stream_id: "s1".into(),
            stream_seq: self.stream_seq,
            state: SegmentState::Closed,
            codec: "h264".into(),
            sha256: sha.clone(),
        });
        let (seq, _) = log::append(&tx, end, &segment).unwrap();
        index::finish_segment(
            &tx,
            &ClosedSegment {
                camera: camera.into(),
                stream_id: "s1".into(),
                stream_seq: self.stream_seq,
                path: PathBuf::from(&rel),
                codec: "h264".into(),
                start,
                end,
                media_duration: Duration::from_secs(len_s as u64),
                bytes,
                sha256: sha,
            },
            SegmentState::Closed,
            Some(seq),
        )
        .unwrap();
        tx.commit().unwrap();
        let s = Seg { seq, path: rel };
        self.segs.push(s.clone());
        s
    }

    fn gap(&mut self, camera: &str, start: DateTime<Utc>, end: DateTime<Utc>) -> i64 {
        let tx = db::write_tx(&mut self.conn).unwrap();
        let id = index::open_gap(
            &tx,
            camera,
            start.timestamp_micros(),
            GapCause::Stall,
            "no packets",
            start.timestamp_micros(),
        )
        .unwrap();
        let gap = Record::Gap(record::Gap {
            camera: camera.into(),
            start_us: start.timestamp_micros(),
            end_us: end.timestamp_micros(),
            cause: GapCause::Stall,
            detail: Some("no packets".into()),
        });
        let (seq, _) = log::append(&tx, end, &gap).unwrap();
        index::close_gap(&tx, id, end.timestamp_micros(), Some(seq)).unwrap();
        tx.commit().unwrap();
        seq
    }

    fn checkpoint(&mut self) {
        store::checkpoint_now(&mut self.conn, &self.key, "test-box", Utc::now()).unwrap();
    }

    fn sql(&self, sql: &str) {
        self.conn.execute_batch(sql).unwrap();
    }

    fn pubkey(&self) -> String {
        self.key.public().to_text()
    }
}

/// The base time of the standard store: two hours ago, whole seconds.
fn base() -> DateTime<Utc> {
    let now = Utc::now().timestamp();
    DateTime::from_timestamp(now - now % 60 - 7_200, 0).unwrap()
}

/// The standard store: seq 1 `device_key`; camera front: segments at seq 2, 3, 4, a
/// checkpoint, a 10 s gap (seq 5), segments at seq 6, 7, 8; camera back: segments at seq 9,
/// 10; a checkpoint at seq 10.
fn classroom() -> Store {
    classroom_with("")
}

/// The standard store, with `rest` in its config.
fn classroom_with(rest: &str) -> Store {
    let mut s = Store::new(rest);
    let b = base();
    for i in 0..3 {
        s.segment("front", secs(b, i * 60), 60, i as usize);
    }
    s.checkpoint();
    s.gap("front", secs(b, 180), secs(b, 190));
    for i in 0..3 {
        s.segment("front", secs(b, 190 + i * 60), 60, 3 + i as usize);
    }
    s.segment("back", b, 60, 6);
    s.segment("back", secs(b, 60), 60, 7);
    s.checkpoint();
    s
}

/// `classproof ARGS… --json`: (exit code, parsed output).
fn run_json(args: &[&str]) -> (i32, Value) {
    let out = cp(args);
    let code = out.status.code().unwrap_or(-1);
    let v = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{args:?} exit {code}: stdout is not JSON ({e})\nstdout: {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (code, v)
}

fn verify_store(s: &Store, extra: &[&str]) -> (i32, Value) {
    let cfg = s.cfg();
    let mut args = vec!["verify", "--config", &cfg, "--json"];
    args.extend_from_slice(extra);
    run_json(&args)
}

/// (kind, seq, path) of every problem.
fn problems(v: &Value) -> Vec<(String, Option<i64>, Option<String>)> {
    v["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["kind"].as_str().unwrap().to_string(),
                p["seq"].as_i64(),
                p["path"].as_str().map(str::to_string),
            )
        })
        .collect()
}

/// What verify must report: a kind, and the seq and/or path it must name.
#[derive(Debug, Clone)]
struct Want {
    kind: &'static str,
    seq: Option<i64>,
    path: Option<String>,
}

fn want(kind: &'static str, seq: Option<i64>, path: Option<&str>) -> Want {
    Want {
        kind,
        seq,
        path: path.map(str::to_string),
    }
}

/// True when a problem of the wanted kind names the wanted seq and path (a wanted path ending
/// in `/` matches any path under it).
fn found(got: &[(String, Option<i64>, Option<String>)], w: &Want) -> bool {
    let path_ok = |p: &Option<String>| match (&w.path, p) {
        (None, _) => true,
        (Some(wp), Some(p)) if wp.ends_with('/') => p.starts_with(wp.as_str()),
        (Some(wp), Some(p)) => p == wp,
        (Some(_), None) => false,
    };
    got.iter()
        .any(|(k, seq, path)| k == w.kind && (w.seq.is_none() || *seq == w.seq) && path_ok(path))
}

#[test]
fn an_intact_store_verifies() {
    let s = classroom();
    let (code, v) = verify_store(&s, &[]);
    assert_eq!(code, 0, "{v:#}");
    assert_eq!(v["intact"], true);
    assert_eq!(v["records"], 10);
    assert_eq!(v["checkpoints"], 2);
    assert_eq!(v["checkpoints_matched"], 2);
    assert_eq!(v["files_checked"], 8);
    assert_eq!(v["unsigned_records"], 0);
    // The human form says so too.
    let out = cp(&["verify", "--config", &s.cfg()]);
    assert!(out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .trim_end()
            .ends_with("intact")
    );
}

/// A tampering of a store.
type Tamper = fn(&mut Store);

/// Each tampering, and what verify must name. Seqs refer to `classroom()`.
fn store_tampers() -> Vec<(&'static str, Tamper, Vec<Want>)> {
    fn seg(s: &Store, i: usize) -> (i64, String) {
        (s.segs[i].seq, s.segs[i].path.clone())
    }
    fn full(s: &Store, i: usize) -> PathBuf {
        s.data().join(&s.segs[i].path)
    }
    vec![
        (
            "a flipped byte in a segment",
            |s| {
                let p = full(s, 1);
                let mut b = std::fs::read(&p).unwrap();
                b[5000] ^= 0x01;
                std::fs::write(&p, b).unwrap();
            },
            vec![want("modified", Some(3), None)],
        ),
        (
            "a deleted segment",
            |s| std::fs::remove_file(full(s, 4)).unwrap(),
            vec![want("missing", Some(7), None)],
        ),
        (
            "two segments swapped",
            |s| {
                let (a, b) = (full(s, 0), full(s, 2));
                let tmp = a.with_extension("tmp");
                std::fs::rename(&a, &tmp).unwrap();
                std::fs::rename(&b, &a).unwrap();
                std::fs::rename(&tmp, &b).unwrap();
            },
            vec![want("reordered", Some(2), None), want("reordered", Some(4), None)],
        ),
        (
            "an edited log row",
            |s| {
                s.sql(
                    "UPDATE log SET payload = replace(payload, '\"closed\"', '\"recovered\"') WHERE seq = 6",
                )
            },
            vec![want("modified", Some(6), None)],
        ),
        (
            "an edited segments row (a longer recording for the report)",
            |s| {
                let p = seg(s, 3).1;
                s.sql(&format!(
                    "UPDATE segments SET end_us = end_us + 600000000 WHERE path = '{p}'"
                ));
            },
            vec![want("modified", Some(6), None)],
        ),
        (
            "a deleted gaps row (a hole hidden from the report)",
            |s| s.sql("DELETE FROM gaps"),
            vec![want("missing", Some(5), None)],
        ),
        (
            "an invented segments row",
            |s| {
                s.sql(
                    "INSERT INTO segments (camera, stream_id, stream_seq, path, codec, start_us, end_us, bytes, sha256, state)
                     SELECT camera, stream_id, 99, 'video/front/fake.mp4', codec, start_us, end_us, bytes, sha256, 'closed'
                     FROM segments LIMIT 1",
                )
            },
            vec![want("unexpected", None, Some("video/front/fake.mp4"))],
        ),
        (
            "a truncated log",
            |s| s.sql("DELETE FROM log WHERE seq > 8"),
            vec![
                want("missing", Some(9), None),
                want("unexpected", Some(9), None),
                want("unexpected", Some(10), None),
            ],
        ),
        (
            "a truncated log and its indexes, after the last checkpoint",
            |s| {
                // What a careful attacker does: drop the newest records, their index rows and
                // the checkpoint that covers them. The files stay behind, vouched for by nothing.
                s.sql(
                    "DELETE FROM log WHERE seq > 8; DELETE FROM evidence_files WHERE seq > 8;
                     DELETE FROM checkpoints WHERE seq > 8; DELETE FROM segments WHERE camera = 'back';",
                )
            },
            vec![want("unexpected", None, Some("video/back/"))],
        ),
        (
            "a record inserted in the middle",
            |s| {
                // Renumber everything after seq 5 and insert a well-hashed record at 6.
                let h5: Vec<u8> = s
                    .conn
                    .query_row("SELECT hash FROM log WHERE seq = 5", [], |r| r.get(0))
                    .unwrap();
                let prev: [u8; 32] = h5.try_into().unwrap();
                let payload = log::canonical_json(&json!({"camera": "front", "note": "inserted"}));
                let t = base().timestamp_micros();
                let h = log::record_hash(t, Kind::Gap.as_str(), &payload, None, &prev);
                s.sql("UPDATE log SET seq = -seq WHERE seq > 5; UPDATE log SET seq = 1 - seq WHERE seq < 0;");
                s.conn
                    .execute(
                        "INSERT INTO log (seq, time_us, type, payload, file_sha256, prev_hash, hash)
                         VALUES (6, ?1, ?2, ?3, NULL, ?4, ?5)",
                        rusqlite::params![t, Kind::Gap.as_str(), payload, &prev[..], &h[..]],
                    )
                    .unwrap();
            },
            vec![want("unexpected", Some(6), None)],
        ),
        (
            "two log records swapped",
            |s| {
                s.sql("UPDATE log SET seq = -seq WHERE seq IN (6, 7); UPDATE log SET seq = 7 WHERE seq = -6; UPDATE log SET seq = 6 WHERE seq = -7;")
            },
            vec![want("reordered", Some(6), None), want("reordered", Some(7), None)],
        ),
        (
            "a checkpoint signed with another key",
            |s| {
                let (evil, _) = DeviceKey::generate().unwrap();
                let head: Vec<u8> = s
                    .conn
                    .query_row("SELECT hash FROM log WHERE seq = 10", [], |r| r.get(0))
                    .unwrap();
                let cp = Checkpoint {
                    device: "test-box".into(),
                    seq: 10,
                    head: head.try_into().unwrap(),
                    time_us: Utc::now().timestamp_micros(),
                }
                .sign(&evil);
                s.conn
                    .execute(
                        "INSERT INTO checkpoints (seq, time_us, key_fingerprint, text) VALUES (10, 0, ?1, ?2)",
                        rusqlite::params![cp.key_fingerprint, cp.to_text()],
                    )
                    .unwrap();
            },
            vec![want("bad_signature", Some(10), None)],
        ),
        (
            "history rewritten and re-hashed after a checkpoint",
            |s| {
                let mut rows = log::read_raw(&s.conn, 1, 100, 100).unwrap();
                rows[5].payload = rows[5].payload.replace("\"closed\"", "\"recovered\"");
                for i in 5..rows.len() {
                    if i > 5 {
                        rows[i].prev_hash = rows[i - 1].hash.clone();
                    }
                    rows[i].hash = rows[i].recompute().unwrap().to_vec();
                    s.conn
                        .execute(
                            "UPDATE log SET payload = ?2, prev_hash = ?3, hash = ?4 WHERE seq = ?1",
                            rusqlite::params![rows[i].seq, rows[i].payload, rows[i].prev_hash, rows[i].hash],
                        )
                        .unwrap();
                }
            },
            vec![want("chain_break", Some(10), None)],
        ),
        (
            "a file nobody recorded",
            |s| {
                let p = s.data().join("video/front/extra.mp4");
                std::fs::copy(&clips()[11], &p).unwrap();
                // Not one being written right now (those get a minute's grace).
                set_mtime(&p, Utc::now() - chrono::Duration::minutes(2));
            },
            vec![want("unexpected", None, Some("video/front/extra.mp4"))],
        ),
    ]
}

#[test]
fn each_tampering_of_a_store_is_detected_and_named() {
    let mut failures = Vec::new();
    for (name, tamper, wants) in store_tampers() {
        let mut s = classroom();
        let paths: Vec<String> = s.segs.iter().map(|g| g.path.clone()).collect();
        tamper(&mut s);
        let (code, v) = verify_store(&s, &[]);
        let got = problems(&v);
        let mut wants = wants;
        // Paths of swapped/modified segments are named as well.
        for w in &mut wants {
            if w.path.is_none()
                && let Some(seq) = w.seq
                && ["modified", "missing", "reordered"].contains(&w.kind)
                && let Some(p) = s
                    .segs
                    .iter()
                    .position(|g| g.seq == seq)
                    .filter(|_| name.contains("segment"))
            {
                w.path = Some(paths[p].clone());
            }
        }
        if std::env::var_os("CLASSPROOF_TEST_ECHO").is_some() {
            eprintln!("{name}:\n{:#?}", v["problems"]);
        }
        if code != 1 || v["intact"] != false || !wants.iter().all(|w| found(&got, w)) {
            failures.push(format!("{name}: exit {code}, wanted {wants:?}, got {got:#?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn verify_checks_only_the_given_time_range() {
    let s = classroom();
    let p = s.data().join(&s.segs[0].path);
    let mut b = std::fs::read(&p).unwrap();
    b[4000] ^= 0x80;
    std::fs::write(&p, b).unwrap();
    let b = base();
    let from = (secs(b, 250)).to_rfc3339();
    let (code, v) = verify_store(&s, &["--from", &from]);
    assert_eq!(code, 0, "the damaged segment ends before --from: {v:#}");
    assert!(v["files_checked"].as_u64().unwrap() < 8);
    let to = (secs(b, 100)).to_rfc3339();
    let (code, v) = verify_store(&s, &["--to", &to]);
    assert_eq!(code, 1);
    assert!(
        found(&problems(&v), &want("modified", Some(2), Some(&s.segs[0].path))),
        "{v:#}"
    );
}

#[test]
fn keys_show_prints_the_key_and_rotation_keeps_old_checkpoints_verifiable() {
    let mut s = classroom();
    let (code, v) = run_json(&["keys", "show", "--config", &s.cfg(), "--json"]);
    assert_eq!(code, 0);
    let old = v["public_key"].as_str().unwrap().to_string();
    assert_eq!(old, s.pubkey());
    assert_eq!(v["fingerprint"].as_str().unwrap().len(), 32);
    let key_file = PathBuf::from(v["key_file"].as_str().unwrap());
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(key_file.metadata().unwrap().permissions().mode() & 0o777, 0o600);
    let out = cp(&["keys", "show", "--config", &s.cfg()]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("fingerprint"));

    let out = cp(&["keys", "rotate", "--config", &s.cfg()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (_, v) = run_json(&["keys", "show", "--config", &s.cfg(), "--json"]);
    let new = v["public_key"].as_str().unwrap().to_string();
    assert_ne!(new, old);
    assert_eq!(v["keys"].as_array().unwrap().len(), 2);
    // New records, signed by the new key.
    let data = s.data();
    s.key = store::open_device_key(&mut s.conn, &data, Utc::now()).unwrap();
    assert_eq!(s.pubkey(), new);
    s.segment("front", secs(base(), 400), 60, 8);
    s.checkpoint();
    // The box's own trust, the old registered key (which handed over), both verify all.
    for extra in [vec![], vec!["--pubkey", old.as_str()]] {
        let (code, v) = verify_store(&s, &extra);
        assert_eq!(code, 0, "{extra:?}: {v:#}");
        assert_eq!(v["checkpoints"], 4);
    }
    // The new key alone cannot vouch for what the old key signed.
    let (code, v) = verify_store(&s, &["--pubkey", &new]);
    assert_eq!(code, 1);
    assert!(
        found(&problems(&v), &want("bad_signature", Some(4), None)),
        "{v:#}"
    );
}

fn export(s: &Store, out: &Path, cameras: &[&str]) {
    let b = base();
    let (from, to) = (b.to_rfc3339(), secs(b, 370).to_rfc3339());
    let cfg = s.cfg();
    let mut args = vec!["export", "--config", &cfg, "--from", &from, "--to", &to, "--out"];
    let out_s = out.to_string_lossy().into_owned();
    args.push(&out_s);
    for c in cameras {
        args.extend(["--camera", c]);
    }
    let o = cp(&args);
    assert!(
        o.status.success(),
        "export failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

fn verify_bundle(dir: &Path, pubkey: &str) -> (i32, Value) {
    run_json(&[
        "verify",
        "--bundle",
        &dir.to_string_lossy(),
        "--pubkey",
        pubkey,
        "--json",
    ])
}

fn copy_dir(from: &Path, to: &Path) {
    let status = Command::new("cp").arg("-a").arg(from).arg(to).status().unwrap();
    assert!(status.success());
}

#[test]
fn an_intact_bundle_verifies_without_the_database() {
    let s = classroom();
    let out = s.scene.path().join("bundle");
    export(&s, &out, &["front"]);
    // Another machine: only the bundle directory, elsewhere; the box's data dir is gone.
    let elsewhere = tempfile::tempdir().unwrap();
    let moved = elsewhere.path().join("b");
    copy_dir(&out, &moved);
    std::fs::remove_dir_all(s.data()).unwrap();
    let (code, v) = verify_bundle(&moved, &s.pubkey());
    assert_eq!(code, 0, "{v:#}");
    assert_eq!(v["files_checked"], 6);
    assert_eq!(v["bundle"]["complete"], true);
    assert_eq!(v["bundle"]["coverage"]["front"]["segments"], 6);
    assert_eq!(v["bundle"]["coverage"]["front"]["gaps"], 1);
    // Only front's files were exported; back's records are in the excerpt, its files not.
    assert!(!moved.join("video/back").exists());
    // The public key can also be given as a file.
    let (code, _) = verify_bundle(&moved, &moved.join("pubkey.txt").to_string_lossy());
    assert_eq!(code, 0);
}

type BundleTamper = fn(&Path, &Store);

fn bundle_tampers() -> Vec<(&'static str, BundleTamper, Vec<Want>)> {
    vec![
        (
            "one segment replaced",
            |b, s| {
                std::fs::copy(&clips()[11], b.join(&s.segs[1].path))
                    .map(drop)
                    .unwrap()
            },
            vec![want("modified", Some(3), None)],
        ),
        (
            "two segments swapped",
            |b, s| {
                let (x, y) = (b.join(&s.segs[3].path), b.join(&s.segs[4].path));
                let tmp = x.with_extension("t");
                std::fs::rename(&x, &tmp).unwrap();
                std::fs::rename(&y, &x).unwrap();
                std::fs::rename(&tmp, &y).unwrap();
            },
            vec![want("reordered", Some(6), None), want("reordered", Some(7), None)],
        ),
        (
            "one segment left out",
            |b, s| std::fs::remove_file(b.join(&s.segs[5].path)).unwrap(),
            vec![want("missing", Some(8), None)],
        ),
        (
            "a file added",
            |b, _| {
                std::fs::copy(&clips()[10], b.join("video/front/added.mp4"))
                    .map(drop)
                    .unwrap()
            },
            vec![want("unexpected", None, Some("video/front/added.mp4"))],
        ),
        (
            "a record dropped from the excerpt",
            |b, _| {
                let p = b.join("log.jsonl");
                let text = std::fs::read_to_string(&p).unwrap();
                let kept: Vec<&str> = text.lines().filter(|l| !l.starts_with("{\"seq\":5,")).collect();
                std::fs::write(&p, kept.join("\n") + "\n").unwrap();
            },
            vec![want("missing", Some(5), None)],
        ),
        (
            "a record's payload edited",
            |b, _| {
                let p = b.join("log.jsonl");
                let text = std::fs::read_to_string(&p)
                    .unwrap()
                    .replace("\"cause\":\"stall\"", "\"cause\":\"daemon_down\"");
                std::fs::write(&p, text).unwrap();
            },
            vec![want("modified", Some(5), None)],
        ),
        (
            "the checkpoints re-signed with another key",
            |b, _| {
                let p = b.join("checkpoints.txt");
                let (evil, _) = DeviceKey::generate().unwrap();
                let text: String = classproof::evidence::checkpoint::SignedCheckpoint::parse_many(
                    &std::fs::read_to_string(&p).unwrap(),
                )
                .into_iter()
                .map(|c| c.unwrap().checkpoint.sign(&evil).to_text() + "\n")
                .collect();
                std::fs::write(&p, text).unwrap();
            },
            vec![want("bad_signature", Some(10), None)],
        ),
    ]
}

#[test]
fn each_tampering_of_a_bundle_is_detected_and_named() {
    let s = classroom();
    let out = s.scene.path().join("bundle");
    export(&s, &out, &["front"]);
    let mut failures = Vec::new();
    for (i, (name, tamper, wants)) in bundle_tampers().into_iter().enumerate() {
        let b = s.scene.path().join(format!("tampered-{i}"));
        copy_dir(&out, &b);
        tamper(&b, &s);
        let (code, v) = verify_bundle(&b, &s.pubkey());
        let got = problems(&v);
        if std::env::var_os("CLASSPROOF_TEST_ECHO").is_some() {
            eprintln!("{name}:\n{:#?}", v["problems"]);
        }
        if code != 1 || !wants.iter().all(|w| found(&got, w)) {
            failures.push(format!("{name}: exit {code}, wanted {wants:?}, got {got:#?}"));
        }
    }
    // The right bundle, the wrong key.
    let (other, _) = DeviceKey::generate().unwrap();
    let (code, v) = verify_bundle(&out, &other.public().to_text());
    if code != 1 || !found(&problems(&v), &want("bad_signature", None, None)) {
        failures.push(format!("wrong public key: exit {code}, got {v:#}"));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn export_by_session_takes_span_and_cameras_from_the_schedule() {
    // A one-off practical session of one 6-minute class hour on camera front, from base().
    let rest = format!(
        "[rules]\nprofile = \"custom\"\nmin_class_hour = \"1m\"\npractical_min_run = \"1m\"\n\n\
         [[camera]]\nid = \"front\"\nurl = \"rtsp://127.0.0.1:9/front\"\n\n\
         [[camera]]\nid = \"back\"\nurl = \"rtsp://127.0.0.1:9/back\"\n\n\
         [[session]]\nid = \"s1\"\nclass_id = \"c1\"\nkind = \"practical\"\ncameras = [\"front\"]\n\
         start = \"{}\"\nclass_hours = 1\nclass_hour = \"6m\"\n",
        base().to_rfc3339()
    );
    let s = classroom_with(&rest);
    let out = s.scene.path().join("b");
    let o = cp(&[
        "export",
        "--config",
        &s.cfg(),
        "--session",
        "s1",
        "--out",
        &out.to_string_lossy(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (code, v) = verify_bundle(&out, &s.pubkey());
    assert_eq!(code, 0, "{v:#}");
    assert_eq!(v["bundle"]["session"], "s1");
    assert_eq!(v["bundle"]["cameras"], json!(["front"]));
    assert_eq!(v["bundle"]["complete"], true);
    // Segments overlapping the 6 minutes: five and the start of the sixth (310 s..370 s).
    assert_eq!(v["files_checked"], 6);
    assert!(!out.join("video/back").exists());

    // Unknown sessions and missing arguments are usage errors (exit 2).
    let o = cp(&[
        "export",
        "--config",
        &s.cfg(),
        "--session",
        "no-such-session",
        "--out",
        &s.scene.path().join("c").to_string_lossy(),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--from/--to"));
    let o = cp(&[
        "export",
        "--config",
        &s.cfg(),
        "--out",
        &s.scene.path().join("d").to_string_lossy(),
    ]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn export_signs_a_fresh_checkpoint_when_none_covers_the_span_yet() {
    let mut s = classroom();
    // Two more segments after the last checkpoint.
    s.segment("front", secs(base(), 370), 60, 9);
    let out = s.scene.path().join("bundle");
    let b = base();
    let o = cp(&[
        "export",
        "--config",
        &s.cfg(),
        "--from",
        &b.to_rfc3339(),
        "--to",
        &secs(b, 430).to_rfc3339(),
        "--camera",
        "front",
        "--out",
        &out.to_string_lossy(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("signed a checkpoint now"));
    let (code, v) = verify_bundle(&out, &s.pubkey());
    assert_eq!(code, 0, "{v:#}");
    assert_eq!(v["files_checked"], 7);
}

// ---------------------------------------------------------------------------------------
// Retention and the disk (R6).

const DAY: i64 = 86_400;

/// Runs the evidence job until its first disk check is done, then stops it; returns the
/// check's outcome, the `disk_full` flag, and how long stopping took.
fn run_job(config: &Path) -> (Value, bool, Duration) {
    let config = Arc::new(Config::load(config).unwrap());
    let ctx = JobContext {
        config: config.clone(),
        changes: Arc::new(Changes::default()),
        stop: Arc::new(AtomicBool::new(false)),
        disk_full: Arc::new(AtomicBool::new(false)),
    };
    let started = Utc::now().timestamp_micros();
    let handle = classproof::daemon::evidence::spawn(ctx.clone())
        .unwrap()
        .expect("a job");
    let data = config.device.data_dir.clone();
    let status = wait_for("the first disk check", Duration::from_secs(20), || {
        let conn = db::open_read_only(&data).ok()?;
        let v: Value =
            serde_json::from_str(&db::meta_get(&conn, classproof::daemon::evidence::DISK_STATUS).ok()??)
                .ok()?;
        (v["time_us"].as_i64()? >= started).then_some(v)
    });
    let t = Instant::now();
    ctx.stop.store(true, Ordering::SeqCst);
    handle.join().unwrap();
    (status, ctx.disk_full.load(Ordering::SeqCst), t.elapsed())
}

/// Files by age, for the retention tests (henan: 3 × 365 days, kept 1098 days).
struct Aged {
    /// Past the retention with the leap-day allowance: may go.
    expired: Vec<Seg>,
    /// Past 3 × 365 days but not past three calendar years and a day: must stay.
    leap_edge: Vec<Seg>,
    /// Recorded an hour ago.
    young: Vec<Seg>,
}

fn aged_store(evidence: &str) -> (Store, Aged) {
    let mut s = Store::new(&format!("[rules]\nprofile = \"henan\"\n\n[evidence]\n{evidence}"));
    let now = Utc::now();
    let ago = |days: i64, secs_: i64| now - chrono::Duration::seconds(days * DAY + secs_);
    let mut a = Aged {
        expired: Vec::new(),
        leap_edge: Vec::new(),
        young: Vec::new(),
    };
    // Oldest first: 1200, 1150, 1120, 1099 days.
    for (i, d) in [1200, 1150, 1120, 1099].into_iter().enumerate() {
        a.expired.push(s.segment("front", ago(d, 60), 60, i));
    }
    // 1095.5 and 1096.5 days: older than 3 × 365 days, younger than 3 calendar years + a day.
    for (i, (d, h)) in [(1095, 12), (1096, 12), (1097, 12)].into_iter().enumerate() {
        a.leap_edge
            .push(s.segment("front", ago(d, h * 3600 + 60), 60, 4 + i));
    }
    for i in 0..3 {
        a.young
            .push(s.segment("front", ago(0, 3600 - i * 60), 60, 7 + i as usize));
    }
    s.checkpoint();
    (s, a)
}

fn exists(s: &Store, g: &Seg) -> bool {
    s.data().join(&g.path).exists()
}

/// The alarms the log holds, typed.
fn alarms(conn: &rusqlite::Connection) -> Vec<record::Alarm> {
    log::read_filtered(conn, None, Some(Kind::Alarm))
        .unwrap()
        .into_iter()
        .filter_map(|r| match r.record {
            Record::Alarm(a) => Some(a),
            _ => None,
        })
        .collect()
}

fn disk_full(a: &record::Alarm, state: AlarmState) -> bool {
    matches!(a.alarm, AlarmKind::DiskFull { .. }) && a.state == state
}

fn pruned_seqs(s: &Store) -> Vec<(i64, String)> {
    log::read_filtered(&s.conn, None, Some(Kind::Pruned))
        .unwrap()
        .into_iter()
        .map(|r| match r.record {
            Record::Pruned(p) => (p.seq, p.reason.as_str().to_string()),
            other => panic!("{other:?}"),
        })
        .collect()
}

/// Rewrites the store's config with a capacity `headroom` bytes above what its data dir holds
/// now: the disk is then really that full.
fn set_capacity(s: &mut Store, evidence: &str, headroom: i64) -> u64 {
    let used = disk::dir_bytes(&s.data()).unwrap();
    let capacity = (used as i64 + headroom).max(1_000_000) as u64;
    s.config = s.scene.config(&format!(
        "[rules]\nprofile = \"henan\"\n\n[evidence]\ncapacity = {capacity}\n{evidence}"
    ));
    capacity
}

#[test]
fn retention_deletes_only_files_past_three_calendar_years_and_the_chain_still_verifies() {
    let (s, a) = aged_store("disk_check_interval = \"1s\"\n");
    let (status, full, stop) = run_job(&s.config);
    assert!(!full, "{status}");
    assert!(stop < Duration::from_millis(1500), "stopping took {stop:?}");
    let pruned: Vec<i64> = pruned_seqs(&s).into_iter().map(|p| p.0).collect();
    assert_eq!(pruned, a.expired.iter().map(|g| g.seq).collect::<Vec<_>>());
    assert!(a.expired.iter().all(|g| !exists(&s, g)));
    assert!(
        a.leap_edge.iter().chain(&a.young).all(|g| exists(&s, g)),
        "R6: a file younger than retention was deleted"
    );
    // The chain verifies without the deleted files, each explained by its `pruned` record.
    let (code, v) = verify_store(&s, &[]);
    assert_eq!(code, 0, "{v:#}");
    assert_eq!(v["files_pruned"], 4);
    assert_eq!(v["files_checked"], 6);
}

/// R6 in every disk situation: whatever the policy and however full the disk, no file younger
/// than the retention is deleted; `delete-oldest` deletes oldest first and only when needed;
/// a disk still full after that stops recording.
#[test]
fn nothing_younger_than_retention_is_deleted_in_any_disk_situation() {
    // (policy, reserve, headroom above what the data dir holds now)
    let situations: &[(&str, i64, i64)] = &[
        ("protect", 100_000, 50_000_000),       // plenty of room
        ("protect", 1_500_000, 200_000),        // full; deleting expired files cannot help
        ("protect", 0, 0),                      // not one byte left
        ("delete-oldest", 100_000, 50_000_000), // plenty of room: keep expired files
        ("delete-oldest", 300_000, 200_000),    // full; the oldest expired file or two help
        ("delete-oldest", 2_000_000, 100_000),  // full beyond what expired files can free
        ("delete-oldest", 0, 0),
    ];
    for &(policy, reserve, headroom) in situations {
        let evidence =
            format!("disk_check_interval = \"1s\"\ndisk_policy = \"{policy}\"\nreserve = {reserve}\n");
        let (mut s, a) = aged_store(&evidence);
        set_capacity(&mut s, &evidence, headroom);
        let (status, full, _) = run_job(&s.config);
        let what = format!("{policy}, reserve {reserve}, headroom {headroom}: {status}");
        assert!(
            a.leap_edge.iter().chain(&a.young).all(|g| exists(&s, g)),
            "{what}: R6 violated, a file younger than retention was deleted"
        );
        let pruned = pruned_seqs(&s);
        let expired: Vec<i64> = a.expired.iter().map(|g| g.seq).collect();
        assert!(
            pruned.iter().all(|(seq, _)| expired.contains(seq)),
            "{what}: {pruned:?}"
        );
        match policy {
            "protect" => {
                // Expired files go as they expire, whatever the disk.
                assert_eq!(pruned.len(), 4, "{what}");
                assert!(pruned.iter().all(|p| p.1 == "retention"));
            }
            _ => {
                // Oldest first, and only when the disk is full.
                assert_eq!(
                    pruned.iter().map(|p| p.0).collect::<Vec<_>>(),
                    expired[..pruned.len()],
                    "{what}"
                );
                assert!(pruned.iter().all(|p| p.1 == "disk_full"));
                if headroom > reserve {
                    assert!(pruned.is_empty(), "{what}");
                } else {
                    assert!(!pruned.is_empty(), "{what}");
                }
            }
        }
        // Full after what the policy may do: recording stops, and the log says why.
        let available = status["available_bytes"].as_u64().unwrap();
        assert_eq!(full, available <= reserve as u64, "{what}");
        let raised = alarms(&s.conn).iter().any(|a| disk_full(a, AlarmState::Raised));
        assert_eq!(raised, full, "{what}");
        let (code, v) = verify_store(&s, &[]);
        assert_eq!(code, 0, "{what}: {v:#}");
    }
}

#[test]
fn a_full_disk_is_reported_until_space_is_back_and_the_forecast_alarms() {
    let evidence =
        "disk_check_interval = \"1s\"\nreserve = 1000000\nforecast_window = \"2h\"\nalarm_days = 30\n";
    // Only young files (the last hour): nothing may go.
    let mut s = Store::new(&format!("[rules]\nprofile = \"henan\"\n\n[evidence]\n{evidence}"));
    let hour_ago = Utc::now() - chrono::Duration::seconds(3_600);
    for i in 0..6 {
        s.segment("front", secs(hour_ago, i * 60), 60, i as usize);
    }
    s.checkpoint();
    set_capacity(&mut s, evidence, 500_000);
    let (status, full, _) = run_job(&s.config);
    assert!(full, "{status}");
    assert!(pruned_seqs(&s).is_empty());
    // ~1.3 MB in the last hour: at that rate the disk is full within a day.
    let first = alarms(&s.conn);
    assert!(
        first.iter().any(|a| disk_full(a, AlarmState::Raised)),
        "{first:#?}"
    );
    let forecast = first
        .iter()
        .find(|a| matches!(a.alarm, AlarmKind::DiskForecast { .. }))
        .expect("a forecast alarm");
    assert_eq!(forecast.state, AlarmState::Raised);
    let AlarmKind::DiskForecast { days_left, .. } = forecast.alarm else {
        unreachable!()
    };
    assert!(days_left.unwrap() < 1.0, "{forecast:?}");
    // A restart with the disk still full does not repeat the alarm.
    let (_, full, _) = run_job(&s.config);
    assert!(full);
    assert_eq!(alarms(&s.conn).len(), first.len());
    // A bigger disk: recording may resume, and the log says so.
    set_capacity(&mut s, evidence, 1_000_000_000_000);
    let (_, full, _) = run_job(&s.config);
    assert!(!full);
    let last = alarms(&s.conn);
    assert!(
        last.iter().any(|a| disk_full(a, AlarmState::Cleared)),
        "{last:#?}"
    );
    assert!(
        last.iter()
            .any(|a| matches!(a.alarm, AlarmKind::DiskForecast { .. }) && a.state == AlarmState::Cleared),
        "{last:#?}"
    );
}

#[test]
fn the_job_signs_checkpoints_on_time_and_at_stop() {
    let mut s = Store::new(
        "[evidence]\ncheckpoint_interval = \"1s\"\ncheckpoint_records = 3\ndisk_check_interval = \"1h\"\n",
    );
    let config = Arc::new(Config::load(&s.config).unwrap());
    let ctx = JobContext {
        config,
        changes: Arc::new(Changes::default()),
        stop: Arc::new(AtomicBool::new(false)),
        disk_full: Arc::new(AtomicBool::new(false)),
    };
    let handle = classproof::daemon::evidence::spawn(ctx.clone()).unwrap().unwrap();
    let signed = |s: &Store| store::last_checkpoint_seq(&s.conn).unwrap();
    let b = base();
    s.segment("front", b, 60, 0);
    let head = log::last_seq(&s.conn).unwrap();
    wait_for("a checkpoint within the interval", Duration::from_secs(5), || {
        (signed(&s) >= head).then_some(())
    });
    // Three records at once, announced as the store does: signed at once, well within the
    // 1 s interval.
    for i in 1..4 {
        s.segment("front", secs(b, i * 60), 60, i as usize);
    }
    ctx.changes.notify();
    let head = log::last_seq(&s.conn).unwrap();
    wait_for("a checkpoint after 3 records", Duration::from_secs(5), || {
        (signed(&s) >= head).then_some(())
    });
    // One more, then stop at once: the stop signs it.
    s.segment("front", secs(b, 300), 60, 5);
    let t = Instant::now();
    ctx.stop.store(true, Ordering::SeqCst);
    handle.join().unwrap();
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "stopping took {:?}",
        t.elapsed()
    );
    assert_eq!(signed(&s), log::last_seq(&s.conn).unwrap());
    let (code, v) = verify_store(&s, &[]);
    assert_eq!(code, 0, "{v:#}");
    assert_eq!(v["unsigned_records"], 0);
}

// ---------------------------------------------------------------------------------------
// End to end: the daemon recording a real RTSP camera.

fn closed_segments(scene: &Scene, config: &Path) -> Vec<Value> {
    scene
        .segments(config)
        .into_iter()
        .filter(|e| e["type"] == "segment" && e["state"] != "recording")
        .collect()
}

/// Path relative to the data dir, as records name it.
fn rel(scene: &Scene, seg: &Value) -> String {
    Path::new(seg["path"].as_str().unwrap())
        .strip_prefix(scene.data_dir())
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

#[test]
fn a_real_recording_verifies_intact_then_tampered() {
    let camera = RtspServer::start("h264");
    let scene = Scene::new();
    let config = scene.config(&format!(
        "[[camera]]\nid = \"front\"\nurl = \"{}\"\nsegment = \"2s\"\n\n[evidence]\ncheckpoint_interval = \"1s\"\n",
        camera.url()
    ));
    let cfg = config.to_string_lossy().into_owned();
    let mut daemon = Daemon::start(&config);
    wait_for("3 finished segments", Duration::from_secs(40), || {
        (closed_segments(&scene, &config).len() >= 3).then_some(())
    });
    // While it records: the segment being written is not unexpected.
    let (code, v) = run_json(&["verify", "--config", &cfg, "--json"]);
    assert_eq!(code, 0, "{v:#}\n{}", daemon.log());
    let status = daemon.terminate(Duration::from_secs(5));
    assert!(status.success(), "{}", daemon.log());

    let segs = closed_segments(&scene, &config);
    let (code, v) = run_json(&["verify", "--config", &cfg, "--json"]);
    assert_eq!(code, 0, "{v:#}");
    assert_eq!(v["files_checked"].as_u64().unwrap(), segs.len() as u64);
    assert_eq!(
        v["unsigned_records"], 0,
        "the daemon signs what is left when it stops"
    );
    assert!(v["checkpoints"].as_u64().unwrap() >= 2, "{v:#}");

    // The bundle of what was recorded, checked elsewhere with the registered key.
    let (_, keys) = run_json(&["keys", "show", "--config", &cfg, "--json"]);
    let pubkey = keys["public_key"].as_str().unwrap().to_string();
    let (from, to) = (
        segs[0]["start"].as_str().unwrap(),
        segs[segs.len() - 1]["end"].as_str().unwrap(),
    );
    let out = scene.path().join("bundle");
    let o = cp(&[
        "export",
        "--config",
        &cfg,
        "--from",
        from,
        "--to",
        to,
        "--camera",
        "front",
        "--out",
        &out.to_string_lossy(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (code, v) = verify_bundle(&out, &pubkey);
    assert_eq!(code, 0, "{v:#}");
    assert_eq!(v["files_checked"].as_u64().unwrap(), segs.len() as u64);
    assert_eq!(
        v["bundle"]["complete"],
        true,
        "{v:#}\n{}\n{}",
        std::fs::read_to_string(out.join("checkpoints.txt")).unwrap(),
        std::fs::read_to_string(out.join("bundle.json")).unwrap()
    );

    // Tampered: a flipped byte in the second segment, on the box and in the bundle.
    let victim = rel(&scene, &segs[1]);
    for root in [scene.data_dir(), out.clone()] {
        let p = root.join(&victim);
        let mut bytes = std::fs::read(&p).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0x10;
        std::fs::write(&p, bytes).unwrap();
    }
    let (code, v) = run_json(&["verify", "--config", &cfg, "--json"]);
    assert_eq!(code, 1);
    assert!(
        found(&problems(&v), &want("modified", None, Some(&victim))),
        "{v:#}"
    );
    let (code, v) = verify_bundle(&out, &pubkey);
    assert_eq!(code, 1);
    assert!(
        found(&problems(&v), &want("modified", None, Some(&victim))),
        "{v:#}"
    );
}

/// R6 with the real recorder: the disk (a 3 MB capacity) fills up with recordings younger than
/// the retention; policy `protect` stops new segments with a `disk_full` gap, deletes nothing,
/// and the store still verifies.
#[test]
fn a_full_disk_stops_recording_with_a_disk_full_gap_and_deletes_nothing() {
    let camera = RtspServer::start("h264");
    let scene = Scene::new();
    let config = scene.config(&format!(
        "[[camera]]\nid = \"front\"\nurl = \"{}\"\nsegment = \"1s\"\n\n[evidence]\ncapacity = \"3MB\"\nreserve = \"1MB\"\n\
         disk_check_interval = \"1s\"\ncheckpoint_interval = \"1s\"\n",
        camera.url()
    ));
    let cfg = config.to_string_lossy().into_owned();
    let mut daemon = Daemon::start(&config);
    daemon.wait_log("evidence: disk full", Duration::from_secs(60));
    let gap = wait_for("a disk_full gap", Duration::from_secs(20), || {
        scene
            .segments(&config)
            .into_iter()
            .find(|e| e["type"] == "gap" && e["cause"] == "disk_full")
    });
    // No new segment starts while the disk is full.
    let before = closed_segments(&scene, &config).len();
    std::thread::sleep(Duration::from_secs(3));
    let all = scene.segments(&config);
    let started_after: Vec<&Value> = all
        .iter()
        .filter(|e| e["type"] == "segment" && e["start"].as_str() > gap["start"].as_str())
        .collect();
    assert!(started_after.is_empty(), "recording went on: {started_after:#?}");
    assert!(closed_segments(&scene, &config).len() <= before + 1);
    let status = daemon.terminate(Duration::from_secs(5));
    assert!(status.success(), "{}", daemon.log());

    // Everything recorded is still there, and the log says why recording stopped.
    let (code, v) = run_json(&["verify", "--config", &cfg, "--json"]);
    assert_eq!(code, 0, "{v:#}");
    assert_eq!(v["files_pruned"], 0);
    assert_eq!(
        v["files_checked"].as_u64().unwrap(),
        closed_segments(&scene, &config).len() as u64
    );
    let conn = db::open_read_only(&scene.data_dir()).unwrap();
    let all = alarms(&conn);
    assert!(all.iter().any(|a| disk_full(a, AlarmState::Raised)), "{all:#?}");
}

/// The same on a real, small file system: a 6 MB tmpfs mounted over the data dir inside a user
/// and mount namespace (no privileges needed), no `capacity` configured, so the job reads the
/// file system's own numbers (statvfs). Everything runs inside the namespace, where the mount
/// is visible; results are written beside it.
#[test]
fn a_real_small_file_system_fills_up_and_recording_stops() {
    if !Command::new("unshare")
        .args(["-Urm", "true"])
        .status()
        .is_ok_and(|s| s.success())
    {
        eprintln!("skipped: unprivileged user and mount namespaces are not available here");
        return;
    }
    let camera = RtspServer::start("h264");
    let scene = Scene::new();
    let config = scene.config(&format!(
        "[[camera]]\nid = \"front\"\nurl = \"{}\"\nsegment = \"1s\"\n\n[evidence]\nreserve = \"1MB\"\n\
         disk_check_interval = \"1s\"\ncheckpoint_interval = \"1s\"\n",
        camera.url()
    ));
    std::fs::create_dir_all(scene.data_dir()).unwrap();
    let script = r#"
        set -e
        mount -t tmpfs -o size=6m classproof-test "$DATA"
        "$BIN" run --config "$CFG" 2> "$OUT/daemon.log" &
        pid=$!
        i=0
        # The job raises the alarm, then the recorder records the disk_full gap.
        until grep -q "evidence: disk full" "$OUT/daemon.log" \
            && "$BIN" segments --config "$CFG" --json | grep -q '"cause":"disk_full"'; do
            i=$((i + 1))
            if [ $i -gt 900 ] || ! kill -0 $pid 2>/dev/null; then kill $pid 2>/dev/null; exit 3; fi
            sleep 0.1
        done
        kill -TERM $pid
        wait $pid
        "$BIN" segments --config "$CFG" --json > "$OUT/segments.jsonl"
        "$BIN" verify --config "$CFG" --json > "$OUT/verify.json" || true
        mkdir "$OUT/db" && cp "$DATA/classproof.db" "$OUT/db/"
    "#;
    let status = Command::new("unshare")
        .args(["-Urm", "sh", "-c", script])
        .env("DATA", scene.data_dir())
        .env("BIN", crate::support::bin())
        .env("CFG", &config)
        .env("OUT", scene.path())
        .status()
        .unwrap();
    let read = |name: &str| std::fs::read_to_string(scene.path().join(name)).unwrap_or_default();
    assert!(status.success(), "{status:?}\n{}", read("daemon.log"));
    // What the job measured when it stopped recording: the tmpfs itself, nearly full.
    let conn = db::open_read_only(&scene.path().join("db")).unwrap();
    let all = alarms(&conn);
    let full = all
        .iter()
        .find(|a| disk_full(a, AlarmState::Raised))
        .unwrap_or_else(|| panic!("{all:#?}"));
    let AlarmKind::DiskFull {
        capacity_bytes,
        available_bytes,
        ..
    } = full.alarm
    else {
        unreachable!()
    };
    assert!(capacity_bytes <= 6 << 20, "{full:?}");
    assert!(available_bytes <= 1_000_000, "{full:?}");
    let entries: Vec<Value> = read("segments.jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        entries
            .iter()
            .any(|e| e["type"] == "gap" && e["cause"] == "disk_full"),
        "{entries:#?}"
    );
    let segments = entries
        .iter()
        .filter(|e| e["type"] == "segment" && e["state"] != "recording")
        .count();
    let v: Value = serde_json::from_str(&read("verify.json")).unwrap();
    assert_eq!(v["intact"], true, "{v:#}");
    assert_eq!(v["files_pruned"], 0);
    assert_eq!(v["files_checked"].as_u64().unwrap(), segments as u64);
}

/// A key file replaced behind the database's back is not used to sign, but it does not stop
/// the disk watch (nor, in the daemon, recording): an alarm says why nothing is signed.
#[test]
fn a_replaced_key_file_stops_signing_not_the_disk_watch() {
    let mut s = Store::new("[evidence]\ncheckpoint_interval = \"1s\"\ndisk_check_interval = \"1s\"\n");
    s.segment("front", base(), 60, 0);
    let (_, pkcs8) = DeviceKey::generate().unwrap();
    classproof::evidence::key::write_private(&s.data(), classproof::evidence::key::PRIVATE_FILE, &pkcs8)
        .unwrap();
    let (status, full, _) = run_job(&s.config);
    assert!(!full, "{status}");
    assert_eq!(
        store::last_checkpoint_seq(&s.conn).unwrap(),
        0,
        "signed with a replaced key"
    );
    let all = alarms(&s.conn);
    let detail = all
        .iter()
        .find_map(|a| match &a.alarm {
            AlarmKind::DeviceKey { detail } => detail.clone(),
            _ => None,
        })
        .expect("a device_key alarm");
    assert!(detail.contains("replaced"), "{all:?}");
}

// ---------------------------------------------------------------------------------------
// Typed records (issue 8, items 2 and 6).

/// A store written by the binary before typed records (tests/fixtures/store-v1.sql, made by
/// tests/fixtures/make_store_v1.sh) reads back record for record: every record parses into a
/// `Record`, re-serialises to exactly the stored canonical payload, rehashes to the stored
/// hash, and `classproof verify` finds the chain and the checkpoints intact (only the segment
/// files, which are not kept, are missing).
#[test]
fn store_v1_fixture_reads_back_record_for_record() {
    let scene = Scene::new();
    // The fixture is the store's database as SQL text (no binary database or video is
    // committed); its segment files are not kept, so `verify` finds them missing, and nothing
    // else.
    std::fs::create_dir_all(scene.data_dir()).unwrap();
    let sql = std::fs::read_to_string(crate::support::repo().join("tests/fixtures/store-v1.sql")).unwrap();
    rusqlite::Connection::open(scene.data_dir().join(db::DB_FILE))
        .unwrap()
        .execute_batch(&sql)
        .unwrap();
    let conn = db::open_read_only(&scene.data_dir()).unwrap();
    let rows = log::read_raw(&conn, 1, i64::MAX, i64::MAX).unwrap();
    let mut kinds = std::collections::BTreeSet::new();
    for r in &rows {
        let rec = r.record().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(rec.kind(), r.kind, "seq {}", r.seq);
        assert_eq!(rec.canonical_payload(), r.payload, "seq {}", r.seq);
        assert_eq!(rec.file_sha256(), r.file_sha256.as_deref(), "seq {}", r.seq);
        let file = rec.file_sha256().map(|h| log::parse_sha256_hex(h).unwrap());
        let prev: [u8; 32] = r.prev_hash.clone().try_into().unwrap();
        let h = log::record_hash(
            r.time_us,
            rec.kind(),
            &rec.canonical_payload(),
            file.as_ref(),
            &prev,
        );
        assert_eq!(h.to_vec(), r.hash, "seq {}", r.seq);
        kinds.insert(rec.record_kind());
    }
    use Kind::*;
    for k in [
        Segment,
        Gap,
        ClassHourPass,
        ClassHourAtRisk,
        ClassHourFail,
        ClassHourFinal,
        Alarm,
        DeviceKey,
        KeyRotated,
        Enrollment,
    ] {
        assert!(kinds.contains(&k), "the fixture has no {k} record");
    }
    assert_eq!(log::read_filtered(&conn, None, None).unwrap().len(), rows.len());
    assert!(store::last_checkpoint_seq(&conn).unwrap() == rows.len() as i64);
    drop(conn);

    let cfg = scene.path().join("classproof.toml");
    std::fs::write(
        &cfg,
        format!(
            "[device]\nid = \"fixture-box\"\ndata_dir = \"{}\"\ntimezone = \"Asia/Shanghai\"\n\n[vision]\nenabled = false\n",
            scene.data_dir().display()
        ),
    )
    .unwrap();
    let (code, v) = run_json(&["verify", "--config", &cfg.to_string_lossy(), "--json"]);
    assert_eq!(code, 1, "{v:#}");
    assert_eq!(v["records"], rows.len());
    let found = problems(&v);
    assert_eq!(found.len(), 13, "the 13 segment files, and nothing else: {v:#}");
    assert!(
        found
            .iter()
            .all(|(kind, _, path)| kind == "missing" && path.is_some()),
        "{v:#}"
    );
}

/// Issue 8, item 6: `classproof segments` shows a segment whose file retention deleted as
/// pruned, with its `pruned` record's time.
#[test]
fn segments_show_a_pruned_segment_as_pruned() {
    let (s, a) = aged_store("disk_check_interval = \"1s\"\n");
    run_job(&s.config);
    let pruned: Vec<(String, String)> = log::read_filtered(&s.conn, None, Some(Kind::Pruned))
        .unwrap()
        .into_iter()
        .map(|r| match r.record {
            Record::Pruned(p) => (
                p.path,
                classproof::clock::rfc3339_us(r.time.timestamp_micros(), chrono_tz::Asia::Shanghai),
            ),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(pruned.len(), a.expired.len());
    let rows = s.scene.segments(&s.config);
    for seg in rows.iter().filter(|e| e["type"] == Kind::Segment.as_str()) {
        let path = rel(&s.scene, seg);
        match pruned.iter().find(|(p, _)| *p == path) {
            Some((_, time)) => assert_eq!(seg["pruned"], json!(time), "{seg}"),
            None => assert!(seg["pruned"].is_null(), "{seg}"),
        }
    }
    assert_eq!(
        rows.iter().filter(|e| !e["pruned"].is_null()).count(),
        pruned.len()
    );
    let out = cp(&["segments", "--config", &s.cfg()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.matches("pruned at ").count(), pruned.len(), "{text}");
}

/// Issue 8, item 6: renaming the box (`[device] id`) is itself a record, and the checkpoints
/// signed under the old id still verify.
#[test]
fn a_changed_device_id_is_recorded_and_old_checkpoints_still_verify() {
    let scene = Scene::new();
    let video = &clips()[0];
    let rest = format!(
        "[[camera]]\nid = \"front\"\nurl = \"file://{}\"\nloop = true\nsegment = \"1s\"\n\n[evidence]\ncheckpoint_interval = \"1s\"\n",
        video.display()
    );
    let config = scene.config(&rest);
    let cfg = config.to_string_lossy().into_owned();
    let run = |n: usize| {
        let mut daemon = Daemon::start(&config);
        wait_for("finished segments", Duration::from_secs(30), || {
            (closed_segments(&scene, &config).len() >= n).then_some(())
        });
        assert!(
            daemon.terminate(Duration::from_secs(5)).success(),
            "{}",
            daemon.log()
        );
    };
    run(2);
    let (code, v) = run_json(&["verify", "--config", &cfg, "--json"]);
    assert_eq!(code, 0, "{v:#}");
    let first_checkpoints = v["checkpoints"].as_u64().unwrap();
    assert!(first_checkpoints >= 1);

    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, text.replace("id = \"test-box\"", "id = \"room-7\"")).unwrap();
    run(4);
    let conn = db::open_read_only(&scene.data_dir()).unwrap();
    let changes = log::read_filtered(&conn, None, Some(Kind::DeviceIdChanged)).unwrap();
    assert_eq!(changes.len(), 1, "{changes:#?}");
    assert_eq!(
        changes[0].record,
        Record::DeviceIdChanged(record::DeviceIdChanged {
            old_id: "test-box".into(),
            new_id: "room-7".into()
        })
    );
    let (code, v) = run_json(&["verify", "--config", &cfg, "--json"]);
    assert_eq!(code, 0, "{v:#}");
    assert_eq!(v["device"], "room-7");
    assert!(v["checkpoints"].as_u64().unwrap() > first_checkpoints, "{v:#}");
    assert_eq!(v["unsigned_records"], 0);
}
