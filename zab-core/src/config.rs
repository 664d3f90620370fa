//! Static configuration of one node: who it is, who votes, and its limits.
//! Time is counted in ticks; the shell decides how long a tick is.

use crate::quorum::Membership;
use crate::types::{EnsembleId, PeerId};

/// Deliberate protocol violations, compiled only with the `defects` feature, so
/// the simulator can prove that it notices each broken rule. Every switch names
/// the rule it breaks; none is reachable from a production build.
#[cfg(feature = "defects")]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Defects {
    /// Send ACK(NEWLEADER) before the synchronized history is durable (REFERENCE §1.1).
    pub ack_newleader_before_durable: bool,
    /// Commit a proposal as soon as the leader has logged it, without a quorum (§1.2).
    pub commit_without_quorum: bool,
    /// Vote with the last *applied* zxid instead of the last logged one (§1.6).
    pub vote_with_applied_zxid: bool,
    /// Answer a sync without confirming leadership with a quorum round (§2).
    pub sync_without_quorum: bool,
    /// Ignore TRUNC and keep the divergent tail (§1.4).
    pub skip_trunc: bool,
    /// Ignore standings: a wiped, blank or recovering server votes and is
    /// counted like an intact member (the rule of `types::Standing`).
    pub wiped_server_votes: bool,
}

#[derive(Clone, Debug)]
pub struct Config {
    pub id: PeerId,
    pub membership: Membership,
    /// Ticks a leader has to reach an established quorum, and a learner to get
    /// from discovery to UPTODATE (ZooKeeper's `initLimit`).
    pub init_limit_ticks: u32,
    /// Ticks without hearing from the leader (follower) or from a quorum
    /// (leader) before giving up (ZooKeeper's `syncLimit`).
    pub sync_limit_ticks: u32,
    /// Ticks between re-sent election notifications while looking.
    pub election_resend_ticks: u32,
    /// Proposals a leader keeps in flight (proposed, not yet committed) plus
    /// writes it queues during an epoch bump. Beyond this, writes are rejected.
    pub in_flight_max: usize,
    /// Syncs waiting for a confirmation round, per node.
    pub pending_syncs_max: usize,
    /// The last zxid counter a leader uses before moving to a new epoch.
    /// ZooKeeper stops at 0xffffffff with an outage; we bump the epoch first.
    pub counter_max: u32,
    /// The id this node gives a new ensemble if it is the first leader of
    /// one. The shell draws it at random; it must not be `EnsembleId::NONE`.
    pub new_ensemble_id: EnsembleId,
    /// The shell's check of a payload a follower forwards, before the leader
    /// proposes it (`true`: propose). A check of the bytes alone, so the core
    /// stays pure; what needs the applied state (a session's owner) is the
    /// state machine's to enforce when it applies. `None`: propose anything.
    pub forwarded_check: Option<ForwardedCheck>,
    #[cfg(feature = "defects")]
    pub defects: Defects,
}

/// See [`Config::forwarded_check`]: the forwarding peer and the payload.
pub type ForwardedCheck = fn(PeerId, &bytes::Bytes) -> Result<(), String>;

impl Config {
    /// Defaults that suit a tick of about 100 ms.
    pub fn new(id: PeerId, membership: Membership) -> Config {
        Config {
            id,
            membership,
            init_limit_ticks: 20,
            sync_limit_ticks: 5,
            election_resend_ticks: 2,
            in_flight_max: 10_000,
            pending_syncs_max: 10_000,
            counter_max: u32::MAX - 1_000,
            new_ensemble_id: EnsembleId(0x5eed_0000_0000_0000 | id.0),
            forwarded_check: None,
            #[cfg(feature = "defects")]
            defects: Defects::default(),
        }
    }

    pub fn is_observer(&self) -> bool {
        !self.membership.is_voter(self.id)
    }
}

/// Whether a defect switch is on. Always false without the `defects` feature,
/// so the compiler removes the broken paths from real builds.
macro_rules! defect {
    ($cfg:expr, $name:ident) => {{
        #[cfg(feature = "defects")]
        let on = $cfg.defects.$name;
        #[cfg(not(feature = "defects"))]
        let on = {
            let _ = &$cfg;
            false
        };
        on
    }};
}
pub(crate) use defect;
