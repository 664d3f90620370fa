//! zab-server's replicated state: the log command codec, the replica that
//! applies commands, tree transactions, and tree and replica snapshots.

use bytes::Bytes;
use zab_core::{Epoch, PeerId, Zxid};
use zab_server::replica::{check_forwarded, is_write, tree_request, Command, CommandBody, Replica};
use zab_server::server::Application;
use zab_server::tree::{DataTree, Txn};

use crate::records;

/// Times at which the sweep looks for expired nodes: the extremes find
/// overflow in `mtime + ttl`.
const SWEEP_TIMES: [i64; 4] = [0, 1_700_000_000_000, i64::MAX, i64::MIN];

/// A log record's payload as a command (`Command::decode`). Version 3 is
/// canonical; versions 1 and 2 decode to a command that survives the
/// version 3 round trip. The leader's check of forwarded commands never
/// panics either.
pub fn server_command(data: &[u8]) {
    let payload = Bytes::copy_from_slice(data);
    if let Ok(cmd) = Command::decode(payload.clone()) {
        let again = cmd.encode();
        if data.first() == Some(&3) {
            assert_eq!(&again[..], data, "version 3 command is not canonical");
        }
        assert_eq!(
            Command::decode(again),
            Ok(cmd.clone()),
            "command round trip"
        );
        let _ = check_forwarded(PeerId(cmd.origin), &payload);
        if let CommandBody::Op(r) = &cmd.body {
            let _ = tree_request(r);
            let _ = is_write(r);
        }
    }
    let _ = check_forwarded(PeerId(1), &payload);
}

/// A restored tree and the tree it came from hold the same state, and the
/// restored one snapshots to the same bytes.
fn assert_tree_round_trips(tree: &DataTree) {
    let bytes = tree.serialize();
    let back = DataTree::deserialize(&bytes).expect("a tree's own snapshot restores");
    assert_eq!(
        back.serialize(),
        bytes,
        "snapshot of a restored tree differs"
    );
    assert_eq!(
        &back, tree,
        "a restored tree differs from the one snapshotted"
    );
}

/// A replica applying a log of commands (u16-length-prefixed payloads, at
/// consecutive zxids). Applying never fails (a command the replica's own
/// resolution produced must apply), the sweep never panics, and a snapshot
/// of the result restores to the same state.
pub fn server_replica_apply(data: &[u8]) {
    let mut replica = Replica::new();
    let mut counter = 0u32;
    let mut last_time = 0;
    for payload in records(data) {
        counter += 1;
        let zxid = Zxid::new(Epoch(1), counter);
        let payload = Bytes::copy_from_slice(payload);
        if let Err(e) = replica.apply(zxid, &payload) {
            panic!("the replica's own resolution of a command did not apply at {zxid}: {e}");
        }
        replica.completed.clear();
        if let Ok(cmd) = Command::decode(payload) {
            last_time = cmd.time_ms;
        }
    }
    for now in SWEEP_TIMES.into_iter().chain([last_time]) {
        let _ = replica.tree.expired_candidates(now);
    }
    let snap = replica.snapshot();
    let mut other = Replica::new();
    other
        .restore(&snap)
        .expect("a replica's own snapshot restores");
    assert_eq!(
        other.snapshot(),
        snap,
        "snapshot of a restored replica differs"
    );
    assert_eq!(
        other.tree, replica.tree,
        "a restored tree differs from the one snapshotted"
    );
}

/// Tree transaction payloads (u16-length-prefixed), applied in turn to one
/// tree. Each decoded payload is canonical; a single transaction that fails
/// to apply changes nothing (a failed multi ends the run: the tree is to be
/// discarded); the tree that results snapshots and restores to itself.
pub fn server_txn(data: &[u8]) {
    let mut tree = DataTree::new();
    let mut counter = 0u32;
    let mut last_time = 0;
    let mut alive = true;
    for payload in records(data) {
        let Ok((header, txn)) = Txn::decode(payload) else {
            continue;
        };
        assert_eq!(
            txn.to_payload(&header),
            payload,
            "transaction payload is not canonical"
        );
        if !alive {
            continue;
        }
        counter += 1;
        last_time = header.time_ms;
        let before = tree.clone();
        if tree
            .apply(Zxid::new(Epoch(1), counter), header.time_ms, &txn)
            .is_err()
        {
            if matches!(txn, Txn::Multi(_)) {
                alive = false;
            } else {
                assert_eq!(tree, before, "a failed transaction changed the tree");
            }
        }
    }
    if alive {
        for now in SWEEP_TIMES.into_iter().chain([last_time]) {
            let _ = tree.expired_candidates(now);
        }
        assert_tree_round_trips(&tree);
    }
}

/// Closes every session of a restored tree: its rebuilt ephemerals index
/// must let each close apply.
fn close_all_sessions(tree: &mut DataTree) {
    for (session, _) in tree.sessions() {
        let Some(next) = tree.last_applied_zxid().0.checked_add(1) else {
            return;
        };
        let txn = Txn::CloseSession { session };
        if let Err(e) = tree.apply(Zxid(next), 0, &txn) {
            panic!("closing session {session:#x} of a restored tree failed: {e:?}");
        }
    }
}

/// Tree snapshot bytes (`DataTree::deserialize`): canonical, and the tree
/// goes on working (the sweep, closing its sessions).
pub fn server_tree_snapshot(data: &[u8]) {
    let Ok(mut tree) = DataTree::deserialize(data) else {
        return;
    };
    assert_eq!(tree.serialize(), data, "tree snapshot is not canonical");
    let _ = (tree.node_count(), tree.data_bytes(), tree.children("/"));
    for now in SWEEP_TIMES {
        let _ = tree.expired_candidates(now);
    }
    close_all_sessions(&mut tree);
    assert_tree_round_trips(&tree);
}

/// Replica snapshot bytes (`Application::restore`: the tree plus session
/// passwords and owners). Not canonical (older layouts restore too), but
/// what restores snapshots and restores again to the same state.
pub fn server_replica_restore(data: &[u8]) {
    let mut replica = Replica::new();
    if replica.restore(data).is_err() {
        return;
    }
    let snap = replica.snapshot();
    let mut again = Replica::new();
    again
        .restore(&snap)
        .expect("a restored replica's snapshot restores");
    assert_eq!(
        again.snapshot(),
        snap,
        "snapshot of a restored replica differs"
    );
    assert_eq!(again.tree, replica.tree);
    for now in SWEEP_TIMES {
        let _ = replica.tree.expired_candidates(now);
    }
    close_all_sessions(&mut replica.tree);
}
