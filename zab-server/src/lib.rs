//! The zab coordination server. Today: durable storage (`storage`) and its
//! offline inspector (`inspect`). The replicated znode tree, sessions, watches
//! and transports follow.

pub mod inspect;
pub mod storage;
