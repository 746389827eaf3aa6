//! classproof: the daemon and tools of the classroom evidence box. See docs/architecture.md
//! for the bird's eye view and ../shared/RULES.md for the rules (R1…R19) quoted in the code.

pub mod attendance;
pub mod cli;
pub mod clock;
pub mod compliance;
pub mod config;
pub mod daemon;
pub mod db;
pub mod evidence;
pub mod logging;
pub mod media;
pub mod status;
pub mod sync;
pub mod vision;
