//! A simulated disk: what is durable, and what the process sees (durable plus
//! writes not yet synced). A crash keeps the durable image and, depending on
//! the fault mode, a prefix of the unsynced writes.

use std::collections::VecDeque;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use zab_core::{EnsembleId, Epoch, History, PersistOp, PersistSeq, Restored, Txn, Zxid};

/// Everything a node keeps on disk.
#[derive(Clone, Debug, Default)]
pub struct Image {
    pub accepted_epoch: Epoch,
    pub current_epoch: Epoch,
    pub snapshot: SnapshotState,
    /// Transactions after the snapshot, in zxid order.
    pub log: Vec<Txn>,
    pub ensemble: EnsembleId,
    /// Recovery found this disk damaged (a simulated disk fault); cleared by
    /// `PersistOp::Intact`.
    pub recovering: bool,
}

/// The simulated state machine's state: how many transactions of the global
/// delivered order it reflects. Agreement is checked on every delivery, so a
/// length and the last zxid describe the state completely.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SnapshotState {
    pub zxid: Zxid,
    pub len: u64,
}

impl SnapshotState {
    pub fn encode(self) -> Bytes {
        let mut b = BytesMut::with_capacity(16);
        b.put_u64(self.zxid.0);
        b.put_u64(self.len);
        b.freeze()
    }

    pub fn decode(mut data: Bytes) -> SnapshotState {
        assert_eq!(data.len(), 16, "simulated snapshot is 16 bytes");
        let zxid = Zxid(data.get_u64());
        let len = data.get_u64();
        SnapshotState { zxid, len }
    }
}

impl Image {
    pub fn last_zxid(&self) -> Zxid {
        self.log.last().map_or(self.snapshot.zxid, |t| t.zxid)
    }

    pub fn contains(&self, zxid: Zxid) -> bool {
        zxid == self.snapshot.zxid || self.position(zxid).is_ok()
    }

    /// Index of `zxid` in the log (Ok) or where it would go (Err).
    pub fn position(&self, zxid: Zxid) -> Result<usize, usize> {
        self.log.binary_search_by_key(&zxid, |t| t.zxid)
    }

    /// The logged transactions in `(after, through]`.
    pub fn range(&self, after: Zxid, through: Zxid) -> &[Txn] {
        let start = self.position(after).map_or_else(|i| i, |i| i + 1);
        let end = self.position(through).map_or_else(|i| i, |i| i + 1);
        &self.log[start..end.max(start)]
    }

    pub fn apply(&mut self, op: &PersistOp) {
        match op {
            PersistOp::AcceptedEpoch(e) => self.accepted_epoch = *e,
            PersistOp::CurrentEpoch(e) => self.current_epoch = *e,
            PersistOp::Append(txn) => self.log.push(txn.clone()),
            PersistOp::Truncate { to } => {
                let keep = self.position(*to).map_or_else(|i| i, |i| i + 1);
                self.log.truncate(keep);
            }
            PersistOp::InstallSnapshot { data, .. } => {
                self.snapshot = SnapshotState::decode(data.clone());
                self.log.clear();
            }
            PersistOp::Intact { ensemble } => {
                self.ensemble = *ensemble;
                self.recovering = false;
            }
        }
    }

    pub fn restored(&self) -> Restored {
        let mut history = History::starting_after(self.snapshot.zxid);
        for t in &self.log {
            history.append(t.zxid).expect("durable log is contiguous");
        }
        Restored {
            accepted_epoch: self.accepted_epoch,
            current_epoch: self.current_epoch,
            history,
            ensemble: self.ensemble,
            recovering: self.recovering,
        }
    }
}

#[derive(Debug, Default)]
pub struct Disk {
    pub durable: Image,
    /// What the process reads: durable plus pending writes.
    pub view: Image,
    pub pending: VecDeque<(PersistSeq, PersistOp)>,
    pub fsync_in_flight: bool,
    pub slow: bool,
}

impl Disk {
    pub fn write(&mut self, seq: PersistSeq, op: PersistOp) {
        self.view.apply(&op);
        self.pending.push_back((seq, op));
    }

    /// An fsync covering everything through `through` completed.
    pub fn synced(&mut self, through: PersistSeq) {
        while self.pending.front().is_some_and(|(s, _)| *s <= through) {
            let (_, op) = self.pending.pop_front().expect("checked non-empty");
            self.durable.apply(&op);
        }
    }

    /// Power loss: the first `keep` unsynced writes happened to reach the
    /// platter, the rest are gone.
    pub fn crash(&mut self, keep: usize) {
        for (_, op) in self.pending.drain(..).take(keep) {
            self.durable.apply(&op);
        }
        self.view = self.durable.clone();
        self.fsync_in_flight = false;
    }

    /// The shell's periodic snapshot: the applied state becomes the base and
    /// the log before it is purged, durably and atomically.
    pub fn compact(&mut self, state: SnapshotState) {
        for img in [&mut self.durable, &mut self.view] {
            let cut = img.position(state.zxid).map_or_else(|i| i, |i| i + 1);
            img.log.drain(..cut);
            img.snapshot = state;
        }
    }
}
