//! The router, called without a socket (`tower::ServiceExt::oneshot`).

use super::*;
use axum::http::Request;
use tower::ServiceExt;
use zab_core::{Epoch, PeerId, Zxid};

use crate::core::Report;

fn status(role: Role) -> Status {
    Status {
        role,
        applied: Zxid(0x1_0000_0005),
        last_logged: Zxid(0x1_0000_0007),
        znodes: 4,
        ephemerals: 1,
        data_bytes: 99,
        watches: 5,
        sessions: 2,
        connections: 3,
        ..Status::default()
    }
}

const FOLLOWING: Role = Role::Following {
    leader: PeerId(3),
    term: Epoch(1),
    phase: Phase::Broadcast,
};

/// A router over `role`, whose driver answers reports with `report` (or
/// holds them unanswered, when None) and never answers freezes.
fn app(role: Role, report: Option<Report>) -> Router {
    let (_, status_rx) = watch::channel(status(role));
    let (freezes, _) = mpsc::channel(1);
    let (reports, mut asked) = mpsc::channel::<ReportRequest>(1);
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Some((_, reply)) = asked.recv().await {
            match report.clone() {
                Some(r) => drop(reply.send(r)),
                None => held.push(reply), // kept, never answered
            }
        }
    });
    router(Sources {
        status: status_rx,
        id: 1,
        metrics: Default::default(),
        freezes,
        reports,
        backups: false,
        conf: Arc::new(serde_json::json!({"id": 1, "super_digest": "<redacted>"})),
    })
}

async fn get(app: Router, path: &str) -> (StatusCode, String, String) {
    let request = Request::get(path).body(Body::empty()).expect("request");
    let response = app.oneshot(request).await.expect("infallible");
    let code = response.status();
    let kind = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let body = axum::body::to_bytes(response.into_body(), 1 << 24)
        .await
        .expect("body");
    (code, kind, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn probes_follow_the_role() {
    let looking = || app(Role::Looking, None);
    assert_eq!(
        get(looking(), "/readyz").await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(get(looking(), "/health").await.2, "looking\n");
    assert_eq!(get(looking(), "/livez").await.0, StatusCode::OK);
    assert_eq!(get(app(FOLLOWING, None), "/readyz").await.0, StatusCode::OK);
    assert_eq!(get(app(FOLLOWING, None), "/health").await.0, StatusCode::OK);
    let (code, _, body) = get(looking(), "/nope").await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    assert!(body.contains("/metrics"), "{body}");
}

#[tokio::test]
async fn status_is_json_with_hex_zxids_and_names_the_leader() {
    let (code, kind, body) = get(app(FOLLOWING, None), "/status").await;
    assert_eq!((code, kind.as_str()), (StatusCode::OK, "application/json"));
    let doc: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(doc["leader"], 3);
    assert_eq!(doc["role"], "following");
    assert_eq!(doc["applied_zxid"], "0x100000005");
    assert_eq!(doc["ephemerals"], 1);
    assert_eq!(doc["version"], env!("CARGO_PKG_VERSION"));
}

#[tokio::test]
async fn metrics_are_prometheus_text_with_the_status_gauges() {
    let (code, kind, body) = get(app(FOLLOWING, None), "/metrics").await;
    assert_eq!(code, StatusCode::OK);
    assert!(kind.starts_with("text/plain; version=0.0.4"), "{kind}");
    assert!(body.contains("zab_role{role=\"following\"} 1\n"), "{body}");
    assert!(body.contains("zab_sessions 2\n"), "{body}");
    assert!(body.contains("zab_ephemerals 1\n"), "{body}");
    assert!(body.contains("zab_data_bytes 99\n"), "{body}");
    let series = body.lines().filter(|l| !l.starts_with('#')).count();
    assert!(series > 120, "{series} series");
    let lines = body.lines().map(str::to_owned).map(Ok);
    let scrape = prometheus_parse::Scrape::parse(lines).expect("parses");
    // (The parser folds a histogram's buckets, sum and count into one.)
    assert!(
        scrape.samples.len() > 40,
        "{} samples",
        scrape.samples.len()
    );
    for sample in &scrape.samples {
        let family = sample
            .metric
            .trim_end_matches("_bucket")
            .trim_end_matches("_sum")
            .trim_end_matches("_count");
        assert!(
            scrape.docs.contains_key(family) || scrape.docs.contains_key(&sample.metric),
            "no HELP for {}",
            sample.metric
        );
    }
}

#[tokio::test]
async fn conf_is_the_configuration_it_was_given() {
    let (code, _, body) = get(app(FOLLOWING, None), "/conf").await;
    assert_eq!(code, StatusCode::OK);
    assert!(body.contains("\"super_digest\":\"<redacted>\""), "{body}");
}

#[tokio::test]
async fn reports_come_from_the_driver_or_say_why_not() {
    let summary = Report::Watches(crate::core::report_example());
    let (code, _, body) = get(app(FOLLOWING, Some(summary)), "/wchs?limit=5").await;
    assert_eq!(code, StatusCode::OK, "{body}");
    let doc: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(doc["total"], 7, "{body}");
    // A driver that never answers: 503 within the report bound, not a hang.
    tokio::time::pause();
    let (code, _, body) = get(app(FOLLOWING, None), "/dump").await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(body.contains("in time"), "{body}");
}

#[tokio::test]
async fn backups_are_refused_unless_enabled() {
    let (code, _, body) = get(app(FOLLOWING, None), "/snapshot").await;
    assert_eq!(code, StatusCode::FORBIDDEN);
    assert!(body.contains("admin_backups"), "{body}");
}

/// The port's bounds on a real socket: one address gets at most
/// CONNECTIONS_PER_ADDRESS_MAX connections (the next is closed at once),
/// and an idle one is closed after REQUEST_TIME_MAX, giving its slot back.
#[tokio::test]
async fn one_address_cannot_take_every_slot_and_idle_connections_end() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("a port");
    let addr = listener.local_addr().expect("bound");
    let (_, status_rx) = watch::channel(status(FOLLOWING));
    let (freezes, _) = mpsc::channel(1);
    let (reports, _) = mpsc::channel(1);
    let sources = Sources {
        status: status_rx,
        id: 1,
        metrics: Default::default(),
        freezes,
        reports,
        backups: false,
        conf: Default::default(),
    };
    tokio::spawn(serve((listener, None), sources));
    let mut idle = Vec::new();
    for _ in 0..CONNECTIONS_PER_ADDRESS_MAX {
        idle.push(tokio::net::TcpStream::connect(addr).await.expect("connect"));
    }
    // Give the acceptor time to take them all, then ask once more.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut extra = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let _ = extra
        .write_all(b"GET /livez HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    let mut got = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(1), extra.read_to_end(&mut got)).await;
    // Closed at once (EOF or a reset), never answered.
    assert!(read.is_ok() && got.is_empty(), "answered: {got:?}");
    // The idle ones are closed by the head timeout; then there is room.
    for mut s in idle {
        let mut buf = Vec::new();
        let closed = tokio::time::timeout(REQUEST_TIME_MAX * 3, s.read_to_end(&mut buf)).await;
        assert!(closed.is_ok(), "an idle admin connection stayed open");
    }
    let mut again = tokio::net::TcpStream::connect(addr).await.expect("connect");
    again
        .write_all(b"GET /livez HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut got = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), again.read_to_end(&mut got))
        .await
        .expect("an answer")
        .expect("read");
    let text = String::from_utf8_lossy(&got);
    assert!(
        text.starts_with("HTTP/1.1 200") && text.ends_with("alive\n"),
        "{text}"
    );
}
