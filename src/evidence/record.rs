//! Typed evidence records (issue 8, item 2): one [`Record`] variant per kind the box appends
//! to the log, each with a serde payload struct. This module is the only place a record kind
//! is spelled ([`Kind::as_str`]); docs/evidence.md ("Record kinds") lists every kind with its
//! fields, and that list is what the upstream protocol publishes.
//!
//! Invariants:
//! - the payload of a record is exactly `canonical_json(serde_json::to_value(payload))`: the
//!   hashed bytes of a record written before this module existed are what its typed payload
//!   serialises to again (tests/fixtures/store-v1.sql proves it record for record);
//! - reading back ([`Record::from_stored`]) is strict: an unknown kind, an unknown enum value
//!   (gap cause, segment state, alarm, verdict …), a missing or an unknown field is an error
//!   naming the record, never a different value. A payload that parses but does not
//!   serialise back to the stored bytes is refused too, so nothing the box signed is ever
//!   restated differently;
//! - `segment`, `snapshot` and `clip` records refer to a file (`file_sha256`, and
//!   `path`/`bytes`/`end_us` for the retention index, see [`Record::file_sha256`]); so do face
//!   decisions with a snapshot (`snapshot`, `snapshot_sha256` in the payload, and the same
//!   sha256 as `file_sha256`).
//!
//! New kinds go here too, each a new [`Kind`] and [`Record`] variant with its payload struct
//! and a section in docs/evidence.md. `Record` is `#[non_exhaustive]` so that code outside
//! the crate already matches with a wildcard.

use std::fmt;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use thiserror::Error;

use super::log::canonical_json;
use super::retention::DiskPolicy;
use super::store::PruneReason;
use crate::attendance::roster::Role;
use crate::compliance::Verdict;
use crate::compliance::profile::SessionKind;
use crate::media::GapCause;
use crate::media::index::SegmentState;

/// A record that cannot be read back as what the box wrote.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("evidence log record {}({kind}): {reason}", seq.map_or(String::new(), |s| format!("{s} ")))]
pub struct RecordError {
    /// The record's seq, when known.
    pub seq: Option<i64>,
    /// Its stored type.
    pub kind: String,
    pub reason: String,
}

impl RecordError {
    fn new(kind: &str, reason: impl Into<String>) -> RecordError {
        RecordError {
            seq: None,
            kind: kind.to_string(),
            reason: reason.into(),
        }
    }

    /// The same error, naming the record `seq`.
    pub fn at(mut self, seq: i64) -> RecordError {
        self.seq = Some(seq);
        self
    }
}

/// The record kinds (the log's `type` column).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Segment,
    Gap,
    ClassHourPass,
    ClassHourAtRisk,
    ClassHourFail,
    ClassHourFinal,
    Alarm,
    Pruned,
    DeviceKey,
    KeyRotated,
    Enrollment,
    DeviceIdChanged,
    RosterRemoved,
    CheckIn,
    CheckOut,
    Absent,
    UnexpectedPerson,
    UnknownFace,
    SpoofAttempt,
    // --- issue 10: downlink commands ---
    Command,
    CommandRejected,
    CommandRejectedSummary,
    Snapshot,
    Live,
    Clip,
    // --- issue 11: classroom presence ---
    Presence,
    LeftEarly,
    SpotCheck,
    ClassVisibilityWarning,
    ClassFailed,
    CameraTamper,
    CameraTamperCleared,
}

impl Kind {
    pub const ALL: [Kind; 32] = [
        Kind::Segment,
        Kind::Gap,
        Kind::ClassHourPass,
        Kind::ClassHourAtRisk,
        Kind::ClassHourFail,
        Kind::ClassHourFinal,
        Kind::Alarm,
        Kind::Pruned,
        Kind::DeviceKey,
        Kind::KeyRotated,
        Kind::Enrollment,
        Kind::DeviceIdChanged,
        Kind::RosterRemoved,
        Kind::CheckIn,
        Kind::CheckOut,
        Kind::Absent,
        Kind::UnexpectedPerson,
        Kind::UnknownFace,
        Kind::SpoofAttempt,
        // --- issue 10: downlink commands ---
        Kind::Command,
        Kind::CommandRejected,
        Kind::CommandRejectedSummary,
        Kind::Snapshot,
        Kind::Live,
        Kind::Clip,
        // --- issue 11: classroom presence ---
        Kind::Presence,
        Kind::LeftEarly,
        Kind::SpotCheck,
        Kind::ClassVisibilityWarning,
        Kind::ClassFailed,
        Kind::CameraTamper,
        Kind::CameraTamperCleared,
    ];

    /// The stored type: the one place kind strings live.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Segment => "segment",
            Kind::Gap => "gap",
            Kind::ClassHourPass => "class_hour_pass",
            Kind::ClassHourAtRisk => "class_hour_at_risk",
            Kind::ClassHourFail => "class_hour_fail",
            Kind::ClassHourFinal => "class_hour_final",
            Kind::Alarm => "alarm",
            Kind::Pruned => "pruned",
            Kind::DeviceKey => "device_key",
            Kind::KeyRotated => "key_rotated",
            Kind::Enrollment => "enrollment",
            Kind::DeviceIdChanged => "device_id_changed",
            Kind::RosterRemoved => "roster_removed",
            Kind::CheckIn => "check_in",
            Kind::CheckOut => "check_out",
            Kind::Absent => "absent",
            Kind::UnexpectedPerson => "unexpected_person",
            Kind::UnknownFace => "unknown_face",
            Kind::SpoofAttempt => "spoof_attempt",
            // --- issue 10: downlink commands ---
            Kind::Command => "command",
            Kind::CommandRejected => "command_rejected",
            Kind::CommandRejectedSummary => "command_rejected_summary",
            Kind::Snapshot => "snapshot",
            Kind::Live => "live",
            Kind::Clip => "clip",
            // --- issue 11: classroom presence ---
            Kind::Presence => "presence",
            Kind::LeftEarly => "left_early",
            Kind::SpotCheck => "spot_check",
            Kind::ClassVisibilityWarning => "class_visibility_warning",
            Kind::ClassFailed => "class_failed",
            Kind::CameraTamper => "camera_tamper",
            Kind::CameraTamperCleared => "camera_tamper_cleared",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The class-hour event kinds the verdict job writes, in the order they can happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ClassHourEvent {
    Pass,
    AtRisk,
    Fail,
    Final,
}

impl ClassHourEvent {
    pub const ALL: [ClassHourEvent; 4] = [
        ClassHourEvent::Pass,
        ClassHourEvent::AtRisk,
        ClassHourEvent::Fail,
        ClassHourEvent::Final,
    ];

    pub fn kind(self) -> Kind {
        match self {
            ClassHourEvent::Pass => Kind::ClassHourPass,
            ClassHourEvent::AtRisk => Kind::ClassHourAtRisk,
            ClassHourEvent::Fail => Kind::ClassHourFail,
            ClassHourEvent::Final => Kind::ClassHourFinal,
        }
    }

    /// The evidence log type.
    pub fn as_str(self) -> &'static str {
        self.kind().as_str()
    }
}

/// Serialises an enum as its `as_str()` name and reads back only the names of `$all`
/// (anything else is an error naming the value: never a different variant).
macro_rules! named_enum {
    ($ty:ty, $what:literal, $all:expr) => {
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }
        named_enum!(@de $ty, $what, $all);
    };
    (@de $ty:ty, $what:literal, $all:expr) => {
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                $all.into_iter().find(|x: &$ty| x.as_str() == s).ok_or_else(|| {
                    let names: Vec<&str> = $all.into_iter().map(|x: $ty| x.as_str()).collect();
                    D::Error::custom(format!(
                        "unknown {} {s:?} (expected one of {})",
                        $what,
                        names.join(", ")
                    ))
                })
            }
        }
    };
}

named_enum!(GapCause, "gap cause", GapCause::ALL);
named_enum!(SegmentState, "segment state", SegmentState::ALL);
// `Verdict` serialises (snake_case, as `as_str`) for the report already.
named_enum!(
    @de Verdict,
    "verdict",
    [Verdict::Pass, Verdict::Fail, Verdict::Pending, Verdict::AtRisk]
);
named_enum!(
    SessionKind,
    "session kind",
    [SessionKind::Theory, SessionKind::Practical, SessionKind::Makeup]
);
named_enum!(Role, "role", [Role::Trainee, Role::Teacher]);
named_enum!(
    DiskPolicy,
    "disk policy",
    [DiskPolicy::Protect, DiskPolicy::DeleteOldest]
);
named_enum!(
    PruneReason,
    "prune reason",
    [PruneReason::Retention, PruneReason::DiskFull]
);

/// `segment`: a finished segment file (appended when it ends; time = its end).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Segment {
    pub camera: String,
    /// Relative to the data dir, `/`-separated.
    pub path: String,
    pub start_us: i64,
    pub end_us: i64,
    pub media_duration_us: i64,
    pub bytes: u64,
    pub stream_id: String,
    pub stream_seq: u32,
    pub state: SegmentState,
    pub codec: String,
    /// sha256 (64 lowercase hex) of the file. Stored beside the payload (the record's
    /// `file_sha256`), not in it.
    #[serde(skip)]
    pub sha256: String,
}

/// `gap`: a closed hole in a camera's recording (time = its end).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Gap {
    pub camera: String,
    pub start_us: i64,
    pub end_us: i64,
    pub cause: GapCause,
    /// Written as `null` when there is none.
    pub detail: Option<String>,
}

/// A hole inside a class hour, as its verdict saw it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HourHole {
    /// RFC 3339, the device's time zone.
    pub start: String,
    pub end: String,
    /// Gap causes joined by `,`, or `damaged`, `clock_step`, `unrecorded`.
    pub cause: String,
    pub duration_s: f64,
    /// Longer than the continuity tolerance and not bridged.
    pub breaks_run: bool,
}

/// `class_hour_pass` / `_at_risk` / `_fail` / `_final`: a class hour's verdict (see
/// `daemon::verdicts`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassHour {
    /// The occurrence, e.g. `s1` or `demo@2026-11-22`.
    pub session: String,
    pub session_id: String,
    /// The local date of a daily session's occurrence (`YYYY-MM-DD`); `null` for a one-off.
    pub date: Option<String>,
    pub class_id: String,
    pub kind: SessionKind,
    pub profile: String,
    pub cameras: Vec<String>,
    /// 1-based.
    pub class_hour: u32,
    pub start: String,
    pub end: String,
    pub start_us: i64,
    pub end_us: i64,
    /// The rule id (R1, R2, R3, R13).
    pub rule: String,
    pub verdict: Verdict,
    /// `null` for end-to-end recording.
    pub required_run_s: Option<f64>,
    pub longest_run_s: f64,
    pub recorded_s: f64,
    pub holes: Vec<HourHole>,
    /// --- issue 11: classroom presence --- R3: the present trainees the hour's run did not
    /// show, as `name (masked id)`; absent when none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_visible: Vec<String>,
}

/// Raised or cleared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlarmState {
    Raised,
    Cleared,
}

impl AlarmState {
    pub fn raised(raised: bool) -> AlarmState {
        if raised {
            AlarmState::Raised
        } else {
            AlarmState::Cleared
        }
    }
}

/// What an alarm is about, with the fields of that alarm (payload key `alarm`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "alarm", rename_all = "snake_case")]
pub enum AlarmKind {
    /// The device key cannot be used: checkpoints are not signed.
    DeviceKey {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        detail: Option<String>,
    },
    /// The disk is full and nothing may be deleted: recording stops.
    DiskFull {
        available_bytes: u64,
        capacity_bytes: u64,
        reserve_bytes: u64,
        policy: DiskPolicy,
    },
    /// The disk will be full within `alarm_days` at the current rate.
    DiskForecast {
        /// `null` when there is no rate yet.
        days_left: Option<f64>,
        alarm_days: u32,
        bytes_per_day: Option<u64>,
        available_bytes: u64,
        policy: DiskPolicy,
    },
    /// A daemon job panicked or returned an error and is restarted.
    JobFailed { job: String, cause: String },
    /// A left-over file start-up could not repair or read was set aside.
    FileQuarantined {
        /// The original path, relative to the data dir.
        path: String,
        /// Where it was moved (relative to the data dir); absent when it was left in place.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        moved_to: Option<String>,
        cause: String,
    },
    /// An event of one camera failed permanently and was set aside.
    EventSetAside {
        camera: String,
        event: String,
        cause: String,
    },
    /// The data dir's file system is read-only.
    StoreReadOnly { detail: String },
    /// Writes to the database keep failing.
    StoreWriteFailing { detail: String },
    /// The upstream broker cannot be reached or refuses the box (raised with the reason,
    /// cleared once connected).
    Upstream {
        broker: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// The oldest record not yet acknowledged by the broker is older than
    /// `[upstream] backlog_alarm` (raised), or the backlog drained (cleared).
    SyncBacklog {
        records: i64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        oldest_us: Option<i64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        broker: Option<String>,
    },
    // --- issue 12: status, watchdog, doctor ---
    /// The wall clock stepped against the monotonic clock by more than the cameras'
    /// `clock_tolerance` (NTP correcting a wrong clock, a technician setting it). Raised once
    /// per step, never cleared: an event, shown by the status page and `doctor`.
    ClockStep {
        /// The wall time the monotonic clock predicted (RFC 3339, UTC).
        old: String,
        /// The wall time found (RFC 3339, UTC).
        new: String,
        /// `new - old` in seconds (negative: the clock went back).
        step_s: f64,
    },
    // --- issue 11: classroom presence ---
    /// R10: more faces in one frame than the class's roster has trainees and teachers.
    HeadCount {
        session: String,
        class_hour: Option<u32>,
        camera: String,
        head_count: u32,
        roster_trainees: u32,
        teachers: u32,
    },
    /// No teacher checked in or seen by `late_after` past the start (cleared when one is).
    NoTeacher { session: String, class_id: String },
    /// R11: present teachers × `trainees_per_teacher` < present trainees.
    TeacherRatio {
        session: String,
        class_id: String,
        teachers: u32,
        trainees: u32,
        per_teacher: u32,
    },
}

/// `alarm`: an alarm raised or cleared (written on each change of state only).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alarm {
    #[serde(flatten)]
    pub alarm: AlarmKind,
    pub state: AlarmState,
}

/// `pruned`: a file deleted after the retention (R6); the record names the file's record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pruned {
    /// The seq of the record that vouched for the file.
    pub seq: i64,
    pub path: String,
    pub sha256: String,
    pub bytes: Option<i64>,
    /// The time the retention counted from (the file's end), µs.
    pub file_time_us: i64,
    pub reason: PruneReason,
    pub retention_s: u64,
}

/// `device_key`: a key the box signs checkpoints with, seen for the first time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceKeyAnnounced {
    pub fingerprint: String,
    /// `ed25519:` and 64 hex digits.
    pub public_key: String,
}

/// `key_rotated`: the old key hands over to the new one (docs/evidence.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRotated {
    pub old_fingerprint: String,
    pub new_fingerprint: String,
    pub new_public_key: String,
}

/// `enrollment`: face templates added for a person (no template, photo or ID number, R15).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Enrollment {
    pub person_id: String,
    pub role: Role,
    pub model: String,
    pub templates_added: u64,
    pub photo_sha256: Vec<String>,
    pub rejected: u64,
    pub warnings: u64,
}

/// `device_id_changed`: the configured `[device] id` differs from the one the log last
/// recorded; checkpoints from here on are signed under `new_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceIdChanged {
    /// The id the log's checkpoints were signed under until now.
    pub old_id: String,
    pub new_id: String,
}

/// `roster_removed`: a person deleted from the roster with their face templates and classes
/// (`classproof roster remove`, R15). Only the masked ID number is recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RosterRemoved {
    pub person_id: String,
    /// e.g. `410105********1234`; `null` when none was stored.
    pub id_number_masked: Option<String>,
    pub role: Role,
    pub templates_removed: u64,
    /// The classes the person belonged to, sorted.
    pub classes: Vec<String>,
}

/// What a face decision (`check_in`, `check_out`, `unexpected_person`, `unknown_face`,
/// `spoof_attempt`) was made on: the occurrence, the camera's track and the vote (issue 9,
/// item 6). Written by `attendance::checkin`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaceVote {
    /// The occurrence, e.g. `s1` or `demo@2026-11-22`.
    pub session: String,
    pub session_id: String,
    /// The local date of a daily session's occurrence; `null` for a one-off.
    pub date: Option<String>,
    pub class_id: String,
    /// 1-based class hour the decision falls in; `null` before the first or between hours.
    pub class_hour: Option<u32>,
    pub camera: String,
    /// The face track of that camera the vote was taken over.
    pub track: u64,
    /// The deciding observation, µs.
    pub time_us: i64,
    /// The person voted for (for `spoof_attempt`, the person the face resembles); `null` for
    /// `unknown_face` and a spoof that resembles no one.
    pub person_id: Option<String>,
    /// `trainee` | `teacher` when the person is on the session's roster, else `null`.
    pub role: Option<Role>,
    /// Mean similarity of the frames that voted for the person; `null` without a person.
    pub similarity: Option<f64>,
    /// Smallest margin over the second-best person in those frames; `null` without a person
    /// or with a single person enrolled.
    pub margin: Option<f64>,
    /// Liveness P(real) fused (mean) over the frames of the vote.
    pub liveness: f64,
    /// Frames in the vote (the last `vote_frames` of the track, or fewer).
    pub frames_voted: u32,
    /// Frames of the vote that matched the person (at least `min_frames` for a decision
    /// about a person; for `unknown_face`, the best any person reached).
    pub frames_agreeing: u32,
    /// The JPEG snapshot, relative to the data dir (written by the daemon; optional until then).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_sha256: Option<String>,
}

/// `check_in`: a person of the session's roster signed in by face (R8, R14, R19).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckIn {
    #[serde(flatten)]
    pub vote: FaceVote,
    /// After `[attendance] late_after` past the start.
    pub late: bool,
}

/// `absent`: an expected trainee not checked in when the session ended (time = its end).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Absent {
    pub session: String,
    pub session_id: String,
    pub date: Option<String>,
    pub class_id: String,
    pub person_id: String,
    /// The occurrence's end, µs.
    pub end_us: i64,
    /// Written when the daemon started again, because it was not running when the occurrence
    /// closed (its end and check-out window): the record's time is still the end. Left out
    /// when false, so records written before the field existed read back byte for byte.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub after_downtime: bool,
}

// --- issue 10: downlink commands (sync::command) and the evidence they produce ---

named_enum!(
    crate::sync::command::Reason,
    "command rejection reason",
    crate::sync::command::Reason::ALL
);

/// `command`: a signed downlink command verified and accepted, appended before it runs (R9).
/// The payload's sha256 stands for it (a roster update carries ID numbers, R15).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandAccepted {
    pub command_id: String,
    /// e.g. `snapshot.request`.
    pub command_type: String,
    pub issued_us: i64,
    pub expires_us: i64,
    /// sha256 (hex) of the signed payload string.
    pub payload_sha256: String,
}

/// `command_rejected`: a message on the command topic refused (at most
/// `sync::command::REJECTIONS_PER_MINUTE` a minute; the rest go into
/// `command_rejected_summary`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandRejected {
    /// `null` when the command could not be read.
    pub command_id: Option<String>,
    pub reason: crate::sync::command::Reason,
    /// At most 200 characters.
    pub detail: String,
    /// sha256 (hex) of the whole message as received.
    pub message_sha256: String,
}

/// `command_rejected_summary`: the rejections of one minute past the per-minute limit,
/// counted (flood control).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandRejectedSummary {
    pub from_us: i64,
    pub to_us: i64,
    pub rejected: u64,
    /// Count per reason name.
    pub by_reason: std::collections::BTreeMap<String, u64>,
}

/// `snapshot`: a JPEG of a camera made for a command (`snapshot.request`), appended before it
/// is uploaded, so what was sent is in the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    pub command_id: String,
    pub camera: String,
    /// Relative to the data dir, `/`-separated.
    pub path: String,
    pub bytes: u64,
    /// When the picture was recorded (the keyframe's time), µs.
    pub frame_us: i64,
    pub width: u32,
    pub height: u32,
    /// sha256 (64 lowercase hex) of the file; stored beside the payload (`file_sha256`).
    #[serde(skip)]
    pub sha256: String,
}

/// `live`: a live push of a camera (`live.start`) that ended: where to, from when to when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Live {
    pub command_id: String,
    pub camera: String,
    /// Without credentials.
    pub push_url: String,
    pub start_us: i64,
    pub end_us: i64,
    /// Video packets pushed.
    pub packets: u64,
    /// `duration`, `live.stop`, `daemon stopping`, or the error that ended it.
    pub ended: String,
}

/// `clip`: an MP4 cut from the recorded segments by stream copy (`clip.request`), appended
/// before it is uploaded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Clip {
    pub command_id: String,
    pub camera: String,
    /// Relative to the data dir, `/`-separated.
    pub path: String,
    pub bytes: u64,
    /// The span asked for.
    pub from_us: i64,
    pub to_us: i64,
    /// Segments it was cut from.
    pub segments: u32,
    /// Spans of `[from, to)` with no recording.
    pub holes: Vec<crate::sync::clip::Hole>,
    /// sha256 of the file; stored beside the payload (`file_sha256`).
    #[serde(skip)]
    pub sha256: String,
}

// --- issue 11: classroom presence ---

/// One checked-in trainee in a class hour's `presence` record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PresenceSeen {
    pub person_id: String,
    /// Recognised at least once on the session's classroom cameras during the hour.
    pub seen: bool,
    pub first_seen_us: Option<i64>,
    pub last_seen_us: Option<i64>,
}

/// `presence`: what the classroom cameras saw of one class hour (written when it ends).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Presence {
    pub session: String,
    pub session_id: String,
    pub date: Option<String>,
    pub class_id: String,
    pub class_hour: u32,
    pub start_us: i64,
    pub end_us: i64,
    /// The session's classroom cameras.
    pub cameras: Vec<String>,
    /// A classroom camera was analysed during the hour (else: judged on recording alone).
    pub analysed: bool,
    /// The most faces seen in one frame (R10, R12).
    pub head_count: u32,
    /// Whether the hour's qualifying run showed every present trainee (R3, R4); `null` when
    /// not analysed.
    pub all_visible: Option<bool>,
    /// Present trainees the closest qualifying run did not show.
    pub not_visible: Vec<String>,
    /// Every checked-in trainee of the occurrence (by the hour's end).
    pub trainees: Vec<PresenceSeen>,
}

/// `left_early`: a checked-in trainee not seen for more than `left_early_after` before the end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeftEarly {
    pub session: String,
    pub session_id: String,
    pub date: Option<String>,
    pub class_id: String,
    pub person_id: String,
    /// The last recognition (the check-in counts), µs.
    pub last_seen_us: i64,
    pub end_us: i64,
}

/// `spot_check`: one spot check (R8 process attendance) after its window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpotCheck {
    pub session: String,
    pub session_id: String,
    pub date: Option<String>,
    pub class_id: String,
    pub class_hour: u32,
    pub camera: String,
    pub from_us: i64,
    pub to_us: i64,
    pub seen: Vec<String>,
    pub missed: Vec<String>,
    /// One picture of the room (relative to the data dir) and its sha256.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_sha256: Option<String>,
}

/// `class_visibility_warning` / `class_failed` (R4): a class's hours that did not show all
/// trainees, across its sessions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClassVisibility {
    pub class_id: String,
    pub profile: String,
    pub rule: String,
    pub hours_not_showing_all: u32,
    pub limit: u32,
    /// Those hours, as `{session}#{class_hour}`.
    pub hours: Vec<String>,
}

/// `camera_tamper`: a covered lens, a frozen picture or a turned camera.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CameraTamper {
    pub camera: String,
    /// `covered` | `frozen` | `scene_changed`.
    pub tamper: String,
    /// When the condition began (raised `tamper_after` later).
    pub since_us: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_sha256: Option<String>,
}

/// `camera_tamper_cleared`: the condition ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CameraTamperCleared {
    pub camera: String,
    pub tamper: String,
    /// When it ended.
    pub since_us: i64,
}

/// One evidence record: what the box asserts (its time is stored beside it).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Record {
    Segment(Segment),
    Gap(Gap),
    ClassHourPass(ClassHour),
    ClassHourAtRisk(ClassHour),
    ClassHourFail(ClassHour),
    ClassHourFinal(ClassHour),
    Alarm(Alarm),
    Pruned(Pruned),
    DeviceKey(DeviceKeyAnnounced),
    KeyRotated(KeyRotated),
    Enrollment(Enrollment),
    DeviceIdChanged(DeviceIdChanged),
    RosterRemoved(RosterRemoved),
    CheckIn(CheckIn),
    /// A checked-in person seen again in the `checkout_window` around the end.
    CheckOut(FaceVote),
    Absent(Absent),
    /// A recognised, live person who is not on the session's roster.
    UnexpectedPerson(FaceVote),
    /// A live face that matches no one (once per track).
    UnknownFace(FaceVote),
    /// A face that fails liveness fused over the vote; it never checks anyone in.
    SpoofAttempt(FaceVote),
    // --- issue 10: downlink commands ---
    Command(CommandAccepted),
    CommandRejected(CommandRejected),
    CommandRejectedSummary(CommandRejectedSummary),
    Snapshot(Snapshot),
    Live(Live),
    Clip(Clip),
    // --- issue 11: classroom presence ---
    Presence(Presence),
    LeftEarly(LeftEarly),
    SpotCheck(SpotCheck),
    ClassVisibilityWarning(ClassVisibility),
    ClassFailed(ClassVisibility),
    CameraTamper(CameraTamper),
    CameraTamperCleared(CameraTamperCleared),
}

impl Record {
    /// An alarm record.
    pub fn alarm(alarm: AlarmKind, state: AlarmState) -> Record {
        Record::Alarm(Alarm { alarm, state })
    }

    /// A class-hour verdict record of the given event kind.
    pub fn class_hour(event: ClassHourEvent, payload: ClassHour) -> Record {
        match event {
            ClassHourEvent::Pass => Record::ClassHourPass(payload),
            ClassHourEvent::AtRisk => Record::ClassHourAtRisk(payload),
            ClassHourEvent::Fail => Record::ClassHourFail(payload),
            ClassHourEvent::Final => Record::ClassHourFinal(payload),
        }
    }

    /// The class-hour verdict this record is, if it is one.
    pub fn as_class_hour(&self) -> Option<(ClassHourEvent, &ClassHour)> {
        match self {
            Record::ClassHourPass(h) => Some((ClassHourEvent::Pass, h)),
            Record::ClassHourAtRisk(h) => Some((ClassHourEvent::AtRisk, h)),
            Record::ClassHourFail(h) => Some((ClassHourEvent::Fail, h)),
            Record::ClassHourFinal(h) => Some((ClassHourEvent::Final, h)),
            _ => None,
        }
    }

    pub fn record_kind(&self) -> Kind {
        match self {
            Record::Segment(_) => Kind::Segment,
            Record::Gap(_) => Kind::Gap,
            Record::ClassHourPass(_) => Kind::ClassHourPass,
            Record::ClassHourAtRisk(_) => Kind::ClassHourAtRisk,
            Record::ClassHourFail(_) => Kind::ClassHourFail,
            Record::ClassHourFinal(_) => Kind::ClassHourFinal,
            Record::Alarm(_) => Kind::Alarm,
            Record::Pruned(_) => Kind::Pruned,
            Record::DeviceKey(_) => Kind::DeviceKey,
            Record::KeyRotated(_) => Kind::KeyRotated,
            Record::Enrollment(_) => Kind::Enrollment,
            Record::DeviceIdChanged(_) => Kind::DeviceIdChanged,
            Record::RosterRemoved(_) => Kind::RosterRemoved,
            Record::CheckIn(_) => Kind::CheckIn,
            Record::CheckOut(_) => Kind::CheckOut,
            Record::Absent(_) => Kind::Absent,
            Record::UnexpectedPerson(_) => Kind::UnexpectedPerson,
            Record::UnknownFace(_) => Kind::UnknownFace,
            Record::SpoofAttempt(_) => Kind::SpoofAttempt,
            // --- issue 10: downlink commands ---
            Record::Command(_) => Kind::Command,
            Record::CommandRejected(_) => Kind::CommandRejected,
            Record::CommandRejectedSummary(_) => Kind::CommandRejectedSummary,
            Record::Snapshot(_) => Kind::Snapshot,
            Record::Live(_) => Kind::Live,
            Record::Clip(_) => Kind::Clip,
            // --- issue 11: classroom presence ---
            Record::Presence(_) => Kind::Presence,
            Record::LeftEarly(_) => Kind::LeftEarly,
            Record::SpotCheck(_) => Kind::SpotCheck,
            Record::ClassVisibilityWarning(_) => Kind::ClassVisibilityWarning,
            Record::ClassFailed(_) => Kind::ClassFailed,
            Record::CameraTamper(_) => Kind::CameraTamper,
            Record::CameraTamperCleared(_) => Kind::CameraTamperCleared,
        }
    }

    /// The stored type.
    pub fn kind(&self) -> &'static str {
        self.record_kind().as_str()
    }

    /// sha256 (hex) of the file this record vouches for, if any.
    pub fn file_sha256(&self) -> Option<&str> {
        match self {
            Record::Segment(s) => Some(&s.sha256),
            // --- issue 10 ---
            Record::Snapshot(s) => Some(&s.sha256),
            Record::Clip(c) => Some(&c.sha256),
            // --- issue 11: a spot check and a tamper alarm vouch for their room snapshot ---
            Record::SpotCheck(c) => c.snapshot.as_ref().and(c.snapshot_sha256.as_deref()),
            Record::CameraTamper(c) => c.snapshot.as_ref().and(c.snapshot_sha256.as_deref()),
            // --- issue 9: a face decision vouches for its JPEG snapshot ---
            _ => self
                .face_vote()
                .and_then(|v| v.snapshot.as_ref().and(v.snapshot_sha256.as_deref())),
        }
    }

    /// The vote of a face decision (`check_in`, `check_out`, `unexpected_person`,
    /// `unknown_face`, `spoof_attempt`).
    pub fn face_vote(&self) -> Option<&FaceVote> {
        match self {
            Record::CheckIn(c) => Some(&c.vote),
            Record::CheckOut(v)
            | Record::UnexpectedPerson(v)
            | Record::UnknownFace(v)
            | Record::SpoofAttempt(v) => Some(v),
            _ => None,
        }
    }

    /// The vote of a face decision, mutable (to attach the snapshot before the append).
    pub fn face_vote_mut(&mut self) -> Option<&mut FaceVote> {
        match self {
            Record::CheckIn(c) => Some(&mut c.vote),
            Record::CheckOut(v)
            | Record::UnexpectedPerson(v)
            | Record::UnknownFace(v)
            | Record::SpoofAttempt(v) => Some(v),
            _ => None,
        }
    }

    /// The path (relative to the data dir) of the file this record vouches for.
    pub fn file_path(&self) -> Option<&str> {
        match self {
            Record::Segment(s) => Some(&s.path),
            // --- issue 10 ---
            Record::Snapshot(s) => Some(&s.path),
            Record::Clip(c) => Some(&c.path),
            // --- issue 11 ---
            Record::SpotCheck(c) => c.snapshot_sha256.as_ref().and(c.snapshot.as_deref()),
            Record::CameraTamper(c) => c.snapshot_sha256.as_ref().and(c.snapshot.as_deref()),
            _ => self
                .face_vote()
                .and_then(|v| v.snapshot_sha256.as_ref().and(v.snapshot.as_deref())),
        }
    }

    /// The size of that file.
    pub fn file_bytes(&self) -> Option<u64> {
        match self {
            Record::Segment(s) => Some(s.bytes),
            // --- issue 10 ---
            Record::Snapshot(s) => Some(s.bytes),
            Record::Clip(c) => Some(c.bytes),
            _ => None,
        }
    }

    /// The latest instant that file covers (µs), where retention counts from (R6).
    pub fn file_end_us(&self) -> Option<i64> {
        match self {
            Record::Segment(s) => Some(s.end_us),
            // --- issue 10 ---
            Record::Snapshot(s) => Some(s.frame_us),
            Record::Clip(c) => Some(c.to_us),
            _ => None,
        }
    }

    /// The payload as JSON.
    pub fn payload_value(&self) -> Value {
        fn v<T: Serialize>(t: &T) -> Value {
            // Our payload structs hold only strings, numbers, bools, options and vectors:
            // serialising them to a `Value` cannot fail.
            serde_json::to_value(t).unwrap_or(Value::Null)
        }
        match self {
            Record::Segment(p) => v(p),
            Record::Gap(p) => v(p),
            Record::ClassHourPass(p)
            | Record::ClassHourAtRisk(p)
            | Record::ClassHourFail(p)
            | Record::ClassHourFinal(p) => v(p),
            Record::Alarm(p) => v(p),
            Record::Pruned(p) => v(p),
            Record::DeviceKey(p) => v(p),
            Record::KeyRotated(p) => v(p),
            Record::Enrollment(p) => v(p),
            Record::DeviceIdChanged(p) => v(p),
            Record::RosterRemoved(p) => v(p),
            Record::CheckIn(p) => v(p),
            Record::CheckOut(p)
            | Record::UnexpectedPerson(p)
            | Record::UnknownFace(p)
            | Record::SpoofAttempt(p) => v(p),
            Record::Absent(p) => v(p),
            // --- issue 10: downlink commands ---
            Record::Command(p) => v(p),
            Record::CommandRejected(p) => v(p),
            Record::CommandRejectedSummary(p) => v(p),
            Record::Snapshot(p) => v(p),
            Record::Live(p) => v(p),
            Record::Clip(p) => v(p),
            // --- issue 11: classroom presence ---
            Record::Presence(p) => v(p),
            Record::LeftEarly(p) => v(p),
            Record::SpotCheck(p) => v(p),
            Record::ClassVisibilityWarning(p) | Record::ClassFailed(p) => v(p),
            Record::CameraTamper(p) => v(p),
            Record::CameraTamperCleared(p) => v(p),
        }
    }

    /// The canonical payload text: what is stored and hashed.
    pub fn canonical_payload(&self) -> String {
        canonical_json(&self.payload_value())
    }

    /// Reads a stored record back: its type, its canonical payload text and its
    /// `file_sha256`. Strict (see the module doc); use [`RecordError::at`] to name the seq.
    pub fn from_stored(
        kind: &str,
        canonical_payload: &str,
        file_sha256: Option<&str>,
    ) -> Result<Record, RecordError> {
        let k = Kind::parse(kind).ok_or_else(|| RecordError::new(kind, "unknown record type"))?;
        fn p<T: serde::de::DeserializeOwned>(kind: &str, text: &str) -> Result<T, RecordError> {
            serde_json::from_str(text).map_err(|e| RecordError::new(kind, format!("payload: {e}")))
        }
        let rec = match k {
            Kind::Segment => {
                let mut s: Segment = p(kind, canonical_payload)?;
                s.sha256 = file_sha256
                    .ok_or_else(|| RecordError::new(kind, "no file_sha256"))?
                    .to_string();
                Record::Segment(s)
            }
            Kind::Gap => Record::Gap(p(kind, canonical_payload)?),
            Kind::ClassHourPass => Record::ClassHourPass(p(kind, canonical_payload)?),
            Kind::ClassHourAtRisk => Record::ClassHourAtRisk(p(kind, canonical_payload)?),
            Kind::ClassHourFail => Record::ClassHourFail(p(kind, canonical_payload)?),
            Kind::ClassHourFinal => Record::ClassHourFinal(p(kind, canonical_payload)?),
            Kind::Alarm => Record::Alarm(p(kind, canonical_payload)?),
            Kind::Pruned => Record::Pruned(p(kind, canonical_payload)?),
            Kind::DeviceKey => Record::DeviceKey(p(kind, canonical_payload)?),
            Kind::KeyRotated => Record::KeyRotated(p(kind, canonical_payload)?),
            Kind::Enrollment => Record::Enrollment(p(kind, canonical_payload)?),
            Kind::DeviceIdChanged => Record::DeviceIdChanged(p(kind, canonical_payload)?),
            Kind::RosterRemoved => Record::RosterRemoved(p(kind, canonical_payload)?),
            Kind::CheckIn => Record::CheckIn(p(kind, canonical_payload)?),
            Kind::CheckOut => Record::CheckOut(p(kind, canonical_payload)?),
            Kind::Absent => Record::Absent(p(kind, canonical_payload)?),
            Kind::UnexpectedPerson => Record::UnexpectedPerson(p(kind, canonical_payload)?),
            Kind::UnknownFace => Record::UnknownFace(p(kind, canonical_payload)?),
            Kind::SpoofAttempt => Record::SpoofAttempt(p(kind, canonical_payload)?),
            // --- issue 10: downlink commands ---
            Kind::Command => Record::Command(p(kind, canonical_payload)?),
            Kind::CommandRejected => Record::CommandRejected(p(kind, canonical_payload)?),
            Kind::CommandRejectedSummary => Record::CommandRejectedSummary(p(kind, canonical_payload)?),
            Kind::Snapshot => {
                let mut s: Snapshot = p(kind, canonical_payload)?;
                s.sha256 = file_sha256
                    .ok_or_else(|| RecordError::new(kind, "no file_sha256"))?
                    .to_string();
                Record::Snapshot(s)
            }
            Kind::Live => Record::Live(p(kind, canonical_payload)?),
            Kind::Clip => {
                let mut c: Clip = p(kind, canonical_payload)?;
                c.sha256 = file_sha256
                    .ok_or_else(|| RecordError::new(kind, "no file_sha256"))?
                    .to_string();
                Record::Clip(c)
            }
            // --- issue 11: classroom presence ---
            Kind::Presence => Record::Presence(p(kind, canonical_payload)?),
            Kind::LeftEarly => Record::LeftEarly(p(kind, canonical_payload)?),
            Kind::SpotCheck => Record::SpotCheck(p(kind, canonical_payload)?),
            Kind::ClassVisibilityWarning => Record::ClassVisibilityWarning(p(kind, canonical_payload)?),
            Kind::ClassFailed => Record::ClassFailed(p(kind, canonical_payload)?),
            Kind::CameraTamper => Record::CameraTamper(p(kind, canonical_payload)?),
            Kind::CameraTamperCleared => Record::CameraTamperCleared(p(kind, canonical_payload)?),
        };
        if k != Kind::Segment && file_sha256 != rec.file_sha256() {
            return Err(RecordError::new(
                kind,
                match file_sha256 {
                    Some(_) if rec.file_sha256().is_none() => {
                        "a file_sha256 on a record that names no file".to_string()
                    }
                    Some(_) => "a file_sha256 that is not the payload's snapshot_sha256".to_string(),
                    None => "no file_sha256 for the payload's snapshot".to_string(),
                },
            ));
        }
        let again = rec.canonical_payload();
        if again != canonical_payload {
            return Err(RecordError::new(
                kind,
                format!(
                    "the payload does not read back to the stored bytes (a field this version \
                     does not know, a missing one, or a non-canonical form): stored {canonical_payload}, \
                     read back {again}"
                ),
            ));
        }
        Ok(rec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn back(r: &Record) -> Record {
        Record::from_stored(r.kind(), &r.canonical_payload(), r.file_sha256()).unwrap()
    }

    /// Payloads exactly as the code before typed records built them (`json!`), for the kinds
    /// tests/fixtures/store-v1.sql does not hold.
    #[test]
    fn payloads_of_the_untyped_code_read_back_byte_for_byte() {
        let cases = [
            (
                Kind::Pruned,
                json!({"seq": 4, "path": "video/a/x.mp4", "sha256": "ab".repeat(32), "bytes": 10,
                       "file_time_us": 5, "reason": "disk_full", "retention_s": 94_608_000u64}),
            ),
            (
                Kind::Pruned,
                json!({"seq": 4, "path": "video/a/x.mp4", "sha256": "ab".repeat(32), "bytes": null,
                       "file_time_us": 5, "reason": "retention", "retention_s": 1}),
            ),
            (
                Kind::Alarm,
                json!({"alarm": "device_key", "state": "raised", "detail": "evidence key: 权限"}),
            ),
            (Kind::Alarm, json!({"alarm": "device_key", "state": "cleared"})),
            (
                Kind::Alarm,
                json!({"alarm": "disk_full", "state": "raised", "available_bytes": 0u64,
                       "capacity_bytes": 1_000_000u64, "reserve_bytes": 100_000u64, "policy": "delete-oldest"}),
            ),
            (
                Kind::Alarm,
                json!({"alarm": "disk_forecast", "state": "cleared", "days_left": null, "alarm_days": 30,
                       "bytes_per_day": null, "available_bytes": 5u64, "policy": "protect"}),
            ),
            (
                Kind::Enrollment,
                json!({"person_id": "p1", "role": "teacher", "model": "fr", "templates_added": 2,
                       "photo_sha256": ["aa", "bb"], "rejected": 1, "warnings": 0}),
            ),
        ];
        for (kind, v) in cases {
            let text = canonical_json(&v);
            let r = Record::from_stored(kind.as_str(), &text, None).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(r.canonical_payload(), text);
            assert_eq!(back(&r), r);
        }
    }

    #[test]
    fn the_coming_alarms_round_trip() {
        for a in [
            AlarmKind::JobFailed {
                job: "store".into(),
                cause: "panicked".into(),
            },
            AlarmKind::FileQuarantined {
                path: "video/a/x.mp4".into(),
                moved_to: Some("quarantine/video/a/x.mp4".into()),
                cause: "unreadable".into(),
            },
            AlarmKind::FileQuarantined {
                path: "video/a/x.mp4".into(),
                moved_to: None,
                cause: "unreadable".into(),
            },
            AlarmKind::EventSetAside {
                camera: "front".into(),
                event: "segment_abandoned".into(),
                cause: "x".into(),
            },
            AlarmKind::StoreReadOnly { detail: "ro".into() },
            AlarmKind::StoreWriteFailing {
                detail: "full".into(),
            },
        ] {
            let r = Record::alarm(a, AlarmState::Raised);
            assert_eq!(back(&r), r);
        }
        let r = Record::alarm(
            AlarmKind::JobFailed {
                job: "verdicts".into(),
                cause: "boom".into(),
            },
            AlarmState::Cleared,
        );
        assert_eq!(
            r.canonical_payload(),
            r#"{"alarm":"job_failed","cause":"boom","job":"verdicts","state":"cleared"}"#
        );
    }

    /// Issue 8, item 4: a value the code does not know is an error naming the record, never a
    /// different value.
    #[test]
    fn unknown_values_kinds_and_fields_are_errors_never_other_values() {
        let gap = |cause: &str| {
            canonical_json(
                &json!({"camera": "a", "start_us": 1, "end_us": 2, "cause": cause, "detail": null}),
            )
        };
        assert!(matches!(
            Record::from_stored(Kind::Gap.as_str(), &gap("stall"), None),
            Ok(Record::Gap(Gap {
                cause: GapCause::Stall,
                ..
            }))
        ));
        let e = Record::from_stored(Kind::Gap.as_str(), &gap("lightning"), None)
            .unwrap_err()
            .at(17);
        assert_eq!(e.seq, Some(17));
        let msg = e.to_string();
        assert!(
            msg.contains("record 17") && msg.contains("unknown gap cause \"lightning\""),
            "{msg}"
        );

        let seg = |state: &str| {
            canonical_json(
                &json!({"camera": "a", "path": "video/a/x.mp4", "start_us": 1, "end_us": 2,
                "media_duration_us": 1, "bytes": 3, "stream_id": "s", "stream_seq": 0, "state": state,
                "codec": "h264"}),
            )
        };
        let sha = "ab".repeat(32);
        let ok = Record::from_stored(Kind::Segment.as_str(), &seg("recovered"), Some(&sha)).unwrap();
        assert_eq!(ok.file_sha256(), Some(sha.as_str()));
        assert_eq!(ok.file_path(), Some("video/a/x.mp4"));
        let e = Record::from_stored(Kind::Segment.as_str(), &seg("melted"), Some(&sha)).unwrap_err();
        assert!(e.to_string().contains("unknown segment state \"melted\""), "{e}");
        assert!(Record::from_stored(Kind::Segment.as_str(), &seg("closed"), None).is_err());

        let alarm = canonical_json(&json!({"alarm": "meteor", "state": "raised"}));
        assert!(Record::from_stored(Kind::Alarm.as_str(), &alarm, None).is_err());
        let state = canonical_json(&json!({"alarm": "device_key", "state": "smouldering"}));
        assert!(Record::from_stored(Kind::Alarm.as_str(), &state, None).is_err());

        // A missing field, even an optional one that is written as null; an unknown field.
        let missing = canonical_json(&json!({"camera": "a", "start_us": 1, "end_us": 2, "cause": "stall"}));
        assert!(Record::from_stored(Kind::Gap.as_str(), &missing, None).is_err());
        let extra = canonical_json(
            &json!({"camera": "a", "start_us": 1, "end_us": 2, "cause": "stall", "detail": null, "x": 1}),
        );
        let e = Record::from_stored(Kind::Gap.as_str(), &extra, None).unwrap_err();
        assert!(e.to_string().contains("does not read back"), "{e}");
        // A file hash on a record that names no file; an unknown kind.
        assert!(Record::from_stored(Kind::Gap.as_str(), &gap("stall"), Some(&sha)).is_err());
        let e = Record::from_stored("comet", "{}", None).unwrap_err();
        assert!(e.to_string().contains("unknown record type"), "{e}");
    }

    /// issue 9: a face decision with a snapshot vouches for that file like a segment does.
    #[test]
    fn a_face_decision_vouches_for_its_snapshot() {
        let sha = "ab".repeat(32);
        let vote = FaceVote {
            session: "s1".into(),
            session_id: "s1".into(),
            date: None,
            class_id: "c1".into(),
            class_hour: Some(1),
            camera: "door".into(),
            track: 7,
            time_us: 1,
            person_id: Some("p1".into()),
            role: Some(Role::Trainee),
            similarity: Some(0.8),
            margin: None,
            liveness: 0.9,
            frames_voted: 5,
            frames_agreeing: 5,
            snapshot: Some("snapshots/door/2026-12-01/x.jpg".into()),
            snapshot_sha256: Some(sha.clone()),
        };
        let r = Record::CheckIn(CheckIn {
            vote: vote.clone(),
            late: false,
        });
        assert_eq!(r.file_sha256(), Some(sha.as_str()));
        assert_eq!(r.file_path(), Some("snapshots/door/2026-12-01/x.jpg"));
        let p = r.canonical_payload();
        assert_eq!(Record::from_stored("check_in", &p, Some(&sha)).unwrap(), r);
        let e = Record::from_stored("check_in", &p, None).unwrap_err();
        assert!(e.to_string().contains("no file_sha256"), "{e}");
        let e = Record::from_stored("check_in", &p, Some(&"cd".repeat(32))).unwrap_err();
        assert!(e.to_string().contains("not the payload's snapshot_sha256"), "{e}");
        // Without a snapshot, no file.
        let bare = Record::UnknownFace(FaceVote {
            snapshot: None,
            snapshot_sha256: None,
            ..vote
        });
        assert_eq!((bare.file_sha256(), bare.file_path()), (None, None));
        let e = Record::from_stored("unknown_face", &bare.canonical_payload(), Some(&sha)).unwrap_err();
        assert!(e.to_string().contains("names no file"), "{e}");
    }

    #[test]
    fn every_kind_has_one_name() {
        let names: std::collections::HashSet<&str> = Kind::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(names.len(), Kind::ALL.len());
        for k in Kind::ALL {
            assert_eq!(Kind::parse(k.as_str()), Some(k));
            assert!(super::super::log::is_valid_kind(k.as_str()));
        }
        for e in ClassHourEvent::ALL {
            assert!(e.as_str().starts_with("class_hour_"));
        }
    }

    // --- issue 11: classroom presence ---
    #[test]
    fn presence_kinds_round_trip_and_snapshots_are_files() {
        let sha = "cd".repeat(32);
        let recs = [
            Record::Presence(Presence {
                session: "s1".into(),
                session_id: "s1".into(),
                date: None,
                class_id: "c1".into(),
                class_hour: 2,
                start_us: 1,
                end_us: 2,
                cameras: vec!["room".into()],
                analysed: true,
                head_count: 6,
                all_visible: Some(false),
                not_visible: vec!["c".into()],
                trainees: vec![PresenceSeen {
                    person_id: "c".into(),
                    seen: false,
                    first_seen_us: None,
                    last_seen_us: None,
                }],
            }),
            Record::LeftEarly(LeftEarly {
                session: "s1".into(),
                session_id: "s1".into(),
                date: Some("2026-12-01".into()),
                class_id: "c1".into(),
                person_id: "c".into(),
                last_seen_us: 5,
                end_us: 9,
            }),
            Record::SpotCheck(SpotCheck {
                session: "s1".into(),
                session_id: "s1".into(),
                date: None,
                class_id: "c1".into(),
                class_hour: 1,
                camera: "room".into(),
                from_us: 1,
                to_us: 2,
                seen: vec!["a".into()],
                missed: vec!["c".into()],
                snapshot: Some("snapshots/room/x.jpg".into()),
                snapshot_sha256: Some(sha.clone()),
            }),
            Record::ClassFailed(ClassVisibility {
                class_id: "c1".into(),
                profile: "henan".into(),
                rule: "R4".into(),
                hours_not_showing_all: 3,
                limit: 3,
                hours: vec!["s1#1".into()],
            }),
            Record::ClassVisibilityWarning(ClassVisibility {
                class_id: "c1".into(),
                profile: "henan".into(),
                rule: "R4".into(),
                hours_not_showing_all: 2,
                limit: 3,
                hours: vec![],
            }),
            Record::CameraTamper(CameraTamper {
                camera: "room".into(),
                tamper: "covered".into(),
                since_us: 3,
                snapshot: Some("snapshots/room/y.jpg".into()),
                snapshot_sha256: Some(sha.clone()),
            }),
            Record::CameraTamperCleared(CameraTamperCleared {
                camera: "room".into(),
                tamper: "covered".into(),
                since_us: 4,
            }),
            Record::alarm(
                AlarmKind::TeacherRatio {
                    session: "s1".into(),
                    class_id: "c1".into(),
                    teachers: 1,
                    trainees: 30,
                    per_teacher: 20,
                },
                AlarmState::Raised,
            ),
            Record::alarm(
                AlarmKind::NoTeacher {
                    session: "s1".into(),
                    class_id: "c1".into(),
                },
                AlarmState::Cleared,
            ),
            Record::alarm(
                AlarmKind::HeadCount {
                    session: "s1".into(),
                    class_hour: Some(1),
                    camera: "room".into(),
                    head_count: 9,
                    roster_trainees: 6,
                    teachers: 2,
                },
                AlarmState::Raised,
            ),
        ];
        for r in &recs {
            assert_eq!(&back(r), r, "{}", r.kind());
        }
        assert_eq!(recs[2].file_sha256(), Some(sha.as_str()));
        assert_eq!(recs[2].file_path(), Some("snapshots/room/x.jpg"));
        assert_eq!(recs[5].file_path(), Some("snapshots/room/y.jpg"));
        assert_eq!(recs[0].file_sha256(), None);
        // A spot check claiming a file the payload does not name is refused.
        let no_snap = Record::SpotCheck(SpotCheck {
            snapshot: None,
            snapshot_sha256: None,
            ..match &recs[2] {
                Record::SpotCheck(c) => c.clone(),
                _ => unreachable!(),
            }
        });
        assert!(Record::from_stored("spot_check", &no_snap.canonical_payload(), Some(&sha)).is_err());
    }
}
