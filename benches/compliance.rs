//! What one evaluation of the live judge costs, per class hour in progress: the pure engine
//! against the reference of reading the same rows from SQLite (`media::index::timeline`),
//! which the judge does on every tick. A 45-minute class hour, two cameras, 10 s segments,
//! a few gaps.

use std::path::PathBuf;
use std::time::Duration;

use classproof::compliance::{ClassHour, Profile, SessionKind, judge_hour};
use classproof::daemon::verdicts::to_timeline;
use classproof::db;
use classproof::media::index::{self, SegmentState};
use classproof::media::{ClosedSegment, GapCause};
use criterion::{Criterion, criterion_group, criterion_main};

const S: i64 = 1_000_000;
const T0: i64 = 1_795_312_800 * S;

fn fill(conn: &mut rusqlite::Connection, camera: &str) {
    let tx = db::write_tx(conn).unwrap();
    let (mut at, mut stream, mut seq) = (T0 - 60 * S, 0, 0u32);
    while at < T0 + 46 * 60 * S {
        let seg = ClosedSegment {
            camera: camera.into(),
            stream_id: format!("{camera}{stream}"),
            stream_seq: seq,
            path: PathBuf::from(format!("video/{camera}/{stream}-{seq}.mp4")),
            codec: "h264".into(),
            start: classproof::clock::from_us(at),
            end: classproof::clock::from_us(at + 10 * S),
            media_duration: Duration::from_secs(10),
            bytes: 1,
            sha256: "00".into(),
        };
        index::finish_segment(&tx, &seg, SegmentState::Closed, None).unwrap();
        at += 10 * S;
        seq += 1;
        // A drop every 5 minutes.
        if seq % 30 == 0 {
            let g = index::open_gap(&tx, camera, at, GapCause::CameraLost, "", at).unwrap();
            index::close_gap(&tx, g, at + 4 * S, None).unwrap();
            at += 4 * S;
            stream += 1;
            seq = 0;
        }
    }
    tx.commit().unwrap();
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let mut conn = db::open(dir.path()).unwrap();
    fill(&mut conn, "front");
    fill(&mut conn, "back");
    let hour = ClassHour {
        index: 1,
        start_us: T0,
        end_us: T0 + 45 * 60 * S,
    };
    let now = T0 + 40 * 60 * S;
    let rule = Profile::henan().rule_for(SessionKind::Practical);
    let cams = ["front", "back"];
    let read = || {
        cams.iter()
            .map(|c| index::timeline(&conn, Some(c), Some(hour.start_us), Some(hour.end_us)).unwrap())
            .collect::<Vec<_>>()
    };
    let rows = read();
    let timelines: Vec<_> = cams
        .iter()
        .zip(&rows)
        .map(|(c, r)| to_timeline(c, r, now))
        .collect();
    let mut g = c.benchmark_group("class hour, 2 cameras, 10 s segments");
    g.bench_function("reference: read the rows (index::timeline)", |b| b.iter(read));
    g.bench_function("convert rows to the engine timeline", |b| {
        b.iter(|| {
            cams.iter()
                .zip(&rows)
                .map(|(c, r)| to_timeline(c, r, now))
                .collect::<Vec<_>>()
        })
    });
    g.bench_function("engine: judge_hour", |b| {
        b.iter(|| judge_hour(&hour, &rule, 3 * S, &timelines, now))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
