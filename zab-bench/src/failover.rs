//! Failover timing: writers keep writing with short per-request timeouts
//! while someone else (scripts/bench.sh) kills the leader. Two writers run
//! side by side, on different keys:
//!
//! - `cluster`: whenever a request fails or times out it abandons its session
//!   and opens a fresh one, so its longest pause between two successful
//!   writes is how long the *cluster* could not take a write;
//! - `session`: keeps one session throughout (replacing it only if it
//!   expires or stays silent past its timeout), so its pause is what an
//!   application holding one session sees.
//!
//! Each reports its longest pause with wall-clock ends, so the caller can
//! measure from the moment it killed.

use std::io::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::store::{Connect, Store, StoreError};
use crate::workload::value;

/// Successes before a writer counts as ready to be disturbed.
const READY_AFTER_WRITES: u64 = 20;
/// Once the gap has closed, keep writing this long to be sure it stays closed.
const SETTLE: Duration = Duration::from_secs(1);
/// Never stop before this: a pause before the kill must not end the run.
const RUN_MIN: Duration = Duration::from_secs(3);
const ERROR_PAUSE: Duration = Duration::from_millis(5);
/// The cluster writer gives up on a request (and its session) after this.
const FRESH_OP_TIMEOUT: Duration = Duration::from_millis(200);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Clone, Debug)]
pub struct FailoverPlan {
    pub servers: Vec<String>,
    pub session_timeout: Duration,
    /// Per request, for the session writer.
    pub op_timeout: Duration,
    /// Give up after this long in all.
    pub limit: Duration,
}

fn unix_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}

#[derive(Debug, Default)]
struct Writer {
    /// (pause, last success before it, first success after it), wall ms.
    gap: Option<(Duration, u128, u128)>,
    writes: u64,
    errors: u64,
    sessions_opened: u64,
    first_error: Option<String>,
}

/// The failover run's JSON line: the cluster writer's figures, then the
/// session writer's under `session_` names.
#[derive(Debug, serde::Serialize)]
struct FailoverDoc {
    system: &'static str,
    workload: &'static str,
    #[serde(flatten)]
    cluster: WriterDoc,
    #[serde(flatten, serialize_with = "session_prefixed")]
    session: WriterDoc,
}

#[derive(Debug, serde::Serialize)]
struct WriterDoc {
    recovered: bool,
    gap_ms: f64,
    gap_start_unix_ms: u128,
    gap_end_unix_ms: u128,
    writes: u64,
    errors: u64,
    sessions_opened: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    first_error: Option<String>,
}

/// `doc`'s fields under `session_` names.
fn session_prefixed<S: serde::Serializer>(doc: &WriterDoc, s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::{Error, SerializeMap};
    let value = serde_json::to_value(doc).map_err(S::Error::custom)?;
    let fields = value.as_object().cloned().unwrap_or_default();
    let mut map = s.serialize_map(Some(fields.len()))?;
    for (name, v) in fields {
        map.serialize_entry(&format!("session_{name}"), &v)?;
    }
    map.end()
}

impl Writer {
    fn doc(&self) -> WriterDoc {
        let (gap_ms, from_ms, to_ms) = self
            .gap
            .map_or((0.0, 0, 0), |(g, a, b)| (g.as_secs_f64() * 1e3, a, b));
        WriterDoc {
            recovered: self.gap.is_some(),
            gap_ms,
            gap_start_unix_ms: from_ms,
            gap_end_unix_ms: to_ms,
            writes: self.writes,
            errors: self.errors,
            sessions_opened: self.sessions_opened,
            first_error: self.first_error.clone(),
        }
    }
}

/// Runs both writers until each has run [`RUN_MIN`] and its longest pause
/// (since both were ready) ended [`SETTLE`] ago, or the limit; returns one
/// JSON line.
pub async fn run<S: Store>(plan: &FailoverPlan) -> Result<String, StoreError> {
    let to = Connect {
        servers: plan.servers.clone(),
        session_timeout: plan.session_timeout,
        lifetime: plan.limit,
    };
    // Open both sessions first, so a bad address fails here, loudly.
    let cluster_store = S::connect(to.clone()).await?;
    cluster_store.ensure("/bench/failover-c", &value()).await?;
    let session_store = S::connect(to.clone()).await?;
    session_store.ensure("/bench/failover-s", &value()).await?;
    let ready = Arc::new(AtomicUsize::new(0));
    let stop = Instant::now() + plan.limit;
    let (cluster, session) = tokio::join!(
        write_loop(
            cluster_store,
            "/bench/failover-c",
            &to,
            plan,
            true,
            stop,
            ready.clone()
        ),
        write_loop(
            session_store,
            "/bench/failover-s",
            &to,
            plan,
            false,
            stop,
            ready
        ),
    );
    let doc = FailoverDoc {
        system: S::NAME,
        workload: "failover",
        cluster: cluster.doc(),
        session: session.doc(),
    };
    serde_json::to_string(&doc).map_err(|e| StoreError(format!("cannot encode the result: {e}")))
}

async fn write_loop<S: Store>(
    first: S,
    key: &str,
    to: &Connect,
    plan: &FailoverPlan,
    fresh_on_error: bool,
    stop: Instant,
    ready: Arc<AtomicUsize>,
) -> Writer {
    let value = value();
    let op_timeout = if fresh_on_error {
        FRESH_OP_TIMEOUT
    } else {
        plan.op_timeout
    };
    let mut w = Writer {
        sessions_opened: 1,
        ..Writer::default()
    };
    let mut store = Some(first);
    let started = Instant::now();
    let mut last_ok = (started, unix_ms());
    while Instant::now() < stop {
        let Some(current) = store.as_ref() else {
            // Reopen; a failed attempt is an error like any other.
            match tokio::time::timeout(CONNECT_TIMEOUT, S::connect(to.clone())).await {
                Ok(Ok(s)) => {
                    store = Some(s);
                    w.sessions_opened += 1;
                }
                Ok(Err(e)) => note_error(&mut w, e),
                Err(_) => note_error(&mut w, StoreError("connect timed out".into())),
            }
            if store.is_none() {
                tokio::time::sleep(ERROR_PAUSE).await;
            }
            continue;
        };
        let result = match tokio::time::timeout(op_timeout, current.write(key, &value)).await {
            Ok(r) => r,
            Err(_) => Err(StoreError(format!("timed out after {op_timeout:?}"))),
        };
        let now = Instant::now();
        match result {
            Ok(()) => {
                let now_ms = unix_ms();
                let pause = now.duration_since(last_ok.0);
                // Only pauses after both writers were ready can be the
                // failover: the caller kills after "ready".
                let armed = ready.load(Ordering::SeqCst) >= 2;
                if armed && w.gap.is_none_or(|(g, _, _)| pause > g) {
                    w.gap = Some((pause, last_ok.1, now_ms));
                }
                last_ok = (now, now_ms);
                w.writes += 1;
                if w.writes == READY_AFTER_WRITES && ready.fetch_add(1, Ordering::SeqCst) == 1 {
                    eprintln!("ready");
                    let _ = std::io::stderr().flush();
                }
                if let Some((_, _, end_ms)) = w.gap {
                    let long_enough = now.duration_since(started) >= RUN_MIN;
                    if long_enough && now_ms.saturating_sub(end_ms) >= SETTLE.as_millis() {
                        break;
                    }
                }
            }
            Err(e) => {
                let expired = e.0.contains("xpired");
                note_error(&mut w, e);
                // The cluster writer starts over with a fresh session; the
                // session writer only if its session is gone (expired, or
                // silent past its timeout), as an application would.
                if fresh_on_error || expired || now.duration_since(last_ok.0) > plan.session_timeout
                {
                    // Dropped, not closed: the server may be gone.
                    store = None;
                }
                tokio::time::sleep(ERROR_PAUSE).await;
            }
        }
    }
    if let Some(s) = store {
        let _ = tokio::time::timeout(Duration::from_secs(2), s.close()).await;
    }
    w
}

fn note_error(w: &mut Writer, e: StoreError) {
    w.errors += 1;
    if w.first_error.is_none() {
        w.first_error = Some(e.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_names_the_session_writer_by_prefix() {
        let cluster = Writer {
            gap: Some((Duration::from_millis(1500), 10, 1510)),
            writes: 7,
            ..Writer::default()
        };
        let session = Writer {
            first_error: Some("said \"no\"".into()),
            ..Writer::default()
        };
        let doc = FailoverDoc {
            system: "zab",
            workload: "failover",
            cluster: cluster.doc(),
            session: session.doc(),
        };
        let line = serde_json::to_string(&doc).expect("JSON");
        assert!(
            line.starts_with("{\"system\":\"zab\",\"workload\":\"failover\","),
            "{line}"
        );
        let v: serde_json::Value = serde_json::from_str(&line).expect("JSON");
        assert_eq!(v["recovered"], true);
        assert_eq!(v["gap_ms"], 1500.0);
        assert_eq!(v["gap_end_unix_ms"], 1510);
        assert_eq!(v["session_recovered"], false);
        assert_eq!(v["session_first_error"], "said \"no\"");
        assert!(v.get("first_error").is_none(), "{line}");
    }
}
