//! A transaction is committed only once a quorum of voters, the leader
//! included, holds it on disk (REFERENCE §1.2).

use zab_core::{Membership, PeerId, Zxid};

use super::{fail, Check};
use crate::sim::disk::Image;

pub fn on_commit<'a>(
    leader: PeerId,
    zxid: Zxid,
    membership: &Membership,
    disks: impl Iterator<Item = (PeerId, &'a Image)>,
) -> Check {
    let mut holders = Vec::new();
    for (id, disk) in disks {
        if disk.last_zxid() >= zxid && (disk.contains(zxid) || disk.snapshot.zxid >= zxid) {
            holders.push(id);
        }
    }
    if holders.contains(&leader) && membership.is_quorum(holders.iter().copied()) {
        Ok(())
    } else {
        fail(
            "commit_quorum",
            format!("{leader:?} committed {zxid} but only {holders:?} have it on disk"),
        )
    }
}
