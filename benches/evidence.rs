//! The evidence chain alone (issue 5): appending 100,000 records durably in batches, and
//! verifying them, each against a named reference measured in the same run:
//!
//! - append vs `plain insert`: the same rows into a table of the same shape, same batches,
//!   same durability (WAL, synchronous=FULL), without hashing or chaining;
//! - verify vs `sha256 of the db file`: reading the database file and hashing its bytes once,
//!   i.e. the cheapest possible pass over the same bytes.
//!
//! Run: `cargo bench --bench evidence`. Results are recorded in docs/evidence.md.

use std::path::Path;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use classproof::attendance::roster::Role;
use classproof::db;
use classproof::evidence::log;
use classproof::evidence::record::{Enrollment, Record};
use classproof::evidence::verify::{self, Options};
use classproof::evidence::{key::DeviceKey, store};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const RECORDS: usize = 100_000;
const BATCH: usize = 1_000;

/// A record of the size a check-in will have (the most numerous kind after segments once
/// attendance lands): an `enrollment`, which is not cross-checked against other tables, so the
/// bench measures the chain alone.
fn record(i: usize) -> (DateTime<Utc>, Record) {
    let t = 1_800_000_000_000_000i64 + i as i64 * 2_000_000;
    let rec = Record::Enrollment(Enrollment {
        person_id: format!("410105********{:04}", i % 10_000),
        role: Role::Trainee,
        model: "fr_feature".into(),
        templates_added: 1,
        photo_sha256: vec!["9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08".into()],
        rejected: 0,
        warnings: 0,
    });
    (DateTime::<Utc>::from_timestamp_micros(t).unwrap_or_default(), rec)
}

/// Appends `RECORDS` records in transactions of `BATCH`, with a signed checkpoint after each
/// batch (as the daemon does every N records).
fn append_all(dir: &Path, key: &DeviceKey) {
    let mut conn = db::open(dir).unwrap();
    for b in 0..RECORDS / BATCH {
        let tx = db::write_tx(&mut conn).unwrap();
        for i in 0..BATCH {
            let (time, rec) = record(b * BATCH + i);
            log::append(&tx, time, &rec).unwrap();
        }
        tx.commit().unwrap();
        store::checkpoint_now(&mut conn, key, "bench-box", Utc::now()).unwrap();
    }
}

/// The reference: the same rows, same batches, no hash and no chain.
fn plain_insert_all(dir: &Path) {
    let mut conn = db::open(dir).unwrap();
    conn.execute_batch(
        "CREATE TABLE plain (seq INTEGER PRIMARY KEY, time_us INTEGER NOT NULL, type TEXT NOT NULL,
         payload TEXT NOT NULL, file_sha256 TEXT, prev_hash BLOB NOT NULL, hash BLOB NOT NULL)",
    )
    .unwrap();
    let zero = [0u8; 32];
    for b in 0..RECORDS / BATCH {
        let tx = db::write_tx(&mut conn).unwrap();
        for i in 0..BATCH {
            let (time, r) = record(b * BATCH + i);
            tx.prepare_cached("INSERT INTO plain VALUES (?1, ?2, ?3, ?4, NULL, ?5, ?6)")
                .unwrap()
                .execute(rusqlite::params![
                    (b * BATCH + i + 1) as i64,
                    time.timestamp_micros(),
                    r.kind(),
                    r.canonical_payload(),
                    &zero[..],
                    &zero[..]
                ])
                .unwrap();
        }
        tx.commit().unwrap();
    }
}

fn verify_all(dir: &Path) -> u64 {
    let opts = Options {
        retention: Duration::from_secs(3 * 365 * 86_400),
        ..Options::default()
    };
    let r = verify::verify_store(dir, "bench-box", &opts).unwrap();
    assert!(
        r.intact,
        "{} problems, the first: {:?}",
        r.problems.len(),
        r.problems.first()
    );
    r.records
}

fn sha256_of_db(dir: &Path) {
    let _ = verify::sha256_file(&dir.join(db::DB_FILE)).unwrap();
}

/// Reads the database file from the disk itself, bypassing the page cache (O_DIRECT): what the
/// disk can deliver. `None` where the file system refuses O_DIRECT.
fn read_db_direct(dir: &Path) -> Option<u64> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    const ALIGN: usize = 4096;
    const CHUNK: usize = 1 << 20;
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECT)
        .open(dir.join(db::DB_FILE))
        .ok()?;
    let layout = std::alloc::Layout::from_size_align(CHUNK, ALIGN).ok()?;
    // SAFETY: a non-zero-sized layout; the buffer is freed below with the same layout.
    let ptr = unsafe { std::alloc::alloc(layout) };
    if ptr.is_null() {
        return None;
    }
    // SAFETY: `ptr` points to CHUNK writable bytes owned here.
    let buf = unsafe { std::slice::from_raw_parts_mut(ptr, CHUNK) };
    let mut total = 0u64;
    let result = loop {
        match f.read(buf) {
            Ok(0) => break Some(total),
            Ok(n) => total += n as u64,
            Err(_) => break None,
        }
    };
    // SAFETY: allocated above with `layout`.
    unsafe { std::alloc::dealloc(ptr, layout) };
    result
}

/// A new store with its device key registered.
fn new_store() -> (tempfile::TempDir, DeviceKey) {
    let dir = tempfile::tempdir().unwrap();
    let mut conn = db::open(dir.path()).unwrap();
    let key = store::open_device_key(&mut conn, dir.path(), Utc::now()).unwrap();
    (dir, key)
}

/// A store of `RECORDS` records, its WAL checkpointed into the database file.
fn prepared() -> tempfile::TempDir {
    let (dir, key) = new_store();
    append_all(dir.path(), &key);
    let conn = db::open(dir.path()).unwrap();
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)").unwrap();
    dir
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("evidence");
    g.sample_size(10);
    g.throughput(Throughput::Elements(RECORDS as u64));
    g.bench_function("append 100k (1000 per tx, checkpoint per tx)", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let (dir, k) = new_store();
                let t = Instant::now();
                append_all(dir.path(), &k);
                total += t.elapsed();
            }
            total
        })
    });
    g.bench_function("reference: plain insert 100k (1000 per tx)", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let dir = tempfile::tempdir().unwrap();
                let t = Instant::now();
                plain_insert_all(dir.path());
                total += t.elapsed();
            }
            total
        })
    });
    let store_dir = prepared();
    let db_bytes = std::fs::metadata(store_dir.path().join(db::DB_FILE))
        .unwrap()
        .len();
    g.bench_function("verify 100k", |b| b.iter(|| verify_all(store_dir.path())));
    g.throughput(Throughput::Bytes(db_bytes));
    g.bench_function("reference: sha256 of the db file", |b| {
        b.iter(|| sha256_of_db(store_dir.path()))
    });
    if read_db_direct(store_dir.path()).is_some() {
        g.bench_function("reference: read the db file from disk (O_DIRECT)", |b| {
            b.iter(|| read_db_direct(store_dir.path()))
        });
    }
    g.finish();

    // The ratios, measured here side by side (median of 5).
    let time = |f: &mut dyn FnMut() -> Duration| median((0..5).map(|_| f()).collect());
    let append = time(&mut || {
        let (dir, k) = new_store();
        let t = Instant::now();
        append_all(dir.path(), &k);
        t.elapsed()
    });
    let plain = time(&mut || {
        let dir = tempfile::tempdir().unwrap();
        let t = Instant::now();
        plain_insert_all(dir.path());
        t.elapsed()
    });
    let verify = time(&mut || {
        let t = Instant::now();
        verify_all(store_dir.path());
        t.elapsed()
    });
    let sha = time(&mut || {
        let t = Instant::now();
        sha256_of_db(store_dir.path());
        t.elapsed()
    });
    let direct = read_db_direct(store_dir.path()).map(|_| {
        time(&mut || {
            let t = Instant::now();
            read_db_direct(store_dir.path());
            t.elapsed()
        })
    });
    let per_s = |d: Duration| RECORDS as f64 / d.as_secs_f64();
    let mb_s = |d: Duration| db_bytes as f64 / 1e6 / d.as_secs_f64();
    eprintln!(
        "\nevidence chain, {RECORDS} records, db file {:.1} MB",
        db_bytes as f64 / 1e6
    );
    eprintln!(
        "  append (durable, {BATCH}/tx, signed checkpoint per tx): {:>8.0} records/s  ({:.2}× the plain-insert time, {:.0} records/s)",
        per_s(append),
        append.as_secs_f64() / plain.as_secs_f64(),
        per_s(plain)
    );
    eprintln!(
        "  verify (chain, 100 signatures, index checks):           {:>8.0} records/s = {:.0} MB/s of db  ({:.1}× the time of sha256 of the db file, {:.0} MB/s)",
        per_s(verify),
        mb_s(verify),
        verify.as_secs_f64() / sha.as_secs_f64(),
        mb_s(sha)
    );
    if let Some(direct) = direct {
        eprintln!(
            "  reading the db file from the disk itself (O_DIRECT):    {:.0} MB/s  (verify takes {:.2}× that time)",
            mb_s(direct),
            verify.as_secs_f64() / direct.as_secs_f64()
        );
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
