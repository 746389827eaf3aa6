//! The judge on a real SQLite file, driven with chosen clock values: which events are written
//! when, and that a restart writes none twice.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::*;
use crate::media::{ClosedSegment, GapCause};

const S: i64 = 1_000_000;
/// 2026-11-22T10:00:00+08:00.
const T0: i64 = 1_795_312_800 * S;

fn t(sec: f64) -> i64 {
    T0 + (sec * 1e6).round() as i64
}

/// Three practical class hours of 60 s from T0, custom profile (run 15 s, tolerance 2 s),
/// camera stall timeout 5 s → settle 6 s.
fn config(data_dir: &Path) -> Arc<Config> {
    let text = format!(
        r#"
[device]
id = "box"
data_dir = "{}"
[rules]
profile = "custom"
min_class_hour = "60s"
practical_min_run = "15s"
continuity_tolerance = "2s"
[[camera]]
id = "front"
url = "rtsp://127.0.0.1:1/cam"
[[session]]
id = "s1"
class_id = "c1"
kind = "practical"
cameras = ["front"]
start = "2026-11-22T10:00:00+08:00"
class_hours = 3
class_hour = "60s"
break = "0s"
"#,
        data_dir.display()
    );
    Arc::new(Config::parse(&text, Path::new("c.toml")).unwrap())
}

fn open_segment(conn: &mut Connection, stream: &str, seq: u32, a: f64) {
    let tx = db::write_tx(conn).unwrap();
    let path = PathBuf::from(format!("video/front/{stream}-{seq}.mp4"));
    index::insert_recording_segment(&tx, "front", stream, seq, &path, "h264", t(a)).unwrap();
    tx.commit().unwrap();
}

fn close_segment(conn: &mut Connection, stream: &str, seq: u32, a: f64, b: f64) {
    let tx = db::write_tx(conn).unwrap();
    let seg = ClosedSegment {
        camera: "front".into(),
        stream_id: stream.into(),
        stream_seq: seq,
        path: PathBuf::from(format!("video/front/{stream}-{seq}.mp4")),
        codec: "h264".into(),
        start: from_us(t(a)),
        end: from_us(t(b)),
        media_duration: Duration::from_micros((t(b) - t(a)) as u64),
        bytes: 1000,
        sha256: "00".into(),
    };
    index::finish_segment(&tx, &seg, SegmentState::Closed, None).unwrap();
    tx.commit().unwrap();
}

fn open_gap(conn: &mut Connection, a: f64) -> i64 {
    let tx = db::write_tx(conn).unwrap();
    let id = index::open_gap(&tx, "front", t(a), GapCause::CameraLost, "test", t(a)).unwrap();
    tx.commit().unwrap();
    id
}

fn close_gap(conn: &mut Connection, id: i64, b: f64) {
    let tx = db::write_tx(conn).unwrap();
    index::close_gap(&tx, id, t(b), None).unwrap();
    tx.commit().unwrap();
}

fn step(j: &mut Judge, conn: &mut Connection, now: f64) -> Vec<(EventKind, u32, Verdict)> {
    j.step(conn, t(now))
        .unwrap()
        .into_iter()
        .map(|w| (w.kind, w.class_hour, w.verdict))
        .collect()
}

#[test]
fn events_are_written_when_due_and_once() {
    use EventKind::*;
    use Verdict as V;
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path());
    let mut conn = db::open(dir.path()).unwrap();
    let mut j = Judge::new(&conn, config.clone(), t(-30.0)).unwrap();
    let g = open_gap(&mut conn, -30.0);
    assert_eq!(step(&mut j, &mut conn, -1.0), []);
    assert_eq!(step(&mut j, &mut conn, 10.0), []);
    // The camera comes back at 40 s: a run of 15 s still fits until 60 s.
    close_gap(&mut conn, g, 40.0);
    open_segment(&mut conn, "a", 0, 40.0);
    assert_eq!(step(&mut j, &mut conn, 44.9), []);
    // From 45 s (end − 15 s) only unbroken recording can pass the hour.
    assert_eq!(step(&mut j, &mut conn, 45.0), [(AtRisk, 1, V::AtRisk)]);
    assert_eq!(step(&mut j, &mut conn, 46.0), []);
    // It drops at 50 s: the hole outgrows the tolerance at 52 s and the hour fails.
    close_segment(&mut conn, "a", 0, 40.0, 50.0);
    let g = open_gap(&mut conn, 50.0);
    assert_eq!(step(&mut j, &mut conn, 52.0), []);
    assert_eq!(step(&mut j, &mut conn, 52.001), [(Fail, 1, V::Fail)]);
    // Back at 58 s for good: hour 2 passes at 75 s, live.
    close_gap(&mut conn, g, 58.0);
    open_segment(&mut conn, "b", 0, 58.0);
    assert_eq!(step(&mut j, &mut conn, 60.0), []);
    assert_eq!(step(&mut j, &mut conn, 65.999), []);
    // Hour 1's final verdict waits for the settle time (stall timeout 5 s + 1 s).
    assert_eq!(step(&mut j, &mut conn, 66.0), [(Final, 1, V::Fail)]);
    assert_eq!(step(&mut j, &mut conn, 74.9), []);
    assert_eq!(step(&mut j, &mut conn, 75.0), [(Pass, 2, V::Pass)]);
    assert_eq!(step(&mut j, &mut conn, 100.0), []);

    // A restart forgets nothing: no event is written twice.
    drop(j);
    let mut j = Judge::new(&conn, config.clone(), t(100.0)).unwrap();
    assert_eq!(step(&mut j, &mut conn, 100.0), []);
    assert_eq!(step(&mut j, &mut conn, 126.0), [(Final, 2, V::Pass)]);
    assert_eq!(step(&mut j, &mut conn, 135.0), [(Pass, 3, V::Pass)]);
    assert_eq!(step(&mut j, &mut conn, 200.0), [(Final, 3, V::Pass)]);
    assert_eq!(step(&mut j, &mut conn, 300.0), []);

    // The log holds each event once, with the facts an auditor needs.
    let finals = log::read_filtered(&conn, None, Some(EventKind::Final.kind())).unwrap();
    assert_eq!(finals.len(), 3);
    let p = &finals[0].record.payload_value();
    assert_eq!(p["session"], "s1");
    assert_eq!(p["class_id"], "c1");
    assert_eq!(p["class_hour"], 1);
    assert_eq!(p["verdict"], "fail");
    assert_eq!(p["rule"], "R2");
    assert_eq!(p["longest_run_s"], 10.0);
    // 40–50 s, and 58–60 s of the run that passes hour 2.
    assert_eq!(p["recorded_s"], 12.0);
    assert_eq!(p["required_run_s"], 15.0);
    assert_eq!(p["holes"][1]["cause"], "camera_lost");
    assert_eq!(p["holes"][1]["start"], "2026-11-22T10:00:50+08:00");
    assert_eq!(finals[0].time.timestamp_micros(), t(66.0));
    let all = log::read_filtered(&conn, None, None).unwrap();
    assert_eq!(all.len(), 7);
}

#[test]
fn hours_that_ended_while_the_daemon_was_down_get_only_their_final_verdict() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path());
    let mut conn = db::open(dir.path()).unwrap();
    // First start before the session; then the daemon is down until after it.
    drop(Judge::new(&conn, config.clone(), t(-100.0)).unwrap());
    // Recorded until 100 s: hour 1 whole, 40 s of hour 2, nothing of hour 3.
    open_segment(&mut conn, "a", 0, -5.0);
    close_segment(&mut conn, "a", 0, -5.0, 100.0);
    let mut j = Judge::new(&conn, config, t(300.0)).unwrap();
    let got = step(&mut j, &mut conn, 300.0);
    assert_eq!(
        got,
        [
            (EventKind::Final, 1, Verdict::Pass),
            (EventKind::Final, 2, Verdict::Pass),
            (EventKind::Final, 3, Verdict::Fail)
        ]
    );
}

#[test]
fn hours_before_the_judge_first_ran_are_not_judged() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path());
    let mut conn = db::open(dir.path()).unwrap();
    // First ever start at 90 s: hour 1 is history, hour 2 is running, hour 3 to come.
    let mut j = Judge::new(&conn, config, t(90.0)).unwrap();
    assert_eq!(step(&mut j, &mut conn, 300.0).len(), 2);
    let finals = log::read_filtered(&conn, None, Some(EventKind::Final.kind())).unwrap();
    let hours: Vec<_> = finals
        .iter()
        .map(|r| r.record.as_class_hour().unwrap().1.class_hour)
        .collect();
    assert_eq!(hours, [2, 3]);
}

#[test]
fn rows_become_the_engine_timeline() {
    use crate::media::index::{GapRow, SegmentRow};
    let seg = |id, state, a: f64, b: Option<f64>| {
        Entry::Segment(SegmentRow {
            id,
            camera: "front".into(),
            stream_id: "s".into(),
            stream_seq: id as u32,
            path: PathBuf::from("x"),
            codec: "h264".into(),
            start_us: t(a),
            end_us: b.map(t),
            media_duration_us: None,
            bytes: None,
            sha256: None,
            state,
        })
    };
    let rows = vec![
        seg(0, SegmentState::Closed, 0.0, Some(10.0)),
        seg(1, SegmentState::Damaged, 10.0, Some(20.0)),
        seg(2, SegmentState::Recovered, 20.0, Some(30.0)),
        Entry::Gap(GapRow {
            id: 1,
            camera: "front".into(),
            start_us: t(30.0),
            end_us: None,
            cause: GapCause::Stall,
            detail: None,
            detected_us: t(35.0),
        }),
        seg(3, SegmentState::Recording, 38.0, None),
        seg(4, SegmentState::Closed, 50.0, Some(60.0)),
    ];
    let tl = to_timeline("front", &rows, t(45.0));
    let rec: Vec<_> = tl.recorded.iter().map(|r| (r.start_us, r.end_us)).collect();
    assert_eq!(rec, [(t(0.0), t(10.0)), (t(20.0), t(30.0)), (t(38.0), t(45.0))]);
    let miss: Vec<_> = tl
        .missing
        .iter()
        .map(|m| (m.start_us, m.end_us, m.cause.as_str()))
        .collect();
    assert_eq!(miss, [(t(10.0), t(20.0), "damaged"), (t(30.0), t(45.0), "stall")]);
}

/// The typed payload is byte for byte what the untyped code built: the report's `hour_json`
/// with the occurrence's fields added (issue 8, item 2: the hashed bytes do not change).
#[test]
fn the_typed_class_hour_payload_is_the_untyped_one() {
    use crate::evidence::log::canonical_json;
    use crate::evidence::record::Kind;
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path());
    let mut conn = db::open(dir.path()).unwrap();
    let mut j = Judge::new(&conn, config.clone(), t(0.0)).unwrap();
    let id = open_gap(&mut conn, 40.0);
    close_gap(&mut conn, id, 50.0);
    step(&mut j, &mut conn, 200.0);
    let tz = config.device.timezone;
    let occ = config.sessions[0]
        .occurrences_between(t(0.0), t(300.0), tz)
        .remove(0);
    let mut n = 0;
    for stored in log::read_filtered(&conn, None, Some(Kind::ClassHourFinal)).unwrap() {
        let (_, h) = stored.record.as_class_hour().unwrap();
        let v = judge_one(
            Some(&conn),
            &config,
            &occ,
            &occ.hours[(h.class_hour - 1) as usize],
            t(200.0),
        )
        .unwrap();
        // What `event_payload` was before typed records.
        let mut p = hour_json(&v, tz);
        let hour = p.as_object_mut().unwrap();
        let index = hour.remove("index").unwrap();
        hour.insert("class_hour".into(), index);
        hour.insert("session".into(), serde_json::json!(occ.name));
        hour.insert("session_id".into(), serde_json::json!(occ.session.id));
        hour.insert(
            "date".into(),
            serde_json::json!(occ.date.map(|d| d.format("%Y-%m-%d").to_string())),
        );
        hour.insert("class_id".into(), serde_json::json!(occ.session.class_id));
        hour.insert("kind".into(), serde_json::json!(occ.session.kind.as_str()));
        hour.insert("profile".into(), serde_json::json!(config.rules.profile.name));
        hour.insert("cameras".into(), serde_json::json!(occ.session.cameras));
        hour.insert("start_us".into(), serde_json::json!(v.start_us));
        hour.insert("end_us".into(), serde_json::json!(v.end_us));
        assert_eq!(stored.record.canonical_payload(), canonical_json(&p));
        n += 1;
    }
    assert_eq!(n, 3);
}

/// What the job waits for between steps (issue 8): the next hour's start; while an hour runs,
/// the moment its verdict changes with the clock alone (at most LIVE_RECHECK ahead); an hour's
/// final verdict once it ended; nothing once every final is written.
#[test]
fn the_judge_sleeps_until_the_clock_can_make_something_due() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path());
    let mut conn = db::open(dir.path()).unwrap();
    let mut j = Judge::new(&conn, config, t(-30.0)).unwrap();
    let next = |j: &Judge, conn: &Connection, now: f64| j.next_look_us(conn, t(now)).unwrap();
    let recheck = LIVE_RECHECK.as_micros() as i64;
    // Before the session: its first class hour's start.
    assert_eq!(next(&j, &conn, -30.0), t(0.0));
    // Nothing recorded: hour 1 is pending until 45 s (end − the 15 s run), then at risk.
    assert_eq!(next(&j, &conn, 10.0), t(10.0) + recheck);
    let at_risk = next(&j, &conn, 40.0);
    assert!((t(45.0)..=t(45.001)).contains(&at_risk), "{}", at_risk - t(45.0));
    assert_eq!(
        step(&mut j, &mut conn, 45.0),
        [(EventKind::AtRisk, 1, Verdict::AtRisk)]
    );
    // At risk, then failed just after 45 s: the prediction matches what the step then writes.
    let fail = next(&j, &conn, 45.0);
    assert!((t(45.0)..=t(45.001)).contains(&fail), "{}", fail - t(45.0));
    assert_eq!(
        step(&mut j, &mut conn, 45.001),
        [(EventKind::Fail, 1, Verdict::Fail)]
    );
    // Recording from 50 s on: hour 2 (60–120 s) passes at 75 s, hour 1 is decided (its final
    // at 66 s).
    open_segment(&mut conn, "a", 0, 50.0);
    assert_eq!(next(&j, &conn, 50.0), t(60.0));
    assert_eq!(next(&j, &conn, 62.0), t(66.0));
    step(&mut j, &mut conn, 66.0);
    let pass = next(&j, &conn, 70.0);
    assert!((t(75.0)..=t(75.001)).contains(&pass), "{}", pass - t(75.0));
    assert_eq!(
        step(&mut j, &mut conn, 75.001),
        [(EventKind::Pass, 2, Verdict::Pass)]
    );
    // Hour 2 ended: its final at 126 s comes before hour 3 could change.
    assert_eq!(next(&j, &conn, 120.5), t(126.0));
    step(&mut j, &mut conn, 126.0);
    // Hour 3 (120–180 s) passes at 135 s; its final at 186 s.
    step(&mut j, &mut conn, 135.001);
    assert_eq!(next(&j, &conn, 181.0), t(186.0));
    step(&mut j, &mut conn, 186.0);
    // Every final written: nothing due within the look-ahead.
    assert_eq!(next(&j, &conn, 186.0), t(186.0) + LOOK_AHEAD_US);
}

#[test]
fn first_change_bisects_to_the_millisecond() {
    let at = |x: i64| move |t: i64| if t >= x { Verdict::AtRisk } else { Verdict::Pending };
    assert_eq!(
        first_change_us(at(45_000_000), 0, 60_000_000).div_euclid(1000),
        45_000
    );
    assert!(first_change_us(at(45_000_000), 0, 60_000_000) >= 45_000_000);
    // No change before the end: the end.
    assert_eq!(first_change_us(at(i64::MAX), 0, 60_000_000), 60_000_000);
    // Decided verdicts do not change before the end.
    assert_eq!(first_change_us(|_| Verdict::Pass, 5, 60_000_000), 60_000_000);
}
