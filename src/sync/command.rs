//! Signed downlink commands (docs/protocol.md, "Commands"; issue 10, item 5). Pure: no I/O,
//! no clock; the time and the replay memory are given.
//!
//! A command arrives on `{prefix}/{device}/cmd` as `{"payload": "<command JSON>",
//! "signature": "<base64 Ed25519 signature of the payload's UTF-8 bytes>"}`, signed with the
//! platform's key (`[upstream] platform_key_file`). [`decide`] accepts it or names why not,
//! in this order: the envelope reads (`malformed`), the signature verifies
//! (`bad_signature`), the command reads with no unknown field (`malformed`), it is for this
//! device (`wrong_device`), it is valid now (`expired`, also when issued in the future beyond
//! [`CLOCK_TOLERANCE_US`]), its id was not accepted before (`replayed`), its type is known
//! (`unknown_type`) and its body reads as that type's (`malformed`). Only a verified command
//! is ever run (R9: remote inspection only on the platform's word).

use std::collections::BTreeMap;

use base64::Engine as _;
use chrono::DateTime;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::message::time_text;

pub const CMD_SCHEMA: &str = "classproof.cmd/1";
pub const ACK_SCHEMA: &str = "classproof.ack/1";
/// How far in the future `issued` may be (the two clocks disagree a little).
pub const CLOCK_TOLERANCE_US: i64 = 60_000_000;
/// Longest validity accepted (`expires - issued`): ids are remembered that long.
pub const MAX_VALIDITY_US: i64 = 7 * 86_400 * 1_000_000;
/// Rejections recorded one by one per minute; the rest are counted into one summary.
pub const REJECTIONS_PER_MINUTE: u32 = 10;
/// Longest `detail` kept in a rejection record or ack.
const DETAIL_MAX: usize = 200;

/// Why a command was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    BadSignature,
    WrongDevice,
    Expired,
    Replayed,
    Malformed,
    UnknownType,
}

impl Reason {
    pub const ALL: [Reason; 6] = [
        Reason::BadSignature,
        Reason::WrongDevice,
        Reason::Expired,
        Reason::Replayed,
        Reason::Malformed,
        Reason::UnknownType,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::BadSignature => "bad_signature",
            Reason::WrongDevice => "wrong_device",
            Reason::Expired => "expired",
            Reason::Replayed => "replayed",
            Reason::Malformed => "malformed",
            Reason::UnknownType => "unknown_type",
        }
    }
}

/// The command types this version runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommandType {
    RosterUpdate,
    ScheduleUpdate,
    SnapshotRequest,
    ClipRequest,
    AttendanceRequest,
    LiveStart,
    LiveStop,
}

impl CommandType {
    pub const ALL: [CommandType; 7] = [
        CommandType::RosterUpdate,
        CommandType::ScheduleUpdate,
        CommandType::SnapshotRequest,
        CommandType::ClipRequest,
        CommandType::AttendanceRequest,
        CommandType::LiveStart,
        CommandType::LiveStop,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CommandType::RosterUpdate => "roster.update",
            CommandType::ScheduleUpdate => "schedule.update",
            CommandType::SnapshotRequest => "snapshot.request",
            CommandType::ClipRequest => "clip.request",
            CommandType::AttendanceRequest => "attendance.request",
            CommandType::LiveStart => "live.start",
            CommandType::LiveStop => "live.stop",
        }
    }

    pub fn parse(s: &str) -> Option<CommandType> {
        CommandType::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Envelope {
    payload: String,
    signature: String,
}

/// The signed command, as the platform wrote it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Command {
    pub schema: String,
    pub id: String,
    pub device: String,
    /// RFC 3339.
    pub issued: String,
    pub expires: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub body: Value,
}

/// `snapshot.request`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotRequest {
    pub camera: String,
    pub upload_url: String,
}

/// `clip.request`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClipRequest {
    pub camera: String,
    pub from: String,
    pub to: String,
    pub upload_url: String,
}

/// `attendance.request`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttendanceRequest {
    pub session: String,
    /// `YYYY-MM-DD` (local).
    pub date: String,
}

/// `live.start`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LiveStart {
    pub camera: String,
    pub push_url: String,
    /// e.g. `"10m"` (at most `[upstream] live_max`).
    pub duration: String,
}

/// `live.stop`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LiveStop {
    pub camera: String,
}

/// One photo of a `roster.update` person: fetched from `url` and checked against `sha256`,
/// or given inline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged, deny_unknown_fields)]
pub enum Photo {
    Url { url: String, sha256: String },
    Inline { jpeg_base64: String },
}

/// One person of a `roster.update`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RosterPerson {
    pub person_id: String,
    pub name: String,
    pub role: String,
    #[serde(default)]
    pub id_number: Option<String>,
    #[serde(default)]
    pub photos: Vec<Photo>,
}

/// `roster.update`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RosterUpdate {
    pub class_id: String,
    #[serde(default)]
    pub persons: Vec<RosterPerson>,
    #[serde(default)]
    pub remove: Vec<String>,
}

/// `schedule.update`: sessions with the keys of `[[session]]` (checked by the same code when
/// run).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleUpdate {
    #[serde(default)]
    pub sessions: Vec<Value>,
    #[serde(default)]
    pub remove: Vec<String>,
}

/// A command's body, read as its type's.
#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    RosterUpdate(RosterUpdate),
    ScheduleUpdate(ScheduleUpdate),
    SnapshotRequest(SnapshotRequest),
    ClipRequest(ClipRequest),
    AttendanceRequest(AttendanceRequest),
    LiveStart(LiveStart),
    LiveStop(LiveStop),
}

/// A verified command of this device, valid now, not seen before.
#[derive(Debug, Clone, PartialEq)]
pub struct Accepted {
    pub command: Command,
    pub kind: CommandType,
    pub body: Body,
    pub issued_us: i64,
    pub expires_us: i64,
    /// sha256 (hex) of the payload string as signed.
    pub payload_sha256: String,
}

/// A command refused, with what could be read of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// `None` when the command could not be read.
    pub command_id: Option<String>,
    pub reason: Reason,
    pub detail: String,
    /// sha256 (hex) of the raw message.
    pub message_sha256: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    Accepted(Box<Accepted>),
    Rejected(Rejected),
}

/// What [`decide`] checks against.
#[derive(Debug, Clone, Copy)]
pub struct Verifier<'a> {
    /// The platform's Ed25519 public key.
    pub platform_key: &'a [u8; 32],
    pub device: &'a str,
}

fn sha256_hex(b: &[u8]) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, b).as_ref())
}

fn clip(s: String) -> String {
    if s.len() <= DETAIL_MAX {
        return s;
    }
    let mut end = DETAIL_MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// Decides on one message of the command topic at `now_us`; `seen(id)` says whether a command
/// with that id was accepted before (and has not expired since).
pub fn decide(raw: &[u8], v: &Verifier, now_us: i64, seen: &dyn Fn(&str) -> bool) -> Decision {
    let message_sha256 = sha256_hex(raw);
    let reject = |id: Option<String>, reason: Reason, detail: String| {
        Decision::Rejected(Rejected {
            command_id: id,
            reason,
            detail: clip(detail),
            message_sha256: message_sha256.clone(),
        })
    };
    let env: Envelope = match serde_json::from_slice(raw) {
        Ok(e) => e,
        Err(e) => {
            return reject(
                None,
                Reason::Malformed,
                format!("not a {{\"payload\", \"signature\"}} object: {e}"),
            );
        }
    };
    // The id as claimed, for the ack only (not trusted before the signature verifies).
    let claimed_id = || {
        serde_json::from_str::<Value>(&env.payload)
            .ok()
            .and_then(|v| v.get("id").and_then(Value::as_str).map(str::to_string))
    };
    let signature = match base64::engine::general_purpose::STANDARD.decode(env.signature.trim()) {
        Ok(s) => s,
        Err(e) => {
            return reject(
                claimed_id(),
                Reason::BadSignature,
                format!("signature is not base64: {e}"),
            );
        }
    };
    let key = ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, v.platform_key);
    if key.verify(env.payload.as_bytes(), &signature).is_err() {
        return reject(
            claimed_id(),
            Reason::BadSignature,
            "the signature does not verify with upstream.platform_key_file".into(),
        );
    }
    let cmd: Command = match serde_json::from_str(&env.payload) {
        Ok(c) => c,
        Err(e) => return reject(claimed_id(), Reason::Malformed, format!("payload: {e}")),
    };
    let id = Some(cmd.id.clone());
    if cmd.schema != CMD_SCHEMA {
        return reject(
            id,
            Reason::Malformed,
            format!("schema {:?}, expected {CMD_SCHEMA:?}", cmd.schema),
        );
    }
    if cmd.id.is_empty() || cmd.id.len() > 128 {
        return reject(id, Reason::Malformed, "id: 1 to 128 characters".into());
    }
    if cmd.device != v.device {
        return reject(
            id,
            Reason::WrongDevice,
            format!("for device {:?}, this is {:?}", cmd.device, v.device),
        );
    }
    let time = |field: &str, s: &str| {
        DateTime::parse_from_rfc3339(s)
            .map(|t| t.timestamp_micros())
            .map_err(|e| format!("{field}: an RFC 3339 time with offset ({e})"))
    };
    let (issued_us, expires_us) = match (time("issued", &cmd.issued), time("expires", &cmd.expires)) {
        (Ok(i), Ok(e)) => (i, e),
        (Err(why), _) | (_, Err(why)) => return reject(id, Reason::Malformed, why),
    };
    if expires_us <= issued_us || expires_us - issued_us > MAX_VALIDITY_US {
        return reject(
            id,
            Reason::Malformed,
            "expires must be after issued, by at most 7 days".into(),
        );
    }
    if now_us >= expires_us {
        return reject(id, Reason::Expired, format!("expired at {}", cmd.expires));
    }
    if issued_us > now_us + CLOCK_TOLERANCE_US {
        return reject(
            id,
            Reason::Expired,
            format!(
                "issued {} is in the future (more than {} s ahead of the box's clock)",
                cmd.issued,
                CLOCK_TOLERANCE_US / 1_000_000
            ),
        );
    }
    if seen(&cmd.id) {
        return reject(
            id,
            Reason::Replayed,
            "a command with this id was accepted before".into(),
        );
    }
    let Some(kind) = CommandType::parse(&cmd.kind) else {
        return reject(
            id,
            Reason::UnknownType,
            format!("unknown command type {:?}", cmd.kind),
        );
    };
    let body = match read_body(kind, &cmd.body) {
        Ok(b) => b,
        Err(e) => return reject(id, Reason::Malformed, format!("body of {}: {e}", kind.as_str())),
    };
    Decision::Accepted(Box::new(Accepted {
        payload_sha256: sha256_hex(env.payload.as_bytes()),
        command: cmd,
        kind,
        body,
        issued_us,
        expires_us,
    }))
}

fn read_body(kind: CommandType, v: &Value) -> Result<Body, serde_json::Error> {
    use serde_json::from_value as f;
    let v = v.clone();
    Ok(match kind {
        CommandType::RosterUpdate => Body::RosterUpdate(f(v)?),
        CommandType::ScheduleUpdate => Body::ScheduleUpdate(f(v)?),
        CommandType::SnapshotRequest => Body::SnapshotRequest(f(v)?),
        CommandType::ClipRequest => Body::ClipRequest(f(v)?),
        CommandType::AttendanceRequest => Body::AttendanceRequest(f(v)?),
        CommandType::LiveStart => Body::LiveStart(f(v)?),
        CommandType::LiveStop => Body::LiveStop(f(v)?),
    })
}

/// The ack of a rejected command.
pub fn ack_rejected(device: &str, tz: chrono_tz::Tz, now_us: i64, r: &Rejected) -> Value {
    json!({
        "schema": ACK_SCHEMA,
        "command_id": r.command_id,
        "device": device,
        "time": time_text(now_us, tz),
        "result": "rejected",
        "reason": r.reason.as_str(),
        "detail": r.detail,
    })
}

/// The ack of a command that ran: `ok` with its result body, or `failed` with the error.
pub fn ack_done(
    device: &str,
    tz: chrono_tz::Tz,
    now_us: i64,
    command_id: &str,
    outcome: &Result<Value, String>,
) -> Value {
    let (result, body, detail) = match outcome {
        Ok(b) => ("ok", b.clone(), None),
        Err(e) => ("failed", Value::Null, Some(clip(e.clone()))),
    };
    let mut ack = json!({
        "schema": ACK_SCHEMA,
        "command_id": command_id,
        "device": device,
        "time": time_text(now_us, tz),
        "result": result,
        "body": body,
    });
    if let (Some(d), Some(o)) = (detail, ack.as_object_mut()) {
        o.insert("detail".into(), Value::from(d));
    }
    ack
}

/// Signs a command payload (the platform's side; the reference receiver and the tests):
/// the envelope text. `pkcs8` is the platform's Ed25519 private key (PKCS#8 DER).
pub fn sign(payload: &str, pkcs8: &[u8]) -> Result<String, String> {
    let kp = ring::signature::Ed25519KeyPair::from_pkcs8_maybe_unchecked(pkcs8)
        .map_err(|e| format!("not an Ed25519 PKCS#8 private key: {e}"))?;
    let sig = kp.sign(payload.as_bytes());
    Ok(json!({
        "payload": payload,
        "signature": base64::engine::general_purpose::STANDARD.encode(sig.as_ref()),
    })
    .to_string())
}

/// Flood control for rejections: the first [`REJECTIONS_PER_MINUTE`] of a (UTC) minute are
/// recorded one by one, the rest counted into one summary record for that minute, written
/// when the next minute begins ([`RejectFlood::admit`] or [`RejectFlood::tick`]).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct RejectFlood {
    minute: i64,
    recorded: u32,
    counted: BTreeMap<&'static str, u64>,
}

/// Rejections of one minute past the limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FloodSummary {
    pub from_us: i64,
    pub to_us: i64,
    pub rejected: u64,
    pub by_reason: BTreeMap<String, u64>,
}

impl RejectFlood {
    pub fn new() -> RejectFlood {
        RejectFlood::default()
    }

    /// A rejection at `now_us`: `true` if it gets its own record. Also returns the summary
    /// of a finished minute, if one is due.
    pub fn admit(&mut self, now_us: i64, reason: Reason) -> (bool, Option<FloodSummary>) {
        let summary = self.tick(now_us);
        if self.recorded < REJECTIONS_PER_MINUTE {
            self.recorded += 1;
            (true, summary)
        } else {
            *self.counted.entry(reason.as_str()).or_default() += 1;
            (false, summary)
        }
    }

    /// The summary of the finished minute, once `now_us` is past it.
    pub fn tick(&mut self, now_us: i64) -> Option<FloodSummary> {
        let minute = now_us.div_euclid(60_000_000);
        if minute == self.minute {
            return None;
        }
        let done = std::mem::take(&mut self.counted);
        let from = self.minute * 60_000_000;
        self.minute = minute;
        self.recorded = 0;
        if done.is_empty() {
            return None;
        }
        Some(FloodSummary {
            from_us: from,
            to_us: from + 60_000_000,
            rejected: done.values().sum(),
            by_reason: done.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::signature::KeyPair as _;

    const NOW: i64 = 1_800_000_000_000_000;

    struct Keys {
        pkcs8: Vec<u8>,
        public: [u8; 32],
    }

    fn keys(_seed: u8) -> Keys {
        let pkcs8 = ring::signature::Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new())
            .unwrap()
            .as_ref()
            .to_vec();
        let kp = ring::signature::Ed25519KeyPair::from_pkcs8(&pkcs8).unwrap();
        let mut public = [0u8; 32];
        public.copy_from_slice(kp.public_key().as_ref());
        Keys { pkcs8, public }
    }

    fn t(offset_s: i64) -> String {
        time_text(NOW + offset_s * 1_000_000, chrono_tz::Asia::Shanghai)
    }

    fn cmd(id: &str, device: &str, issued: i64, expires: i64, kind: &str, body: Value) -> Value {
        json!({"schema": CMD_SCHEMA, "id": id, "device": device, "issued": t(issued),
               "expires": t(expires), "type": kind, "body": body})
    }

    fn snap() -> Value {
        json!({"camera": "front", "upload_url": "http://127.0.0.1:9/x"})
    }

    fn run(raw: &str, k: &Keys, seen: &[&str]) -> Decision {
        let v = Verifier {
            platform_key: &k.public,
            device: "box-1",
        };
        decide(raw.as_bytes(), &v, NOW, &|id| seen.contains(&id))
    }

    fn reason(d: &Decision) -> (Option<&str>, &'static str) {
        match d {
            Decision::Rejected(r) => (r.command_id.as_deref(), r.reason.as_str()),
            Decision::Accepted(a) => (Some(a.command.id.as_str()), "accepted"),
        }
    }

    #[test]
    fn decisions_table() {
        let k = keys(1);
        let other = keys(2);
        let good = cmd("c1", "box-1", -10, 300, "snapshot.request", snap()).to_string();
        let signed = |p: &str| sign(p, &k.pkcs8).unwrap();
        let mut tampered: Value = serde_json::from_str(&signed(&good)).unwrap();
        tampered["payload"] = Value::from(good.replace("front", "back"));
        let mut extra = cmd("c9", "box-1", -10, 300, "snapshot.request", snap());
        extra["colour"] = json!(1);
        let mut extra_body = cmd("c10", "box-1", -10, 300, "snapshot.request", snap());
        extra_body["body"]["zoom"] = json!(2);
        type Case<'a> = (&'a str, String, &'a [&'a str], (Option<&'a str>, &'a str));
        let table: Vec<Case> = vec![
            ("good", signed(&good), &[], (Some("c1"), "accepted")),
            ("not json", "{nope".into(), &[], (None, "malformed")),
            (
                "no signature",
                json!({"payload": good}).to_string(),
                &[],
                (None, "malformed"),
            ),
            (
                "envelope with an extra field",
                json!({"payload": good, "signature": "", "x": 1}).to_string(),
                &[],
                (None, "malformed"),
            ),
            (
                "empty signature",
                json!({"payload": good, "signature": ""}).to_string(),
                &[],
                (Some("c1"), "bad_signature"),
            ),
            (
                "another key",
                sign(&good, &other.pkcs8).unwrap(),
                &[],
                (Some("c1"), "bad_signature"),
            ),
            (
                "tampered payload",
                tampered.to_string(),
                &[],
                (Some("c1"), "bad_signature"),
            ),
            ("signed non-JSON", signed("hello"), &[], (None, "malformed")),
            (
                "unknown field",
                signed(&extra.to_string()),
                &[],
                (Some("c9"), "malformed"),
            ),
            (
                "unknown body field",
                signed(&extra_body.to_string()),
                &[],
                (Some("c10"), "malformed"),
            ),
            (
                "other schema",
                signed(&good.replace("classproof.cmd/1", "classproof.cmd/2")),
                &[],
                (Some("c1"), "malformed"),
            ),
            (
                "wrong device",
                signed(&cmd("c2", "box-2", -10, 300, "snapshot.request", snap()).to_string()),
                &[],
                (Some("c2"), "wrong_device"),
            ),
            (
                "expired",
                signed(&cmd("c3", "box-1", -600, -1, "snapshot.request", snap()).to_string()),
                &[],
                (Some("c3"), "expired"),
            ),
            (
                "issued in the future",
                signed(&cmd("c4", "box-1", 120, 600, "snapshot.request", snap()).to_string()),
                &[],
                (Some("c4"), "expired"),
            ),
            (
                "issued a little ahead (within the tolerance)",
                signed(&cmd("c5", "box-1", 30, 600, "snapshot.request", snap()).to_string()),
                &[],
                (Some("c5"), "accepted"),
            ),
            (
                "expires before issued",
                signed(&cmd("c6", "box-1", 10, 5, "snapshot.request", snap()).to_string()),
                &[],
                (Some("c6"), "malformed"),
            ),
            ("replayed", signed(&good), &["c1"], (Some("c1"), "replayed")),
            (
                "unknown type",
                signed(&cmd("c7", "box-1", -10, 300, "reboot", json!({})).to_string()),
                &[],
                (Some("c7"), "unknown_type"),
            ),
            (
                "bad time",
                signed(&good.replace(&t(-10), "yesterday")),
                &[],
                (Some("c1"), "malformed"),
            ),
        ];
        for (name, raw, seen, want) in &table {
            let d = run(raw, &k, seen);
            assert_eq!(reason(&d), *want, "{name}: {d:?}");
        }
    }

    #[test]
    fn accepted_carries_the_typed_body_and_times() {
        let k = keys(3);
        let p = cmd("c1", "box-1", -10, 300, "snapshot.request", snap()).to_string();
        let Decision::Accepted(a) = run(&sign(&p, &k.pkcs8).unwrap(), &k, &[]) else {
            panic!()
        };
        assert_eq!(a.kind, CommandType::SnapshotRequest);
        assert_eq!(a.issued_us, NOW - 10_000_000);
        assert_eq!(a.expires_us, NOW + 300_000_000);
        assert_eq!(a.payload_sha256, sha256_hex(p.as_bytes()));
        assert!(matches!(a.body, Body::SnapshotRequest(ref s) if s.camera == "front"));
    }

    #[test]
    fn roster_photos_are_a_url_with_its_sha256_or_inline() {
        let b = json!({"class_id": "k1", "persons": [{"person_id": "p1", "name": "A", "role": "trainee",
            "photos": [{"url": "http://h/x.jpg", "sha256": "ab"}, {"jpeg_base64": "AAA="}]}]});
        let Body::RosterUpdate(r) = read_body(CommandType::RosterUpdate, &b).unwrap() else {
            panic!()
        };
        assert!(matches!(r.persons[0].photos[0], Photo::Url { .. }));
        assert!(matches!(r.persons[0].photos[1], Photo::Inline { .. }));
        let bad = json!({"class_id": "k1", "persons": [{"person_id": "p1", "name": "A", "role": "trainee",
            "photos": [{"url": "http://h/x.jpg"}]}]});
        assert!(read_body(CommandType::RosterUpdate, &bad).is_err());
    }

    #[test]
    fn long_details_are_cut() {
        let d = clip("é".repeat(300));
        assert!(d.len() <= DETAIL_MAX + "…".len());
    }

    #[test]
    fn flood_control_records_a_few_then_counts_the_rest_per_minute() {
        let mut f = RejectFlood::new();
        let m0 = 29_999_000 * 60_000_000; // a minute boundary
        let mut own = 0;
        for i in 0..20 {
            let (record, summary) = f.admit(m0 + i * 1_000_000, Reason::BadSignature);
            assert!(summary.is_none());
            own += record as u32;
        }
        assert_eq!(own, REJECTIONS_PER_MINUTE);
        let (_, _) = f.admit(m0 + 30_000_000, Reason::Malformed);
        assert_eq!(f.tick(m0 + 59_000_000), None, "not before the minute is over");
        let s = f.tick(m0 + 61_000_000).expect("a summary");
        assert_eq!(s.rejected, 21 - u64::from(REJECTIONS_PER_MINUTE));
        assert_eq!(
            s.by_reason["bad_signature"],
            20 - u64::from(REJECTIONS_PER_MINUTE)
        );
        assert_eq!(s.by_reason["malformed"], 1);
        assert_eq!((s.from_us, s.to_us), (m0, m0 + 60_000_000));
        // A new minute records again, and a quiet minute has no summary.
        assert!(f.admit(m0 + 62_000_000, Reason::Expired).0);
        assert_eq!(f.tick(m0 + 200_000_000), None);
    }
}
