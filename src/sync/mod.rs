//! Upstream sync to the provincial platform over MQTT (R7, R8; docs/protocol.md):
//! - [`config`]: the `upstream` section;
//! - [`message`]: the messages, pure; their JSON Schemas are docs/schemas/;
//! - [`source`]: the one module that reads the evidence log and checkpoints, and appends the
//!   job's alarms;
//! - [`outbox`]: the durable cursors and the connection state in `meta`;
//! - [`tls`]: rustls on ring, CA pinned, mutual TLS;
//! - [`job`]: the `sync` job under the supervisor;
//! - [`receiver`]: the platform's chain check;
//! - [`command`]: signed downlink commands, decided (pure); [`run`] runs the accepted ones
//!   ([`clip`], [`live`], `media::still`), uploading their evidence after recording it.
//!
//! The reference receiver is `classproof-upstream` (`cli::upstream`).

pub mod clip;
pub mod command;
pub mod config;
pub mod job;
pub mod live;
pub mod message;
pub mod outbox;
pub mod receiver;
pub mod run;
pub mod schedule;
pub mod source;
pub mod tls;

pub use config::UpstreamConfig;
