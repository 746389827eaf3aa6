//! Upstream sync (issue 10, first half) against real parts: a mosquitto started here with a
//! TLS listener that requires client certificates made here, the daemon as a child process,
//! and a platform subscriber (rumqttc, persistent session) that validates every message
//! against docs/schemas/ and rebuilds the chain with `sync::receiver` (R8: what the platform
//! did not receive does not count; R7: an outage loses nothing).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use classproof::db;
use classproof::evidence::key::PublicKey;
use classproof::evidence::log;
use classproof::evidence::record::{self, Record};
use classproof::media::GapCause;
use classproof::sync::outbox;
use classproof::sync::receiver::{ChainCheck, ChainReport};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS, Transport};
use serde_json::{Value, json};

use crate::support::{
    Daemon, Mosquitto, Pki, RtspServer, Scene, classproof, json_lines, wait_for, wait_for_job_state,
};

const PREFIX: &str = "classproof";
const DEVICE: &str = "test-box";

/// The platform: subscribes to the device's topics with a persistent session and keeps every
/// message, in arrival order.
struct Platform {
    got: Arc<Mutex<Vec<(String, Value)>>>,
    invalid: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

fn schemas() -> BTreeMap<&'static str, jsonschema::Validator> {
    let dir = crate::support::repo().join("docs/schemas");
    ["event", "checkpoint", "status"]
        .into_iter()
        .map(|n| {
            let text = std::fs::read_to_string(dir.join(format!("{n}.schema.json"))).unwrap();
            (
                n,
                jsonschema::validator_for(&serde_json::from_str(&text).unwrap()).unwrap(),
            )
        })
        .collect()
}

impl Platform {
    fn start(port: u16, pki: &Pki) -> Platform {
        let got: Arc<Mutex<Vec<(String, Value)>>> = Arc::default();
        let invalid: Arc<Mutex<Vec<String>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let subscribed = Arc::new(AtomicBool::new(false));
        let tls = pki.platform_tls(port, PREFIX);
        let (g, inv, st, sub) = (got.clone(), invalid.clone(), stop.clone(), subscribed.clone());
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let schemas = schemas();
                let mut o = MqttOptions::new("platform", "127.0.0.1", port);
                o.set_clean_session(false);
                o.set_keep_alive(Duration::from_secs(5));
                o.set_max_packet_size(4 << 20, 4 << 20);
                o.set_transport(Transport::tls_with_config(rumqttc::TlsConfiguration::Rustls(tls)));
                let (client, mut ev) = AsyncClient::new(o, 1000);
                while !st.load(Ordering::SeqCst) {
                    match tokio::time::timeout(Duration::from_millis(200), ev.poll()).await {
                        Ok(Ok(Event::Incoming(Packet::ConnAck(_)))) => {
                            client
                                .subscribe(format!("{PREFIX}/{DEVICE}/#"), QoS::AtLeastOnce)
                                .await
                                .unwrap();
                        }
                        Ok(Ok(Event::Incoming(Packet::SubAck(_)))) => sub.store(true, Ordering::SeqCst),
                        Ok(Ok(Event::Incoming(Packet::Publish(p)))) => {
                            let v: Value = match serde_json::from_slice(&p.payload) {
                                Ok(v) => v,
                                Err(e) => {
                                    inv.lock().unwrap().push(format!("{}: not JSON: {e}", p.topic));
                                    continue;
                                }
                            };
                            let kind = p.topic.rsplit('/').next().unwrap_or_default();
                            match schemas.get(kind) {
                                Some(s) => {
                                    for e in s.iter_errors(&v) {
                                        inv.lock().unwrap().push(format!("{}: {e}: {v}", p.topic));
                                    }
                                }
                                None => inv.lock().unwrap().push(format!("unexpected topic {}", p.topic)),
                            }
                            g.lock().unwrap().push((kind.to_string(), v));
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
            stop,
            thread: Some(thread),
        }
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

    fn count(&self, kind: &str) -> usize {
        self.got.lock().unwrap().iter().filter(|(k, _)| k == kind).count()
    }

    /// The chain rebuilt from everything received so far.
    fn check(&self, key: &PublicKey) -> (ChainCheck, ChainReport) {
        let mut c = ChainCheck::new();
        for (kind, v) in self.got.lock().unwrap().iter() {
            match kind.as_str() {
                "event" => c.event(v.clone()),
                "checkpoint" => c.checkpoint(v.clone()),
                _ => {}
            }
        }
        let r = c.report(key);
        (c, r)
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

fn device_key(data_dir: &Path) -> PublicKey {
    let text = std::fs::read_to_string(data_dir.join("keys/device.pub")).expect("device.pub");
    PublicKey::parse(text.lines().next().unwrap()).unwrap()
}

fn head(data_dir: &Path) -> i64 {
    db::open_read_only(data_dir)
        .ok()
        .and_then(|c| log::last_seq(&c).ok())
        .unwrap_or(0)
}

/// Alarm payloads of one alarm name, in log order.
fn alarms(data_dir: &Path, name: &str) -> Vec<Value> {
    let Ok(conn) = db::open_read_only(data_dir) else {
        return vec![];
    };
    log::read_raw_kind(&conn, record::Kind::Alarm)
        .unwrap()
        .into_iter()
        .map(|r| r.record().unwrap().payload_value())
        .filter(|p| p["alarm"] == name)
        .collect()
}

fn upstream_section(port: u16, tls: &Path, extra: &str) -> String {
    format!(
        "[upstream]\nurl = \"mqtts://127.0.0.1:{port}\"\ntopic_prefix = \"{PREFIX}\"\nca_file = \"{}\"\n\
         client_cert_file = \"{}\"\nclient_key_file = \"{}\"\nkeepalive = \"5s\"\nstatus_interval = \"2s\"\n{extra}\n",
        tls.join("ca.pem").display(),
        tls.join("device.pem").display(),
        tls.join("device.key").display()
    )
}

/// The box's own copy of its TLS files (so a test can break and fix them).
fn box_tls(scene: &Scene, pki: &Pki) -> PathBuf {
    let dir = scene.path().join("box-tls");
    std::fs::create_dir_all(&dir).unwrap();
    for f in ["ca.pem", "device.pem", "device.key"] {
        std::fs::copy(pki.file(f), dir.join(f)).unwrap();
    }
    dir
}

/// Waits until the platform holds every record up to the log's head, linked, and a verified
/// checkpoint covering at least `min_checkpoint`; returns the report.
fn wait_complete(
    platform: &Platform,
    data_dir: &Path,
    min_checkpoint: i64,
    timeout: Duration,
) -> ChainReport {
    let key = device_key(data_dir);
    let mut last = ChainReport::default();
    let mut h = 0;
    let found = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        wait_for("every record and a checkpoint at the platform", timeout, || {
            h = head(data_dir);
            if (platform.count("event") as i64) < h {
                return None;
            }
            let (_, r) = platform.check(&key);
            last = r.clone();
            (r.problems.is_empty()
                && r.verified_to >= h
                && r.checkpoints_ok.iter().any(|&s| s >= min_checkpoint))
            .then_some(r)
        })
    }));
    found.unwrap_or_else(|_| panic!("head {h}, platform: {last:#?}"))
}

/// First-arrival order is the seq order: nothing reordered.
fn assert_in_order(c: &ChainCheck) {
    let order = c.arrival_order();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "reordered: {order:?}");
}

#[test]
fn a_recording_through_a_broker_outage_reaches_the_platform_in_order_and_verifies() {
    let scene = Scene::new();
    let pki = Pki::make(&scene.path().join("pki"));
    let mut broker = Mosquitto::start(&scene.path().join("broker"), &pki);
    let platform = Platform::start(broker.port, &pki);
    let camera = RtspServer::start("h264");
    let tls = box_tls(&scene, &pki);
    let health = scene.path().join("health.json");
    let config = scene.config(&format!(
        "[[camera]]\nid = \"front\"\nurl = \"{}\"\nsegment = \"1s\"\n\n[evidence]\ncheckpoint_interval = \"1s\"\n\
         disk_check_interval = \"1s\"\n\n\
         [daemon]\nhealth_file = \"{}\"\n\n{}",
        camera.url(),
        health.display(),
        upstream_section(broker.port, &tls, "backlog_alarm = \"2s\"")
    ));
    let data = scene.data_dir();
    let mut daemon = Daemon::start(&config);
    wait_for_job_state(&health, "sync", "running", Duration::from_secs(20));
    wait_for("segments recorded", Duration::from_secs(30), || {
        (platform
            .of("event")
            .iter()
            .filter(|e| e["type"] == "segment")
            .count()
            >= 2)
            .then_some(())
    });
    let online = wait_for(
        "an online status with the disk forecast",
        Duration::from_secs(20),
        || {
            platform
                .of("status")
                .into_iter()
                .find(|s| s["state"] == "online" && s["disk"].is_object())
        },
    );
    assert_eq!(online["cameras"], json!(["front"]));
    assert_eq!(online["version"], env!("CARGO_PKG_VERSION"));
    assert!(
        online["disk"]["available_bytes"].as_i64().unwrap() > 0,
        "{online}"
    );

    // The outage: recording goes on, the job says failing, records wait in the log.
    broker.stop();
    let before = head(&data);
    let failing = wait_for_job_state(&health, "sync", "failing", Duration::from_secs(20));
    assert!(
        failing["cause"].as_str().unwrap().contains("127.0.0.1"),
        "{failing}"
    );
    wait_for(
        "a sync_backlog alarm while the broker is down",
        Duration::from_secs(20),
        || {
            alarms(&data, "sync_backlog")
                .iter()
                .any(|a| a["state"] == "raised")
                .then_some(())
        },
    );
    assert!(head(&data) > before + 2, "recording continued during the outage");
    let st = json_lines(&["sync", "status", "--json", "--config", config.to_str().unwrap()]).remove(0);
    assert_eq!(st["connected"], false, "{st}");
    assert!(st["backlog"]["records"].as_i64().unwrap() > 0, "{st}");
    assert!(st["last_error"].as_str().unwrap().contains("127.0.0.1"), "{st}");

    broker.restart();
    wait_for_job_state(&health, "sync", "running", Duration::from_secs(30));
    let outage_end = head(&data);
    wait_for(
        "sync_backlog cleared once drained",
        Duration::from_secs(30),
        || (alarms(&data, "sync_backlog").last()?["state"] == "cleared").then_some(()),
    );
    let report = wait_complete(&platform, &data, outage_end, Duration::from_secs(30));
    let up = alarms(&data, "upstream");
    assert_eq!(
        up.first().map(|a| a["state"].clone()),
        Some(json!("raised")),
        "{up:?}"
    );
    assert_eq!(
        up.last().map(|a| a["state"].clone()),
        Some(json!("cleared")),
        "{up:?}"
    );
    let (check, _) = platform.check(&device_key(&data));
    assert_in_order(&check);
    platform.assert_all_valid();
    let st = json_lines(&["sync", "status", "--json", "--config", config.to_str().unwrap()]).remove(0);
    assert_eq!(st["connected"], true, "{st}");
    let text = classproof(&["sync", "status", "--config", config.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains(&format!("connected to mqtts://127.0.0.1:{}", broker.port)),
        "{text}"
    );
    assert!(report.verified_to >= outage_end);

    // A clean stop leaves a retained offline.
    assert!(daemon.terminate(Duration::from_secs(10)).success());
    wait_for("a retained offline status", Duration::from_secs(10), || {
        (platform.of("status").last()?["state"] == "offline").then_some(())
    });
}

/// Appends `n` records straight into the log (a backlog from an earlier outage).
fn backlog(data_dir: &Path, n: usize) {
    let mut conn = db::open(data_dir).unwrap();
    let tx = db::write_tx(&mut conn).unwrap();
    for i in 0..n {
        let rec = Record::Gap(record::Gap {
            camera: "backlog".into(),
            start_us: i as i64,
            end_us: i as i64 + 1,
            cause: GapCause::Stall,
            detail: Some(format!("课时 record {i} with some body to make it realistic")),
        });
        log::append(&tx, Utc::now(), &rec).unwrap();
    }
    tx.commit().unwrap();
}

#[test]
fn kill_9_mid_drain_loses_nothing_and_duplicates_keep_their_id() {
    let scene = Scene::new();
    let pki = Pki::make(&scene.path().join("pki"));
    let broker = Mosquitto::start(&scene.path().join("broker"), &pki);
    let platform = Platform::start(broker.port, &pki);
    let tls = box_tls(&scene, &pki);
    let config = scene.config(&format!(
        "[evidence]\ncheckpoint_interval = \"1s\"\n\n{}",
        upstream_section(broker.port, &tls, "")
    ));
    let data = scene.data_dir();
    backlog(&data, 100_000);
    let cursor = || {
        db::open_read_only(&data)
            .ok()
            .and_then(|c| outbox::cursors(&c).ok())
            .map_or(0, |c| c.0)
    };
    let mut daemon = Daemon::start(&config);
    wait_for("the drain under way", Duration::from_secs(30), || {
        (cursor() >= 10_000).then_some(())
    });
    daemon.kill9();
    let at_kill = cursor();
    assert!(
        at_kill < head(&data),
        "killed mid-drain (cursor {at_kill} of {})",
        head(&data)
    );

    let mut daemon = Daemon::start(&config);
    let report = wait_complete(&platform, &data, 100_000, Duration::from_secs(90));
    // Any duplicate had the same id and the same content (ChainCheck reports any other).
    assert!(report.problems.is_empty(), "{report:#?}");
    eprintln!(
        "kill -9 at cursor {at_kill}; {} distinct, {} duplicates after the restart",
        report.events, report.duplicates
    );
    let (check, _) = platform.check(&device_key(&data));
    assert_in_order(&check);
    platform.assert_all_valid();
    assert!(daemon.terminate(Duration::from_secs(10)).success());
}

#[test]
fn a_wrong_ca_or_client_certificate_is_an_alarm_and_recovers_once_fixed() {
    let scene = Scene::new();
    let pki = Pki::make(&scene.path().join("pki"));
    let broker = Mosquitto::start(&scene.path().join("broker"), &pki);
    let platform = Platform::start(broker.port, &pki);
    let tls = box_tls(&scene, &pki);
    let health = scene.path().join("health.json");
    let config = scene.config(&format!(
        "[evidence]\ncheckpoint_interval = \"1s\"\n\n[daemon]\nhealth_file = \"{}\"\n\n{}",
        health.display(),
        upstream_section(broker.port, &tls, "")
    ));
    let data = scene.data_dir();
    backlog(&data, 50);

    // A CA that did not sign the broker's certificate.
    std::fs::copy(pki.file("wrong-ca.pem"), tls.join("ca.pem")).unwrap();
    let mut daemon = Daemon::start(&config);
    let raised = wait_for("an upstream alarm (wrong CA)", Duration::from_secs(20), || {
        alarms(&data, "upstream")
            .into_iter()
            .find(|a| a["state"] == "raised")
    });
    let reason = raised["reason"].as_str().unwrap();
    assert!(
        reason.contains("ca_file") && reason.contains(&tls.join("ca.pem").display().to_string()),
        "{raised}"
    );
    assert_eq!(raised["broker"], format!("mqtts://127.0.0.1:{}", broker.port));
    daemon.wait_log("ca_file", Duration::from_secs(5));
    wait_for_job_state(&health, "sync", "failing", Duration::from_secs(10));
    assert!(platform.of("event").is_empty());

    std::fs::copy(pki.file("ca.pem"), tls.join("ca.pem")).unwrap();
    wait_for("the upstream alarm cleared", Duration::from_secs(20), || {
        (alarms(&data, "upstream").last()?["state"] == "cleared").then_some(())
    });
    wait_complete(&platform, &data, 50, Duration::from_secs(30));
    assert!(daemon.terminate(Duration::from_secs(10)).success());

    // A client certificate the broker's CA did not sign.
    std::fs::copy(pki.file("rogue.pem"), tls.join("device.pem")).unwrap();
    std::fs::copy(pki.file("rogue.key"), tls.join("device.key")).unwrap();
    backlog(&data, 20);
    let mut daemon = Daemon::start(&config);
    let raised = wait_for(
        "an upstream alarm (wrong client certificate)",
        Duration::from_secs(20),
        || {
            let a = alarms(&data, "upstream");
            (a.len() == 3).then(|| a[2].clone())
        },
    );
    assert_eq!(raised["state"], "raised");
    assert!(
        raised["reason"].as_str().unwrap().contains("client_cert_file"),
        "{raised}"
    );
    std::fs::copy(pki.file("device.pem"), tls.join("device.pem")).unwrap();
    std::fs::copy(pki.file("device.key"), tls.join("device.key")).unwrap();
    wait_for(
        "the upstream alarm cleared again",
        Duration::from_secs(20),
        || (alarms(&data, "upstream").last()?["state"] == "cleared").then_some(()),
    );
    let h = head(&data);
    let report = wait_complete(&platform, &data, h, Duration::from_secs(30));
    assert!(report.problems.is_empty(), "{report:#?}");
    platform.assert_all_valid();
    assert!(daemon.terminate(Duration::from_secs(10)).success());
}

#[test]
fn without_upstream_the_box_runs_offline_and_plaintext_needs_its_key() {
    let scene = Scene::new();
    let config = scene.config("");
    let out = classproof(&["check-config", "--config", config.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("upstream    none: the box runs offline (R7)"),
        "{text}"
    );
    let config = scene.config("[upstream]\nurl = \"mqtt://127.0.0.1:1883\"\n");
    let out = classproof(&["check-config", "--config", config.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("upstream.url") && err.contains("insecure_plaintext"),
        "{err}"
    );
}

#[test]
fn an_expired_broker_certificate_is_an_alarm_and_nothing_is_lost() {
    let scene = Scene::new();
    let pki = Pki::make(&scene.path().join("pki"));
    pki.make_expired_server();
    let mut broker = Mosquitto::start(&scene.path().join("broker"), &pki);
    let platform = Platform::start(broker.port, &pki);
    // The broker's certificate expires (its session with the platform persists).
    broker.stop();
    broker.use_cert(&pki, "expired.pem");
    broker.restart();
    let tls = box_tls(&scene, &pki);
    let config = scene.config(&format!(
        "[evidence]\ncheckpoint_interval = \"1s\"\n\n{}",
        upstream_section(broker.port, &tls, "")
    ));
    let data = scene.data_dir();
    backlog(&data, 30);
    let mut daemon = Daemon::start(&config);
    let raised = wait_for(
        "an upstream alarm (expired certificate)",
        Duration::from_secs(20),
        || {
            alarms(&data, "upstream")
                .into_iter()
                .find(|a| a["state"] == "raised")
        },
    );
    let reason = raised["reason"].as_str().unwrap();
    assert!(
        reason.contains("certificate has expired") && reason.contains("127.0.0.1"),
        "{raised}"
    );

    // Renewed.
    broker.stop();
    broker.use_cert(&pki, "server.pem");
    broker.restart();
    wait_for("the upstream alarm cleared", Duration::from_secs(30), || {
        (alarms(&data, "upstream").last()?["state"] == "cleared").then_some(())
    });
    let h = head(&data);
    let report = wait_complete(&platform, &data, h, Duration::from_secs(30));
    assert!(report.problems.is_empty(), "{report:#?}");
    platform.assert_all_valid();
    assert!(daemon.terminate(Duration::from_secs(10)).success());
}
