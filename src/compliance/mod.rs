//! Class-hour compliance (R1–R5, R13): schedules, rule profiles and verdicts.
//!
//! Architecture invariant: nothing in this module touches the clock, the disk or the network.
//! It takes a recording timeline, a schedule, a profile and `now`, and returns verdicts, so every
//! rule is unit-tested in microseconds. The daemon's glue (`daemon::verdicts`) feeds it.

pub mod profile;
pub mod schedule;

pub use profile::{Profile, RulesConfig};
pub use schedule::SessionConfig;
