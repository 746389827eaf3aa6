//! `/metrics`: the Prometheus text exposition, through `prometheus-client` (issue 12). Every
//! value is read afresh for each scrape from the [`Snapshot`] (the database and the health
//! registry): the metrics keep no state of their own, so a restart of the daemon does not
//! reset what is counted in the database (segments, bytes, gap seconds, records).

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::snapshot::Snapshot;
use crate::daemon::health::JobState;

type Labels = Vec<(&'static str, String)>;
type FGauge = Gauge<f64, AtomicU64>;
type FCounter = Counter<f64, AtomicU64>;

/// More metrics registered by rooms that keep live counters of their own (the per-camera
/// frame counters and the inference histogram of attendance, `classproof_frames_analysed_total`,
/// `classproof_frames_dropped_total`, `classproof_inference_seconds`): called on each scrape
/// with the registry (already prefixed `classproof_`). The lead wires them in `daemon::run`.
pub type ExtraMetrics = Arc<dyn Fn(&mut Registry) + Send + Sync>;

fn label(k: &'static str, v: &str) -> Labels {
    vec![(k, v.to_string())]
}

/// Renders the exposition text.
pub fn render(s: &Snapshot, extra: Option<&ExtraMetrics>) -> Result<String, std::fmt::Error> {
    let mut reg = Registry::with_prefix("classproof");

    let camera_up = Family::<Labels, Gauge>::default();
    let segments = Family::<Labels, Counter>::default();
    let bytes = Family::<Labels, Counter>::default();
    let gap_seconds = Family::<Labels, FCounter>::default();
    let gaps_open = Family::<Labels, Gauge>::default();
    for c in &s.cameras {
        let l = label("camera", &c.id);
        camera_up.get_or_create(&l).set(i64::from(c.state == "recording"));
        segments.get_or_create(&l).inc_by(c.segments);
        bytes.get_or_create(&l).inc_by(c.recorded_bytes);
        gaps_open.get_or_create(&l).set(c.gaps_open as i64);
        for (cause, secs) in &c.gap_seconds {
            let l = vec![("camera", c.id.clone()), ("cause", cause.clone())];
            gap_seconds.get_or_create(&l).inc_by(*secs);
        }
    }
    reg.register("camera_up", "1 while the camera records (no open gap)", camera_up);
    reg.register("segments", "Finished segments of the camera", segments);
    reg.register("recorded_bytes", "Bytes of the camera's finished segments", bytes);
    reg.register(
        "gap_seconds",
        "Seconds of the camera's closed gaps, by cause",
        gap_seconds,
    );
    reg.register("gaps_open", "Open gaps of the camera (0 or 1)", gaps_open);

    // Today's class hours by verdict (as `classproof report` judges them now).
    let hours = Family::<Labels, Gauge>::default();
    for (verdict, n) in s.class_hours_by_verdict() {
        hours.get_or_create(&label("verdict", verdict)).set(n as i64);
    }
    reg.register(
        "class_hours_total",
        "Today's class hours by verdict (as classproof report judges them now)",
        hours,
    );

    let records = Family::<Labels, Counter>::default();
    for (kind, n) in &s.log.records_by_kind {
        records.get_or_create(&label("kind", kind)).inc_by(*n);
    }
    reg.register("log_records", "Records in the evidence log, by kind", records);
    let checkins = Counter::<u64>::default();
    checkins.inc_by(s.attendance.check_ins_total);
    reg.register("checkins", "check_in records in the evidence log", checkins);

    if let Some(age) = s.log.checkpoint_age_s {
        let g = FGauge::default();
        g.set(age);
        reg.register(
            "checkpoint_age_seconds",
            "Seconds since the last signed checkpoint",
            g,
        );
    }
    if let Some(free) = s.disk.available_bytes {
        let g = Gauge::<i64>::default();
        g.set(free.min(i64::MAX as u64) as i64);
        reg.register(
            "disk_free_bytes",
            "Bytes available on the data dir's disk (last check)",
            g,
        );
    }
    if let Some(days) = s.disk.days_left {
        let g = FGauge::default();
        g.set(days);
        reg.register(
            "disk_days_left",
            "Days until the disk is full at the recent write rate",
            g,
        );
    }
    let retention = FGauge::default();
    retention.set(s.disk.retention_days);
    reg.register(
        "retention_days",
        "The retention of the rules profile (R6)",
        retention,
    );

    let job_up = Family::<Labels, Gauge>::default();
    let restarts = Family::<Labels, Counter>::default();
    for (name, j) in &s.jobs {
        let healthy = matches!(j.state, "starting" | "running");
        let l = label("job", name);
        job_up.get_or_create(&l).set(i64::from(healthy));
        restarts.get_or_create(&l).inc_by(u64::from(j.restarts));
    }
    // The state names come from the registry: keep the two in step.
    debug_assert_eq!(JobState::Running.as_str(), "running");
    reg.register(
        "job_up",
        "1 while the supervised job is starting or running",
        job_up,
    );
    reg.register(
        "job_restarts",
        "Restarts of the job since the daemon started",
        restarts,
    );

    if let Some(u) = &s.upstream {
        let connected = Gauge::<i64>::default();
        connected.set(i64::from(u.connected));
        reg.register("upstream_connected", "1 while connected to the broker", connected);
        let backlog = Gauge::<i64>::default();
        backlog.set(u.backlog_records);
        reg.register(
            "outbox_backlog_records",
            "Records not yet acknowledged by the broker",
            backlog,
        );
        let oldest = FGauge::default();
        oldest.set(
            u.backlog_oldest_us
                .map_or(0.0, |t| (s.time_us - t).max(0) as f64 / 1e6),
        );
        reg.register(
            "outbox_oldest_age_seconds",
            "Age of the oldest record not yet acknowledged (0 without backlog)",
            oldest,
        );
    }

    let up = FGauge::default();
    up.set(s.uptime_s);
    reg.register("uptime_seconds", "Seconds since the daemon started", up);

    if let Some(extra) = extra {
        extra(&mut reg);
    }

    let mut out = String::new();
    encode(&mut out, &reg)?;
    Ok(out)
}
