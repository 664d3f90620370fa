//! The standing rules end to end on a small ensemble: a server that lost its
//! disk (wiped, or damaged and restored as recovering) never helps elect a
//! leader with a shorter history, and votes again once synchronized.

use crate::node::Role;
use crate::testkit::{node, Ensemble};
use crate::types::{EnsembleId, Epoch, Standing};
use crate::{History, Node, Restored};

const VOTERS: &[u64] = &[1, 2, 3];

fn leader(e: &Ensemble) -> Option<u64> {
    e.nodes
        .iter()
        .find(|(_, n)| matches!(n.role(), Role::Leading { .. }))
        .map(|(id, _)| id.0)
}

/// A restart of `id` from what `e` shows of it, optionally damaged.
fn restart(e: &Ensemble, id: u64, history: History, recovering: bool) -> Node {
    let n = e.node(id);
    let restored = Restored {
        accepted_epoch: Epoch(1),
        current_epoch: Epoch(1),
        history,
        ensemble: n.standing().ensemble(),
        recovering,
    };
    node(id, VOTERS, restored)
}

/// Bootstraps p1..p3, then commits two writes with p2 down. Returns the
/// ensemble (p2 absent) and the ensemble's id.
fn two_writes_without_p2() -> (Ensemble, EnsembleId) {
    let mut e = Ensemble::new(
        VOTERS
            .iter()
            .map(|&id| node(id, VOTERS, Restored::default()))
            .collect(),
    );
    e.tick(3);
    let first = leader(&e).expect("bootstrapped");
    assert_eq!(first, 3, "the highest id wins a tie");
    let named = e.node(3).standing().ensemble();
    assert!(!named.is_none(), "the first leader names the ensemble");
    for id in VOTERS {
        assert_eq!(e.node(*id).standing(), Standing::Member(named));
    }
    e.nodes.remove(&crate::testkit::p(2));
    e.propose(3, b"a");
    e.propose(3, b"b");
    e.tick(1);
    assert_eq!(
        e.node(1).history().last().counter(),
        2,
        "p1 has both writes"
    );
    (e, named)
}

fn rejoin_after_loss(wiped: bool) {
    let (old, named) = two_writes_without_p2();
    let full = old.node(3).history().clone();
    let log3 = old.logs[&crate::testkit::p(3)].clone();
    // p1 lost its disk; p2 is stale (it missed both writes); p3 is down.
    let p1 = if wiped {
        node(1, VOTERS, Restored::default())
    } else {
        restart(&old, 1, History::default(), true)
    };
    let p2 = node(
        2,
        VOTERS,
        Restored {
            accepted_epoch: Epoch(1),
            current_epoch: Epoch(1),
            ensemble: named,
            ..Restored::default()
        },
    );
    let mut e = Ensemble::new(vec![p1, p2]);
    e.tick(40);
    assert_eq!(
        leader(&e),
        None,
        "p1 and p2 must not serve a history without the two writes"
    );
    assert!(!e.node(1).votes());
    // p3 returns with the writes: it leads, and p1 is synchronized and votes again.
    e.add(restart(&old, 3, full, false), log3);
    e.tick(40);
    assert_eq!(leader(&e), Some(3));
    assert_eq!(e.node(1).history().last(), e.node(3).history().last());
    assert_eq!(e.node(1).standing(), Standing::Member(named));
    assert!(e.node(1).votes(), "synchronized, it counts again");
    assert!(matches!(e.node(1).role(), Role::Following { .. }));
}

#[test]
fn a_wiped_server_never_helps_a_stale_one_lead() {
    rejoin_after_loss(true);
}

#[test]
fn a_recovering_server_never_votes_until_synchronized() {
    rejoin_after_loss(false);
}

#[test]
fn a_new_ensemble_needs_every_voter_to_bootstrap() {
    let mut e = Ensemble::new(vec![
        node(1, VOTERS, Restored::default()),
        node(2, VOTERS, Restored::default()),
    ]);
    e.tick(40);
    assert_eq!(
        leader(&e),
        None,
        "two blank servers could be one wiped plus one stale"
    );
    e.add(node(3, VOTERS, Restored::default()), Vec::new());
    e.tick(5);
    assert_eq!(leader(&e), Some(3));
}
