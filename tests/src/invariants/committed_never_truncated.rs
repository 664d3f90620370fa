//! Committed transactions are never truncated: neither TRUNC nor a snapshot
//! install removes a delivered transaction from a server's history.

use zab_core::{PeerId, Zxid};

use super::{fail, Check, Ghost};
use crate::sim::disk::{Image, SnapshotState};

pub fn on_truncate(ghost: &Ghost, node: PeerId, image: &Image, to: Zxid) -> Check {
    let cut = image.position(to).map_or_else(|i| i, |i| i + 1);
    match image.log[cut..].iter().find(|t| ghost.is_delivered(t.zxid)) {
        Some(t) => fail(
            "committed_never_truncated",
            format!("{node:?} truncated to {to}, removing committed {}", t.zxid),
        ),
        None => Ok(()),
    }
}

/// A snapshot replaces the log: everything committed the log held must be in it.
pub fn on_install(ghost: &Ghost, node: PeerId, image: &Image, snap: SnapshotState) -> Check {
    let committed_len = ghost.delivered.len() as u64;
    if snap.len > committed_len {
        return fail(
            "committed_never_truncated",
            format!(
                "{node:?} installed a snapshot of {} txns; only {committed_len} committed",
                snap.len
            ),
        );
    }
    match image
        .log
        .iter()
        .find(|t| ghost.is_delivered(t.zxid) && t.zxid > snap.zxid)
    {
        Some(t) => fail(
            "committed_never_truncated",
            format!(
                "{node:?} installed snapshot at {} dropping committed {}",
                snap.zxid, t.zxid
            ),
        ),
        None => Ok(()),
    }
}
