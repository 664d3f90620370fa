//! # zab-core
//!
//! The Zab atomic-broadcast protocol (the protocol under Apache ZooKeeper) as a
//! pure, deterministic state machine. A [`Node`] is restored from what its
//! disk holds, fed [`Input`]s one at a time and drained of [`Action`]s. It
//! has no sockets, files, clocks, threads or randomness; a shell provides all
//! of them: the `zab-server` binary in production, a seeded simulator in tests.
//!
//! ## The driving loop
//!
//! ```
//! use zab_core::{Action, Config, Input, Membership, Node, PeerId, Restored};
//!
//! // A one-voter ensemble elects itself once its writes are durable.
//! let cfg = Config::new(PeerId(1), Membership::new([PeerId(1)], []));
//! let mut node = Node::new(cfg, Restored::default()).expect("consistent state");
//! let mut disk = Vec::new();
//! for _ in 0..10 {
//!     let actions: Vec<Action> = node.drain_actions().collect();
//!     let mut durable = None;
//!     for action in actions {
//!         match action {
//!             // Write in order; report durability only after fsync.
//!             Action::Persist { seq, op } => {
//!                 disk.push(op);
//!                 durable = Some(seq);
//!             }
//!             Action::Send { .. } => { /* encode with zab_core::codec, write to the peer */ }
//!             Action::Deliver { .. } => { /* apply logged txns through this zxid */ }
//!             _ => {}
//!         }
//!     }
//!     if let Some(through) = durable {
//!         node.handle(Input::Persisted { through });
//!     }
//!     node.handle(Input::Tick);
//! }
//! assert!(matches!(node.role(), zab_core::Role::Leading { .. }));
//! ```
//!
//! ## Rules the core enforces (see `docs/design.md`)
//! - Nothing is acknowledged before the write it depends on is durable:
//!   ACKEPOCH after acceptedEpoch, ACK(NEWLEADER) after the synced history and
//!   then currentEpoch, every ACK after the proposal.
//! - A leader serves only once a quorum acknowledged NEWLEADER; it commits in
//!   zxid order once a quorum including itself has a proposal durable.
//! - Elections compare durable state; histories never have gaps; TRUNC never
//!   removes what was delivered.
//! - A sync is answered only after a quorum confirmed the leader in a round
//!   that started after the sync arrived.

pub mod codec;
pub mod config;
mod election;
pub mod history;
mod leader;
mod learner;
pub mod message;
mod node;
pub mod persist;
pub mod quorum;
pub mod types;

#[cfg(feature = "defects")]
pub use config::Defects;
pub use config::{Config, ForwardedCheck};
pub use history::{GapError, History};
pub use message::{diff_stream, Message};
pub use node::{Action, Input, LearnerView, Node, Phase, RestoreError, Restored, Role, Stats};
pub use persist::{DurableState, PersistOp};
pub use quorum::Membership;
pub use types::{
    EnsembleId, Epoch, PeerId, PersistSeq, RequestId, ServerState, Standing, Txn, Vote, Zxid,
};
#[cfg(test)]
mod standing_tests;
#[cfg(test)]
mod testkit;
