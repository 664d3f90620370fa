//! Checkers for what the nemesis records besides registers (those go to
//! [`crate::linearizability`]): watch event streams and sequential creates.
//! Pure functions over recorded facts, each tested here on good and bad
//! inputs, so a checker that cannot fail would show.

use std::collections::{BTreeSet, HashMap, HashSet};

/// One event a watcher received, in arrival order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchRecord {
    /// A `ContinuityLost` marker: changes up to `zxid` may have been missed.
    pub continuity_lost: bool,
    pub path: String,
    pub zxid: u64,
}

/// What one watcher session saw of a persistent (recursive) watch.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WatchLog {
    /// The zxid the watch was registered at: changes after it are reported.
    pub registered_at: u64,
    pub events: Vec<WatchRecord>,
}

/// Checks one watcher against the acknowledged writes `(path, zxid)` under
/// its watch (each a change of one node, as register writes are):
/// - events arrive in zxid order (several at one zxid only for different
///   paths), and a `ContinuityLost` never goes back before an event already
///   seen, nor is followed by another event at its own zxid;
/// - an event at an acknowledged write's zxid is for that write's path (an
///   event cannot describe a change that never happened there);
/// - every acknowledged write after registration, up to the last event
///   received, has its own event unless a `ContinuityLost` declared the gap
///   it falls in.
///
/// Returns the anomalies found (at most a handful spelled out, then a count).
pub fn check_watch_log(log: &WatchLog, acked: &[(String, u64)]) -> Vec<String> {
    let mut anomalies = Vec::new();
    let written: HashMap<u64, &str> = acked.iter().map(|(p, z)| (*z, p.as_str())).collect();
    let mut last = 0;
    // Paths with an event at `last`; `sealed` once a ContinuityLost at
    // `last` has declared everything up to it.
    let mut at_last: BTreeSet<&str> = BTreeSet::new();
    let mut sealed = false;
    for e in &log.events {
        if e.continuity_lost {
            if e.zxid < last {
                anomalies.push(format!(
                    "ContinuityLost at {:#x} after an event at {last:#x}",
                    e.zxid
                ));
            } else {
                if e.zxid > last {
                    at_last.clear();
                }
                last = e.zxid;
                sealed = true;
            }
            continue;
        }
        if e.zxid > last {
            last = e.zxid;
            at_last.clear();
            at_last.insert(&e.path);
            sealed = false;
        } else if e.zxid < last || sealed || !at_last.insert(&e.path) {
            anomalies.push(format!(
                "event on {} at {:#x} after an event at {last:#x}",
                e.path, e.zxid
            ));
        }
        if let Some(path) = written.get(&e.zxid) {
            if *path != e.path {
                anomalies.push(format!(
                    "event on {} at {:#x}, where the acknowledged write was to {path}",
                    e.path, e.zxid
                ));
            }
        }
    }
    let Some(end) = log.events.last().map(|e| e.zxid) else {
        return anomalies;
    };
    let mut missed = 0;
    // Indexes, so each write costs a lookup rather than a scan: the running
    // maximum zxid in arrival order (the first event at or after a zxid is
    // where it first reaches it), and the events that are not markers.
    let reached: Vec<u64> = log
        .events
        .iter()
        .scan(0, |max, e| {
            *max = e.zxid.max(*max);
            Some(*max)
        })
        .collect();
    let seen: HashSet<(u64, &str)> = log
        .events
        .iter()
        .filter(|e| !e.continuity_lost)
        .map(|e| (e.zxid, e.path.as_str()))
        .collect();
    for (path, zxid) in acked {
        if *zxid <= log.registered_at || *zxid > end {
            continue;
        }
        // The first event at or after the write must be its own, or a
        // ContinuityLost covering it.
        let first = reached.partition_point(|max| max < zxid);
        let covered = match log.events.get(first) {
            Some(e) if e.continuity_lost => true,
            _ => seen.contains(&(*zxid, path.as_str())),
        };
        if !covered {
            missed += 1;
            if missed <= 5 {
                anomalies.push(format!(
                    "no event for the acknowledged write of {path} at {zxid:#x}"
                ));
            }
        }
    }
    if missed > 5 {
        anomalies.push(format!("{missed} acknowledged writes missed in all"));
    }
    anomalies
}

/// One sequential create as its client saw it (times on one clock).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SequentialCreate {
    pub invoke: u64,
    pub complete: u64,
    /// The number the server gave, if acknowledged; `None` if it definitely
    /// failed. Creates with unknown outcomes are only counted.
    pub seq: Option<u64>,
}

/// Sequential names are unique, ordered as the creates were in real time (a
/// create that finished before another began got the smaller number), and
/// every acknowledged one is `present` at the end; at most acknowledged +
/// `unknown` exist. Returns (acknowledged creates lost, anomalies).
pub fn check_sequential(
    creates: &[SequentialCreate],
    unknown: u64,
    present: &BTreeSet<u64>,
) -> (u64, Vec<String>) {
    let mut anomalies = Vec::new();
    let acked: Vec<(SequentialCreate, u64)> = creates
        .iter()
        .filter_map(|c| c.seq.map(|s| (*c, s)))
        .collect();
    let mut seen = BTreeSet::new();
    for (_, seq) in &acked {
        if !seen.insert(*seq) {
            anomalies.push(format!("number {seq} given twice"));
        }
    }
    // Sweep invocations in time order; the largest number among creates
    // completed before each invocation must be below that create's number.
    let mut by_complete = acked.clone();
    by_complete.sort_by_key(|(c, _)| c.complete);
    let mut by_invoke = acked.clone();
    by_invoke.sort_by_key(|(c, _)| c.invoke);
    let (mut i, mut max_done) = (0, None::<u64>);
    for (c, seq) in &by_invoke {
        while i < by_complete.len() && by_complete[i].0.complete < c.invoke {
            max_done = max_done.max(Some(by_complete[i].1));
            i += 1;
        }
        if let Some(done) = max_done {
            if *seq <= done {
                anomalies.push(format!(
                    "number {seq} given after {done} had been acknowledged"
                ));
            }
        }
    }
    let mut lost = 0;
    for (_, seq) in &acked {
        if !present.contains(seq) {
            lost += 1;
            if lost <= 5 {
                anomalies.push(format!("create {seq} acknowledged but gone"));
            }
        }
    }
    if lost > 5 {
        anomalies.push(format!("{lost} acknowledged creates gone in all"));
    }
    let allowed = acked.len() as u64 + unknown;
    if present.len() as u64 > allowed {
        anomalies.push(format!(
            "{} nodes exist, but only {} creates were acknowledged and {unknown} unknown",
            present.len(),
            acked.len()
        ));
    }
    (lost, anomalies)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(path: &str, zxid: u64) -> WatchRecord {
        WatchRecord {
            continuity_lost: false,
            path: path.into(),
            zxid,
        }
    }

    fn lost(zxid: u64) -> WatchRecord {
        WatchRecord {
            continuity_lost: true,
            path: "/r".into(),
            zxid,
        }
    }

    fn writes(list: &[(&str, u64)]) -> Vec<(String, u64)> {
        list.iter().map(|(p, z)| (p.to_string(), *z)).collect()
    }

    #[test]
    fn a_complete_ordered_watch_log_passes() {
        let log = WatchLog {
            registered_at: 10,
            events: vec![ev("/r/a", 11), ev("/r/b", 12), ev("/r/a", 14)],
        };
        // 9 is before registration, 20 after the last event: not required.
        let acked = writes(&[
            ("/r/a", 9),
            ("/r/a", 11),
            ("/r/b", 12),
            ("/r/a", 14),
            ("/r/b", 20),
        ]);
        assert!(check_watch_log(&log, &acked).is_empty());
    }

    #[test]
    fn a_missed_write_is_reported() {
        let log = WatchLog {
            registered_at: 10,
            events: vec![ev("/r/a", 11), ev("/r/a", 14)],
        };
        let acked = writes(&[("/r/a", 11), ("/r/b", 12), ("/r/a", 14)]);
        let a = check_watch_log(&log, &acked);
        assert_eq!(a.len(), 1, "{a:?}");
        assert!(a[0].contains("/r/b at 0xc"), "{a:?}");
    }

    #[test]
    fn an_event_for_the_wrong_path_does_not_cover_a_write() {
        let log = WatchLog {
            registered_at: 0,
            events: vec![ev("/r/a", 12)],
        };
        let a = check_watch_log(&log, &writes(&[("/r/b", 12)]));
        assert!(a.iter().any(|a| a.contains("no event for")), "{a:?}");
    }

    #[test]
    fn continuity_lost_excuses_the_gap_it_declares_and_no_more() {
        let log = WatchLog {
            registered_at: 10,
            events: vec![ev("/r/a", 11), lost(15), ev("/r/a", 17), ev("/r/a", 19)],
        };
        // 12..=15 fall in the declared gap; 18 comes after it and is missed.
        let acked = writes(&[
            ("/r/a", 11),
            ("/r/b", 12),
            ("/r/b", 15),
            ("/r/a", 17),
            ("/r/b", 18),
            ("/r/a", 19),
        ]);
        let a = check_watch_log(&log, &acked);
        assert_eq!(a.len(), 1, "{a:?}");
        assert!(a[0].contains("0x12"), "{a:?}");
    }

    #[test]
    fn several_events_at_one_zxid_pass_if_their_paths_differ() {
        // A multi (or a session's close) changes several nodes at one zxid.
        let log = WatchLog {
            registered_at: 0,
            events: vec![ev("/r/a", 12), ev("/r/b", 12), ev("/r/c", 13)],
        };
        assert!(check_watch_log(&log, &[]).is_empty());
    }

    #[test]
    fn a_continuity_lost_that_goes_back_is_reported() {
        let log = WatchLog {
            registered_at: 0,
            events: vec![ev("/r/a", 20), lost(15), ev("/r/a", 21)],
        };
        let a = check_watch_log(&log, &[]);
        assert_eq!(a.len(), 1, "{a:?}");
        assert!(a[0].contains("ContinuityLost at 0xf"), "{a:?}");
        // An event at the zxid a ContinuityLost already declared.
        let log = WatchLog {
            registered_at: 0,
            events: vec![lost(15), ev("/r/a", 15)],
        };
        assert_eq!(check_watch_log(&log, &[]).len(), 1);
    }

    #[test]
    fn an_event_at_another_writes_zxid_is_reported() {
        let log = WatchLog {
            registered_at: 0,
            events: vec![ev("/r/a", 11), ev("/r/a", 12)],
        };
        let a = check_watch_log(&log, &writes(&[("/r/a", 11), ("/r/b", 12)]));
        assert!(
            a.iter()
                .any(|a| a.contains("where the acknowledged write was to /r/b")),
            "{a:?}"
        );
    }

    #[test]
    fn events_out_of_zxid_order_are_reported() {
        let log = WatchLog {
            registered_at: 0,
            events: vec![ev("/r/a", 12), ev("/r/b", 11), ev("/r/a", 12)],
        };
        assert_eq!(check_watch_log(&log, &[]).len(), 2);
    }

    fn create(invoke: u64, complete: u64, seq: Option<u64>) -> SequentialCreate {
        SequentialCreate {
            invoke,
            complete,
            seq,
        }
    }

    #[test]
    fn ordered_unique_present_creates_pass() {
        let creates = [
            create(0, 10, Some(1)),
            create(5, 20, Some(3)), // overlaps the next: any order
            create(6, 21, Some(2)),
            create(30, 40, None),    // failed: no number
            create(50, 60, Some(5)), // 4 went to an unknown create
        ];
        let present = BTreeSet::from([1, 2, 3, 4, 5]);
        assert_eq!(check_sequential(&creates, 1, &present), (0, vec![]));
    }

    #[test]
    fn a_duplicate_an_inversion_a_loss_and_a_phantom_are_each_reported() {
        let dup = [create(0, 1, Some(1)), create(2, 3, Some(1))];
        let (_, a) = check_sequential(&dup, 0, &BTreeSet::from([1]));
        assert!(a.iter().any(|a| a.contains("twice")), "{a:?}");

        let inverted = [create(0, 10, Some(7)), create(11, 12, Some(6))];
        let (_, a) = check_sequential(&inverted, 0, &BTreeSet::from([6, 7]));
        assert_eq!(a.len(), 1, "{a:?}");
        assert!(a[0].contains("6 given after 7"), "{a:?}");

        let (lost, a) = check_sequential(&[create(0, 1, Some(1))], 0, &BTreeSet::new());
        assert_eq!((lost, a.len()), (1, 1), "{a:?}");

        let (_, a) = check_sequential(&[create(0, 1, Some(1))], 0, &BTreeSet::from([1, 2]));
        assert_eq!(a.len(), 1, "{a:?}");
        assert!(a[0].contains("2 nodes exist"), "{a:?}");
    }
}
