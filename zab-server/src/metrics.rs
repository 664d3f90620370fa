//! The server's metrics, on the `prometheus` crate: one registry per server
//! holding the series the hot paths update (histograms and counters, a few
//! atomic adds per observation, no lock) and the gauges set from the
//! driver's latest [`Status`] when `/metrics` is scraped.
//!
//! Names follow Prometheus conventions: a `zab_` prefix, base units
//! (seconds, bytes), `_total` on counters. Every series has `# HELP`.
//! `docs/deployment.md` (Monitoring) lists them;
//! `packaging/grafana/zab-dashboard.json` graphs them.

use prometheus::core::Collector;
use prometheus::{
    Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

use crate::core::Status;

/// Latency bucket upper bounds, in seconds: 100 µs to 10 s.
const LATENCY_BUCKETS_S: [f64; 15] = [
    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    10.0,
];

/// Buckets for what takes seconds to minutes: snapshots, elections.
const SLOW_BUCKETS_S: [f64; 12] = [
    0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];

/// Why the client port refuses a connection before its session: more
/// than `CONNECTIONS_PER_ADDRESS_MAX` from one address, or a TLS handshake
/// that failed or did not come in time.
pub const REJECTION_REASONS: [&str; 2] = ["per_address_limit", "tls_handshake"];

/// Every series the server exports, and the registry that renders them.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    /// Held from setting the status gauges to gathering them: two scrapes
    /// at once must not both add the core's new events to the counters,
    /// nor one reset the lag series the other is about to gather.
    rendering: std::sync::Arc<std::sync::Mutex<()>>,
    /// One group-commit batch: apply the writes, then fdatasync.
    pub fsync: Histogram,
    /// A client write, from its arrival at this server's core to its reply.
    pub commit: Histogram,
    /// A client read, from its arrival at the core to its reply (the wait
    /// behind the connection's earlier writes and syncs included).
    pub read: Histogram,
    /// A client sync, from its arrival to the leader's confirmation.
    pub sync: Histogram,
    /// Encoding and writing one snapshot to disk.
    pub snapshot: Histogram,
    pub snapshot_bytes: IntGauge,
    pub snapshot_failures: IntCounter,
    pub snapshots_superseded: IntCounter,
    /// Time without a working quorum: from leaving broadcast (or starting)
    /// to serving again (election, discovery, synchronization).
    pub election: Histogram,
    pub client_received_bytes: IntCounter,
    pub client_sent_bytes: IntCounter,
    pub client_requests: IntCounter,
    pub client_accepted: IntCounter,
    /// Connections refused or dropped before a session: by `reason`.
    pub client_rejected: IntCounterVec,
    status: StatusGauges,
}

/// The gauges that mirror [`Status`], set at scrape time.
#[derive(Debug, Clone)]
struct StatusGauges {
    role: IntGaugeVec,
    serving: IntGauge,
    epoch: IntGauge,
    applied_zxid: IntGauge,
    last_logged_zxid: IntGauge,
    znodes: IntGauge,
    ephemerals: IntGauge,
    data_bytes: IntGauge,
    watches: IntGauge,
    watch_resume_changes: IntGauge,
    watch_resume_floor: IntGauge,
    log_window_bytes: IntGauge,
    sessions: IntGauge,
    connections: IntGauge,
    outstanding: IntGauge,
    learners: IntGaugeVec,
    learner_lag: IntGaugeVec,
    protocol: IntCounterVec,
    build: IntGaugeVec,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

/// Registers `c` in `r`. Names are fixed in this file, so a clash is a
/// programming error that the unit tests catch.
fn reg<C: Collector + Clone + 'static>(r: &Registry, c: C) -> C {
    r.register(Box::new(c.clone()))
        .expect("metric names are unique");
    c
}

fn histogram(r: &Registry, name: &str, help: &str, buckets: &[f64]) -> Histogram {
    let opts = HistogramOpts::new(name, help).buckets(buckets.to_vec());
    reg(r, Histogram::with_opts(opts).expect("valid histogram"))
}

fn counter(r: &Registry, name: &str, help: &str) -> IntCounter {
    reg(r, IntCounter::new(name, help).expect("valid counter"))
}

fn gauge(r: &Registry, name: &str, help: &str) -> IntGauge {
    reg(r, IntGauge::new(name, help).expect("valid gauge"))
}

fn gauges(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    reg(
        r,
        IntGaugeVec::new(Opts::new(name, help), labels).expect("valid gauge"),
    )
}

fn counters(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    reg(
        r,
        IntCounterVec::new(Opts::new(name, help), labels).expect("valid counter"),
    )
}

/// A zxid as a gauge value: zxids stay below 2^63 (epochs are 32-bit and
/// never reach the sign bit in practice); saturate rather than wrap.
fn zxid_value(z: zab_core::Zxid) -> i64 {
    i64::try_from(z.0).unwrap_or(i64::MAX)
}

fn count(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl Metrics {
    pub fn new() -> Metrics {
        let r = Registry::new();
        // process_cpu_seconds_total, process_resident_memory_bytes,
        // process_open_fds and the rest, read from /proc at each scrape.
        #[cfg(target_os = "linux")]
        r.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))
        .expect("metric names are unique");
        let lat = &LATENCY_BUCKETS_S;
        let status = StatusGauges {
            role: gauges(&r, "zab_role", "1 for this server's current role, 0 for the others.", &["role"]),
            serving: gauge(&r, "zab_serving", "1 while this server is in a working quorum and serves clients (what /readyz reports)."),
            epoch: gauge(&r, "zab_epoch", "The epoch of the leader this server follows or is."),
            applied_zxid: gauge(&r, "zab_applied_zxid", "The last transaction applied to this server's tree."),
            last_logged_zxid: gauge(&r, "zab_last_logged_zxid", "The last transaction in this server's log (durable or being written)."),
            znodes: gauge(&r, "zab_znodes", "Nodes in the tree."),
            ephemerals: gauge(&r, "zab_ephemerals", "Ephemeral nodes in the tree."),
            data_bytes: gauge(&r, "zab_data_bytes", "Bytes the tree's paths, data and ACLs take (what max_data_bytes bounds)."),
            watches: gauge(&r, "zab_watches", "Watches armed on this server, all sessions and kinds."),
            watch_resume_changes: gauge(&r, "zab_watch_resume_changes", "Recent changes held for watchers that reconnect (resumable watches)."),
            watch_resume_floor: gauge(&r, "zab_watch_resume_floor_zxid", "A watcher that saw this zxid or a later one resumes without ContinuityLost."),
            log_window_bytes: gauge(&r, "zab_log_window_bytes", "Payload bytes of recent transactions held in memory for DIFFs (diff_window_txns/diff_window_bytes bound it)."),
            sessions: gauge(&r, "zab_sessions", "Sessions in the ensemble (replicated: the same on every server)."),
            connections: gauge(&r, "zab_client_connections", "Client connections open on this server."),
            outstanding: gauge(&r, "zab_outstanding_requests", "Writes, syncs and session changes of this server's clients waiting for the quorum."),
            learners: gauges(&r, "zab_learners", "Leader only: its learners by state (synced: receiving proposals; syncing: being brought up to date).", &["state"]),
            learner_lag: gauges(&r, "zab_learner_lag_transactions", "Leader only: transactions the learner has not acknowledged yet.", &["peer"]),
            protocol: counters(&r, "zab_protocol_events_total", "Zab protocol events on this server: elections, quorums established, proposals, syncs answered, epoch bumps, messages dropped as stale, protocol errors.", &["event"]),
            build: gauges(&r, "zab_build_info", "Always 1; the labels name the server's version.", &["version"]),
        };
        status
            .build
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        let client_rejected = counters(
            &r,
            "zab_client_connections_rejected_total",
            "Client connections refused or closed before their session: by reason.",
            &["reason"],
        );
        // Known reasons start at 0, so a rate over them is defined before
        // the first refusal (Prometheus practice for labelled counters).
        for reason in REJECTION_REASONS {
            client_rejected.with_label_values(&[reason]);
        }
        Metrics {
            fsync: histogram(&r, "zab_fsync_seconds", "One group-commit batch: apply the writes, then fdatasync.", lat),
            commit: histogram(&r, "zab_commit_seconds", "A client write, from its arrival at this server to its reply.", lat),
            read: histogram(&r, "zab_read_seconds", "A client read, from its arrival at this server to its reply (waits behind the connection's earlier writes included).", lat),
            sync: histogram(&r, "zab_sync_seconds", "A client sync, from its arrival at this server to the leader's confirmation.", lat),
            snapshot: histogram(&r, "zab_snapshot_seconds", "Encoding and writing one snapshot, off the driver.", &SLOW_BUCKETS_S),
            snapshot_bytes: gauge(&r, "zab_snapshot_last_bytes", "Size of the newest snapshot written."),
            snapshot_failures: counter(&r, "zab_snapshot_failures_total", "Snapshots that could not be written (the log is kept)."),
            snapshots_superseded: counter(&r, "zab_snapshots_superseded_total", "Snapshots dropped unwritten because a newer one was asked for while one was being written."),
            election: histogram(&r, "zab_election_seconds", "Time without a working quorum: from leaving broadcast (or starting) to serving again.", &SLOW_BUCKETS_S),
            client_received_bytes: counter(&r, "zab_client_received_bytes_total", "Bytes received from clients."),
            client_sent_bytes: counter(&r, "zab_client_sent_bytes_total", "Bytes sent to clients."),
            client_requests: counter(&r, "zab_client_requests_total", "Request frames received from clients (pings included)."),
            client_accepted: counter(&r, "zab_client_connections_accepted_total", "Client connections accepted (over TLS: with their handshake done)."),
            client_rejected,
            registry: r,
            rendering: Default::default(),
            status,
        }
    }

    /// The Prometheus text exposition (format 0.0.4) of every series, with
    /// the gauges set from `status` first.
    pub fn render(&self, status: &Status, id: u64) -> String {
        let _one_at_a_time = self.rendering.lock().unwrap_or_else(|e| e.into_inner());
        self.set_status(status, id);
        let mut out = String::new();
        // Encoding into a String fails only on a malformed family, which
        // the registry never holds.
        let _ = TextEncoder::new().encode_utf8(&self.registry.gather(), &mut out);
        out
    }

    fn set_status(&self, s: &Status, id: u64) {
        let g = &self.status;
        let (role, _, epoch) = crate::admin::role_parts(&s.role, id);
        for r in ["looking", "following", "leading", "observing"] {
            g.role.with_label_values(&[r]).set(i64::from(r == role));
        }
        g.serving.set(i64::from(crate::admin::serving(&s.role)));
        g.epoch.set(i64::from(epoch));
        g.applied_zxid.set(zxid_value(s.applied));
        g.last_logged_zxid.set(zxid_value(s.last_logged));
        g.znodes.set(count(s.znodes));
        g.ephemerals.set(count(s.ephemerals));
        g.data_bytes
            .set(i64::try_from(s.data_bytes).unwrap_or(i64::MAX));
        g.watches.set(count(s.watches));
        g.watch_resume_changes.set(count(s.watch_resume_changes));
        g.watch_resume_floor.set(zxid_value(s.watch_resume_floor));
        g.log_window_bytes.set(count(s.window_bytes));
        g.sessions.set(count(s.sessions));
        g.connections.set(count(s.connections));
        g.outstanding.set(count(s.outstanding));
        let synced = s.learners.iter().filter(|l| l.synced).count();
        g.learners.with_label_values(&["synced"]).set(count(synced));
        g.learners
            .with_label_values(&["syncing"])
            .set(count(s.learners.len() - synced));
        // Learners come and go: only the current ones have a lag series.
        g.learner_lag.reset();
        for l in &s.learners {
            let lag = lag(s.last_logged, l.acked);
            g.learner_lag
                .with_label_values(&[&l.id.0.to_string()])
                .set(i64::try_from(lag).unwrap_or(i64::MAX));
        }
        let st = &s.stats;
        let events = [
            ("elections", st.elections),
            ("established", st.established),
            ("proposals", st.proposals),
            ("syncs_answered", st.syncs_answered),
            ("epoch_bumps", st.epoch_bumps),
            ("dropped", st.dropped),
            ("protocol_errors", st.protocol_errors),
        ];
        for (event, total) in events {
            let c = g.protocol.with_label_values(&[event]);
            // The core counts; the counter catches up to its total.
            c.inc_by(total.saturating_sub(c.get()));
        }
    }
}

/// Transactions between `acked` and `last`: the counter difference within
/// one epoch; from an earlier epoch, every transaction of the current one.
fn lag(last: zab_core::Zxid, acked: zab_core::Zxid) -> u64 {
    if acked >= last {
        0
    } else if acked.epoch() == last.epoch() {
        u64::from(last.counter() - acked.counter())
    } else {
        u64::from(last.counter())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use zab_core::Zxid;

    #[test]
    fn every_series_has_help_and_a_type_and_buckets_are_cumulative() {
        let m = Metrics::new();
        m.commit.observe(Duration::from_micros(50).as_secs_f64());
        m.commit.observe(Duration::from_millis(3).as_secs_f64());
        m.commit.observe(Duration::from_secs(50).as_secs_f64());
        let text = m.render(&Status::default(), 1);
        assert!(
            text.contains("zab_commit_seconds_bucket{le=\"0.0001\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("zab_commit_seconds_bucket{le=\"0.005\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("zab_commit_seconds_bucket{le=\"+Inf\"} 3\n"),
            "{text}"
        );
        assert!(text.contains("zab_commit_seconds_count 3\n"), "{text}");
        let lines: Vec<&str> = text.lines().collect();
        let helps = lines.iter().filter(|l| l.starts_with("# HELP ")).count();
        let types = lines.iter().filter(|l| l.starts_with("# TYPE ")).count();
        assert!(helps >= 30, "{helps} families: {text}");
        assert_eq!(helps, types, "{text}");
        assert!(text.contains(&format!(
            "zab_build_info{{version=\"{}\"}} 1\n",
            env!("CARGO_PKG_VERSION")
        )));
    }

    #[test]
    fn learner_lag_counts_transactions_across_epochs() {
        let z = |e, c| Zxid::new(zab_core::Epoch(e), c);
        assert_eq!(lag(z(3, 10), z(3, 4)), 6);
        assert_eq!(lag(z(3, 10), z(2, 400)), 10);
        assert_eq!(lag(z(3, 10), z(3, 10)), 0);
        assert_eq!(lag(z(3, 10), z(3, 11)), 0);
    }
}
