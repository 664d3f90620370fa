//! Integrity: a server delivers only transactions some leader proposed, with
//! exactly the proposed content; a zxid names one transaction.

use bytes::Bytes;
use zab_core::{Txn, Zxid};

use super::{fail, Check, Ghost};

pub fn on_proposed(ghost: &mut Ghost, txn: &Txn) -> Check {
    match ghost.proposals.insert(txn.zxid, txn.payload.clone()) {
        Some(old) if old != txn.payload => fail(
            "integrity",
            format!("zxid {} proposed twice with different content", txn.zxid),
        ),
        _ => Ok(()),
    }
}

pub fn on_delivered(ghost: &Ghost, zxid: Zxid, payload: &Bytes) -> Check {
    match ghost.proposals.get(&zxid) {
        Some(p) if p == payload => Ok(()),
        Some(_) => fail(
            "integrity",
            format!("{zxid} delivered with content its leader did not propose"),
        ),
        None => fail("integrity", format!("{zxid} delivered but never proposed")),
    }
}
