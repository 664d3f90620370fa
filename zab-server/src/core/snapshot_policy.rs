//! When to take a snapshot.
//!
//! A snapshot rewrites the whole tree, a log record only one change: at 1M
//! znodes a snapshot is ~200 MB, 100,000 transactions ~20 MB. Taken every
//! `every_txns` alone, a large tree is rewritten many times over for the
//! log it replaces, and the disk and CPU that takes are what writes wait
//! behind. So a snapshot also waits until the log since the last one is at
//! least `log_percent` of the snapshot's estimated size (50%: snapshot
//! writes at most twice the log's), and never longer than `every_bytes` of
//! log, which bounds what a restart replays. Small trees are unaffected:
//! there the count comes last.
//!
//! The servers of an ensemble apply the same transactions, so with one rule
//! they would all snapshot at the same zxid, together: one disk and the
//! same cores, and the leader and its quorum slowed at once. Each server's
//! first snapshot after it starts comes at a different share of the
//! thresholds (by server id, in thirds), which keeps them apart from then
//! on.

/// Snapshots are staggered over this many phases.
const STAGGER_PHASES: u64 = 3;

#[derive(Debug, Clone)]
pub(super) struct SnapshotPolicy {
    every_txns: u64,
    every_bytes: u64,
    log_percent: u64,
    since_txns: u64,
    since_bytes: u64,
    /// The share of each threshold that is due, as numerator over
    /// `STAGGER_PHASES`: less than whole until the first snapshot.
    share: u64,
}

impl SnapshotPolicy {
    /// The policy of server `me`.
    pub(super) fn new(me: u64, every_txns: u64, every_bytes: u64) -> SnapshotPolicy {
        SnapshotPolicy {
            every_txns: every_txns.max(1),
            every_bytes: every_bytes.max(1),
            log_percent: SNAPSHOT_LOG_PERCENT_DEFAULT,
            since_txns: 0,
            since_bytes: 0,
            share: STAGGER_PHASES - me.saturating_sub(1) % STAGGER_PHASES,
        }
    }

    pub(super) fn with_every_bytes(mut self, bytes: u64) -> SnapshotPolicy {
        self.every_bytes = bytes.max(1);
        self
    }

    /// 0 turns the size rule off (snapshots by count and bytes alone).
    pub(super) fn with_log_percent(mut self, percent: u64) -> SnapshotPolicy {
        self.log_percent = percent;
        self
    }

    /// One transaction of `bytes` was applied.
    pub(super) fn applied(&mut self, bytes: usize) {
        self.since_txns += 1;
        self.since_bytes += bytes as u64;
    }

    /// Whether a snapshot is due now, for a tree whose snapshot would take
    /// about `snapshot_bytes`.
    pub(super) fn due(&self, snapshot_bytes: u64) -> bool {
        let scaled = |threshold: u64| threshold.saturating_mul(self.share) / STAGGER_PHASES;
        let count = self.since_txns >= scaled(self.every_txns);
        let size = self.since_bytes.saturating_mul(100)
            >= scaled(snapshot_bytes.saturating_mul(self.log_percent));
        (count && size) || self.since_bytes >= scaled(self.every_bytes)
    }

    /// A snapshot was taken: count afresh, with the whole thresholds.
    pub(super) fn taken(&mut self) {
        self.since_txns = 0;
        self.since_bytes = 0;
        self.share = STAGGER_PHASES;
    }
}

/// The default of `snapshot_log_percent`: a snapshot waits until the log
/// since the last one is this percentage of its estimated size.
pub const SNAPSHOT_LOG_PERCENT_DEFAULT: u64 = 50;

#[cfg(test)]
mod tests {
    use super::*;

    /// Applies `n` transactions of `bytes` until due; how many it took.
    fn until_due(p: &mut SnapshotPolicy, bytes: usize, snapshot_bytes: u64) -> u64 {
        for n in 1..=10_000_000 {
            p.applied(bytes);
            if p.due(snapshot_bytes) {
                p.taken();
                return n;
            }
        }
        panic!("never due");
    }

    #[test]
    fn a_small_tree_snapshots_by_count() {
        let mut p = SnapshotPolicy::new(1, 1_000, 1 << 30);
        assert_eq!(until_due(&mut p, 100, 10_000), 1_000);
        assert_eq!(until_due(&mut p, 100, 10_000), 1_000);
    }

    #[test]
    fn a_large_tree_waits_for_half_its_size_in_log() {
        // 200 MB of tree, 200-byte transactions: 500,000 of them, not 1,000.
        let mut p = SnapshotPolicy::new(1, 1_000, 1 << 30);
        assert_eq!(until_due(&mut p, 200, 200_000_000), 500_000);
        // Off: by count again.
        let mut p = SnapshotPolicy::new(1, 1_000, 1 << 30).with_log_percent(0);
        assert_eq!(until_due(&mut p, 200, 200_000_000), 1_000);
    }

    #[test]
    fn the_byte_cap_bounds_the_wait_whatever_the_tree() {
        let mut p = SnapshotPolicy::new(1, 1_000, 1 << 30).with_every_bytes(1_000_000);
        assert_eq!(until_due(&mut p, 200, 10_000_000_000), 5_000);
        // And it applies below the count, as for large writes.
        let mut p = SnapshotPolicy::new(1, 1_000, 1 << 30).with_every_bytes(1_000_000);
        assert_eq!(until_due(&mut p, 100_000, 0), 10);
    }

    #[test]
    fn servers_take_their_first_snapshot_a_third_apart_then_stay_apart() {
        let firsts: Vec<u64> = (1..=4)
            .map(|me| until_due(&mut SnapshotPolicy::new(me, 900, 1 << 30), 10, 0))
            .collect();
        assert_eq!(firsts, [900, 600, 300, 900]);
        let mut p = SnapshotPolicy::new(2, 900, 1 << 30);
        until_due(&mut p, 10, 0);
        assert_eq!(until_due(&mut p, 10, 0), 900);
    }
}
