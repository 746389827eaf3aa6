//! `classproof-upstream`: the reference receiver for integrators (docs/protocol.md,
//! "Reference receiver"). The platform's side of the protocol:
//! - `keygen`: a platform Ed25519 key pair (PKCS#8 and SubjectPublicKeyInfo PEM);
//! - `send`: a signed command, waiting for its ack;
//! - `watch`: subscribes to a device, validates every message against docs/schemas/,
//!   rebuilds the chain (`sync::receiver::ChainCheck`) and checks each checkpoint's
//!   signature with the device's public key; reports duplicates, gaps and mismatches.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use base64::Engine as _;
use clap::{Args, Parser, Subcommand};
use ring::signature::KeyPair as _;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS, Transport};
use serde_json::{Value, json};

use crate::evidence::key::PublicKey;
use crate::sync::UpstreamConfig;
use crate::sync::command::{self, CMD_SCHEMA};
use crate::sync::config::parse_broker;
use crate::sync::message::time_text;
use crate::sync::receiver::ChainCheck;

/// The schemas, as published in docs/schemas/ (compiled in).
pub const SCHEMAS: [(&str, &str); 7] = [
    ("event", include_str!("../../docs/schemas/event.schema.json")),
    (
        "checkpoint",
        include_str!("../../docs/schemas/checkpoint.schema.json"),
    ),
    ("status", include_str!("../../docs/schemas/status.schema.json")),
    (
        "envelope",
        include_str!("../../docs/schemas/envelope.schema.json"),
    ),
    ("cmd", include_str!("../../docs/schemas/cmd.schema.json")),
    ("ack", include_str!("../../docs/schemas/ack.schema.json")),
    ("records", include_str!("../../docs/schemas/records.schema.json")),
];

#[derive(Debug, Parser)]
#[command(
    name = "classproof-upstream",
    version,
    about = "classproof's reference receiver: the platform's side of docs/protocol.md"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Cmd,
}

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Make a platform key pair: DIR/platform.key (private, PKCS#8 PEM) and DIR/platform.pub
    /// (public, SPKI PEM: the box's upstream.platform_key_file).
    Keygen {
        #[arg(long)]
        out: PathBuf,
    },
    /// Sign a command, publish it and wait for its ack (printed as one JSON line). Exit 0 on
    /// `ok`, 1 on `failed` or `rejected`, 3 without an ack in time.
    Send(SendArgs),
    /// Subscribe to a device and check everything it publishes; prints one JSON line per
    /// problem and a final report.
    Watch(WatchArgs),
}

#[derive(Debug, Args)]
pub struct Broker {
    /// mqtts://host:port (or mqtt:// for a plaintext test broker).
    #[arg(long)]
    pub broker: String,
    #[arg(long)]
    pub ca: Option<PathBuf>,
    #[arg(long)]
    pub cert: Option<PathBuf>,
    #[arg(long)]
    pub key: Option<PathBuf>,
    #[arg(long, default_value = "classproof")]
    pub prefix: String,
    /// The device id.
    #[arg(long)]
    pub device: String,
    /// MQTT client id.
    #[arg(long, default_value = "classproof-upstream")]
    pub client_id: String,
}

#[derive(Debug, Args)]
pub struct SendArgs {
    #[command(flatten)]
    pub broker: Broker,
    /// The platform's private key (from `keygen`).
    #[arg(long)]
    pub platform_key: PathBuf,
    /// Command type, e.g. snapshot.request.
    #[arg(long = "type")]
    pub kind: String,
    /// The body, as JSON, or `@FILE` to read it from a file (large bodies: inline photos).
    #[arg(long, default_value = "{}")]
    pub body: String,
    /// Command id (default: a fresh one).
    #[arg(long)]
    pub id: Option<String>,
    /// Validity from now.
    #[arg(long, default_value = "5m")]
    pub ttl: humantime::Duration,
    /// How long to wait for the ack.
    #[arg(long, default_value = "60s")]
    pub wait: humantime::Duration,
}

#[derive(Debug, Args)]
pub struct WatchArgs {
    #[command(flatten)]
    pub broker: Broker,
    /// The device's public key (its data dir's keys/device.pub).
    #[arg(long)]
    pub device_key: PathBuf,
    /// Stop after this long (or at SIGINT / SIGTERM, printing the report).
    #[arg(long, default_value = "60s")]
    pub duration: humantime::Duration,
    /// Stop once the chain is verified up to this seq with a matching checkpoint.
    #[arg(long)]
    pub until_seq: Option<i64>,
}

pub fn main(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Cmd::Keygen { out } => keygen(&out),
        Cmd::Send(a) => send(a),
        Cmd::Watch(a) => watch(a),
    }
}

fn pem(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut s = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        s.push_str(&String::from_utf8_lossy(line));
        s.push('\n');
    }
    s + &format!("-----END {label}-----\n")
}

/// The DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410).
const ED25519_SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// RFC 8410 PKCS#8 v1 of an Ed25519 private key, followed by the 32-byte seed.
const ED25519_PKCS8_V1_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

fn keygen(out: &Path) -> anyhow::Result<ExitCode> {
    use std::os::unix::fs::OpenOptionsExt as _;
    std::fs::create_dir_all(out).with_context(|| format!("{}", out.display()))?;
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = ring::signature::Ed25519KeyPair::generate_pkcs8(&rng).map_err(|e| anyhow!("keygen: {e}"))?;
    let kp =
        ring::signature::Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).map_err(|e| anyhow!("keygen: {e}"))?;
    // ring writes PKCS#8 v2 (with the public key), which OpenSSL 3 does not read: the file is
    // the RFC 8410 v1 form (`openssl genpkey -algorithm ed25519` writes the same), the seed
    // taken from bytes 16..48 of ring's document.
    let seed = pkcs8
        .as_ref()
        .get(16..48)
        .context("keygen: unexpected PKCS#8 layout")?;
    let mut v1 = ED25519_PKCS8_V1_PREFIX.to_vec();
    v1.extend_from_slice(seed);
    ring::signature::Ed25519KeyPair::from_pkcs8_maybe_unchecked(&v1)
        .ok()
        .filter(|k| k.public_key().as_ref() == kp.public_key().as_ref())
        .context("keygen: the PKCS#8 v1 form does not give the same key")?;
    let mut spki = ED25519_SPKI_PREFIX.to_vec();
    spki.extend_from_slice(kp.public_key().as_ref());
    let key_file = out.join("platform.key");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&key_file)
        .with_context(|| format!("{} (not overwritten)", key_file.display()))?;
    f.write_all(pem("PRIVATE KEY", &v1).as_bytes())?;
    let pub_file = out.join("platform.pub");
    std::fs::write(&pub_file, pem("PUBLIC KEY", &spki))?;
    println!("{}\n{}", key_file.display(), pub_file.display());
    Ok(ExitCode::SUCCESS)
}

fn read_private_key(path: &Path) -> anyhow::Result<Vec<u8>> {
    use rustls::pki_types::PrivatePkcs8KeyDer;
    use rustls::pki_types::pem::PemObject;
    let der = PrivatePkcs8KeyDer::from_pem_file(path).map_err(|e| {
        anyhow!(
            "{}: a PEM \"PRIVATE KEY\" (PKCS#8, from keygen): {e}",
            path.display()
        )
    })?;
    Ok(der.secret_pkcs8_der().to_vec())
}

fn options(b: &Broker) -> anyhow::Result<MqttOptions> {
    let broker = parse_broker(&b.broker).map_err(|e| anyhow!("--broker {}: {e}", b.broker))?;
    let mut o = MqttOptions::new(b.client_id.clone(), broker.host.clone(), broker.port);
    o.set_keep_alive(Duration::from_secs(10));
    o.set_clean_session(true);
    o.set_max_packet_size(4 << 20, 4 << 20);
    if broker.tls {
        let cfg = UpstreamConfig {
            broker,
            topic_prefix: b.prefix.clone(),
            ca_file: Some(b.ca.clone().context("--ca is needed with mqtts://")?),
            client_cert_file: b.cert.clone(),
            client_key_file: b.key.clone(),
            platform_key_file: None,
            username: None,
            password_file: None,
            insecure_plaintext: false,
            keepalive: Duration::from_secs(10),
            status_interval: Duration::from_secs(60),
            backlog_alarm: Duration::from_secs(3600),
            live_max: Duration::from_secs(1800),
        };
        let tls = crate::sync::tls::client_config(&cfg)?;
        o.set_transport(Transport::tls_with_config(rumqttc::TlsConfiguration::Rustls(tls)));
    }
    Ok(o)
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

fn send(a: SendArgs) -> anyhow::Result<ExitCode> {
    let pkcs8 = read_private_key(&a.platform_key)?;
    let text = match a.body.strip_prefix('@') {
        Some(f) => std::fs::read_to_string(f).with_context(|| format!("--body @{f}"))?,
        None => a.body.clone(),
    };
    let body: Value = serde_json::from_str(&text).context("--body: JSON")?;
    let now = chrono::Utc::now().timestamp_micros();
    let id =
        a.id.clone()
            .unwrap_or_else(|| format!("cmd-{now}-{}", std::process::id()));
    let tz = chrono_tz::UTC;
    let ttl = Duration::from(a.ttl).as_micros() as i64;
    let payload = json!({
        "schema": CMD_SCHEMA,
        "id": id,
        "device": a.broker.device,
        "issued": time_text(now, tz),
        "expires": time_text(now + ttl, tz),
        "type": a.kind,
        "body": body,
    })
    .to_string();
    let envelope =
        command::sign(&payload, &pkcs8).map_err(|e| anyhow!("{}: {e}", a.platform_key.display()))?;
    let base = format!("{}/{}", a.broker.prefix, a.broker.device);
    let opts = options(&a.broker)?;
    let wait = Duration::from(a.wait);
    let ack = runtime()?.block_on(async move {
        let (client, mut ev) = AsyncClient::new(opts, 100);
        let deadline = Instant::now() + wait;
        let mut sent = false;
        while Instant::now() < deadline {
            let polled = tokio::time::timeout(Duration::from_millis(200), ev.poll()).await;
            match polled {
                Ok(Ok(Event::Incoming(Packet::ConnAck(_)))) => {
                    client
                        .subscribe(format!("{base}/cmd/ack"), QoS::AtLeastOnce)
                        .await?;
                }
                Ok(Ok(Event::Incoming(Packet::SubAck(_)))) if !sent => {
                    client
                        .publish(format!("{base}/cmd"), QoS::AtLeastOnce, false, envelope.clone())
                        .await?;
                    sent = true;
                }
                Ok(Ok(Event::Incoming(Packet::Publish(p)))) => {
                    let v: Value = serde_json::from_slice(&p.payload).unwrap_or(Value::Null);
                    if v.get("command_id").and_then(Value::as_str) == Some(id.as_str()) {
                        return Ok::<_, anyhow::Error>(Some(v));
                    }
                }
                Ok(Ok(_)) | Err(_) => {}
                Ok(Err(e)) => bail!("{}: {e}", a.broker.broker),
            }
        }
        Ok(None)
    })?;
    match ack {
        None => {
            eprintln!(
                "classproof-upstream: no ack in {}",
                humantime::format_duration(wait)
            );
            Ok(ExitCode::from(3))
        }
        Some(v) => {
            println!("{v}");
            Ok(if v["result"] == "ok" {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
    }
}

/// Validators by name.
pub fn validators() -> anyhow::Result<BTreeMap<String, jsonschema::Validator>> {
    let mut out = BTreeMap::new();
    for (name, text) in SCHEMAS {
        let v: Value = serde_json::from_str(text).with_context(|| format!("schema {name}"))?;
        if name == "records" {
            for (kind, def) in v["$defs"].as_object().into_iter().flatten() {
                if kind == "sha256" {
                    continue;
                }
                let mut s = def.clone();
                if let Some(o) = s.as_object_mut() {
                    o.insert("$defs".into(), v["$defs"].clone());
                }
                out.insert(
                    format!("record:{kind}"),
                    jsonschema::validator_for(&s).map_err(|e| anyhow!("{kind}: {e}"))?,
                );
            }
            continue;
        }
        out.insert(
            name.to_string(),
            jsonschema::validator_for(&v).map_err(|e| anyhow!("{name}: {e}"))?,
        );
    }
    Ok(out)
}

/// The problems of one message against the schemas (empty: valid). `topic_kind` is the topic's
/// last part (`event`, `checkpoint`, `status`, `cmd`, `ack`).
pub fn validate(
    schemas: &BTreeMap<String, jsonschema::Validator>,
    topic_kind: &str,
    v: &Value,
) -> Vec<String> {
    let mut out = Vec::new();
    let mut check = |name: &str, v: &Value| match schemas.get(name) {
        Some(s) => out.extend(s.iter_errors(v).map(|e| format!("{name}: {e}"))),
        None => out.push(format!("no schema {name}")),
    };
    match topic_kind {
        "cmd" => {
            check("envelope", v);
            match v
                .get("payload")
                .and_then(Value::as_str)
                .map(serde_json::from_str::<Value>)
            {
                Some(Ok(p)) => check("cmd", &p),
                _ => out.push("cmd: the payload is not JSON".into()),
            }
        }
        "event" => {
            check("event", v);
            let kind = v.get("type").and_then(Value::as_str).unwrap_or_default();
            let name = format!("record:{kind}");
            if let Some(s) = schemas.get(name.as_str()) {
                out.extend(s.iter_errors(&v["fields"]).map(|e| format!("{name}: {e}")));
            }
        }
        k => check(k, v),
    }
    out
}

fn watch(a: WatchArgs) -> anyhow::Result<ExitCode> {
    // The key is read when it is needed (it may not exist yet when watching starts before
    // the device's first run).
    let device_key = a.device_key.clone();
    let read_key = move || -> anyhow::Result<PublicKey> {
        let text =
            std::fs::read_to_string(&device_key).with_context(|| format!("{}", device_key.display()))?;
        PublicKey::parse(text.lines().next().unwrap_or_default())
            .map_err(|e| anyhow!("{}: {e}", device_key.display()))
    };
    let schemas = validators()?;
    let base = format!("{}/{}", a.broker.prefix, a.broker.device);
    let opts = options(&a.broker)?;
    let duration = Duration::from(a.duration);
    let until = a.until_seq;
    let mut chain = ChainCheck::new();
    let mut invalid = 0usize;
    let mut messages = 0usize;
    let done = runtime()?.block_on(async {
        let (client, mut ev) = AsyncClient::new(opts, 1000);
        let deadline = Instant::now() + duration;
        let mut out = std::io::stdout();
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
        while Instant::now() < deadline {
            let polled = tokio::select! {
                p = tokio::time::timeout(Duration::from_millis(200), ev.poll()) => p,
                _ = term.recv() => break,
                _ = int.recv() => break,
            };
            match polled {
                Ok(Ok(Event::Incoming(Packet::ConnAck(_)))) => {
                    client.subscribe(format!("{base}/#"), QoS::AtLeastOnce).await?;
                }
                Ok(Ok(Event::Incoming(Packet::SubAck(_)))) => {
                    eprintln!("classproof-upstream: subscribed to {base}/#");
                }
                Ok(Ok(Event::Incoming(Packet::Publish(p)))) => {
                    messages += 1;
                    let kind = p.topic.rsplit('/').next().unwrap_or_default().to_string();
                    let v: Value = match serde_json::from_slice(&p.payload) {
                        Ok(v) => v,
                        Err(e) => {
                            invalid += 1;
                            writeln!(
                                out,
                                "{}",
                                json!({"problem": format!("{}: not JSON: {e}", p.topic)})
                            )?;
                            continue;
                        }
                    };
                    for problem in validate(&schemas, &kind, &v) {
                        invalid += 1;
                        writeln!(out, "{}", json!({"problem": problem, "topic": p.topic}))?;
                    }
                    match kind.as_str() {
                        "event" => chain.event(v),
                        "checkpoint" => chain.checkpoint(v),
                        _ => {}
                    }
                    if let Some(seq) = until
                        && kind == "checkpoint"
                    {
                        let r = chain.report(&read_key()?);
                        if r.verified_to >= seq && r.checkpoints_ok.iter().any(|&s| s >= seq) {
                            return Ok::<_, anyhow::Error>(true);
                        }
                    }
                }
                Ok(Ok(_)) | Err(_) => {}
                Ok(Err(e)) => bail!("{}: {e}", a.broker.broker),
            }
        }
        Ok(false)
    })?;
    let r = chain.report(&read_key()?);
    println!(
        "{}",
        json!({
            "messages": messages,
            "invalid": invalid,
            "events": r.events,
            "duplicates": r.duplicates,
            "verified_to": r.verified_to,
            "checkpoints_ok": r.checkpoints_ok,
            "problems": r.problems,
            "reached_until_seq": done,
        })
    );
    Ok(
        if r.problems.is_empty() && invalid == 0 && (until.is_none() || done) {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        },
    )
}
