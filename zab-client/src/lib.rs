//! # zab-client
//!
//! An async client for the zab coordination service (protocol: `wire-spec.md`).
//!
//! A [`Client`] holds one session. Requests are ordered when they are *called*
//! (they are queued to the connection task before the future is returned),
//! replies are matched in order, and watch events arrive on a stream. When
//! the server goes away the client reconnects to another server with the same
//! session, and never to one that is behind what it has already seen.
//!
//! Reads take a [`Consistency`]: `Local` reads this server's view (sequentially
//! consistent, cheapest); `Linearizable` first issues `sync` on the same
//! server, so the read reflects every write acknowledged before it began.
//!
//! Watches come as streams of their own ([`WatchStream`]); watches armed by
//! a plain read (`watch: true`) report on the session-wide
//! [`Client::next_event`]:
//!
//! ```no_run
//! # async fn demo(client: zab_client::Client) -> Result<(), zab_client::Error> {
//! use zab_client::{Consistency, WatchEventKind};
//! // Every change under /services, for as long as the session lives.
//! let mut changes = client.add_watch("/services", true).await?;
//! while let Some(event) = changes.next().await {
//!     if event.kind == WatchEventKind::ContinuityLost {
//!         // Reconnected: changes before event.zxid may have been missed; re-read.
//!         let (_names, _) = client.children("/services", Consistency::Linearizable, false).await?;
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! ```no_run
//! # async fn demo() -> Result<(), zab_client::Error> {
//! use zab_client::{Client, Consistency, CreateMode};
//! let client = Client::connect(&["127.0.0.1:2181"], 10_000).await?;
//! client.create("/app", b"v1", CreateMode::Persistent).await?;
//! let (data, _stat) = client.get("/app", Consistency::Linearizable).await?;
//! assert_eq!(&data[..], b"v1");
//! # Ok(()) }
//! ```

//! ## Layout
//!
//! - [`machine`]: the session as a sans-IO state machine (handshake,
//!   resume, pings, leaving a silent server, requests in order, xids,
//!   watches and their re-registration). Exact-output tests live beside it;
//!   the whole-server simulator runs it against simulated servers.
//! - `watch`: which requests arm a watch, which events each reports, and
//!   where they go.
//! - `driver`: the tokio task that moves the machine's bytes and time.
//! - `client`: [`Client`], the typed calls an application makes.

mod builder;
mod chroot;
mod client;
mod driver;
mod error;
pub mod machine;
pub mod recipes;
mod tls;
mod watch;

pub use builder::Builder;
pub use client::{Client, Consistency, WatchStream};
pub use error::Error;
pub use machine::SessionState;
pub use tls::Tls;
pub use watch::Delivery;
pub use zab_proto::{
    digest_id, Acl, CheckRequest, CreateMode, CreateRequest, DeleteRequest, ErrorCode, MultiOp,
    MultiResult, Perms, ReadOp, ReadResult, SetDataRequest, Stat, WatchEvent, WatchEventKind,
    WatcherKind,
};

#[cfg(test)]
mod tests;
