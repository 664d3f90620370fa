//! Every write acknowledged to a client is in the history of every later
//! leader: nothing acknowledged is ever lost.

use zab_core::PeerId;

use super::{fail, Check, Ghost};
use crate::sim::disk::Image;

pub fn on_established(ghost: &Ghost, leader: PeerId, history: &Image) -> Check {
    for &(write, zxid) in &ghost.acked_writes {
        let in_snapshot = zxid <= history.snapshot.zxid;
        if !in_snapshot && history.position(zxid).is_err() {
            return fail(
                "acked_writes_survive",
                format!("{leader:?} leads without acknowledged write #{write} ({zxid})"),
            );
        }
    }
    Ok(())
}
