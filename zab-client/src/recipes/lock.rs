//! A distributed lock that hands out fencing tokens.
//!
//! Each waiter creates an ephemeral sequential node `lock-…` under the lock's
//! directory; the lowest sequence number holds the lock, and every other
//! waiter watches only the node just before its own (no herd effect when the
//! lock is released). The fencing token is the zxid that created the holder's
//! node: holders are ordered by sequence number, which is creation order, and
//! zxids only increase, so every later holder of any lock of this ensemble has
//! a larger token.
//!
//! # Limits
//!
//! A lock is held as long as its node exists, which is as long as the
//! session lives. A holder cut off from the ensemble keeps *believing* it
//! holds the lock until it learns that its session expired, and by then
//! another client may hold it. So a holder must
//!
//! * pass [`Guard::fencing_token`] with every write to the protected
//!   resource, which must refuse a token lower than the highest it has seen;
//! * stop using the resource when any call fails with
//!   [`Error::SessionExpired`] (the lock is gone for good) or
//!   [`Error::ConnectionLoss`] (it may be gone), until [`Guard::check`] says
//!   it is still held.
//!
//! Other directories' nodes may live in the lock directory: only children
//! named `lock-…` with a sequence number take part.

use tokio::time::Instant;

use super::waitlist::{Admission, Entry, Waitlist};
use crate::{Client, Error, WatchEvent};

/// The lock recipe: see the [module docs](self).
#[derive(Debug)]
pub struct Lock;

/// A held lock. Release it with [`Guard::release`]: dropping a guard does
/// *not* release the lock, which is then held until the session ends.
#[derive(Debug)]
#[must_use = "dropping a Guard keeps the lock until the session ends; call release"]
pub struct Guard<'a> {
    queue: Waitlist<'a>,
    entry: Entry,
    other_events: Vec<WatchEvent>,
}

const PREFIX: &str = "lock-";

impl Lock {
    /// Waits until this session holds the lock at `dir` (created if missing).
    ///
    /// Rides through connection loss and a lost quorum (see the
    /// [recipes docs](super)); fails with [`Error::SessionExpired`] if the
    /// session ends, or `Server(NoNode)` if someone deleted our lock node.
    ///
    /// Not cancellation safe: if this future is dropped while it waits, the
    /// waiter's node stays until the session ends, and the lock is stuck when
    /// its turn comes. To give up after a while use [`Lock::acquire_timeout`].
    ///
    /// ```no_run
    /// # async fn demo(client: &zab_client::Client) -> Result<(), zab_client::Error> {
    /// use zab_client::recipes::Lock;
    /// let guard = Lock::acquire(client, "/locks/billing").await?;
    /// let token = guard.fencing_token(); // send with every protected write
    /// # let _ = token;
    /// guard.release().await?;
    /// # Ok(()) }
    /// ```
    pub async fn acquire<'a>(client: &'a Client, dir: &str) -> Result<Guard<'a>, Error> {
        let guard = Lock::acquire_until(client, dir, None).await?;
        // No deadline: `acquire_until` returns a guard or an error.
        guard.ok_or(Error::ConnectionLoss)
    }

    /// Like [`Lock::acquire`], but gives up after `wait`: then it removes its
    /// node and returns `Ok(None)`. A watch it armed may still fire later
    /// for a path under `dir`; ignore such events.
    pub async fn acquire_timeout<'a>(
        client: &'a Client,
        dir: &str,
        wait: std::time::Duration,
    ) -> Result<Option<Guard<'a>>, Error> {
        Lock::acquire_until(client, dir, Some(Instant::now() + wait)).await
    }

    async fn acquire_until<'a>(
        client: &'a Client,
        dir: &str,
        deadline: Option<Instant>,
    ) -> Result<Option<Guard<'a>>, Error> {
        let queue = Waitlist::new(client, dir, PREFIX, Admission::NoneBefore(&[PREFIX]));
        let mut other_events = Vec::new();
        let entry = queue.enter(b"", deadline, &mut other_events).await?;
        Ok(entry.map(|entry| Guard {
            queue,
            entry,
            other_events,
        }))
    }
}

impl Guard<'_> {
    /// The fencing token: the zxid that created this holder's node. Larger
    /// than the token of every earlier holder of this lock.
    pub fn fencing_token(&self) -> u64 {
        self.entry.czxid
    }

    /// The path of this holder's lock node.
    pub fn path(&self) -> &str {
        &self.entry.path
    }

    /// Whether the lock is still held, as of now (a linearizable read).
    /// `Ok(false)` or [`Error::SessionExpired`]: it is lost for good. Other
    /// errors: unknown; do not use the lock until a check says `Ok(true)`.
    pub async fn check(&self) -> Result<bool, Error> {
        self.queue.holds(&self.entry).await
    }

    /// Watch events about other paths that arrived while `acquire` waited:
    /// handle them as if from [`Client::next_event`].
    pub fn take_other_events(&mut self) -> Vec<WatchEvent> {
        std::mem::take(&mut self.other_events)
    }

    /// Releases the lock: deletes the node (retrying through connection loss
    /// and a lost quorum). `Ok` means the node is gone. Events kept in
    /// [`Guard::take_other_events`] are dropped.
    pub async fn release(self) -> Result<(), Error> {
        self.queue.leave(&self.entry.path).await
    }
}
