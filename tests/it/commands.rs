//! Signed downlink commands (issue 10, second half) against real parts: mosquitto with mutual
//! TLS and certificates made here, the daemon recording a gst-rtsp-server camera, the
//! reference receiver `classproof-upstream` as the platform (keygen, send), a platform
//! subscriber that validates every message the box emits against docs/schemas/ (through the
//! receiver's validators, compiled from those files), and an HTTP upload server started here
//! that checks each file's sha256 and that its record was in the log before the upload (R9).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use classproof::cli::upstream;
use classproof::db;
use classproof::evidence::log;
use classproof::evidence::record::Kind;
use classproof::sync::command;
use classproof::sync::message::time_text;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS, Transport};
use serde_json::{Value, json};

use crate::support::{Daemon, Mosquitto, Pki, RtspServer, Scene, wait_for, wait_for_job_state};

const PREFIX: &str = "classproof";
const DEVICE: &str = "test-box";

fn upstream_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_classproof-upstream"))
}

/// The platform's MQTT side: everything the box publishes (validated), and a client to
/// publish raw messages on the command topic.
struct Platform {
    got: Arc<Mutex<Vec<(String, Value)>>>,
    invalid: Arc<Mutex<Vec<String>>>,
    client: AsyncClient,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Platform {
    fn start(port: u16, pki: &Pki) -> Platform {
        let got: Arc<Mutex<Vec<(String, Value)>>> = Arc::default();
        let invalid: Arc<Mutex<Vec<String>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let subscribed = Arc::new(AtomicBool::new(false));
        let tls = pki.platform_tls(port, PREFIX);
        let mut o = MqttOptions::new("platform-cmd", "127.0.0.1", port);
        o.set_keep_alive(Duration::from_secs(5));
        o.set_max_packet_size(4 << 20, 4 << 20);
        o.set_transport(Transport::tls_with_config(rumqttc::TlsConfiguration::Rustls(tls)));
        let (client, mut ev) = AsyncClient::new(o, 1000);
        let (g, inv, st, sub, c) = (
            got.clone(),
            invalid.clone(),
            stop.clone(),
            subscribed.clone(),
            client.clone(),
        );
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let schemas = upstream::validators().unwrap();
                while !st.load(Ordering::SeqCst) {
                    match tokio::time::timeout(Duration::from_millis(200), ev.poll()).await {
                        Ok(Ok(Event::Incoming(Packet::ConnAck(_)))) => {
                            for t in ["event", "status", "checkpoint", "cmd/ack"] {
                                c.subscribe(format!("{PREFIX}/{DEVICE}/{t}"), QoS::AtLeastOnce)
                                    .await
                                    .unwrap();
                            }
                        }
                        Ok(Ok(Event::Incoming(Packet::SubAck(_)))) => sub.store(true, Ordering::SeqCst),
                        Ok(Ok(Event::Incoming(Packet::Publish(p)))) => {
                            let kind = p.topic.rsplit('/').next().unwrap_or_default().to_string();
                            let v: Value = match serde_json::from_slice(&p.payload) {
                                Ok(v) => v,
                                Err(e) => {
                                    inv.lock().unwrap().push(format!("{}: not JSON: {e}", p.topic));
                                    continue;
                                }
                            };
                            for problem in upstream::validate(&schemas, &kind, &v) {
                                inv.lock().unwrap().push(format!("{}: {problem}: {v}", p.topic));
                            }
                            g.lock().unwrap().push((kind, v));
                        }
                        Ok(Ok(_)) | Err(_) => {}
                        Ok(Err(_)) => tokio::time::sleep(Duration::from_millis(200)).await,
                    }
                }
            });
        });
        wait_for("the platform subscribed", Duration::from_secs(10), || {
            subscribed.load(Ordering::SeqCst).then_some(())
        });
        Platform {
            got,
            invalid,
            client,
            stop,
            thread: Some(thread),
        }
    }

    fn publish_cmd(&self, text: &str) {
        self.client
            .try_publish(
                format!("{PREFIX}/{DEVICE}/cmd"),
                QoS::AtLeastOnce,
                false,
                text.to_string(),
            )
            .unwrap();
    }

    fn of(&self, kind: &str) -> Vec<Value> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .filter(|(k, _)| k == kind)
            .map(|(_, v)| v.clone())
            .collect()
    }

    fn acks(&self) -> Vec<Value> {
        self.of("ack")
    }

    fn assert_all_valid(&self) {
        let bad = self.invalid.lock().unwrap();
        assert!(bad.is_empty(), "messages not matching docs/schemas: {bad:#?}");
    }
}

impl Drop for Platform {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// What the upload server received.
#[derive(Debug, Clone)]
struct Upload {
    path: String,
    content_type: String,
    device: String,
    sha256: String,
    bytes: usize,
    /// The file's record was in the box's log when the upload arrived.
    recorded_before: bool,
}

/// A tiny HTTP server for evidence uploads: answers the first PUT with 503 (the box must
/// retry), then checks `X-Content-SHA256` against the body (400 on a mismatch) and answers 201.
struct UploadServer {
    port: u16,
    got: Arc<Mutex<Vec<Upload>>>,
    refused: Arc<Mutex<u32>>,
}

impl UploadServer {
    fn start(data_dir: PathBuf) -> UploadServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let got: Arc<Mutex<Vec<Upload>>> = Arc::default();
        let refused = Arc::new(Mutex::new(0u32));
        let (g, r) = (got.clone(), refused.clone());
        std::thread::spawn(move || {
            let mut first = true;
            for stream in listener.incoming() {
                let Ok(mut s) = stream else { continue };
                let mut reader = BufReader::new(s.try_clone().unwrap());
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() {
                    continue;
                }
                let path = line.split_whitespace().nth(1).unwrap_or_default().to_string();
                let mut headers = BTreeMap::new();
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
                        break;
                    }
                    if let Some((k, v)) = h.split_once(':') {
                        headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
                    }
                }
                let len: usize = headers
                    .get("content-length")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                let mut body = vec![0u8; len];
                let _ = reader.read_exact(&mut body);
                let reply = |s: &mut std::net::TcpStream, code: &str| {
                    let _ = write!(
                        s,
                        "HTTP/1.1 {code}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    );
                };
                if first {
                    first = false;
                    *r.lock().unwrap() += 1;
                    reply(&mut s, "503 Service Unavailable");
                    continue;
                }
                let sha = hex::encode(ring::digest::digest(&ring::digest::SHA256, &body).as_ref());
                let claimed = headers.get("x-content-sha256").cloned().unwrap_or_default();
                if sha != claimed {
                    reply(&mut s, "400 Bad Request");
                    continue;
                }
                let recorded_before = db::open_read_only(&data_dir)
                    .ok()
                    .and_then(|c| log::read_raw(&c, 1, i64::MAX, i64::MAX).ok())
                    .is_some_and(|rs| rs.iter().any(|r| r.file_sha256.as_deref() == Some(sha.as_str())));
                g.lock().unwrap().push(Upload {
                    path,
                    content_type: headers.get("content-type").cloned().unwrap_or_default(),
                    device: headers.get("x-classproof-device").cloned().unwrap_or_default(),
                    sha256: sha,
                    bytes: body.len(),
                    recorded_before,
                });
                reply(&mut s, "201 Created");
            }
        });
        UploadServer { port, got, refused }
    }
}

fn payloads(data_dir: &Path, kind: Kind) -> Vec<(Value, Option<String>)> {
    let Ok(conn) = db::open_read_only(data_dir) else {
        return vec![];
    };
    log::read_raw_kind(&conn, kind)
        .unwrap_or_default()
        .into_iter()
        .map(|r| (serde_json::from_str(&r.payload).unwrap(), r.file_sha256))
        .collect()
}

fn pkcs8_of(pem_file: &Path) -> Vec<u8> {
    let text = std::fs::read_to_string(pem_file).unwrap();
    let b64: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD.decode(b64).unwrap()
}

/// A command payload issued `issued` s from now, valid for `ttl` s.
fn payload(id: &str, device: &str, issued: i64, ttl: i64, kind: &str, body: Value) -> String {
    let now = chrono::Utc::now().timestamp_micros();
    let tz = chrono_tz::Asia::Shanghai;
    json!({"schema": command::CMD_SCHEMA, "id": id, "device": device,
           "issued": time_text(now + issued * 1_000_000, tz),
           "expires": time_text(now + (issued + ttl) * 1_000_000, tz),
           "type": kind, "body": body})
    .to_string()
}

/// The scene every command test runs in: broker, platform, camera, platform keys, daemon.
struct Bench {
    scene: Scene,
    pki: Pki,
    broker: Mosquitto,
    platform: Platform,
    _camera: RtspServer,
    keys: PathBuf,
    data: PathBuf,
    config: PathBuf,
    daemon: Daemon,
    watch: std::process::Child,
}

impl Bench {
    fn start(extra_upstream: &str) -> Bench {
        let scene = Scene::new();
        let pki = Pki::make(&scene.path().join("pki"));
        let broker = Mosquitto::start(&scene.path().join("broker"), &pki);
        let platform = Platform::start(broker.port, &pki);
        let camera = RtspServer::start("h264");
        let keys = scene.path().join("platform-keys");
        let out = Command::new(upstream_bin())
            .args(["keygen", "--out"])
            .arg(&keys)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let data = scene.data_dir();
        let health = scene.path().join("health.json");
        let config = scene.config(&format!(
            "[[camera]]\nid = \"front\"\nurl = \"{}\"\nsegment = \"2s\"\n\n\
             [evidence]\ncheckpoint_interval = \"1s\"\n\n\
             [daemon]\nhealth_file = \"{}\"\n\n\
             [upstream]\nurl = \"mqtts://127.0.0.1:{}\"\ntopic_prefix = \"{PREFIX}\"\nca_file = \"{}\"\n\
             client_cert_file = \"{}\"\nclient_key_file = \"{}\"\nplatform_key_file = \"{}\"\n\
             keepalive = \"5s\"\nstatus_interval = \"5s\"\n{extra_upstream}\n",
            camera.url(),
            health.display(),
            broker.port,
            pki.file("ca.pem").display(),
            pki.file("device.pem").display(),
            pki.file("device.key").display(),
            keys.join("platform.pub").display(),
        ));
        // The reference receiver watches from before the first record.
        let watch = Command::new(upstream_bin())
            .args(["watch", "--broker", &format!("mqtts://127.0.0.1:{}", broker.port)])
            .arg("--ca")
            .arg(pki.file("ca.pem"))
            .arg("--cert")
            .arg(pki.file("platform.pem"))
            .arg("--key")
            .arg(pki.file("platform.key"))
            .args(["--device", DEVICE, "--client-id", "watcher", "--duration", "10m"])
            .arg("--device-key")
            .arg(data.join("keys/device.pub"))
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut watch = watch;
        let mut err = BufReader::new(watch.stderr.take().unwrap());
        let mut line = String::new();
        while !line.contains("subscribed") {
            line.clear();
            assert!(
                err.read_line(&mut line).unwrap() > 0,
                "watch ended before subscribing"
            );
        }
        // Keep draining its stderr (a closed pipe would fail its next line).
        std::thread::spawn(move || std::io::copy(&mut err, &mut std::io::sink()));
        let daemon = Daemon::start(&config);
        wait_for_job_state(&health, "sync", "running", Duration::from_secs(30));
        wait_for("a recorded segment", Duration::from_secs(30), || {
            (!payloads(&data, Kind::Segment).is_empty()).then_some(())
        });
        Bench {
            scene,
            pki,
            broker,
            platform,
            _camera: camera,
            keys,
            data,
            config,
            daemon,
            watch,
        }
    }

    /// Stops the daemon, then the reference receiver (SIGTERM), and returns its final report.
    fn finish(&mut self) -> Value {
        assert!(self.daemon.terminate(Duration::from_secs(10)).success());
        crate::support::signal(self.watch.id(), libc::SIGTERM);
        let mut out = String::new();
        self.watch
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        let _ = self.watch.wait();
        for l in out.lines().filter(|l| l.contains("\"problem\"")) {
            eprintln!("watch: {l}");
        }
        let last = out.lines().last().unwrap_or_default();
        serde_json::from_str(last).unwrap_or_else(|e| panic!("watch report: {e}: {out}"))
    }

    /// `classproof-upstream send` of a `kind` command with `body`, waiting `wait` for its ack.
    fn send_waiting(&self, id: &str, kind: &str, body: Value, wait: &str) -> std::process::Output {
        let body_file = self.scene.path().join(format!("body-{id}.json"));
        std::fs::write(&body_file, body.to_string()).unwrap();
        Command::new(upstream_bin())
            .args([
                "send",
                "--broker",
                &format!("mqtts://127.0.0.1:{}", self.broker.port),
            ])
            .arg("--ca")
            .arg(self.pki.file("ca.pem"))
            .arg("--cert")
            .arg(self.pki.file("platform.pem"))
            .arg("--key")
            .arg(self.pki.file("platform.key"))
            .args([
                "--device",
                DEVICE,
                "--client-id",
                &format!("sender-{id}"),
                "--id",
                id,
            ])
            .arg("--platform-key")
            .arg(self.keys.join("platform.key"))
            .args(["--type", kind, "--body"])
            .arg(format!("@{}", body_file.display()))
            .args(["--ttl", "2m", "--wait", wait])
            .output()
            .unwrap()
    }

    /// `classproof-upstream send`: the ack, or a panic naming what happened.
    fn send(&self, id: &str, kind: &str, body: Value) -> Value {
        let out = self.send_waiting(id, kind, body, "60s");
        let stdout = String::from_utf8_lossy(&out.stdout);
        serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
            panic!(
                "send {kind}: {e}: {stdout} {}",
                String::from_utf8_lossy(&out.stderr)
            )
        })
    }
}

#[test]
fn signed_commands_are_verified_rejected_with_a_reason_and_a_snapshot_is_recorded_then_uploaded() {
    let scene = Scene::new();
    let pki = Pki::make(&scene.path().join("pki"));
    let broker = Mosquitto::start(&scene.path().join("broker"), &pki);
    let platform = Platform::start(broker.port, &pki);
    let camera = RtspServer::start("h264");
    let keys = scene.path().join("platform-keys");
    let out = Command::new(upstream_bin())
        .args(["keygen", "--out"])
        .arg(&keys)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let other_keys = scene.path().join("other-keys");
    assert!(
        Command::new(upstream_bin())
            .args(["keygen", "--out"])
            .arg(&other_keys)
            .status()
            .unwrap()
            .success()
    );
    let key = pkcs8_of(&keys.join("platform.key"));
    let other = pkcs8_of(&other_keys.join("platform.key"));
    let data = scene.data_dir();
    let uploads = UploadServer::start(data.clone());
    let health = scene.path().join("health.json");
    let config = scene.config(&format!(
        "[[camera]]\nid = \"front\"\nurl = \"{}\"\nsegment = \"2s\"\n\n\
         [daemon]\nhealth_file = \"{}\"\n\n\
         [upstream]\nurl = \"mqtts://127.0.0.1:{}\"\ntopic_prefix = \"{PREFIX}\"\nca_file = \"{}\"\n\
         client_cert_file = \"{}\"\nclient_key_file = \"{}\"\nplatform_key_file = \"{}\"\n\
         keepalive = \"5s\"\nstatus_interval = \"5s\"\n",
        camera.url(),
        health.display(),
        broker.port,
        pki.file("ca.pem").display(),
        pki.file("device.pem").display(),
        pki.file("device.key").display(),
        keys.join("platform.pub").display(),
    ));
    let mut daemon = Daemon::start(&config);
    wait_for_job_state(&health, "sync", "running", Duration::from_secs(30));
    wait_for("a recorded segment", Duration::from_secs(30), || {
        (!payloads(&data, Kind::Segment).is_empty()).then_some(())
    });

    // Every rejection reason, each with its ack and its record.
    let snap_body =
        json!({"camera": "front", "upload_url": format!("http://127.0.0.1:{}/up/r1.jpg", uploads.port)});
    let good = payload("r-good", DEVICE, -1, 300, "snapshot.request", snap_body.clone());
    let mut unknown_field: Value = serde_json::from_str(&payload(
        "r-field",
        DEVICE,
        -1,
        300,
        "snapshot.request",
        snap_body.clone(),
    ))
    .unwrap();
    unknown_field["priority"] = json!("high");
    let cases: Vec<(&str, String, Option<&str>, &str)> = vec![
        ("not JSON", "{nope".into(), None, "malformed"),
        (
            "another key",
            command::sign(
                &payload("r-key", DEVICE, -1, 300, "snapshot.request", snap_body.clone()),
                &other,
            )
            .unwrap(),
            Some("r-key"),
            "bad_signature",
        ),
        (
            "no signature",
            json!({"payload": good, "signature": ""}).to_string(),
            Some("r-good"),
            "bad_signature",
        ),
        (
            "another device",
            command::sign(
                &payload("r-dev", "box-9", -1, 300, "snapshot.request", snap_body.clone()),
                &key,
            )
            .unwrap(),
            Some("r-dev"),
            "wrong_device",
        ),
        (
            "expired",
            command::sign(
                &payload("r-old", DEVICE, -600, 60, "snapshot.request", snap_body.clone()),
                &key,
            )
            .unwrap(),
            Some("r-old"),
            "expired",
        ),
        (
            "issued in the future",
            command::sign(
                &payload("r-future", DEVICE, 600, 60, "snapshot.request", snap_body.clone()),
                &key,
            )
            .unwrap(),
            Some("r-future"),
            "expired",
        ),
        (
            "an unknown field",
            command::sign(&unknown_field.to_string(), &key).unwrap(),
            Some("r-field"),
            "malformed",
        ),
        (
            "an unknown type",
            command::sign(&payload("r-type", DEVICE, -1, 300, "reboot.now", json!({})), &key).unwrap(),
            Some("r-type"),
            "unknown_type",
        ),
    ];
    for (what, msg, id, reason) in &cases {
        let before = platform.acks().len();
        platform.publish_cmd(msg);
        let ack = wait_for(&format!("the ack of {what}"), Duration::from_secs(10), || {
            platform.acks().get(before).cloned()
        });
        assert_eq!(ack["result"], "rejected", "{what}: {ack}");
        assert_eq!(ack["reason"], *reason, "{what}: {ack}");
        assert_eq!(ack["command_id"].as_str(), *id, "{what}: {ack}");
        let rec = wait_for(&format!("the record of {what}"), Duration::from_secs(10), || {
            payloads(&data, Kind::CommandRejected)
                .into_iter()
                .map(|(p, _)| p)
                .find(|p| p["command_id"].as_str() == *id && p["reason"] == *reason)
        });
        assert!(rec["detail"].as_str().is_some_and(|d| !d.is_empty()), "{rec}");
    }
    assert!(
        payloads(&data, Kind::Command).is_empty(),
        "nothing rejected was accepted"
    );

    // An accepted snapshot.request through the reference receiver: recorded, then uploaded
    // (after one refused attempt), acked with the file's facts.
    let url = format!("http://127.0.0.1:{}/up/snap.jpg", uploads.port);
    let out = Command::new(upstream_bin())
        .args(["send", "--broker", &format!("mqtts://127.0.0.1:{}", broker.port)])
        .arg("--ca")
        .arg(pki.file("ca.pem"))
        .arg("--cert")
        .arg(pki.file("platform.pem"))
        .arg("--key")
        .arg(pki.file("platform.key"))
        .args(["--device", DEVICE, "--client-id", "sender-1", "--id", "snap-1"])
        .arg("--platform-key")
        .arg(keys.join("platform.key"))
        .args(["--type", "snapshot.request", "--body"])
        .arg(json!({"camera": "front", "upload_url": url}).to_string())
        .args(["--ttl", "2m", "--wait", "60s"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "send: {stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ack: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(ack["result"], "ok", "{ack}");
    let body = &ack["body"];
    assert_eq!(body["camera"], "front");
    assert!(
        body["width"].as_u64().unwrap() > 0 && body["height"].as_u64().unwrap() > 0,
        "{ack}"
    );
    assert_eq!(
        body["upload"]["attempts"], 2,
        "one refused attempt, then retried: {ack}"
    );
    assert_eq!(*uploads.refused.lock().unwrap(), 1);
    let up = uploads.got.lock().unwrap().clone();
    assert_eq!(up.len(), 1, "{up:?}");
    assert_eq!(up[0].path, "/up/snap.jpg");
    assert_eq!(up[0].content_type, "image/jpeg");
    assert_eq!(up[0].device, DEVICE);
    assert!(
        up[0].recorded_before,
        "the snapshot record is appended before the upload"
    );
    assert_eq!(body["sha256"], up[0].sha256.as_str());
    assert_eq!(body["bytes"], up[0].bytes as u64);
    let cmds = payloads(&data, Kind::Command);
    assert_eq!(cmds.len(), 1, "{cmds:?}");
    assert_eq!(cmds[0].0["command_id"], "snap-1");
    assert_eq!(cmds[0].0["command_type"], "snapshot.request");
    let snaps = payloads(&data, Kind::Snapshot);
    assert_eq!(snaps.len(), 1);
    assert_eq!(
        snaps[0].1.as_deref(),
        Some(up[0].sha256.as_str()),
        "file_sha256 of the record"
    );
    let file = data.join(snaps[0].0["path"].as_str().unwrap());
    assert_eq!(std::fs::read(&file).unwrap().len(), up[0].bytes);
    let jpeg = std::fs::read(&file).unwrap();
    assert_eq!(&jpeg[..2], &[0xff, 0xd8]);

    // The same signed command again: replayed.
    let replay = command::sign(
        &payload("snap-1", DEVICE, -1, 300, "snapshot.request", snap_body.clone()),
        &key,
    )
    .unwrap();
    // The platform's own subscription gets the first ack too, maybe after `send` did: wait for
    // it, so that the next ack it gets is the replay's.
    wait_for("the platform saw the first ack", Duration::from_secs(10), || {
        platform
            .acks()
            .iter()
            .any(|a| a["command_id"] == "snap-1" && a["result"] == "ok")
            .then_some(())
    });
    let before = platform.acks().len();
    platform.publish_cmd(&replay);
    let ack = wait_for("the ack of the replay", Duration::from_secs(10), || {
        platform.acks().get(before).cloned()
    });
    assert_eq!(
        (ack["result"].as_str(), ack["reason"].as_str()),
        (Some("rejected"), Some("replayed")),
        "{ack}"
    );
    assert_eq!(ack["command_id"], "snap-1");
    assert_eq!(payloads(&data, Kind::Command).len(), 1, "not run twice");

    // A flood of junk: acked each, but past the per-minute limit only counted, into one
    // summary per minute.
    let sent_before = cases.len() as u64 + 1;
    let flood = 25u64;
    let before = platform.acks().len();
    for i in 0..flood {
        platform.publish_cmd(&format!("junk {i}"));
    }
    wait_for("an ack for every junk message", Duration::from_secs(20), || {
        (platform.acks().len() >= before + flood as usize).then_some(())
    });
    let total = sent_before + flood;
    let counted = || -> (u64, u64) {
        let own = payloads(&data, Kind::CommandRejected).len() as u64;
        let summed: u64 = payloads(&data, Kind::CommandRejectedSummary)
            .iter()
            .map(|(p, _)| p["rejected"].as_u64().unwrap())
            .sum();
        (own, summed)
    };
    let (own, _) = counted();
    assert!(
        own < total && own <= 2 * command::REJECTIONS_PER_MINUTE as u64,
        "the flood did not flood the log: {own} own records of {total}"
    );
    // The summary is written once the minute is over.
    let (own, summed) = wait_for("the flood's summary record", Duration::from_secs(75), || {
        let (own, summed) = counted();
        (own + summed == total).then_some((own, summed))
    });
    assert!(summed > 0, "{own} + {summed}");

    // Everything the box published matches docs/schemas (events with their record fields,
    // acks, status, checkpoints), and the good envelope too.
    let schemas = upstream::validators().unwrap();
    let env: Value = serde_json::from_str(&replay).unwrap();
    assert_eq!(upstream::validate(&schemas, "cmd", &env), Vec::<String>::new());
    wait_for("the snapshot record upstream", Duration::from_secs(20), || {
        platform
            .of("event")
            .iter()
            .any(|e| e["type"] == "snapshot")
            .then_some(())
    });
    platform.assert_all_valid();
    assert!(daemon.terminate(Duration::from_secs(10)).success());
}

/// `ffmpeg -listen 1` receiving an RTMP push into `out` (the platform's media server).
fn rtmp_receiver(out: &Path) -> (std::process::Child, String) {
    let port = crate::support::free_port();
    let url = format!("rtmp://127.0.0.1:{port}/live/x");
    let child = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-listen", "1", "-i", &url, "-c", "copy"])
        .arg(out)
        .stdin(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Listening once the kernel shows the port in LISTEN (a probe connection would use up
    // ffmpeg's one accept).
    let hex = format!(":{port:04X} ");
    wait_for("ffmpeg listening for RTMP", Duration::from_secs(10), || {
        let tcp = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
        tcp.lines()
            .any(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                f.len() > 3 && format!("{} ", f[1]).ends_with(&hex) && f[3] == "0A"
            })
            .then_some(())
    });
    (child, url)
}

#[test]
fn live_start_pushes_the_camera_by_stream_copy_and_is_a_record_with_its_start_and_end() {
    let mut b = Bench::start("live_max = \"1m\"");
    let gaps_before = payloads(&b.data, Kind::Gap).len();

    // Beyond live_max: failed, nothing pushed.
    let ack = b.send(
        "live-long",
        "live.start",
        json!({"camera": "front", "push_url": "rtmp://127.0.0.1:9/live/x", "duration": "2m"}),
    );
    assert_eq!(ack["result"], "failed", "{ack}");
    assert!(ack["detail"].as_str().unwrap().contains("live_max"), "{ack}");

    // A 4 s push to a local receiver; the output plays.
    let out = b.scene.path().join("live.flv");
    let (mut rx, url) = rtmp_receiver(&out);
    let ack = b.send(
        "live-1",
        "live.start",
        json!({"camera": "front", "push_url": url, "duration": "4s"}),
    );
    assert_eq!(ack["result"], "ok", "{ack}");
    assert_eq!(ack["body"]["camera"], "front");
    let rec = wait_for("the live record", Duration::from_secs(30), || {
        payloads(&b.data, Kind::Live)
            .into_iter()
            .map(|(p, _)| p)
            .find(|p| p["command_id"] == "live-1")
    });
    assert_eq!(rec["ended"], "duration", "{rec}");
    let span = rec["end_us"].as_i64().unwrap() - rec["start_us"].as_i64().unwrap();
    assert!((3_500_000..15_000_000).contains(&span), "{rec}");
    assert!(rec["packets"].as_u64().unwrap() > 10, "{rec}");
    let status = wait_for("the receiver to finish", Duration::from_secs(20), || {
        rx.try_wait().unwrap()
    });
    assert!(status.success(), "ffmpeg receiver: {status}");
    let secs = crate::support::ffprobe_duration(&out).expect("the pushed stream plays");
    assert!(secs > 2.0, "{secs} s pushed");
    let frames = crate::support::ffmpeg_decode_frames(&out).expect("decodes without errors");
    assert!(frames > 20, "{frames} frames");

    // live.stop ends a long push early.
    let out2 = b.scene.path().join("live2.flv");
    let (mut rx2, url2) = rtmp_receiver(&out2);
    let ack = b.send(
        "live-2",
        "live.start",
        json!({"camera": "front", "push_url": url2, "duration": "50s"}),
    );
    assert_eq!(ack["result"], "ok", "{ack}");
    let ack = b.send("live-3", "live.stop", json!({"camera": "front"}));
    assert_eq!(ack["result"], "ok", "{ack}");
    let rec = wait_for("the stopped push's record", Duration::from_secs(20), || {
        payloads(&b.data, Kind::Live)
            .into_iter()
            .map(|(p, _)| p)
            .find(|p| p["command_id"] == "live-2")
    });
    assert_eq!(rec["ended"], "live.stop", "{rec}");
    assert!(
        rec["end_us"].as_i64().unwrap() - rec["start_us"].as_i64().unwrap() < 20_000_000,
        "{rec}"
    );
    let _ = wait_for("the second receiver to finish", Duration::from_secs(20), || {
        rx2.try_wait().unwrap()
    });

    // Recording was untouched: no gap, segments went on.
    assert_eq!(
        payloads(&b.data, Kind::Gap).len(),
        gaps_before,
        "a gap during the push"
    );
    wait_for("the live record upstream", Duration::from_secs(20), || {
        b.platform
            .of("event")
            .iter()
            .any(|e| e["type"] == "live")
            .then_some(())
    });
    b.platform.assert_all_valid();
    let _ = &b.config;
    assert!(b.daemon.terminate(Duration::from_secs(10)).success());
}

#[test]
fn clip_request_cuts_the_recording_by_stream_copy_lists_the_gap_and_uploads_it() {
    let mut b = Bench::start("");
    let uploads = UploadServer::start(b.data.clone());
    let first = payloads(&b.data, Kind::Segment)
        .first()
        .map(|(p, _)| p["start_us"].as_i64().unwrap())
        .unwrap();
    // Recording goes on for a while.
    wait_for("three segments", Duration::from_secs(30), || {
        (payloads(&b.data, Kind::Segment).len() >= 3).then_some(())
    });
    let tz = chrono_tz::Asia::Shanghai;
    let from = first - 3_000_000; // before recording began: a hole
    let to = chrono::Utc::now().timestamp_micros() - 500_000;
    let url = format!("http://127.0.0.1:{}/up/clip.mp4", uploads.port);
    let ack = b.send(
        "clip-1",
        "clip.request",
        json!({"camera": "front", "from": time_text(from, tz), "to": time_text(to, tz), "upload_url": url}),
    );
    assert_eq!(ack["result"], "ok", "{ack}");
    let body = &ack["body"];
    let gaps = body["gaps"].as_array().unwrap();
    assert!(!gaps.is_empty(), "{ack}");
    assert_eq!(gaps[0]["cause"], "not_recorded", "{ack}");
    assert!((gaps[0]["seconds"].as_f64().unwrap() - 3.0).abs() < 0.5, "{ack}");
    assert!(body["segments"].as_u64().unwrap() >= 2, "{ack}");
    let up = uploads.got.lock().unwrap().clone();
    assert_eq!(up.len(), 1);
    assert_eq!(up[0].content_type, "video/mp4");
    assert!(
        up[0].recorded_before,
        "the clip record is appended before the upload"
    );
    assert_eq!(body["sha256"], up[0].sha256.as_str());
    let clips = payloads(&b.data, Kind::Clip);
    assert_eq!(clips.len(), 1);
    assert_eq!(clips[0].1.as_deref(), Some(up[0].sha256.as_str()));
    let file = b.data.join(clips[0].0["path"].as_str().unwrap());
    let secs = crate::support::ffprobe_duration(&file).expect("the clip plays");
    let want = (to - first) as f64 / 1e6;
    assert!((secs - want).abs() < 2.5, "clip {secs} s, recorded span {want} s");
    let frames = crate::support::ffmpeg_decode_frames(&file).expect("decodes without errors");
    assert!(frames > 25, "{frames}");
    wait_for("the clip record upstream", Duration::from_secs(20), || {
        b.platform
            .of("event")
            .iter()
            .any(|e| e["type"] == "clip")
            .then_some(())
    });
    b.platform.assert_all_valid();
    assert_watch_ok(&b.finish());
    // `classproof verify` checks the clip's file against its record like a segment's.
    let cfg = b.config.to_str().unwrap().to_string();
    let out = crate::support::classproof(&["verify", "--config", &cfg]);
    let text = |o: &std::process::Output| {
        String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr)
    };
    assert!(out.status.success(), "verify: {}", text(&out));
    std::fs::write(&file, b"edited").unwrap();
    let out = crate::support::classproof(&["verify", "--config", &cfg]);
    assert!(
        !out.status.success() && text(&out).contains("commands/"),
        "an edited clip must fail verify: {}",
        text(&out)
    );
}

/// `python3 -m http.server` serving `dir` on loopback (the platform's photo store).
struct PhotoServer {
    port: u16,
    child: std::process::Child,
}

impl PhotoServer {
    fn start(dir: &Path) -> PhotoServer {
        let port = crate::support::free_port();
        let child = Command::new("/usr/bin/python3")
            .args([
                "-m",
                "http.server",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--directory",
            ])
            .arg(dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        wait_for("the photo server", Duration::from_secs(10), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).ok().map(|_| ())
        });
        PhotoServer { port, child }
    }
}

impl Drop for PhotoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn sha256_file(p: &Path) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, &std::fs::read(p).unwrap()).as_ref())
}

#[test]
fn roster_update_enrolls_photos_fetched_and_checked_by_sha256_and_removes_people() {
    let models = std::env::var("CLASSPROOF_MODELS_DIR")
        .unwrap_or_else(|_| "/usr/local/share/classproof/models".into());
    let mut b = Bench::start(&format!("\n[vision]\nenabled = false\nmodels_dir = {models:?}\n"));
    let faces = crate::support::shared().join("faces-dev");
    let photos = PhotoServer::start(&faces);
    let url = |rel: &str| format!("http://127.0.0.1:{}/{rel}", photos.port);
    let live1 = "nuaa/live/0002/0002_01_00_01_124.jpg";
    let live2 = "nuaa/live/0002/0002_01_00_01_212.jpg";
    let biden = std::fs::read(faces.join("identities/Joe_Biden/biden.jpg")).unwrap();
    let full_id = "410105199001011234";
    let body = json!({
        "class_id": "c1",
        "persons": [
            {"person_id": "s001", "name": "Zhang Wei", "role": "trainee", "id_number": full_id,
             "photos": [
                {"url": url(live1), "sha256": sha256_file(&faces.join(live1))},
                {"url": url(live2), "sha256": sha256_file(&faces.join(live2))},
                {"url": url(live2), "sha256": "0".repeat(64)},
             ]},
            {"person_id": "t001", "name": "Wang Fang", "role": "teacher",
             "photos": [{"jpeg_base64": base64::engine::general_purpose::STANDARD.encode(&biden)}]},
            {"person_id": "x001", "name": "Bad Role", "role": "pilot", "photos": []},
        ],
        "remove": ["nobody"],
    });
    let ack = b.send("roster-1", "roster.update", body);
    assert_eq!(ack["result"], "ok", "{ack}");
    let persons = ack["body"]["persons"].as_array().unwrap();
    let of = |id: &str| {
        persons
            .iter()
            .find(|p| p["person_id"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("{id}: {ack}"))
    };
    let s001 = of("s001");
    assert_eq!(s001["result"], "enrolled", "{ack}");
    assert_eq!(s001["templates_added"], 2, "{ack}");
    let rejected = s001["rejected_photos"].as_array().unwrap();
    assert_eq!(rejected.len(), 1, "{ack}");
    assert!(
        rejected[0]["reason"]
            .as_str()
            .unwrap()
            .contains("sha256 mismatch"),
        "{ack}"
    );
    assert_eq!(of("t001")["templates_added"], 1, "{ack}");
    assert_eq!(of("x001")["result"], "rejected", "{ack}");
    assert_eq!(ack["body"]["removed"][0]["removed"], false, "{ack}");
    let enrolled: Vec<String> = payloads(&b.data, Kind::Enrollment)
        .into_iter()
        .map(|(p, _)| p["person_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(enrolled, ["s001", "t001"]);
    // The same code as `roster import`: the roster lists them in class c1.
    let out =
        crate::support::classproof(&["roster", "list", "--json", "--config", b.config.to_str().unwrap()]);
    let list = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(list.contains("s001") && list.contains("c1"), "{list}");
    // No photo is kept, only templates (R15).
    assert!(!b.data.join("commands/tmp").join("roster-1").exists());

    let ack = b.send(
        "roster-2",
        "roster.update",
        json!({"class_id": "c1", "remove": ["t001"]}),
    );
    assert_eq!(ack["body"]["removed"][0]["removed"], true, "{ack}");
    wait_for("the roster_removed record", Duration::from_secs(10), || {
        payloads(&b.data, Kind::RosterRemoved).first().cloned()
    });
    wait_for("the enrollments upstream", Duration::from_secs(20), || {
        (b.platform
            .of("event")
            .iter()
            .filter(|e| e["type"] == "enrollment")
            .count()
            == 2)
            .then_some(())
    });
    // R15: the full ID number is nowhere in what the box published or recorded.
    let all = format!("{:?}", b.platform.got.lock().unwrap());
    assert!(!all.contains(full_id), "R15: a full ID number went upstream");
    assert!(!ack.to_string().contains(full_id));
    b.platform.assert_all_valid();
    assert_watch_ok(&b.finish());
}

#[test]
fn schedule_update_stores_a_checked_session_that_is_then_judged_and_the_file_wins_a_clash() {
    let file_session = "\n[rules]\nprofile = \"custom\"\nmin_class_hour = \"4s\"\npractical_min_run = \"3s\"\n\
                        continuity_tolerance = \"1s\"\n\n[[session]]\nid = \"s-file\"\nclass_id = \"c9\"\nkind = \"theory\"\n\
                        cameras = [\"front\"]\nstart = \"2030-01-01T09:00:00+08:00\"\nclass_hours = 1\nclass_hour = \"45m\"\n";
    let mut b = Bench::start(file_session);
    let tz = chrono_tz::Asia::Shanghai;
    let start = chrono::Utc::now().timestamp_micros() + 2_000_000;
    let session = |id: &str, class_hour: &str, cameras: Value| {
        json!({"id": id, "class_id": "c1", "kind": "theory", "cameras": cameras,
               "start": time_text(start, tz), "class_hours": 1, "class_hour": class_hour, "break": "0s"})
    };
    // Checked by the [[session]] code: a class hour below the profile's minimum and an unknown
    // camera are refused, named, and nothing is stored.
    let ack = b.send(
        "sched-bad",
        "schedule.update",
        json!({"sessions": [session("remote-x", "1s", json!(["nope"]))]}),
    );
    assert_eq!(ack["result"], "failed", "{ack}");
    let detail = ack["detail"].as_str().unwrap();
    assert!(detail.contains("sessions[0]."), "{ack}");
    let ack = b.send(
        "sched-1",
        "schedule.update",
        json!({"sessions": [session("remote-1", "5s", json!(["front"])), session("s-file", "5s", json!(["front"]))]}),
    );
    assert_eq!(ack["result"], "ok", "{ack}");
    assert_eq!(ack["body"]["stored"], json!(["remote-1", "s-file"]), "{ack}");
    let warnings = ack["body"]["warnings"].to_string();
    assert!(
        warnings.contains("s-file") && warnings.contains("config file"),
        "{ack}"
    );
    // Judged like a session of the file: its class hour gets verdicts in the log.
    let kinds = [
        Kind::ClassHourPass,
        Kind::ClassHourAtRisk,
        Kind::ClassHourFail,
        Kind::ClassHourFinal,
    ];
    let verdict = wait_for("a verdict of the stored session", Duration::from_secs(60), || {
        kinds
            .iter()
            .flat_map(|k| payloads(&b.data, *k))
            .map(|(p, _)| p)
            .find(|p| p["session_id"] == "remote-1")
    });
    assert_eq!(verdict["class_id"], "c1", "{verdict}");
    // And by `classproof report`.
    let out = crate::support::classproof(&[
        "report",
        "--json",
        "--session",
        "remote-1",
        "--config",
        b.config.to_str().unwrap(),
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("\"session_id\":\"remote-1\""),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // attendance.request: nobody checked in to the occurrence, so its class-hour report.
    let date = chrono::DateTime::from_timestamp_micros(start)
        .unwrap()
        .with_timezone(&tz)
        .format("%Y-%m-%d")
        .to_string();
    let ack = b.send(
        "att-1",
        "attendance.request",
        json!({"session": "remote-1", "date": date}),
    );
    assert_eq!(ack["result"], "ok", "{ack}");
    assert_eq!(ack["body"]["session_id"], "remote-1", "{ack}");
    assert_eq!(ack["body"]["class_hours"].as_array().unwrap().len(), 1, "{ack}");
    assert_eq!(ack["body"]["report"], "class_hours", "{ack}");
    // The file's s-file is judged, not the stored one.
    let out = crate::support::classproof(&[
        "report",
        "--json",
        "--session",
        "s-file",
        "--config",
        b.config.to_str().unwrap(),
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("\"class_id\":\"c9\""), "{text}");
    // Removed by a later command.
    let ack = b.send("sched-2", "schedule.update", json!({"remove": ["remote-1"]}));
    assert_eq!(ack["body"]["removed"], json!(["remote-1"]), "{ack}");
    b.platform.assert_all_valid();
    assert_watch_ok(&b.finish());
}

/// The reference receiver saw a valid, linked stream with verified checkpoints.
fn assert_watch_ok(r: &Value) {
    assert_eq!(r["invalid"], 0, "{r}");
    assert_eq!(r["problems"], json!([]), "{r}");
    assert!(r["verified_to"].as_i64().unwrap() > 3, "{r}");
    assert!(!r["checkpoints_ok"].as_array().unwrap().is_empty(), "{r}");
}

/// The platform runs a class end to end over the command topic: it enrolls a trainee
/// (`roster.update`), schedules a session on the door camera (`schedule.update`); the daemon
/// checks the trainee in from the camera like a session of its file, and `attendance.request`
/// answers with the check-in report (R8, R14), as `classproof attendance` does.
#[test]
fn a_session_the_platform_scheduled_checks_in_its_enrolled_trainee_and_attendance_request_reports_it() {
    // The door camera's video, and the trainee's photo: a frame of it 2 s in, sent inline.
    let shots = tempfile::tempdir().unwrap();
    let (video, photo) = crate::support::door_person(shots.path());
    let extra = format!(
        "\n[rules]\nprofile = \"custom\"\nmin_class_hour = \"4s\"\npractical_min_run = \"3s\"\n\
         continuity_tolerance = \"1s\"\n\n[vision]\nmodels_dir = {models:?}\n\n\
         [attendance]\ncheckin_opens = \"60s\"\nlate_after = \"30s\"\ncheckout_window = \"6s\"\n\n\
         [[camera]]\nid = \"door\"\nurl = \"file://{video}\"\nsegment = \"4s\"\nloop = true\n\
         realtime = true\nanalyze = \"entrance\"\nanalyze_fps = 3\n",
        models = crate::support::models_dir(),
        video = video.display(),
    );
    let mut b = Bench::start(&extra);
    let jpeg = base64::engine::general_purpose::STANDARD.encode(std::fs::read(&photo).unwrap());
    let ack = b.send(
        "roster-door",
        "roster.update",
        json!({"class_id": "c1", "persons": [
            {"person_id": "p-door", "name": "Li Na", "role": "trainee", "photos": [{"jpeg_base64": jpeg}]}
        ]}),
    );
    assert_eq!(ack["body"]["persons"][0]["result"], "enrolled", "{ack}");

    let tz = chrono_tz::Asia::Shanghai;
    let start = chrono::Utc::now().timestamp_micros() + 10_000_000;
    let ack = b.send(
        "sched-door",
        "schedule.update",
        json!({"sessions": [{"id": "remote-door", "class_id": "c1", "kind": "practical",
                "cameras": ["door"], "start": time_text(start, tz), "class_hours": 1,
                "class_hour": "20s", "break": "0s"}]}),
    );
    assert_eq!(ack["body"]["stored"], json!(["remote-door"]), "{ack}");

    // Checked in from the camera, for the stored session.
    let check_in = wait_for("the check-in of p-door", Duration::from_secs(60), || {
        payloads(&b.data, Kind::CheckIn)
            .into_iter()
            .map(|(p, _)| p)
            .next()
    });
    assert_eq!(check_in["person_id"], "p-door", "{check_in}");
    assert_eq!(check_in["camera"], "door", "{check_in}");
    assert_eq!(check_in["session_id"], "remote-door", "{check_in}");

    // attendance.request: someone checked in, so the check-in report.
    let date = chrono::DateTime::from_timestamp_micros(start)
        .unwrap()
        .with_timezone(&tz)
        .format("%Y-%m-%d")
        .to_string();
    let ack = b.send(
        "att-door",
        "attendance.request",
        json!({"session": "remote-door", "date": date}),
    );
    assert_eq!(ack["result"], "ok", "{ack}");
    let body = &ack["body"];
    assert_eq!(body["summary"]["present"], 1, "{ack}");
    assert_eq!(body["persons"][0]["person_id"], "p-door", "{ack}");
    assert_eq!(body["persons"][0]["status"], "present", "{ack}");
    assert!(body["persons"][0]["check_in"].is_string(), "{ack}");
    // The same object as `classproof attendance --json` for the stored session.
    let out = crate::support::classproof(&[
        "attendance",
        "--json",
        "--session",
        "remote-door",
        "--date",
        &date,
        "--config",
        b.config.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let cli: Value = serde_json::from_slice(&out.stdout).unwrap();
    for key in ["person_id", "status", "check_in", "similarity"] {
        assert_eq!(cli["persons"][0][key], body["persons"][0][key], "{key}: {cli}");
    }
    // And the check-in went upstream as an event.
    wait_for("the check_in event upstream", Duration::from_secs(20), || {
        b.platform
            .of("event")
            .into_iter()
            .find(|e| e["type"] == "check_in")
    });
    b.platform.assert_all_valid();
    assert_watch_ok(&b.finish());
}

/// A command the platform sends while the box is away is queued by the broker (the box's
/// persistent session) and runs once the box is back: nothing the platform asks is lost to an
/// outage of the box.
#[test]
fn a_command_sent_while_the_box_is_down_runs_when_it_is_back() {
    let file_session = "\n[[session]]\nid = \"s-file\"\nclass_id = \"c9\"\nkind = \"theory\"\n\
                        cameras = [\"front\"]\nstart = \"2030-01-01T09:00:00+08:00\"\nclass_hours = 1\nclass_hour = \"45m\"\n";
    let mut b = Bench::start(file_session);
    assert!(b.daemon.terminate(Duration::from_secs(10)).success());
    // Sent while the box is down: no ack comes (exit 3), the broker keeps the command.
    let out = b.send_waiting(
        "offline-1",
        "attendance.request",
        json!({"session": "s-file", "date": "2030-01-01"}),
        "3s",
    );
    assert_eq!(
        out.status.code(),
        Some(3),
        "no ack while the box is down: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(b.platform.acks().is_empty());

    b.daemon = Daemon::start(&b.config);
    let ack = wait_for("the ack of the queued command", Duration::from_secs(30), || {
        b.platform
            .acks()
            .into_iter()
            .find(|a| a["command_id"] == "offline-1")
    });
    assert_eq!(ack["result"], "ok", "{ack}");
    assert_eq!(ack["body"]["session_id"], "s-file", "{ack}");
    assert_eq!(payloads(&b.data, Kind::Command).len(), 1, "run once");
    b.platform.assert_all_valid();
    assert_watch_ok(&b.finish());
}
