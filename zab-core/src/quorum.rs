//! Who votes, and what a quorum is. Kept behind one type so that weighted or
//! hierarchical quorums, or reconfiguration, change this file and not the phases.

use std::collections::BTreeSet;

use crate::types::PeerId;

/// The ensemble: voters decide, observers only learn. Static for now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Membership {
    voters: BTreeSet<PeerId>,
    observers: BTreeSet<PeerId>,
}

impl Membership {
    /// Builds a membership. Panics if a server is both voter and observer or if
    /// there are no voters: that is a configuration bug the shell validates first.
    pub fn new(
        voters: impl IntoIterator<Item = PeerId>,
        observers: impl IntoIterator<Item = PeerId>,
    ) -> Membership {
        let voters: BTreeSet<_> = voters.into_iter().collect();
        let observers: BTreeSet<_> = observers.into_iter().collect();
        assert!(!voters.is_empty(), "an ensemble needs at least one voter");
        assert!(
            voters.is_disjoint(&observers),
            "a server cannot both vote and observe"
        );
        Membership { voters, observers }
    }

    pub fn is_voter(&self, id: PeerId) -> bool {
        self.voters.contains(&id)
    }

    pub fn is_member(&self, id: PeerId) -> bool {
        self.voters.contains(&id) || self.observers.contains(&id)
    }

    pub fn voters(&self) -> impl Iterator<Item = PeerId> + '_ {
        self.voters.iter().copied()
    }

    /// Every member, voters first.
    pub fn members(&self) -> impl Iterator<Item = PeerId> + '_ {
        self.voters.iter().chain(self.observers.iter()).copied()
    }

    /// Whether the voters among `ids` form a strict majority of the voters.
    /// Observers and strangers in `ids` are ignored: they never count.
    pub fn is_quorum(&self, ids: impl IntoIterator<Item = PeerId>) -> bool {
        let mut seen = BTreeSet::new();
        for id in ids {
            if self.voters.contains(&id) {
                seen.insert(id);
            }
        }
        seen.len() * 2 > self.voters.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(v: &[u64]) -> Vec<PeerId> {
        v.iter().copied().map(PeerId).collect()
    }

    #[test]
    fn majority_of_voters_only() {
        let m = Membership::new(ids(&[1, 2, 3, 4, 5]), ids(&[9]));
        assert!(!m.is_quorum(ids(&[1, 2])));
        assert!(!m.is_quorum(ids(&[1, 2, 9])));
        assert!(!m.is_quorum(ids(&[1, 2, 2])));
        assert!(m.is_quorum(ids(&[1, 2, 3])));
        let even = Membership::new(ids(&[1, 2, 3, 4]), []);
        assert!(!even.is_quorum(ids(&[1, 2])));
        assert!(even.is_quorum(ids(&[1, 2, 4])));
    }
}
