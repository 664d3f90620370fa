//! The zab coordination server. Today: durable storage (`storage`). The
//! replicated znode tree, sessions, watches and transports follow.

pub mod storage;
