//! The admin port of a real ensemble under a little traffic: `/metrics`
//! scraped by a Prometheus text-format parser (every series documented,
//! the counters and histograms moved by what the client did, the leader's
//! view of its followers), the Grafana dashboard's queries naming only
//! series that exist, and the inspection endpoints (`/conf`, `/cons`,
//! `/wchs`, `/dump`) describing the client's session.

mod common;

use std::collections::BTreeSet;

use common::{retry, Ensemble};
use prometheus_parse::{Scrape, Value};
use zab_client::{Consistency, CreateMode};

async fn scrape(e: &Ensemble, i: usize) -> (Scrape, String) {
    let (code, body) = e.admin_get(i, "/metrics").await.expect("an answer");
    assert_eq!(code, 200);
    let text = String::from_utf8(body).expect("UTF-8");
    let lines = text.lines().map(str::to_owned).map(Ok);
    (Scrape::parse(lines).expect("Prometheus text format"), text)
}

/// Scrapes server `i` until `name{labels}` is `want` (bounded: 20 s).
async fn scrape_until(
    e: &Ensemble,
    i: usize,
    name: &str,
    labels: &[(&str, &str)],
    want: f64,
) -> (Scrape, String) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let (s, text) = scrape(e, i).await;
        if value(&s, name, labels) == Some(want) || std::time::Instant::now() > deadline {
            return (s, text);
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// The value of the sample `name` whose labels include `labels`.
fn value(s: &Scrape, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    s.samples
        .iter()
        .filter(|x| x.metric == name)
        .find(|x| labels.iter().all(|(k, v)| x.labels.get(k) == Some(*v)))
        .map(|x| match &x.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
            Value::Histogram(h) => h.last().map_or(0.0, |b| b.count),
            Value::Summary(_) => f64::NAN,
        })
}

async fn json(e: &Ensemble, i: usize, path: &str) -> serde_json::Value {
    let (code, body) = e.admin_get(i, path).await.expect("an answer");
    assert_eq!(code, 200, "{path}: {}", String::from_utf8_lossy(&body));
    serde_json::from_slice(&body).expect("JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_parse_move_with_traffic_and_feed_the_dashboard() {
    let mut e = Ensemble::prepare_with_admin(3, "observability", "");
    e.spawn_all();
    let leader = e.wait_for_leader(None).await;
    let here = (leader + 1) % 3; // a follower
    let client = e.client(here, 10_000).await;
    retry(|| client.create("/app", b"", CreateMode::Persistent))
        .await
        .expect("/app");
    for i in 0..20 {
        let path = format!("/app/n{i}");
        retry(|| client.create(&path, b"x", CreateMode::Persistent))
            .await
            .expect("a create");
    }
    for i in 0..3 {
        let path = format!("/app/e{i}");
        retry(|| client.create(&path, b"", CreateMode::Ephemeral))
            .await
            .expect("an ephemeral");
    }
    client.sync("/app").await.expect("a sync");
    let (_, _) = client
        .get("/app/n1", Consistency::Local)
        .await
        .expect("a read");
    let _watch = client.add_watch("/app", true).await.expect("a watch");
    client
        .exists("/app/n2", Consistency::Local, true)
        .await
        .expect("a one-shot watch");

    // The status is published once per tick: scrape until the leader
    // shows both followers synced, and this server the client's watches.
    let (lead, lead_text) =
        scrape_until(&e, leader, "zab_learners", &[("state", "synced")], 2.0).await;
    assert_eq!(
        value(&lead, "zab_learners", &[("state", "synced")]),
        Some(2.0)
    );
    assert_eq!(value(&lead, "zab_role", &[("role", "leading")]), Some(1.0));
    let lags = lead
        .samples
        .iter()
        .filter(|x| x.metric == "zab_learner_lag_transactions")
        .count();
    assert_eq!(lags, 2, "{lead_text}");
    // (The watches were armed last: once they show, so does the rest.)
    let (mine, text) = scrape_until(&e, here, "zab_watches", &[], 2.0).await;

    // Every series documented, typed and counted.
    // (A labelled family with no series yet, such as the learners' lag on
    // a follower, is not exported at all: the two scrapes together.)
    let families: BTreeSet<&str> = text
        .lines()
        .chain(lead_text.lines())
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    for sample in &mine.samples {
        let name = sample.metric.as_str();
        let family = ["_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s).filter(|f| mine.docs.contains_key(*f)))
            .unwrap_or(name);
        assert!(mine.docs.contains_key(family), "no HELP for {name}");
        assert!(families.contains(family), "no TYPE for {name}");
    }
    let series = text.lines().filter(|l| !l.starts_with('#')).count();
    assert!(series >= 140, "{series} series:\n{text}");

    // What the client did moved what it should have, on its server.
    let at_least = |name: &str, labels: &[(&str, &str)], min: f64| {
        let v = value(&mine, name, labels).unwrap_or(f64::NAN);
        assert!(
            v >= min,
            "{name} {labels:?} = {v}, expected >= {min}\n{text}"
        );
    };
    at_least("zab_commit_seconds", &[], 24.0);
    at_least("zab_sync_seconds", &[], 1.0);
    at_least("zab_read_seconds", &[], 2.0);
    at_least("zab_client_requests_total", &[], 28.0);
    at_least("zab_client_received_bytes_total", &[], 500.0);
    at_least("zab_client_sent_bytes_total", &[], 500.0);
    at_least("zab_client_connections_accepted_total", &[], 1.0);
    at_least("zab_election_seconds", &[], 1.0);
    at_least("zab_fsync_seconds", &[], 1.0);
    at_least("process_resident_memory_bytes", &[], 1e6);
    at_least("process_open_fds", &[], 3.0);
    let version = env!("CARGO_PKG_VERSION");
    at_least("zab_build_info", &[("version", version)], 1.0);
    assert_eq!(value(&mine, "zab_ephemerals", &[]), Some(3.0), "{text}");
    assert_eq!(value(&mine, "zab_serving", &[]), Some(1.0), "{text}");
    assert_eq!(value(&mine, "zab_watches", &[]), Some(2.0), "{text}");

    // The dashboard graphs only what exists.
    let dashboard = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../packaging/grafana/zab-dashboard.json"
    ))
    .expect("the dashboard");
    let doc: serde_json::Value = serde_json::from_str(&dashboard).expect("JSON");
    let mut named = 0;
    for panel in doc["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().expect("an expression");
            for name in series_names(expr) {
                let family = ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|s| name.strip_suffix(s).filter(|f| families.contains(f)))
                    .unwrap_or(&name);
                assert!(
                    families.contains(family),
                    "panel {:?} queries {name}, which no server exports",
                    panel["title"]
                );
                named += 1;
            }
        }
    }
    assert!(named >= 30, "only {named} series named by the dashboard");

    // The inspection endpoints describe the client's session.
    let session = format!("{:#x}", client.session_id());
    let cons = json(&e, here, "/cons").await;
    let listed = cons["connections"].as_array().expect("connections");
    let ours = listed
        .iter()
        .find(|c| c["session"] == session.as_str())
        .unwrap_or_else(|| panic!("{session} not in {cons}"));
    assert_eq!(ours["state"], "open");
    assert_eq!(ours["watches"], 2);
    let wchs = json(&e, here, "/wchs").await;
    assert_eq!(wchs["total"], 2, "{wchs}");
    assert_eq!(wchs["paths"]["recursive"], 1, "{wchs}");
    // The dump is the same on every server (sessions are replicated).
    let dump = json(&e, leader, "/dump?limit=10").await;
    let entry = dump["sessions"]
        .as_array()
        .expect("sessions")
        .iter()
        .find(|s| s["session"] == session.as_str())
        .unwrap_or_else(|| panic!("{session} not in {dump}"));
    assert_eq!(entry["ephemeral_count"], 3, "{dump}");
    assert_eq!(entry["ephemerals"][0], "/app/e0", "{dump}");
    assert_eq!(entry["connected_here"], false, "{dump}");
    let conf = json(&e, here, "/conf").await;
    assert_eq!(conf["id"], here as u64 + 1, "{conf}");
    assert_eq!(conf["servers"].as_array().map(Vec::len), Some(3), "{conf}");
}

/// The series names in a PromQL expression: identifiers that start with
/// `zab_` or `process_` and are not followed by `(` (a function).
fn series_names(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let bytes = expr.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let starts = i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_');
        let rest = &expr[i..];
        if starts && (rest.starts_with("zab_") || rest.starts_with("process_")) {
            let len = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            out.push(rest[..len].to_owned());
            i += len;
        } else {
            i += 1;
        }
    }
    out
}
