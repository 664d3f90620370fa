//! The history checkers the nemesis runs on real processes, run over what
//! the real clients recorded: linearizability of register operations
//! (linearizable reads are a sync and a read), every watch stream against
//! the acknowledged creates under the watched root, sequential numbers
//! (unique, in real-time order, none acknowledged and lost), and
//! ephemerals (one acknowledged to a session no leader expired is there at
//! the end).

use std::collections::BTreeSet;

use zab_server::tree::DataTree;
use zab_tests::checkers::{check_sequential, check_watch_log};
use zab_tests::linearizability::{check, Budget, History, Verdict};

use super::checks::SessionChecker;
use super::client::{SimClient, SEQ_PARENT};

/// Search steps for one run's registers: far more than a clean history
/// needs (each key sees a few dozen operations), so running out means a
/// pathological history, which is reported rather than passed.
const STEPS_MAX: u64 = 20_000_000;

/// What the checkers looked at.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Checked {
    pub register_ops: u64,
    pub watch_events: u64,
    pub sequential: u64,
}

/// Runs the checkers against what the clients saw and `tree`, the state of
/// a server that applied everything; the first anomaly found, spelled out,
/// is the error.
pub fn check_histories(
    clients: &[SimClient],
    tree: &DataTree,
    sessions: &SessionChecker,
) -> Result<Checked, String> {
    let mut history = History::new();
    let mut acked = Vec::new();
    let mut checked = Checked::default();
    for c in clients {
        let SimClient::Real(c) = c else { continue };
        for e in &c.registers.events {
            history.push(e.clone());
        }
        acked.extend(c.acked_under_root.iter().cloned());
    }
    checked.register_ops = history.len() as u64;
    match check(&history, Budget::steps(STEPS_MAX)) {
        Verdict::Linearizable => {}
        Verdict::NotLinearizable { key, explanation } => {
            return Err(format!(
                "register {key} is not linearizable:\n{}",
                explanation.text
            ));
        }
        Verdict::Unknown { reason } => {
            return Err(format!("linearizability undecided: {reason}"));
        }
    }
    for c in clients {
        let SimClient::Real(c) = c else { continue };
        for s in &c.streams {
            checked.watch_events += s.log.events.len() as u64;
            let anomalies = check_watch_log(&s.log, &acked);
            if !anomalies.is_empty() {
                return Err(format!(
                    "client {}: its watch stream on /w (armed at {:#x}): {}",
                    c.index,
                    s.log.registered_at,
                    anomalies.join("; ")
                ));
            }
        }
    }
    let mut creates = Vec::new();
    let mut unknown = 0;
    for c in clients {
        let SimClient::Real(c) = c else { continue };
        creates.extend(c.sequential.iter().copied());
        unknown += c.sequential_unknown + c.sequential_in_flight();
        for (session, path) in &c.acked_ephemerals {
            if !sessions.has_expired(*session) && tree.exists(path).is_none() {
                return Err(format!(
                    "client {}: ephemeral {path} of session {session:#x}, which no leader \
                     expired, is gone",
                    c.index
                ));
            }
        }
    }
    checked.sequential = creates.len() as u64;
    let present: BTreeSet<u64> = tree
        .children(SEQ_PARENT)
        .map(|(names, _)| names)
        .unwrap_or_default()
        .iter()
        .filter_map(|name| name.strip_prefix("n-")?.parse().ok())
        .collect();
    let (_, anomalies) = check_sequential(&creates, unknown, &present);
    if !anomalies.is_empty() {
        return Err(format!("sequential creates: {}", anomalies.join("; ")));
    }
    Ok(checked)
}
