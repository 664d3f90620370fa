//! No gaps: inside an epoch every zxid is the previous plus one, and a new
//! epoch starts at counter 1, both in every log and in the delivered order
//! (REFERENCE §1.5).

use zab_core::{PeerId, Zxid};

use super::{fail, Check};

pub fn on_append(node: PeerId, last: Zxid, next: Zxid) -> Check {
    if last.is_followed_by(next) {
        Ok(())
    } else {
        fail(
            "no_zxid_gaps",
            format!("{node:?} logged {next} after {last}"),
        )
    }
}

pub fn on_delivered(node: PeerId, prev: Zxid, next: Zxid) -> Check {
    if prev.is_followed_by(next) {
        Ok(())
    } else {
        fail(
            "no_zxid_gaps",
            format!("{node:?} delivered {next} right after {prev}"),
        )
    }
}
