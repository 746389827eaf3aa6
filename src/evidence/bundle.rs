//! The offline bundle (docs/evidence.md, "Bundle layout"): a session's segments, the log
//! excerpt that vouches for them, the signed checkpoints at both ends of the excerpt and the
//! device's public key, so that anyone can check the session on another machine without the
//! box's database:
//!
//! ```text
//! DIR/bundle.json        what was exported (informational: trust comes from the log)
//! DIR/log.jsonl          records c0+1 ..= c1, one JSON object per line
//! DIR/checkpoints.txt    the signed checkpoints at seq c0 (unless 0) .. c1
//! DIR/pubkey.txt         the device's public key when exported
//! DIR/README.txt         how to verify
//! DIR/video/…            the session's segment files, same relative paths as on the box
//! ```
//!
//! The excerpt is contiguous between two signed checkpoints, so nothing in between can be
//! left out or added: its first record links to the head signed at c0 (or to genesis) and its
//! last record's hash is the head signed at c1.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::check::{
    Anchor, DeviceIds, FileRef, KeyRing, Problem, ProblemKind, Rotation, check_checkpoints, check_file,
    check_records,
};
use super::checkpoint::SignedCheckpoint;
use super::key::{DeviceKey, PublicKey};
use super::log::{self, RawRecord, canonical_json, parse_sha256_hex};
use super::record::{Kind, Record};
use super::store;
use super::verify::{Report, VerifyError, safe_rel_path, sha256_file, video_files};
use crate::clock;
use crate::config::Config;

pub const FORMAT: &str = "classproof-bundle v1";
pub const MANIFEST: &str = "bundle.json";
pub const LOG: &str = "log.jsonl";
pub const CHECKPOINTS: &str = "checkpoints.txt";
pub const PUBKEY: &str = "pubkey.txt";
pub const README: &str = "README.txt";

/// Segment and gap records are appended when they end; a record for something that started
/// within the span can be this much later than the span's end.
const RECORD_SLACK_US: i64 = 86_400_000_000;

/// What to export: a time span and its cameras.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Span {
    pub session: Option<String>,
    pub from_us: i64,
    pub to_us: i64,
    pub cameras: Vec<String>,
}

/// `bundle.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub device: String,
    pub session: Option<String>,
    pub from_us: i64,
    pub to_us: i64,
    /// The span in the box's timezone, for people.
    pub from: String,
    pub to: String,
    pub cameras: Vec<String>,
    pub first_seq: i64,
    pub last_seq: i64,
    pub files: Vec<ManifestFile>,
    pub public_key: String,
    pub fingerprint: String,
    pub created: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ManifestFile {
    pub seq: i64,
    pub path: String,
    pub sha256: String,
    pub bytes: Option<u64>,
}

/// What `export` wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportSummary {
    pub first_seq: i64,
    pub last_seq: i64,
    pub records: u64,
    pub files: u64,
    pub bytes: u64,
    /// Segments of the span whose files were already deleted after the retention.
    pub pruned: u64,
    /// A checkpoint had to be signed now to cover the span's end.
    pub signed_now: bool,
}

/// The camera and time a `segment`, `gap` or face-decision record covers.
fn covers(rec: &Record) -> Option<(&str, i64, i64)> {
    match rec {
        Record::Segment(s) => Some((&s.camera, s.start_us, s.end_us)),
        Record::Gap(g) => Some((&g.camera, g.start_us, g.end_us)),
        // issue 9: a face decision on one of the span's cameras, with its snapshot.
        // issue 11: a spot check or a tamper alarm, with its room snapshot.
        r => snapshot_of(r).map(|(camera, t)| (camera, t, t + 1)),
    }
}

/// The camera and time of a record's snapshot (a face decision, issue 9; a spot check or a
/// camera tamper, issue 11).
fn snapshot_of(rec: &Record) -> Option<(&str, i64)> {
    match rec {
        Record::SpotCheck(c) => Some((c.camera.as_str(), c.to_us)),
        Record::CameraTamper(c) => Some((c.camera.as_str(), c.since_us)),
        r => r.face_vote().map(|v| (v.camera.as_str(), v.time_us)),
    }
}

fn in_span(rec: &Record, span: &Span) -> bool {
    covers(rec).is_some_and(|(camera, start, end)| {
        span.cameras.iter().any(|c| c == camera) && start < span.to_us && end > span.from_us
    })
}

/// Writes the bundle for `span` into `out` (which must not exist or be empty). `key` signs a
/// fresh checkpoint when none covers the span's end yet.
pub fn export(
    conn: &mut rusqlite::Connection,
    config: &Config,
    span: &Span,
    out: &Path,
    key: Option<&DeviceKey>,
    now: DateTime<Utc>,
) -> Result<ExportSummary, VerifyError> {
    let data_dir = config.device.data_dir.as_path();
    let device = config.device.id.as_str();
    let tz = config.device.timezone;
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| VerifyError::Io { path, source }
    };
    if out.exists() && std::fs::read_dir(out).map_err(io(out))?.next().is_some() {
        return Err(VerifyError::Bundle(format!(
            "{}: not empty; give a new directory",
            out.display()
        )));
    }
    let mut relevant: Vec<RawRecord> = Vec::new();
    // issue 9: face decisions (and their snapshots) from check-in's opening before the span to
    // the end of the check-out window after it.
    let a = &config.attendance;
    let us = |d: std::time::Duration| i64::try_from(d.as_micros()).unwrap_or(i64::MAX);
    let face_span = Span {
        session: span.session.clone(),
        from_us: span.from_us.saturating_sub(us(a.checkin_opens)),
        to_us: span.to_us.saturating_add(us(a.checkout_window)),
        cameras: span.cameras.clone(),
    };
    for kind in [
        Kind::Segment,
        Kind::Gap,
        Kind::CheckIn,
        Kind::CheckOut,
        Kind::UnexpectedPerson,
        Kind::UnknownFace,
        Kind::SpoofAttempt,
        // --- issue 11 ---
        Kind::SpotCheck,
        Kind::CameraTamper,
    ] {
        let sp = if matches!(kind, Kind::Segment | Kind::Gap) {
            span
        } else {
            &face_span
        };
        for r in log::read_raw_kind_between(conn, kind, sp.from_us, sp.to_us.saturating_add(RECORD_SLACK_US))?
        {
            if in_span(&r.record()?, sp) {
                relevant.push(r);
            }
        }
    }
    let last = log::last_seq(conn)?;
    if last == 0 {
        return Err(VerifyError::Bundle(
            "the evidence log is empty: nothing to export".into(),
        ));
    }
    let lo = relevant
        .iter()
        .map(|r| r.seq)
        .chain(log::first_seq_at_or_after(conn, span.from_us)?)
        .min()
        .unwrap_or(last);
    let hi = relevant
        .iter()
        .map(|r| r.seq)
        .chain(log::last_seq_at_or_before(conn, span.to_us)?)
        .max()
        .unwrap_or(lo);

    let mut cps: Vec<(String, SignedCheckpoint)> = store::checkpoint_texts(conn)?
        .into_iter()
        .filter_map(|(_, t)| SignedCheckpoint::parse(&t).ok().map(|c| (t, c)))
        .collect();
    // The excerpt starts after a checkpoint signed no later than the span's start: every record
    // about the span was appended after that (a segment or gap is recorded when it ends), which
    // a verifier can see from the two signed times alone.
    let c0 = cps
        .iter()
        .filter(|(_, c)| c.checkpoint.seq < lo && c.checkpoint.time_us <= span.from_us)
        .map(|(_, c)| c.checkpoint.seq)
        .max()
        .unwrap_or(0);
    let covers = |c: &SignedCheckpoint| c.checkpoint.seq >= hi && c.checkpoint.time_us >= span.to_us;
    let mut signed_now = false;
    if !cps.iter().any(|(_, c)| covers(c))
        && let Some(key) = key
    {
        let cp = store::checkpoint_now_again(conn, key, device, now)?;
        signed_now = true;
        cps.push((cp.to_text(), cp));
    }
    let c1 = cps
        .iter()
        .filter(|(_, c)| covers(c))
        .map(|(_, c)| c.checkpoint.seq)
        .min()
        .or_else(|| {
            cps.iter()
                .map(|(_, c)| c.checkpoint.seq)
                .filter(|&s| s >= hi)
                .min()
        })
        .ok_or_else(|| {
            VerifyError::Bundle(format!(
                "no signed checkpoint covers record {hi} yet; run the daemon for a minute, or export \
                 as a user who can read the device key"
            ))
        })?;

    std::fs::create_dir_all(out).map_err(io(out))?;
    let mut summary = ExportSummary {
        first_seq: c0 + 1,
        last_seq: c1,
        records: 0,
        files: 0,
        bytes: 0,
        pruned: 0,
        signed_now,
    };
    let mut manifest_files = Vec::new();
    for r in relevant.iter().filter(|r| r.file_sha256.is_some() && r.seq <= c1) {
        let Some(path) = r.file_path() else { continue };
        let Some(rel) = safe_rel_path(&path) else { continue };
        if store::file_by_seq(conn, r.seq)?.is_some_and(|f| f.pruned_seq.is_some()) {
            summary.pruned += 1;
            continue;
        }
        let dest = out.join(&rel);
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        let src = data_dir.join(&rel);
        let bytes = std::fs::copy(&src, &dest).map_err(io(&src))?;
        summary.files += 1;
        summary.bytes += bytes;
        manifest_files.push(ManifestFile {
            seq: r.seq,
            path,
            sha256: r.file_sha256.clone().unwrap_or_default(),
            bytes: Some(bytes),
        });
    }

    let mut lines = String::new();
    let mut next = c0 + 1;
    while next <= c1 {
        let batch = log::read_raw(conn, next, c1, 5_000)?;
        let Some(last_b) = batch.last() else { break };
        next = last_b.seq + 1;
        for r in &batch {
            lines.push_str(&record_line(r));
            lines.push('\n');
            summary.records += 1;
        }
    }
    write(out, LOG, &lines)?;
    let cp_text: String = cps
        .iter()
        .filter(|(_, c)| c.checkpoint.seq >= c0 && c.checkpoint.seq <= c1 && (c0 > 0 || c.checkpoint.seq > 0))
        .map(|(t, _)| format!("{t}\n"))
        .collect();
    write(out, CHECKPOINTS, &cp_text)?;

    let public = match key {
        Some(k) => Some(k.public()),
        None => store::current_fingerprint(conn)?
            .and_then(|fp| store::keys(conn).ok()?.into_iter().find(|k| k.fingerprint == fp))
            .and_then(|k| PublicKey::parse(&k.public_key).ok()),
    };
    let (pk_text, fp) = public.map_or((String::new(), String::new()), |k| (k.to_text(), k.fingerprint()));
    write(
        out,
        PUBKEY,
        &format!(
            "# classproof device {device}: the key that signed the newest checkpoint of this bundle.\n\
             # Verify with the key registered for this device, not blindly with this file.\n{pk_text}\nfingerprint {fp}\n"
        ),
    )?;
    let manifest = Manifest {
        format: FORMAT.into(),
        device: device.into(),
        session: span.session.clone(),
        from_us: span.from_us,
        to_us: span.to_us,
        from: clock::rfc3339_us(span.from_us, tz),
        to: clock::rfc3339_us(span.to_us, tz),
        cameras: span.cameras.clone(),
        first_seq: c0 + 1,
        last_seq: c1,
        files: manifest_files,
        public_key: pk_text,
        fingerprint: fp,
        created: clock::rfc3339(now, tz),
    };
    write(
        out,
        MANIFEST,
        &(serde_json::to_string_pretty(&manifest).unwrap_or_default() + "\n"),
    )?;
    write(out, README, &readme(&manifest))?;
    Ok(summary)
}

fn write(dir: &Path, name: &str, text: &str) -> Result<(), VerifyError> {
    let path = dir.join(name);
    std::fs::write(&path, text).map_err(|source| VerifyError::Io { path, source })
}

fn readme(m: &Manifest) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "Evidence bundle of classproof device {}", m.device);
    if let Some(id) = &m.session {
        let _ = writeln!(s, "session {id}");
    }
    let _ = writeln!(s, "cameras {}", m.cameras.join(", "));
    let _ = writeln!(s, "from    {}\nto      {}", m.from, m.to);
    let _ = writeln!(s, "records {}..={} of the device's log", m.first_seq, m.last_seq);
    let _ = writeln!(
        s,
        "\nTo check it on any machine (no database needed):\n\n  classproof verify --bundle . --pubkey 'ed25519:…'\n\n\
         with the public key registered for this device. The format is described in classproof's\n\
         docs/evidence.md, so it can also be checked without classproof."
    );
    s
}

/// One log line: the stored canonical payload is written verbatim, so the line reads back to
/// exactly the hashed bytes.
fn record_line(r: &RawRecord) -> String {
    format!(
        "{{\"seq\":{},\"time_us\":{},\"type\":{},\"payload\":{},\"file_sha256\":{},\"prev_hash\":\"{}\",\"hash\":\"{}\"}}",
        r.seq,
        r.time_us,
        Value::String(r.kind.clone()),
        r.payload,
        r.file_sha256
            .as_ref()
            .map_or("null".to_string(), |h| Value::String(h.clone()).to_string()),
        hex::encode(&r.prev_hash),
        hex::encode(&r.hash)
    )
}

fn parse_line(line: &str) -> Option<RawRecord> {
    let v: Value = serde_json::from_str(line).ok()?;
    let hexf = |k: &str| hex::decode(v.get(k)?.as_str()?).ok();
    Some(RawRecord {
        seq: v.get("seq")?.as_i64()?,
        time_us: v.get("time_us")?.as_i64()?,
        kind: v.get("type")?.as_str()?.to_string(),
        payload: canonical_json(v.get("payload")?),
        file_sha256: match v.get("file_sha256")? {
            Value::Null => None,
            Value::String(s) => Some(s.clone()),
            _ => return None,
        },
        prev_hash: hexf("prev_hash")?,
        hash: hexf("hash")?,
    })
}

/// What a bundle covers, beside the problems.
#[derive(Debug, Clone, Serialize)]
pub struct BundleInfo {
    pub session: Option<String>,
    pub from: String,
    pub to: String,
    pub cameras: Vec<String>,
    /// Per camera: segments and gaps within the span, and recorded seconds.
    pub coverage: BTreeMap<String, Value>,
    /// The signed checkpoints at both ends bracket the span in time, so no record about it
    /// can be missing from the excerpt.
    pub complete: bool,
}

/// Checks a bundle with the device's public key.
pub fn verify_bundle(dir: &Path, pubkey: &PublicKey) -> Result<(Report, BundleInfo), VerifyError> {
    let read = |name: &str| {
        let path = dir.join(name);
        std::fs::read_to_string(&path).map_err(|source| VerifyError::Io { path, source })
    };
    let manifest: Manifest = serde_json::from_str(&read(MANIFEST)?).map_err(|e| {
        VerifyError::Bundle(format!(
            "{}: not a bundle manifest: {e}",
            dir.join(MANIFEST).display()
        ))
    })?;
    if manifest.format != FORMAT {
        return Err(VerifyError::Bundle(format!(
            "bundle format {:?}, expected {FORMAT:?}",
            manifest.format
        )));
    }
    let mut problems = Vec::new();
    let mut records = Vec::new();
    for (n, line) in read(LOG)?.lines().enumerate() {
        match parse_line(line) {
            Some(r) => records.push(r),
            None => problems.push(Problem::new(
                ProblemKind::Modified,
                None,
                Some(LOG.into()),
                format!("line {} is not a log record", n + 1),
            )),
        }
    }
    let rotations: Vec<Rotation> = records.iter().filter_map(Rotation::from_record).collect();
    let ring = KeyRing::new(&[*pubkey], &rotations);
    let mut texts = Vec::new();
    for parsed in SignedCheckpoint::parse_many(&read(CHECKPOINTS)?) {
        match parsed {
            Ok(cp) => texts.push((Some(cp.checkpoint.seq), cp.to_text())),
            Err(e) => problems.push(Problem::new(
                ProblemKind::BadSignature,
                None,
                Some(CHECKPOINTS.into()),
                e.to_string(),
            )),
        }
    }
    let devices = DeviceIds::from_records(&manifest.device, &records);
    let (good, cp_problems) = check_checkpoints(texts, &devices, &ring);
    problems.extend(cp_problems);

    let first = records.first().map_or(manifest.first_seq, |r| r.seq);
    let last = records.last().map_or(first - 1, |r| r.seq);
    let anchor = if first <= 1 {
        Anchor::GENESIS
    } else if let Some(c) = good.iter().find(|c| c.seq == first - 1) {
        Anchor {
            seq: c.seq,
            hash: c.head,
        }
    } else {
        problems.push(Problem::new(
            ProblemKind::ChainBreak,
            Some(first),
            None,
            format!(
                "the excerpt does not start at a signed checkpoint (none at seq {})",
                first - 1
            ),
        ));
        Anchor {
            seq: first - 1,
            hash: records[0].prev_hash.clone().try_into().unwrap_or_default(),
        }
    };
    let outcome = check_records(anchor, &records, &good);
    problems.extend(outcome.problems.iter().cloned());
    if !good.iter().any(|c| c.seq == last) {
        problems.push(Problem::new(
            ProblemKind::ChainBreak,
            Some(last),
            None,
            "the excerpt's last record is not covered by a signed checkpoint",
        ));
    }

    // The span's segments must all be here, unless deleted after the retention.
    let span = Span {
        session: manifest.session.clone(),
        from_us: manifest.from_us,
        to_us: manifest.to_us,
        cameras: manifest.cameras.clone(),
    };
    let pruned: HashSet<i64> = records
        .iter()
        .filter_map(|r| match r.record() {
            Ok(Record::Pruned(p)) => Some(p.seq),
            _ => None,
        })
        .collect();
    let by_sha: HashMap<String, (i64, String)> = records
        .iter()
        .filter_map(|r| Some((r.file_sha256.clone()?, (r.seq, r.file_path()?))))
        .collect();
    let mut expected = HashSet::new();
    let mut coverage: BTreeMap<String, (u64, u64, i64)> =
        span.cameras.iter().map(|c| (c.clone(), (0, 0, 0))).collect();
    let mut files_checked = 0;
    for r in &records {
        let rec = match r.record() {
            Ok(rec) => rec,
            Err(e) => {
                if r.kind == Kind::Segment.as_str() || r.kind == Kind::Gap.as_str() {
                    problems.push(Problem::new(
                        ProblemKind::Modified,
                        Some(r.seq),
                        r.file_path(),
                        format!("the record does not read: {}", e.reason),
                    ));
                }
                continue;
            }
        };
        let Some((camera, start, end)) = covers(&rec).filter(|_| in_span(&rec, &span)) else {
            continue;
        };
        let c = coverage.entry(camera.to_string()).or_default();
        match rec {
            Record::Gap(_) => c.1 += 1,
            Record::Segment(_) => {
                c.0 += 1;
                c.2 += end.min(span.to_us) - start.max(span.from_us);
                let (Some(path), Some(sha)) =
                    (r.file_path(), r.file_sha256.as_deref().and_then(parse_sha256_hex))
                else {
                    continue;
                };
                if pruned.contains(&r.seq) {
                    continue;
                }
                let Some(full) = in_bundle(dir, r.seq, &path, &mut problems) else {
                    continue;
                };
                expected.insert(path.clone());
                files_checked += 1;
                problems.extend(check_bundle_file(full, r.seq, path, sha, &by_sha)?);
            }
            _ => {}
        }
    }
    // issue 9: the snapshots of face decisions on the span's cameras. Those inside the span
    // must be here; those in the check-in/check-out windows around it are checked when present.
    for r in &records {
        let Ok(rec) = r.record() else { continue };
        let Some((v_camera, v_time_us)) = snapshot_of(&rec) else {
            continue;
        };
        let (Some(path), Some(sha)) = (r.file_path(), r.file_sha256.as_deref().and_then(parse_sha256_hex))
        else {
            continue;
        };
        if !span.cameras.iter().any(|c| c == v_camera) || pruned.contains(&r.seq) {
            continue;
        }
        let Some(full) = in_bundle(dir, r.seq, &path, &mut problems) else {
            continue;
        };
        if !full.exists() {
            if v_time_us >= span.from_us && v_time_us <= span.to_us {
                problems.push(Problem::new(
                    ProblemKind::Missing,
                    Some(r.seq),
                    Some(path),
                    "the snapshot of a face decision of the span is not in the bundle",
                ));
            }
            continue;
        }
        files_checked += 1;
        problems.extend(check_bundle_file(full, r.seq, path, sha, &by_sha)?);
    }
    let on_disk = video_files(dir).map_err(|source| VerifyError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    for f in on_disk.into_iter().filter(|f| !expected.contains(f)) {
        problems.push(Problem::new(
            ProblemKind::Unexpected,
            None,
            Some(f),
            "a file in the bundle that no record of its span refers to",
        ));
    }

    // Complete: signed no later than the span's start at the excerpt's start, and signed no
    // earlier than the span's end at its end (several checkpoints may sign one seq).
    let first_cp_time = good
        .iter()
        .filter(|c| c.seq == first - 1)
        .map(|c| c.time_us)
        .min();
    let last_cp_time = good.iter().filter(|c| c.seq == last).map(|c| c.time_us).max();
    let complete = (first <= 1 || first_cp_time.is_some_and(|t| t <= span.from_us))
        && last_cp_time.is_some_and(|t| t >= span.to_us);
    problems.sort_by(|a, b| {
        (a.seq.unwrap_or(i64::MAX), a.kind, &a.path).cmp(&(b.seq.unwrap_or(i64::MAX), b.kind, &b.path))
    });
    problems.dedup();
    let report = Report {
        intact: problems.is_empty(),
        device: manifest.device.clone(),
        first_seq: first,
        last_seq: outcome.last_seq,
        records: outcome.records,
        checkpoints: good.len() as u64,
        checkpoints_matched: outcome.checkpoints_matched,
        unsigned_records: outcome.unsigned,
        files_checked,
        files_pruned: pruned.len() as u64,
        trusted_keys: ring.describe(),
        problems,
    };
    let info = BundleInfo {
        session: manifest.session,
        from: manifest.from,
        to: manifest.to,
        cameras: manifest.cameras,
        coverage: coverage
            .into_iter()
            .map(|(cam, (segs, gaps, us))| {
                (
                    cam,
                    json!({"segments": segs, "gaps": gaps, "recorded_s": us.max(0) as f64 / 1e6}),
                )
            })
            .collect(),
        complete,
    };
    Ok((report, info))
}

/// Where a record's file is in the bundle; `None`, with a problem, when its recorded path
/// would leave the bundle.
fn in_bundle(dir: &Path, seq: i64, path: &str, problems: &mut Vec<Problem>) -> Option<PathBuf> {
    match safe_rel_path(path) {
        Some(rel) => Some(dir.join(rel)),
        None => {
            problems.push(Problem::new(
                ProblemKind::Modified,
                Some(seq),
                Some(path.to_string()),
                "the recorded path leaves the bundle",
            ));
            None
        }
    }
}

/// Hashes a record's file in the bundle and checks it against the record (`by_sha`: which
/// record names a file of that hash, to say what a swapped file is).
fn check_bundle_file(
    full: PathBuf,
    seq: i64,
    path: String,
    sha256: [u8; 32],
    by_sha: &HashMap<String, (i64, String)>,
) -> Result<Option<Problem>, VerifyError> {
    let found = sha256_file(&full).map_err(|source| VerifyError::Io { path: full, source })?;
    let expect = FileRef { seq, path, sha256 };
    Ok(check_file(&expect, found, |h| {
        by_sha.get(&hex::encode(h)).cloned()
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_line_reads_back_to_the_hashed_bytes() {
        let r = RawRecord {
            seq: 7,
            time_us: 1_800_000_000_000_000,
            kind: Kind::Segment.as_str().into(),
            payload: canonical_json(&json!({"path": "video/a/x.mp4", "note": "课 \"q\"", "f": 0.1})),
            file_sha256: Some("ab".repeat(32)),
            prev_hash: vec![1; 32],
            hash: vec![2; 32],
        };
        assert_eq!(parse_line(&record_line(&r)).unwrap(), r);
        assert!(parse_line("{\"seq\":1}").is_none());
    }
}
