//! A read-write lock: any number of readers, or one writer.
//!
//! Readers create `read-…` and writers `write-…` ephemeral sequential nodes
//! in one directory, so their sequence numbers order them all. A reader
//! holds the lock when no writer's node comes before its own (it watches
//! the last writer before it); a writer when no node at all does (it
//! watches the node just before it). Waiting writers are never starved by
//! readers that come after them. The same limits as [`Lock`](super::Lock)'s
//! apply: a holder cut off from the ensemble may not know that it lost the
//! lock, so pass [`RwGuard::fencing_token`] with protected writes.

use tokio::time::Instant;

use super::waitlist::{Admission, Entry, Waitlist};
use crate::{Client, Error, WatchEvent};

const READ: &str = "read-";
const WRITE: &str = "write-";

/// The read-write lock recipe: see the [module docs](self).
#[derive(Debug)]
pub struct RwLock;

/// A held read or write lock. Release it with [`RwGuard::release`]:
/// dropping it keeps the lock until the session ends.
#[derive(Debug)]
#[must_use = "dropping an RwGuard keeps the lock until the session ends; call release"]
pub struct RwGuard<'a> {
    line: Waitlist<'a>,
    entry: Entry,
    other_events: Vec<WatchEvent>,
}

impl RwLock {
    /// Waits until this session may read under the lock at `dir`.
    pub async fn read<'a>(client: &'a Client, dir: &str) -> Result<RwGuard<'a>, Error> {
        let admission = Admission::NoneBefore(&[WRITE]);
        let line = Waitlist::new(client, dir, READ, admission);
        RwLock::enter(line, None)
            .await?
            .ok_or(Error::ConnectionLoss)
    }

    /// Waits until this session alone may write under the lock at `dir`.
    pub async fn write<'a>(client: &'a Client, dir: &str) -> Result<RwGuard<'a>, Error> {
        let admission = Admission::NoneBefore(&[READ, WRITE]);
        let line = Waitlist::new(client, dir, WRITE, admission);
        RwLock::enter(line, None)
            .await?
            .ok_or(Error::ConnectionLoss)
    }

    /// Like [`RwLock::write`], giving up after `wait` (`Ok(None)`).
    pub async fn write_timeout<'a>(
        client: &'a Client,
        dir: &str,
        wait: std::time::Duration,
    ) -> Result<Option<RwGuard<'a>>, Error> {
        let admission = Admission::NoneBefore(&[READ, WRITE]);
        let line = Waitlist::new(client, dir, WRITE, admission);
        RwLock::enter(line, Some(Instant::now() + wait)).await
    }

    async fn enter(
        line: Waitlist<'_>,
        deadline: Option<Instant>,
    ) -> Result<Option<RwGuard<'_>>, Error> {
        let mut other_events = Vec::new();
        let entry = line.enter(b"", deadline, &mut other_events).await?;
        Ok(entry.map(|entry| RwGuard {
            line,
            entry,
            other_events,
        }))
    }
}

impl RwGuard<'_> {
    /// The zxid that created this holder's node: larger than the token of
    /// every earlier writer's, and every earlier holder's for a writer.
    pub fn fencing_token(&self) -> u64 {
        self.entry.czxid
    }

    /// Whether the lock is still held, as of now (a linearizable read).
    pub async fn check(&self) -> Result<bool, Error> {
        self.line.holds(&self.entry).await
    }

    /// Watch events about other paths that arrived while waiting.
    pub fn take_other_events(&mut self) -> Vec<WatchEvent> {
        std::mem::take(&mut self.other_events)
    }

    /// Releases the lock (retrying through connection loss).
    pub async fn release(self) -> Result<(), Error> {
        self.line.leave(&self.entry.path).await
    }
}
