//! Sessions sent by the platform (`schedule.update`), stored in the database and judged like
//! the config file's `[[session]]`s, which win on an id clash.
//!
//! A stored session is its `[[session]]` table as TOML text, read back by the very code that
//! reads the config file (`SessionConfig::read`, the same checks against the rule profile and
//! the cameras). Everything that judges sessions (the verdicts job, `classproof report`) takes
//! them through [`effective`].

use std::sync::Arc;

use rusqlite::{Connection, OptionalExtension, params};
use serde_json::Value;

use crate::compliance::schedule::SessionConfig;
use crate::config::{Config, Problems, Section};
use crate::db;

/// `meta` key bumped by every change to the stored sessions.
pub const VERSION_KEY: &str = "stored_sessions_version";

/// The version of the stored sessions (0 before any).
pub fn version(conn: &Connection) -> rusqlite::Result<i64> {
    Ok(db::meta_get(conn, VERSION_KEY)?
        .and_then(|v| v.parse().ok())
        .unwrap_or(0))
}

fn read_one(config: &Config, table: &toml::Table, name: &str, p: &mut Problems) -> Option<SessionConfig> {
    let cameras: Vec<&str> = config.cameras.iter().map(|c| c.id.as_str()).collect();
    let base = config.file.parent().unwrap_or(std::path::Path::new("."));
    let s = Section::root(table, base);
    let mut own = Problems::default();
    let read = SessionConfig::read(&s, &mut own, &config.rules, &cameras);
    s.finish(&mut own);
    let ok = own.0.is_empty();
    for mut problem in own.0 {
        problem.key = format!("{name}.{}", problem.key);
        p.0.push(problem);
    }
    if ok { read } else { None }
}

/// Checks the sessions of a `schedule.update` (JSON objects with the keys of `[[session]]`):
/// each as TOML text to store, or every problem, named `sessions[i].key`.
pub fn validate(config: &Config, sessions: &[Value]) -> Result<Vec<(String, String)>, Vec<String>> {
    let mut p = Problems::default();
    let mut out = Vec::new();
    let mut ids = std::collections::BTreeSet::new();
    for (i, v) in sessions.iter().enumerate() {
        let name = format!("sessions[{i}]");
        let table: toml::Table = match serde_json::from_value(v.clone()) {
            Ok(t) => t,
            Err(e) => {
                p.push(
                    name,
                    None,
                    format!("an object with the keys of [[session]] ({e})"),
                );
                continue;
            }
        };
        if let Some(s) = read_one(config, &table, &name, &mut p) {
            if !ids.insert(s.id.clone()) {
                p.push(
                    format!("{name}.id"),
                    Some(s.id.clone()),
                    "an id not used twice in one update",
                );
                continue;
            }
            match toml::to_string(&table) {
                Ok(text) => out.push((s.id, text)),
                Err(e) => p.push(name, None, format!("a table TOML can hold ({e})")),
            }
        }
    }
    if p.0.is_empty() {
        Ok(out)
    } else {
        Err(p.0.iter().map(ToString::to_string).collect())
    }
}

/// Stores validated sessions and removes `remove`, bumping the version, in one transaction;
/// returns the ids removed.
pub fn store(
    conn: &mut Connection,
    sessions: &[(String, String)],
    remove: &[String],
    command_id: &str,
    now_us: i64,
) -> rusqlite::Result<Vec<String>> {
    let tx = db::write_tx(conn)?;
    let mut removed = Vec::new();
    for id in remove {
        if tx.execute("DELETE FROM stored_sessions WHERE id = ?1", [id])? > 0 {
            removed.push(id.clone());
        }
    }
    for (id, text) in sessions {
        tx.execute(
            "INSERT OR REPLACE INTO stored_sessions (id, toml, command_id, updated_us) VALUES (?1, ?2, ?3, ?4)",
            params![id, text, command_id, now_us],
        )?;
    }
    let v: i64 = tx
        .query_row("SELECT value FROM meta WHERE key = ?1", [VERSION_KEY], |r| {
            r.get::<_, String>(0)
        })
        .optional()?
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    tx.execute(
        "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)",
        params![VERSION_KEY, (v + 1).to_string()],
    )?;
    tx.commit()?;
    Ok(removed)
}

/// The stored sessions as read by today's code, minus those whose id the config file uses
/// (returned as warnings). A stored session that no longer reads (the profile or the cameras
/// changed) is left out with a warning.
pub fn stored(conn: &Connection, config: &Config) -> rusqlite::Result<(Vec<SessionConfig>, Vec<String>)> {
    let exists: i64 = conn.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'stored_sessions'",
        [],
        |r| r.get(0),
    )?;
    if exists == 0 {
        return Ok((Vec::new(), Vec::new()));
    }
    let mut stmt = conn.prepare("SELECT id, toml FROM stored_sessions ORDER BY id")?;
    let rows = stmt
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let (mut out, mut warnings) = (Vec::new(), Vec::new());
    for (id, text) in rows {
        if config.sessions.iter().any(|s| s.id == id) {
            warnings.push(format!(
                "session {id}: the config file has a session with this id; the config file's is judged"
            ));
            continue;
        }
        let mut p = Problems::default();
        let read = toml::from_str::<toml::Table>(&text)
            .ok()
            .and_then(|t| read_one(config, &t, &format!("stored session {id}"), &mut p));
        match read {
            Some(s) => out.push(s),
            None => warnings.push(format!(
                "stored session {id} does not read with this config: {}",
                p.0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
            )),
        }
    }
    Ok((out, warnings))
}

/// The config with the stored sessions added after the file's own.
pub fn effective(conn: &Connection, config: &Config) -> rusqlite::Result<(Config, Vec<String>)> {
    let (extra, warnings) = stored(conn, config)?;
    let mut c = config.clone();
    c.sessions.extend(extra);
    Ok((c, warnings))
}

/// [`effective`] in an `Arc`, for the verdicts job.
pub fn effective_arc(conn: &Connection, config: &Config) -> rusqlite::Result<Arc<Config>> {
    Ok(Arc::new(effective(conn, config)?.0))
}
