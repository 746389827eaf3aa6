//! The outbox drain (issue 10): a backlog of 100,000 records (~3 days of a busy classroom)
//! published by the real sync job to a local mosquitto, each counted as sent only on its
//! PUBACK and the cursor durable in SQLite, against `mosquitto_pub -q 1 -l` publishing the
//! same payloads (the event messages, one per line) to the same broker in the same run.
//! Also: the CPU the sync job uses while idle (keepalive only).
//!
//! Run: `cargo bench --bench sync`. Results are recorded in docs/performance.md.
//! Needs `mosquitto` and `mosquitto-clients`.

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use classproof::config::Config;
use classproof::daemon::jobs::{Changes, JobContext};
use classproof::daemon::supervisor::Supervisor;
use classproof::db;
use classproof::evidence::log;
use classproof::evidence::record::{self, Record};
use classproof::media::GapCause;
use classproof::sync::{message, outbox, source};

const RECORDS: usize = 100_000;

/// A record of about a check-in's size (check-ins are not typed records yet): a short gap.
fn record(i: usize) -> (DateTime<Utc>, Record) {
    let t = 1_800_000_000_000_000i64 + i as i64 * 2_000_000;
    let rec = Record::Gap(record::Gap {
        camera: "entrance".into(),
        start_us: t - 1_000_000,
        end_us: t,
        cause: GapCause::Stall,
        detail: Some(format!(
            "person p-{:05} session s-2026-11-22-am snapshot 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b",
            i % 10_000
        )),
    });
    (DateTime::<Utc>::from_timestamp_micros(t).unwrap_or_default(), rec)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn cpu_seconds() -> f64 {
    // SAFETY: getrusage(2) into a zeroed struct we own.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(u.ru_utime) + tv(u.ru_stime)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let port = free_port();
    let conf = dir.path().join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!("user root\nlistener {port} 127.0.0.1\nallow_anonymous true\n"),
    )
    .unwrap();
    let mut broker = Command::new("mosquitto")
        .arg("-c")
        .arg(&conf)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("mosquitto (apt-get install mosquitto)");
    let t0 = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(t0.elapsed() < Duration::from_secs(10), "mosquitto did not start");
        std::thread::sleep(Duration::from_millis(20));
    }

    // The backlog, and the same payloads for mosquitto_pub.
    {
        let mut conn = db::open(&data).unwrap();
        let tx = db::write_tx(&mut conn).unwrap();
        for i in 0..RECORDS {
            let (time, rec) = record(i);
            log::append(&tx, time, &rec).unwrap();
        }
        tx.commit().unwrap();
    }
    let lines = dir.path().join("payloads.txt");
    {
        let conn = db::open(&data).unwrap();
        let mut f = std::io::BufWriter::new(std::fs::File::create(&lines).unwrap());
        for r in source::records_after(&conn, 0, RECORDS as i64).unwrap() {
            writeln!(
                f,
                "{}",
                message::event("bench-box", chrono_tz::Asia::Shanghai, &r)
            )
            .unwrap();
        }
    }

    let reference = |out: &mut Vec<f64>| {
        let input = std::fs::File::open(&lines).unwrap();
        let t = Instant::now();
        let st = Command::new("mosquitto_pub")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-q",
                "1",
                "-l",
                "-t",
                "bench/ref/event",
            ])
            .stdin(input)
            .status()
            .expect("mosquitto_pub (apt-get install mosquitto-clients)");
        assert!(st.success());
        out.push(RECORDS as f64 / t.elapsed().as_secs_f64());
    };

    let config = Arc::new(
        Config::parse(
            &format!(
                "[device]\nid = \"bench-box\"\ndata_dir = \"{}\"\n\n[evidence]\ncheckpoint_interval = \"1h\"\n\n\
                 [upstream]\nurl = \"mqtt://127.0.0.1:{port}\"\ninsecure_plaintext = true\ntopic_prefix = \"bench\"\n",
                data.display()
            ),
            &dir.path().join("bench.toml"),
        )
        .unwrap(),
    );
    let drain = |out: &mut Vec<f64>, idle: Option<&mut f64>| {
        let conn = db::open(&data).unwrap();
        outbox::advance(&mut db::open(&data).unwrap(), 0, 0).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let ctx = JobContext {
            config: config.clone(),
            changes: Arc::new(Changes::default()),
            stop: stop.clone(),
            disk_full: Arc::new(AtomicBool::new(false)),
        };
        let sup = Supervisor::standalone(data.clone(), stop.clone());
        let t = Instant::now();
        let job = sup
            .spawn("sync", classproof::sync::job::job(ctx).unwrap())
            .unwrap();
        let head = log::last_seq(&conn).unwrap();
        while outbox::cursors(&conn).unwrap().0 < head {
            assert!(t.elapsed() < Duration::from_secs(120), "drain too slow");
            std::thread::sleep(Duration::from_millis(5));
        }
        out.push(RECORDS as f64 / t.elapsed().as_secs_f64());
        if let Some(idle) = idle {
            std::thread::sleep(Duration::from_secs(1));
            let c0 = cpu_seconds();
            let w = Instant::now();
            std::thread::sleep(Duration::from_secs(10));
            *idle = (cpu_seconds() - c0) / w.elapsed().as_secs_f64();
        }
        stop.store(true, Ordering::SeqCst);
        job.join().unwrap();
    };

    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    let mut idle = 0.0;
    for round in 0..3 {
        reference(&mut theirs);
        drain(&mut ours, (round == 2).then_some(&mut idle));
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (o, t) = (median(&mut ours), median(&mut theirs));
    println!("sync drain of {RECORDS} records, QoS 1, cursor durable: median {o:.0} msg/s (runs {ours:.0?})");
    println!("mosquitto_pub -q 1 -l, same payloads:            median {t:.0} msg/s (runs {theirs:.0?})");
    println!("ratio {:.2} (target >= 0.5)", o / t);
    println!(
        "sync job idle CPU (keepalive only): {:.3}% of one core",
        idle * 100.0
    );
    let _ = broker.kill();
    let _ = broker.wait();
}
