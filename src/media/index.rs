//! The segment and gap index (`segments`, `gaps` tables): what was recorded and what is
//! missing, per camera, in time order.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OptionalExtension, Row, Transaction, params};

use super::{ClosedSegment, GapCause};

/// Life of a segment row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SegmentState {
    /// Being written.
    Recording,
    /// Finished cleanly.
    Closed,
    /// Left open by a crash; repaired and indexed at start-up.
    Recovered,
    /// Left open by a crash and not playable; the file is kept as found.
    Damaged,
}

impl SegmentState {
    pub const ALL: [SegmentState; 4] = [
        SegmentState::Recording,
        SegmentState::Closed,
        SegmentState::Recovered,
        SegmentState::Damaged,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SegmentState::Recording => "recording",
            SegmentState::Closed => "closed",
            SegmentState::Recovered => "recovered",
            SegmentState::Damaged => "damaged",
        }
    }

    /// The state named `s`; `None` for a name this version does not know (never another
    /// state: issue 8, item 4).
    pub fn parse(s: &str) -> Option<SegmentState> {
        SegmentState::ALL.into_iter().find(|x| x.as_str() == s)
    }
}

/// A value in an index row that this version does not know: reading the row fails, naming
/// it, instead of reading a different fact.
#[derive(Debug)]
pub struct UnknownValue {
    pub table: &'static str,
    pub id: i64,
    pub column: &'static str,
    pub value: String,
}

impl std::fmt::Display for UnknownValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} row {}: unknown {} {:?}",
            self.table, self.id, self.column, self.value
        )
    }
}

impl std::error::Error for UnknownValue {}

fn known<T>(
    parsed: Option<T>,
    col: usize,
    table: &'static str,
    id: i64,
    column: &'static str,
    value: String,
) -> rusqlite::Result<T> {
    parsed.ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            col,
            rusqlite::types::Type::Text,
            Box::new(UnknownValue {
                table,
                id,
                column,
                value,
            }),
        )
    })
}

/// A row of `segments`.
#[derive(Debug, Clone, PartialEq)]
pub struct SegmentRow {
    pub id: i64,
    pub camera: String,
    pub stream_id: String,
    pub stream_seq: u32,
    /// Relative to the data dir.
    pub path: PathBuf,
    pub codec: String,
    pub start_us: i64,
    pub end_us: Option<i64>,
    pub media_duration_us: Option<i64>,
    pub bytes: Option<u64>,
    pub sha256: Option<String>,
    pub state: SegmentState,
}

/// A row of `gaps`.
#[derive(Debug, Clone, PartialEq)]
pub struct GapRow {
    pub id: i64,
    pub camera: String,
    pub start_us: i64,
    /// `None` while the gap is still open.
    pub end_us: Option<i64>,
    /// A row whose cause this version does not know does not read (an error naming it).
    pub cause: GapCause,
    pub detail: Option<String>,
    pub detected_us: i64,
}

/// One entry of a camera's timeline.
#[derive(Debug, Clone, PartialEq)]
pub enum Entry {
    Segment(SegmentRow),
    Gap(GapRow),
}

impl Entry {
    pub fn camera(&self) -> &str {
        match self {
            Entry::Segment(s) => &s.camera,
            Entry::Gap(g) => &g.camera,
        }
    }

    pub fn start_us(&self) -> i64 {
        match self {
            Entry::Segment(s) => s.start_us,
            Entry::Gap(g) => g.start_us,
        }
    }

    pub fn end_us(&self) -> Option<i64> {
        match self {
            Entry::Segment(s) => s.end_us,
            Entry::Gap(g) => g.end_us,
        }
    }
}

const SEGMENT_COLUMNS: &str = "id, camera, stream_id, stream_seq, path, codec, start_us, end_us, \
                               media_duration_us, bytes, sha256, state";
const GAP_COLUMNS: &str = "id, camera, start_us, end_us, cause, detail, detected_us";

fn segment_row(r: &Row) -> rusqlite::Result<SegmentRow> {
    let id: i64 = r.get(0)?;
    let state: String = r.get(11)?;
    Ok(SegmentRow {
        id,
        camera: r.get(1)?,
        stream_id: r.get(2)?,
        stream_seq: r.get(3)?,
        path: PathBuf::from(r.get::<_, String>(4)?),
        codec: r.get(5)?,
        start_us: r.get(6)?,
        end_us: r.get(7)?,
        media_duration_us: r.get(8)?,
        bytes: r.get::<_, Option<i64>>(9)?.map(|b| b as u64),
        sha256: r.get(10)?,
        state: known(SegmentState::parse(&state), 11, "segments", id, "state", state)?,
    })
}

fn gap_row(r: &Row) -> rusqlite::Result<GapRow> {
    let id: i64 = r.get(0)?;
    let cause: String = r.get(4)?;
    Ok(GapRow {
        id,
        camera: r.get(1)?,
        start_us: r.get(2)?,
        end_us: r.get(3)?,
        cause: known(GapCause::parse(&cause), 4, "gaps", id, "cause", cause)?,
        detail: r.get(5)?,
        detected_us: r.get(6)?,
    })
}

fn path_str(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// Records a segment that started being written.
pub fn insert_recording_segment(
    tx: &Transaction,
    camera: &str,
    stream_id: &str,
    stream_seq: u32,
    path: &Path,
    codec: &str,
    start_us: i64,
) -> rusqlite::Result<i64> {
    tx.execute(
        "INSERT INTO segments (camera, stream_id, stream_seq, path, codec, start_us, state)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'recording')
         ON CONFLICT (path) DO NOTHING",
        params![camera, stream_id, stream_seq, path_str(path), codec, start_us],
    )?;
    Ok(tx.last_insert_rowid())
}

/// Records a finished segment (inserting the row if its opening was never recorded).
pub fn finish_segment(
    tx: &Transaction,
    s: &ClosedSegment,
    state: SegmentState,
    log_seq: Option<i64>,
) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT INTO segments (camera, stream_id, stream_seq, path, codec, start_us, end_us,
                               media_duration_us, bytes, sha256, state, log_seq)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
         ON CONFLICT (path) DO UPDATE SET
             start_us = excluded.start_us, end_us = excluded.end_us,
             media_duration_us = excluded.media_duration_us, bytes = excluded.bytes,
             sha256 = excluded.sha256, state = excluded.state, log_seq = excluded.log_seq",
        params![
            s.camera,
            s.stream_id,
            s.stream_seq,
            path_str(&s.path),
            s.codec,
            s.start.timestamp_micros(),
            s.end.timestamp_micros(),
            s.media_duration.as_micros() as i64,
            s.bytes as i64,
            s.sha256,
            state.as_str(),
            log_seq
        ],
    )?;
    Ok(())
}

/// Opens a gap; returns its id.
pub fn open_gap(
    tx: &Transaction,
    camera: &str,
    start_us: i64,
    cause: GapCause,
    detail: &str,
    detected_us: i64,
) -> rusqlite::Result<i64> {
    tx.execute(
        "INSERT INTO gaps (camera, start_us, cause, detail, detected_us) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![camera, start_us, cause.as_str(), detail, detected_us],
    )?;
    Ok(tx.last_insert_rowid())
}

/// Closes an open gap.
pub fn close_gap(tx: &Transaction, id: i64, end_us: i64, log_seq: Option<i64>) -> rusqlite::Result<()> {
    tx.execute(
        "UPDATE gaps SET end_us = max(start_us, ?2), log_seq = ?3 WHERE id = ?1",
        params![id, end_us, log_seq],
    )?;
    Ok(())
}

/// Gaps still open (after a crash: to be closed at start-up).
pub fn open_gaps(conn: &Connection) -> rusqlite::Result<Vec<GapRow>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {GAP_COLUMNS} FROM gaps WHERE end_us IS NULL ORDER BY id"
    ))?;
    stmt.query_map([], gap_row)?.collect()
}

/// Segments still marked as being written (after a crash: to be recovered at start-up).
pub fn recording_segments(conn: &Connection) -> rusqlite::Result<Vec<SegmentRow>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {SEGMENT_COLUMNS} FROM segments WHERE state = 'recording' ORDER BY id"
    ))?;
    stmt.query_map([], segment_row)?.collect()
}

/// A segment by path (relative to the data dir).
pub fn segment_by_path(conn: &Connection, path: &Path) -> rusqlite::Result<Option<SegmentRow>> {
    conn.query_row(
        &format!("SELECT {SEGMENT_COLUMNS} FROM segments WHERE path = ?1"),
        [path_str(path)],
        segment_row,
    )
    .optional()
}

/// Where the camera's known timeline ends: the latest end of a segment or a closed gap.
pub fn last_end_us(conn: &Connection, camera: &str) -> rusqlite::Result<Option<i64>> {
    conn.query_row(
        "SELECT max(e) FROM (
             SELECT max(end_us) AS e FROM segments WHERE camera = ?1
             UNION ALL SELECT max(end_us) FROM gaps WHERE camera = ?1)",
        [camera],
        |r| r.get(0),
    )
}

/// Start of the camera's latest segment, if any.
pub fn last_segment_start_us(conn: &Connection, camera: &str) -> rusqlite::Result<Option<i64>> {
    conn.query_row(
        "SELECT max(start_us) FROM segments WHERE camera = ?1",
        [camera],
        |r| r.get(0),
    )
}

/// Every camera that has anything in the index.
pub fn cameras(conn: &Connection) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare("SELECT camera FROM segments UNION SELECT camera FROM gaps ORDER BY 1")?;
    stmt.query_map([], |r| r.get(0))?.collect()
}

/// Segments and gaps overlapping `[from_us, to_us)` (open entries count as reaching `now`),
/// ordered by camera, then start time, then end time.
pub fn timeline(
    conn: &Connection,
    camera: Option<&str>,
    from_us: Option<i64>,
    to_us: Option<i64>,
) -> rusqlite::Result<Vec<Entry>> {
    let from = from_us.unwrap_or(i64::MIN);
    let to = to_us.unwrap_or(i64::MAX);
    let mut out = Vec::new();
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {SEGMENT_COLUMNS} FROM segments
         WHERE (?1 IS NULL OR camera = ?1) AND start_us < ?3 AND (end_us IS NULL OR end_us > ?2)"
    ))?;
    for row in stmt.query_map(params![camera, from, to], segment_row)? {
        out.push(Entry::Segment(row?));
    }
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {GAP_COLUMNS} FROM gaps
         WHERE (?1 IS NULL OR camera = ?1) AND start_us < ?3 AND (end_us IS NULL OR end_us > ?2)"
    ))?;
    for row in stmt.query_map(params![camera, from, to], gap_row)? {
        out.push(Entry::Gap(row?));
    }
    // By camera, start, then end (open entries last): an empty damaged segment comes before
    // the gap that starts where it does.
    out.sort_by(|a, b| {
        let key = |e: &Entry| (e.start_us(), e.end_us().unwrap_or(i64::MAX));
        a.camera().cmp(b.camera()).then(key(a).cmp(&key(b)))
    });
    Ok(out)
}

/// Gaps of `camera` starting exactly at `start_us` (read-only; used by `evidence::verify` to
/// check each `gap` record against its row through the (camera, start_us) index).
pub fn gaps_starting_at(conn: &Connection, camera: &str, start_us: i64) -> rusqlite::Result<Vec<GapRow>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {GAP_COLUMNS} FROM gaps WHERE camera = ?1 AND start_us = ?2 ORDER BY id"
    ))?;
    stmt.query_map(params![camera, start_us], gap_row)?.collect()
}

/// How many finished segments (not `recording`) and closed gaps end in `[from_us, to_us]`
/// (read-only; `evidence::verify` compares them with the records that vouch for them).
pub fn count_finished(conn: &Connection, from_us: i64, to_us: i64) -> rusqlite::Result<(u64, u64)> {
    let segments: i64 = conn.query_row(
        "SELECT count(*) FROM segments WHERE state != 'recording' AND end_us >= ?1 AND end_us <= ?2",
        params![from_us, to_us],
        |r| r.get(0),
    )?;
    let gaps: i64 = conn.query_row(
        "SELECT count(*) FROM gaps WHERE end_us IS NOT NULL AND end_us >= ?1 AND end_us <= ?2",
        params![from_us, to_us],
        |r| r.get(0),
    )?;
    Ok((segments as u64, gaps as u64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db;
    use chrono::{DateTime, Utc};
    use std::time::Duration;

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + s, 0).unwrap()
    }

    fn closed(cam: &str, seq: u32, a: i64, b: i64) -> ClosedSegment {
        ClosedSegment {
            camera: cam.into(),
            stream_id: "s1".into(),
            stream_seq: seq,
            path: PathBuf::from(format!("video/{cam}/{seq}.mp4")),
            codec: "h264".into(),
            start: t(a),
            end: t(b),
            media_duration: Duration::from_secs((b - a) as u64),
            bytes: 10,
            sha256: "00".into(),
        }
    }

    #[test]
    fn timeline_is_ordered_and_filtered() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = db::open(dir.path()).unwrap();
        let tx = db::write_tx(&mut conn).unwrap();
        insert_recording_segment(
            &tx,
            "a",
            "s1",
            0,
            Path::new("video/a/0.mp4"),
            "h264",
            t(0).timestamp_micros(),
        )
        .unwrap();
        finish_segment(&tx, &closed("a", 0, 0, 60), SegmentState::Closed, None).unwrap();
        let g = open_gap(
            &tx,
            "a",
            t(60).timestamp_micros(),
            GapCause::Stall,
            "",
            t(65).timestamp_micros(),
        )
        .unwrap();
        close_gap(&tx, g, t(70).timestamp_micros(), None).unwrap();
        finish_segment(&tx, &closed("a", 1, 70, 130), SegmentState::Closed, None).unwrap();
        finish_segment(&tx, &closed("b", 0, 0, 60), SegmentState::Closed, None).unwrap();
        tx.commit().unwrap();

        let all = timeline(&conn, None, None, None).unwrap();
        let kinds: Vec<_> = all
            .iter()
            .map(|e| (e.camera().to_string(), e.start_us(), matches!(e, Entry::Gap(_))))
            .collect();
        assert_eq!(kinds.len(), 4);
        assert_eq!(kinds[1], ("a".into(), t(60).timestamp_micros(), true));
        assert_eq!(kinds[3].0, "b");
        let a_late = timeline(&conn, Some("a"), Some(t(65).timestamp_micros()), None).unwrap();
        assert_eq!(a_late.len(), 2);
        assert_eq!(last_end_us(&conn, "a").unwrap(), Some(t(130).timestamp_micros()));
        assert!(recording_segments(&conn).unwrap().is_empty());
        assert!(open_gaps(&conn).unwrap().is_empty());
    }

    /// Issue 8, item 4: an unknown state or cause read back is an error naming the row, not
    /// `damaged` or `camera_lost`.
    #[test]
    fn unknown_values_in_rows_are_errors_naming_the_row() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = db::open(dir.path()).unwrap();
        let tx = db::write_tx(&mut conn).unwrap();
        finish_segment(&tx, &closed("a", 0, 0, 60), SegmentState::Closed, None).unwrap();
        let g = open_gap(
            &tx,
            "a",
            t(60).timestamp_micros(),
            GapCause::Stall,
            "",
            t(61).timestamp_micros(),
        )
        .unwrap();
        tx.commit().unwrap();
        conn.execute_batch("UPDATE segments SET state = 'melted'; UPDATE gaps SET cause = 'hail';")
            .unwrap();
        let e = segment_by_path(&conn, Path::new("video/a/0.mp4"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("segments row 1: unknown state \"melted\""), "{e}");
        let e = open_gaps(&conn).unwrap_err().to_string();
        assert!(
            e.contains(&format!("gaps row {g}: unknown cause \"hail\"")),
            "{e}"
        );
        assert!(timeline(&conn, None, None, None).is_err());
    }
}
