//! Class-hour compliance (R1–R5, R13): schedules, rule profiles and verdicts.
//!
//! Architecture invariant: nothing in this module touches the clock, the disk or the network.
//! It takes a recording timeline, a schedule, a profile and `now`, and returns verdicts, so every
//! rule is unit-tested in microseconds. The daemon's glue (`daemon::verdicts`) feeds it.
//!
//! - `profile`: the named rule sets and `[rules]`; which rule a session's hours meet.
//! - `schedule`: `[[session]]`, class hours, occurrences of daily sessions.
//! - `timeline`: the recording as the engine sees it, folded into a class hour's pieces.
//! - `engine`: the verdict of one class hour at a moment.

pub mod engine;
pub mod presence;
pub mod profile;
pub mod schedule;
pub mod timeline;

pub use engine::{HourVerdict, RunSpan, Verdict, judge_hour};
pub use profile::{Profile, Requirement, Rule, RulesConfig, SessionKind};
pub use schedule::{ClassHour, Occurrence, SessionConfig};
pub use timeline::{CameraTimeline, Missing, Recorded};
