//! The messages the box publishes (docs/protocol.md; one JSON Schema each under
//! docs/schemas/). Pure: no I/O, no clock; times are given.

use chrono::{DateTime, SecondsFormat};
use chrono_tz::Tz;
use serde::Serialize;
use serde_json::{Value, json};

use super::source::{CheckpointRow, Entry};

/// Schema names with their versions, as carried in every message's `schema`.
pub const EVENT_SCHEMA: &str = "classproof.event/1";
pub const CHECKPOINT_SCHEMA: &str = "classproof.checkpoint/1";
pub const STATUS_SCHEMA: &str = "classproof.status/1";

/// `{prefix}/{device}/…` topics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topics {
    pub status: String,
    pub event: String,
    pub checkpoint: String,
    /// Downlink commands (subscribed) and their acks.
    pub cmd: String,
    pub ack: String,
}

impl Topics {
    pub fn new(prefix: &str, device: &str) -> Topics {
        let base = format!("{prefix}/{device}");
        Topics {
            status: format!("{base}/status"),
            event: format!("{base}/event"),
            checkpoint: format!("{base}/checkpoint"),
            cmd: format!("{base}/cmd"),
            ack: format!("{base}/cmd/ack"),
        }
    }
}

/// RFC 3339 with the offset of the configured timezone and microseconds, e.g.
/// `2026-12-01T17:42:00.123456+08:00`.
pub fn time_text(time_us: i64, tz: Tz) -> String {
    DateTime::from_timestamp_micros(time_us)
        .unwrap_or_default()
        .with_timezone(&tz)
        .to_rfc3339_opts(SecondsFormat::Micros, false)
}

/// The idempotency key of an event: `{device}:{seq}`.
pub fn event_id(device: &str, seq: i64) -> String {
    format!("{device}:{seq}")
}

/// An `event` message: the record's envelope, its fields (the payload parsed; under
/// `fields`, so that no payload key can shadow an envelope key) and everything its hash is
/// computed from.
pub fn event(device: &str, tz: Tz, e: &Entry) -> Value {
    serde_json::from_str(&event_text(device, tz, e)).unwrap_or(Value::Null)
}

/// The `event` message as sent. Written directly rather than through a `Value` (the drain
/// of a long backlog spends its time here): the canonical payload is already the JSON of
/// `fields`, so an object payload is embedded as it is; anything else gives `null`.
pub fn event_text(device: &str, tz: Tz, e: &Entry) -> String {
    use std::fmt::Write as _;
    let is_object =
        e.payload.starts_with('{') && serde_json::from_str::<serde::de::IgnoredAny>(&e.payload).is_ok();
    let fields = if is_object { e.payload.as_str() } else { "null" };
    let q = |s: &str| Value::from(s).to_string();
    let mut out = String::with_capacity(2 * e.payload.len() + 400);
    let _ = write!(
        out,
        "{{\"schema\":\"{EVENT_SCHEMA}\",\"id\":{},\"seq\":{},\"device\":{},\"time\":\"{}\",\"type\":{},\
         \"fields\":{fields},\"time_us\":{},\"payload\":{},\"file_sha256\":{},\"prev_hash\":\"{}\",\"hash\":\"{}\"}}",
        q(&event_id(device, e.seq)),
        e.seq,
        q(device),
        time_text(e.time_us, tz),
        q(&e.kind),
        e.time_us,
        q(&e.payload),
        e.file_sha256.as_deref().map_or("null".to_string(), q),
        hex::encode(&e.prev_hash),
        hex::encode(&e.hash),
    );
    out
}

/// A `checkpoint` message: the signed text exactly as stored, with its parsed key facts.
pub fn checkpoint(device: &str, tz: Tz, c: &CheckpointRow) -> Value {
    json!({
        "schema": CHECKPOINT_SCHEMA,
        "id": format!("{device}:checkpoint:{}", c.id),
        "seq": c.seq,
        "device": device,
        "time": time_text(c.time_us, tz),
        "key_fingerprint": c.key_fingerprint,
        "text": c.text,
    })
}

/// What an `online` status reports.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Online {
    pub version: String,
    pub cameras: Vec<String>,
    /// The log's head.
    pub seq: i64,
    pub backlog_records: i64,
    /// Time of the oldest unsent record (µs), if any.
    pub backlog_oldest_us: Option<i64>,
    /// `[evidence]`'s last disk check (the evidence job's `meta` JSON), if any.
    pub disk: Option<Value>,
}

/// An `online` status, published retained on connect and every `status_interval`.
pub fn status_online(device: &str, tz: Tz, now_us: i64, s: &Online) -> Value {
    let disk = s.disk.as_ref().map(|d| {
        json!({
            "available_bytes": d.get("available_bytes"),
            "capacity_bytes": d.get("capacity_bytes"),
            "reserve_bytes": d.get("reserve_bytes"),
            "disk_full": d.get("disk_full"),
            "days_left": d.get("days_left"),
            "checked": d.get("time_us").and_then(Value::as_i64).map(|t| time_text(t, tz)),
        })
    });
    json!({
        "schema": STATUS_SCHEMA,
        "id": format!("{device}:status:{now_us}"),
        "device": device,
        "time": time_text(now_us, tz),
        "state": "online",
        "version": s.version,
        "seq": s.seq,
        "cameras": s.cameras,
        "backlog": {
            "records": s.backlog_records,
            "oldest": s.backlog_oldest_us.map(|t| time_text(t, tz)),
            "oldest_age_s": s.backlog_oldest_us.map(|t| (now_us - t).max(0) / 1_000_000),
        },
        "disk": disk,
    })
}

/// The last will: a retained `offline`, registered at connect time (`time` is then).
pub fn status_offline(device: &str, tz: Tz, connected_us: i64, version: &str) -> Value {
    json!({
        "schema": STATUS_SCHEMA,
        "id": format!("{device}:offline:{connected_us}"),
        "device": device,
        "time": time_text(connected_us, tz),
        "state": "offline",
        "version": version,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evidence::log::{GENESIS, canonical_json, record_hash};

    pub(crate) fn entry(seq: i64, prev: [u8; 32], payload: Value, file: Option<[u8; 32]>) -> Entry {
        let time_us = 1_800_000_000_000_000 + seq * 1_000_123;
        let text = canonical_json(&payload);
        let hash = record_hash(time_us, "segment", &text, file.as_ref(), &prev);
        Entry {
            seq,
            time_us,
            kind: "segment".into(),
            payload: text,
            file_sha256: file.map(hex::encode),
            prev_hash: prev.to_vec(),
            hash: hash.to_vec(),
        }
    }

    #[test]
    fn an_event_carries_what_its_hash_is_made_of() {
        let e = entry(
            1,
            GENESIS,
            json!({"camera": "front", "课": "时", "seq": 99}),
            Some([3; 32]),
        );
        let m = event("box-1", chrono_tz::Asia::Shanghai, &e);
        assert_eq!(m["id"], "box-1:1");
        assert_eq!(m["time"], "2027-01-15T16:00:01.000123+08:00");
        // A payload key never shadows the envelope.
        assert_eq!(m["seq"], 1);
        assert_eq!(m["fields"]["seq"], 99);
        let payload = m["payload"].as_str().unwrap();
        assert_eq!(canonical_json(&m["fields"]), payload);
        let file: [u8; 32] = hex::decode(m["file_sha256"].as_str().unwrap())
            .unwrap()
            .try_into()
            .unwrap();
        let h = record_hash(
            m["time_us"].as_i64().unwrap(),
            m["type"].as_str().unwrap(),
            payload,
            Some(&file),
            &GENESIS,
        );
        assert_eq!(hex::encode(h), m["hash"]);
    }

    #[test]
    fn the_text_form_is_the_json_of_every_field() {
        let e = entry(3, [5; 32], json!({"a": "x\"y", "b": [1, 2.5]}), None);
        let v: Value = serde_json::from_str(&event_text("box-1", chrono_tz::Asia::Shanghai, &e)).unwrap();
        assert_eq!(v["fields"], json!({"a": "x\"y", "b": [1, 2.5]}));
        assert_eq!(v["payload"], e.payload);
        assert_eq!(v["file_sha256"], Value::Null);
        assert_eq!(v.as_object().unwrap().len(), 12);
        let mut odd = e.clone();
        odd.payload = "[1]".into();
        assert_eq!(
            event("box-1", chrono_tz::Asia::Shanghai, &odd)["fields"],
            Value::Null
        );
    }

    #[test]
    fn topics_sit_under_the_prefix() {
        let t = Topics::new("hn/classproof", "box-1");
        assert_eq!(t.event, "hn/classproof/box-1/event");
        assert_eq!(t.status, "hn/classproof/box-1/status");
        assert_eq!(t.checkpoint, "hn/classproof/box-1/checkpoint");
    }

    /// Every message kind the code builds, against its schema in docs/schemas/.
    pub(crate) fn assert_valid(schema: &str, msg: &Value) {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("docs/schemas")
            .join(format!("{schema}.schema.json"));
        let schema: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let v = jsonschema::validator_for(&schema).unwrap();
        let errors: Vec<String> = v.iter_errors(msg).map(|e| e.to_string()).collect();
        assert!(
            errors.is_empty(),
            "{} against {}: {errors:#?}",
            msg,
            path.display()
        );
    }

    #[test]
    fn every_message_matches_its_schema() {
        let tz = chrono_tz::Asia::Shanghai;
        let e1 = entry(1, GENESIS, json!({"camera": "front"}), None);
        let e2 = entry(2, [1; 32], json!({"path": "video/a.mp4"}), Some([2; 32]));
        for e in [&e1, &e2] {
            assert_valid("event", &event("hn-zz-0001-r101", tz, e));
        }
        let (key, _) = crate::evidence::key::DeviceKey::generate().unwrap();
        let cp = crate::evidence::checkpoint::Checkpoint {
            device: "box-1".into(),
            seq: 2,
            head: [9; 32],
            time_us: 1_800_000_000_000_000,
        }
        .sign(&key);
        let row = CheckpointRow {
            id: 7,
            seq: 2,
            time_us: cp.checkpoint.time_us,
            key_fingerprint: cp.key_fingerprint.clone(),
            text: cp.to_text(),
        };
        assert_valid("checkpoint", &checkpoint("box-1", tz, &row));
        let mut online = Online {
            version: "0.1.0".into(),
            cameras: vec!["front".into()],
            seq: 2,
            backlog_records: 1,
            backlog_oldest_us: Some(1_800_000_000_000_000),
            disk: Some(
                json!({"time_us": 1_800_000_000_000_000i64, "available_bytes": 10, "capacity_bytes": 20,
                              "reserve_bytes": 1, "disk_full": false, "days_left": null, "pruned": 0}),
            ),
        };
        assert_valid(
            "status",
            &status_online("box-1", tz, 1_800_000_001_000_000, &online),
        );
        online.disk = None;
        online.backlog_oldest_us = None;
        assert_valid(
            "status",
            &status_online("box-1", tz, 1_800_000_001_000_000, &online),
        );
        assert_valid(
            "status",
            &status_offline("box-1", tz, 1_800_000_000_000_000, "0.1.0"),
        );
    }

    #[test]
    fn the_schemas_reject_what_they_should() {
        let tz = chrono_tz::Asia::Shanghai;
        let mut m = event("box-1", tz, &entry(1, GENESIS, json!({}), None));
        m["hash"] = json!("ABC");
        let schema: Value = serde_json::from_str(
            &std::fs::read_to_string(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/docs/schemas/event.schema.json"
            ))
            .unwrap(),
        )
        .unwrap();
        assert!(!jsonschema::is_valid(&schema, &m));
        let mut off = status_offline("box-1", tz, 0, "0.1.0");
        off["seq"] = json!(3);
        let schema: Value = serde_json::from_str(
            &std::fs::read_to_string(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/docs/schemas/status.schema.json"
            ))
            .unwrap(),
        )
        .unwrap();
        assert!(!jsonschema::is_valid(&schema, &off));
    }
}
