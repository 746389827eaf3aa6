//! `classproof verify --config`: checks the box's own evidence store. This file only gathers
//! data (log rows in batches, checkpoint texts, file digests, index rows) and hands it to the
//! pure checks of `evidence::check`; it never writes.
//!
//! What is checked (docs/evidence.md, "What verify checks"):
//! 1. every checkpoint parses and is signed by a trusted key of this device for its seq;
//! 2. the chain, from genesis (or from the signed checkpoint before `--from`), record by
//!    record, and at every checkpoint against the signed head;
//! 3. every file a record vouches for: present with the recorded sha256, or deleted by a
//!    `pruned` record after the retention (R6);
//! 4. the indexes built from the log agree with it: `evidence_files`, and media's `segments`
//!    and `gaps` rows (what compliance reports are computed from);
//! 5. no file under `video/` that no record vouches for (except segments being written).

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use serde::Serialize;
use thiserror::Error;

use super::check::{
    Anchor, ChainChecker, DeviceIds, FileRef, KeyRing, Problem, ProblemKind, Rotation, check_checkpoints,
    check_file, check_prune,
};
use super::key::PublicKey;
use super::log::{self, LogError, RawRecord, parse_sha256_hex};
use super::record::{Kind, Record};
use super::store::{self, FileRow, StoreError};
use crate::db::{self, DbError};
use crate::media::index::{self as media_index, Entry, SegmentState};

/// Directory of recordings inside the data dir (and inside a bundle).
pub const VIDEO_DIR: &str = "video";
const BATCH: i64 = 5_000;
/// Checkpoints looked at to find a good one just outside a `--from`/`--to` range.
const SEARCH: i64 = 100;
/// While a daemon holds the data dir, a file under `video/` modified this recently may be a
/// segment whose `recording` row is not committed yet; it is not reported as unexpected (the
/// next verify will). With no daemon running, nothing is in flight.
const IN_FLIGHT: Duration = Duration::from_secs(60);

#[derive(Debug, Error)]
pub enum VerifyError {
    #[error("{0}")]
    Db(#[from] DbError),
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Log(#[from] LogError),
    #[error("database error: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Bundle(String),
    #[error("{0}")]
    Record(#[from] super::record::RecordError),
}

/// What to check.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Only records (and their files) from this time on; the chain is checked from the signed
    /// checkpoint before it.
    pub from_us: Option<i64>,
    /// Only records up to this time; the chain is checked up to the first checkpoint after it.
    pub to_us: Option<i64>,
    /// Trust only this key (and keys it handed over to). Default: the box's first key.
    pub pubkey: Option<PublicKey>,
    /// R6, to judge `pruned` records.
    pub retention: Duration,
}

/// The outcome, as `verify --json` prints it.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub intact: bool,
    pub device: String,
    /// First and last seq checked.
    pub first_seq: i64,
    pub last_seq: i64,
    pub records: u64,
    /// Checkpoints whose signature verified.
    pub checkpoints: u64,
    /// Of those, the ones whose head was compared with the log and matched.
    pub checkpoints_matched: u64,
    /// Records after the last checkpoint (signed at the next one).
    pub unsigned_records: u64,
    pub files_checked: u64,
    pub files_pruned: u64,
    /// The keys trusted, with the seqs each may sign.
    pub trusted_keys: Vec<String>,
    pub problems: Vec<Problem>,
}

/// SHA-256 of a file, `None` if it does not exist.
pub fn sha256_file(path: &Path) -> std::io::Result<Option<[u8; 32]>> {
    let mut f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        ctx.update(&buf[..n]);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    Ok(Some(out))
}

/// A record's path as a relative path that stays inside its root (no `..`, not absolute).
pub fn safe_rel_path(p: &str) -> Option<PathBuf> {
    let path = Path::new(p);
    let ok = !p.is_empty() && path.components().all(|c| matches!(c, Component::Normal(_)));
    ok.then(|| path.to_path_buf())
}

/// Every regular file under `root/video`, as paths relative to `root` with `/` separators.
pub fn video_files(root: &Path) -> std::io::Result<Vec<String>> {
    let mut out = Vec::new();
    let mut stack = vec![root.join(VIDEO_DIR)];
    while let Some(d) = stack.pop() {
        let entries = match std::fs::read_dir(&d) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for entry in entries {
            let entry = entry?;
            let ft = entry.file_type()?;
            if ft.is_dir() {
                stack.push(entry.path());
            } else if let Ok(rel) = entry.path().strip_prefix(root) {
                out.push(rel.to_string_lossy().into_owned());
            }
        }
    }
    out.sort();
    Ok(out)
}

/// The keys a store verification trusts when no `--pubkey` is given: the box's keys that no
/// rotation introduced (normally its first key); rotations extend trust from there.
fn default_roots(conn: &rusqlite::Connection, rotations: &[Rotation]) -> Result<Vec<PublicKey>, VerifyError> {
    let rotated_in: HashSet<String> = rotations.iter().map(|r| r.new.fingerprint()).collect();
    Ok(store::keys(conn)?
        .into_iter()
        .filter(|k| !rotated_in.contains(&k.fingerprint))
        .filter_map(|k| PublicKey::parse(&k.public_key).ok())
        .collect())
}

/// Checks the evidence store in `data_dir` of device `device`.
pub fn verify_store(data_dir: &Path, device: &str, opts: &Options) -> Result<Report, VerifyError> {
    let conn = db::open_read_only(data_dir)?;
    let mut problems = Vec::new();

    let rotations: Vec<Rotation> = log::read_raw_kind(&conn, Kind::KeyRotated)?
        .iter()
        .filter_map(Rotation::from_record)
        .collect();
    let devices = DeviceIds::from_records(device, &log::read_raw_kind(&conn, Kind::DeviceIdChanged)?);
    let roots = match opts.pubkey {
        Some(k) => vec![k],
        None => default_roots(&conn, &rotations)?,
    };
    let ring = KeyRing::new(&roots, &rotations);
    // A box signs about once a minute for years: only the checkpoints of the window are read.
    let good_one = |row: (Option<i64>, String)| check_checkpoints([row], &devices, &ring).0.pop();
    let last = log::last_seq(&conn)?;
    let anchor = match opts.from_us {
        None => Anchor::GENESIS,
        Some(from) => {
            // The newest good checkpoint before the range.
            let first = log::first_seq_at_or_after(&conn, from)?.unwrap_or(last + 1);
            store::checkpoint_texts_between(&conn, 0, first - 1, true, SEARCH)?
                .into_iter()
                .find_map(good_one)
                .map_or(Anchor::GENESIS, |c| Anchor {
                    seq: c.seq,
                    hash: c.head,
                })
        }
    };
    let end = match opts.to_us {
        None => last,
        Some(to) => {
            // The first good checkpoint after the range.
            let l = log::last_seq_at_or_before(&conn, to)?.unwrap_or(anchor.seq);
            store::checkpoint_texts_between(&conn, l, last, false, SEARCH)?
                .into_iter()
                .find_map(good_one)
                .map_or(last, |c| c.seq)
                .clamp(anchor.seq, last)
        }
    };
    // Checkpoints past the window are compared only when the window reaches the log's end,
    // where one past it means the log was truncated.
    let upto = if end == last { i64::MAX } else { end };
    let (cps, cp_problems) = check_checkpoints(
        store::checkpoint_texts_between(&conn, anchor.seq, upto, false, i64::MAX)?,
        &devices,
        &ring,
    );
    problems.extend(cp_problems);

    let in_time = |t: i64| opts.from_us.is_none_or(|f| t >= f) && opts.to_us.is_none_or(|to| t <= to);
    let mut files = FileChecks::new(data_dir, opts.retention);
    let mut index = IndexChecks::default();
    let lookup = |h: &[u8]| log::seq_of_hash(&conn, h).ok().flatten();
    let mut chain = ChainChecker::new(anchor, &cps, lookup);
    // Reading rows (SQLite) and checking them (hashing, files, indexes) overlap: a second
    // read-only connection reads the next batch while this thread checks the current one.
    let (tx, rx) = std::sync::mpsc::sync_channel::<Result<(Vec<RawRecord>, Vec<FileRow>), VerifyError>>(2);
    std::thread::scope(|scope| -> Result<(), VerifyError> {
        scope.spawn(move || {
            let read = || -> Result<(), VerifyError> {
                let conn = db::open_read_only(data_dir)?;
                let mut next = anchor.seq + 1;
                while next <= end {
                    let batch = log::read_raw(&conn, next, end, BATCH)?;
                    let (Some(first), Some(last_b)) =
                        (batch.first().map(|r| r.seq), batch.last().map(|r| r.seq))
                    else {
                        break;
                    };
                    let rows = store::file_rows(&conn, first, last_b)?;
                    next = last_b + 1;
                    if tx.send(Ok((batch, rows))).is_err() {
                        break; // the checker stopped on an error
                    }
                }
                Ok(())
            };
            if let Err(e) = read() {
                let _ = tx.send(Err(e));
            }
        });
        // Owned here, so that an early return drops it and unblocks the reader.
        let rx = rx;
        for msg in rx.iter() {
            let (batch, rows) = msg?;
            let mut rows: HashMap<i64, FileRow> = rows.into_iter().map(|r| (r.seq, r)).collect();
            for r in &batch {
                chain.push(r);
                let row = rows.remove(&r.seq);
                if r.file_sha256.is_none() || r.file_path().is_none() {
                    if let Some(row) = row {
                        problems.push(Problem::new(
                            ProblemKind::Unexpected,
                            Some(r.seq),
                            Some(row.path),
                            "a retention-index row for a record that names no file",
                        ));
                    }
                } else if in_time(r.time_us) {
                    files.record(&conn, r, row, &mut problems)?;
                } else if row.is_none() {
                    problems.push(Problem::new(
                        ProblemKind::Modified,
                        Some(r.seq),
                        r.file_path(),
                        "the retention index has no row for this file record",
                    ));
                }
                if in_time(r.time_us) {
                    index.record(&conn, r, &mut problems)?;
                }
            }
            for (seq, row) in rows {
                problems.push(Problem::new(
                    ProblemKind::Unexpected,
                    Some(seq),
                    Some(row.path),
                    "a retention-index row for a record that names no file",
                ));
            }
        }
        Ok(())
    })?;
    let outcome = chain.finish();
    problems.extend(outcome.problems);
    if end == last {
        // Index rows of records past the log's end: records removed from the end.
        for row in store::file_rows(&conn, last + 1, i64::MAX)? {
            problems.push(Problem::new(
                ProblemKind::Unexpected,
                Some(row.seq),
                Some(row.path),
                format!(
                    "a retention-index row for record {}, which is not in the log",
                    row.seq
                ),
            ));
        }
    }
    index.finish(&conn, opts, &mut problems)?;
    unexpected_files(&conn, data_dir, last, &mut problems)?;

    problems.sort_by(|a, b| {
        (a.seq.unwrap_or(i64::MAX), a.kind, &a.path).cmp(&(b.seq.unwrap_or(i64::MAX), b.kind, &b.path))
    });
    problems.dedup();
    Ok(Report {
        intact: problems.is_empty(),
        device: device.to_string(),
        first_seq: anchor.seq + 1,
        last_seq: outcome.last_seq,
        records: outcome.records,
        checkpoints: cps.len() as u64,
        checkpoints_matched: outcome.checkpoints_matched,
        unsigned_records: outcome.unsigned,
        files_checked: files.checked,
        files_pruned: files.pruned,
        trusted_keys: ring.describe(),
        problems,
    })
}

/// File checks of a store.
struct FileChecks<'a> {
    data_dir: &'a Path,
    retention: Duration,
    checked: u64,
    pruned: u64,
}

impl<'a> FileChecks<'a> {
    fn new(data_dir: &'a Path, retention: Duration) -> Self {
        FileChecks {
            data_dir,
            retention,
            checked: 0,
            pruned: 0,
        }
    }

    fn record(
        &mut self,
        conn: &rusqlite::Connection,
        r: &RawRecord,
        row: Option<FileRow>,
        problems: &mut Vec<Problem>,
    ) -> Result<(), VerifyError> {
        let (Some(path), Some(sha)) = (r.file_path(), r.file_sha256.as_deref()) else {
            return Ok(());
        };
        let Some(sha) = parse_sha256_hex(sha) else {
            return Ok(()); // the chain check reports the record as modified
        };
        let Some(rel) = safe_rel_path(&path) else {
            problems.push(Problem::new(
                ProblemKind::Modified,
                Some(r.seq),
                Some(path),
                "the recorded path leaves the data dir",
            ));
            return Ok(());
        };
        match &row {
            None => problems.push(Problem::new(
                ProblemKind::Modified,
                Some(r.seq),
                Some(path.clone()),
                "the retention index has no row for this file record",
            )),
            Some(row) if row.path != path || parse_sha256_hex(&row.sha256) != Some(sha) => {
                problems.push(Problem::new(
                    ProblemKind::Modified,
                    Some(r.seq),
                    Some(path.clone()),
                    format!("the retention index row names {} {}", row.path, row.sha256),
                ))
            }
            Some(_) => {}
        }
        let expect = FileRef {
            seq: r.seq,
            path: path.clone(),
            sha256: sha,
        };
        if let Some(pseq) = row.as_ref().and_then(|row| row.pruned_seq) {
            self.pruned += 1;
            problems.extend(self.check_pruned(conn, &expect, r, pseq)?);
            return Ok(());
        }
        self.checked += 1;
        let full = self.data_dir.join(rel);
        let found = sha256_file(&full).map_err(|source| VerifyError::Io { path: full, source })?;
        if found.is_none() {
            // Pruned while we were reading?
            if let Some(pseq) = store::file_by_seq(conn, r.seq)?.and_then(|f| f.pruned_seq) {
                self.pruned += 1;
                problems.extend(self.check_pruned(conn, &expect, r, pseq)?);
                return Ok(());
            }
        }
        let recorded_for = |h: &[u8; 32]| {
            store::files_by_sha256(conn, &hex::encode(h))
                .ok()?
                .into_iter()
                .find(|f| f.path != path)
                .map(|f| (f.seq, f.path))
        };
        problems.extend(check_file(&expect, found, recorded_for));
        Ok(())
    }

    /// The `pruned` record that deleted the file must name it and come after the retention.
    fn check_pruned(
        &self,
        conn: &rusqlite::Connection,
        file: &FileRef,
        r: &RawRecord,
        pseq: i64,
    ) -> Result<Option<Problem>, VerifyError> {
        let pruned = log::read_raw(conn, pseq, pseq, 1)?.into_iter().next();
        let names_it = pruned
            .as_ref()
            .is_some_and(|p| matches!(p.record(), Ok(Record::Pruned(p)) if p.seq == file.seq));
        match pruned {
            Some(p) if names_it => {
                let file_time = store::file_by_seq(conn, file.seq)?.map_or(r.time_us, |f| f.time_us);
                Ok(check_prune(pseq, file, file_time, p.time_us, self.retention))
            }
            _ => Ok(Some(Problem::new(
                ProblemKind::Missing,
                Some(file.seq),
                Some(file.path.clone()),
                format!("marked as deleted by record {pseq}, which is not a `pruned` record for it"),
            ))),
        }
    }
}

/// Checks of media's index (`segments`, `gaps`) against the records that vouch for its rows:
/// compliance reports are computed from those rows, so an edited, deleted or invented row is
/// evidence tampering too.
#[derive(Default)]
struct IndexChecks {
    segments_matched: u64,
    gap_keys: HashSet<(String, i64, i64)>,
}

impl IndexChecks {
    fn record(
        &mut self,
        conn: &rusqlite::Connection,
        r: &RawRecord,
        problems: &mut Vec<Problem>,
    ) -> Result<(), VerifyError> {
        if r.kind != Kind::Segment.as_str() && r.kind != Kind::Gap.as_str() {
            return Ok(()); // only these have index rows (and parsing every payload is slow)
        }
        let rec = match r.record() {
            Ok(rec) => rec,
            Err(e) => {
                problems.push(Problem::new(
                    ProblemKind::Modified,
                    Some(r.seq),
                    r.file_path(),
                    format!("the record does not read: {}", e.reason),
                ));
                return Ok(());
            }
        };
        match rec {
            Record::Segment(seg) => {
                let Some(row) = media_index::segment_by_path(conn, Path::new(&seg.path))? else {
                    problems.push(Problem::new(
                        ProblemKind::Missing,
                        Some(r.seq),
                        Some(seg.path),
                        "the segments index has no row for this segment (it is hidden from reports)",
                    ));
                    return Ok(());
                };
                self.segments_matched += 1;
                let mut diffs = Vec::new();
                let mut cmp = |name: &str, recorded: String, row: String| {
                    if recorded != row {
                        diffs.push(format!("{name} {row} (recorded {recorded})"));
                    }
                };
                let show = |x: Option<i64>| x.map_or("null".to_string(), |x| x.to_string());
                cmp("camera", seg.camera.clone(), row.camera.clone());
                cmp("start_us", seg.start_us.to_string(), row.start_us.to_string());
                cmp("end_us", seg.end_us.to_string(), show(row.end_us));
                cmp("bytes", seg.bytes.to_string(), show(row.bytes.map(|b| b as i64)));
                cmp(
                    "sha256",
                    seg.sha256.clone(),
                    row.sha256.clone().unwrap_or_default(),
                );
                cmp(
                    "state",
                    seg.state.as_str().to_string(),
                    row.state.as_str().to_string(),
                );
                if !diffs.is_empty() {
                    problems.push(Problem::new(
                        ProblemKind::Modified,
                        Some(r.seq),
                        Some(seg.path),
                        format!(
                            "the segments index row differs from its record: {}",
                            diffs.join(", ")
                        ),
                    ));
                }
            }
            Record::Gap(gap) => {
                let (camera, start, end, cause) = (gap.camera, gap.start_us, gap.end_us, gap.cause);
                self.gap_keys.insert((camera.clone(), start, end));
                let rows = media_index::gaps_starting_at(conn, &camera, start)?;
                if rows.iter().any(|g| g.end_us == Some(end) && g.cause == cause) {
                    return Ok(());
                }
                let detail = match rows.first() {
                    Some(g) => format!(
                        "the gaps index row of camera {camera} differs from its record: ends {} cause {} (recorded {end} {cause})",
                        g.end_us.map_or("open".into(), |e| e.to_string()),
                        g.cause
                    ),
                    None => format!(
                        "the gaps index has no row for this gap of camera {camera} (it is hidden from reports)"
                    ),
                };
                let kind = if rows.is_empty() {
                    ProblemKind::Missing
                } else {
                    ProblemKind::Modified
                };
                problems.push(Problem::new(kind, Some(r.seq), None, detail));
            }
            _ => {}
        }
        Ok(())
    }

    /// Rows no record vouches for: counted, and only listed when the count says there are some.
    fn finish(
        &self,
        conn: &rusqlite::Connection,
        opts: &Options,
        problems: &mut Vec<Problem>,
    ) -> Result<(), VerifyError> {
        let from = opts.from_us.unwrap_or(i64::MIN);
        let to = opts.to_us.unwrap_or(i64::MAX);
        let (segments, gaps) = media_index::count_finished(conn, from, to)?;
        if segments <= self.segments_matched && gaps <= self.gap_keys.len() as u64 {
            return Ok(());
        }
        for e in media_index::timeline(conn, None, opts.from_us, opts.to_us)? {
            match e {
                Entry::Segment(s)
                    if s.state != SegmentState::Recording
                        && s.end_us.is_some_and(|e| e >= from && e <= to) =>
                {
                    let path = s.path.to_string_lossy().into_owned();
                    let vouched = store::files_by_path(conn, &path)?.iter().any(|f| {
                        log::read_raw(conn, f.seq, f.seq, 1)
                            .ok()
                            .and_then(|r| r.into_iter().next())
                            .is_some_and(|r| r.kind == Kind::Segment.as_str())
                    });
                    if !vouched {
                        problems.push(Problem::new(
                            ProblemKind::Unexpected,
                            None,
                            Some(path),
                            "a segments index row that no record vouches for",
                        ));
                    }
                }
                Entry::Gap(g) => {
                    if let Some(end) = g.end_us.filter(|e| *e >= from && *e <= to)
                        && !self.gap_keys.contains(&(g.camera.clone(), g.start_us, end))
                    {
                        problems.push(Problem::new(
                            ProblemKind::Unexpected,
                            None,
                            None,
                            format!(
                                "a gaps index row of camera {} ({}..{} {}) that no record vouches for",
                                g.camera, g.start_us, end, g.cause
                            ),
                        ));
                    }
                }
                Entry::Segment(_) => {}
            }
        }
        Ok(())
    }
}

/// Files under `video/` that no record refers to (segments being written excepted).
fn unexpected_files(
    conn: &rusqlite::Connection,
    data_dir: &Path,
    last_seq: i64,
    problems: &mut Vec<Problem>,
) -> Result<(), VerifyError> {
    let files = video_files(data_dir).map_err(|source| VerifyError::Io {
        path: data_dir.join(VIDEO_DIR),
        source,
    })?;
    let now = std::time::SystemTime::now();
    // Only a running daemon writes segments; without one, nothing is in flight.
    let daemon = daemon_holds(data_dir);
    for rel in files {
        if store::files_by_path(conn, &rel)?
            .iter()
            .any(|f| f.seq <= last_seq)
        {
            continue;
        }
        // A segment the recorder has just created: its row follows within moments.
        let fresh = daemon
            && std::fs::metadata(data_dir.join(&rel))
                .and_then(|m| m.modified())
                .is_ok_and(|t| now.duration_since(t).unwrap_or_default() < IN_FLIGHT);
        if fresh {
            continue;
        }
        let recording = media_index::segment_by_path(conn, Path::new(&rel))?
            .is_some_and(|s| s.state == SegmentState::Recording);
        if !recording {
            problems.push(Problem::new(
                ProblemKind::Unexpected,
                None,
                Some(rel),
                "a file under video/ that no record refers to",
            ));
        }
    }
    Ok(())
}

/// True while a daemon holds the data dir's lock (`daemon::LOCK_FILE`, flock). Tested with a
/// non-blocking shared lock, released at once; the lock file is only opened for reading.
pub fn daemon_holds(data_dir: &Path) -> bool {
    use std::os::fd::AsRawFd;
    let Ok(file) = std::fs::File::open(data_dir.join(crate::daemon::LOCK_FILE)) else {
        return false; // no lock file: no daemon ever ran here
    };
    // SAFETY: flock(2) on a file descriptor we own; closing it releases the lock.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_SH | libc::LOCK_NB) };
    rc != 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EWOULDBLOCK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_inside() {
        assert!(safe_rel_path("video/a/2026-01-01/x.mp4").is_some());
        assert!(safe_rel_path("../etc/passwd").is_none());
        assert!(safe_rel_path("/etc/passwd").is_none());
        assert!(safe_rel_path("video/../../x").is_none());
        assert!(safe_rel_path("").is_none());
    }
}

#[cfg(test)]
mod grace_tests {
    use super::*;

    /// Issue 8, item 4: a fresh unreferenced file gets its minute of grace only while a daemon
    /// holds the data dir.
    #[test]
    fn a_planted_file_is_unexpected_at_once_when_no_daemon_runs() {
        let dir = tempfile::tempdir().unwrap();
        let conn = db::open(dir.path()).unwrap();
        drop(conn);
        let rel = "video/front/2026-12-01/planted.mp4";
        std::fs::create_dir_all(dir.path().join("video/front/2026-12-01")).unwrap();
        std::fs::write(dir.path().join(rel), b"not a segment").unwrap();
        let conn = db::open_read_only(dir.path()).unwrap();
        let found = |conn: &rusqlite::Connection| {
            let mut problems = Vec::new();
            unexpected_files(conn, dir.path(), 0, &mut problems).unwrap();
            problems
        };
        assert!(!daemon_holds(dir.path()));
        let p = found(&conn);
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(
            (p[0].kind, p[0].path.as_deref()),
            (ProblemKind::Unexpected, Some(rel))
        );
        // The daemon's own lock: the same file is in flight.
        let lock = crate::daemon::lock_data_dir(dir.path()).unwrap();
        assert!(daemon_holds(dir.path()));
        assert!(found(&conn).is_empty());
        drop(lock);
        assert!(!daemon_holds(dir.path()));
        assert_eq!(found(&conn).len(), 1);
    }
}
