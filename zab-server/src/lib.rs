//! The zab coordination server. `core` is the whole server as one sans-IO
//! state machine (protocol node, replicated tree, sessions, watches, reply
//! queues); around it the tokio shell: `server` (the driver loop), `listener`
//! (client sockets), `peer` (the quorum transport), `storage` (log,
//! snapshots, group commit) and `admin`; plus `config`, access control
//! (`acl`) and the offline inspector (`inspect`).

pub mod acl;
pub mod admin;
pub mod backup;
pub mod config;
pub mod core;
pub mod inspect;
pub mod listener;
pub mod metrics;
pub mod peer;
pub mod replica;
pub mod run;
pub mod server;
pub mod snapshotter;
pub mod storage;
pub mod tls;
pub mod tree;
pub mod watches;
