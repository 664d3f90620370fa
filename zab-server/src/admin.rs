//! The admin port, on axum and hyper (HTTP/1.1, keep-alive):
//! - `GET /livez`: 200 while the process runs (a liveness probe);
//! - `GET /readyz` and `GET /health`: 200 when serving, 503 otherwise;
//! - `GET /status`: JSON (role, leader, epoch, zxids, counts);
//! - `GET /metrics`: Prometheus text exposition (`crate::metrics`);
//! - `GET /conf`: the effective configuration, JSON, secrets redacted
//!   (ZooKeeper's `conf`);
//! - `GET /cons`, `/wchs`, `/dump`: this server's connections, a summary of
//!   its watches, and the sessions with their ephemeral nodes, JSON
//!   (ZooKeeper's `cons`, `wchs`, `dump`); `?limit=N` bounds each list
//!   (default 1,000, at most 100,000);
//! - `GET /snapshot`: an online backup (`crate::backup`), taken without
//!   stopping the server; its zxid in the `X-Zab-Zxid` header;
//! - `GET /digest`: JSON with the applied zxid, the node count and the
//!   tree's digest, to compare servers, backups and restores.
//!
//! `/snapshot` and `/digest` answer only with `admin_backups = true` (403
//! otherwise): a backup holds every node whatever its ACL.
//!
//! Bounded whatever clients do: at most [`CONNECTIONS_MAX`] connections,
//! [`CONNECTIONS_PER_ADDRESS_MAX`] from one address (more are closed at
//! once), a request head within [`REQUEST_TIME_MAX`] and 8 KiB, a
//! connection's whole life within [`CONNECTION_TIME_MAX`] (a backup's:
//! [`BACKUP_CONNECTION_TIME_MAX`]); over TLS when `[admin_tls]` is
//! configured. One backup or digest runs at a time (each encodes or hashes
//! the whole tree on a blocking thread), and one inspection report (the
//! driver builds it); another asked meanwhile gets 503. The port serves every node regardless
//! of ACLs: keep it private, or behind `[admin_tls]` with required client
//! certificates.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{header, HeaderValue, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, on, MethodFilter};
use axum::{Json, Router};
use hyper::body::Incoming;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch, Semaphore};
use tokio_rustls::TlsAcceptor;
use tower::Service as _;
use zab_core::{Phase, Role};

use crate::core::{ReportKind, REPORT_ENTRIES_MAX};
use crate::server::{ReportRequest, Status};

/// Admin connections open at once; more are closed when accepted.
pub const CONNECTIONS_MAX: usize = 64;
/// Admin connections one address may hold open, so that one client cannot
/// take every slot from the probes and the scraper.
pub const CONNECTIONS_PER_ADDRESS_MAX: usize = 8;
/// How long a request head (and a TLS handshake) may take to arrive; a
/// kept-alive connection idle this long is closed too.
pub const REQUEST_TIME_MAX: Duration = Duration::from_secs(2);
/// How long one connection may live, whatever it does, so that a client
/// reading slowly holds its slot for a bounded time...
pub const CONNECTION_TIME_MAX: Duration = Duration::from_secs(30);
/// ...and once it asked for a backup or a digest: a large tree takes a
/// while to send, but a reader that stops must not hold the copy for ever.
pub const BACKUP_CONNECTION_TIME_MAX: Duration = Duration::from_secs(600);
/// The request head's bound, in bytes (hyper's smallest read buffer).
const REQUEST_BYTES_MAX: usize = 8 * 1024;
/// How long the driver gets to build a report.
const REPORT_TIME_MAX: Duration = Duration::from_secs(5);
/// Entries a report lists unless `?limit=` says otherwise.
const REPORT_LIMIT_DEFAULT: usize = 1_000;

/// What the admin port reads from the rest of the server.
#[derive(Clone, Debug)]
pub struct Sources {
    pub status: watch::Receiver<Status>,
    pub id: u64,
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Asks the driver for a frozen copy of the applied state.
    pub freezes: mpsc::Sender<crate::backup::FreezeRequest>,
    /// Asks the driver for an inspection report.
    pub reports: mpsc::Sender<ReportRequest>,
    /// Whether `/snapshot` and `/digest` answer (`admin_backups`).
    pub backups: bool,
    /// The effective configuration, as `/conf` shows it.
    pub conf: Arc<serde_json::Value>,
}

/// The router's state: the sources, and the one-at-a-time permit of
/// backups and digests.
#[derive(Clone, Debug)]
struct Admin {
    sources: Sources,
    heavy: Arc<Semaphore>,
    /// One inspection report at a time.
    reporting: Arc<Semaphore>,
}

/// Serves the admin port forever.
pub async fn serve((listener, tls): (TcpListener, Option<TlsAcceptor>), sources: Sources) {
    let app = router(sources);
    let open = Arc::new(Semaphore::new(CONNECTIONS_MAX));
    let per_address = Arc::new(Mutex::new(HashMap::<IpAddr, usize>::new()));
    loop {
        let (stream, addr) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(error = %e, "accepting an admin connection failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Some(slot) = Slot::take(&open, &per_address, addr.ip()) else {
            continue; // dropping the stream closes it
        };
        let (app, tls) = (app.clone(), tls.clone());
        tokio::spawn(async move {
            let _slot = slot;
            match tls {
                None => connection(stream, app).await,
                Some(acceptor) => {
                    let handshake = tokio::time::timeout(REQUEST_TIME_MAX, acceptor.accept(stream));
                    if let Ok(Ok(stream)) = handshake.await {
                        connection(stream, app).await;
                    }
                }
            }
        });
    }
}

/// One admin connection's place in both bounds, given back on drop.
struct Slot {
    _permit: tokio::sync::OwnedSemaphorePermit,
    per_address: Arc<Mutex<HashMap<IpAddr, usize>>>,
    ip: IpAddr,
}

impl Slot {
    fn take(
        open: &Arc<Semaphore>,
        per_address: &Arc<Mutex<HashMap<IpAddr, usize>>>,
        ip: IpAddr,
    ) -> Option<Slot> {
        let permit = open.clone().try_acquire_owned().ok()?;
        let mut counts = per_address.lock().unwrap_or_else(|e| e.into_inner());
        let n = counts.entry(ip).or_insert(0);
        if *n >= CONNECTIONS_PER_ADDRESS_MAX {
            return None;
        }
        *n += 1;
        Some(Slot {
            _permit: permit,
            per_address: per_address.clone(),
            ip,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = self.per_address.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = counts.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

/// Serves one connection's requests with hyper, within its bounds: its
/// life is [`CONNECTION_TIME_MAX`], or [`BACKUP_CONNECTION_TIME_MAX`] once
/// it asked for a backup or a digest.
async fn connection<S>(stream: S, app: Router)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let heavy = Arc::new(AtomicBool::new(false));
    let asked = heavy.clone();
    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
        if matches!(request.uri().path(), "/snapshot" | "/digest") {
            asked.store(true, Ordering::Relaxed);
        }
        // A Router is always ready: `call` needs no `poll_ready` first.
        let mut app = app.clone();
        async move { app.call(request).await }
    });
    let served = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(REQUEST_TIME_MAX)
        .max_buf_size(REQUEST_BYTES_MAX)
        .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
    tokio::pin!(served);
    let began = tokio::time::Instant::now();
    loop {
        let long = heavy.load(Ordering::Relaxed);
        let life = match long {
            true => BACKUP_CONNECTION_TIME_MAX,
            false => CONNECTION_TIME_MAX,
        };
        if tokio::time::timeout_at(began + life, &mut served)
            .await
            .is_ok()
        {
            return;
        }
        // Past its life, unless it asked for a backup meanwhile.
        if long || !heavy.load(Ordering::Relaxed) {
            return;
        }
    }
}

/// Every endpoint. Public for tests, which call it without a socket.
pub fn router(sources: Sources) -> Router {
    let admin = Admin {
        sources,
        heavy: Arc::new(Semaphore::new(1)),
        reporting: Arc::new(Semaphore::new(1)),
    };
    Router::new()
        .route("/livez", get(|| async { "alive\n" }))
        .route("/readyz", get(ready))
        .route("/health", get(ready))
        .route("/status", get(status))
        .route("/metrics", get(metrics))
        .route("/conf", get(conf))
        .route("/cons", get(report))
        .route("/wchs", get(report))
        .route("/dump", get(report))
        // GET only: axum's `get` answers HEAD too, which would encode the
        // whole tree for nothing.
        .route("/snapshot", on(MethodFilter::GET, backup))
        .route("/digest", on(MethodFilter::GET, backup))
        .fallback(|| async {
            let endpoints = "try /livez, /readyz, /health, /status, /metrics, /conf, /cons, /wchs, /dump, /digest or /snapshot\n";
            (StatusCode::NOT_FOUND, endpoints)
        })
        .with_state(admin)
}

/// Whether `role` serves clients: in a working quorum.
pub fn serving(role: &Role) -> bool {
    matches!(
        role,
        Role::Leading {
            phase: Phase::Broadcast,
            ..
        } | Role::Following {
            phase: Phase::Broadcast,
            ..
        } | Role::Observing {
            phase: Phase::Broadcast,
            ..
        }
    )
}

/// The role's name, the leader's id and the epoch.
pub fn role_parts(role: &Role, id: u64) -> (&'static str, Option<u64>, u32) {
    match role {
        Role::Looking => ("looking", None, 0),
        Role::Leading { epoch, .. } => ("leading", Some(id), epoch.0),
        Role::Following { leader, term, .. } => ("following", Some(leader.0), term.0),
        Role::Observing { leader, term, .. } => ("observing", Some(leader.0), term.0),
    }
}

async fn ready(State(admin): State<Admin>) -> (StatusCode, String) {
    let role = admin.sources.status.borrow().role;
    match serving(&role) {
        true => (StatusCode::OK, "ok\n".into()),
        false => {
            let (name, _, _) = role_parts(&role, admin.sources.id);
            (StatusCode::SERVICE_UNAVAILABLE, format!("{name}\n"))
        }
    }
}

/// `/status`. Zxids are hex strings: they pass 2^53, where JSON numbers
/// stop being exact in many readers.
#[derive(Debug, Serialize)]
pub struct StatusDoc {
    pub id: u64,
    pub version: &'static str,
    pub role: &'static str,
    pub serving: bool,
    pub leader: Option<u64>,
    pub epoch: u32,
    pub applied_zxid: String,
    pub last_logged_zxid: String,
    pub znodes: usize,
    pub ephemerals: usize,
    pub data_bytes: u64,
    pub watches: usize,
    pub sessions: usize,
    pub connections: usize,
    pub outstanding_requests: usize,
}

pub fn status_doc(s: &Status, id: u64) -> StatusDoc {
    let (role, leader, epoch) = role_parts(&s.role, id);
    StatusDoc {
        id,
        version: env!("CARGO_PKG_VERSION"),
        role,
        serving: serving(&s.role),
        leader,
        epoch,
        applied_zxid: s.applied.to_string(),
        last_logged_zxid: s.last_logged.to_string(),
        znodes: s.znodes,
        ephemerals: s.ephemerals,
        data_bytes: s.data_bytes,
        watches: s.watches,
        sessions: s.sessions,
        connections: s.connections,
        outstanding_requests: s.outstanding,
    }
}

async fn status(State(admin): State<Admin>) -> Json<StatusDoc> {
    let s = admin.sources.status.borrow().clone();
    Json(status_doc(&s, admin.sources.id))
}

async fn metrics(State(admin): State<Admin>) -> Response {
    let s = admin.sources.status.borrow().clone();
    let text = admin.sources.metrics.render(&s, admin.sources.id);
    let kind = HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8");
    ([(header::CONTENT_TYPE, kind)], text).into_response()
}

async fn conf(State(admin): State<Admin>) -> Json<serde_json::Value> {
    Json((*admin.sources.conf).clone())
}

#[derive(Debug, Deserialize)]
struct Limit {
    limit: Option<usize>,
}

async fn report(
    State(admin): State<Admin>,
    Query(q): Query<Limit>,
    uri: axum::http::Uri,
) -> Response {
    let limit = q
        .limit
        .unwrap_or(REPORT_LIMIT_DEFAULT)
        .min(REPORT_ENTRIES_MAX);
    let kind = match uri.path() {
        "/cons" => ReportKind::Connections { limit },
        "/wchs" => ReportKind::Watches { limit },
        _ => ReportKind::Sessions { limit },
    };
    let unavailable = |why: &str| (StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n"));
    // One report at a time, and none queued behind it: the driver builds
    // each between two inputs.
    let Ok(_permit) = admin.reporting.try_acquire() else {
        return unavailable("a report is already being built; try again").into_response();
    };
    let (tx, rx) = oneshot::channel();
    if let Err(e) = admin.sources.reports.try_send((kind, tx)) {
        let why = match e {
            mpsc::error::TrySendError::Full(_) => "a report is already being built; try again",
            mpsc::error::TrySendError::Closed(_) => "the server is stopping",
        };
        return unavailable(why).into_response();
    }
    match tokio::time::timeout(REPORT_TIME_MAX, rx).await {
        Ok(Ok(report)) => Json(report).into_response(),
        Ok(Err(_)) => unavailable("the server is stopping").into_response(),
        Err(_) => unavailable("the server did not build the report in time").into_response(),
    }
}

/// `/snapshot` or `/digest`, one at a time: the permit is held until the
/// answer is sent (it travels with the body), so no more than one copy of
/// the state is ever held for the admin port.
async fn backup(State(admin): State<Admin>, uri: axum::http::Uri) -> Response {
    let text = |code, why: &str| (code, format!("{why}\n")).into_response();
    if !admin.sources.backups {
        let why = "backups and digests are off on this server: set admin_backups = true";
        return text(StatusCode::FORBIDDEN, why);
    }
    let Ok(permit) = admin.heavy.clone().try_acquire_owned() else {
        let why = "a backup or digest is already running; try again when it is done";
        return text(StatusCode::SERVICE_UNAVAILABLE, why);
    };
    let stopping = || text(StatusCode::SERVICE_UNAVAILABLE, "the server is stopping");
    let (tx, rx) = oneshot::channel();
    if admin.sources.freezes.send(tx).await.is_err() {
        return stopping();
    }
    let Ok((zxid, state)) = rx.await else {
        return stopping();
    };
    let is_backup = uri.path() == "/snapshot";
    // The permit goes with the work, then with the body: a client that
    // hangs up while the tree is encoded does not free it for another.
    let work = tokio::task::spawn_blocking(move || {
        let parts = if is_backup {
            let content = state.encode();
            drop(state);
            let head = crate::storage::snapshot_file::header(0, zxid, &content);
            vec![head, content]
        } else {
            let doc = serde_json::json!({
                "zxid": zxid.to_string(),
                "znodes": state.node_count(),
                "digest": state.digest().to_string(),
            });
            vec![format!("{doc}\n").into_bytes()]
        };
        (parts, permit)
    });
    let Ok((parts, permit)) = work.await else {
        return text(StatusCode::INTERNAL_SERVER_ERROR, "the backup failed");
    };
    let len: usize = parts.iter().map(Vec::len).sum();
    let kind = match is_backup {
        true => "application/octet-stream",
        false => "application/json",
    };
    // The parts go out as they are (the state is never copied again); the
    // permit is released when the body is done or dropped.
    let chunks = parts.into_iter().map(move |part| {
        let _held = &permit;
        Ok::<_, Infallible>(bytes::Bytes::from(part))
    });
    let body = Body::from_stream(futures_util::stream::iter(chunks));
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    if let (true, Ok(z)) = (is_backup, HeaderValue::from_str(&zxid.to_string())) {
        headers.insert("x-zab-zxid", z);
    }
    response
}

#[cfg(test)]
mod tests;
