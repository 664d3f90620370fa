//! The ordered stream of writes the core asks the shell to make durable, and
//! the core's view of what already is.
//!
//! Every acknowledgement the protocol sends depends on a durable write (REFERENCE
//! §1.1). The core numbers its writes, the shell executes them in order and
//! reports "durable through seq N"; only then does the core release the
//! acknowledgements that depended on them.

use std::collections::VecDeque;

use bytes::Bytes;

use crate::types::{EnsembleId, Epoch, PersistSeq, Txn, Zxid};

/// One durable write, executed by the shell in sequence order.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum PersistOp {
    /// Write the acceptedEpoch file atomically.
    AcceptedEpoch(Epoch),
    /// Write the currentEpoch file atomically.
    CurrentEpoch(Epoch),
    /// Append a transaction to the log.
    Append(Txn),
    /// Remove every logged transaction after `to` (and any snapshot newer than it).
    Truncate { to: Zxid },
    /// Install a snapshot received from the leader as the new base of the
    /// history, discarding the log. Volatile until reported durable (§1.3).
    InstallSnapshot { zxid: Zxid, data: Bytes },
    /// Record that this server's history is an intact, synchronized copy of
    /// `ensemble`'s: it may vote again (clears a recovering standing). Written
    /// after the history it vouches for, like the epoch files.
    Intact { ensemble: EnsembleId },
}

/// What is on stable storage, as far as the shell has reported.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct DurableState {
    pub accepted_epoch: Epoch,
    pub current_epoch: Epoch,
    /// The last transaction on disk (or the snapshot's zxid with an empty log).
    pub last_zxid: Zxid,
}

/// Writes issued but not yet reported durable.
#[derive(Debug)]
pub(crate) struct PersistQueue {
    next: u64,
    pending: VecDeque<(PersistSeq, Pending)>,
    durable: DurableState,
}

/// What a pending write will change in [`DurableState`]; payloads are not kept.
#[derive(Clone, Copy, Debug)]
enum Pending {
    AcceptedEpoch(Epoch),
    CurrentEpoch(Epoch),
    LastZxid(Zxid),
    /// Changes nothing the core tracks here (the standing is tracked in `Ctx`).
    Nothing,
}

impl PersistQueue {
    pub(crate) fn new(durable: DurableState) -> PersistQueue {
        PersistQueue {
            next: 1,
            pending: VecDeque::new(),
            durable,
        }
    }

    /// Numbers `op` and records its effect. `last_zxid_after` is the log's last
    /// zxid once this op is applied (the caller's history knows it).
    pub(crate) fn issue(&mut self, op: &PersistOp, last_zxid_after: Zxid) -> PersistSeq {
        let seq = PersistSeq(self.next);
        self.next += 1;
        let effect = match op {
            PersistOp::AcceptedEpoch(e) => Pending::AcceptedEpoch(*e),
            PersistOp::CurrentEpoch(e) => Pending::CurrentEpoch(*e),
            PersistOp::Append(_)
            | PersistOp::Truncate { .. }
            | PersistOp::InstallSnapshot { .. } => Pending::LastZxid(last_zxid_after),
            PersistOp::Intact { .. } => Pending::Nothing,
        };
        self.pending.push_back((seq, effect));
        seq
    }

    /// The shell reports everything through `through` durable. Returns whether
    /// anything changed. Reports beyond what was issued are a shell bug.
    pub(crate) fn persisted(&mut self, through: PersistSeq) -> bool {
        assert!(
            through.0 < self.next,
            "shell reported seq {} durable, only {} issued",
            through.0,
            self.next - 1
        );
        let mut changed = false;
        while let Some(&(seq, effect)) = self.pending.front() {
            if seq > through {
                break;
            }
            self.pending.pop_front();
            changed = true;
            match effect {
                Pending::AcceptedEpoch(e) => self.durable.accepted_epoch = e,
                Pending::CurrentEpoch(e) => self.durable.current_epoch = e,
                Pending::LastZxid(z) => self.durable.last_zxid = z,
                Pending::Nothing => {}
            }
        }
        changed
    }

    pub(crate) fn durable(&self) -> DurableState {
        self.durable
    }

    /// The sequence number of the last write issued (zero if none yet).
    pub(crate) fn last_issued(&self) -> PersistSeq {
        PersistSeq(self.next - 1)
    }

    /// Whether every write through `seq` is durable.
    pub(crate) fn is_durable(&self, seq: PersistSeq) -> bool {
        self.pending.front().is_none_or(|&(first, _)| first > seq)
    }
}
