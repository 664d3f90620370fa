//! The logged transactions after the newest snapshot, in memory: delivery
//! and DIFF streams read them from here instead of going back to disk. It
//! counts its bytes, so the core can take a snapshot (and trim it) before
//! large writes pile up: 100,000 transactions of 1 MB would otherwise be
//! 100 GB held here.

use std::collections::BTreeMap;
use std::ops::Bound;

use bytes::Bytes;
use zab_core::Zxid;

#[derive(Debug, Default)]
pub(super) struct Window {
    txns: BTreeMap<Zxid, Bytes>,
    bytes: usize,
}

impl Window {
    pub(super) fn new(txns: impl IntoIterator<Item = (Zxid, Bytes)>) -> Window {
        let mut w = Window::default();
        for (zxid, payload) in txns {
            w.insert(zxid, payload);
        }
        w
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

    /// Drops everything through `through` (covered by a snapshot now).
    pub(super) fn trim_through(&mut self, through: Zxid) {
        let kept = self.txns.split_off(&Zxid(through.0 + 1));
        self.txns = kept;
        self.bytes = self.txns.values().map(Bytes::len).sum();
    }

    pub(super) fn clear(&mut self) {
        self.txns.clear();
        self.bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_follow_inserts_truncations_and_trims() {
        let b = |n| Bytes::from(vec![0u8; n]);
        let mut w = Window::new([(Zxid(1), b(10)), (Zxid(2), b(20)), (Zxid(3), b(30))]);
        assert_eq!(w.bytes(), 60);
        w.insert(Zxid(2), b(5));
        assert_eq!(w.bytes(), 45);
        w.truncate_after(Zxid(2));
        assert_eq!(w.bytes(), 15);
        w.insert(Zxid(3), b(7));
        w.trim_through(Zxid(1));
        assert_eq!(w.bytes(), 12);
        assert_eq!(
            w.range(Zxid(0), Zxid(9))
                .map(|(z, _)| z)
                .collect::<Vec<_>>(),
            [Zxid(2), Zxid(3)]
        );
        w.clear();
        assert_eq!(w.bytes(), 0);
    }
}
