//! `[[session]]`: scheduled sessions and their class hours.
//!
//! Placeholder until the schedule lands (issue 3): only `id` is read, other keys are accepted.

use crate::compliance::RulesConfig;
use crate::config::{Problems, Section};

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
