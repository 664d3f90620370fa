use bytes::Bytes;

use crate::message::Message;
use crate::node::{Action, Input, Role};
use crate::testkit::{new_ensemble, node, p, restored, take, z, Ensemble};
use crate::types::{Epoch, Txn};

/// Servers 2 (leading) and 3 (following) tell `f` that `elected` won.
fn elect(f: &mut crate::node::Node, elected: crate::types::Vote) {
    use crate::types::ServerState::{Following, Leading};
    for (from, state) in [(2, Leading), (3, Following)] {
        f.handle(Input::Received {
            from: p(from),
            msg: Message::Notification {
                vote: elected,
                round: 1,
                state,
                standing: f.standing(),
            },
        });
    }
}

fn established() -> Ensemble {
    let mut e = Ensemble::new(
        (1..=3)
            .map(|id| node(id, &[1, 2, 3], restored(0, 0, Default::default())))
            .collect(),
    );
    e.tick(3);
    e.propose(3, b"a");
    e
}

fn proposal(term: u32, prev: crate::types::Zxid, zxid: crate::types::Zxid) -> Message {
    Message::Proposal {
        epoch: Epoch(term),
        prev,
        txn: Txn {
            zxid,
            payload: Bytes::from_static(b"x"),
        },
    }
}

#[test]
fn proposals_of_a_stale_term_or_from_a_non_leader_are_dropped() {
    let mut e = established();
    let mut f = e.nodes.remove(&p(1)).expect("p1");
    take(&mut f);
    let before = (f.history().clone(), f.stats().dropped);
    // From the leader, but tagged with an older reign.
    f.handle(Input::Received {
        from: p(3),
        msg: proposal(0, z(1, 1), z(1, 2)),
    });
    // The right term, but not from our leader.
    f.handle(Input::Received {
        from: p(2),
        msg: proposal(1, z(1, 1), z(1, 2)),
    });
    assert_eq!(take(&mut f), vec![], "nothing logged, nothing acknowledged");
    assert_eq!(f.history(), &before.0);
    assert_eq!(f.stats().dropped, before.1 + 2);
}

#[test]
fn a_leader_below_our_accepted_epoch_is_refused() {
    let mut f = node(1, &[1, 2, 3], restored(5, 4, Default::default()));
    take(&mut f);
    let elected = crate::types::Vote {
        epoch: Epoch(4),
        zxid: z(4, 0),
        leader: p(2),
    };
    elect(&mut f, elected);
    take(&mut f);
    f.handle(Input::Received {
        from: p(2),
        msg: Message::LeaderInfo {
            term: Epoch(4),
            epoch: Epoch(4),
            join: 1,
            ensemble: new_ensemble(2),
        },
    });
    let actions = take(&mut f);
    assert_eq!(actions.first(), Some(&Action::RoleChanged(Role::Looking)));
    assert!(
        !actions.iter().any(|a| matches!(a, Action::Persist { .. })),
        "acceptedEpoch must not go back"
    );
}

#[test]
fn relayed_notes_reach_the_leaders_shell() {
    let mut e = established();
    e.input(
        1,
        Input::Relay {
            payload: Bytes::from_static(b"touch 42"),
        },
    );
    assert!(e.seen[&p(3)].contains(&Action::Relayed {
        from: Some(p(1)),
        payload: Bytes::from_static(b"touch 42"),
    }));
}

#[test]
fn followerinfo_is_repeated_until_the_leader_answers() {
    let mut f = node(1, &[1, 2, 3], restored(1, 1, Default::default()));
    let elected = crate::types::Vote {
        epoch: Epoch(1),
        zxid: z(0, 0),
        leader: p(2),
    };
    elect(&mut f, elected);
    take(&mut f);
    // The leader was still looking when the first copy arrived and
    // dropped it; the next tick says it again, same attempt.
    f.handle(Input::Tick);
    assert_eq!(
        take(&mut f),
        vec![Action::Send {
            to: p(2),
            msg: Message::FollowerInfo {
                accepted_epoch: Epoch(1),
                observer: false,
                join: 1,
                standing: crate::types::Standing::Blank,
            },
        }]
    );
}

#[test]
fn a_gap_in_the_stream_resyncs_with_the_same_leader() {
    let mut e = established();
    let elections = e.node(1).stats().elections;
    // p1 misses 1.2 and sees 1.3.
    e.input(
        1,
        Input::Received {
            from: p(3),
            msg: proposal(1, z(1, 2), z(1, 3)),
        },
    );
    let n = e.node(1);
    assert!(matches!(n.role(), Role::Following { leader, .. } if leader == p(3)));
    assert_eq!(n.stats().elections, elections, "no election");
    assert_eq!(n.stats().protocol_errors, 1);
}

#[test]
fn ack_newleader_only_after_history_and_epoch_are_durable() {
    let mut e = Ensemble::new(
        (1..=3)
            .map(|id| node(id, &[1, 2, 3], restored(0, 0, Default::default())))
            .collect(),
    );
    e.tick(3);
    // Replay p1's view: NEWLEADER arrives while its writes are pending.
    let mut f = node(1, &[1, 2, 3], restored(0, 0, Default::default()));
    take(&mut f);
    let settled = |state| Message::Notification {
        vote: crate::types::Vote {
            epoch: Epoch(0),
            zxid: z(0, 0),
            leader: p(3),
        },
        round: 1,
        state,
        standing: crate::types::Standing::Blank,
    };
    f.handle(Input::Received {
        from: p(3),
        msg: settled(crate::types::ServerState::Leading),
    });
    f.handle(Input::Received {
        from: p(2),
        msg: settled(crate::types::ServerState::Following),
    });
    take(&mut f);
    f.handle(Input::Received {
        from: p(3),
        msg: Message::LeaderInfo {
            term: Epoch(1),
            epoch: Epoch(1),
            join: 1,
            ensemble: new_ensemble(2),
        },
    });
    let issued = take(&mut f);
    let sent = crate::testkit::persist_all(&mut f, &issued);
    assert!(sent.iter().any(|a| matches!(
        a,
        Action::Send {
            msg: Message::AckEpoch { .. },
            ..
        }
    )));
    for msg in [
        Message::Diff {
            epoch: Epoch(1),
            join: 1,
        },
        proposal(1, z(0, 0), z(1, 1)),
        Message::NewLeader {
            epoch: Epoch(1),
            join: 1,
            current_epoch: Epoch(1),
            zxid: z(1, 1),
        },
    ] {
        f.handle(Input::Received { from: p(3), msg });
    }
    let issued = take(&mut f);
    assert!(
        !issued.iter().any(|a| matches!(a, Action::Send { .. })),
        "no ACK(NEWLEADER) before the history and currentEpoch are durable: {issued:?}"
    );
    let sent = crate::testkit::persist_all(&mut f, &issued);
    assert_eq!(
        sent,
        vec![Action::Send {
            to: p(3),
            msg: Message::AckNewLeader {
                epoch: Epoch(1),
                join: 1
            },
        }]
    );
}

/// NEWEPOCH was lost, and the leader's first proposal in the bumped epoch
/// arrives first. The learner adopts the epoch (acceptedEpoch, then
/// currentEpoch) before it logs the proposal, so its acknowledgement never
/// covers a zxid its currentEpoch does not: votes order by currentEpoch
/// first, and a server with a higher currentEpoch and a shorter history
/// would otherwise outvote the acknowledgements that committed it (seed
/// 130179 of the protocol simulator).
#[test]
fn a_proposal_of_a_bumped_epoch_ahead_of_its_newepoch_adopts_the_epoch_first() {
    use crate::persist::PersistOp;
    let mut e = established();
    let mut f = e.nodes.remove(&p(1)).expect("p1");
    take(&mut f);
    let Role::Following { term, .. } = f.role() else {
        panic!("p1 follows: {:?}", f.role());
    };
    let last = f.history().last();
    let bumped = Epoch(last.epoch().0 + 1);
    f.handle(Input::Received {
        from: p(3),
        msg: proposal(term.0, last, z(bumped.0, 1)),
    });
    let ops: Vec<PersistOp> = take(&mut f)
        .into_iter()
        .filter_map(|a| match a {
            Action::Persist { op, .. } => Some(op),
            _ => None,
        })
        .collect();
    assert!(
        matches!(
            ops.as_slice(),
            [
                PersistOp::AcceptedEpoch(a),
                PersistOp::CurrentEpoch(c),
                PersistOp::Append(t),
            ] if *a == bumped && *c == bumped && t.zxid == z(bumped.0, 1)
        ),
        "{ops:?}"
    );
    assert_eq!(f.current_epoch(), bumped);
}

/// The leader bumped its epoch after our LEADERINFO and synchronizes us with
/// a snapshot of the bumped epoch: acceptedEpoch is raised before the
/// snapshot is installed, so a crash before NEWLEADER leaves a disk whose
/// acceptedEpoch covers everything on it (one that restores; seed 126250 of
/// the protocol simulator left one that did not).
#[test]
fn a_snapshot_from_a_bumped_epoch_raises_accepted_epoch_first() {
    use crate::persist::PersistOp;
    let mut f = node(1, &[1, 2, 3], restored(0, 0, Default::default()));
    take(&mut f);
    let elected = crate::types::Vote {
        epoch: Epoch(0),
        zxid: z(0, 0),
        leader: p(2),
    };
    elect(&mut f, elected);
    take(&mut f);
    f.handle(Input::Received {
        from: p(2),
        msg: Message::LeaderInfo {
            term: Epoch(1),
            epoch: Epoch(1),
            join: 1,
            ensemble: new_ensemble(2),
        },
    });
    let issued = take(&mut f);
    crate::testkit::persist_all(&mut f, &issued);
    f.handle(Input::Received {
        from: p(2),
        msg: Message::Snapshot {
            epoch: Epoch(1),
            join: 1,
            zxid: z(2, 4),
            data: Bytes::from_static(b"state"),
        },
    });
    let ops: Vec<PersistOp> = take(&mut f)
        .into_iter()
        .filter_map(|a| match a {
            Action::Persist { op, .. } => Some(op),
            _ => None,
        })
        .collect();
    assert!(
        matches!(
            ops.as_slice(),
            [PersistOp::AcceptedEpoch(a), PersistOp::InstallSnapshot { zxid, .. }]
                if *a == Epoch(2) && *zxid == z(2, 4)
        ),
        "{ops:?}"
    );
}
