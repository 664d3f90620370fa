//! The shape of a server's transaction history, without the payloads.
//!
//! The core never reads the log: the shell keeps the transactions, the core keeps
//! this index of which zxids the log holds. Inside an epoch zxids are contiguous,
//! so the index is one range per epoch plus the snapshot the log starts after.
//! That is enough to choose DIFF, TRUNC or SNAP for a follower and to refuse gaps.

use std::fmt;

use crate::types::{Epoch, Zxid};

/// The zxids a history holds: everything up to `base` (covered by a snapshot,
/// or nothing when `base` is zero), then contiguous per-epoch runs.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct History {
    base: Zxid,
    runs: Vec<Run>,
}

/// Transactions `first..=last` (counters) of one epoch.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct Run {
    epoch: Epoch,
    first: u32,
    last: u32,
}

/// A zxid that cannot be appended without leaving a gap or going backwards.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct GapError {
    pub last: Zxid,
    pub next: Zxid,
}

impl fmt::Display for GapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "zxid {} cannot follow {} (gap or duplicate)",
            self.next, self.last
        )
    }
}

impl std::error::Error for GapError {}

impl History {
    /// A history that starts after a snapshot at `base` (zero: the empty history).
    pub fn starting_after(base: Zxid) -> History {
        History {
            base,
            runs: Vec::new(),
        }
    }

    /// The zxid the log starts after: the snapshot it builds on.
    pub fn base(&self) -> Zxid {
        self.base
    }

    /// The last zxid held (the base when the log is empty).
    pub fn last(&self) -> Zxid {
        self.runs
            .last()
            .map_or(self.base, |r| Zxid::new(r.epoch, r.last))
    }

    /// Whether `zxid` is the base or a logged transaction.
    pub fn contains(&self, zxid: Zxid) -> bool {
        zxid == self.base || self.run_holding(zxid).is_some()
    }

    /// The number of transactions logged after the base.
    pub fn logged_len(&self) -> u64 {
        self.runs
            .iter()
            .map(|r| u64::from(r.last - r.first) + 1)
            .sum()
    }

    /// Appends `zxid`, which must directly follow the last one (rule: no gaps).
    pub fn append(&mut self, zxid: Zxid) -> Result<(), GapError> {
        let last = self.last();
        if !last.is_followed_by(zxid) {
            return Err(GapError { last, next: zxid });
        }
        match self.runs.last_mut() {
            Some(run) if run.epoch == zxid.epoch() => run.last = zxid.counter(),
            _ => self.runs.push(Run {
                epoch: zxid.epoch(),
                first: zxid.counter(),
                last: zxid.counter(),
            }),
        }
        Ok(())
    }

    /// Drops every transaction after `to`. `to` must not be below the base: a
    /// snapshot cannot be un-applied (the caller asks for SNAP instead).
    pub fn truncate_after(&mut self, to: Zxid) {
        assert!(to >= self.base, "truncating below the snapshot base");
        while let Some(run) = self.runs.last_mut() {
            let first = Zxid::new(run.epoch, run.first);
            let last = Zxid::new(run.epoch, run.last);
            if first > to {
                self.runs.pop();
            } else {
                if last > to {
                    // first <= to < last: `to` lies inside this run's epoch.
                    run.last = to.counter();
                }
                break;
            }
        }
    }

    /// Replaces the whole history with a snapshot at `zxid`.
    pub fn reset_to_snapshot(&mut self, zxid: Zxid) {
        self.base = zxid;
        self.runs.clear();
    }

    /// Forgets the log up to and including `through`, now covered by a snapshot.
    pub fn compact(&mut self, through: Zxid) {
        if through <= self.base {
            return;
        }
        assert!(self.contains(through), "compacting to a zxid not held");
        self.base = through;
        self.runs.retain_mut(|run| {
            if Zxid::new(run.epoch, run.last) <= through {
                return false;
            }
            if run.epoch == through.epoch() {
                run.first = through.counter() + 1;
            }
            true
        });
    }

    /// The largest zxid held that is strictly below `zxid`, if any is at or
    /// above the base. This is where a follower ahead of us on a dead branch
    /// must truncate to.
    pub fn last_before(&self, zxid: Zxid) -> Option<Zxid> {
        if zxid <= self.base {
            return None;
        }
        let mut best = self.base;
        for run in &self.runs {
            let first = Zxid::new(run.epoch, run.first);
            if first >= zxid {
                break;
            }
            let last = Zxid::new(run.epoch, run.last);
            best = if last < zxid { last } else { Zxid(zxid.0 - 1) };
        }
        Some(best)
    }

    fn run_holding(&self, zxid: Zxid) -> Option<&Run> {
        self.runs
            .iter()
            .find(|r| r.epoch == zxid.epoch() && (r.first..=r.last).contains(&zxid.counter()))
    }
}

impl fmt::Debug for History {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "History(base {}", self.base)?;
        for r in &self.runs {
            write!(f, ", {}:{}..={}", r.epoch.0, r.first, r.last)?;
        }
        write!(f, ")")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn z(e: u32, c: u32) -> Zxid {
        Zxid::new(Epoch(e), c)
    }

    fn history(zxids: &[(u32, u32)]) -> History {
        let mut h = History::default();
        for &(e, c) in zxids {
            h.append(z(e, c)).expect("contiguous");
        }
        h
    }

    #[test]
    fn append_refuses_gaps_and_duplicates() {
        let mut h = history(&[(1, 1), (1, 2)]);
        assert!(h.append(z(1, 2)).is_err());
        assert!(h.append(z(1, 4)).is_err());
        assert!(h.append(z(2, 2)).is_err());
        h.append(z(3, 1)).expect("new epoch starts at 1");
        assert_eq!(h.last(), z(3, 1));
        assert_eq!(h.logged_len(), 3);
    }

    #[test]
    fn truncate_across_epochs() {
        let mut h = history(&[(1, 1), (1, 2), (1, 3), (2, 1), (2, 2)]);
        h.truncate_after(z(1, 2));
        assert_eq!(h.last(), z(1, 2));
        assert!(!h.contains(z(1, 3)));
        assert!(!h.contains(z(2, 1)));
        h.append(z(3, 1)).expect("append after truncation");
        assert_eq!(h.last(), z(3, 1));
    }

    #[test]
    fn truncate_to_base_empties_the_log() {
        let mut h = History::starting_after(z(1, 5));
        h.append(z(1, 6)).expect("contiguous");
        h.truncate_after(z(1, 5));
        assert_eq!(h.last(), z(1, 5));
        assert_eq!(h.logged_len(), 0);
    }

    #[test]
    fn last_before_finds_the_common_point() {
        let h = history(&[(1, 1), (1, 2), (3, 1), (3, 2)]);
        // A follower with 1.3 (a dead branch of epoch 1) truncates to 1.2.
        assert_eq!(h.last_before(z(1, 3)), Some(z(1, 2)));
        // One with 2.7 (an epoch this history never saw) also to 1.2.
        assert_eq!(h.last_before(z(2, 7)), Some(z(1, 2)));
        // One with 3.9 (ahead in our own epoch) to our last.
        assert_eq!(h.last_before(z(3, 9)), Some(z(3, 2)));
        assert_eq!(h.last_before(z(1, 1)), Some(Zxid::ZERO));
        assert_eq!(History::starting_after(z(1, 4)).last_before(z(1, 3)), None);
    }

    #[test]
    fn compact_moves_the_base() {
        let mut h = history(&[(1, 1), (1, 2), (2, 1), (2, 2)]);
        h.compact(z(2, 1));
        assert_eq!(h.base(), z(2, 1));
        assert!(h.contains(z(2, 1)));
        assert!(!h.contains(z(1, 2)));
        assert!(h.contains(z(2, 2)));
        assert_eq!(h.logged_len(), 1);
        assert_eq!(h.last(), z(2, 2));
    }
}
