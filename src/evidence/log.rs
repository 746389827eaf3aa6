//! The append-only, hash-chained log of everything the box asserts (R16).
//!
//! Invariants:
//! - records are only ever appended; `seq` is dense from 1;
//! - each record's hash covers its own canonical form and the previous record's hash, so an
//!   edit, a removal or a reordering anywhere breaks every later hash;
//! - an append is part of the caller's write transaction, so the fact (a segment row, a gap
//!   row) and its log record commit together or not at all. The transaction must be
//!   `BEGIN IMMEDIATE` (see `db::write_tx`) so that the read of the head and the insert are
//!   serialised across connections.

use chrono::{DateTime, Utc};
use ring::digest::{Context, SHA256};
use rusqlite::{OptionalExtension, Transaction, params};
use serde_json::Value;
use thiserror::Error;

/// Hash of "no previous record".
pub const GENESIS: [u8; 32] = [0u8; 32];

#[derive(Debug, Error)]
pub enum LogError {
    #[error("evidence log: database error: {0}")]
    Db(#[from] rusqlite::Error),
    #[error("evidence log: record {seq} has a stored hash of {len} bytes, expected 32")]
    BadHash { seq: i64, len: usize },
}

/// A record about to be appended.
#[derive(Debug, Clone)]
pub struct NewRecord {
    /// When the asserted fact happened (or was observed).
    pub time: DateTime<Utc>,
    /// Record type, e.g. `segment`, `gap`, `class_hour_pass`.
    pub kind: String,
    /// The facts, as JSON. Canonicalised before hashing.
    pub payload: Value,
    /// sha256 (hex) of the file this record refers to, if any.
    pub file_sha256: Option<String>,
}

/// A stored record.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub seq: i64,
    pub time: DateTime<Utc>,
    pub kind: String,
    pub payload: Value,
    pub file_sha256: Option<String>,
    pub prev_hash: [u8; 32],
    pub hash: [u8; 32],
}

/// Appends one record inside the caller's (immediate) transaction; returns its seq and hash.
pub fn append(tx: &Transaction, rec: &NewRecord) -> Result<(i64, [u8; 32]), LogError> {
    let head: Option<(i64, Vec<u8>)> = tx
        .query_row("SELECT seq, hash FROM log ORDER BY seq DESC LIMIT 1", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?;
    let (seq, prev) = match head {
        Some((seq, h)) => (seq + 1, to_hash(seq, &h)?),
        None => (1, GENESIS),
    };
    let time_us = rec.time.timestamp_micros();
    let payload = canonical_json(&rec.payload);
    let hash = record_hash(
        seq,
        time_us,
        &rec.kind,
        &payload,
        rec.file_sha256.as_deref(),
        &prev,
    );
    tx.execute(
        "INSERT INTO log (seq, time_us, type, payload, file_sha256, prev_hash, hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            seq,
            time_us,
            rec.kind,
            payload,
            rec.file_sha256,
            &prev[..],
            &hash[..]
        ],
    )?;
    Ok((seq, hash))
}

/// The hash of one record: SHA-256 over a domain-separation prefix, the previous hash and the
/// canonical fields. The exact byte layout is specified in docs/evidence.md.
pub fn record_hash(
    seq: i64,
    time_us: i64,
    kind: &str,
    canonical_payload: &str,
    file_sha256: Option<&str>,
    prev: &[u8; 32],
) -> [u8; 32] {
    let mut ctx = Context::new(&SHA256);
    ctx.update(b"classproof-record-v1\0");
    ctx.update(prev);
    let fields = canonical_json(&serde_json::json!({
        "seq": seq,
        "time_us": time_us,
        "type": kind,
        "payload": canonical_payload,
        "file_sha256": file_sha256,
    }));
    ctx.update(fields.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// Canonical JSON: object keys sorted by their UTF-8 bytes, no whitespace, numbers and strings
/// as serde_json writes them. Independent of serde_json's `preserve_order` feature.
pub fn canonical_json(v: &Value) -> String {
    let mut out = String::new();
    write_canonical(v, &mut out);
    out
}

fn write_canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                write_canonical(&map[k], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, x) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(x, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

fn to_hash(seq: i64, bytes: &[u8]) -> Result<[u8; 32], LogError> {
    bytes.try_into().map_err(|_| LogError::BadHash {
        seq,
        len: bytes.len(),
    })
}

/// Records with `from_seq <= seq`, in order, at most `limit`.
pub fn read_from(conn: &rusqlite::Connection, from_seq: i64, limit: i64) -> Result<Vec<Record>, LogError> {
    let mut stmt = conn.prepare_cached(
        "SELECT seq, time_us, type, payload, file_sha256, prev_hash, hash FROM log
         WHERE seq >= ?1 ORDER BY seq LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![from_seq, limit], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, String>(3)?,
            r.get::<_, Option<String>>(4)?,
            r.get::<_, Vec<u8>>(5)?,
            r.get::<_, Vec<u8>>(6)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (seq, time_us, kind, payload, file_sha256, prev, hash) = row?;
        out.push(Record {
            seq,
            time: DateTime::from_timestamp_micros(time_us).unwrap_or_default(),
            kind,
            payload: serde_json::from_str(&payload).unwrap_or(Value::String(payload)),
            file_sha256,
            prev_hash: to_hash(seq, &prev)?,
            hash: to_hash(seq, &hash)?,
        });
    }
    Ok(out)
}

/// Records of one type (or all) from a time on, in log order.
pub fn read_filtered(
    conn: &rusqlite::Connection,
    from_us: Option<i64>,
    kind: Option<&str>,
) -> Result<Vec<Record>, LogError> {
    let mut stmt = conn.prepare_cached(
        "SELECT seq FROM log WHERE time_us >= ?1 AND (?2 IS NULL OR type = ?2) ORDER BY seq",
    )?;
    let seqs: Vec<i64> = stmt
        .query_map(params![from_us.unwrap_or(i64::MIN), kind], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let mut out = Vec::with_capacity(seqs.len());
    for seq in seqs {
        out.extend(read_from(conn, seq, 1)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn canonical_json_sorts_keys_recursively() {
        let v = json!({"b": 1, "a": {"z": [true, null], "y": "é"}});
        assert_eq!(canonical_json(&v), r#"{"a":{"y":"é","z":[true,null]},"b":1}"#);
    }

    #[test]
    fn hash_depends_on_every_field() {
        let base = record_hash(1, 10, "gap", "{}", None, &GENESIS);
        assert_ne!(base, record_hash(2, 10, "gap", "{}", None, &GENESIS));
        assert_ne!(base, record_hash(1, 11, "gap", "{}", None, &GENESIS));
        assert_ne!(base, record_hash(1, 10, "segment", "{}", None, &GENESIS));
        assert_ne!(base, record_hash(1, 10, "gap", "{\"a\":1}", None, &GENESIS));
        assert_ne!(base, record_hash(1, 10, "gap", "{}", Some("00"), &GENESIS));
        assert_ne!(base, record_hash(1, 10, "gap", "{}", None, &[1u8; 32]));
    }
}
