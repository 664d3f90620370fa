//! Nothing is acknowledged that is not durable (REFERENCE §1.1): when a server
//! sends ACKEPOCH, ACK(NEWLEADER), ACK or ACK(NEWEPOCH), its *disk* (not its
//! memory) already holds what the acknowledgement promises; an ACK's zxid is
//! also covered by the disk's currentEpoch.

use zab_core::{Epoch, Message, PeerId, Zxid};

use super::{fail, Check};
use crate::sim::disk::Image;

/// `accepted`, `current` and `last` are what the node has written so far (its
/// in-memory view); the disk must hold them when the ack leaves.
pub fn on_send(
    node: PeerId,
    msg: &Message,
    disk: &Image,
    accepted: Epoch,
    current: Epoch,
    last: Zxid,
) -> Check {
    let ok = match msg {
        Message::AckEpoch { .. } => disk.accepted_epoch == accepted && disk.last_zxid() == last,
        // The disk may already hold a later epoch from a bump that followed NEWLEADER.
        Message::AckNewLeader { .. } => disk.current_epoch >= current && disk.last_zxid() >= last,
        Message::AckNewEpoch { new_epoch, .. } => {
            disk.accepted_epoch >= *new_epoch && disk.current_epoch >= *new_epoch
        }
        // And currentEpoch covers it: votes order by currentEpoch first, so
        // an ack from a server whose currentEpoch is below the zxid's epoch
        // could commit what a server with a higher currentEpoch and a shorter
        // history would then outvote.
        Message::Ack { zxid, .. } => {
            disk.contains(*zxid) && disk.last_zxid() >= *zxid && disk.current_epoch >= zxid.epoch()
        }
        _ => true,
    };
    if ok {
        Ok(())
    } else {
        fail(
            "ack_durable",
            format!(
                "{node:?} sent {} while its disk holds accepted {} current {} last {}",
                msg.kind(),
                disk.accepted_epoch,
                disk.current_epoch,
                disk.last_zxid()
            ),
        )
    }
}
