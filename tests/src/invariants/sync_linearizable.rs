//! Linearizable sync (REFERENCE §2): a sync is answered only by a leader that a
//! quorum confirmed *after the sync reached it*, and when the client hears the
//! answer, the server has applied every write acknowledged before the sync began.

use zab_core::{Epoch, Membership, PeerId, RequestId, Zxid};

use super::{fail, Check, Ghost};

/// The leader `leader` (term `term`) answers the sync `(origin, id)` now.
pub fn on_answered(
    ghost: &Ghost,
    leader: PeerId,
    term: Epoch,
    origin: PeerId,
    id: RequestId,
    membership: &Membership,
) -> Check {
    let Some(&arrived) = ghost.sync_arrivals.get(&(leader, origin, id)) else {
        return fail(
            "sync_linearizable",
            format!("{leader:?} answered a sync it never received"),
        );
    };
    let confirmed = membership.voters().filter(|&p| {
        p == leader
            || ghost
                .confirmations
                .get(&(leader, p, term))
                .is_some_and(|&at| at > arrived)
    });
    if membership.is_quorum(confirmed) {
        Ok(())
    } else {
        fail(
            "sync_linearizable",
            format!("{leader:?} answered sync {id:?} from {origin:?} without a quorum confirming it after it arrived"),
        )
    }
}

/// The client's sync completes at a server that has applied through `applied`,
/// for a sync issued when `required` was the highest acknowledged write.
pub fn on_done(
    node: PeerId,
    id: RequestId,
    required: Zxid,
    answered: Zxid,
    applied: Zxid,
) -> Check {
    if answered < required || applied < required {
        return fail(
            "sync_linearizable",
            format!(
                "{node:?} completed sync {id:?} at {answered} (applied {applied}) but {required} was acknowledged before it began"
            ),
        );
    }
    Ok(())
}
