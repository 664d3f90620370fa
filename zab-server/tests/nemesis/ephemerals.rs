//! The ephemeral workload: sessions create an ephemeral node, then close,
//! abandon (so the session expires) or keep their session; at the end a
//! node must exist exactly when its session lives.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use zab_client::{Client, Consistency, CreateMode, Error};
use zab_tests::sim::rng::Rng;

use super::{common, Shared, EPHEMERAL_SESSION_MS};

#[derive(Debug)]
enum Fate {
    /// Closed with an acknowledgement: the node went with it.
    Closed,
    /// Abandoned (`Client::abandon`): the session must expire.
    Abandoned,
    /// The client was told its session expired.
    Expired,
    /// Still open at the end (or its close had an unknown outcome).
    Open,
}

pub struct Ephemeral {
    path: String,
    /// Whether the create was acknowledged (else its outcome is unknown).
    acknowledged: bool,
    session: u64,
    fate: Fate,
    client: Option<Client>,
}

pub async fn ephemeral_worker(shared: Shared, log: Arc<Mutex<Vec<Ephemeral>>>) {
    let mut rng = Rng::new(0xe9e);
    let mut n = 0;
    while Instant::now() < shared.deadline {
        n += 1;
        let Some(client) = shared.session(n, EPHEMERAL_SESSION_MS).await else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        let path = format!("/eph/e-{n}");
        let created = client.create(&path, b"", CreateMode::Ephemeral).await;
        shared.count();
        if let Err(Error::Server(_) | Error::SessionExpired | Error::NoServer(_)) = created {
            // Definitely not created; the session still has to end.
            let _ = client.close().await;
            continue;
        }
        // Keep the session busy for a while, as an owner would.
        let hold = Instant::now() + Duration::from_millis(300 + rng.below(2500));
        while Instant::now() < hold.min(shared.deadline) {
            let _ = client.exists(&path, Consistency::Local, false).await;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let session = client.session_id();
        let fate = if client.session_state() == zab_client::SessionState::Expired {
            (Fate::Expired, None)
        } else if Instant::now() >= shared.deadline {
            (Fate::Open, Some(client))
        } else if rng.below(2) == 0 {
            // Left to expire, as a crashed owner's would.
            client.abandon();
            (Fate::Abandoned, None)
        } else {
            match client.close().await {
                Ok(()) => (Fate::Closed, None),
                Err(Error::SessionExpired) => (Fate::Expired, None),
                // Unknown: the node goes when the session ends, whenever that is.
                Err(_) => (Fate::Abandoned, None),
            }
        };
        log.lock().expect("ephemeral log").push(Ephemeral {
            path,
            acknowledged: created.is_ok(),
            session,
            fate: fate.0,
            client: fate.1,
        });
    }
}

/// A node exists exactly while its session lives.
pub async fn check_ephemerals(
    checker: &Client,
    log: Vec<Ephemeral>,
    anomalies: &mut Vec<String>,
) -> u64 {
    let mut checked = 0;
    // Sessions that ended must lose their nodes once expiry has run; the
    // leader's timers restart after an election, so allow a few timeouts.
    let deadline = Instant::now() + Duration::from_secs(20);
    for e in log {
        checked += 1;
        match e.fate {
            Fate::Open => {
                let client = e.client.expect("open sessions keep their client");
                match common::retry(|| client.exists(&e.path, Consistency::Linearizable, false))
                    .await
                {
                    Ok(Some(st)) if st.ephemeral_owner == e.session => {}
                    Ok(Some(st)) => anomalies.push(format!(
                        "{}: owned by {:#x}, created by {:#x}",
                        e.path, st.ephemeral_owner, e.session
                    )),
                    Ok(None) if e.acknowledged => anomalies.push(format!(
                        "{}: session {:#x} lives, but its acknowledged ephemeral is gone",
                        e.path, e.session
                    )),
                    Ok(None) => {} // the create's outcome was unknown
                    Err(Error::SessionExpired) => {
                        absent_by(checker, &e.path, deadline, anomalies).await;
                    }
                    Err(err) => anomalies.push(format!("{}: final check failed: {err}", e.path)),
                }
            }
            Fate::Closed | Fate::Abandoned | Fate::Expired => {
                absent_by(checker, &e.path, deadline, anomalies).await;
            }
        }
    }
    checked
}

async fn absent_by(checker: &Client, path: &str, deadline: Instant, anomalies: &mut Vec<String>) {
    loop {
        match common::retry(|| checker.exists(path, Consistency::Linearizable, false)).await {
            Ok(None) => return,
            Ok(Some(st)) if Instant::now() >= deadline => {
                anomalies.push(format!(
                    "{path}: its session {:#x} ended, but the node is still there",
                    st.ephemeral_owner
                ));
                return;
            }
            Ok(Some(_)) => tokio::time::sleep(Duration::from_millis(200)).await,
            Err(err) => {
                anomalies.push(format!("{path}: final check failed: {err}"));
                return;
            }
        }
    }
}
