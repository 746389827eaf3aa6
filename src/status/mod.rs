//! The box's own status: the local HTTP server (`/`, `/metrics`, `/api/status`), the systemd
//! watchdog and the clock-step check (issue 12). See docs/operations.md.

pub mod clock;
pub mod config;
pub mod metrics;
pub mod page;
pub mod server;
pub mod snapshot;
pub mod timeline;
pub mod watchdog;

pub use config::StatusConfig;
