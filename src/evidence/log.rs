//! The append-only, hash-chained log of everything the box asserts (R16).
//!
//! Invariants:
//! - records are only ever appended; `seq` is dense from 1;
//! - each record's hash covers its own canonical form and the previous record's hash, so an
//!   edit, a removal or a reordering anywhere breaks every later hash; the byte layout is in
//!   docs/evidence.md ("Record hash") and in [`record_hash`];
//! - an append is part of the caller's write transaction, so the fact (a segment row, a gap
//!   row) and its log record commit together or not at all. The transaction must be
//!   `BEGIN IMMEDIATE` (see `db::write_tx`) so that the read of the head and the insert are
//!   serialised across connections. The database runs with `synchronous=FULL`, so the record
//!   is durable when the caller's commit returns.
//! - a record that refers to a file (`Record::file_sha256` and `Record::file_path`: a
//!   `segment`, or a face decision with its snapshot) also gets a row in `evidence_files`, the retention index (see
//!   `evidence::store`); that row is derived from the record and checked against it by `verify`;
//! - what is appended is a typed `evidence::record::Record`; what is read back is typed again
//!   (`Stored`, strictly: see `Record::from_stored`), except by the verifier, which reads rows
//!   as stored (`RawRecord`) so that a damaged row is reported instead of failing the read.

use chrono::{DateTime, Utc};
use ring::digest::{Context, SHA256};
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use serde_json::Value;
use thiserror::Error;

use super::record::{Kind, Record, RecordError};

/// Hash of "no previous record" (the `prev_hash` of record 1).
pub const GENESIS: [u8; 32] = [0u8; 32];

/// Domain separation for record hashes: no other hash the box makes starts with these bytes
/// (checkpoints sign text starting with `classproof checkpoint`, fingerprints hash raw keys).
pub const RECORD_DOMAIN: &[u8] = b"classproof record v1\0";

#[derive(Debug, Error)]
pub enum LogError {
    #[error("evidence log: database error: {0}")]
    Db(#[from] rusqlite::Error),
    #[error("evidence log: record {seq} has a stored hash of {len} bytes, expected 32")]
    BadHash { seq: i64, len: usize },
    #[error("evidence log: file_sha256 {value:?} is not 64 lowercase hex digits")]
    BadFileHash { value: String },
    #[error("{0}")]
    Record(#[from] RecordError),
    #[error("evidence log: record {seq} has a time of {time_us} µs, out of range")]
    BadTime { seq: i64, time_us: i64 },
}

/// A stored record, read back typed.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    pub seq: i64,
    /// When the asserted fact happened (or was observed).
    pub time: DateTime<Utc>,
    pub record: Record,
    pub prev_hash: [u8; 32],
    pub hash: [u8; 32],
}

/// A row of the log exactly as stored, nothing validated: what the verifier reads, so that a
/// malformed row is reported instead of failing the read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawRecord {
    pub seq: i64,
    pub time_us: i64,
    pub kind: String,
    /// The canonical payload text that was hashed.
    pub payload: String,
    pub file_sha256: Option<String>,
    pub prev_hash: Vec<u8>,
    pub hash: Vec<u8>,
}

impl RawRecord {
    /// The hash this record should have, from its own fields and its stored `prev_hash`;
    /// `None` when a field cannot be hashed at all (bad lengths or hex).
    pub fn recompute(&self) -> Option<[u8; 32]> {
        let prev: [u8; 32] = self.prev_hash.as_slice().try_into().ok()?;
        let file = match &self.file_sha256 {
            Some(h) => Some(parse_sha256_hex(h)?),
            None => None,
        };
        Some(record_hash(
            self.time_us,
            &self.kind,
            &self.payload,
            file.as_ref(),
            &prev,
        ))
    }

    /// The record, typed; an error names this row (see `record::Record::from_stored`).
    pub fn record(&self) -> Result<Record, RecordError> {
        Record::from_stored(&self.kind, &self.payload, self.file_sha256.as_deref())
            .map_err(|e| e.at(self.seq))
    }

    /// `payload.path` when the record refers to a file. Read from the JSON as stored, not
    /// from the typed record: the verifier names the file a damaged row claims, even when the
    /// row no longer reads as a record.
    pub fn file_path(&self) -> Option<String> {
        self.file_sha256.as_ref()?;
        let v: Value = serde_json::from_str(&self.payload).ok()?;
        // Segments name their file `path`; face decisions `snapshot` (issue 9).
        v.get("path")
            .or_else(|| v.get("snapshot"))?
            .as_str()
            .map(str::to_string)
    }
}

/// Appends one record, asserted at `time`, inside the caller's (immediate) transaction;
/// returns its seq and hash. A record that refers to a file also gets its retention-index row.
pub fn append(tx: &Transaction, time: DateTime<Utc>, rec: &Record) -> Result<(i64, [u8; 32]), LogError> {
    let kind = rec.kind();
    let file_sha256 = rec.file_sha256();
    let file = match file_sha256 {
        Some(h) => Some(parse_sha256_hex(h).ok_or_else(|| LogError::BadFileHash { value: h.to_string() })?),
        None => None,
    };
    let head: Option<(i64, Vec<u8>)> = tx
        .query_row("SELECT seq, hash FROM log ORDER BY seq DESC LIMIT 1", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?;
    let (seq, prev) = match head {
        Some((seq, h)) => (seq + 1, to_hash(seq, &h)?),
        None => (1, GENESIS),
    };
    let time_us = time.timestamp_micros();
    let payload = rec.canonical_payload();
    let hash = record_hash(time_us, kind, &payload, file.as_ref(), &prev);
    tx.prepare_cached(
        "INSERT INTO log (seq, time_us, type, payload, file_sha256, prev_hash, hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        seq,
        time_us,
        kind,
        payload,
        file_sha256,
        &prev[..],
        &hash[..]
    ])?;
    if let (Some(sha), Some(path)) = (file_sha256, rec.file_path()) {
        // Age counts from the latest instant the file covers (R6: conservative).
        let end_us = rec.file_end_us().unwrap_or(time_us);
        let bytes = rec.file_bytes().map(|b| b as i64);
        super::store::index_file(tx, seq, path, sha, bytes, time_us.max(end_us))?;
    }
    Ok((seq, hash))
}

/// The hash of one record (docs/evidence.md, "Record hash"):
///
/// ```text
/// SHA-256( "classproof record v1" 0x00
///          prev_hash                       32 bytes
///          time_us                         8 bytes, big-endian two's complement
///          len(type)     u32 big-endian,   type (UTF-8)
///          len(payload)  u32 big-endian,   canonical payload (UTF-8)
///          0x00                            no file
///        | 0x01 file_sha256                32 bytes )
/// ```
///
/// Every variable-length field is length-prefixed, so no two different records share an
/// encoding. `seq` is deliberately not hashed: a record's position is fixed by the chain
/// (its `prev_hash`) and signed in checkpoints as `seq`; leaving it out lets the verifier tell
/// a record inserted or removed in the middle (one broken link) from every later record being
/// renumbered.
pub fn record_hash(
    time_us: i64,
    kind: &str,
    canonical_payload: &str,
    file_sha256: Option<&[u8; 32]>,
    prev: &[u8; 32],
) -> [u8; 32] {
    let mut ctx = Context::new(&SHA256);
    ctx.update(RECORD_DOMAIN);
    ctx.update(prev);
    ctx.update(&time_us.to_be_bytes());
    ctx.update(&(kind.len() as u32).to_be_bytes());
    ctx.update(kind.as_bytes());
    ctx.update(&(canonical_payload.len() as u32).to_be_bytes());
    ctx.update(canonical_payload.as_bytes());
    match file_sha256 {
        None => ctx.update(&[0]),
        Some(h) => {
            ctx.update(&[1]);
            ctx.update(h);
        }
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// Record types: short, lowercase, stable.
pub fn is_valid_kind(kind: &str) -> bool {
    !kind.is_empty()
        && kind.len() <= 64
        && kind
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// Parses 64 lowercase hex digits (the only accepted spelling of a sha256 in the log).
pub fn parse_sha256_hex(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64
        || !s
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return None;
    }
    let mut out = [0u8; 32];
    hex::decode_to_slice(s, &mut out).ok()?;
    Some(out)
}

/// Canonical JSON (docs/evidence.md, "Canonical form"): object keys sorted by their UTF-8
/// bytes, no whitespace, strings escaped as serde_json writes them (`"` `\` and control
/// characters only; other characters as UTF-8), integers in decimal, other numbers in the
/// shortest form that reads back to the same f64. Independent of serde_json's
/// `preserve_order` feature. Parsing canonical text and writing it again gives the same text.
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

const COLUMNS: &str = "seq, time_us, type, payload, file_sha256, prev_hash, hash";

fn raw_row(r: &rusqlite::Row) -> rusqlite::Result<RawRecord> {
    Ok(RawRecord {
        seq: r.get(0)?,
        time_us: r.get(1)?,
        kind: r.get(2)?,
        payload: r.get(3)?,
        file_sha256: r.get(4)?,
        prev_hash: r.get(5)?,
        hash: r.get(6)?,
    })
}

fn to_stored(raw: RawRecord) -> Result<Stored, LogError> {
    Ok(Stored {
        seq: raw.seq,
        time: DateTime::from_timestamp_micros(raw.time_us).ok_or(LogError::BadTime {
            seq: raw.seq,
            time_us: raw.time_us,
        })?,
        record: raw.record()?,
        prev_hash: to_hash(raw.seq, &raw.prev_hash)?,
        hash: to_hash(raw.seq, &raw.hash)?,
    })
}

/// Records with `from_seq <= seq`, in order, at most `limit`, typed.
pub fn read_from(conn: &Connection, from_seq: i64, limit: i64) -> Result<Vec<Stored>, LogError> {
    read_raw(conn, from_seq, i64::MAX, limit)?
        .into_iter()
        .map(to_stored)
        .collect()
}

/// Records of one kind (or all) from a time on, in log order, typed. A row that does not
/// read back as a record is an error naming its seq.
pub fn read_filtered(
    conn: &Connection,
    from_us: Option<i64>,
    kind: Option<Kind>,
) -> Result<Vec<Stored>, LogError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM log WHERE time_us >= ?1 AND (?2 IS NULL OR type = ?2) ORDER BY seq"
    ))?;
    let rows = stmt.query_map(
        params![from_us.unwrap_or(i64::MIN), kind.map(Kind::as_str)],
        raw_row,
    )?;
    let mut out = Vec::new();
    for row in rows {
        out.push(to_stored(row?)?);
    }
    Ok(out)
}

/// Rows with `from_seq <= seq <= to_seq`, in order, at most `limit`, as stored.
pub fn read_raw(
    conn: &Connection,
    from_seq: i64,
    to_seq: i64,
    limit: i64,
) -> Result<Vec<RawRecord>, LogError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM log WHERE seq >= ?1 AND seq <= ?2 ORDER BY seq LIMIT ?3"
    ))?;
    let rows = stmt.query_map(params![from_seq, to_seq, limit], raw_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Rows of one type, in order, as stored.
pub fn read_raw_kind(conn: &Connection, kind: Kind) -> Result<Vec<RawRecord>, LogError> {
    let mut stmt = conn.prepare_cached(&format!("SELECT {COLUMNS} FROM log WHERE type = ?1 ORDER BY seq"))?;
    let rows = stmt.query_map([kind.as_str()], raw_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Rows of one type whose time is in `[from_us, to_us]`, in order, as stored.
pub fn read_raw_kind_between(
    conn: &Connection,
    kind: Kind,
    from_us: i64,
    to_us: i64,
) -> Result<Vec<RawRecord>, LogError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM log WHERE type = ?1 AND time_us >= ?2 AND time_us <= ?3 ORDER BY seq"
    ))?;
    let rows = stmt.query_map(params![kind.as_str(), from_us, to_us], raw_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The last record's seq and stored hash (`None` for an empty log).
pub fn head(conn: &Connection) -> Result<Option<(i64, [u8; 32])>, LogError> {
    let head: Option<(i64, Vec<u8>)> = conn
        .query_row("SELECT seq, hash FROM log ORDER BY seq DESC LIMIT 1", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?;
    head.map(|(seq, h)| Ok((seq, to_hash(seq, &h)?))).transpose()
}

/// The seq of the last record (0 for an empty log), whatever its stored hash looks like.
pub fn last_seq(conn: &Connection) -> Result<i64, LogError> {
    Ok(conn.query_row("SELECT coalesce(max(seq), 0) FROM log", [], |r| r.get(0))?)
}

/// The seq of the record whose stored hash is `hash` (a scan: used only to explain a broken
/// link, which an intact log never has).
pub fn seq_of_hash(conn: &Connection, hash: &[u8]) -> Result<Option<i64>, LogError> {
    Ok(conn
        .query_row("SELECT seq FROM log WHERE hash = ?1 LIMIT 1", [hash], |r| {
            r.get(0)
        })
        .optional()?)
}

/// The first seq whose time is at or after `time_us` (by the time index).
pub fn first_seq_at_or_after(conn: &Connection, time_us: i64) -> Result<Option<i64>, LogError> {
    Ok(
        conn.query_row("SELECT min(seq) FROM log WHERE time_us >= ?1", [time_us], |r| {
            r.get(0)
        })?,
    )
}

/// The last seq whose time is at or before `time_us`.
pub fn last_seq_at_or_before(conn: &Connection, time_us: i64) -> Result<Option<i64>, LogError> {
    Ok(
        conn.query_row("SELECT max(seq) FROM log WHERE time_us <= ?1", [time_us], |r| {
            r.get(0)
        })?,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn canonical_json_sorts_keys_recursively() {
        let v = json!({"b": 1, "a": {"z": [true, null], "y": "é"}});
        assert_eq!(canonical_json(&v), r#"{"a":{"y":"é","z":[true,null]},"b":1}"#);
    }

    #[test]
    fn canonical_json_escapes_only_what_json_requires() {
        let v = json!({"s": "tab\there \"q\" \\ 课时 \u{1}"});
        assert_eq!(
            canonical_json(&v),
            "{\"s\":\"tab\\there \\\"q\\\" \\\\ 课时 \\u0001\"}"
        );
        assert_eq!(
            canonical_json(&json!([1.5, -0.0, 1e300, 10, 1.0, 1e-7, 0.1, u64::MAX, "\u{7f}"])),
            "[1.5,-0.0,1e+300,10,1.0,1e-7,0.1,18446744073709551615,\"\u{7f}\"]"
        );
    }

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|i| json!(i)),
            any::<u64>().prop_map(|i| json!(i)),
            any::<f64>().prop_map(|f| json!(f)),
            ".*".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 64, 8, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map(".*", inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        /// Bundles carry payloads as JSON and the verifier canonicalises them again, so the
        /// canonical form must be a fixed point of parse-then-write.
        #[test]
        fn canonical_form_is_a_fixed_point(v in json_value()) {
            let text = canonical_json(&v);
            let back: Value = serde_json::from_str(&text).unwrap();
            prop_assert_eq!(canonical_json(&back), text);
        }
    }

    #[test]
    fn hash_depends_on_every_field() {
        let f = [7u8; 32];
        let (gap, segment) = (Kind::Gap.as_str(), Kind::Segment.as_str());
        let base = record_hash(10, gap, "{}", None, &GENESIS);
        assert_ne!(base, record_hash(11, gap, "{}", None, &GENESIS));
        assert_ne!(base, record_hash(10, segment, "{}", None, &GENESIS));
        assert_ne!(base, record_hash(10, gap, "{\"a\":1}", None, &GENESIS));
        assert_ne!(base, record_hash(10, gap, "{}", Some(&f), &GENESIS));
        assert_ne!(base, record_hash(10, gap, "{}", None, &[1u8; 32]));
        // Length prefixes: moving bytes between type and payload changes the hash.
        assert_ne!(
            record_hash(10, "ab", "c", None, &GENESIS),
            record_hash(10, "a", "bc", None, &GENESIS)
        );
    }

    /// The layout of docs/evidence.md, byte for byte, so that an independent verifier written
    /// from the docs agrees with this one.
    #[test]
    fn hash_layout_matches_the_spec() {
        let prev = [0xabu8; 32];
        let file = [0x11u8; 32];
        let mut bytes = b"classproof record v1\0".to_vec();
        bytes.extend_from_slice(&prev);
        bytes.extend_from_slice(&1_800_000_000_000_000i64.to_be_bytes());
        bytes.extend_from_slice(&[0, 0, 0, 7]);
        bytes.extend_from_slice(Kind::Segment.as_str().as_bytes());
        bytes.extend_from_slice(&[0, 0, 0, 7]);
        bytes.extend_from_slice(b"{\"a\":1}");
        bytes.push(1);
        bytes.extend_from_slice(&file);
        let want = ring::digest::digest(&SHA256, &bytes);
        let got = record_hash(
            1_800_000_000_000_000,
            Kind::Segment.as_str(),
            "{\"a\":1}",
            Some(&file),
            &prev,
        );
        assert_eq!(&got[..], want.as_ref());
    }

    #[test]
    fn appends_chain_and_index_files() {
        use crate::evidence::record::{Gap, Segment};
        use crate::media::GapCause;
        use crate::media::index::SegmentState;
        let dir = tempfile::tempdir().unwrap();
        let mut conn = crate::db::open(dir.path()).unwrap();
        let t = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let gap = Record::Gap(Gap {
            camera: "a".into(),
            start_us: 1,
            end_us: 2,
            cause: GapCause::Stall,
            detail: None,
        });
        let seg = |sha: &str| {
            Record::Segment(Segment {
                camera: "a".into(),
                path: "video/a.mp4".into(),
                start_us: 2,
                end_us: 3,
                media_duration_us: 1,
                bytes: 10,
                stream_id: "s".into(),
                stream_seq: 0,
                state: SegmentState::Closed,
                codec: "h264".into(),
                sha256: sha.into(),
            })
        };
        let tx = crate::db::write_tx(&mut conn).unwrap();
        let (s1, h1) = append(&tx, t, &gap).unwrap();
        let (s2, _) = append(&tx, t, &seg(&"ab".repeat(32))).unwrap();
        assert!(matches!(
            append(&tx, t, &seg(&"AB".repeat(32))),
            Err(LogError::BadFileHash { .. })
        ));
        tx.commit().unwrap();
        assert_eq!((s1, s2), (1, 2));
        let rows = read_raw(&conn, 1, 10, 10).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].prev_hash, GENESIS.to_vec());
        assert_eq!(rows[1].prev_hash, h1.to_vec());
        for r in &rows {
            assert_eq!(r.recompute().unwrap().to_vec(), r.hash);
        }
        assert_eq!(rows[1].file_path().as_deref(), Some("video/a.mp4"));
        assert_eq!(rows[0].file_path(), None);
        let segs = read_filtered(&conn, None, Some(Kind::Segment)).unwrap();
        assert_eq!(segs.len(), 1);
        assert_eq!(segs[0].record, seg(&"ab".repeat(32)));
        assert_eq!(read_filtered(&conn, None, None).unwrap()[0].record, gap);
        let files = crate::evidence::store::file_by_seq(&conn, 2).unwrap().unwrap();
        assert_eq!(
            (files.path.as_str(), files.bytes, files.time_us),
            ("video/a.mp4", Some(10), t.timestamp_micros())
        );
        assert_eq!(head(&conn).unwrap().unwrap().0, 2);
    }

    /// A row the code does not know how to read is an error naming it (issue 8, item 4).
    #[test]
    fn an_unreadable_row_is_an_error_naming_its_seq() {
        let dir = tempfile::tempdir().unwrap();
        let conn = crate::db::open(dir.path()).unwrap();
        conn.execute(
            "INSERT INTO log (seq, time_us, type, payload, file_sha256, prev_hash, hash)
             VALUES (1, 5, ?1, ?2, NULL, ?3, ?3)",
            params![
                Kind::Gap.as_str(),
                r#"{"camera":"a","cause":"hail","detail":null,"end_us":2,"start_us":1}"#,
                &GENESIS[..]
            ],
        )
        .unwrap();
        let e = read_filtered(&conn, None, None).unwrap_err().to_string();
        assert!(
            e.contains("record 1 (gap)") && e.contains("unknown gap cause \"hail\""),
            "{e}"
        );
    }
}
