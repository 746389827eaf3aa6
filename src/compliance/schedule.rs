//! `[[session]]`: scheduled sessions and their class hours.
//!
//! Placeholder until the schedule lands (issue 3): only `id` is read, other keys are accepted.

use chrono::{DateTime, NaiveDate, Utc};

use crate::compliance::RulesConfig;
use crate::config::{Config, Problems, Section};

/// The time span and cameras of one occurrence of a session: from the start of its first class
/// hour to the end of its last. `date` (local) picks the occurrence of a recurring session; a
/// one-off session ignores it. `None` if there is no such session (or occurrence).
pub fn session_span(
    _config: &Config,
    _session_id: &str,
    _date: Option<NaiveDate>,
) -> Option<(DateTime<Utc>, DateTime<Utc>, Vec<String>)> {
    None
}

/// One `[[session]]` entry.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// Session id, unique in the config.
    pub id: String,
}

impl SessionConfig {
    pub fn read(
        s: &Section,
        p: &mut Problems,
        _rules: &RulesConfig,
        _cameras: &[&str],
    ) -> Option<SessionConfig> {
        let id = s.string(p, "id");
        let id = s.required(p, "id", id, "a session id");
        for (k, _) in s.raw_table() {
            s.skip(k);
        }
        Some(SessionConfig { id: id? })
    }

    pub fn summary(&self) -> String {
        self.id.clone()
    }
}
