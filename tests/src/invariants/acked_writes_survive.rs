//! Every write acknowledged to a client is in the history of the leader of
//! every later epoch: nothing acknowledged is ever lost.

use zab_core::{Epoch, PeerId, Zxid};

use super::{fail, Check, Ghost};
use crate::sim::disk::Image;

pub fn on_established(ghost: &Ghost, leader: PeerId, epoch: Epoch, history: &Image) -> Check {
    // Acknowledged writes are committed ones; those of an earlier term (see
    // `Ghost::committed_before`).
    let earlier = |z: &Zxid| ghost.committed_before(*z, epoch);
    for &(write, zxid) in ghost.acked_writes.iter().filter(|(_, z)| earlier(z)) {
        let in_snapshot = zxid <= history.snapshot.zxid;
        if !in_snapshot && history.position(zxid).is_err() {
            return fail(
                "acked_writes_survive",
                format!(
                    "{leader:?} leads epoch {epoch} without acknowledged write #{write} ({zxid})"
                ),
            );
        }
    }
    Ok(())
}
