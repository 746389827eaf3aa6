//! The status server: one axum server on a runtime of its own, supervised as the `status`
//! job. It serves `/` (the page), `/metrics` and `/api/status`, reads the database on its own
//! read-only connection and the health registry, and never writes anything (issue 12).
//!
//! Listening on anything but loopback needs `[status] token_file`; every request must then
//! carry `Authorization: Bearer <token>`, compared in constant time (of equal-length
//! digests, so that neither the content nor the length of the token leaks through timing).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::Utc;
use rusqlite::Connection;
use serde::Deserialize;
use subtle::ConstantTimeEq;
use tracing::{info, warn};

use super::config::{Language, StatusConfig, read_token};
use super::metrics::{self, ExtraMetrics};
use super::snapshot::{self, Snapshot};
use crate::config::Config;
use crate::daemon::health::Health;
use crate::daemon::supervisor::{JobError, JobHandle};

/// How often the job beats while serving.
const BEAT_EVERY: Duration = Duration::from_secs(1);
/// Pause before binding again after the address could not be taken.
const REBIND_PAUSE: Duration = Duration::from_secs(5);

/// What the handlers share.
struct Shared {
    config: Arc<Config>,
    health: Arc<Health>,
    started_us: i64,
    /// Digest of the bearer token, when one is required.
    token: Option<[u8; 32]>,
    /// The server's own read-only connection (opened once the daemon created the database).
    conn: Mutex<Option<Connection>>,
    extra: Option<ExtraMetrics>,
    /// The last thumbnail decoded per camera, and when: decoded on request, at most once
    /// every [`STILL_EVERY`].
    stills: Mutex<std::collections::HashMap<String, CachedStill>>,
}

/// When a thumbnail was decoded, and its JPEG.
type CachedStill = (std::time::Instant, Arc<Vec<u8>>);

/// A camera's thumbnail is decoded again at most this often.
const STILL_EVERY: Duration = Duration::from_secs(5);

impl Shared {
    fn snapshot(&self) -> Result<Snapshot, String> {
        let mut guard = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        if guard.is_none() {
            match crate::db::open_existing(&self.config.device.data_dir) {
                Ok(Some(c)) => *guard = Some(c),
                Ok(None) => return Err("no database yet: the daemon is starting".into()),
                Err(e) => return Err(e.to_string()),
            }
        }
        let Some(conn) = guard.as_ref() else {
            return Err("no database connection".into());
        };
        let jobs = self.health.snapshot();
        let now_us = Utc::now().timestamp_micros();
        snapshot::read(conn, &self.config, &jobs, self.started_us, now_us).map_err(|e| {
            // A broken connection is opened again on the next request.
            *guard = None;
            e.to_string()
        })
    }
}

fn digest(token: &[u8]) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, token);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// The `status` job, or `None` when `[status] enabled = false`.
pub fn job(
    config: Arc<Config>,
    health: Arc<Health>,
    started_us: i64,
    extra: Option<ExtraMetrics>,
) -> Option<impl FnMut(&JobHandle) -> Result<(), JobError> + Send + 'static> {
    if !config.status.enabled {
        return None;
    }
    Some(move |job: &JobHandle| -> Result<(), JobError> {
        let cfg: StatusConfig = config.status.clone();
        let token = match &cfg.token_file {
            Some(f) => Some(digest(read_token(f)?.as_bytes())),
            None => None,
        };
        let shared = Arc::new(Shared {
            config: config.clone(),
            health: health.clone(),
            started_us,
            token,
            conn: Mutex::new(None),
            extra: extra.clone(),
            stills: Mutex::default(),
        });
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let mut bind_failing = false;
        while !job.stopping() {
            let served = rt.block_on(serve(cfg.listen, shared.clone(), job));
            match served {
                Ok(()) => return Ok(()),
                Err(e) => {
                    // The page is not worth stopping recording for: report and try again.
                    if !bind_failing {
                        warn!(listen = %cfg.listen, error = %e, "status: cannot listen; trying again every 5s");
                    }
                    bind_failing = true;
                    job.failing(format!("cannot listen on {}: {e}", cfg.listen));
                    let until = std::time::Instant::now() + REBIND_PAUSE;
                    while std::time::Instant::now() < until && !job.stopping() {
                        job.beat();
                        std::thread::sleep(Duration::from_millis(200));
                    }
                }
            }
        }
        Ok(())
    })
}

/// Serves until the daemon stops; an error when the address cannot be taken.
async fn serve(addr: std::net::SocketAddr, shared: Arc<Shared>, job: &JobHandle) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    info!(address = %format!("http://{addr}/"), "status page");
    job.running();
    let app = router(shared);
    let stop = {
        let job = job.clone();
        async move {
            let mut tick = tokio::time::interval(BEAT_EVERY.min(Duration::from_millis(200)));
            let mut n = 0u32;
            loop {
                tick.tick().await;
                if job.stopping() {
                    return;
                }
                n = n.wrapping_add(1);
                if n.is_multiple_of(5) {
                    job.beat();
                }
            }
        }
    };
    axum::serve(listener, app).with_graceful_shutdown(stop).await
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/metrics", get(metrics_text))
        .route("/api/status", get(api_status))
        .route("/camera/{id}/still.jpg", get(still))
        .layer(middleware::from_fn_with_state(shared.clone(), auth))
        .with_state(shared)
}

async fn auth(State(shared): State<Arc<Shared>>, headers: HeaderMap, req: Request, next: Next) -> Response {
    if let Some(want) = &shared.token {
        let got = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(|t| digest(t.trim().as_bytes()));
        let ok = got.is_some_and(|g| bool::from(g.ct_eq(want)));
        if !ok {
            return (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"))],
                "a bearer token is required (Authorization: Bearer <token>)\n",
            )
                .into_response();
        }
    }
    next.run(req).await
}

fn unavailable(why: String) -> Response {
    (StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")).into_response()
}

async fn metrics_text(State(shared): State<Arc<Shared>>) -> Response {
    let snap = match shared.snapshot() {
        Ok(s) => s,
        Err(e) => return unavailable(e),
    };
    match metrics::render(&snap, shared.extra.as_ref()) {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
            )],
            text,
        )
            .into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

async fn api_status(State(shared): State<Arc<Shared>>) -> Response {
    match shared.snapshot() {
        Ok(s) => match serde_json::to_string(&s) {
            Ok(text) => (
                [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))],
                text,
            )
                .into_response(),
            Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
        },
        Err(e) => unavailable(e),
    }
}

#[derive(Debug, Deserialize)]
struct PageQuery {
    lang: Option<String>,
}

async fn page(State(shared): State<Arc<Shared>>, Query(q): Query<PageQuery>) -> Response {
    let lang = q
        .lang
        .as_deref()
        .and_then(Language::parse)
        .unwrap_or(shared.config.status.language);
    match shared.snapshot() {
        Ok(s) => (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            )],
            super::page::render(&s, lang),
        )
            .into_response(),
        Err(e) => unavailable(e),
    }
}

impl Shared {
    /// The camera's latest keyframe as a JPEG (`media::still`), cached for [`STILL_EVERY`].
    fn still(&self, camera: &str) -> Result<Arc<Vec<u8>>, String> {
        if !self.config.cameras.iter().any(|c| c.id == camera) {
            return Err(format!("no camera {camera:?}"));
        }
        if let Some((at, jpeg)) = self.stills.lock().unwrap_or_else(|e| e.into_inner()).get(camera)
            && at.elapsed() < STILL_EVERY
        {
            return Ok(jpeg.clone());
        }
        let conn = crate::db::open_existing(&self.config.device.data_dir)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| "no database yet".to_string())?;
        let still = crate::media::still::latest_jpeg(&self.config.device.data_dir, camera, &conn)
            .map_err(|e| e.to_string())?;
        let jpeg = Arc::new(still.jpeg);
        self.stills
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(camera.to_string(), (std::time::Instant::now(), jpeg.clone()));
        Ok(jpeg)
    }
}

async fn still(State(shared): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    // Decoding takes a few milliseconds of CPU: off the server's one thread.
    let got = tokio::task::spawn_blocking(move || shared.still(&id)).await;
    match got {
        Ok(Ok(jpeg)) => (
            [
                (header::CONTENT_TYPE, HeaderValue::from_static("image/jpeg")),
                (header::CACHE_CONTROL, HeaderValue::from_static("max-age=5")),
            ],
            jpeg.as_ref().clone(),
        )
            .into_response(),
        Ok(Err(e)) => (StatusCode::NOT_FOUND, format!("{e}\n")).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}
