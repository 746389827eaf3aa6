//! Cameras and recording: sources, the per-camera supervisor, fragmented-MP4 segments, crash
//! recovery, and the segment/gap index.
//!
//! Architecture invariant: recording never waits on anything but the camera and the disk.
//! Camera threads hand what happened to the store as [`MediaEvent`]s over an unbounded
//! channel; nothing in a camera thread touches the database or the network.

pub mod camera;
pub mod config;
pub mod index;
pub mod mp4;
pub mod recover;
pub mod segment;
pub mod source;
pub mod still;

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};

pub use config::{CameraConfig, Source};

/// Why a camera's recording has a hole.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GapCause {
    /// The camera could not be reached, or closed the connection.
    CameraLost,
    /// The connection stayed open but no packets came for the stall timeout.
    Stall,
    /// The daemon was not running (or not yet recording after a start).
    DaemonDown,
    /// Writing the segment failed for a reason other than a full disk.
    DiskError,
    /// The disk is full.
    DiskFull,
    /// Media time and the wall clock disagreed beyond the tolerance; the clocks were
    /// re-anchored and a keyframe awaited.
    ClockJump,
    /// The camera's stream could not be recorded (no video, unsupported codec, rejected by the
    /// muxer).
    StreamError,
}

impl GapCause {
    pub const ALL: [GapCause; 7] = [
        GapCause::CameraLost,
        GapCause::Stall,
        GapCause::DaemonDown,
        GapCause::DiskError,
        GapCause::DiskFull,
        GapCause::ClockJump,
        GapCause::StreamError,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            GapCause::CameraLost => "camera_lost",
            GapCause::Stall => "stall",
            GapCause::DaemonDown => "daemon_down",
            GapCause::DiskError => "disk_error",
            GapCause::DiskFull => "disk_full",
            GapCause::ClockJump => "clock_jump",
            GapCause::StreamError => "stream_error",
        }
    }

    pub fn parse(s: &str) -> Option<GapCause> {
        GapCause::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

impl fmt::Display for GapCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A finished segment file.
#[derive(Debug, Clone, PartialEq)]
pub struct ClosedSegment {
    pub camera: String,
    pub stream_id: String,
    pub stream_seq: u32,
    /// Relative to the data dir.
    pub path: PathBuf,
    pub codec: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub media_duration: Duration,
    pub bytes: u64,
    pub sha256: String,
}

/// What a camera thread tells the store. Per camera the order is
/// `SegmentOpened → SegmentClosed → (GapOpened)? → SegmentOpened …`; a gap ends where the next
/// segment starts.
#[derive(Debug, Clone, PartialEq)]
pub enum MediaEvent {
    SegmentOpened {
        camera: String,
        stream_id: String,
        stream_seq: u32,
        path: PathBuf,
        codec: String,
        start: DateTime<Utc>,
    },
    SegmentClosed(ClosedSegment),
    /// A segment could not be finished cleanly (disk error, muxer error): the file holds what
    /// was flushed and is repaired and indexed like one left open by a crash.
    SegmentAbandoned {
        camera: String,
        path: PathBuf,
    },
    /// Recording stopped at `start`; noticed at `detected`.
    GapOpened {
        camera: String,
        start: DateTime<Utc>,
        cause: GapCause,
        detail: String,
        detected: DateTime<Utc>,
    },
}

impl MediaEvent {
    pub fn camera(&self) -> &str {
        match self {
            MediaEvent::SegmentOpened { camera, .. }
            | MediaEvent::GapOpened { camera, .. }
            | MediaEvent::SegmentAbandoned { camera, .. } => camera,
            MediaEvent::SegmentClosed(s) => &s.camera,
        }
    }
}
