//! The evidence room's own tables (migration 3 in `db.rs`): `evidence_keys`, `checkpoints`
//! and `evidence_files`, and the write paths that combine them with the log: signing a
//! checkpoint, registering and rotating the device key, pruning a file.

use std::path::Path;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use thiserror::Error;

use super::checkpoint::{Checkpoint, SignedCheckpoint};
use super::key::{self, DeviceKey, KeyError, PublicKey};
use super::log::{self, GENESIS, LogError};
use super::record::{DeviceIdChanged, DeviceKeyAnnounced, KeyRotated, Kind, Pruned, Record};
use crate::db;

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("{0}")]
    Log(#[from] LogError),
    #[error("evidence store: database error: {0}")]
    Db(#[from] rusqlite::Error),
    #[error("{0}")]
    Open(#[from] db::DbError),
    #[error("{0}")]
    Key(#[from] KeyError),
    #[error("evidence store: {0}")]
    State(String),
    #[error("evidence store: the device key was rotated; the current key is {current}")]
    KeyChanged { current: String },
}

/// Indexes a file a record refers to (called by `log::append`, same transaction).
pub fn index_file(
    tx: &Transaction,
    seq: i64,
    path: &str,
    sha256: &str,
    bytes: Option<i64>,
    time_us: i64,
) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT INTO evidence_files (seq, path, sha256, bytes, time_us) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![seq, path, sha256, bytes, time_us])?;
    Ok(())
}

/// A row of `evidence_keys`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRow {
    pub fingerprint: String,
    pub public_key: String,
    pub created_us: i64,
    pub retired_us: Option<i64>,
    pub retired_seq: Option<i64>,
}

/// Every key the device has had, oldest first.
pub fn keys(conn: &Connection) -> Result<Vec<KeyRow>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT fingerprint, public_key, created_us, retired_us, retired_seq FROM evidence_keys
         ORDER BY created_us, rowid",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(KeyRow {
            fingerprint: r.get(0)?,
            public_key: r.get(1)?,
            created_us: r.get(2)?,
            retired_us: r.get(3)?,
            retired_seq: r.get(4)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The fingerprint of the key currently signing (the newest not retired).
pub fn current_fingerprint(conn: &Connection) -> Result<Option<String>, StoreError> {
    Ok(conn
        .query_row(
            "SELECT fingerprint FROM evidence_keys WHERE retired_us IS NULL
             ORDER BY created_us DESC, rowid DESC LIMIT 1",
            [],
            |r| r.get(0),
        )
        .optional()?)
}

/// Loads (creating on first start) the device key and makes sure the database knows it: a
/// key seen for the first time is registered and announced in the log by a `device_key`
/// record, so the chain itself says which key the box signs with.
pub fn open_device_key(
    conn: &mut Connection,
    data_dir: &Path,
    now: DateTime<Utc>,
) -> Result<DeviceKey, StoreError> {
    let current = current_fingerprint(conn)?;
    let (key, _created) = key::load_or_create(data_dir, current.as_deref())?;
    let public = key.public();
    let fp = public.fingerprint();
    if current.as_deref() == Some(fp.as_str()) {
        return Ok(key);
    }
    let known = keys(conn)?.into_iter().find(|k| k.fingerprint == fp);
    if let Some(k) = known {
        return Err(StoreError::State(format!(
            "the key file holds key {fp}, which was retired at seq {}; the database's current key is {}. \
             Restore the current key file, or rotate again (docs/evidence.md, \"Rotating the key\")",
            k.retired_seq.unwrap_or_default(),
            current.unwrap_or_default()
        )));
    }
    if let Some(cur) = &current {
        return Err(StoreError::State(format!(
            "the key file holds key {fp}, but the database's current key is {cur}: the key file was \
             replaced. Restore it, or rotate properly (docs/evidence.md, \"Rotating the key\")"
        )));
    }
    let tx = db::write_tx(conn)?;
    register_key(&tx, &public, now)?;
    let announced = Record::DeviceKey(DeviceKeyAnnounced {
        fingerprint: fp,
        public_key: public.to_text(),
    });
    log::append(&tx, now, &announced)?;
    tx.commit()?;
    Ok(key)
}

fn register_key(tx: &Transaction, key: &PublicKey, now: DateTime<Utc>) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT OR IGNORE INTO evidence_keys (fingerprint, public_key, created_us) VALUES (?1, ?2, ?3)",
        params![key.fingerprint(), key.to_text(), now.timestamp_micros()],
    )?;
    Ok(())
}

/// Rotates the device key (docs/evidence.md, "Rotating the key"): a `key_rotated` record
/// names the new public key, a checkpoint at that record is signed by the old key (handing
/// trust over), the old key is marked retired and its private file replaced by the new one.
/// Returns (old, new, seq of the `key_rotated` record).
pub fn rotate_key(
    conn: &mut Connection,
    data_dir: &Path,
    device: &str,
    now: DateTime<Utc>,
) -> Result<(PublicKey, PublicKey, i64), StoreError> {
    let old = open_device_key(conn, data_dir, now)?;
    let (new, pkcs8) = DeviceKey::generate()?;
    key::write_private(data_dir, key::PRIVATE_NEW_FILE, &pkcs8)?;
    let tx = db::write_tx(conn)?;
    record_device_id(&tx, device, now)?;
    let rotated = Record::KeyRotated(KeyRotated {
        old_fingerprint: old.public().fingerprint(),
        new_fingerprint: new.public().fingerprint(),
        new_public_key: new.public().to_text(),
    });
    let (seq, head) = log::append(&tx, now, &rotated)?;
    register_key(&tx, &new.public(), now)?;
    tx.execute(
        "UPDATE evidence_keys SET retired_us = ?2, retired_seq = ?3 WHERE fingerprint = ?1",
        params![old.public().fingerprint(), now.timestamp_micros(), seq],
    )?;
    let cp = Checkpoint {
        device: device.to_string(),
        seq,
        head,
        time_us: now.timestamp_micros(),
    }
    .sign(&old);
    insert_checkpoint(&tx, &cp)?;
    tx.commit()?;
    // Committed: the new key file becomes the key (also done by `key::load` after a crash).
    let loaded = key::load(data_dir, Some(&new.public().fingerprint()))?;
    debug_assert_eq!(loaded.public(), new.public());
    Ok((old.public(), new.public(), seq))
}

fn insert_checkpoint(tx: &Transaction, cp: &SignedCheckpoint) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT INTO checkpoints (seq, time_us, key_fingerprint, text) VALUES (?1, ?2, ?3, ?4)",
        params![
            cp.checkpoint.seq,
            cp.checkpoint.time_us,
            cp.key_fingerprint,
            cp.to_text()
        ],
    )?;
    Ok(())
}

/// Signs the log's head unless the newest checkpoint already covers it. The head is read and
/// the checkpoint stored in one immediate transaction, so no append can slip in between.
pub fn checkpoint_now(
    conn: &mut Connection,
    key: &DeviceKey,
    device: &str,
    now: DateTime<Utc>,
) -> Result<Option<SignedCheckpoint>, StoreError> {
    sign_head(conn, key, device, now, false)
}

/// Signs the log's head now, even if a checkpoint covers it already (for `export`: a signed
/// time after the span's end shows that nothing about the span can be missing).
pub fn checkpoint_now_again(
    conn: &mut Connection,
    key: &DeviceKey,
    device: &str,
    now: DateTime<Utc>,
) -> Result<SignedCheckpoint, StoreError> {
    sign_head(conn, key, device, now, true)?
        .ok_or_else(|| StoreError::State("no checkpoint was signed".into()))
}

fn sign_head(
    conn: &mut Connection,
    key: &DeviceKey,
    device: &str,
    now: DateTime<Utc>,
    again: bool,
) -> Result<Option<SignedCheckpoint>, StoreError> {
    let tx = db::write_tx(conn)?;
    // Signed under an id the log does not know yet: the change is a record first, so that the
    // checkpoint covers it and earlier checkpoints keep verifying under the old id.
    record_device_id(&tx, device, now)?;
    // Checked inside the transaction: a rotation cannot commit between this and the insert.
    let current = current_fingerprint(&tx)?;
    if let Some(current) = current.filter(|c| *c != key.public().fingerprint()) {
        return Err(StoreError::KeyChanged { current });
    }
    let (seq, head) = log::head(&tx)?.unwrap_or((0, GENESIS));
    let last: Option<i64> = tx.query_row("SELECT max(seq) FROM checkpoints", [], |r| r.get(0))?;
    if !again && last.is_some_and(|l| l >= seq) {
        return Ok(None);
    }
    let cp = Checkpoint {
        device: device.to_string(),
        seq,
        head,
        time_us: now.timestamp_micros(),
    }
    .sign(key);
    insert_checkpoint(&tx, &cp)?;
    tx.commit()?;
    Ok(Some(cp))
}

/// The `[device] id` the log last recorded: the newest `device_id_changed` record's new id,
/// else the device the newest checkpoint names; `None` for a log never signed.
pub fn last_device_id(conn: &Connection) -> Result<Option<String>, StoreError> {
    if let Some(r) = log::read_raw_kind(conn, Kind::DeviceIdChanged)?.last()
        && let Record::DeviceIdChanged(c) = r.record().map_err(LogError::from)?
    {
        return Ok(Some(c.new_id));
    }
    let text: Option<String> = conn
        .query_row(
            "SELECT text FROM checkpoints ORDER BY seq DESC, id DESC LIMIT 1",
            [],
            |r| r.get(0),
        )
        .optional()?;
    Ok(text
        .and_then(|t| SignedCheckpoint::parse(&t).ok())
        .map(|c| c.checkpoint.device))
}

/// Appends a `device_id_changed` record when `device` (the configured `[device] id`) differs
/// from the id the log last recorded (issue 8, item 6); returns its seq. Done at start-up and
/// before every signature, in the caller's transaction.
pub fn record_device_id(
    tx: &Transaction,
    device: &str,
    now: DateTime<Utc>,
) -> Result<Option<i64>, StoreError> {
    let Some(old) = last_device_id(tx)? else {
        return Ok(None); // nothing signed yet: the first checkpoint names the id
    };
    if old == device {
        return Ok(None);
    }
    let change = Record::DeviceIdChanged(DeviceIdChanged {
        old_id: old.clone(),
        new_id: device.to_string(),
    });
    let (seq, _) = log::append(tx, now, &change)?;
    tracing::warn!(old = %old, new = %device, seq, "evidence: the device id changed; recorded");
    Ok(Some(seq))
}

/// Stored checkpoints `(seq column, text)`, by seq.
pub fn checkpoint_texts(conn: &Connection) -> Result<Vec<(Option<i64>, String)>, StoreError> {
    let mut stmt = conn.prepare("SELECT seq, text FROM checkpoints ORDER BY seq, id")?;
    let rows = stmt.query_map([], |r| Ok((Some(r.get::<_, i64>(0)?), r.get::<_, String>(1)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Stored checkpoints with `from_seq <= seq <= to_seq`, by seq (newest first if
/// `newest_first`), at most `limit`.
pub fn checkpoint_texts_between(
    conn: &Connection,
    from_seq: i64,
    to_seq: i64,
    newest_first: bool,
    limit: i64,
) -> Result<Vec<(Option<i64>, String)>, StoreError> {
    let order = if newest_first { "DESC" } else { "ASC" };
    let mut stmt = conn.prepare(&format!(
        "SELECT seq, text FROM checkpoints WHERE seq >= ?1 AND seq <= ?2 ORDER BY seq {order}, id {order} LIMIT ?3"
    ))?;
    let rows = stmt.query_map(params![from_seq, to_seq, limit], |r| {
        Ok((Some(r.get::<_, i64>(0)?), r.get::<_, String>(1)?))
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Seq of the newest checkpoint (0 if none).
pub fn last_checkpoint_seq(conn: &Connection) -> Result<i64, StoreError> {
    Ok(conn.query_row("SELECT coalesce(max(seq), 0) FROM checkpoints", [], |r| r.get(0))?)
}

/// Stored checkpoints with row `id > after_id`, in signing order, at most `limit`, as
/// `(id, seq, time_us, key_fingerprint, text)` (the upstream outbox's cursor is the row id).
pub type CheckpointRow = (i64, i64, i64, String, String);

pub fn checkpoints_after_id(
    conn: &Connection,
    after_id: i64,
    limit: i64,
) -> Result<Vec<CheckpointRow>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, seq, time_us, key_fingerprint, text FROM checkpoints WHERE id > ?1 ORDER BY id LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![after_id, limit], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// A file a live (not pruned) record refers to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRow {
    pub seq: i64,
    pub path: String,
    pub sha256: String,
    pub bytes: Option<i64>,
    pub time_us: i64,
    pub pruned_seq: Option<i64>,
}

fn file_row(r: &rusqlite::Row) -> rusqlite::Result<FileRow> {
    Ok(FileRow {
        seq: r.get(0)?,
        path: r.get(1)?,
        sha256: r.get(2)?,
        bytes: r.get(3)?,
        time_us: r.get(4)?,
        pruned_seq: r.get(5)?,
    })
}

const FILE_COLUMNS: &str = "seq, path, sha256, bytes, time_us, pruned_seq";

/// Live files with `time_us <= cutoff_us`, oldest first, at most `limit`.
pub fn live_files_before(conn: &Connection, cutoff_us: i64, limit: i64) -> Result<Vec<FileRow>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {FILE_COLUMNS} FROM evidence_files
         WHERE pruned_seq IS NULL AND time_us <= ?1 ORDER BY time_us, seq LIMIT ?2"
    ))?;
    let rows = stmt.query_map(params![cutoff_us, limit], file_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Live files of records of one kind with `time_us <= cutoff_us`, oldest first, at most
/// `limit` (issue 9: `unknown_face` snapshots are kept only `unknown_face_retention`, R15).
pub fn live_files_of_kind_before(
    conn: &Connection,
    kind: crate::evidence::record::Kind,
    cutoff_us: i64,
    limit: i64,
) -> Result<Vec<FileRow>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT f.seq, f.path, f.sha256, f.bytes, f.time_us, f.pruned_seq FROM evidence_files f
         JOIN log l ON l.seq = f.seq
         WHERE f.pruned_seq IS NULL AND f.time_us <= ?1 AND l.type = ?2 ORDER BY f.time_us, f.seq LIMIT ?3",
    )?;
    let rows = stmt.query_map(params![cutoff_us, kind.as_str(), limit], file_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Rows of `evidence_files` for records `from_seq..=to_seq`.
pub fn file_rows(conn: &Connection, from_seq: i64, to_seq: i64) -> Result<Vec<FileRow>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {FILE_COLUMNS} FROM evidence_files WHERE seq >= ?1 AND seq <= ?2 ORDER BY seq"
    ))?;
    let rows = stmt.query_map(params![from_seq, to_seq], file_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The rows naming `path` (normally one).
pub fn files_by_path(conn: &Connection, path: &str) -> Result<Vec<FileRow>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {FILE_COLUMNS} FROM evidence_files WHERE path = ?1"
    ))?;
    let rows = stmt.query_map([path], file_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// When the file at `path` was deleted: the seq and time (µs) of its `pruned` record.
pub fn pruned_at(conn: &Connection, path: &str) -> Result<Option<(i64, i64)>, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT f.pruned_seq, l.time_us FROM evidence_files f JOIN log l ON l.seq = f.pruned_seq
             WHERE f.path = ?1 ORDER BY f.seq DESC LIMIT 1",
        )?
        .query_row([path], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?)
}

/// The row of the record `seq`, if it refers to a file.
pub fn file_by_seq(conn: &Connection, seq: i64) -> Result<Option<FileRow>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {FILE_COLUMNS} FROM evidence_files WHERE seq = ?1"
    ))?;
    Ok(stmt.query_row([seq], file_row).optional()?)
}

/// The rows whose file has this sha256 (a scan: used only to explain a mismatching file).
pub fn files_by_sha256(conn: &Connection, sha256: &str) -> Result<Vec<FileRow>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {FILE_COLUMNS} FROM evidence_files WHERE sha256 = ?1"
    ))?;
    let rows = stmt.query_map([sha256], file_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Bytes of files recorded at or after `since_us`, and the earliest such time.
pub fn bytes_recorded_since(conn: &Connection, since_us: i64) -> Result<(u64, Option<i64>), StoreError> {
    Ok(conn.query_row(
        "SELECT coalesce(sum(bytes), 0), min(time_us) FROM evidence_files WHERE time_us >= ?1",
        [since_us],
        |r| Ok((r.get::<_, i64>(0)?.max(0) as u64, r.get(1)?)),
    )?)
}

/// Time of the first record of the log.
pub fn first_record_time_us(conn: &Connection) -> Result<Option<i64>, StoreError> {
    Ok(conn.query_row("SELECT min(time_us) FROM log", [], |r| r.get(0))?)
}

/// Why a file was deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PruneReason {
    /// Older than the retention (policy `protect` prunes these as they expire).
    Retention,
    /// Older than the retention and the disk was full (policy `delete-oldest`).
    DiskFull,
}

impl PruneReason {
    pub fn as_str(self) -> &'static str {
        match self {
            PruneReason::Retention => "retention",
            PruneReason::DiskFull => "disk_full",
        }
    }
}

const UNLINK_PENDING: &str = "evidence.unlink_pending";

/// Records the deletion of `files` (a `pruned` record each, the index rows marked) in one
/// transaction, then deletes the files. A crash between the commit and the deletions leaves
/// the list in `meta`; [`finish_pending_unlinks`] completes it at the next start.
pub fn prune(
    conn: &mut Connection,
    data_dir: &Path,
    files: &[FileRow],
    reason: PruneReason,
    retention: std::time::Duration,
    now: DateTime<Utc>,
) -> Result<Vec<String>, StoreError> {
    if files.is_empty() {
        return Ok(Vec::new());
    }
    let tx = db::write_tx(conn)?;
    let mut paths = Vec::with_capacity(files.len());
    for f in files {
        let record = Record::Pruned(Pruned {
            seq: f.seq,
            path: f.path.clone(),
            sha256: f.sha256.clone(),
            bytes: f.bytes,
            file_time_us: f.time_us,
            reason,
            retention_s: retention.as_secs(),
        });
        let (pseq, _) = log::append(&tx, now, &record)?;
        tx.execute(
            "UPDATE evidence_files SET pruned_seq = ?2 WHERE seq = ?1",
            params![f.seq, pseq],
        )?;
        paths.push(f.path.clone());
    }
    db::meta_set(
        &tx,
        UNLINK_PENDING,
        &serde_json::to_string(&paths).unwrap_or_default(),
    )?;
    tx.commit()?;
    finish_pending_unlinks(conn, data_dir)?;
    Ok(paths)
}

/// Deletes files whose `pruned` records committed but which were not deleted yet.
pub fn finish_pending_unlinks(conn: &Connection, data_dir: &Path) -> Result<(), StoreError> {
    let Some(list) = db::meta_get(conn, UNLINK_PENDING)? else {
        return Ok(());
    };
    let paths: Vec<String> = serde_json::from_str(&list).unwrap_or_default();
    for p in &paths {
        let full = data_dir.join(p);
        match std::fs::remove_file(&full) {
            Ok(()) => {
                // Drop the day and camera directories once empty (best effort).
                let mut dir = full.parent();
                for _ in 0..2 {
                    match dir {
                        Some(d) if std::fs::remove_dir(d).is_ok() => dir = d.parent(),
                        _ => break,
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(file = %full.display(), error = %e, "evidence: could not delete a pruned file")
            }
        }
    }
    conn.execute("DELETE FROM meta WHERE key = ?1", [UNLINK_PENDING])?;
    Ok(())
}

/// Appends one record, asserted at `time`, in its own transaction (alarms and other facts of
/// this room).
pub fn append_one(conn: &mut Connection, time: DateTime<Utc>, rec: &Record) -> Result<i64, StoreError> {
    let tx = db::write_tx(conn)?;
    let (seq, _) = log::append(&tx, time, rec)?;
    tx.commit()?;
    Ok(seq)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evidence::record::Kind;

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + s, 0).unwrap()
    }

    #[test]
    fn first_start_registers_the_key_in_the_log_and_checkpoints_sign_the_head() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = db::open(dir.path()).unwrap();
        let key = open_device_key(&mut conn, dir.path(), t(0)).unwrap();
        // Opening again changes nothing.
        let again = open_device_key(&mut conn, dir.path(), t(1)).unwrap();
        assert_eq!(key.public(), again.public());
        let recs = log::read_filtered(&conn, None, None).unwrap();
        assert_eq!(recs.len(), 1);
        assert_eq!(recs[0].record.record_kind(), Kind::DeviceKey);
        let cp = checkpoint_now(&mut conn, &key, "box", t(2)).unwrap().unwrap();
        assert_eq!(cp.checkpoint.seq, 1);
        assert_eq!(cp.checkpoint.head, recs[0].hash);
        assert!(checkpoint_now(&mut conn, &key, "box", t(3)).unwrap().is_none());
        assert_eq!(checkpoint_texts(&conn).unwrap().len(), 1);
    }

    #[test]
    fn a_replaced_key_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = db::open(dir.path()).unwrap();
        open_device_key(&mut conn, dir.path(), t(0)).unwrap();
        let (_, pkcs8) = DeviceKey::generate().unwrap();
        key::write_private(dir.path(), key::PRIVATE_FILE, &pkcs8).unwrap();
        let e = open_device_key(&mut conn, dir.path(), t(1)).unwrap_err();
        assert!(e.to_string().contains("was replaced"), "{e}");
    }

    #[test]
    fn rotation_hands_over_with_a_checkpoint_by_the_old_key() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = db::open(dir.path()).unwrap();
        let first = open_device_key(&mut conn, dir.path(), t(0)).unwrap();
        let (old, new, seq) = rotate_key(&mut conn, dir.path(), "box", t(10)).unwrap();
        assert_eq!(old, first.public());
        assert_eq!(current_fingerprint(&conn).unwrap(), Some(new.fingerprint()));
        let texts = checkpoint_texts(&conn).unwrap();
        let cp = SignedCheckpoint::parse(&texts[0].1).unwrap();
        assert_eq!(cp.checkpoint.seq, seq);
        assert!(cp.verify(&old));
        let now_key = open_device_key(&mut conn, dir.path(), t(11)).unwrap();
        assert_eq!(now_key.public(), new);
        let ks = keys(&conn).unwrap();
        assert_eq!(ks.len(), 2);
        assert_eq!(ks[0].retired_seq, Some(seq));
    }

    #[test]
    fn a_new_device_id_is_recorded_before_it_signs() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = db::open(dir.path()).unwrap();
        let key = open_device_key(&mut conn, dir.path(), t(0)).unwrap();
        assert_eq!(last_device_id(&conn).unwrap(), None);
        checkpoint_now(&mut conn, &key, "box", t(1)).unwrap().unwrap();
        assert_eq!(last_device_id(&conn).unwrap().as_deref(), Some("box"));
        assert!(checkpoint_now(&mut conn, &key, "box", t(2)).unwrap().is_none());
        let cp = checkpoint_now(&mut conn, &key, "room-7", t(3)).unwrap().unwrap();
        let recs = log::read_filtered(&conn, None, Some(Kind::DeviceIdChanged)).unwrap();
        assert_eq!(recs.len(), 1);
        assert_eq!(
            recs[0].record,
            Record::DeviceIdChanged(DeviceIdChanged {
                old_id: "box".into(),
                new_id: "room-7".into()
            })
        );
        assert_eq!(cp.checkpoint.seq, recs[0].seq);
        assert_eq!(last_device_id(&conn).unwrap().as_deref(), Some("room-7"));
        let tx = db::write_tx(&mut conn).unwrap();
        assert_eq!(record_device_id(&tx, "room-7", t(4)).unwrap(), None);
    }
}
