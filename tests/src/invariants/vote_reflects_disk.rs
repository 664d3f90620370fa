//! Elections compare durable state (REFERENCE §1.6): a server that proposes
//! itself does so with the currentEpoch and last logged zxid its *disk* holds,
//! never with in-memory progress such as what it has applied.

use zab_core::{Message, PeerId, ServerState};

use super::{fail, Check};
use crate::sim::disk::Image;

pub fn on_send(node: PeerId, msg: &Message, disk: &Image) -> Check {
    let Message::Notification {
        vote,
        state: ServerState::Looking,
        ..
    } = msg
    else {
        return Ok(());
    };
    if vote.leader != node {
        return Ok(());
    }
    if vote.epoch == disk.current_epoch && vote.zxid == disk.last_zxid() {
        Ok(())
    } else {
        fail(
            "vote_reflects_disk",
            format!(
                "{node:?} proposed itself with ({}, {}) but its disk holds ({}, {})",
                vote.epoch,
                vote.zxid,
                disk.current_epoch,
                disk.last_zxid()
            ),
        )
    }
}
