//! `classproof.db`: the one SQLite file (WAL) holding the segment index, gaps, the evidence log
//! and, as features land, the roster, gallery and outbox.
//!
//! Architecture invariant: this is the only file that knows the table layouts of more than one
//! module. Each module keeps the queries on its own tables beside its code (`media::index`,
//! `evidence::log`, …); the schema and its migrations live here, in one ordered list.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, Transaction, TransactionBehavior};
use thiserror::Error;

/// File name of the database inside the data dir.
pub const DB_FILE: &str = "classproof.db";

#[derive(Debug, Error)]
pub enum DbError {
    #[error("{path}: cannot open the database: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("{path}: migration to schema version {version} failed: {source}")]
    Migrate {
        path: PathBuf,
        version: usize,
        #[source]
        source: rusqlite::Error,
    },
    #[error(
        "{path}: schema version {found} is newer than this classproof understands ({known}); \
         refusing to touch it (install the newer classproof again)"
    )]
    TooNew {
        path: PathBuf,
        found: usize,
        known: usize,
    },
    #[error("database error: {0}")]
    Sql(#[from] rusqlite::Error),
}

/// Schema migrations, applied in order; `user_version` is the number applied. Nothing is
/// deployed yet, so slots may still be edited in place; once released, only append.
const MIGRATIONS: &[&str] = &[
    // 1: recording backbone (media::index) and the evidence log (evidence::log).
    r#"
    CREATE TABLE meta (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    -- One row per segment file. `state`: recording (open, being written), closed (finished
    -- cleanly), recovered (left open by a crash, repaired and indexed at start-up), damaged
    -- (left open and not playable; the file is kept).
    CREATE TABLE segments (
        id                INTEGER PRIMARY KEY,
        camera            TEXT    NOT NULL,
        stream_id         TEXT    NOT NULL,   -- new for every camera connection
        stream_seq        INTEGER NOT NULL,   -- 0, 1, 2… within the stream
        path              TEXT    NOT NULL UNIQUE, -- relative to the data dir
        codec             TEXT    NOT NULL,
        start_us          INTEGER NOT NULL,   -- wall clock, µs since the Unix epoch
        end_us            INTEGER,
        media_duration_us INTEGER,
        bytes             INTEGER,
        sha256            TEXT,
        state             TEXT    NOT NULL,
        log_seq           INTEGER             -- the evidence record of this segment
    );
    CREATE INDEX segments_camera_start ON segments (camera, start_us);
    -- Holes in a camera's recording. `end_us` is NULL while the gap is still open.
    CREATE TABLE gaps (
        id          INTEGER PRIMARY KEY,
        camera      TEXT    NOT NULL,
        start_us    INTEGER NOT NULL,
        end_us      INTEGER,
        cause       TEXT    NOT NULL,
        detail      TEXT,
        detected_us INTEGER NOT NULL,         -- when the daemon noticed the hole
        log_seq     INTEGER
    );
    CREATE INDEX gaps_camera_start ON gaps (camera, start_us);
    -- The hash-chained evidence log.
    CREATE TABLE log (
        seq         INTEGER PRIMARY KEY,
        time_us     INTEGER NOT NULL,
        type        TEXT    NOT NULL,
        payload     TEXT    NOT NULL,
        file_sha256 TEXT,
        prev_hash   BLOB    NOT NULL,
        hash        BLOB    NOT NULL
    );
    CREATE INDEX log_type_time ON log (type, time_us);
    CREATE INDEX log_time ON log (time_us);
    "#,
    // 2: vision and attendance: the roster (persons) and their face templates (the gallery).
    // R15: `id_number` is shown masked everywhere (logging::mask_id_number); templates are
    // sensitive personal data and are deleted with their person.
    r#"
    CREATE TABLE persons (
        person_id   TEXT PRIMARY KEY,
        name        TEXT    NOT NULL,
        role        TEXT    NOT NULL CHECK (role IN ('trainee', 'teacher')),
        id_number   TEXT,                     -- ID-card number; never logged or shown in full
        enrolled_us INTEGER NOT NULL,
        updated_us  INTEGER NOT NULL
    );
    -- One row per enrolled photo: the unit-length embedding of the recognition model `model`
    -- (templates of another model are never compared with it).
    CREATE TABLE templates (
        id           INTEGER PRIMARY KEY,
        person_id    TEXT    NOT NULL REFERENCES persons (person_id) ON DELETE CASCADE,
        model        TEXT    NOT NULL,
        dim          INTEGER NOT NULL,
        vector       BLOB    NOT NULL,        -- dim little-endian f32
        photo_sha256 TEXT    NOT NULL,
        face_px      INTEGER NOT NULL,        -- shorter side of the detector box
        det_score    REAL    NOT NULL,
        sharpness    REAL    NOT NULL,
        liveness     REAL,                    -- fused P(real); NULL when not checked
        created_us   INTEGER NOT NULL,
        UNIQUE (person_id, model, photo_sha256)
    );
    CREATE INDEX templates_model_person ON templates (model, person_id);
    "#,
    // 3: evidence (evidence::store): the device's public keys, signed checkpoints, and the
    // retention index of files referenced by log records.
    r#"
    CREATE TABLE evidence_keys (
        fingerprint TEXT PRIMARY KEY,         -- first 16 bytes of sha256(public key), hex
        public_key  TEXT    NOT NULL,         -- "ed25519:" + 64 hex
        created_us  INTEGER NOT NULL,
        retired_us  INTEGER,                  -- set when rotated away
        retired_seq INTEGER                   -- the `key_rotated` record that retired it
    );
    -- Signed checkpoints of the log: the exact signed text (docs/evidence.md).
    CREATE TABLE checkpoints (
        id              INTEGER PRIMARY KEY,
        seq             INTEGER NOT NULL,
        time_us         INTEGER NOT NULL,
        key_fingerprint TEXT    NOT NULL,
        text            TEXT    NOT NULL
    );
    CREATE INDEX checkpoints_seq ON checkpoints (seq);
    -- One row per log record that refers to a file (written by evidence::log::append),
    -- so retention finds expired files and verify finds unreferenced ones without scanning the
    -- log. Derived from the log; verify checks every row against its record.
    CREATE TABLE evidence_files (
        seq        INTEGER PRIMARY KEY,       -- the record that refers to the file
        path       TEXT    NOT NULL,          -- relative to the data dir
        sha256     TEXT    NOT NULL,
        bytes      INTEGER,
        time_us    INTEGER NOT NULL,          -- age counts from here (R6)
        pruned_seq INTEGER                    -- the `pruned` record, once deleted
    );
    CREATE INDEX evidence_files_path ON evidence_files (path);
    CREATE INDEX evidence_files_live ON evidence_files (time_us) WHERE pruned_seq IS NULL;
    "#,
    // 4: compliance. Reserved.
    "",
    // 5: attendance (attendance::roster): the classes (班次) a person belongs to, zero or more.
    // A session expects the trainees of its `class_id`; deleted with the person.
    r#"
    CREATE TABLE person_classes (
        person_id TEXT NOT NULL REFERENCES persons (person_id) ON DELETE CASCADE,
        class_id  TEXT NOT NULL,
        PRIMARY KEY (person_id, class_id)
    );
    CREATE INDEX person_classes_class ON person_classes (class_id);
    "#,
    // 6: classroom presence (issue 11, daemon::presence): who the classroom cameras recognised,
    // per occurrence, person, camera and second (first/last time in that second), and the
    // most faces in one frame per class hour. Written by the analysis job in its own small
    // transactions so that a restart loses no sighting; the evidence log holds the facts
    // derived from them (`presence`, `spot_check`, `left_early`).
    r#"
    CREATE TABLE sightings (
        session   TEXT    NOT NULL,
        person_id TEXT    NOT NULL,
        camera    TEXT    NOT NULL,
        bucket_s  INTEGER NOT NULL,
        first_us  INTEGER NOT NULL,
        last_us   INTEGER NOT NULL,
        PRIMARY KEY (session, person_id, camera, bucket_s)
    );
    CREATE TABLE head_counts (
        session    TEXT    NOT NULL,
        class_hour INTEGER NOT NULL,
        camera     TEXT    NOT NULL,
        head_count INTEGER NOT NULL,
        frames     INTEGER NOT NULL,
        PRIMARY KEY (session, class_hour, camera)
    );
    "#,
    // 7: downlink (issue 10, sync): the ids of accepted commands, remembered until they expire
    // (a replay is rejected), and the sessions a `schedule.update` stored (judged like those
    // of the config file). `IF NOT EXISTS`: development builds created them on first use.
    r#"
    CREATE TABLE IF NOT EXISTS command_ids (
        id         TEXT PRIMARY KEY,
        expires_us INTEGER NOT NULL,
        log_seq    INTEGER NOT NULL
    );
    CREATE TABLE IF NOT EXISTS stored_sessions (
        id         TEXT PRIMARY KEY,
        toml       TEXT NOT NULL,
        command_id TEXT NOT NULL,
        updated_us INTEGER NOT NULL
    );
    "#,
];

/// Opens (creating if needed) the database in `data_dir`, applies migrations and sets the
/// pragmas every connection needs.
pub fn open(data_dir: &Path) -> Result<Connection, DbError> {
    std::fs::create_dir_all(data_dir).map_err(|e| DbError::Open {
        path: data_dir.to_path_buf(),
        source: rusqlite::Error::InvalidPath(PathBuf::from(e.to_string())),
    })?;
    open_file(&data_dir.join(DB_FILE))
}

/// Opens the database file itself.
pub fn open_file(path: &Path) -> Result<Connection, DbError> {
    let open_err = |source| DbError::Open {
        path: path.to_path_buf(),
        source,
    };
    let mut conn = Connection::open(path).map_err(open_err)?;
    configure(&conn).map_err(open_err)?;
    migrate(&mut conn, path)?;
    Ok(conn)
}

/// Folds the write-ahead log into the database file and empties it, so that the file is
/// self-contained (a copy or backup of `classproof.db` alone is complete). Called when the
/// daemon stops: without it, a read-only connection closing last (the status server's, the
/// watchdog's) leaves the log beside the file, since only a writer can fold it in.
pub fn checkpoint(data_dir: &Path) -> Result<(), DbError> {
    let path = data_dir.join(DB_FILE);
    if !path.exists() {
        return Ok(());
    }
    let conn = Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_WRITE)
        .map_err(|source| DbError::Open { path, source })?;
    conn.busy_timeout(Duration::from_secs(2))?;
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    Ok(())
}

/// Opens an existing database read-only (for `segments`, `report`, `verify`): never creates
/// or migrates anything. `None` when the daemon has not created it yet.
pub fn open_existing(data_dir: &Path) -> Result<Option<Connection>, DbError> {
    if !data_dir.join(DB_FILE).exists() {
        return Ok(None);
    }
    let (conn, version) = open_read_only_at(data_dir)?;
    Ok((version > 0).then_some(conn))
}

/// Opens an existing database read-only; an error if it does not exist.
pub fn open_read_only(data_dir: &Path) -> Result<Connection, DbError> {
    Ok(open_read_only_at(data_dir)?.0)
}

/// A read-only connection and the schema version it found.
fn open_read_only_at(data_dir: &Path) -> Result<(Connection, usize), DbError> {
    let path = data_dir.join(DB_FILE);
    let conn = Connection::open_with_flags(
        &path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|source| DbError::Open {
        path: path.clone(),
        source,
    })?;
    conn.busy_timeout(Duration::from_secs(5))?;
    let version = schema_version(&conn, &path)?;
    Ok((conn, version))
}

/// The schema version of a database; an error if it is newer than this build knows.
fn schema_version(conn: &Connection, path: &Path) -> Result<usize, DbError> {
    let version = conn.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))? as usize;
    if version > MIGRATIONS.len() {
        return Err(DbError::TooNew {
            path: path.to_path_buf(),
            found: version,
            known: MIGRATIONS.len(),
        });
    }
    Ok(version)
}

fn configure(conn: &Connection) -> rusqlite::Result<()> {
    // The busy timeout first: switching to WAL needs a lock that another job opening the
    // database at the same moment (and migrating it) may hold.
    conn.busy_timeout(Duration::from_secs(10))?;
    // WAL: readers never block the writer. synchronous=FULL: a commit is on disk when it
    // returns, which is what "durable before acknowledged" means for the evidence log.
    // Changing the journal mode can answer SQLITE_BUSY without calling the busy handler (while
    // another connection creates the database): retried here for as long as the timeout.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        match conn.pragma_update(None, "journal_mode", "WAL") {
            Err(rusqlite::Error::SqliteFailure(f, _))
                if matches!(
                    f.code,
                    rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
                ) && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(5));
            }
            other => break other?,
        }
    }
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(())
}

fn migrate(conn: &mut Connection, path: &Path) -> Result<(), DbError> {
    let version = schema_version(conn, path)?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version) {
        let v = i + 1;
        let err = |source| DbError::Migrate {
            path: path.to_path_buf(),
            version: v,
            source,
        };
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(err)?;
        // Another connection (a job of the same daemon starting at the same moment) may have
        // migrated while this one waited for the write lock: read the version again under it.
        let now: i64 = tx
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(err)?;
        if now as usize >= v {
            continue;
        }
        tx.execute_batch(sql).map_err(err)?;
        tx.pragma_update(None, "user_version", v as i64).map_err(err)?;
        tx.commit().map_err(err)?;
    }
    Ok(())
}

/// Starts a write transaction that takes the write lock at once (`BEGIN IMMEDIATE`), so that
/// read-then-write sequences such as appending to the evidence log are serialised across
/// connections and processes.
pub fn write_tx(conn: &mut Connection) -> rusqlite::Result<Transaction<'_>> {
    conn.transaction_with_behavior(TransactionBehavior::Immediate)
}

/// A value of the `meta` table.
pub fn meta_get(conn: &Connection, key: &str) -> rusqlite::Result<Option<String>> {
    use rusqlite::OptionalExtension;
    conn.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
        .optional()
}

/// Sets a value of the `meta` table.
pub fn meta_set(conn: &Connection, key: &str, value: &str) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO meta (key, value) VALUES (?1, ?2)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        [key, value],
    )?;
    Ok(())
}

/// A failure that may go away by itself (a busy or locked database, a full disk, an I/O error,
/// a file system turned read-only): retried with back-off. Anything else is permanent for the
/// operation that met it.
pub fn is_transient(e: &rusqlite::Error) -> bool {
    use rusqlite::ErrorCode as C;
    match e {
        rusqlite::Error::SqliteFailure(f, _) => matches!(
            f.code,
            C::DatabaseBusy
                | C::DatabaseLocked
                | C::DiskFull
                | C::SystemIoFailure
                | C::ReadOnly
                | C::CannotOpen
                | C::OutOfMemory
                | C::FileLockingProtocolFailed
        ),
        _ => false,
    }
}

impl DbError {
    /// See [`is_transient`].
    pub fn is_transient(&self) -> bool {
        match self {
            DbError::Open { source, .. } | DbError::Migrate { source, .. } | DbError::Sql(source) => {
                is_transient(source)
            }
            DbError::TooNew { .. } => false,
        }
    }
}

/// An I/O error that may go away by itself: a full disk, a read-only or failing file system,
/// an interrupted call.
pub fn is_transient_io(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(
            libc::ENOSPC | libc::EDQUOT | libc::EROFS | libc::EIO | libc::EINTR | libc::EAGAIN | libc::EBUSY
        )
    ) || matches!(
        e.kind(),
        std::io::ErrorKind::StorageFull
            | std::io::ErrorKind::ReadOnlyFilesystem
            | std::io::ErrorKind::Interrupted
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_opening_a_new_database_at_the_same_moment_all_succeed() {
        // The daemon's jobs start together and each opens the database: the first start on a
        // new box migrates it while the others wait (it once failed "table persons already
        // exists").
        for _ in 0..20 {
            let dir = tempfile::tempdir().unwrap();
            let handles: Vec<_> = (0..4)
                .map(|_| {
                    let d = dir.path().to_path_buf();
                    std::thread::spawn(move || open(&d).map(|_| ()))
                })
                .collect();
            for h in handles {
                h.join().unwrap().unwrap();
            }
        }
    }

    #[test]
    fn opens_migrates_and_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let conn = open(dir.path()).unwrap();
        let v = conn
            .query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))
            .unwrap() as usize;
        assert_eq!(v, MIGRATIONS.len());
        let mode: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0)).unwrap();
        assert_eq!(mode, "wal");
        meta_set(&conn, "k", "v").unwrap();
        drop(conn);
        let conn = open(dir.path()).unwrap();
        assert_eq!(meta_get(&conn, "k").unwrap().as_deref(), Some("v"));
    }

    #[test]
    fn refuses_a_newer_schema() {
        let dir = tempfile::tempdir().unwrap();
        let conn = open(dir.path()).unwrap();
        conn.pragma_update(None, "user_version", 999).unwrap();
        drop(conn);
        let e = open(dir.path()).unwrap_err();
        assert!(e.to_string().contains("newer than this classproof"), "{e}");
    }
}
