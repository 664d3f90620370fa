//! Messages exchanged between servers. Names follow ZooKeeper's quorum packets;
//! `docs/design.md` maps them to the Zab paper's names. The byte encoding lives
//! in [`crate::codec`].
//!
//! Every message between a leader and a learner carries `epoch`: the epoch in
//! which that leader was *established* (its term). It identifies the
//! relationship, so a message from an older or newer reign is dropped. After a
//! counter-exhaustion epoch bump the zxids move to a later epoch while the term
//! stays the same.

use bytes::Bytes;

use crate::types::{EnsembleId, Epoch, RequestId, ServerState, Standing, Txn, Vote, Zxid};

#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Message {
    /// Fast leader election: the sender's current vote, its election round and
    /// its state. Servers that already follow or lead answer a looking server
    /// with the vote that elected their leader, so it can join without an election.
    /// `standing` says what the sender's disk vouches for: only votes of the
    /// receiver's own standing count (see [`Standing`]).
    Notification {
        vote: Vote,
        round: u64,
        state: ServerState,
        standing: Standing,
    },

    // ---- discovery ----
    /// Learner → prospective leader: "I will follow you; my acceptedEpoch is ..."
    ///
    /// `join` numbers the learner's attempts to join. Every message of the
    /// discovery and synchronization exchange echoes it, so a message left over
    /// from an earlier attempt (a stale TRUNC, say) is recognised and dropped
    /// rather than applied to the new attempt.
    /// `standing`: as in `Notification`; the leader counts the learner towards
    /// its quorums only when it equals the leader's own.
    FollowerInfo {
        accepted_epoch: Epoch,
        observer: bool,
        join: u64,
        standing: Standing,
    },
    /// Leader → learner: the epoch to accept (`epoch`), the leader's term, and
    /// the ensemble its history belongs to (new when this leader bootstraps it).
    LeaderInfo {
        term: Epoch,
        epoch: Epoch,
        join: u64,
        ensemble: EnsembleId,
    },
    /// Learner → leader, sent once the epoch of LEADERINFO is durable as
    /// acceptedEpoch. `epoch` is the leader's term, like every later message.
    /// `fresh` is false when the learner had already accepted this epoch before
    /// (a rejoin); only fresh acks count towards a discovery quorum.
    AckEpoch {
        epoch: Epoch,
        join: u64,
        fresh: bool,
        current_epoch: Epoch,
        last_zxid: Zxid,
        /// The oldest zxid the learner can truncate back to (its snapshot).
        log_start: Zxid,
    },

    // ---- synchronization ----
    /// Leader → learner: proposals after the learner's last zxid follow.
    Diff {
        epoch: Epoch,
        join: u64,
    },
    /// Leader → learner: drop every transaction after `to`; proposals follow.
    Trunc {
        epoch: Epoch,
        join: u64,
        to: Zxid,
    },
    /// Leader → learner: a full snapshot of the state through `zxid`, then proposals.
    Snapshot {
        epoch: Epoch,
        join: u64,
        zxid: Zxid,
        data: Bytes,
    },
    /// Leader → learner: the synchronized history ends at `zxid`; make it durable,
    /// then make `current_epoch` durable, then acknowledge.
    NewLeader {
        epoch: Epoch,
        join: u64,
        current_epoch: Epoch,
        zxid: Zxid,
    },
    /// Learner → leader: the history through NEWLEADER's zxid and currentEpoch are durable.
    AckNewLeader {
        epoch: Epoch,
        join: u64,
    },
    /// Leader → learner: the leader is established; everything through
    /// `committed` is committed; start serving.
    UpToDate {
        epoch: Epoch,
        committed: Zxid,
    },

    // ---- broadcast ----
    /// A transaction; during synchronization, part of the DIFF stream.
    /// `prev` is the zxid right before it in the leader's history: a learner
    /// appends only onto exactly that zxid, so a lost, reordered or stale
    /// message can never splice two branches of history together.
    Proposal {
        epoch: Epoch,
        prev: Zxid,
        txn: Txn,
    },
    /// Learner → leader: every proposal through `zxid` is durable here (cumulative).
    Ack {
        epoch: Epoch,
        zxid: Zxid,
    },
    /// Leader → learner: every proposal through `zxid` is committed (cumulative).
    Commit {
        epoch: Epoch,
        zxid: Zxid,
    },
    /// Heartbeat and leadership-confirmation round.
    Ping {
        epoch: Epoch,
        round: u64,
    },
    PingAck {
        epoch: Epoch,
        round: u64,
    },
    /// Counter exhaustion: the leader moves its zxids to `new_epoch` after `last`.
    NewEpoch {
        epoch: Epoch,
        new_epoch: Epoch,
        last: Zxid,
    },
    /// Learner → leader: `new_epoch` is durable as both accepted and current epoch.
    AckNewEpoch {
        epoch: Epoch,
        new_epoch: Epoch,
    },

    // ---- client requests relayed through the ensemble ----
    /// Learner → leader: a client write received at the learner.
    Forward {
        epoch: Epoch,
        id: RequestId,
        payload: Bytes,
    },
    /// Leader → learner: the forwarded write or sync was not accepted (a write
    /// so rejected was not proposed and never will be).
    Rejected {
        epoch: Epoch,
        id: RequestId,
    },
    /// Learner → leader: a client sync received at the learner.
    Sync {
        epoch: Epoch,
        id: RequestId,
    },
    /// Learner → leader: an opaque note for the leader's shell, outside the
    /// log (session heartbeats, for one). Best effort and unordered with
    /// respect to proposals; dropped unless both sides are in broadcast.
    Relay {
        epoch: Epoch,
        payload: Bytes,
    },
    /// Leader → learner: leadership was confirmed by a quorum after the sync
    /// arrived; the learner answers once it has applied through `zxid`.
    SyncReply {
        epoch: Epoch,
        id: RequestId,
        zxid: Zxid,
    },
}

impl Message {
    /// A short, stable name for logs and counters.
    pub fn kind(&self) -> &'static str {
        match self {
            Message::Notification { .. } => "NOTIFICATION",
            Message::FollowerInfo { .. } => "FOLLOWERINFO",
            Message::LeaderInfo { .. } => "LEADERINFO",
            Message::AckEpoch { .. } => "ACKEPOCH",
            Message::Diff { .. } => "DIFF",
            Message::Trunc { .. } => "TRUNC",
            Message::Snapshot { .. } => "SNAP",
            Message::NewLeader { .. } => "NEWLEADER",
            Message::AckNewLeader { .. } => "ACK(NEWLEADER)",
            Message::UpToDate { .. } => "UPTODATE",
            Message::Proposal { .. } => "PROPOSAL",
            Message::Ack { .. } => "ACK",
            Message::Commit { .. } => "COMMIT",
            Message::Ping { .. } => "PING",
            Message::PingAck { .. } => "PINGACK",
            Message::NewEpoch { .. } => "NEWEPOCH",
            Message::AckNewEpoch { .. } => "ACK(NEWEPOCH)",
            Message::Forward { .. } => "FORWARD",
            Message::Rejected { .. } => "REJECTED",
            Message::Sync { .. } => "SYNC",
            Message::SyncReply { .. } => "SYNC_REPLY",
            Message::Relay { .. } => "RELAY",
        }
    }
}

/// The PROPOSAL messages of a DIFF stream: `txns` (in zxid order, directly
/// after `after`), each naming the zxid before it. Shells use this for
/// `Action::SendDiff` so the `prev` chain is built in one place.
pub fn diff_stream(
    epoch: Epoch,
    after: Zxid,
    txns: impl IntoIterator<Item = Txn>,
) -> impl Iterator<Item = Message> {
    let mut prev = after;
    txns.into_iter().map(move |txn| {
        let before = std::mem::replace(&mut prev, txn.zxid);
        Message::Proposal {
            epoch,
            prev: before,
            txn,
        }
    })
}
