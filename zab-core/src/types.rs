//! Identifiers and small value types shared by every phase of the protocol.

use std::fmt;

use bytes::Bytes;

/// A server's id in the ensemble (ZooKeeper's `sid`/`myid`).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct PeerId(pub u64);

impl fmt::Debug for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "p{}", self.0)
    }
}

impl fmt::Display for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Names one ensemble's history. The first leader of a new ensemble takes it
/// from its shell (which draws it at random); every member keeps it on disk.
/// [`EnsembleId::NONE`]: the disk holds no ensemble's history (a brand-new
/// server, or a wiped one), or a history from before ensemble ids existed.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Debug)]
pub struct EnsembleId(pub u64);

impl EnsembleId {
    pub const NONE: EnsembleId = EnsembleId(0);

    pub fn is_none(self) -> bool {
        self == EnsembleId::NONE
    }
}

impl fmt::Display for EnsembleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// What a server's disk entitles it to claim. It travels in election
/// notifications and FOLLOWERINFO, and peers count a server's vote or
/// acknowledgement only when its standing equals their own: a vote is a
/// promise about a durable history, and a server that lost its history
/// cannot keep the promises it made before.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Standing {
    /// An intact member of the ensemble (`NONE`: a history from before
    /// ensemble ids; such members count one another until a leader names the
    /// ensemble).
    Member(EnsembleId),
    /// Nothing on disk. A brand-new ensemble is bootstrapped only when every
    /// voter is blank and agrees; a blank server that hears of an existing
    /// ensemble (it may have been wiped) joins as a non-voter instead.
    Blank,
    /// Recovery found lost or damaged durable state (the ensemble id, if it
    /// survived). Never votes or counts until an established leader has
    /// synchronized it again.
    Recovering(EnsembleId),
}

impl Standing {
    /// The ensemble this server's disk names, if any.
    pub fn ensemble(self) -> EnsembleId {
        match self {
            Standing::Member(e) | Standing::Recovering(e) => e,
            Standing::Blank => EnsembleId::NONE,
        }
    }
}

/// A leader epoch: the high 32 bits of every zxid that leader issues.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Debug)]
pub struct Epoch(pub u32);

impl Epoch {
    /// The epoch after this one. Epochs are 32 bits; an ensemble that elects four
    /// billion leaders has bigger problems, so exhaustion is a panic, not a wrap.
    pub fn next(self) -> Epoch {
        self.checked_next().expect("epoch space exhausted")
    }

    /// The epoch after this one, if there is one (for values from peers).
    pub fn checked_next(self) -> Option<Epoch> {
        self.0.checked_add(1).map(Epoch)
    }
}

impl fmt::Display for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

/// A transaction id: `epoch << 32 | counter`. Ordered exactly as ZooKeeper orders
/// them, so comparing two zxids compares (epoch, counter).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Zxid(pub u64);

impl Zxid {
    /// The zxid before any transaction: the empty history.
    pub const ZERO: Zxid = Zxid(0);

    pub fn new(epoch: Epoch, counter: u32) -> Zxid {
        Zxid((u64::from(epoch.0) << 32) | u64::from(counter))
    }

    pub fn epoch(self) -> Epoch {
        Epoch((self.0 >> 32) as u32)
    }

    pub fn counter(self) -> u32 {
        self.0 as u32
    }

    /// Whether `next` may directly follow `self` in a history with no gap:
    /// the next counter in the same epoch, or the first counter of a later epoch.
    pub fn is_followed_by(self, next: Zxid) -> bool {
        if next.epoch() == self.epoch() {
            self.counter().checked_add(1) == Some(next.counter())
        } else {
            next.epoch() > self.epoch() && next.counter() == 1
        }
    }
}

impl fmt::Debug for Zxid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

impl fmt::Display for Zxid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

/// A vote in fast leader election. The derived order is the election order:
/// the candidate's durable `currentEpoch`, then its last *logged* (durable) zxid,
/// then its id to break ties. Field order matters: it is the comparison order.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default)]
pub struct Vote {
    pub epoch: Epoch,
    pub zxid: Zxid,
    pub leader: PeerId,
}

/// An id the shell gives a client request (a write or a sync) so the core's
/// answer (`SyncDone`, `Reject`) can be matched to it. Unique per node.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default)]
pub struct RequestId(pub u64);

/// A proposed transaction: its zxid and the opaque, already idempotent payload
/// the state machine above the core applies.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Txn {
    pub zxid: Zxid,
    pub payload: Bytes,
}

/// What a server is doing, as announced in election notifications.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ServerState {
    Looking,
    Following,
    Leading,
    Observing,
}

/// A position in the ordered stream of persist actions. The shell reports
/// durability as "everything up to and including this sequence number is on
/// stable storage", which keeps appends, truncations, snapshot installs and
/// epoch writes in one order: there is no way to report a later write durable
/// while an earlier one is not.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default)]
pub struct PersistSeq(pub u64);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zxid_splits_into_epoch_and_counter() {
        let z = Zxid::new(Epoch(3), 7);
        assert_eq!(z.0, 0x0000_0003_0000_0007);
        assert_eq!(z.epoch(), Epoch(3));
        assert_eq!(z.counter(), 7);
        assert!(Zxid::new(Epoch(2), u32::MAX) < Zxid::new(Epoch(3), 0));
    }

    #[test]
    fn gap_free_successors() {
        let z = Zxid::new(Epoch(2), 5);
        assert!(z.is_followed_by(Zxid::new(Epoch(2), 6)));
        assert!(z.is_followed_by(Zxid::new(Epoch(4), 1)));
        assert!(!z.is_followed_by(Zxid::new(Epoch(2), 7)));
        assert!(!z.is_followed_by(Zxid::new(Epoch(3), 2)));
        assert!(!z.is_followed_by(Zxid::new(Epoch(1), 1)));
        assert!(Zxid::ZERO.is_followed_by(Zxid::new(Epoch(1), 1)));
    }

    #[test]
    fn votes_order_by_epoch_then_zxid_then_id() {
        let v = |e, c, id| Vote {
            epoch: Epoch(e),
            zxid: Zxid::new(Epoch(e), c),
            leader: PeerId(id),
        };
        assert!(v(2, 1, 1) > v(1, 9, 9));
        assert!(v(1, 5, 1) > v(1, 4, 9));
        assert!(v(1, 5, 2) > v(1, 5, 1));
    }
}
