//! `[daemon]`: how the supervisor treats a failing job, and where the health registry is
//! published. Key reference: docs/configuration.md ("[daemon]").

use std::path::PathBuf;
use std::time::Duration;

use crate::config::{Problems, Section};

/// Default pause before a failed job is started again.
pub const DEFAULT_RESTART_PAUSE: Duration = Duration::from_secs(5);
/// Default: this many restarts of one job within [`DEFAULT_RESTART_WINDOW`] end the process.
pub const DEFAULT_MAX_RESTARTS: u32 = 5;
/// Default window for counting restarts.
pub const DEFAULT_RESTART_WINDOW: Duration = Duration::from_secs(600);
/// Default: a job whose last heartbeat is older than this is hung (issue 12: the systemd
/// watchdog pings stop).
pub const DEFAULT_HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(30);

/// `[daemon]`.
#[derive(Debug, Clone, PartialEq)]
pub struct DaemonConfig {
    /// Pause before a failed job is started again. Default 5s; 10ms to 10m.
    pub restart_pause: Duration,
    /// More restarts than this of one job within `restart_window` make the daemon exit
    /// non-zero, so that systemd restarts the whole process. Default 5; 1 to 1000.
    pub max_restarts: u32,
    /// The window in which restarts are counted. Default 10m; 1s to 24h.
    pub restart_window: Duration,
    /// Where the health registry is written as JSON on every change (atomically). Default:
    /// `health.json` in systemd's `$RUNTIME_DIRECTORY` when it is set, else nowhere. It is kept
    /// off the data dir on purpose: it must still be written when the data dir's disk fails.
    pub health_file: Option<PathBuf>,
    /// A job whose last heartbeat is older than this counts as hung: the systemd watchdog
    /// pings stop, so that systemd restarts the process after `WatchdogSec=`. Default 30s;
    /// 1s to 1h.
    pub heartbeat_timeout: Duration,
}

impl Default for DaemonConfig {
    fn default() -> Self {
        DaemonConfig {
            restart_pause: DEFAULT_RESTART_PAUSE,
            max_restarts: DEFAULT_MAX_RESTARTS,
            restart_window: DEFAULT_RESTART_WINDOW,
            health_file: std::env::var_os("RUNTIME_DIRECTORY")
                .filter(|d| !d.is_empty())
                .map(|d| PathBuf::from(d).join("health.json")),
            heartbeat_timeout: DEFAULT_HEARTBEAT_TIMEOUT,
        }
    }
}

impl DaemonConfig {
    pub fn read(s: &Section, p: &mut Problems) -> DaemonConfig {
        let d = DaemonConfig::default();
        DaemonConfig {
            restart_pause: s
                .duration(
                    p,
                    "restart_pause",
                    Duration::from_millis(10),
                    Duration::from_secs(600),
                )
                .unwrap_or(d.restart_pause),
            max_restarts: s
                .integer(p, "max_restarts", 1, 1000)
                .map(|n| n as u32)
                .unwrap_or(d.max_restarts),
            restart_window: s
                .duration(
                    p,
                    "restart_window",
                    Duration::from_secs(1),
                    Duration::from_secs(86_400),
                )
                .unwrap_or(d.restart_window),
            health_file: s.path(p, "health_file").or(d.health_file),
            heartbeat_timeout: s
                .duration(
                    p,
                    "heartbeat_timeout",
                    Duration::from_secs(1),
                    Duration::from_secs(3600),
                )
                .unwrap_or(d.heartbeat_timeout),
        }
    }

    /// One line for `check-config`.
    pub fn summary(&self) -> String {
        format!(
            "a failed job restarts after {}; more than {} restarts within {} stop the daemon; health {}",
            humantime::format_duration(self.restart_pause),
            self.max_restarts,
            humantime::format_duration(self.restart_window),
            self.health_file
                .as_ref()
                .map_or("not written to a file".into(), |f| format!("in {}", f.display()))
        )
    }
}
