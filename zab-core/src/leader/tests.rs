use bytes::Bytes;

use crate::history::History;
use crate::message::Message;
use crate::node::{Action, Input, Node, Phase, Role};
use crate::persist::PersistOp;
use crate::testkit::{
    history, new_ensemble, node, p, persist_all, restored, take, z, Ensemble, LEGACY,
};
use crate::types::{Epoch, PersistSeq, RequestId, ServerState, Vote, Zxid};

fn from(peer: u64, msg: Message) -> Input {
    Input::Received { from: p(peer), msg }
}

/// p2 leads {p1, p2, p3} with `history` (acceptedEpoch = currentEpoch = 2):
/// elected with p3, discovery done with p3 (epoch 3 chosen and durable),
/// synchronization with p3 started. p1 has not shown up yet.
fn leader_synchronizing(history: History) -> Node {
    let last = history.last();
    let mut l = node(2, &[1, 2, 3], restored(2, 2, history));
    take(&mut l);
    let me = Vote {
        epoch: Epoch(2),
        zxid: last,
        leader: p(2),
    };
    l.handle(from(
        3,
        Message::Notification {
            vote: me,
            round: 1,
            state: ServerState::Looking,
            standing: LEGACY,
        },
    ));
    l.handle(Input::Tick);
    take(&mut l);
    l.handle(from(
        3,
        Message::FollowerInfo {
            accepted_epoch: Epoch(2),
            observer: false,
            join: 1,
            standing: LEGACY,
        },
    ));
    let issued = take(&mut l);
    assert!(issued.contains(&Action::Persist {
        seq: PersistSeq(1),
        op: PersistOp::AcceptedEpoch(Epoch(3)),
    }));
    persist_all(&mut l, &issued);
    l.handle(from(
        3,
        Message::AckEpoch {
            epoch: Epoch(3),
            join: 1,
            fresh: true,
            current_epoch: Epoch(2),
            last_zxid: last,
            log_start: Zxid::ZERO,
        },
    ));
    let issued = take(&mut l);
    persist_all(&mut l, &issued);
    assert_eq!(
        l.role(),
        Role::Leading {
            term: Epoch(3),
            epoch: Epoch(3),
            phase: Phase::Synchronization
        }
    );
    l
}

/// p1 joins: FOLLOWERINFO, then ACKEPOCH with its durable state. Returns
/// the actions that answer the ACKEPOCH.
fn join(l: &mut Node, current_epoch: u32, last_zxid: Zxid) -> Vec<Action> {
    l.handle(from(
        1,
        Message::FollowerInfo {
            accepted_epoch: Epoch(current_epoch),
            observer: false,
            join: 7,
            standing: LEGACY,
        },
    ));
    assert_eq!(
        take(l),
        vec![Action::Send {
            to: p(1),
            msg: Message::LeaderInfo {
                term: Epoch(3),
                epoch: Epoch(3),
                join: 7,
                ensemble: new_ensemble(2),
            },
        }]
    );
    l.handle(from(
        1,
        Message::AckEpoch {
            epoch: Epoch(3),
            join: 7,
            fresh: true,
            current_epoch: Epoch(current_epoch),
            last_zxid,
            log_start: Zxid::ZERO,
        },
    ));
    take(l)
}

fn newleader(zxid: Zxid) -> Action {
    Action::Send {
        to: p(1),
        msg: Message::NewLeader {
            epoch: Epoch(3),
            join: 7,
            current_epoch: Epoch(3),
            zxid,
        },
    }
}

#[test]
fn diff_for_a_follower_at_the_leaders_last_zxid() {
    let mut l = leader_synchronizing(history(Zxid::ZERO, &[(1, 3), (2, 1)]));
    let actions = join(&mut l, 2, z(2, 1));
    let diff = Action::Send {
        to: p(1),
        msg: Message::Diff {
            epoch: Epoch(3),
            join: 7,
        },
    };
    assert_eq!(
        actions,
        vec![diff, newleader(z(2, 1))],
        "an empty DIFF: nothing to stream"
    );
}

#[test]
fn diff_streams_what_a_lagging_follower_lacks() {
    let mut l = leader_synchronizing(history(Zxid::ZERO, &[(1, 3), (2, 1)]));
    let actions = join(&mut l, 1, z(1, 2));
    assert_eq!(
        actions[1],
        Action::SendDiff {
            to: p(1),
            epoch: Epoch(3),
            after: z(1, 2),
            through: z(2, 1),
        }
    );
}

#[test]
fn trunc_removes_a_crashed_leaders_uncommitted_tail() {
    // p1 led epoch 1 and logged 1.4 and 1.5 that no quorum saw; the ensemble
    // moved on to epoch 2 without them.
    let mut l = leader_synchronizing(history(Zxid::ZERO, &[(1, 3), (2, 1)]));
    let actions = join(&mut l, 1, z(1, 5));
    assert_eq!(
        actions,
        vec![
            Action::Send {
                to: p(1),
                msg: Message::Trunc {
                    epoch: Epoch(3),
                    join: 7,
                    to: z(1, 3),
                },
            },
            Action::SendDiff {
                to: p(1),
                epoch: Epoch(3),
                after: z(1, 3),
                through: z(2, 1),
            },
            newleader(z(2, 1)),
        ]
    );
}

#[test]
fn snap_for_a_follower_below_the_retained_history() {
    // The leader's log starts after a snapshot at 1.3.
    let mut l = leader_synchronizing(history(z(1, 3), &[(2, 1)]));
    let actions = join(&mut l, 1, z(1, 2));
    assert_eq!(
        actions,
        vec![
            Action::SendSnapshot {
                to: p(1),
                epoch: Epoch(3),
                join: 7,
                zxid: z(1, 3),
            },
            Action::SendDiff {
                to: p(1),
                epoch: Epoch(3),
                after: z(1, 3),
                through: z(2, 1),
            },
            newleader(z(2, 1)),
        ]
    );
}

#[test]
fn a_follower_ahead_of_the_leader_in_discovery_makes_it_abdicate() {
    let mut l = node(
        2,
        &[1, 2, 3],
        restored(2, 2, history(Zxid::ZERO, &[(2, 1)])),
    );
    take(&mut l);
    let me = Vote {
        epoch: Epoch(2),
        zxid: z(2, 1),
        leader: p(2),
    };
    let note = Message::Notification {
        vote: me,
        round: 1,
        state: ServerState::Looking,
        standing: LEGACY,
    };
    l.handle(from(3, note));
    l.handle(Input::Tick);
    let info = Message::FollowerInfo {
        accepted_epoch: Epoch(2),
        observer: false,
        join: 1,
        standing: LEGACY,
    };
    l.handle(from(3, info));
    let issued = take(&mut l);
    persist_all(&mut l, &issued);
    let ack = Message::AckEpoch {
        epoch: Epoch(3),
        join: 1,
        fresh: true,
        current_epoch: Epoch(2),
        last_zxid: z(2, 2),
        log_start: Zxid::ZERO,
    };
    l.handle(from(3, ack));
    assert_eq!(l.role(), Role::Looking);
}

fn established() -> Ensemble {
    let mut e = Ensemble::new(
        (1..=3)
            .map(|id| node(id, &[1, 2, 3], restored(0, 0, Default::default())))
            .collect(),
    );
    e.tick(3);
    assert_eq!(
        e.node(3).role(),
        Role::Leading {
            term: Epoch(1),
            epoch: Epoch(1),
            phase: Phase::Broadcast
        }
    );
    e
}

#[test]
fn sync_waits_for_a_quorum_round_started_after_it() {
    let mut e = established();
    e.propose(3, b"a");
    let committed = e.node(3).delivered();
    assert_eq!(committed, z(1, 1));
    let mut leader = e.nodes.remove(&p(3)).expect("p3");
    take(&mut leader);
    leader.handle(Input::Sync { id: RequestId(9) });
    let round = match take(&mut leader).as_slice() {
        [Action::Send {
            to,
            msg: Message::Ping { epoch, round },
        }, Action::Send { to: to2, .. }] => {
            assert_eq!((*to, *to2, *epoch), (p(1), p(2), Epoch(1)));
            *round
        }
        other => panic!("expected a new ping round and no answer, got {other:?}"),
    };
    // An answer to an older round proves nothing about now.
    let stale = Message::PingAck {
        epoch: Epoch(1),
        round: round - 1,
    };
    leader.handle(from(1, stale));
    assert_eq!(take(&mut leader), vec![]);
    leader.handle(from(
        1,
        Message::PingAck {
            epoch: Epoch(1),
            round,
        },
    ));
    assert_eq!(
        take(&mut leader),
        vec![Action::SyncDone {
            id: RequestId(9),
            zxid: committed
        }]
    );
}

#[test]
fn commit_needs_a_quorum_including_the_leader() {
    let mut e = established();
    let mut leader = e.nodes.remove(&p(3)).expect("p3");
    take(&mut leader);
    leader.handle(Input::Propose {
        id: RequestId(1),
        payload: Bytes::from_static(b"a"),
    });
    let issued = take(&mut leader);
    // A follower's ack alone (leader not yet durable) commits nothing.
    leader.handle(from(
        1,
        Message::Ack {
            epoch: Epoch(1),
            zxid: z(1, 1),
        },
    ));
    assert_eq!(take(&mut leader), vec![]);
    // Durable here too: now {p1, p3} hold it.
    let after = persist_all(&mut leader, &issued);
    assert!(after.contains(&Action::Deliver { through: z(1, 1) }));
}

#[test]
fn counter_exhaustion_moves_to_a_new_epoch_without_an_election() {
    let mut nodes = Vec::new();
    for id in 1..=3 {
        let mut cfg = crate::testkit::config(id, &[1, 2, 3]);
        cfg.counter_max = 2;
        nodes.push(Node::new(cfg, restored(0, 0, Default::default())).expect("valid"));
    }
    let mut e = Ensemble::new(nodes);
    e.tick(3);
    e.propose(3, b"a");
    e.propose(3, b"b");
    let before = e.seen[&p(3)].len();
    e.propose(3, b"c");
    let seen = &e.seen[&p(3)][before..];
    // The third write must not use counter 3: the leader first has a quorum
    // accept epoch 2, holding the write meanwhile.
    assert_eq!(
        seen[..4],
        [
            // Seqs 1-3 were the bootstrap (acceptedEpoch, currentEpoch, the
            // ensemble's name), 4-5 the two writes.
            Action::Persist {
                seq: PersistSeq(6),
                op: PersistOp::AcceptedEpoch(Epoch(2)),
            },
            Action::Persist {
                seq: PersistSeq(7),
                op: PersistOp::CurrentEpoch(Epoch(2)),
            },
            Action::Send {
                to: p(1),
                msg: Message::NewEpoch {
                    epoch: Epoch(1),
                    new_epoch: Epoch(2),
                    last: z(1, 2),
                },
            },
            Action::Send {
                to: p(2),
                msg: Message::NewEpoch {
                    epoch: Epoch(1),
                    new_epoch: Epoch(2),
                    last: z(1, 2),
                },
            },
        ]
    );
    assert!(seen.contains(&Action::RoleChanged(Role::Leading {
        term: Epoch(1),
        epoch: Epoch(2),
        phase: Phase::Broadcast,
    })));
    for id in 1..=3 {
        let n = e.node(id);
        assert_eq!(
            n.delivered(),
            z(2, 1),
            "p{id} applied the held write as 2.1"
        );
        assert_eq!(
            (n.durable().accepted_epoch, n.durable().current_epoch),
            (Epoch(2), Epoch(2))
        );
        assert!(
            matches!(n.role(), Role::Following { .. } | Role::Leading { .. }),
            "no election"
        );
    }
    assert_eq!(e.node(3).stats().elections, 1);
}

/// A learner that promised a later epoch than the established leader's (it
/// tried to lead, or heard a leader that never got established) could never
/// follow it, nor be elected while it leads: the leader moves its zxid epoch
/// past the promise, as a counter bump does, and the learner joins (seeds
/// 117176 and others of the protocol simulator, where such a learner stayed
/// out forever).
#[test]
fn a_learner_that_promised_a_later_epoch_gets_one_it_can_follow() {
    let mut e = Ensemble::new(
        (1..=3)
            .map(|id| node(id, &[1, 2, 3], restored(0, 0, Default::default())))
            .collect(),
    );
    e.tick(3);
    e.propose(3, b"a");
    let Role::Leading { epoch, .. } = e.node(3).role() else {
        panic!("p3 leads: {:?}", e.node(3).role());
    };
    // p1 comes back having promised epoch + 4.
    let mut p1 = e.nodes.remove(&p(1)).expect("p1");
    take(&mut p1);
    let promised = Epoch(epoch.0 + 4);
    let standing = p1.standing();
    e.input(
        3,
        from(
            1,
            Message::FollowerInfo {
                accepted_epoch: promised,
                observer: false,
                join: 1_000,
                standing,
            },
        ),
    );
    let Role::Leading { epoch: now, .. } = e.node(3).role() else {
        panic!("p3 still leads: {:?}", e.node(3).role());
    };
    assert!(now > promised, "moved to {now}, past {promised}");
    let info = e.seen[&p(3)].iter().find_map(|a| match a {
        Action::Send {
            to,
            msg: Message::LeaderInfo { epoch, join, .. },
        } if *to == p(1) && *join == 1_000 => Some(*epoch),
        _ => None,
    });
    assert_eq!(info, Some(now), "p1 is offered an epoch it can follow");
    // The ensemble kept committing.
    e.propose(3, b"b");
    assert_eq!(e.node(2).history().last(), z(now.0, 1));
}

/// With a forwarded check, the leader proposes only what passes it: a
/// refused forward is answered with a rejection, and the follower tells its
/// shell; what passes is committed as before.
#[test]
fn the_leader_proposes_a_forwarded_write_only_if_the_check_passes() {
    fn check(_: crate::types::PeerId, payload: &Bytes) -> Result<(), String> {
        if payload.starts_with(b"bad") {
            Err("bad".into())
        } else {
            Ok(())
        }
    }
    let mut e = Ensemble::new(
        (1..=3)
            .map(|id| {
                let mut cfg = crate::testkit::config(id, &[1, 2, 3]);
                cfg.forwarded_check = Some(check);
                Node::new(cfg, restored(0, 0, Default::default())).expect("starts")
            })
            .collect(),
    );
    e.tick(3);
    let Role::Leading { .. } = e.node(3).role() else {
        panic!("p3 leads: {:?}", e.node(3).role());
    };
    let refused = e.propose(1, b"bad write");
    assert!(e.seen[&p(1)].contains(&Action::Reject {
        id: refused,
        leader: Some(p(3)),
    }));
    assert!(e.node(3).stats().protocol_errors > 0);
    e.propose(1, b"good write");
    let last = e.node(3).history().last();
    assert_eq!(last.counter(), 1, "only the good write was proposed");
    assert_eq!(
        e.logs[&p(2)].last().map(|t| &t.payload[..]),
        Some(&b"good write"[..])
    );
}
