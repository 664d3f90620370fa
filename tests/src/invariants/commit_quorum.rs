//! A transaction is committed only once a quorum of voters, the leader
//! included, holds it on disk (REFERENCE §1.2). A node whose disk a
//! simulated fault damaged counts for what it held before the fault: the
//! leader may rightly count an acknowledgement it sent before it crashed.

use zab_core::{Membership, PeerId, Zxid};

use super::{fail, Check};
use crate::sim::disk::Image;

pub fn on_commit<'a>(
    leader: PeerId,
    zxid: Zxid,
    membership: &Membership,
    disks: impl Iterator<Item = (PeerId, &'a Image, Option<&'a Image>)>,
) -> Check {
    let holds = |disk: &Image| {
        disk.last_zxid() >= zxid && (disk.contains(zxid) || disk.snapshot.zxid >= zxid)
    };
    let mut holders = Vec::new();
    for (id, disk, before_fault) in disks {
        if holds(disk) || before_fault.is_some_and(holds) {
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
