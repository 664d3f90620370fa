//! `--workload first-read`: how long until an ensemble that is (re)starting
//! serves a linearizable read. Tries the servers in turn, a fresh session
//! each time, until a linearizable read of `/bench` succeeds on one, and
//! reports the time from its own start (scripts/bench.sh starts it together
//! with the servers, after stopping them, for the scale mode's recovery
//! time).

use std::time::{Duration, Instant};

use crate::store::{Connect, Read, Store, StoreError};

/// Pause between attempts, so a refused connection is not a hot loop.
const RETRY_PAUSE: Duration = Duration::from_millis(20);

/// What to try, and for how long.
#[derive(Clone, Debug)]
pub struct FirstReadPlan {
    pub servers: Vec<String>,
    pub session_timeout: Duration,
    /// Per connect and per read.
    pub op_timeout: Duration,
    /// Gives up after this long.
    pub limit: Duration,
}

#[derive(Debug, serde::Serialize)]
struct FirstRead {
    system: &'static str,
    workload: &'static str,
    ms: u64,
    attempts: u64,
    server: String,
}

/// Waits for the first linearizable read; its JSON line, or an error once
/// `plan.limit` has passed.
pub async fn run<S: Store>(plan: &FirstReadPlan) -> Result<String, StoreError> {
    let started = Instant::now();
    let mut attempts = 0u64;
    let mut last_error = String::from("no attempt made");
    for server in plan.servers.iter().cycle() {
        if started.elapsed() >= plan.limit {
            break;
        }
        attempts += 1;
        let to = Connect {
            servers: vec![server.clone()],
            session_timeout: plan.session_timeout,
            lifetime: plan.limit,
        };
        let read = async {
            let store = S::connect(to).await?;
            let r = store.read("/bench", Read::Linearizable).await;
            store.close().await;
            r
        };
        match tokio::time::timeout(plan.op_timeout, read).await {
            Ok(Ok(())) => {
                let line = FirstRead {
                    system: S::NAME,
                    workload: "first-read",
                    ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
                    attempts,
                    server: server.clone(),
                };
                return serde_json::to_string(&line)
                    .map_err(|e| StoreError(format!("encoding the result: {e}")));
            }
            Ok(Err(e)) => last_error = e.0,
            Err(_) => last_error = format!("{server}: no answer within {:?}", plan.op_timeout),
        }
        tokio::time::sleep(RETRY_PAUSE).await;
    }
    Err(StoreError(format!(
        "no linearizable read within {:?} ({attempts} attempts; last: {last_error})",
        plan.limit
    )))
}
