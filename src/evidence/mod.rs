//! Tamper-evident evidence (R16, R6, R7): the hash-chained log every assertion of the box is
//! appended to, signed checkpoints, retention, and verification.

pub mod config;
pub mod log;

pub use config::EvidenceConfig;
