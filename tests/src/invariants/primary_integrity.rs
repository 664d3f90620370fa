//! Primary integrity (Zab): when the leader of epoch e is established, its
//! initial history contains every transaction committed in an epoch before e.
//!
//! Only earlier epochs: a leader whose quorum acknowledged NEWLEADER long ago
//! (say its own disk was slow) may be established after a *later* epoch has
//! committed more. No message-based protocol can rule that out, and it is
//! harmless: that leader can neither commit nor confirm a sync, because its
//! quorum has moved on.

use zab_core::{Epoch, PeerId};

use super::{fail, Check, Ghost};
use crate::sim::disk::Image;

pub fn on_established(ghost: &Ghost, leader: PeerId, epoch: Epoch, history: &Image) -> Check {
    let before = ghost.delivered.partition_point(|(z, _)| z.epoch() < epoch);
    let base = history.snapshot.len as usize;
    if base > ghost.delivered.len() {
        return fail(
            "primary_integrity",
            format!("{leader:?}'s snapshot holds {base} txns, more than were ever committed"),
        );
    }
    for (zxid, payload) in ghost.delivered.get(base..before).unwrap_or_default() {
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
