//! ZooKeeper's four-letter words on the ZooKeeper client port: a
//! connection whose first four bytes are `ruok`, `isro`, `srvr`, `stat`,
//! `mntr` or `conf` gets a line of text and is closed, as ZooKeeper answers
//! them (its monitoring tools and health checks send these). Each word is on
//! or off by configuration (`zookeeper_four_letter_words`); one that is off
//! gets ZooKeeper's "not in the whitelist" line, as do ZooKeeper's other
//! words (cons, dump, wchs...), which this port does not answer (the admin
//! port has `/cons`, `/wchs`, `/dump`). Latencies are the
//! server's write latency (`zab_commit_seconds`).

use std::fmt::Write as _;

use tokio::sync::watch;
use zab_core::Role;

use crate::core::Status;

/// The words this server can answer.
pub const WORDS: [&str; 6] = ["ruok", "isro", "srvr", "stat", "mntr", "conf"];

/// Every word ZooKeeper knows: those this server does not answer get the
/// "not in the whitelist" line, not a dropped connection.
const ZOOKEEPER_WORDS: [&str; 18] = [
    "conf", "cons", "crst", "dirs", "dump", "envi", "gtmk", "hash", "isro", "mntr", "ruok", "srst",
    "srvr", "stat", "stmk", "wchc", "wchp", "wchs",
];

/// What the answers are made from.
#[derive(Debug, Clone)]
pub struct FourLetterWords {
    /// The words that are answered.
    pub allowed: Vec<String>,
    pub status: watch::Receiver<Status>,
    pub id: u64,
    /// `conf`'s answer: the configuration as `key=value` lines.
    pub conf: String,
}

/// The word `first` spells, if it is one of ZooKeeper's.
pub fn word(first: &[u8]) -> Option<&'static str> {
    ZOOKEEPER_WORDS
        .iter()
        .copied()
        .find(|w| w.as_bytes() == first)
}

impl FourLetterWords {
    /// The answer to `word` (one this server knows).
    pub fn answer(&self, word: &str, metrics: &crate::metrics::Metrics) -> String {
        if !self.allowed.iter().any(|w| w == word) || !WORDS.contains(&word) {
            return format!("{word} is not executed because it is not in the whitelist.\n");
        }
        let s = self.status.borrow().clone();
        let serving = crate::admin::serving(&s.role);
        match word {
            "ruok" => "imok".to_string(),
            // There is no read-only mode: a serving server is read-write.
            "isro" => "rw".to_string(),
            "conf" => self.conf.clone(),
            _ if !serving => {
                "This ZooKeeper instance is not currently serving requests\n".to_string()
            }
            "srvr" => srvr(&s, metrics),
            "stat" => format!("Clients:\n\n{}", srvr(&s, metrics)),
            _ => mntr(&s, metrics),
        }
    }
}

/// ZooKeeper's names for the roles.
fn mode(role: &Role) -> &'static str {
    match role {
        Role::Leading { .. } => "leader",
        Role::Following { .. } => "follower",
        Role::Observing { .. } => "observer",
        Role::Looking => "looking",
    }
}

fn srvr(s: &Status, metrics: &crate::metrics::Metrics) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Zookeeper version: zab-server {}",
        env!("CARGO_PKG_VERSION")
    );
    let (min, avg, max) = latency_ms(&metrics.commit);
    let _ = writeln!(out, "Latency min/avg/max: {min}/{avg:.4}/{max}");
    // Replies are not counted as packets here: Received only.
    let _ = writeln!(out, "Received: {}", metrics.client_requests.get());
    let _ = writeln!(out, "Connections: {}", s.connections);
    let _ = writeln!(out, "Outstanding: {}", s.outstanding);
    let _ = writeln!(out, "Zxid: {}", s.applied);
    let _ = writeln!(out, "Mode: {}", mode(&s.role));
    let _ = writeln!(out, "Node count: {}", s.znodes);
    out
}

/// Write latency in ms as srvr shows it. The histogram keeps buckets, not
/// extremes: min is the upper bound of the lowest bucket anything fell in
/// (0 if that is the first), max that of the highest (the last finite
/// bound if a write took longer), avg is exact.
fn latency_ms(h: &prometheus::Histogram) -> (f64, f64, f64) {
    use prometheus::core::Collector;
    let count = h.get_sample_count();
    if count == 0 {
        return (0.0, 0.0, 0.0);
    }
    let avg = h.get_sample_sum() * 1000.0 / count as f64;
    let families = h.collect();
    let Some(metric) = families.first().and_then(|f| f.get_metric().first()) else {
        return (0.0, avg, 0.0);
    };
    let buckets = metric.get_histogram().get_bucket();
    let (mut min, mut max, mut below) = (None, 0.0, 0);
    for (i, b) in buckets.iter().enumerate() {
        let in_bucket = b.cumulative_count() - below;
        below = b.cumulative_count();
        if in_bucket > 0 {
            let lower = match i {
                0 => 0.0,
                _ => buckets[i - 1].upper_bound() * 1000.0,
            };
            min.get_or_insert(lower);
            max = b.upper_bound() * 1000.0;
        }
    }
    if below < count {
        max = buckets.last().map_or(0.0, |b| b.upper_bound() * 1000.0);
    }
    (min.unwrap_or(max), avg, max)
}

fn mntr(s: &Status, metrics: &crate::metrics::Metrics) -> String {
    let (_, avg, _) = latency_ms(&metrics.commit);
    let mut lines = vec![
        (
            "zk_version",
            format!("zab-server {}", env!("CARGO_PKG_VERSION")),
        ),
        ("zk_avg_latency", format!("{avg:.4}")),
        (
            "zk_packets_received",
            metrics.client_requests.get().to_string(),
        ),
        ("zk_num_alive_connections", s.connections.to_string()),
        ("zk_outstanding_requests", s.outstanding.to_string()),
        ("zk_server_state", mode(&s.role).to_string()),
        ("zk_znode_count", s.znodes.to_string()),
        ("zk_watch_count", s.watches.to_string()),
        ("zk_ephemerals_count", s.ephemerals.to_string()),
        ("zk_approximate_data_size", s.data_bytes.to_string()),
        ("zk_global_sessions", s.sessions.to_string()),
    ];
    if matches!(s.role, Role::Leading { .. }) {
        let synced = s.learners.iter().filter(|l| l.synced).count();
        lines.push(("zk_learners", s.learners.len().to_string()));
        lines.push(("zk_synced_followers", synced.to_string()));
        lines.push(("zk_pending_syncs", (s.learners.len() - synced).to_string()));
    }
    lines
        .into_iter()
        .map(|(k, v)| format!("{k}\t{v}\n"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(allowed: &[&str], role: Role) -> FourLetterWords {
        let (_, status) = watch::channel(Status {
            role,
            znodes: 7,
            ephemerals: 2,
            ..Status::default()
        });
        FourLetterWords {
            allowed: allowed.iter().map(ToString::to_string).collect(),
            status,
            id: 1,
            conf: "clientPort=2181\n".into(),
        }
    }

    #[test]
    fn words_are_known_by_their_bytes_and_answered_as_zookeeper_does() {
        assert_eq!(word(b"mntr"), Some("mntr"));
        assert_eq!(word(&[0, 0, 0, 45]), None);
        let m = crate::metrics::Metrics::new();
        let leading = Role::Leading {
            term: zab_core::Epoch(1),
            epoch: zab_core::Epoch(1),
            phase: zab_core::Phase::Broadcast,
        };
        let w = words(&["ruok", "mntr", "srvr"], leading);
        assert_eq!(w.answer("ruok", &m), "imok");
        let mntr = w.answer("mntr", &m);
        assert!(mntr.contains("zk_server_state\tleader\n"), "{mntr}");
        assert!(mntr.contains("zk_znode_count\t7\n") && mntr.contains("zk_ephemerals_count\t2\n"));
        assert!(w.answer("srvr", &m).contains("Mode: leader\n"));
        assert_eq!(
            w.answer("conf", &m),
            "conf is not executed because it is not in the whitelist.\n"
        );
        // One of ZooKeeper's that this server never answers.
        assert_eq!(word(b"wchp"), Some("wchp"));
        let every = words(&ZOOKEEPER_WORDS, Role::Looking);
        assert!(every.answer("wchp", &m).contains("not in the whitelist"));
        let looking = words(&["srvr"], Role::Looking);
        assert!(looking.answer("srvr", &m).contains("not currently serving"));
    }
}
