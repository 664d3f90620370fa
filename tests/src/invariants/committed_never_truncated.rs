//! Committed transactions are never truncated: neither TRUNC nor a snapshot
//! install removes a delivered transaction from a server's history, unless
//! it comes from a deposed leader of an older term than the one that
//! committed the transaction. (A leader of term T holds everything committed
//! in terms up to T; a learner that never heard of a later term can still
//! join T's leader, which cuts what T's history lacks. The learner then
//! holds T's history, which a later term's leader will bring up to date.)

use zab_core::{Epoch, PeerId, Zxid};

use super::{fail, Check, Ghost};
use crate::sim::disk::{Image, SnapshotState};

/// Whether `zxid` was committed in a term up to `term` (the term of the
/// leader removing it; `None` if unknown: any committed one counts).
fn protected(ghost: &Ghost, zxid: Zxid, term: Option<Epoch>) -> bool {
    ghost.is_delivered(zxid)
        && match (term, ghost.committed_in.get(&zxid)) {
            (Some(term), Some(&committed)) => committed <= term,
            _ => true,
        }
}

/// `node`, which has applied through `applied`, cuts its log after `to`, as
/// told by a leader of `term`. What a server applied it never cuts, whoever
/// asks: a learner that applied a transaction committed in term T accepted
/// T, so no leader of an older term can reach it.
pub fn on_truncate(
    ghost: &Ghost,
    node: PeerId,
    image: &Image,
    (to, applied): (Zxid, Zxid),
    term: Option<Epoch>,
) -> Check {
    if to < applied {
        return fail(
            "committed_never_truncated",
            format!("{node:?} truncated to {to}, below what it applied ({applied})"),
        );
    }
    let cut = image.position(to).map_or_else(|i| i, |i| i + 1);
    match image.log[cut..]
        .iter()
        .find(|t| protected(ghost, t.zxid, term))
    {
        Some(t) => fail(
            "committed_never_truncated",
            format!("{node:?} truncated to {to}, removing committed {}", t.zxid),
        ),
        None => Ok(()),
    }
}

/// A snapshot from a leader of `term` replaces the log: everything committed
/// the log held must be in it.
pub fn on_install(
    ghost: &Ghost,
    node: PeerId,
    image: &Image,
    snap: SnapshotState,
    term: Option<Epoch>,
) -> Check {
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
        .find(|t| t.zxid > snap.zxid && protected(ghost, t.zxid, term))
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
