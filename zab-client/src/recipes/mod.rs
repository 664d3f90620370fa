//! Coordination recipes on top of [`Client`]: locks (exclusive with
//! fencing tokens, read-write, counting semaphores), leader election,
//! service registration and discovery, a typed configuration watcher,
//! barriers, a FIFO queue, a counter, a cached copy of a subtree, and an
//! ephemeral node that outlives its sessions.
//!
//! | recipe | nodes it uses |
//! |---|---|
//! | [`Lock`] | `dir/lock-<session>-<n>-<seq>`, ephemeral sequential |
//! | [`RwLock`] | `dir/read-…`, `dir/write-…`, ephemeral sequential |
//! | [`Semaphore`] | `dir/lease-…`, ephemeral sequential |
//! | [`Election`] | `dir/candidate-<session>-<n>-<seq>`, ephemeral sequential, data = candidate id |
//! | [`LeaderSelector`] | as [`Election`], from a task that runs a listener while it leads |
//! | [`register`] / [`Discovery`] | `service_dir/<instance>`, ephemeral, data = payload |
//! | [`ConfigWatcher`] | one node whose data is the value |
//! | [`Barrier`] | one node: the barrier stands while it exists |
//! | [`DoubleBarrier`] | `dir/<participant>` ephemeral, `dir/ready` |
//! | [`Queue`] | `dir/item-<seq>` persistent sequential, `dir/claim-…` briefly |
//! | [`Counter`] | one node: the value; `path/change-…` ephemeral, briefly |
//! | [`TreeCache`] | reads a subtree, one recursive watch |
//! | [`PersistentNode`] | one ephemeral node, in a session of its own |
//!
//! # What is guaranteed when things go wrong
//!
//! * **Connection loss.** The client reconnects to another server with the
//!   same session on its own. Recipe calls that *block* ([`Lock::acquire`],
//!   [`Election::campaign`], [`Discovery::changed`], [`ConfigWatcher::next`])
//!   and the writes recipes make (creating and deleting their nodes) ride
//!   through it: they retry, and every retried write is idempotent by
//!   construction (queue nodes carry a per-attempt name, so a create whose
//!   reply was lost is found again instead of made twice). Queries return
//!   [`Error::ConnectionLoss`] to the caller. While disconnected, a lock
//!   holder or leader *cannot know* whether its session is still alive: the
//!   client has no disconnect notification, so stop relying on a lock or on
//!   leadership whenever a call fails with `ConnectionLoss`, until
//!   [`Guard::check`] or [`Leadership::check`] says it is still held.
//! * **Session expiry.** The server deletes the session's ephemeral nodes:
//!   locks are released, leadership ends, registrations disappear. Every
//!   recipe call then fails with [`Error::SessionExpired`] and the only way on
//!   is a new [`Client`]. Expiry is noticed on the next request: waiting
//!   calls re-check the server at least every [`RECHECK`], so they return
//!   within about that long of the client learning of it. A holder that is
//!   cut off from the ensemble may learn of its expiry only after another
//!   client has taken over: that is what fencing tokens
//!   ([`Guard::fencing_token`], [`Leadership::term`]) are for.
//!
//! # One event stream per client
//!
//! [`Client::next_event`] is one stream for all of a session's watches, and
//! whoever reads an event takes it. So a recipe that waits must read it too:
//!
//! * [`Queue::take`], [`TreeCache`], [`Barrier`], [`DoubleBarrier`],
//!   [`Counter`] and [`PersistentNode`] read watch streams of their own
//!   ([`WatchStream`](crate::WatchStream)), never the session's.
//! * [`Discovery`] and [`ConfigWatcher`] own their [`Client`] and are its
//!   only event reader; events about paths other than theirs are dropped, so
//!   do not arm other watches through [`Discovery::client`].
//! * [`Lock::acquire`] and [`Election::campaign`] borrow the client and read
//!   its events only while they wait. Events about their own queue nodes are
//!   theirs; every other event read meanwhile is kept and handed back with
//!   the result ([`Guard::take_other_events`],
//!   [`Leadership::take_other_events`]). If the call fails or times out, the
//!   events it kept are dropped with it. Do not call `next_event` on the same
//!   client while they wait: whichever reader gets an event keeps it (the
//!   recipe still finishes, at most [`RECHECK`] later, since it re-checks).
//!
//! [`Client`]: crate::Client
//! [`Client::next_event`]: crate::Client::next_event

pub mod barrier;
pub mod config;
pub mod counter;
pub mod election;
pub mod lock;
pub mod persistent_node;
pub mod queue;
pub mod registry;
pub mod rwlock;
pub mod selector;
pub mod semaphore;
pub mod tree_cache;
mod waitlist;

pub use barrier::{Barrier, DoubleBarrier};
pub use config::{ConfigError, ConfigWatcher};
pub use counter::Counter;
pub use election::{Election, Leadership};
pub use lock::{Guard, Lock};
pub use persistent_node::PersistentNode;
pub use queue::{Item, Queue};
pub use registry::{register, Discovery};
pub use rwlock::{RwGuard, RwLock};
pub use selector::{LeaderSelector, Leading};
pub use semaphore::{Lease, Semaphore};
pub use tree_cache::{CacheChange, TreeCache};

use std::time::Duration;

use tokio::time::Instant;

use crate::{Client, Consistency, CreateMode, Error, ErrorCode, WatchEvent};

/// The longest a waiting recipe goes without asking the server: the bound on
/// how late it notices an expired session or an event another reader took.
pub const RECHECK: Duration = Duration::from_secs(1);

const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(1);

/// Failures after which the same request may succeed: the connection broke
/// (the client reconnects), or the server could not serve it just now.
/// Not `Timeout`: a timed-out call may still be sent and applied later, so
/// repeating it could apply it twice; it goes back to the caller.
fn is_transient(e: &Error) -> bool {
    matches!(
        e,
        Error::ConnectionLoss
            | Error::Server(
                ErrorCode::NotLeaderNoQuorum
                    | ErrorCode::Throttled
                    | ErrorCode::TooManyRequests
                    | ErrorCode::RequestTimeout
            )
    )
}

/// Runs `f` until it returns something other than a transient error, with
/// exponential backoff. Only for requests that are safe to repeat. It ends
/// with the session (`SessionExpired` is not transient) or never while the
/// ensemble has no quorum: callers that must give up wrap it in a timeout.
async fn retry<T, F, Fut>(mut f: F) -> Result<T, Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, Error>>,
{
    let mut backoff = BACKOFF_MIN;
    loop {
        match f().await {
            Err(e) if is_transient(&e) => {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
            other => return other,
        }
    }
}

/// Creates `path` and any missing ancestors as empty persistent nodes;
/// nodes that exist already (made by anyone) are fine.
async fn ensure_path(client: &Client, path: &str) -> Result<(), Error> {
    if retry(|| client.exists(path, Consistency::Local, false))
        .await?
        .is_some()
    {
        return Ok(());
    }
    let mut prefix = String::new();
    for part in path.split('/').filter(|p| !p.is_empty()) {
        prefix.push('/');
        prefix.push_str(part);
        match retry(|| client.create(&prefix, b"", CreateMode::Persistent)).await {
            Ok(_) | Err(Error::Server(ErrorCode::NodeExists)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Waits until an event that `is_ours` arrives (true) or until `until`
/// (false). Events that are not ours are pushed to `others`.
async fn wait_event(
    client: &Client,
    is_ours: impl Fn(&WatchEvent) -> bool,
    until: Instant,
    others: &mut Vec<WatchEvent>,
) -> Result<bool, Error> {
    loop {
        // `next_event` is cancel safe: an event is either returned or left
        // in the stream.
        match tokio::time::timeout_at(until, client.next_event()).await {
            Err(_elapsed) => return Ok(false),
            // The connection task is gone: so is the session.
            Ok(None) => return Err(Error::ConnectionLoss),
            Ok(Some(event)) if is_ours(&event) => return Ok(true),
            Ok(Some(event)) => others.push(event),
        }
    }
}

/// The tail of a sequential node's name: its 10-digit sequence number.
fn sequence(name: &str) -> Option<u64> {
    let digits = name.get(name.len().checked_sub(10)?..)?;
    if digits.bytes().all(|b| b.is_ascii_digit()) {
        digits.parse().ok()
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_is_the_ten_digit_tail() {
        assert_eq!(sequence("lock-1a-0-0000000042"), Some(42));
        assert_eq!(sequence("lock-0000000000"), Some(0));
        assert_eq!(sequence("counter"), None);
        assert_eq!(sequence("lock-00000000x1"), None);
        assert_eq!(sequence(""), None);
    }

    #[test]
    fn transient_errors_are_the_retryable_ones() {
        assert!(is_transient(&Error::ConnectionLoss));
        assert!(is_transient(&Error::Server(ErrorCode::NotLeaderNoQuorum)));
        assert!(!is_transient(&Error::SessionExpired));
        assert!(!is_transient(&Error::Server(ErrorCode::NodeExists)));
    }
}
