//! Checking evidence: pure functions over records, hashes, keys and file digests, with no
//! database and no file system, so that every tampering case is a unit test (as Go's
//! `sumdb/tlog` keeps `CheckRecord`/`CheckTree` apart from the proving side). `verify` and
//! `bundle` gather the data and call these.
//!
//! Problems name what they found with one of six kinds (docs/evidence.md, "What verify
//! reports"): `modified`, `missing`, `unexpected`, `chain_break`, `bad_signature`,
//! `reordered`.

use std::collections::{BTreeSet, HashMap};
use std::fmt;

use serde::Serialize;

use super::checkpoint::{Checkpoint, SignedCheckpoint};
use super::key::PublicKey;
use super::log::{GENESIS, RawRecord};
use super::record::Record;

/// What is wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    /// A record, an index row or a file does not match what was recorded.
    Modified,
    /// Something recorded is gone: a file, or records the log or a checkpoint vouches for.
    Missing,
    /// Something no record vouches for: a file, an index row, or a record inside the chain.
    Unexpected,
    /// A record does not link to its predecessor, or the log differs from a signed head.
    ChainBreak,
    /// A checkpoint that is malformed or not signed by a trusted device key.
    BadSignature,
    /// Records out of order, or a file holding the content recorded for another file.
    Reordered,
}

impl ProblemKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ProblemKind::Modified => "modified",
            ProblemKind::Missing => "missing",
            ProblemKind::Unexpected => "unexpected",
            ProblemKind::ChainBreak => "chain_break",
            ProblemKind::BadSignature => "bad_signature",
            ProblemKind::Reordered => "reordered",
        }
    }
}

/// One finding, with the evidence that locates it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub kind: ProblemKind,
    /// The log record concerned, if any.
    pub seq: Option<i64>,
    /// The file concerned (relative to the data dir or the bundle), if any.
    pub path: Option<String>,
    /// What exactly differs, for a human.
    pub detail: String,
}

impl Problem {
    pub fn new(
        kind: ProblemKind,
        seq: Option<i64>,
        path: Option<String>,
        detail: impl Into<String>,
    ) -> Problem {
        Problem {
            kind,
            seq,
            path,
            detail: detail.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:<13}", self.kind.as_str())?;
        if let Some(s) = self.seq {
            write!(f, " seq {s}")?;
        }
        if let Some(p) = &self.path {
            write!(f, " {p}")?;
        }
        write!(f, ": {}", self.detail)
    }
}

/// Where a checked stretch of the log starts: right after record `seq`, whose hash is `hash`
/// (seq 0 and [`GENESIS`] for the whole log; a signed checkpoint's head for an excerpt).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Anchor {
    pub seq: i64,
    pub hash: [u8; 32],
}

impl Anchor {
    pub const GENESIS: Anchor = Anchor {
        seq: 0,
        hash: GENESIS,
    };
}

/// What a chain check saw.
#[derive(Debug, Clone, Default)]
pub struct ChainOutcome {
    pub problems: Vec<Problem>,
    pub records: u64,
    /// Seq and stored hash of the last record checked (the anchor if none).
    pub last_seq: i64,
    /// Records after the last checkpoint that covers them (not signed yet).
    pub unsigned: u64,
    /// Checkpoint heads that matched the log.
    pub checkpoints_matched: u64,
}

/// Checks a contiguous run of records, fed in stored order, against its anchor and against
/// signed checkpoints (whose signatures the caller has already checked). `lookup` finds the
/// seq of the record whose stored hash is given: it is asked only when a link is broken, to
/// tell a reordering or an insertion from a plain break.
///
/// Localisation rules (each tested below):
/// - a record whose fields do not give its stored hash: `modified`;
/// - a seq that skips numbers: `missing` (the skipped seqs);
/// - a link to a later record, or to an earlier one past a moved record: `reordered`;
/// - a link that skips records (nothing moved): those records are `unexpected` (inserted);
/// - a link to no record at all: `chain_break`;
/// - every record self-consistent and linked, but the head at a checkpoint's seq differs from
///   the signed head: `chain_break` at that seq (history rewritten and re-hashed);
/// - a checkpoint beyond the last record: `missing` (the log was truncated).
pub struct ChainChecker<L: FnMut(&[u8]) -> Option<i64>> {
    lookup: L,
    prev_seq: i64,
    prev_hash: Vec<u8>,
    /// Checkpoints not reached yet, by seq descending (pop from the end).
    pending: Vec<Checkpoint>,
    /// Highest checkpoint seq reached so far.
    signed_up_to: i64,
    /// A problem was found since the last checkpoint: a head mismatch there is explained.
    dirty: bool,
    /// Records known to be out of place (reported, or following one in an intact run).
    moved: BTreeSet<i64>,
    out: ChainOutcome,
}

impl<L: FnMut(&[u8]) -> Option<i64>> ChainChecker<L> {
    pub fn new(anchor: Anchor, checkpoints: &[Checkpoint], lookup: L) -> Self {
        let mut pending: Vec<Checkpoint> = checkpoints
            .iter()
            .filter(|c| c.seq >= anchor.seq)
            .cloned()
            .collect();
        pending.sort_by_key(|c| std::cmp::Reverse(c.seq));
        let mut c = ChainChecker {
            lookup,
            prev_seq: anchor.seq,
            prev_hash: anchor.hash.to_vec(),
            pending,
            signed_up_to: anchor.seq,
            dirty: false,
            moved: BTreeSet::new(),
            out: ChainOutcome {
                last_seq: anchor.seq,
                ..ChainOutcome::default()
            },
        };
        c.reach(anchor.seq, &anchor.hash);
        c
    }

    fn problem(&mut self, p: Problem) {
        self.dirty = true;
        self.out.problems.push(p);
    }

    /// Compares the stored hash at `seq` with every checkpoint signed at `seq`.
    fn reach(&mut self, seq: i64, hash: &[u8]) {
        while self.pending.last().is_some_and(|c| c.seq < seq) {
            // A checkpoint for a seq this run skipped (already reported as missing records).
            self.pending.pop();
        }
        while self.pending.last().is_some_and(|c| c.seq == seq) {
            let Some(cp) = self.pending.pop() else { break };
            if cp.head[..] == *hash {
                self.out.checkpoints_matched += 1;
            } else if !self.dirty {
                self.out.problems.push(Problem::new(
                    ProblemKind::ChainBreak,
                    Some(seq),
                    None,
                    format!(
                        "the log's hash at seq {seq} differs from the head signed in the checkpoint of {}: \
                         records {}..={seq} were rewritten and re-hashed",
                        checkpoint_time(&cp),
                        self.signed_up_to + 1
                    ),
                ));
            }
            self.signed_up_to = seq;
            self.dirty = false;
        }
    }

    /// Checks the next record.
    pub fn push(&mut self, r: &RawRecord) {
        self.out.records += 1;
        let mut skipped = false;
        if r.seq > self.prev_seq + 1 {
            skipped = true;
            self.problem(Problem::new(
                ProblemKind::Missing,
                Some(self.prev_seq + 1),
                None,
                if r.seq - 1 == self.prev_seq + 1 {
                    format!("record {} is missing from the log", r.seq - 1)
                } else {
                    format!(
                        "records {}..={} are missing from the log",
                        self.prev_seq + 1,
                        r.seq - 1
                    )
                },
            ));
        } else if r.seq <= self.prev_seq {
            self.moved.insert(r.seq);
            self.problem(Problem::new(
                ProblemKind::Reordered,
                Some(r.seq),
                None,
                format!("seq {} comes after seq {}", r.seq, self.prev_seq),
            ));
        }
        if r.recompute().is_none_or(|h| h[..] != r.hash[..]) {
            self.problem(Problem::new(
                ProblemKind::Modified,
                Some(r.seq),
                r.file_path(),
                format!("the {} record's content does not match its hash", r.kind),
            ));
        }
        if r.prev_hash != self.prev_hash {
            if !skipped {
                self.explain_link(r);
            }
        } else if self.moved.contains(&self.prev_seq) {
            // Intact link inside a moved run: part of the same reordering.
            self.moved.insert(r.seq);
        }
        self.prev_seq = r.seq;
        self.prev_hash.clone_from(&r.hash);
        self.out.last_seq = r.seq;
        self.reach(r.seq, &r.hash);
    }

    fn explain_link(&mut self, r: &RawRecord) {
        let seq = r.seq;
        match (self.lookup)(&r.prev_hash) {
            Some(j) if j >= seq => {
                self.moved.insert(seq);
                self.problem(Problem::new(
                    ProblemKind::Reordered,
                    Some(seq),
                    r.file_path(),
                    format!("links to record {j}, which comes after it"),
                ));
            }
            Some(j) if j < seq - 1 => {
                if self.moved.contains(&j) {
                    // Its true predecessor was moved away: already reported.
                } else if self.moved.range(j + 1..seq).next().is_some() {
                    self.moved.insert(seq);
                    self.problem(Problem::new(
                        ProblemKind::Reordered,
                        Some(seq),
                        r.file_path(),
                        format!("links to record {j}, not to record {}", seq - 1),
                    ));
                } else {
                    self.problem(Problem::new(
                        ProblemKind::Unexpected,
                        Some(j + 1),
                        None,
                        if j + 1 == seq - 1 {
                            format!("record {} is not in the chain (inserted: record {seq} links to {j})", j + 1)
                        } else {
                            format!(
                                "records {}..={} are not in the chain (inserted: record {seq} links to {j})",
                                j + 1,
                                seq - 1
                            )
                        },
                    ));
                }
            }
            _ => self.problem(Problem::new(
                ProblemKind::ChainBreak,
                Some(seq),
                None,
                format!(
                    "does not link to record {}: that record was rewritten, or records before {seq} were removed",
                    seq - 1
                ),
            )),
        }
    }

    pub fn finish(mut self) -> ChainOutcome {
        if let Some(cp) = self.pending.first().cloned() {
            // `pending` is sorted descending: the first is the furthest checkpoint.
            self.out.problems.push(Problem::new(
                ProblemKind::Missing,
                Some(self.out.last_seq + 1),
                None,
                format!(
                    "the log ends at seq {} but the checkpoint of {} was signed at seq {}: records {}..={} were removed",
                    self.out.last_seq,
                    checkpoint_time(&cp),
                    cp.seq,
                    self.out.last_seq + 1,
                    cp.seq
                ),
            ));
        }
        self.out.unsigned = (self.out.last_seq - self.signed_up_to).max(0) as u64;
        self.out
    }
}

fn checkpoint_time(cp: &Checkpoint) -> String {
    chrono::DateTime::from_timestamp_micros(cp.time_us)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_else(|| cp.time_us.to_string())
}

/// Checks a whole run of records held in memory (bundles, tests).
pub fn check_records(anchor: Anchor, records: &[RawRecord], checkpoints: &[Checkpoint]) -> ChainOutcome {
    let by_hash: HashMap<&[u8], i64> = records.iter().map(|r| (r.hash.as_slice(), r.seq)).collect();
    let mut c = ChainChecker::new(anchor, checkpoints, |h: &[u8]| by_hash.get(h).copied());
    for r in records {
        c.push(r);
    }
    c.finish()
}

/// A key rotation found in the log: from record `seq` on, `new` signs instead of the key
/// with fingerprint `old`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotation {
    pub seq: i64,
    pub old: String,
    pub new: PublicKey,
}

impl Rotation {
    /// Reads a `key_rotated` record (`None` if it is not one, or malformed).
    pub fn from_record(r: &RawRecord) -> Option<Rotation> {
        let Ok(Record::KeyRotated(k)) = r.record() else {
            return None;
        };
        Some(Rotation {
            seq: r.seq,
            old: k.old_fingerprint,
            new: PublicKey::parse(&k.new_public_key).ok()?,
        })
    }
}

/// The `[device] id` each checkpoint must name: the id in effect at its seq. A
/// `device_id_changed` record at seq `c` starts `new_id`; checkpoints before it were signed
/// under its `old_id` (issue 8, item 6: renaming a box keeps its history verifiable).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceIds {
    current: String,
    /// (seq, old id, new id), by seq.
    changes: Vec<(i64, String, String)>,
}

impl DeviceIds {
    /// Only one id, ever.
    pub fn single(current: &str) -> DeviceIds {
        DeviceIds {
            current: current.to_string(),
            changes: Vec::new(),
        }
    }

    /// `current` (the id checked for when no change record says otherwise) and the
    /// `device_id_changed` records among `records` (others, and unreadable ones, are skipped:
    /// the chain check reports those).
    pub fn from_records(current: &str, records: &[RawRecord]) -> DeviceIds {
        let mut changes: Vec<(i64, String, String)> = records
            .iter()
            .filter_map(|r| match r.record() {
                Ok(Record::DeviceIdChanged(c)) => Some((r.seq, c.old_id, c.new_id)),
                _ => None,
            })
            .collect();
        changes.sort();
        DeviceIds {
            current: current.to_string(),
            changes,
        }
    }

    /// The id a checkpoint of `seq` must name.
    pub fn at(&self, seq: i64) -> &str {
        match self.changes.iter().rev().find(|c| c.0 <= seq) {
            Some(c) => &c.2,
            None => self.changes.first().map_or(&self.current, |c| &c.1),
        }
    }
}

/// The keys trusted to sign checkpoints, each for a range of seqs: the roots the verifier
/// was given (or the box's first key), then every key a trusted key handed over to in a
/// `key_rotated` record. A retired key is trusted only up to its rotation record, so a leaked
/// old key cannot sign new history.
#[derive(Debug, Clone)]
pub struct KeyRing {
    keys: Vec<(PublicKey, i64, Option<i64>)>,
}

impl KeyRing {
    pub fn new(roots: &[PublicKey], rotations: &[Rotation]) -> KeyRing {
        let mut keys: Vec<(PublicKey, i64, Option<i64>)> = roots.iter().map(|k| (*k, 0, None)).collect();
        let mut rotations = rotations.to_vec();
        rotations.sort_by_key(|r| r.seq);
        for r in &rotations {
            let trusted = keys.iter_mut().find(|(k, from, to)| {
                k.fingerprint() == r.old && *from <= r.seq && to.is_none_or(|t| r.seq <= t)
            });
            if let Some(old) = trusted {
                old.2 = Some(r.seq);
                keys.push((r.new, r.seq, None));
            }
        }
        KeyRing { keys }
    }

    /// Fingerprints with their trusted seq ranges, for the report.
    pub fn describe(&self) -> Vec<String> {
        self.keys
            .iter()
            .map(|(k, from, to)| match to {
                Some(to) => format!("{} (seq {from}..={to})", k.fingerprint()),
                None => format!("{} (seq {from}..)", k.fingerprint()),
            })
            .collect()
    }

    /// Checks one checkpoint: device, trusted key for its seq, signature.
    pub fn check(&self, cp: &SignedCheckpoint, device: &str) -> Result<(), String> {
        if cp.checkpoint.device != device {
            return Err(format!(
                "signed for device {:?}, not {device:?}",
                cp.checkpoint.device
            ));
        }
        let seq = cp.checkpoint.seq;
        let Some((key, from, to)) = self
            .keys
            .iter()
            .find(|(k, _, _)| k.fingerprint() == cp.key_fingerprint)
        else {
            return Err(format!(
                "signed by key {}, which is not a trusted key of this device",
                cp.key_fingerprint
            ));
        };
        if seq < *from || to.is_some_and(|t| seq > t) {
            return Err(format!(
                "signed by key {} for seq {seq}, outside the seqs that key may sign",
                cp.key_fingerprint
            ));
        }
        if !cp.verify(key) {
            return Err(format!(
                "the signature by key {} does not verify",
                cp.key_fingerprint
            ));
        }
        Ok(())
    }
}

/// Checks stored checkpoint texts; returns the good ones (sorted by seq) and a problem per bad
/// one. `texts` are `(seq as stored beside the text, text)`.
pub fn check_checkpoints(
    texts: impl IntoIterator<Item = (Option<i64>, String)>,
    devices: &DeviceIds,
    keys: &KeyRing,
) -> (Vec<Checkpoint>, Vec<Problem>) {
    let mut good: Vec<Checkpoint> = Vec::new();
    let mut problems = Vec::new();
    for (stored_seq, text) in texts {
        match SignedCheckpoint::parse(&text) {
            Err(e) => problems.push(Problem::new(
                ProblemKind::BadSignature,
                stored_seq,
                None,
                e.to_string(),
            )),
            Ok(cp) => match keys.check(&cp, devices.at(cp.checkpoint.seq)) {
                Err(why) => problems.push(Problem::new(
                    ProblemKind::BadSignature,
                    Some(cp.checkpoint.seq),
                    None,
                    format!("checkpoint: {why}"),
                )),
                Ok(()) => good.push(cp.checkpoint),
            },
        }
    }
    good.sort_by_key(|c| (c.seq, c.time_us));
    // Two validly signed heads for one seq: the device signed two histories (a fork).
    for w in good.windows(2) {
        if w[0].seq == w[1].seq && w[0].head != w[1].head {
            problems.push(Problem::new(
                ProblemKind::ChainBreak,
                Some(w[0].seq),
                None,
                "two signed checkpoints give different heads for the same seq (the log was forked)",
            ));
        }
    }
    (good, problems)
}

/// A file a record vouches for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRef {
    pub seq: i64,
    pub path: String,
    pub sha256: [u8; 32],
}

/// Checks one file against its record: `found` is the file's sha256, `None` if it is absent.
/// `recorded_for` names another record whose file has this content (for swapped files).
pub fn check_file(
    expect: &FileRef,
    found: Option<[u8; 32]>,
    recorded_for: impl Fn(&[u8; 32]) -> Option<(i64, String)>,
) -> Option<Problem> {
    let p = |kind, detail: String| {
        Some(Problem::new(
            kind,
            Some(expect.seq),
            Some(expect.path.clone()),
            detail,
        ))
    };
    match found {
        None => p(
            ProblemKind::Missing,
            "the file is gone and no `pruned` record explains it".into(),
        ),
        Some(h) if h == expect.sha256 => None,
        Some(h) => match recorded_for(&h) {
            Some((seq, path)) if path != expect.path => p(
                ProblemKind::Reordered,
                format!("holds the content recorded for {path} (seq {seq})"),
            ),
            _ => p(
                ProblemKind::Modified,
                format!(
                    "sha256 is {}, recorded {}",
                    hex::encode(h),
                    hex::encode(expect.sha256)
                ),
            ),
        },
    }
}

/// R6 check of a `pruned` record: the file it deleted must have been older than the
/// retention (nominal, without the leap-day allowance, so a legitimate prune never fails).
pub fn check_prune(
    pruned_seq: i64,
    file: &FileRef,
    file_time_us: i64,
    pruned_time_us: i64,
    retention: std::time::Duration,
) -> Option<Problem> {
    let age = pruned_time_us.saturating_sub(file_time_us);
    if age < retention.as_micros() as i64 {
        Some(Problem::new(
            ProblemKind::Missing,
            Some(file.seq),
            Some(file.path.clone()),
            format!(
                "deleted by `pruned` record {pruned_seq} at {} days old, before the retention of {} days (R6)",
                age / 86_400_000_000,
                retention.as_secs() / 86_400
            ),
        ))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evidence::key::DeviceKey;
    use crate::evidence::log::{canonical_json, record_hash};
    use crate::evidence::record::Kind;
    use serde_json::json;

    /// A well-formed chain of `n` records, the third-last referring to a file.
    fn chain(n: i64) -> Vec<RawRecord> {
        let mut prev = GENESIS;
        (1..=n)
            .map(|seq| {
                let payload = canonical_json(&json!({"camera": "front", "n": seq}));
                let h = record_hash(1_000 + seq, Kind::Gap.as_str(), &payload, None, &prev);
                let r = RawRecord {
                    seq,
                    time_us: 1_000 + seq,
                    kind: Kind::Gap.as_str().into(),
                    payload,
                    file_sha256: None,
                    prev_hash: prev.to_vec(),
                    hash: h.to_vec(),
                };
                prev = h;
                r
            })
            .collect()
    }

    fn rehash(r: &mut RawRecord) {
        let prev: [u8; 32] = r.prev_hash.clone().try_into().unwrap();
        r.hash = record_hash(r.time_us, &r.kind, &r.payload, None, &prev).to_vec();
    }

    fn kinds(o: &ChainOutcome) -> Vec<(&'static str, Option<i64>)> {
        o.problems.iter().map(|p| (p.kind.as_str(), p.seq)).collect()
    }

    fn cp(seq: i64, records: &[RawRecord]) -> Checkpoint {
        let head = if seq == 0 {
            GENESIS
        } else {
            records[(seq - 1) as usize].hash.clone().try_into().unwrap()
        };
        Checkpoint {
            device: "box".into(),
            seq,
            head,
            time_us: 5_000 + seq,
        }
    }

    #[test]
    fn an_intact_chain_has_no_problems() {
        let rs = chain(10);
        let o = check_records(Anchor::GENESIS, &rs, &[cp(4, &rs), cp(8, &rs)]);
        assert!(o.problems.is_empty(), "{:?}", o.problems);
        assert_eq!((o.records, o.checkpoints_matched, o.unsigned), (10, 2, 2));
    }

    /// Each tampering of the log, as data: what was done, and the problems it must produce.
    #[test]
    fn tampered_chains_are_named() {
        type Edit = fn(&mut Vec<RawRecord>);
        type Want = &'static [(&'static str, Option<i64>)];
        let cases: &[(&str, Edit, Want)] = &[
            (
                "edited payload",
                |rs| rs[4].payload = rs[4].payload.replace("front", "back"),
                &[("modified", Some(5))],
            ),
            ("edited time", |rs| rs[4].time_us += 1, &[("modified", Some(5))]),
            (
                "edited and re-hashed one record",
                |rs| {
                    rs[4].payload = rs[4].payload.replace("front", "back");
                    rehash(&mut rs[4]);
                },
                &[("chain_break", Some(6))],
            ),
            (
                "edited and re-hashed to the end",
                |rs| {
                    rs[4].payload = rs[4].payload.replace("front", "back");
                    for i in 4..rs.len() {
                        if i > 4 {
                            rs[i].prev_hash = rs[i - 1].hash.clone();
                        }
                        rehash(&mut rs[i]);
                    }
                },
                &[("chain_break", Some(8))],
            ),
            (
                "deleted, seq kept",
                |rs| drop(rs.remove(4)),
                &[("missing", Some(5))],
            ),
            (
                "deleted and renumbered",
                |rs| {
                    rs.remove(4);
                    for (i, r) in rs.iter_mut().enumerate() {
                        r.seq = i as i64 + 1;
                    }
                },
                &[("chain_break", Some(5))],
            ),
            (
                "inserted in the middle",
                |rs| {
                    let mut x = rs[4].clone();
                    x.prev_hash = rs[4].hash.clone();
                    x.payload = canonical_json(&json!({"camera": "front", "fake": true}));
                    rehash(&mut x);
                    rs.insert(5, x);
                    for (i, r) in rs.iter_mut().enumerate() {
                        r.seq = i as i64 + 1;
                    }
                },
                &[("unexpected", Some(6))],
            ),
            (
                "two records swapped",
                |rs| {
                    rs.swap(4, 5);
                    rs[4].seq = 5;
                    rs[5].seq = 6;
                },
                &[("reordered", Some(5)), ("reordered", Some(6))],
            ),
            ("truncated", |rs| rs.truncate(6), &[("missing", Some(7))]),
            (
                "stored hash garbled",
                |rs| rs[2].hash = vec![1, 2, 3],
                &[("modified", Some(3)), ("chain_break", Some(4))],
            ),
        ];
        for (name, edit, want) in cases {
            let original = chain(10);
            let cps = [cp(4, &original), cp(8, &original)];
            let mut rs = original.clone();
            edit(&mut rs);
            let o = check_records(Anchor::GENESIS, &rs, &cps);
            assert_eq!(kinds(&o), *want, "{name}: {:#?}", o.problems);
        }
    }

    #[test]
    fn an_excerpt_is_anchored_at_a_checkpoint() {
        let rs = chain(10);
        let anchor = Anchor {
            seq: 4,
            hash: rs[3].hash.clone().try_into().unwrap(),
        };
        let o = check_records(anchor, &rs[4..8], &[cp(4, &rs), cp(8, &rs)]);
        assert!(o.problems.is_empty(), "{:?}", o.problems);
        assert_eq!(o.checkpoints_matched, 2);
        // The excerpt's first record dropped: the next one no longer links to the anchor.
        let o = check_records(anchor, &rs[5..8], &[cp(4, &rs), cp(8, &rs)]);
        assert_eq!(kinds(&o), [("missing", Some(5))]);
    }

    #[test]
    fn checkpoints_need_a_trusted_key_for_their_seq() {
        let (a, _) = DeviceKey::generate().unwrap();
        let (b, _) = DeviceKey::generate().unwrap();
        let (evil, _) = DeviceKey::generate().unwrap();
        let rs = chain(10);
        let sign = |seq: i64, k: &DeviceKey| (Some(seq), cp(seq, &rs).sign(k).to_text());
        let rot = Rotation {
            seq: 5,
            old: a.public().fingerprint(),
            new: b.public(),
        };
        let ring = KeyRing::new(&[a.public()], std::slice::from_ref(&rot));
        let texts = vec![
            sign(4, &a),
            sign(5, &a),
            sign(8, &b),
            sign(9, &evil),
            sign(10, &a),
        ];
        let (good, problems) = check_checkpoints(texts, &DeviceIds::single("box"), &ring);
        assert_eq!(good.iter().map(|c| c.seq).collect::<Vec<_>>(), [4, 5, 8]);
        let bad: Vec<_> = problems.iter().map(|p| (p.kind.as_str(), p.seq)).collect();
        assert_eq!(bad, [("bad_signature", Some(9)), ("bad_signature", Some(10))]);
        // Wrong device, and a text that is not a checkpoint at all.
        let (_, problems) = check_checkpoints(
            [sign(4, &a), (Some(7), "hello".into())],
            &DeviceIds::single("other"),
            &ring,
        );
        assert_eq!(problems.len(), 2);
        // A fork: two good signatures, two heads for one seq.
        let mut forked = cp(4, &rs);
        forked.head = [9; 32];
        let texts = vec![sign(4, &a), (Some(4), forked.sign(&a).to_text())];
        let (_, problems) = check_checkpoints(texts, &DeviceIds::single("box"), &ring);
        assert_eq!(problems[0].kind, ProblemKind::ChainBreak);
    }

    #[test]
    fn files_are_modified_missing_or_swapped() {
        let a = FileRef {
            seq: 3,
            path: "video/c/a.mp4".into(),
            sha256: [1; 32],
        };
        let others = |h: &[u8; 32]| (h == &[2; 32]).then(|| (4, "video/c/b.mp4".to_string()));
        assert_eq!(check_file(&a, Some([1; 32]), others), None);
        assert_eq!(check_file(&a, None, others).unwrap().kind, ProblemKind::Missing);
        assert_eq!(
            check_file(&a, Some([2; 32]), others).unwrap().kind,
            ProblemKind::Reordered
        );
        assert_eq!(
            check_file(&a, Some([3; 32]), others).unwrap().kind,
            ProblemKind::Modified
        );
    }

    #[test]
    fn a_prune_before_retention_is_reported() {
        let f = FileRef {
            seq: 3,
            path: "video/c/a.mp4".into(),
            sha256: [1; 32],
        };
        let year = 365 * 86_400_000_000i64;
        let ret = std::time::Duration::from_secs(3 * 365 * 86_400);
        assert!(check_prune(9, &f, 0, 3 * year, ret).is_none());
        assert_eq!(
            check_prune(9, &f, 0, 3 * year - 1, ret).unwrap().kind,
            ProblemKind::Missing
        );
    }

    /// Checkpoints name the id in effect at their seq: before the first change its old id,
    /// from each change record on its new id.
    #[test]
    fn device_ids_follow_the_change_records() {
        let change = |seq: i64, old: &str, new: &str| RawRecord {
            seq,
            time_us: seq,
            kind: Kind::DeviceIdChanged.as_str().into(),
            payload: canonical_json(&json!({"old_id": old, "new_id": new})),
            file_sha256: None,
            prev_hash: GENESIS.to_vec(),
            hash: GENESIS.to_vec(),
        };
        let ids = DeviceIds::from_records("c", &[change(20, "b", "c"), change(10, "a", "b")]);
        assert_eq!(
            [0, 9, 10, 19, 20, 99].map(|s| ids.at(s)),
            ["a", "a", "b", "b", "c", "c"]
        );
        assert_eq!(DeviceIds::from_records("x", &[]).at(5), "x");
    }
}
