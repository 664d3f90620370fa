//! Agreement and total order: every server delivers the same transactions in
//! the same order. Server `node`'s `position`-th delivery must be the global one.

use bytes::Bytes;
use zab_core::{PeerId, Zxid};

use super::{fail, Check, Ghost};

pub fn on_delivered(
    ghost: &mut Ghost,
    node: PeerId,
    position: u64,
    zxid: Zxid,
    payload: &Bytes,
) -> Check {
    let position = position as usize;
    match ghost.delivered.get(position) {
        Some((z, p)) if *z == zxid && p == payload => Ok(()),
        Some((z, _)) => fail(
            "agreement",
            format!("{node:?} delivered {zxid} at position {position}, where others delivered {z}"),
        ),
        None if position == ghost.delivered.len() => {
            ghost.delivered.push((zxid, payload.clone()));
            Ok(())
        }
        None => fail(
            "agreement",
            format!("{node:?} delivered at position {position}, past the end of the global order"),
        ),
    }
}
