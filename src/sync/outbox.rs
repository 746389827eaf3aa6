//! The outbox: durable cursors over the log and the checkpoints, and the connection state,
//! all in `meta` (docs/protocol.md, "The outbox").
//!
//! Why `meta` and not a table of its own: the outbox is two numbers (the last record and
//! the last checkpoint the broker acknowledged, everything before them acknowledged too) and
//! a small state object. Nothing is copied out of the log and nothing is ever deleted, so a
//! queue table would only duplicate the log; a `meta` row is one upsert in a
//! `synchronous=FULL` database, durable when the commit returns, and needs no migration.

use rusqlite::Connection;
use serde::{Deserialize, Serialize};

use crate::db;

/// `meta` key: seq of the last record whose PUBACK arrived (all before it too).
pub const CURSOR: &str = "sync.cursor";
/// `meta` key: id of the last checkpoint row whose PUBACK arrived (all before it too).
pub const CHECKPOINT_CURSOR: &str = "sync.checkpoint_cursor";
/// `meta` key: the connection state (JSON [`ConnState`]).
pub const CONNECTION: &str = "sync.connection";

fn get_i64(conn: &Connection, key: &str) -> rusqlite::Result<i64> {
    Ok(db::meta_get(conn, key)?.and_then(|v| v.parse().ok()).unwrap_or(0))
}

/// The two cursors `(records, checkpoints)`.
pub fn cursors(conn: &Connection) -> rusqlite::Result<(i64, i64)> {
    Ok((get_i64(conn, CURSOR)?, get_i64(conn, CHECKPOINT_CURSOR)?))
}

/// Stores both cursors in one transaction. Only ever called with positions whose PUBACKs
/// (and all earlier ones) arrived.
pub fn advance(conn: &mut Connection, seq: i64, checkpoint: i64) -> rusqlite::Result<()> {
    let tx = db::write_tx(conn)?;
    db::meta_set(&tx, CURSOR, &seq.to_string())?;
    db::meta_set(&tx, CHECKPOINT_CURSOR, &checkpoint.to_string())?;
    tx.commit()
}

/// The connection state, for `classproof sync status` and across restarts (alarms).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ConnState {
    pub broker: String,
    pub connected: bool,
    /// Since when connected or disconnected (µs since the epoch).
    pub since_us: Option<i64>,
    pub last_error: Option<String>,
    pub last_error_us: Option<i64>,
    /// An `upstream` alarm is raised (not yet cleared).
    #[serde(default)]
    pub upstream_alarm: bool,
    /// A `sync_backlog` alarm is raised (not yet cleared).
    #[serde(default)]
    pub backlog_alarm: bool,
}

pub fn conn_state(conn: &Connection) -> rusqlite::Result<ConnState> {
    Ok(db::meta_get(conn, CONNECTION)?
        .and_then(|v| serde_json::from_str(&v).ok())
        .unwrap_or_default())
}

pub fn set_conn_state(conn: &Connection, s: &ConnState) -> rusqlite::Result<()> {
    let text = serde_json::to_string(s).unwrap_or_default();
    db::meta_set(conn, CONNECTION, &text)
}

/// What `classproof sync status` shows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SyncStatus {
    pub broker: Option<String>,
    pub connected: bool,
    pub since_us: Option<i64>,
    pub cursor: i64,
    pub checkpoint_cursor: i64,
    pub head: i64,
    pub backlog_records: i64,
    pub backlog_oldest_us: Option<i64>,
    pub last_error: Option<String>,
    pub last_error_us: Option<i64>,
    pub upstream_alarm: bool,
    pub backlog_alarm: bool,
}

/// Reads the outbox's state.
pub fn status(conn: &Connection) -> Result<SyncStatus, crate::evidence::log::LogError> {
    let (cursor, checkpoint_cursor) = cursors(conn)?;
    let s = conn_state(conn)?;
    let head = super::source::last_seq(conn)?;
    let backlog_records = (head - cursor).max(0);
    let backlog_oldest_us = if backlog_records > 0 {
        super::source::time_of(conn, cursor + 1)?
    } else {
        None
    };
    Ok(SyncStatus {
        broker: (!s.broker.is_empty()).then_some(s.broker),
        connected: s.connected,
        since_us: s.since_us,
        cursor,
        checkpoint_cursor,
        head,
        backlog_records,
        backlog_oldest_us,
        last_error: s.last_error,
        last_error_us: s.last_error_us,
        upstream_alarm: s.upstream_alarm,
        backlog_alarm: s.backlog_alarm,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_and_state_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = db::open(dir.path()).unwrap();
        assert_eq!(cursors(&conn).unwrap(), (0, 0));
        advance(&mut conn, 41, 3).unwrap();
        set_conn_state(
            &conn,
            &ConnState {
                broker: "mqtts://b:8883".into(),
                connected: true,
                since_us: Some(5),
                ..ConnState::default()
            },
        )
        .unwrap();
        drop(conn);
        let conn = db::open(dir.path()).unwrap();
        assert_eq!(cursors(&conn).unwrap(), (41, 3));
        let s = status(&conn).unwrap();
        assert!(s.connected);
        assert_eq!(s.broker.as_deref(), Some("mqtts://b:8883"));
        // The cursor is past an empty log: no negative backlog.
        assert_eq!(s.backlog_records, 0);
    }
}
