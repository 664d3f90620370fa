//! At most one established leader per epoch (Zab: "primary uniqueness").

use zab_core::{Epoch, PeerId};

use super::{fail, Check, Ghost};

pub fn on_established(ghost: &mut Ghost, leader: PeerId, epoch: Epoch) -> Check {
    match ghost.leaders.insert(epoch, leader) {
        Some(other) if other != leader => fail(
            "one_leader_per_epoch",
            format!("{leader:?} and {other:?} both established epoch {epoch}"),
        ),
        _ => Ok(()),
    }
}
