//! Primary integrity: when a leader is established, its initial history
//! contains every transaction committed (delivered anywhere) before.

use zab_core::PeerId;

use super::{fail, Check, Ghost};
use crate::sim::disk::Image;

pub fn on_established(ghost: &Ghost, leader: PeerId, history: &Image) -> Check {
    let base = history.snapshot.len as usize;
    if base > ghost.delivered.len() {
        return fail(
            "primary_integrity",
            format!("{leader:?}'s snapshot holds {base} txns, more than were ever committed"),
        );
    }
    for (zxid, payload) in &ghost.delivered[base..] {
        let held = history.position(*zxid).ok().map(|i| &history.log[i].payload);
        if held != Some(payload) {
            return fail(
                "primary_integrity",
                format!("{leader:?} established without committed {zxid}"),
            );
        }
    }
    Ok(())
}
