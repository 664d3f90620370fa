//! ZooKeeper's own client protocol (3.5 to 3.9, jute-encoded), as a
//! translation to and from this crate's requests and replies, so that a
//! ZooKeeper client talks to the same server core as ours.
//!
//! Frames are a 4-byte big-endian length and a body, both ways. A
//! connection begins with a [`ZkConnect`] answered by a `ConnectResponse`
//! ([`encode_connect_response`]); then each request frame is a header
//! (xid, opcode) and the opcode's record ([`Incoming::decode`]), and each
//! reply a header (xid, zxid, err) and the record its opcode expects
//! ([`encode_reply`], shaped by the request's [`Shape`]). Watch
//! notifications (xid -1) and pings (xid -2) are the same as ZooKeeper's.
//!
//! Error codes are ZooKeeper's; the three this protocol adds are mapped to
//! the nearest ZooKeeper code ([`zk_code`]).

mod jute;
mod reply;
mod request;

pub use jute::JuteError;
pub use reply::{
    encode_connect_response, encode_error, encode_notification, encode_ping_reply, encode_reply,
    encode_who_am_i, zk_code,
};
pub use request::{op, xid, Incoming, Shape, ZkConnect};

#[cfg(test)]
mod tests;
