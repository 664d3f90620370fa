//! The recent changes this server applied, kept so that a watcher that
//! reconnects can be sent every event it missed (resumable watches), not
//! just told that it may have missed some.
//!
//! The window is bounded by a number of changes. It covers a zxid `R` when
//! it holds every change after `R`: a reconnecting session that last saw
//! `R` is then replayed exactly the events its watches would have fired,
//! in order, each at its own zxid. Below the window (the gap is older than
//! what is kept, or this server started or installed a snapshot since), the
//! session gets the stat comparison and `ContinuityLost` instead.

use std::collections::VecDeque;

use crate::tree::Change;

/// The changes applied after `floor`, oldest first.
#[derive(Debug, Default)]
pub struct RecentChanges {
    changes: VecDeque<(u64, Change)>,
    /// Every change with a zxid above it is held; None until this server
    /// knows where its history starts (the first apply, or the first
    /// question).
    floor: Option<u64>,
    limit: usize,
}

impl RecentChanges {
    /// Keeps at most `limit` changes (0: none, so nothing is covered).
    pub fn new(limit: usize) -> RecentChanges {
        RecentChanges {
            limit,
            ..RecentChanges::default()
        }
    }

    /// Records the changes of the transaction at `zxid`, the next one this
    /// server applied.
    pub fn record(&mut self, zxid: u64, changes: Vec<Change>) {
        // The first transaction since the history started: nothing between
        // the previous one and this one exists.
        let floor = *self.floor.get_or_insert(zxid.saturating_sub(1));
        if self.limit == 0 {
            self.floor = Some(floor.max(zxid));
            return;
        }
        for change in changes {
            self.changes.push_back((zxid, change));
        }
        while self.changes.len() > self.limit {
            if let Some((gone, _)) = self.changes.pop_front() {
                self.floor = self.floor.max(Some(gone));
            }
        }
    }

    /// The state was replaced (a snapshot installed): the history starts
    /// again at `applied`.
    pub fn restart(&mut self, applied: u64) {
        self.changes.clear();
        self.floor = Some(applied);
    }

    /// Where the history starts if nothing has been recorded yet.
    pub fn start_at(&mut self, applied: u64) {
        self.floor.get_or_insert(applied);
    }

    /// The changes after `zxid`, in order, if every one of them is held.
    pub fn after(&self, zxid: u64) -> Option<impl Iterator<Item = &(u64, Change)>> {
        let floor = self.floor?;
        if self.limit == 0 || zxid < floor {
            return None;
        }
        let start = self.changes.partition_point(|(z, _)| *z <= zxid);
        Some(self.changes.range(start..))
    }

    /// Changes held.
    pub fn held(&self) -> usize {
        self.changes.len()
    }

    /// The zxid above which every change is held (0 if not known yet).
    pub fn floor(&self) -> u64 {
        self.floor.unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree::ChangeKind;

    fn change(path: &str) -> Change {
        Change {
            path: path.into(),
            kind: ChangeKind::DataChanged,
            acl: crate::tree::open_acl(),
        }
    }

    fn paths<'a>(it: impl Iterator<Item = &'a (u64, Change)>) -> Vec<(u64, String)> {
        it.map(|(z, c)| (*z, c.path.clone())).collect()
    }

    #[test]
    fn covers_exactly_what_it_holds() {
        let mut r = RecentChanges::new(3);
        assert!(r.after(5).is_none(), "no history known yet");
        r.record(10, vec![change("/a"), change("/b")]);
        r.record(11, vec![change("/c")]);
        // Started at 9: a session that saw 9 or later is covered.
        assert_eq!(
            paths(r.after(9).expect("covered")),
            [(10, "/a".into()), (10, "/b".into()), (11, "/c".into())]
        );
        assert!(r.after(8).is_none());
        assert_eq!(paths(r.after(10).expect("covered")), [(11, "/c".into())]);
        assert_eq!(paths(r.after(11).expect("covered")), []);
        // A fourth change evicts one of zxid 10: only from 10 on is covered.
        r.record(12, vec![change("/d")]);
        assert_eq!(r.held(), 3);
        assert!(r.after(9).is_none(), "half of zxid 10 is gone");
        assert_eq!(
            paths(r.after(10).expect("covered")),
            [(11, "/c".into()), (12, "/d".into())]
        );
    }

    #[test]
    fn a_restart_or_a_zero_limit_covers_nothing_before_it() {
        let mut r = RecentChanges::new(10);
        r.start_at(100);
        assert_eq!(paths(r.after(100).expect("covered")), []);
        assert!(r.after(99).is_none());
        r.record(101, vec![change("/a")]);
        r.restart(500);
        assert!(r.after(101).is_none());
        assert_eq!(paths(r.after(500).expect("covered")), []);
        let mut off = RecentChanges::new(0);
        off.record(7, vec![change("/a")]);
        assert!(off.after(7).is_none() && off.after(6).is_none());
    }
}
