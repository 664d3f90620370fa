//! The zab coordination server: durable storage (`storage`), the quorum
//! transport (`peer`), the driver loop around the protocol core (`server`),
//! configuration (`config`) and the offline inspector (`inspect`). The
//! replicated znode tree, sessions, watches and the client protocol follow.

pub mod admin;
pub mod client;
pub mod config;
pub mod inspect;
pub mod metrics;
pub mod peer;
pub mod replica;
pub mod run;
pub mod server;
pub mod storage;
pub mod tree;
pub mod watches;
