//! Signed checkpoints: a versioned, strict text naming the log's head, signed by the device
//! key (docs/evidence.md, "Checkpoint text"). Modelled on Go's `sumdb/tlog` tree notes: the
//! first line names format and version, every line has one fixed spelling, and the parser
//! rejects anything that would not be written byte for byte the same way.
//!
//! ```text
//! classproof checkpoint v1
//! device hn-zz-0001-r101
//! seq 1234
//! head 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
//! time 2026-11-22T02:00:00.000000Z
//!
//! sig 3f2a9c1b0e4d5a6b7c8d9e0f1a2b3c4d 5d0c…(128 hex digits)
//! ```
//!
//! The signature is Ed25519 over the first five lines, each with its `\n`.

use chrono::{DateTime, NaiveDateTime, SecondsFormat};
use thiserror::Error;

use super::key::{DeviceKey, PublicKey};

/// The first line of every checkpoint.
pub const HEADER: &str = "classproof checkpoint v1";

#[derive(Debug, Error, PartialEq, Eq)]
pub enum CheckpointError {
    #[error("not a classproof checkpoint: {0}")]
    Malformed(String),
    #[error("checkpoint is not in canonical form (it would be written differently)")]
    NotCanonical,
}

/// What a checkpoint asserts: after `seq` records, the log's head hash was `head`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub device: String,
    /// Number of records covered (the seq of the last one; 0 for an empty log).
    pub seq: i64,
    /// Hash of record `seq` (`GENESIS` when `seq` is 0).
    pub head: [u8; 32],
    /// When it was signed, µs since the Unix epoch.
    pub time_us: i64,
}

/// A checkpoint with its signature and the fingerprint of the key that made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedCheckpoint {
    pub checkpoint: Checkpoint,
    pub key_fingerprint: String,
    pub signature: [u8; 64],
}

fn time_text(us: i64) -> String {
    DateTime::from_timestamp_micros(us)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Micros, true)
}

impl Checkpoint {
    /// The signed text: five lines, each ending in `\n`.
    pub fn body(&self) -> String {
        format!(
            "{HEADER}\ndevice {}\nseq {}\nhead {}\ntime {}\n",
            self.device,
            self.seq,
            hex::encode(self.head),
            time_text(self.time_us)
        )
    }

    pub fn sign(&self, key: &DeviceKey) -> SignedCheckpoint {
        SignedCheckpoint {
            checkpoint: self.clone(),
            key_fingerprint: key.public().fingerprint(),
            signature: key.sign(self.body().as_bytes()),
        }
    }
}

impl SignedCheckpoint {
    /// The full text: body, an empty line, the signature line.
    pub fn to_text(&self) -> String {
        format!(
            "{}\nsig {} {}\n",
            self.checkpoint.body(),
            self.key_fingerprint,
            hex::encode(self.signature)
        )
    }

    /// True when `key` made this signature.
    pub fn verify(&self, key: &PublicKey) -> bool {
        self.key_fingerprint == key.fingerprint()
            && key.verify(self.checkpoint.body().as_bytes(), &self.signature)
    }

    /// Parses one checkpoint, strictly.
    pub fn parse(text: &str) -> Result<SignedCheckpoint, CheckpointError> {
        let bad = |why: &str| CheckpointError::Malformed(why.to_string());
        let lines: Vec<&str> = text.split('\n').collect();
        // Seven lines and the empty string after the final newline.
        if lines.len() != 8 || !lines[7].is_empty() {
            return Err(bad("expected 7 lines, each ending in a newline"));
        }
        if lines[0] != HEADER {
            return Err(bad("first line is not \"classproof checkpoint v1\""));
        }
        let field = |i: usize, name: &str| -> Result<&str, CheckpointError> {
            lines[i]
                .strip_prefix(name)
                .and_then(|r| r.strip_prefix(' '))
                .ok_or_else(|| CheckpointError::Malformed(format!("line {} is not \"{name} …\"", i + 1)))
        };
        let device = field(1, "device")?;
        if !crate::config::is_valid_id(device, 64) {
            return Err(bad("bad device id"));
        }
        let seq: i64 = field(2, "seq")?.parse().map_err(|_| bad("seq is not a number"))?;
        if seq < 0 {
            return Err(bad("negative seq"));
        }
        let head = parse_hex::<32>(field(3, "head")?).ok_or_else(|| bad("head is not 64 hex digits"))?;
        let time = NaiveDateTime::parse_from_str(field(4, "time")?, "%Y-%m-%dT%H:%M:%S%.6fZ")
            .map_err(|_| bad("time is not YYYY-MM-DDTHH:MM:SS.ffffffZ"))?;
        if !lines[5].is_empty() {
            return Err(bad("line 6 must be empty"));
        }
        let mut sig = lines[6].split(' ');
        if sig.next() != Some("sig") {
            return Err(bad("line 7 is not \"sig …\""));
        }
        let fp = sig.next().ok_or_else(|| bad("no key fingerprint"))?;
        if fp.len() != 32 || parse_hex::<16>(fp).is_none() {
            return Err(bad("key fingerprint is not 32 hex digits"));
        }
        let signature = sig
            .next()
            .and_then(parse_hex::<64>)
            .ok_or_else(|| bad("signature is not 128 hex digits"))?;
        if sig.next().is_some() {
            return Err(bad("extra fields after the signature"));
        }
        let parsed = SignedCheckpoint {
            checkpoint: Checkpoint {
                device: device.to_string(),
                seq,
                head,
                time_us: time.and_utc().timestamp_micros(),
            },
            key_fingerprint: fp.to_string(),
            signature,
        };
        if parsed.to_text() != text {
            return Err(CheckpointError::NotCanonical);
        }
        Ok(parsed)
    }

    /// Parses a file of checkpoints, each followed by one empty line (a bundle's
    /// `checkpoints.txt`). Each entry is parsed strictly; a bad entry is returned as an error
    /// in its place.
    pub fn parse_many(text: &str) -> Vec<Result<SignedCheckpoint, CheckpointError>> {
        let mut out = Vec::new();
        let starts: Vec<usize> = text
            .match_indices(HEADER)
            .map(|(i, _)| i)
            .filter(|&i| i == 0 || text.as_bytes()[i - 1] == b'\n')
            .collect();
        if starts.first().is_some_and(|&i| i > 0) {
            out.push(Err(CheckpointError::Malformed(
                "text before the first checkpoint".into(),
            )));
        }
        for (n, &start) in starts.iter().enumerate() {
            let end = starts.get(n + 1).copied().unwrap_or(text.len());
            let chunk = &text[start..end];
            match chunk.strip_suffix('\n') {
                Some(one) if one.ends_with('\n') => out.push(SignedCheckpoint::parse(one)),
                _ => out.push(Err(CheckpointError::Malformed(
                    "each checkpoint must be followed by one empty line".into(),
                ))),
            }
        }
        out
    }
}

/// Writes checkpoints in the format [`SignedCheckpoint::parse_many`] reads.
pub fn write_many(cps: &[SignedCheckpoint]) -> String {
    cps.iter().map(|c| c.to_text() + "\n").collect()
}

fn parse_hex<const N: usize>(s: &str) -> Option<[u8; N]> {
    if s.len() != 2 * N
        || !s
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return None;
    }
    let mut out = [0u8; N];
    hex::decode_to_slice(s, &mut out).ok()?;
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(key: &DeviceKey) -> SignedCheckpoint {
        Checkpoint {
            device: "hn-zz-0001-r101".into(),
            seq: 1234,
            head: [0x9f; 32],
            time_us: 1_800_000_000_123_456,
        }
        .sign(key)
    }

    #[test]
    fn round_trips_and_verifies() {
        let (key, _) = DeviceKey::generate().unwrap();
        let cp = sample(&key);
        let text = cp.to_text();
        assert!(text.starts_with("classproof checkpoint v1\ndevice hn-zz-0001-r101\nseq 1234\n"));
        assert!(
            text.contains("\ntime 2027-01-15T08:00:00.123456Z\n\nsig "),
            "{text}"
        );
        let back = SignedCheckpoint::parse(&text).unwrap();
        assert_eq!(back, cp);
        assert!(back.verify(&key.public()));
        let (other, _) = DeviceKey::generate().unwrap();
        assert!(!back.verify(&other.public()));
    }

    /// Non-canonical or damaged texts, as data (like transparency-dev/merkle's testdata):
    /// each edit of a valid checkpoint must be rejected by the parser or by the signature.
    #[test]
    fn tampered_texts_are_rejected() {
        let (key, _) = DeviceKey::generate().unwrap();
        let text = sample(&key).to_text();
        type Edit = fn(&str) -> String;
        let edits: &[(&str, Edit)] = &[
            ("version", |t| t.replace("checkpoint v1", "checkpoint v2")),
            ("seq plus one", |t| t.replace("seq 1234", "seq 1235")),
            ("seq leading zero", |t| t.replace("seq 1234", "seq 01234")),
            ("seq plus sign", |t| t.replace("seq 1234", "seq +1234")),
            ("upper-case head", |t| {
                t.replace(&"9f".repeat(32), &"9F".repeat(32))
            }),
            ("flipped head bit", |t| t.replacen("head 9f", "head 9e", 1)),
            ("time without micros", |t| t.replace(".123456Z", "Z")),
            ("time with offset", |t| t.replace(".123456Z", ".123456+00:00")),
            ("device changed", |t| t.replace("r101", "r102")),
            ("trailing space", |t| t.replacen("seq 1234\n", "seq 1234 \n", 1)),
            ("CRLF", |t| t.replace('\n', "\r\n")),
            ("no final newline", |t| t.trim_end().to_string()),
            ("prepended garbage", |t| format!("x{t}")),
            ("extra line", |t| t.replacen("\n\n", "\nnote hi\n\n", 1)),
            ("truncated signature", |t| {
                let cut = t.trim_end();
                format!("{}\n", &cut[..cut.len() - 2])
            }),
            ("flipped signature bit", |t| {
                let mut b = t.trim_end().to_string();
                let last = b.pop().unwrap();
                b.push(if last == '0' { '1' } else { '0' });
                b + "\n"
            }),
        ];
        for (name, edit) in edits {
            let t = edit(&text);
            assert_ne!(t, text, "{name}: the edit changed nothing");
            let ok = SignedCheckpoint::parse(&t)
                .map(|c| c.verify(&key.public()))
                .unwrap_or(false);
            assert!(!ok, "{name}: accepted\n{t}");
        }
    }

    #[test]
    fn many_round_trip_and_report_bad_entries() {
        let (key, _) = DeviceKey::generate().unwrap();
        let a = sample(&key);
        let mut b = a.checkpoint.clone();
        b.seq = 2000;
        let b = b.sign(&key);
        let text = write_many(&[a.clone(), b.clone()]);
        let parsed: Vec<_> = SignedCheckpoint::parse_many(&text);
        assert_eq!(parsed, vec![Ok(a), Ok(b)]);
        let broken = text.replacen("seq 2000", "seq two", 1);
        let parsed = SignedCheckpoint::parse_many(&broken);
        assert!(parsed[0].is_ok() && parsed[1].is_err());
    }
}
