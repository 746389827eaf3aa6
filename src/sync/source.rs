//! The sync job's one window on the evidence store: records as stored (`log::read_raw`), the
//! signed checkpoints, and the alarm records it appends. Kept to this module so that the
//! switch to typed records (`evidence::record`) touches nothing else of `sync`.

use chrono::Utc;
use rusqlite::Connection;

use crate::evidence::log::{self, LogError};
use crate::evidence::record::{AlarmKind, AlarmState, Record};
use crate::evidence::store::{self, StoreError};

/// One record of the log exactly as stored and hashed.
pub type Entry = log::RawRecord;

/// One stored signed checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointRow {
    /// Its row id: the order in which checkpoints were signed, and the outbox's cursor.
    pub id: i64,
    pub seq: i64,
    pub time_us: i64,
    pub key_fingerprint: String,
    /// The strict text form (docs/evidence.md, "Checkpoint text").
    pub text: String,
}

/// Records with `seq > after`, in order, at most `limit`.
pub fn records_after(conn: &Connection, after: i64, limit: i64) -> Result<Vec<Entry>, LogError> {
    log::read_raw(conn, after + 1, i64::MAX, limit)
}

/// The seq of the last record (0 for an empty log).
pub fn last_seq(conn: &Connection) -> Result<i64, LogError> {
    log::last_seq(conn)
}

/// The time of record `seq`, if it exists.
pub fn time_of(conn: &Connection, seq: i64) -> Result<Option<i64>, LogError> {
    Ok(log::read_raw(conn, seq, seq, 1)?.first().map(|r| r.time_us))
}

/// Checkpoints with `id > after`, in signing order, at most `limit`.
pub fn checkpoints_after(
    conn: &Connection,
    after: i64,
    limit: i64,
) -> Result<Vec<CheckpointRow>, StoreError> {
    Ok(store::checkpoints_after_id(conn, after, limit)?
        .into_iter()
        .map(|(id, seq, time_us, key_fingerprint, text)| CheckpointRow {
            id,
            seq,
            time_us,
            key_fingerprint,
            text,
        })
        .collect())
}

/// Appends one `alarm` record in its own transaction; returns its seq. The one place `sync`
/// writes to the log.
pub fn append_alarm(conn: &mut Connection, alarm: AlarmKind, raised: bool) -> Result<i64, LogError> {
    let tx = crate::db::write_tx(conn)?;
    let record = Record::alarm(alarm, AlarmState::raised(raised));
    let (seq, _) = log::append(&tx, Utc::now(), &record)?;
    tx.commit()?;
    Ok(seq)
}

/// Appends one record in its own transaction; returns its seq.
pub fn append(conn: &mut Connection, record: &Record) -> Result<i64, LogError> {
    let tx = crate::db::write_tx(conn)?;
    let (seq, _) = log::append(&tx, Utc::now(), record)?;
    tx.commit()?;
    Ok(seq)
}

/// A command with this id was accepted and has not expired at `now_us`.
pub fn command_seen(conn: &Connection, id: &str, now_us: i64) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT count(*) FROM command_ids WHERE id = ?1 AND expires_us > ?2",
        rusqlite::params![id, now_us],
        |r| r.get::<_, i64>(0),
    )
    .map(|n| n > 0)
}

/// Appends the `command` record of an accepted command and remembers its id, in one
/// transaction (expired ids are forgotten in it); returns the record's seq.
pub fn accept_command(
    conn: &mut Connection,
    record: &Record,
    id: &str,
    expires_us: i64,
    now_us: i64,
) -> Result<i64, LogError> {
    let tx = crate::db::write_tx(conn)?;
    let (seq, _) = log::append(&tx, Utc::now(), record)?;
    tx.execute("DELETE FROM command_ids WHERE expires_us <= ?1", [now_us])?;
    tx.execute(
        "INSERT OR REPLACE INTO command_ids (id, expires_us, log_seq) VALUES (?1, ?2, ?3)",
        rusqlite::params![id, expires_us, seq],
    )?;
    tx.commit()?;
    Ok(seq)
}
