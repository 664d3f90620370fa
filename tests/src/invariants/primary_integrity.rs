//! Primary integrity (Zab): when the leader of epoch e is established, its
//! initial history contains every transaction committed in an epoch before e.
//!
//! Only earlier epochs: a leader whose quorum acknowledged NEWLEADER long ago
//! (say its own disk was slow) may be established after a *later* epoch has
//! committed more. No message-based protocol can rule that out, and it is
//! harmless: that leader can neither commit nor confirm a sync, because its
//! quorum has moved on.
//!
//! "Committed in an epoch" is the term of the leader that committed it
//! (`Ghost::committed_in`), not the epoch in its zxid: after an epoch bump
//! a zxid's epoch runs ahead of its leader's term, and a transaction
//! proposed under one leader can be committed by a later one (seed 201084:
//! a zxid of epoch 0x6f committed in term 0x71, then a stale leader of term
//! 0x70 established without it, which is the harmless case above).

use zab_core::{Epoch, PeerId};

use super::{fail, Check, Ghost};
use crate::sim::disk::Image;

pub fn on_established(ghost: &Ghost, leader: PeerId, epoch: Epoch, history: &Image) -> Check {
    let base = history.snapshot.len as usize;
    if base > ghost.delivered.len() {
        return fail(
            "primary_integrity",
            format!("{leader:?}'s snapshot holds {base} txns, more than were ever committed"),
        );
    }
    for (zxid, payload) in ghost.delivered.get(base..).unwrap_or_default() {
        if !ghost.committed_before(*zxid, epoch) {
            continue;
        }
        let held = history
            .position(*zxid)
            .ok()
            .map(|i| &history.log[i].payload);
        if held != Some(payload) {
            return fail(
                "primary_integrity",
                format!("{leader:?} established epoch {epoch} without committed {zxid}"),
            );
        }
    }
    Ok(())
}
