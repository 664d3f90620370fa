//! Starting a server: recover storage, build the core, open the quorum and
//! client ports, run the driver until SIGTERM or a fatal storage error.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tracing::{error, info};
use zab_core::{Input, Node, PeerId};

use crate::config::Config;
use crate::core::{Frontend, ServerCore};
use crate::peer::{Peers, Transport};
use crate::replica::Replica;
use crate::server::{Application, Driver, ShellClock};
use crate::storage::group_commit::GroupCommit;
use crate::storage::{RealFs, Store, StoreConfig};

/// Inputs queued for the driver before senders wait (backpressure on peers).
const INPUT_QUEUE_MAX: usize = 65_536;

/// The real file system, or in test builds (`defects` feature) with
/// `ZAB_TEST_POWER_LOSS=1`, one that loses unsynced writes on kill -9.
fn file_system() -> std::sync::Arc<dyn crate::storage::Fs> {
    #[cfg(feature = "defects")]
    if std::env::var("ZAB_TEST_POWER_LOSS").is_ok_and(|v| v == "1") {
        tracing::warn!("test mode: unsynced writes live in memory and die with the process");
        return crate::storage::power_loss_fs::PowerLossFs::shared();
    }
    RealFs::shared()
}

/// Storage settings; in test builds (`defects` feature),
/// `ZAB_STORAGE_DEFECT=cut_corruption_as_torn_tail` breaks the rule that
/// damage to what was reported durable is never cut as a torn tail.
fn store_config() -> StoreConfig {
    #[allow(unused_mut)]
    let mut c = StoreConfig::default();
    #[cfg(feature = "defects")]
    if std::env::var("ZAB_STORAGE_DEFECT").is_ok_and(|v| v == "cut_corruption_as_torn_tail") {
        tracing::warn!("test mode: damage in the durable log is cut like a torn tail");
        c.cut_corruption_as_torn_tail = true;
    }
    c
}

/// Why the server stopped.
#[derive(Debug)]
pub enum Stop {
    Signal,
    Fatal(String),
}

/// Runs one server until it is told to stop or cannot go on.
pub async fn serve(cfg: Config) -> Result<Stop, String> {
    // Before storage is touched: a server that cannot authenticate to its
    // peers must not start.
    let secret = cfg.peer_secret().map_err(|e| e.to_string())?;
    if secret.is_none() && cfg.servers.len() > 1 {
        tracing::warn!("peer authentication is off (insecure_no_peer_auth): anyone who can reach the peer port can act as any server");
    }
    let (store, recovery) = Store::open(file_system(), &cfg.data_dir, store_config())
        .map_err(|e| format!("cannot open data directory {}: {e}", cfg.data_dir.display()))?;
    let mut app = Replica::new();
    if let Some(snapshot) = &recovery.snapshot {
        let started = std::time::Instant::now();
        app.restore(&snapshot.content).map_err(|e| {
            format!(
                "snapshot {} does not load: {e}",
                snapshot.meta.path.display()
            )
        })?;
        info!(
            znodes = app.tree.node_count(),
            ms = started.elapsed().as_millis() as u64,
            "restored the tree from the snapshot"
        );
    }
    if recovery.truncated_bytes > 0 {
        info!(
            bytes = recovery.truncated_bytes,
            "cut a torn tail from the log"
        );
    }
    if let Some(damage) = &recovery.damage {
        error!(%damage, "rejoining as a non-voter: a leader will resynchronize this server, then it votes again");
    }
    let mut core_cfg = cfg.core();
    let mut id = [0u8; 8];
    getrandom::getrandom(&mut id).map_err(|e| format!("no random source: {e}"))?;
    // The name this server gives the ensemble if it is its first leader.
    core_cfg.new_ensemble_id = zab_core::EnsembleId(u64::from_be_bytes(id).max(1));
    // What a follower forwards is checked before it becomes a proposal.
    core_cfg.forwarded_check = Some(crate::replica::check_forwarded);
    let node = Node::new(core_cfg, recovery.restored)
        .map_err(|e| format!("cannot start the protocol: {e}"))?;
    let (inputs_tx, inputs_rx) = mpsc::channel::<Input>(INPUT_QUEUE_MAX);

    let durable_tx = inputs_tx.clone();
    let metrics = Arc::new(crate::metrics::Metrics::default());
    let gc = Arc::new(GroupCommit::start_measured(
        store,
        Box::new(move |through| {
            // The writer thread is not a tokio task: block until queued.
            let _ = durable_tx.blocking_send(Input::Persisted { through });
        }),
        Some(metrics.clone()),
    ));

    let (listen_peer, listen_client, listen_admin) = cfg.listen_addresses();
    let peer_listener = TcpListener::bind(&listen_peer)
        .await
        .map_err(|e| format!("cannot listen for peers on {listen_peer}: {e}"))?;
    let peers = Peers::default();
    let transport = Transport {
        me: PeerId(cfg.id),
        cluster_id: cfg.cluster_id,
        members: cfg
            .servers
            .iter()
            .filter(|m| m.id != cfg.id)
            .map(|m| (PeerId(m.id), m.peer.clone()))
            .collect(),
        peers: peers.clone(),
        inputs: inputs_tx.clone(),
        secret,
        liveness: cfg.liveness(),
    };
    tokio::spawn(transport.run(peer_listener));
    info!(
        id = cfg.id,
        version = env!("CARGO_PKG_VERSION"),
        peer = %listen_peer,
        client = %listen_client,
        "server started"
    );

    let client_listener = crate::listener::bind(&listen_client)
        .await
        .map_err(|e| format!("cannot listen for clients on {listen_client}: {e}"))?;
    let (clients_tx, clients_rx) = mpsc::channel(INPUT_QUEUE_MAX);
    let tls = match &cfg.client_tls {
        Some(t) => Some(t.acceptor().map_err(|e| format!("client_tls: {e}"))?),
        None => None,
    };
    let listener_cfg = crate::listener::ListenerConfig {
        frame_bytes_max: cfg.client_frame_bytes_max,
        stall: Duration::from_millis(u64::from(cfg.handshake_timeout_ms)),
        tls,
        metrics: metrics.clone(),
        four_letter_words: None,
    };
    let zk_listener = match cfg.zookeeper_listen_address() {
        Some(addr) => Some((
            crate::listener::bind(&addr)
                .await
                .map_err(|e| format!("cannot listen for ZooKeeper clients on {addr}: {e}"))?,
            addr,
        )),
        None => None,
    };
    let zk_clients = (clients_tx.clone(), listener_cfg.clone());
    tokio::spawn(crate::listener::listen(
        client_listener,
        clients_tx,
        listener_cfg,
        crate::listener::Protocol::Zab,
    ));
    let mut token_seed = [0u8; 8];
    getrandom::getrandom(&mut token_seed).map_err(|e| format!("no random source: {e}"))?;
    let frontend = Frontend::new(
        cfg.id,
        cfg.session_limits(),
        u64::from_be_bytes(token_seed),
        metrics.clone(),
    )
    .with_superusers(cfg.superusers());
    #[cfg(feature = "defects")]
    let frontend = match std::env::var("ZAB_SERVER_DEFECT") {
        Ok(name) => {
            let defects = crate::core::Defects::named(&name)
                .ok_or_else(|| format!("unknown server defect {name:?}"))?;
            tracing::warn!(defect = %name, "running with a deliberately broken server rule");
            frontend.with_defects(defects)
        }
        Err(_) => frontend,
    };
    let core = ServerCore::new(
        node,
        app,
        frontend,
        recovery.replay,
        cfg.snapshot_every_txns,
    )
    .with_snapshot_every_bytes(cfg.snapshot_every_bytes)
    .with_snapshot_log_percent(cfg.snapshot_log_percent)
    .with_diff_window(cfg.diff_window_txns, cfg.diff_window_bytes);
    let clock = ShellClock::default();
    let (driver, status) = Driver::new(core, gc.clone(), peers, clock, metrics.clone());
    let driver = driver.with_snapshot_pace(cfg.snapshot_write_mib_per_sec);
    let zk_status = status.clone();
    if let Some(admin) = listen_admin {
        let listener = TcpListener::bind(&admin)
            .await
            .map_err(|e| format!("cannot listen for admin requests on {admin}: {e}"))?;
        let tls = match &cfg.admin_tls {
            Some(t) => Some(t.acceptor().map_err(|e| format!("admin_tls: {e}"))?),
            None => None,
        };
        let sources = crate::admin::Sources {
            status,
            id: cfg.id,
            metrics: metrics.clone(),
            freezes: driver.freezes(),
            reports: driver.reports(),
            backups: cfg.admin_backups,
            conf: Arc::new(serde_json::to_value(&cfg).unwrap_or_default()),
        };
        tokio::spawn(crate::admin::serve((listener, tls), sources));
    }
    if let Some((listener, addr)) = zk_listener {
        let (events, mut zk_cfg) = zk_clients;
        zk_cfg.four_letter_words = Some(crate::listener::four_letter::FourLetterWords {
            allowed: cfg.zookeeper_four_letter_words.clone(),
            status: zk_status,
            id: cfg.id,
            conf: four_letter_conf(&cfg),
        });
        info!(zookeeper = %addr, "serving ZooKeeper's client protocol");
        let zk = crate::listener::Protocol::ZooKeeper;
        tokio::spawn(crate::listener::listen(listener, events, zk_cfg, zk));
    }
    let tick = Duration::from_millis(cfg.tick_ms);
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| format!("cannot watch SIGTERM: {e}"))?;
    let stop = tokio::select! {
        result = driver.run(inputs_rx, clients_rx, tick) => match result {
            Ok(()) => Stop::Signal,
            Err(e) => {
                error!(error = %e, "stopping");
                Stop::Fatal(e)
            }
        },
        _ = term.recv() => Stop::Signal,
        _ = tokio::signal::ctrl_c() => Stop::Signal,
    };
    info!(?stop, "server stopping");
    Ok(stop)
}

/// `conf`'s answer: the effective configuration as `key=value` lines (its
/// JSON's top-level scalars), `super_digest` redacted.
fn four_letter_conf(cfg: &Config) -> String {
    let Ok(serde_json::Value::Object(map)) = serde_json::to_value(cfg) else {
        return String::new();
    };
    map.iter()
        .filter(|(_, v)| !v.is_object() && !v.is_array() && !v.is_null())
        .map(|(k, v)| match v {
            serde_json::Value::String(s) => format!("{k}={s}\n"),
            other => format!("{k}={other}\n"),
        })
        .collect()
}
