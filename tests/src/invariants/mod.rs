//! Safety properties checked while the simulation runs, one file per property,
//! each named after the property in the Zab papers, `Zab.tla` or REFERENCE.md.
//!
//! The checks read the simulator's ground truth (what each disk really holds,
//! what was really delivered), never the nodes' own beliefs, so a node that
//! lies about durability or leadership is caught.

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;
use zab_core::{Epoch, PeerId, RequestId, Zxid};

pub mod ack_durable;
pub mod acked_writes_survive;
pub mod agreement;
pub mod commit_quorum;
pub mod committed_never_truncated;
pub mod integrity;
pub mod no_zxid_gaps;
pub mod one_leader_per_epoch;
pub mod primary_integrity;
pub mod primary_order;
pub mod sync_linearizable;
pub mod vote_reflects_disk;

/// A broken invariant: which one, and what the simulator saw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    pub invariant: &'static str,
    pub detail: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.invariant, self.detail)
    }
}

pub type Check = Result<(), Violation>;

pub(crate) fn fail(invariant: &'static str, detail: String) -> Check {
    Err(Violation { invariant, detail })
}

/// The simulator's record of what happened, against which invariants are checked.
#[derive(Debug, Default)]
pub struct Ghost {
    /// The one delivered order every server must agree with.
    pub delivered: Vec<(Zxid, Bytes)>,
    /// Every transaction a leader created, by zxid.
    pub proposals: HashMap<Zxid, Bytes>,
    /// Established leaders by epoch.
    pub leaders: BTreeMap<Epoch, PeerId>,
    /// Client writes whose success was reported to the client, with their zxid.
    pub acked_writes: Vec<(u64, Zxid)>,
    /// The highest zxid acknowledged to any client so far.
    pub max_acked: Zxid,
    /// When each sync reached the leader that will answer it:
    /// (leader, origin, id) → time in ms.
    pub sync_arrivals: HashMap<(PeerId, PeerId, RequestId), u64>,
    /// (leader, follower, term) → send time of the latest-sent message
    /// delivered to the leader that the follower sent while following it in
    /// that term. Keyed by term, and by send time rather than arrival, so a
    /// late-arriving older message never hides a newer confirmation.
    pub confirmations: HashMap<(PeerId, PeerId, Epoch), u64>,
    /// The term of the leader that committed each delivered transaction.
    pub committed_in: HashMap<Zxid, Epoch>,
}

impl Ghost {
    /// Whether `zxid` was committed in a term before `epoch`: by the term of
    /// the leader that committed it, not the epoch in the zxid (after an
    /// epoch bump a zxid's epoch runs ahead of its leader's term, and a
    /// transaction proposed under one leader can be committed by a later
    /// one). A leader of an earlier term established after a later term
    /// committed more is harmless (see `primary_integrity`) and must not be
    /// held to what the later term did.
    pub fn committed_before(&self, zxid: Zxid, epoch: Epoch) -> bool {
        self.committed_in
            .get(&zxid)
            .map_or(zxid.epoch() < epoch, |term| *term < epoch)
    }

    /// Whether `zxid` is in the delivered order (which is sorted by zxid).
    pub fn is_delivered(&self, zxid: Zxid) -> bool {
        self.delivered
            .binary_search_by_key(&zxid, |(z, _)| *z)
            .is_ok()
    }
}
