//! Roster, check-in state machine and head count (R8, R10–R12, R14, R19).
