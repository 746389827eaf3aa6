//! Roster, check-in state machine and head count (R8, R10–R12, R14, R19).
//!
//! `roster` keeps the enrolled persons and their face templates (tables `persons`, `templates`);
//! `enroll` checks photos and turns them into templates; `checkin` is the pure check-in state
//! machine of one session occurrence (observations in, records out).

pub mod checkin;
pub mod config;
pub mod enroll;
pub mod report;
pub mod roster;
pub mod spot_check;
pub mod track;

pub use roster::{Person, Role};
