//! Tamper-evident evidence (R16, R6, R7): the hash-chained log every assertion of the box is
//! appended to, the device key and signed checkpoints, retention and the disk watch, and
//! verification of the store and of offline bundles. docs/evidence.md is the specification.
//!
//! Layout, as Go's `sumdb/tlog` separates proving from checking:
//! - `log`: appending and reading records, the canonical form and the record hash;
//! - `record`: the typed records (one variant per kind, the only place kinds are spelled);
//! - `key`, `checkpoint`: the device key (signer vs verifier) and the checkpoint text;
//! - `store`: this room's tables (keys, checkpoints, the retention index) and write paths;
//! - `check`: pure checks over records, hashes, keys and file digests (no I/O);
//! - `verify`, `bundle`: gather data from the store or a bundle and run the checks;
//! - `retention`, `disk`: R6 decisions (pure) and disk measurements.

pub mod bundle;
pub mod check;
pub mod checkpoint;
pub mod config;
pub mod disk;
pub mod key;
pub mod log;
pub mod record;
pub mod retention;
pub mod store;
pub mod verify;

pub use config::EvidenceConfig;
