//! Local and global primary order: transactions are delivered in the order
//! their leader proposed them (increasing counter within an epoch), and all of
//! epoch e's before any of a later epoch's (increasing zxid across epochs).

use zab_core::Zxid;

use super::{fail, Check};

/// `prev` is the transaction delivered just before `next` on the same server.
pub fn on_delivered(prev: Zxid, next: Zxid) -> Check {
    if next <= prev {
        return fail(
            "primary_order",
            format!("{next} delivered after {prev}: zxids must increase"),
        );
    }
    Ok(())
}
