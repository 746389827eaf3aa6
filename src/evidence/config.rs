//! `[evidence]`: checkpoints and disk policy.

use std::time::Duration;

use crate::config::{Problems, Section};

/// `[evidence]`.
#[derive(Debug, Clone)]
pub struct EvidenceConfig {
    /// A signed checkpoint is made at least this often while records are appended. Default 60s.
    pub checkpoint_interval: Duration,
}

impl Default for EvidenceConfig {
    fn default() -> Self {
        EvidenceConfig {
            checkpoint_interval: Duration::from_secs(60),
        }
    }
}

impl EvidenceConfig {
    pub fn read(s: &Section, p: &mut Problems) -> EvidenceConfig {
        let d = EvidenceConfig::default();
        EvidenceConfig {
            checkpoint_interval: s
                .duration(
                    p,
                    "checkpoint_interval",
                    Duration::from_secs(1),
                    Duration::from_secs(86_400),
                )
                .unwrap_or(d.checkpoint_interval),
        }
    }

    pub fn summary(&self) -> String {
        format!(
            "checkpoint every {}",
            humantime::format_duration(self.checkpoint_interval)
        )
    }
}
