//! The newest logged transactions, in memory: delivery and DIFF streams
//! read them from here instead of going back to disk. It is bounded in
//! count and in bytes on its own, not by when snapshots are taken (a large
//! tree is snapshotted seldom, see `snapshot_policy`): past its bound the
//! oldest applied transactions go, and a follower further behind than what
//! is left gets a snapshot instead of a DIFF.

use std::collections::BTreeMap;
use std::ops::Bound;

use bytes::Bytes;
use zab_core::Zxid;

#[derive(Debug)]
pub(super) struct Window {
    txns: BTreeMap<Zxid, Bytes>,
    bytes: usize,
    max_txns: usize,
    max_bytes: usize,
    /// The newest zxid dropped (or replaced by a snapshot): no DIFF can be
    /// served from below it.
    dropped_through: Zxid,
}

impl Window {
    /// Holding `txns`, bounded (once trimmed) by `max_txns` and `max_bytes`.
    pub(super) fn new(
        txns: impl IntoIterator<Item = (Zxid, Bytes)>,
        max_txns: usize,
        max_bytes: usize,
    ) -> Window {
        let mut w = Window {
            txns: BTreeMap::new(),
            bytes: 0,
            max_txns: max_txns.max(1),
            max_bytes: max_bytes.max(1),
            dropped_through: Zxid::ZERO,
        };
        for (zxid, payload) in txns {
            w.insert(zxid, payload);
        }
        w
    }

    pub(super) fn set_bounds(&mut self, max_txns: usize, max_bytes: usize) {
        self.max_txns = max_txns.max(1);
        self.max_bytes = max_bytes.max(1);
    }

    /// Past its bound, drops the oldest transactions at or below `applied`
    /// (the rest are still to be delivered) down to 7/8 of the bound, so
    /// that trimming comes in batches. Returns the newest zxid dropped.
    pub(super) fn trim_to_bounds(&mut self, applied: Zxid) -> Option<Zxid> {
        if self.txns.len() <= self.max_txns && self.bytes <= self.max_bytes {
            return None;
        }
        let (txns_to, bytes_to) = (
            self.max_txns - self.max_txns / 8,
            self.max_bytes - self.max_bytes / 8,
        );
        let mut dropped = None;
        while self.txns.len() > txns_to || self.bytes > bytes_to {
            let Some(entry) = self.txns.first_entry() else {
                break;
            };
            if *entry.key() > applied {
                break;
            }
            let (zxid, payload) = entry.remove_entry();
            self.bytes -= payload.len();
            dropped = Some(zxid);
        }
        if let Some(zxid) = dropped {
            self.dropped_through = zxid;
        }
        dropped
    }

    /// Payload bytes held.
    pub(super) fn bytes(&self) -> usize {
        self.bytes
    }

    pub(super) fn insert(&mut self, zxid: Zxid, payload: Bytes) {
        self.bytes += payload.len();
        if let Some(old) = self.txns.insert(zxid, payload) {
            self.bytes -= old.len();
        }
    }

    /// The transactions in (`after`, `through`], in order.
    pub(super) fn range(&self, after: Zxid, through: Zxid) -> impl Iterator<Item = (Zxid, &Bytes)> {
        self.txns
            .range((Bound::Excluded(after), Bound::Included(through)))
            .map(|(z, p)| (*z, p))
    }

    /// Drops everything after `to` (a truncation).
    pub(super) fn truncate_after(&mut self, to: Zxid) {
        let cut = self.txns.split_off(&Zxid(to.0 + 1));
        self.bytes -= cut.values().map(Bytes::len).sum::<usize>();
    }

    /// Whether it holds every transaction after `after` that it ever held
    /// (none was dropped at or above it).
    pub(super) fn holds_after(&self, after: Zxid) -> bool {
        after >= self.dropped_through
    }

    /// Everything goes: the state was replaced by a snapshot through `to`.
    pub(super) fn clear(&mut self, to: Zxid) {
        self.txns.clear();
        self.bytes = 0;
        self.dropped_through = to;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_follow_inserts_truncations_and_trims() {
        let b = |n| Bytes::from(vec![0u8; n]);
        let mut w = Window::new(
            [(Zxid(1), b(10)), (Zxid(2), b(20)), (Zxid(3), b(30))],
            9,
            999,
        );
        assert_eq!(w.bytes(), 60);
        w.insert(Zxid(2), b(5));
        assert_eq!(w.bytes(), 45);
        w.truncate_after(Zxid(2));
        assert_eq!(w.bytes(), 15);
        w.insert(Zxid(3), b(7));
        assert_eq!(w.bytes(), 22);
        assert_eq!(
            w.range(Zxid(1), Zxid(9))
                .map(|(z, _)| z)
                .collect::<Vec<_>>(),
            [Zxid(2), Zxid(3)]
        );
        w.clear(Zxid(3));
        assert_eq!(w.bytes(), 0);
        assert!(!w.holds_after(Zxid(2)) && w.holds_after(Zxid(3)));
    }

    #[test]
    fn past_its_bounds_it_drops_the_oldest_applied_down_to_seven_eighths() {
        let b = |n| Bytes::from(vec![0u8; n]);
        let mut w = Window::new((1..=16).map(|z| (Zxid(z), b(1))), 16, 1_000);
        assert_eq!(w.trim_to_bounds(Zxid(16)), None, "within the bound");
        w.insert(Zxid(17), b(1));
        // Over by count: down to 14, oldest first.
        assert_eq!(w.trim_to_bounds(Zxid(17)), Some(Zxid(3)));
        assert!(!w.holds_after(Zxid(2)) && w.holds_after(Zxid(3)));
        assert_eq!(
            w.range(Zxid(0), Zxid(99)).next().map(|(z, _)| z),
            Some(Zxid(4))
        );
        // Over by bytes, but nothing applied may go.
        w.insert(Zxid(18), b(2_000));
        assert_eq!(w.trim_to_bounds(Zxid(3)), None);
        assert_eq!(w.trim_to_bounds(Zxid(17)), Some(Zxid(17)));
        assert_eq!(
            w.range(Zxid(0), Zxid(99))
                .map(|(z, _)| z)
                .collect::<Vec<_>>(),
            [Zxid(18)]
        );
        assert_eq!(w.bytes(), 2_000);
    }
}
