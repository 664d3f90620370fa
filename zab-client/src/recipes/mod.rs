//! Coordination recipes on top of [`Client`]: a lock with fencing tokens,
//! leader election, service registration and discovery, and a typed
//! configuration watcher.
//!
//! | recipe | nodes it uses |
//! |---|---|
//! | [`Lock`] | `dir/lock-<session>-<n>-<seq>`, ephemeral sequential |
//! | [`Election`] | `dir/candidate-<session>-<n>-<seq>`, ephemeral sequential, data = candidate id |
//! | [`register`] / [`Discovery`] | `service_dir/<instance>`, ephemeral, data = payload |
//! | [`ConfigWatcher`] | one node whose data is the value |
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

pub mod config;
pub mod election;
pub mod lock;
pub mod registry;

pub use config::{ConfigError, ConfigWatcher};
pub use election::{Election, Leadership};
pub use lock::{Guard, Lock};
pub use registry::{register, Discovery};

use std::sync::atomic::{AtomicU64, Ordering};
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

/// A queue of ephemeral sequential nodes named `<prefix><session>-<n>-<seq>`
/// under `dir`: the node with the lowest sequence number is first. The
/// shared core of [`Lock`] and [`Election`].
#[derive(Debug)]
struct Queue<'a> {
    client: &'a Client,
    dir: String,
    prefix: &'static str,
}

/// Our place in a [`Queue`].
#[derive(Debug)]
struct Entry {
    /// Full path of our node.
    path: String,
    /// Zxid of the create that made our node.
    czxid: u64,
    /// The name every node of this attempt starts with.
    tag: String,
}

/// Why [`Queue::wait_first`] returned.
#[derive(Debug, PartialEq, Eq)]
enum Turn {
    First,
    TimedOut,
}

impl<'a> Queue<'a> {
    fn new(client: &'a Client, dir: &str, prefix: &'static str) -> Queue<'a> {
        Queue {
            client,
            dir: dir.trim_end_matches('/').to_string(),
            prefix,
        }
    }

    /// The queue's nodes, lowest sequence first: `(sequence, name)`.
    async fn members(&self, consistency: Consistency) -> Result<Vec<(u64, String)>, Error> {
        let (names, _) = self.client.children(&self.dir, consistency, false).await?;
        let mut members: Vec<(u64, String)> = names
            .into_iter()
            .filter(|n| n.starts_with(self.prefix))
            .filter_map(|n| Some((sequence(&n)?, n)))
            .collect();
        members.sort();
        Ok(members)
    }

    /// Joins the queue with `data`: creates `dir` if missing, then our node.
    async fn join(&self, data: &[u8]) -> Result<Entry, Error> {
        static ATTEMPTS: AtomicU64 = AtomicU64::new(0);
        ensure_path(self.client, &self.dir).await?;
        let n = ATTEMPTS.fetch_add(1, Ordering::Relaxed);
        let tag = format!("{}{:x}-{n}-", self.prefix, self.client.session_id());
        let base = format!("{}/{tag}", self.dir);
        let path = loop {
            match self
                .client
                .create(&base, data, CreateMode::EphemeralSequential)
                .await
            {
                Ok(path) => break path,
                Err(e) if is_transient(&e) => {
                    tokio::time::sleep(BACKOFF_MIN).await;
                    // The create may have been applied: look for it, on a
                    // server that has caught up with the leader.
                    let members = retry(|| self.members(Consistency::Linearizable)).await?;
                    if let Some((_, name)) = members.iter().find(|(_, n)| n.starts_with(&tag)) {
                        break format!("{}/{name}", self.dir);
                    }
                }
                Err(e) => return Err(e),
            }
        };
        // Our own write: this server has applied it.
        match retry(|| self.client.exists(&path, Consistency::Local, false)).await? {
            Some(stat) => Ok(Entry {
                path,
                czxid: stat.czxid,
                tag,
            }),
            None => Err(Error::Server(ErrorCode::NoNode)),
        }
    }

    /// Waits until `entry` is first in the queue, or until `deadline`.
    /// Watches only the node just before ours, so one leaving wakes one
    /// waiter. Errors with `NoNode` if our node was deleted under us.
    async fn wait_first(
        &self,
        entry: &Entry,
        deadline: Option<Instant>,
        others: &mut Vec<WatchEvent>,
    ) -> Result<Turn, Error> {
        let ours = format!("{}/{}", self.dir, self.prefix);
        loop {
            // Local reads are enough: our server has applied our create and
            // so every create before it; a deletion it has not applied yet
            // only makes us wait for its event.
            let members = retry(|| self.members(Consistency::Local)).await?;
            let names: Vec<&str> = members.iter().map(|(_, n)| n.as_str()).collect();
            let me = entry.path.rsplit('/').next().unwrap_or_default();
            let Some(at) = names.iter().position(|n| *n == me) else {
                return Err(Error::Server(ErrorCode::NoNode));
            };
            // A create retried after a lost reply may have landed twice.
            for twin in names
                .iter()
                .filter(|n| n.starts_with(&entry.tag) && **n != me)
            {
                self.leave(&format!("{}/{twin}", self.dir)).await?;
            }
            if at == 0 {
                return Ok(Turn::First);
            }
            let before = format!("{}/{}", self.dir, names[at - 1]);
            let watched = retry(|| self.client.exists(&before, Consistency::Local, true)).await?;
            let now = Instant::now();
            if deadline.is_some_and(|d| d <= now) {
                return Ok(Turn::TimedOut);
            }
            if watched.is_some() {
                let until = deadline.map_or(now + RECHECK, |d| d.min(now + RECHECK));
                // Any event about this queue's nodes (even a stale one about
                // an earlier predecessor) just means: look again.
                let is_ours = |e: &WatchEvent| e.path.starts_with(&ours);
                wait_event(self.client, is_ours, until, others).await?;
            }
        }
    }

    /// Joins with `data` and waits to be first. On timeout (`Ok(None)`) or
    /// failure it leaves again, so no waiter is left behind to block the
    /// queue (if the session expired, the server removed the node already).
    async fn enter(
        &self,
        data: &[u8],
        deadline: Option<Instant>,
        others: &mut Vec<WatchEvent>,
    ) -> Result<Option<Entry>, Error> {
        let entry = self.join(data).await?;
        match self.wait_first(&entry, deadline, others).await {
            Ok(Turn::First) => Ok(Some(entry)),
            Ok(Turn::TimedOut) => self.leave(&entry.path).await.map(|()| None),
            Err(e) => {
                if e != Error::SessionExpired {
                    let _ = self.leave(&entry.path).await;
                }
                Err(e)
            }
        }
    }

    /// Deletes a node of ours; already gone counts as done.
    async fn leave(&self, path: &str) -> Result<(), Error> {
        match retry(|| self.client.delete(path, -1)).await {
            Ok(()) | Err(Error::Server(ErrorCode::NoNode)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Whether our node still exists and belongs to this session, as of now
    /// (a linearizable read). Transient errors are returned, not retried.
    async fn holds(&self, entry: &Entry) -> Result<bool, Error> {
        let stat = self
            .client
            .exists(&entry.path, Consistency::Linearizable, false)
            .await?;
        Ok(stat.is_some_and(|s| s.ephemeral_owner == self.client.session_id()))
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
