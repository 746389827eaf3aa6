//! The sync job (`sync`, under the supervisor): publishes every record of the log and every
//! signed checkpoint to the broker, in order, QoS 1, and advances the durable cursor only on
//! PUBACK (R8: what the platform did not receive does not count).
//!
//! - One connection at a time, a fresh rumqttc client and event loop for each: rumqttc's own
//!   queue of pending publishes is not trusted across reconnects (it drops them when the
//!   broker has no session; TOOLCHAIN.md). After every (re)connect and every start, the job
//!   re-publishes from the cursor; duplicates are possible and carry the same `id`.
//! - At most [`WINDOW`] publishes await their PUBACK. The cursor is the last seq with every
//!   PUBACK up to it in; it is written at most every [`CURSOR_EVERY`] (and at stop), so a
//!   crash re-sends at most what arrived since (duplicates, never losses).
//! - A connection that fails (refused, TLS, a wrong CA, an expired or refused certificate) is
//!   an `upstream` alarm record (raised once, cleared on the next connection), a log line
//!   naming the broker or the file, `failing` in the health registry, and a retry with
//!   capped back-off (1 s doubling up to `keepalive`). Nothing is lost meanwhile: the log is
//!   the queue.
//! - The oldest unsent record older than `backlog_alarm` raises `sync_backlog`; cleared when
//!   the backlog is drained.
//! - New records wake it through `Changes`; a slow tick catches records no one announced.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use chrono::Utc;
use rumqttc::{AsyncClient, ConnectionError, Event, LastWill, MqttOptions, Outgoing, Packet, QoS, Transport};
use rusqlite::Connection;
use serde_json::Value;
use tracing::{debug, error, info, warn};

use super::command::{self, Decision, RejectFlood, Verifier};
use super::config::UpstreamConfig;
use super::message::{self, Online, Topics};
use super::outbox::{self, ConnState};
use super::source;
use crate::daemon::jobs::{JobContext, LogThrottle};
use crate::daemon::supervisor::{JobError, JobHandle};
use crate::db;
use crate::evidence::record::{self, AlarmKind, Record};

/// Publishes awaiting their PUBACK at most.
pub const WINDOW: usize = 100;
/// How often the job looks for records that no `Changes` announced.
const LOOK_EVERY: Duration = Duration::from_secs(1);
/// Records read from the database at a time.
const READ_BATCH: i64 = 1000;
/// The cursor is written at most this often while acknowledgements come in.
pub const CURSOR_EVERY: Duration = Duration::from_millis(200);
/// The job looks at the stop flag, the status interval and the backlog this often.
const TICK: Duration = Duration::from_millis(250);
/// First retry after a failed connection; doubled up to `keepalive`.
const FIRST_RETRY: Duration = Duration::from_secs(1);
/// Largest message accepted or sent.
const MAX_PACKET: usize = 4 << 20;

/// The job for `Supervisor::spawn("sync", …)`; `None` without `[upstream]` (offline, R7).
pub fn job(ctx: JobContext) -> Option<impl FnMut(&JobHandle) -> Result<(), JobError> + Send + 'static> {
    let upstream = ctx.config.upstream.clone()?;
    Some(move |handle: &JobHandle| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let mut sync = Sync::open(&ctx, upstream.clone())?;
        let wake = Arc::new(tokio::sync::Notify::new());
        let done = Arc::new(AtomicBool::new(false));
        let waiter = spawn_waker(&ctx, wake.clone(), done.clone())?;
        let outcome = rt.block_on(sync.run(handle, &wake));
        done.store(true, Ordering::SeqCst);
        ctx.changes.notify();
        let _ = waiter.join();
        outcome
    })
}

/// Bridges the store's `Changes` (a condvar) to the job's runtime.
fn spawn_waker(
    ctx: &JobContext,
    wake: Arc<tokio::sync::Notify>,
    done: Arc<AtomicBool>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    let changes = ctx.changes.clone();
    let stop = ctx.stop.clone();
    std::thread::Builder::new()
        .name("sync-wake".into())
        .spawn(move || {
            let mut seen = changes.version();
            while !done.load(Ordering::SeqCst) && !stop.load(Ordering::SeqCst) {
                let now = changes.wait(seen, Duration::from_millis(500));
                if now != seen {
                    seen = now;
                    wake.notify_one();
                }
            }
        })
}

/// Why a connection ended.
struct Failure {
    reason: String,
    /// It had been connected (the back-off starts again from the first retry).
    was_connected: bool,
    /// The box's own database failed, not the connection: a job failure for the
    /// supervisor (logged, a `job_failed` alarm, restarted), not an `upstream` alarm.
    local: bool,
}

/// Records and checkpoints read ahead of the window, so that the database is read in
/// batches of [`READ_BATCH`] while publishes go out one per PUBACK.
struct Feed {
    records: VecDeque<source::Entry>,
    checkpoints: VecDeque<source::CheckpointRow>,
    /// Last record and checkpoint read from the database.
    read_seq: i64,
    read_cp: i64,
    /// Last record queued for publishing.
    sent_seq: i64,
    /// The last read found nothing more (until the next poke).
    exhausted: bool,
}

impl Feed {
    fn new(seq: i64, cp: i64) -> Feed {
        Feed {
            records: VecDeque::new(),
            checkpoints: VecDeque::new(),
            read_seq: seq,
            read_cp: cp,
            sent_seq: seq,
            exhausted: false,
        }
    }

    /// New records or checkpoints may have been committed.
    fn poke(&mut self) {
        self.exhausted = false;
    }

    fn caught_up(&self) -> bool {
        self.exhausted && self.records.is_empty()
    }

    fn read(&mut self, conn: &Connection) -> Result<(), JobError> {
        let got = source::records_after(conn, self.read_seq, READ_BATCH)?;
        self.exhausted = (got.len() as i64) < READ_BATCH;
        if let Some(last) = got.last() {
            self.read_seq = last.seq;
        }
        self.records.extend(got);
        let cps = source::checkpoints_after(conn, self.read_cp, 1000)?;
        if let Some(last) = cps.last() {
            self.read_cp = last.id;
        }
        self.checkpoints.extend(cps);
        Ok(())
    }
}

/// One publish awaiting its PUBACK.
#[derive(Debug)]
struct Pending {
    item: Item,
    pkid: Option<u16>,
    acked: bool,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Item {
    Event(i64),
    Checkpoint(i64),
    Status,
    Ack,
}

struct Sync {
    cfg: UpstreamConfig,
    device: String,
    tz: chrono_tz::Tz,
    cameras: Vec<String>,
    topics: Topics,
    conn: Connection,
    state: ConnState,
    /// Acknowledged (in memory; written to the database every `CURSOR_EVERY`).
    acked_seq: i64,
    acked_cp: i64,
    /// Written to the database.
    stored: (i64, i64),
    stored_at: Instant,
    errors: LogThrottle,
    /// The platform's key for downlink commands; `None`: commands are not subscribed to.
    platform_key: Option<[u8; 32]>,
    flood: RejectFlood,
    rejections: LogThrottle,
    /// Acks of commands that ran, from their threads (kept across connections).
    acks_tx: tokio::sync::mpsc::UnboundedSender<Value>,
    acks_rx: tokio::sync::mpsc::UnboundedReceiver<Value>,
    run_ctx: super::run::RunContext,
}

impl Sync {
    fn open(ctx: &JobContext, cfg: UpstreamConfig) -> Result<Sync, JobError> {
        let conn = db::open(&ctx.config.device.data_dir)?;
        let (seq, cp) = outbox::cursors(&conn)?;
        let mut state = outbox::conn_state(&conn)?;
        state.broker = cfg.broker.to_string();
        let platform_key = match &cfg.platform_key_file {
            None => {
                info!("sync: no upstream.platform_key_file: downlink commands are off");
                None
            }
            Some(f) => match super::config::read_platform_key(f) {
                Ok(k) => Some(k),
                Err(why) => {
                    error!(
                        "sync: upstream.platform_key_file {}: {why}; downlink commands are off until it is fixed and the daemon restarted",
                        f.display()
                    );
                    None
                }
            },
        };
        let (acks_tx, acks_rx) = tokio::sync::mpsc::unbounded_channel();
        Ok(Sync {
            platform_key,
            flood: RejectFlood::new(),
            rejections: LogThrottle::default(),
            acks_tx,
            acks_rx,
            run_ctx: super::run::RunContext {
                config: ctx.config.clone(),
                stop: ctx.stop.clone(),
                live: super::live::LivePushes::default(),
                changes: ctx.changes.clone(),
            },
            topics: Topics::new(&cfg.topic_prefix, &ctx.config.device.id),
            device: ctx.config.device.id.clone(),
            tz: ctx.config.device.timezone,
            cameras: ctx
                .config
                .cameras
                .iter()
                .filter(|c| c.record)
                .map(|c| c.id.clone())
                .collect(),
            cfg,
            conn,
            state,
            acked_seq: seq,
            acked_cp: cp,
            stored: (seq, cp),
            stored_at: Instant::now(),
            errors: LogThrottle::default(),
        })
    }

    async fn run(&mut self, handle: &JobHandle, wake: &tokio::sync::Notify) -> Result<(), JobError> {
        info!(broker = %self.cfg.broker, cursor = self.acked_seq, "sync: publishing the evidence log upstream");
        let mut retry = FIRST_RETRY;
        while !handle.stopping() {
            let failure = match self.session(handle, wake).await {
                Ok(()) => break,
                Err(f) if f.local => {
                    let _ = self.store_cursor(true);
                    return Err(f.reason.into());
                }
                Err(f) => f,
            };
            if failure.was_connected {
                retry = FIRST_RETRY;
            }
            self.failed(handle, &failure.reason, retry)?;
            let until = Instant::now() + retry;
            while !handle.stopping() && Instant::now() < until {
                handle.beat();
                self.check_backlog()?;
                tokio::time::sleep(TICK.min(until.saturating_duration_since(Instant::now()))).await;
            }
            retry = (retry * 2).min(self.cfg.keepalive.max(FIRST_RETRY));
        }
        self.store_cursor(true)?;
        info!(cursor = self.acked_seq, "sync: stopped");
        Ok(())
    }

    /// A connection attempt that failed, or a connection that broke.
    fn failed(&mut self, handle: &JobHandle, reason: &str, retry: Duration) -> Result<(), JobError> {
        handle.failing(reason);
        let now = Utc::now().timestamp_micros();
        let changed = self.state.connected || self.state.since_us.is_none();
        self.state.connected = false;
        if changed {
            self.state.since_us = Some(now);
        }
        self.state.last_error = Some(reason.to_string());
        self.state.last_error_us = Some(now);
        if !self.state.upstream_alarm {
            let alarm = AlarmKind::Upstream {
                broker: self.cfg.broker.to_string(),
                reason: Some(reason.to_string()),
            };
            source::append_alarm(&mut self.conn, alarm, true)?;
            self.state.upstream_alarm = true;
        }
        outbox::set_conn_state(&self.conn, &self.state)?;
        if let Some(repeats) = self.errors.allow(reason) {
            error!(
                repeats,
                broker = %self.cfg.broker,
                retry_in = %humantime::format_duration(retry),
                backlog = self.backlog().unwrap_or(0),
                "sync: {reason}; nothing is lost, records wait in the log"
            );
        }
        Ok(())
    }

    fn connected(&mut self, handle: &JobHandle) -> Result<(), JobError> {
        handle.running();
        self.state.connected = true;
        self.state.since_us = Some(Utc::now().timestamp_micros());
        if self.state.upstream_alarm {
            let alarm = AlarmKind::Upstream {
                broker: self.cfg.broker.to_string(),
                reason: None,
            };
            source::append_alarm(&mut self.conn, alarm, false)?;
            self.state.upstream_alarm = false;
        }
        outbox::set_conn_state(&self.conn, &self.state)?;
        self.errors.clear();
        info!(broker = %self.cfg.broker, cursor = self.acked_seq, backlog = self.backlog()?, "sync: connected; publishing from the cursor");
        Ok(())
    }

    fn options(&self, connected_us: i64) -> Result<MqttOptions, String> {
        let b = &self.cfg.broker;
        let mut o = MqttOptions::new(self.device.clone(), b.host.clone(), b.port);
        o.set_keep_alive(self.cfg.keepalive);
        // A persistent session: the broker keeps the command subscription and queues the
        // platform's QoS 1 commands while the box is away (a replayed one is refused by id).
        // Publishing never relies on it: each connection is a fresh client that re-publishes
        // from the cursor.
        o.set_clean_session(false);
        o.set_inflight(WINDOW as u16);
        o.set_max_packet_size(MAX_PACKET, MAX_PACKET);
        let will = message::status_offline(&self.device, self.tz, connected_us, env!("CARGO_PKG_VERSION"));
        o.set_last_will(LastWill::new(
            self.topics.status.clone(),
            will.to_string(),
            QoS::AtLeastOnce,
            true,
        ));
        if let Some(user) = &self.cfg.username {
            let password = match &self.cfg.password_file {
                Some(f) => std::fs::read_to_string(f)
                    .map_err(|e| format!("upstream.password_file {}: cannot read: {e}", f.display()))?
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .to_string(),
                None => String::new(),
            };
            o.set_credentials(user.clone(), password);
        }
        if b.tls {
            let tls = super::tls::client_config(&self.cfg).map_err(|e| e.to_string())?;
            o.set_transport(Transport::tls_with_config(rumqttc::TlsConfiguration::Rustls(tls)));
        }
        Ok(o)
    }

    /// One connection: connect, publish from the cursor, until it breaks (`Err`) or the
    /// daemon stops (`Ok`).
    async fn session(&mut self, handle: &JobHandle, wake: &tokio::sync::Notify) -> Result<(), Failure> {
        let fail = |reason: String| Failure {
            reason,
            was_connected: false,
            local: false,
        };
        let connected_us = Utc::now().timestamp_micros();
        let opts = self.options(connected_us).map_err(fail)?;
        let (client, mut events) = AsyncClient::new(opts, 2 * WINDOW + 8);
        let mut net = events.network_options();
        net.set_tcp_nodelay(true);
        events.set_network_options(net);
        let deadline = Instant::now() + self.cfg.keepalive.max(Duration::from_secs(10));
        loop {
            let polled = tokio::time::timeout(TICK, events.poll()).await;
            match polled {
                Ok(Ok(Event::Incoming(Packet::ConnAck(_)))) => break,
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return Err(fail(self.explain(&e))),
                Err(_) => {}
            }
            if handle.stopping() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(fail(format!("no CONNACK from {} in time", self.cfg.broker)));
            }
            handle.beat();
        }
        let db = |e: &dyn std::fmt::Display| Failure {
            reason: format!("sync: database: {e}"),
            was_connected: true,
            local: true,
        };
        self.connected(handle).map_err(|e| db(&e))?;
        if self.platform_key.is_some() {
            client
                .try_subscribe(&self.topics.cmd, QoS::AtLeastOnce)
                .map_err(|e| Failure {
                    reason: format!(
                        "cannot subscribe to {} on {}: {e}",
                        self.topics.cmd, self.cfg.broker
                    ),
                    was_connected: true,
                    local: false,
                })?;
        }

        // Everything not acknowledged is sent again, from the cursor.
        let mut pending: VecDeque<Pending> = VecDeque::new();
        let mut feed = Feed::new(self.acked_seq, self.acked_cp);
        let mut last_look = Instant::now();
        let mut status_due = Instant::now();
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            if Instant::now() >= status_due {
                let status = self.status().map_err(|e| db(&e))?;
                self.publish(
                    &client,
                    &mut pending,
                    Item::Status,
                    &self.topics.status,
                    true,
                    status.to_string(),
                )?;
                status_due = Instant::now() + self.cfg.status_interval;
            }
            // One publish per PUBACK keeps data flowing both ways: a sender that waits to
            // top up a batch waits on the broker's delayed ACKs (Nagle). Reads from the
            // database are batched in `Feed`.
            if pending.len() < WINDOW {
                self.fill(&client, &mut pending, &mut feed)?;
                if feed.caught_up() && pending.is_empty() {
                    // Caught up: the cursor is stored at once.
                    self.store_cursor(true).map_err(|e| db(&e))?;
                }
            }
            tokio::select! {
                polled = events.poll() => match polled {
                    Ok(Event::Outgoing(Outgoing::Publish(pkid))) => {
                        if let Some(p) = pending.iter_mut().find(|p| p.pkid.is_none()) {
                            p.pkid = Some(pkid);
                        }
                    }
                    Ok(Event::Incoming(Packet::PubAck(ack))) => {
                        if let Some(p) = pending.iter_mut().find(|p| p.pkid == Some(ack.pkid) && !p.acked) {
                            p.acked = true;
                        }
                        while pending.front().is_some_and(|p| p.acked) {
                            if let Some(p) = pending.pop_front() {
                                match p.item {
                                    Item::Event(seq) => self.acked_seq = seq,
                                    Item::Checkpoint(id) => self.acked_cp = id,
                                                    Item::Status | Item::Ack => {}
                                }
                            }
                        }
                        self.store_cursor(false).map_err(|e| db(&e))?;
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) if p.topic == self.topics.cmd => {
                        if let Some(ack) = self.on_command(&p.payload).map_err(|e| db(&e))? {
                            let text = ack.to_string();
                            self.publish(&client, &mut pending, Item::Ack, &self.topics.ack, false, text)?;
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        let _ = self.store_cursor(true);
                        return Err(Failure { reason: self.explain(&e), was_connected: true, local: false });
                    }
                },
                _ = wake.notified() => feed.poke(),
                Some(ack) = self.acks_rx.recv() => {
                    let text = ack.to_string();
                    self.publish(&client, &mut pending, Item::Ack, &self.topics.ack, false, text)?;
                }
                _ = tick.tick() => {
                    handle.beat();
                    self.store_cursor(false).map_err(|e| db(&e))?;
                    // Records no one announced (other jobs' alarms, verdicts) and the backlog
                    // alarm: once a second; the store's records come through `Changes`.
                    if last_look.elapsed() >= LOOK_EVERY {
                        last_look = Instant::now();
                        feed.poke();
                        self.check_backlog().map_err(|e| db(&e))?;
                        self.flood_tick().map_err(|e| db(&e))?;
                    }
                    if handle.stopping() {
                        self.goodbye(&client, &mut events, connected_us).await;
                        return Ok(());
                    }
                }
            }
        }
    }

    /// Queues records and checkpoints after what is already queued, up to the window. A
    /// checkpoint goes out only after the record it signs.
    fn fill(
        &self,
        client: &AsyncClient,
        pending: &mut VecDeque<Pending>,
        feed: &mut Feed,
    ) -> Result<(), Failure> {
        while pending.len() < WINDOW {
            if let Some(c) = feed.checkpoints.front()
                && c.seq <= feed.sent_seq
            {
                let m = message::checkpoint(&self.device, self.tz, c).to_string();
                self.publish(
                    client,
                    pending,
                    Item::Checkpoint(c.id),
                    &self.topics.checkpoint,
                    false,
                    m,
                )?;
                feed.checkpoints.pop_front();
                continue;
            }
            let Some(r) = feed.records.pop_front() else {
                if feed.exhausted {
                    break;
                }
                feed.read(&self.conn).map_err(|e| Failure {
                    reason: format!("sync: database: {e}"),
                    was_connected: true,
                    local: true,
                })?;
                continue;
            };
            let m = message::event_text(&self.device, self.tz, &r);
            self.publish(client, pending, Item::Event(r.seq), &self.topics.event, false, m)?;
            feed.sent_seq = r.seq;
        }
        Ok(())
    }

    fn publish(
        &self,
        client: &AsyncClient,
        pending: &mut VecDeque<Pending>,
        item: Item,
        topic: &str,
        retain: bool,
        msg: String,
    ) -> Result<(), Failure> {
        client
            .try_publish(topic, QoS::AtLeastOnce, retain, msg)
            .map_err(|e| Failure {
                reason: format!("cannot queue a message for {}: {e}", self.cfg.broker),
                was_connected: true,
                local: false,
            })?;
        pending.push_back(Pending {
            item,
            pkid: None,
            acked: false,
        });
        Ok(())
    }

    /// At stop: the cursor, a retained `offline`, a clean disconnect (briefly).
    async fn goodbye(&mut self, client: &AsyncClient, events: &mut rumqttc::EventLoop, connected_us: i64) {
        let _ = self.store_cursor(true);
        let offline = message::status_offline(&self.device, self.tz, connected_us, env!("CARGO_PKG_VERSION"));
        let _ = client.try_publish(&self.topics.status, QoS::AtLeastOnce, true, offline.to_string());
        let _ = client.try_disconnect();
        let until = Instant::now() + Duration::from_millis(500);
        while Instant::now() < until {
            match tokio::time::timeout(Duration::from_millis(100), events.poll()).await {
                Ok(Ok(Event::Outgoing(Outgoing::Disconnect))) | Ok(Err(_)) => break,
                _ => {}
            }
        }
        if let Ok(mut s) = outbox::conn_state(&self.conn) {
            s.connected = false;
            s.since_us = Some(Utc::now().timestamp_micros());
            let _ = outbox::set_conn_state(&self.conn, &s);
        }
    }

    /// Writes the cursors when they moved and `now` or [`CURSOR_EVERY`] has passed.
    fn store_cursor(&mut self, now: bool) -> rusqlite::Result<()> {
        let cur = (self.acked_seq, self.acked_cp);
        if cur == self.stored || (!now && self.stored_at.elapsed() < CURSOR_EVERY) {
            return Ok(());
        }
        outbox::advance(&mut self.conn, cur.0, cur.1)?;
        debug!(cursor = cur.0, checkpoint_cursor = cur.1, "sync: cursor");
        self.stored = cur;
        self.stored_at = Instant::now();
        Ok(())
    }

    fn backlog(&self) -> Result<i64, JobError> {
        Ok((source::last_seq(&self.conn)? - self.acked_seq).max(0))
    }

    /// `sync_backlog`: raised when the oldest unsent record is older than `backlog_alarm`,
    /// cleared once the backlog is drained.
    fn check_backlog(&mut self) -> Result<(), JobError> {
        let head = source::last_seq(&self.conn)?;
        let oldest = if head > self.acked_seq {
            source::time_of(&self.conn, self.acked_seq + 1)?
        } else {
            None
        };
        let now = Utc::now().timestamp_micros();
        let limit = self.cfg.backlog_alarm.as_micros().min(i64::MAX as u128) as i64;
        let raise = oldest.is_some_and(|t| now.saturating_sub(t) > limit);
        let records = head - self.acked_seq;
        if raise && !self.state.backlog_alarm {
            warn!(records, oldest_age = %humantime::format_duration(Duration::from_micros(oldest.map_or(0, |t| (now - t).max(0) as u64) / 1_000_000 * 1_000_000)),
                "sync: the oldest unsent record is older than upstream.backlog_alarm");
            let alarm = AlarmKind::SyncBacklog {
                records,
                oldest_us: oldest,
                broker: Some(self.cfg.broker.to_string()),
            };
            source::append_alarm(&mut self.conn, alarm, true)?;
            self.state.backlog_alarm = true;
            outbox::set_conn_state(&self.conn, &self.state)?;
        } else if oldest.is_none() && self.state.backlog_alarm {
            info!("sync: backlog drained");
            let alarm = AlarmKind::SyncBacklog {
                records: 0,
                oldest_us: None,
                broker: None,
            };
            source::append_alarm(&mut self.conn, alarm, false)?;
            self.state.backlog_alarm = false;
            outbox::set_conn_state(&self.conn, &self.state)?;
        }
        Ok(())
    }

    fn status(&self) -> Result<Value, JobError> {
        let head = source::last_seq(&self.conn)?;
        let backlog = (head - self.acked_seq).max(0);
        let oldest = if backlog > 0 {
            source::time_of(&self.conn, self.acked_seq + 1)?
        } else {
            None
        };
        let disk = db::meta_get(&self.conn, crate::daemon::evidence::DISK_STATUS)?
            .and_then(|t| serde_json::from_str::<Value>(&t).ok());
        Ok(message::status_online(
            &self.device,
            self.tz,
            Utc::now().timestamp_micros(),
            &Online {
                version: env!("CARGO_PKG_VERSION").into(),
                cameras: self.cameras.clone(),
                seq: head,
                backlog_records: backlog,
                backlog_oldest_us: oldest,
                disk,
            },
        ))
    }

    /// One message on the command topic: decided (pure), recorded, and either acked at once
    /// (rejected) or run on its own thread (accepted; its ack comes back through `acks_rx`).
    fn on_command(&mut self, raw: &[u8]) -> Result<Option<Value>, JobError> {
        let Some(key) = self.platform_key else {
            return Ok(None);
        };
        let now = Utc::now().timestamp_micros();
        let lookup_error = std::cell::RefCell::new(None);
        let decision = {
            let conn = &self.conn;
            let seen = |id: &str| match source::command_seen(conn, id, now) {
                Ok(b) => b,
                Err(e) => {
                    *lookup_error.borrow_mut() = Some(e);
                    true
                }
            };
            let v = Verifier {
                platform_key: &key,
                device: &self.device,
            };
            command::decide(raw, &v, now, &seen)
        };
        if let Some(e) = lookup_error.into_inner() {
            return Err(e.into());
        }
        match decision {
            Decision::Rejected(r) => {
                let (own, summary) = self.flood.admit(now, r.reason);
                if let Some(s) = summary {
                    self.append_summary(s)?;
                }
                if own {
                    let rec = Record::CommandRejected(record::CommandRejected {
                        command_id: r.command_id.clone(),
                        reason: r.reason,
                        detail: r.detail.clone(),
                        message_sha256: r.message_sha256.clone(),
                    });
                    source::append(&mut self.conn, &rec)?;
                }
                if let Some(repeats) = self.rejections.allow(r.reason.as_str()) {
                    warn!(repeats, command = ?r.command_id, reason = r.reason.as_str(), "sync: command rejected: {}", r.detail);
                }
                Ok(Some(command::ack_rejected(&self.device, self.tz, now, &r)))
            }
            Decision::Accepted(a) => {
                let rec = Record::Command(record::CommandAccepted {
                    command_id: a.command.id.clone(),
                    command_type: a.kind.as_str().to_string(),
                    issued_us: a.issued_us,
                    expires_us: a.expires_us,
                    payload_sha256: a.payload_sha256.clone(),
                });
                let seq = source::accept_command(&mut self.conn, &rec, &a.command.id, a.expires_us, now)?;
                info!(command = %a.command.id, kind = a.kind.as_str(), seq, "sync: command accepted");
                let ctx = self.run_ctx.clone();
                let tx = self.acks_tx.clone();
                let (device, tz) = (self.device.clone(), self.tz);
                let id = a.command.id.clone();
                let spawned = std::thread::Builder::new()
                    .name(format!("cmd-{}", a.kind.as_str()))
                    .spawn(move || {
                        let outcome = super::run::run(&ctx, &a);
                        match &outcome {
                            Ok(_) => info!(command = %a.command.id, "sync: command done"),
                            Err(e) => warn!(command = %a.command.id, "sync: command failed: {e}"),
                        }
                        let ack = command::ack_done(
                            &device,
                            tz,
                            Utc::now().timestamp_micros(),
                            &a.command.id,
                            &outcome,
                        );
                        let _ = tx.send(ack);
                    });
                if let Err(e) = spawned {
                    return Ok(Some(command::ack_done(
                        &self.device,
                        self.tz,
                        now,
                        &id,
                        &Err(format!("cannot start a thread for it: {e}")),
                    )));
                }
                Ok(None)
            }
        }
    }

    fn append_summary(&mut self, s: command::FloodSummary) -> Result<(), JobError> {
        warn!(
            rejected = s.rejected,
            "sync: more commands rejected in a minute than are recorded one by one; counted in a summary"
        );
        let rec = Record::CommandRejectedSummary(record::CommandRejectedSummary {
            from_us: s.from_us,
            to_us: s.to_us,
            rejected: s.rejected,
            by_reason: s.by_reason,
        });
        source::append(&mut self.conn, &rec)?;
        Ok(())
    }

    /// The summary of a flooded minute, once it is over.
    fn flood_tick(&mut self) -> Result<(), JobError> {
        if let Some(s) = self.flood.tick(Utc::now().timestamp_micros()) {
            self.append_summary(s)?;
        }
        Ok(())
    }

    /// A connection error as an operator reads it: the broker, and the file to look at.
    fn explain(&self, e: &ConnectionError) -> String {
        let b = &self.cfg.broker;
        let text = e.to_string();
        let ca = self
            .cfg
            .ca_file
            .as_ref()
            .map(|f| f.display().to_string())
            .unwrap_or_default();
        let cert = self
            .cfg
            .client_cert_file
            .as_ref()
            .map(|f| f.display().to_string());
        let lower = text.to_lowercase();
        match e {
            ConnectionError::ConnectionRefused(code) => format!(
                "{b} refused the connection ({code:?}){}",
                if self.cfg.username.is_some() {
                    "; check upstream.username and password_file"
                } else {
                    ""
                }
            ),
            _ if lower.contains("invalid peer certificate") && lower.contains("expired") => format!(
                "TLS with {b}: the broker's certificate has expired or is not valid yet ({text}); the platform must renew it (or the box's clock is wrong)"
            ),
            _ if lower.contains("unknownissuer") || lower.contains("invalid peer certificate") => format!(
                "TLS with {b}: the broker's certificate is not accepted ({text}); is upstream.ca_file {ca} the CA that signed it, and is it valid now?"
            ),
            _ if lower.contains("alert") || lower.contains("certificate") => format!(
                "TLS with {b}: the broker refused this device's certificate ({text}); check upstream.client_cert_file {} (signed by the broker's client CA, not expired)",
                cert.unwrap_or_else(|| "(none set)".into())
            ),
            _ if b.tls && (lower.contains("reset") || lower.contains("eof") || lower.contains("closed")) => {
                format!(
                    "{b} closed the connection during the handshake ({text}); if it requires client certificates, check upstream.client_cert_file {}",
                    cert.unwrap_or_else(|| "(none set)".into())
                )
            }
            _ => format!("cannot connect to {b}: {text}"),
        }
    }
}
