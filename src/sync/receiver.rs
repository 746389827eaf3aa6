//! The platform's side of docs/protocol.md, "Checking the stream": rebuild the chain from
//! received `event` messages alone and check it against received `checkpoint` messages and
//! the device's public key. Pure (no I/O); the integration tests use it, and it is the core
//! of the reference receiver (`classproof-upstream`, `cli::upstream`).

use std::collections::BTreeMap;

use serde_json::Value;

use crate::evidence::checkpoint::SignedCheckpoint;
use crate::evidence::key::PublicKey;
use crate::evidence::log::{GENESIS, canonical_json, parse_sha256_hex, record_hash};

/// What the check found.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ChainReport {
    /// Distinct events (by `id`).
    pub events: usize,
    /// Events received more than once with the same id and the same content.
    pub duplicates: usize,
    /// The highest seq such that every record 1..=seq arrived and links.
    pub verified_to: i64,
    /// Checkpoints whose signature and head matched.
    pub checkpoints_ok: Vec<i64>,
    /// Every problem, in words (empty when the stream is intact).
    pub problems: Vec<String>,
}

/// Collects messages as they arrive, in any order, and checks them on demand.
#[derive(Debug, Default)]
pub struct ChainCheck {
    events: BTreeMap<i64, Value>,
    duplicates: usize,
    checkpoints: Vec<Value>,
    problems: Vec<String>,
    /// Order of arrival of first copies, to report reordering.
    arrival: Vec<i64>,
}

impl ChainCheck {
    pub fn new() -> ChainCheck {
        ChainCheck::default()
    }

    /// One `event` message.
    pub fn event(&mut self, msg: Value) {
        let Some(seq) = msg.get("seq").and_then(Value::as_i64) else {
            self.problems.push(format!("event without an integer seq: {msg}"));
            return;
        };
        let device = msg.get("device").and_then(Value::as_str).unwrap_or_default();
        if msg.get("id").and_then(Value::as_str) != Some(&format!("{device}:{seq}")) {
            self.problems
                .push(format!("event {seq}: id is not \"{{device}}:{{seq}}\""));
        }
        match self.events.get(&seq) {
            Some(seen) if *seen == msg => self.duplicates += 1,
            Some(_) => self
                .problems
                .push(format!("event {seq}: received twice with different contents")),
            None => {
                self.arrival.push(seq);
                self.events.insert(seq, msg);
            }
        }
    }

    /// One `checkpoint` message.
    pub fn checkpoint(&mut self, msg: Value) {
        self.checkpoints.push(msg);
    }

    /// Seqs in first-arrival order (a platform sees reordering here).
    pub fn arrival_order(&self) -> &[i64] {
        &self.arrival
    }

    /// Rebuilds the chain and checks every checkpoint with `key`.
    pub fn report(&self, key: &PublicKey) -> ChainReport {
        let mut r = ChainReport {
            events: self.events.len(),
            duplicates: self.duplicates,
            problems: self.problems.clone(),
            ..ChainReport::default()
        };
        // Hash of each verified record, by seq.
        let mut hashes: BTreeMap<i64, [u8; 32]> = BTreeMap::new();
        let mut prev = GENESIS;
        let mut expect = 1;
        for (&seq, m) in &self.events {
            if seq != expect {
                r.problems
                    .push(format!("records {expect}..{} are missing", seq - 1));
                break;
            }
            match check_event(m, &prev) {
                Ok(h) => {
                    hashes.insert(seq, h);
                    prev = h;
                    r.verified_to = seq;
                    expect += 1;
                }
                Err(why) => {
                    r.problems.push(format!("event {seq}: {why}"));
                    break;
                }
            }
        }
        for m in &self.checkpoints {
            let text = m.get("text").and_then(Value::as_str).unwrap_or_default();
            let cp = match SignedCheckpoint::parse(text) {
                Ok(cp) => cp,
                Err(e) => {
                    r.problems.push(format!("checkpoint {}: {e}", m["id"]));
                    continue;
                }
            };
            let seq = cp.checkpoint.seq;
            if !cp.verify(key) {
                r.problems
                    .push(format!("checkpoint at seq {seq}: bad signature or another key"));
            } else if m.get("seq").and_then(Value::as_i64) != Some(seq) {
                r.problems
                    .push(format!("checkpoint at seq {seq}: its message says another seq"));
            } else if seq == 0 && cp.checkpoint.head == GENESIS {
                r.checkpoints_ok.push(seq);
            } else {
                match hashes.get(&seq) {
                    Some(h) if *h == cp.checkpoint.head => r.checkpoints_ok.push(seq),
                    Some(_) => r.problems.push(format!(
                        "checkpoint at seq {seq}: the signed head differs from the received chain (edited or rolled back)"
                    )),
                    None => r.problems.push(format!("checkpoint at seq {seq}: records up to it are not all here")),
                }
            }
        }
        r
    }
}

/// Checks one event against the hash of the record before it; returns its hash.
pub fn check_event(m: &Value, prev: &[u8; 32]) -> Result<[u8; 32], String> {
    let s = |k: &str| m.get(k).and_then(Value::as_str).ok_or(format!("no string {k}"));
    let claimed_prev = parse_sha256_hex(s("prev_hash")?).ok_or("prev_hash is not 64 hex digits")?;
    if claimed_prev != *prev {
        return Err("prev_hash does not link to the record before it".into());
    }
    let time_us = m
        .get("time_us")
        .and_then(Value::as_i64)
        .ok_or("no integer time_us")?;
    let kind = s("type")?;
    let payload = s("payload")?;
    let file = match m.get("file_sha256") {
        None | Some(Value::Null) => None,
        Some(Value::String(h)) => Some(parse_sha256_hex(h).ok_or("file_sha256 is not 64 hex digits")?),
        Some(_) => return Err("file_sha256 is neither null nor a string".into()),
    };
    let h = record_hash(time_us, kind, payload, file.as_ref(), prev);
    if hex::encode(h) != s("hash")? {
        return Err("hash does not match its fields (docs/evidence.md, \"Record hash\")".into());
    }
    let fields = m.get("fields").ok_or("no fields")?;
    if canonical_json(fields) != payload {
        return Err("fields differ from the hashed payload".into());
    }
    Ok(h)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evidence::checkpoint::Checkpoint;
    use crate::evidence::key::DeviceKey;
    use crate::sync::message;
    use crate::sync::source::{CheckpointRow, Entry};
    use serde_json::json;

    fn stream(n: i64) -> Vec<Entry> {
        let mut prev = GENESIS;
        (1..=n)
            .map(|seq| {
                let payload = canonical_json(&json!({"n": seq, "camera": "front"}));
                let time_us = 1_800_000_000_000_000 + seq;
                let hash = record_hash(time_us, "segment", &payload, None, &prev);
                let e = Entry {
                    seq,
                    time_us,
                    kind: "segment".into(),
                    payload,
                    file_sha256: None,
                    prev_hash: prev.to_vec(),
                    hash: hash.to_vec(),
                };
                prev = hash;
                e
            })
            .collect()
    }

    fn signed(key: &DeviceKey, e: &Entry) -> Value {
        let cp = Checkpoint {
            device: "box-1".into(),
            seq: e.seq,
            head: e.hash.clone().try_into().unwrap(),
            time_us: e.time_us,
        }
        .sign(key);
        message::checkpoint(
            "box-1",
            chrono_tz::Asia::Shanghai,
            &CheckpointRow {
                id: 1,
                seq: e.seq,
                time_us: e.time_us,
                key_fingerprint: cp.key_fingerprint.clone(),
                text: cp.to_text(),
            },
        )
    }

    fn check(events: &[Value], cp: &Value, key: &DeviceKey) -> ChainReport {
        let mut c = ChainCheck::new();
        for e in events {
            c.event(e.clone());
        }
        c.checkpoint(cp.clone());
        c.report(&key.public())
    }

    #[test]
    fn an_intact_stream_with_a_resend_verifies_and_every_tampering_shows() {
        let (key, _) = DeviceKey::generate().unwrap();
        let entries = stream(5);
        let tz = chrono_tz::Asia::Shanghai;
        let mut events: Vec<Value> = entries.iter().map(|e| message::event("box-1", tz, e)).collect();
        let cp = signed(&key, &entries[4]);
        events.push(events[2].clone()); // a re-send after a reconnect
        let ok = check(&events, &cp, &key);
        assert!(ok.problems.is_empty(), "{ok:#?}");
        assert_eq!(
            (
                ok.events,
                ok.duplicates,
                ok.verified_to,
                ok.checkpoints_ok.clone()
            ),
            (5, 1, 5, vec![5])
        );

        // Edited after publication: its fields, or its payload and hash recomputed.
        let mut edited = events.clone();
        edited[1]["fields"]["camera"] = json!("back");
        assert!(!check(&edited, &cp, &key).problems.is_empty());
        let mut rehashed = entries.clone();
        rehashed[4].payload = canonical_json(&json!({"n": 5, "camera": "back"}));
        let h = record_hash(
            rehashed[4].time_us,
            "segment",
            &rehashed[4].payload,
            None,
            &entries[3].hash.clone().try_into().unwrap(),
        );
        rehashed[4].hash = h.to_vec();
        let ev: Vec<Value> = rehashed.iter().map(|e| message::event("box-1", tz, e)).collect();
        let r = check(&ev, &cp, &key);
        assert!(
            r.problems.iter().any(|p| p.contains("signed head differs")),
            "{r:#?}"
        );

        // A gap in seq.
        let mut gap = events.clone();
        gap.remove(2);
        gap.pop();
        let r = check(&gap, &cp, &key);
        assert!(r.problems.iter().any(|p| p.contains("missing")), "{r:#?}");

        // Another key, and a re-send that differs.
        let (other, _) = DeviceKey::generate().unwrap();
        assert!(!check(&events, &cp, &other).problems.is_empty());
        let mut differing = events.clone();
        differing[5]["time"] = json!("2000-01-01T00:00:00.000000+08:00");
        assert!(!check(&differing, &cp, &key).problems.is_empty());
    }
}
