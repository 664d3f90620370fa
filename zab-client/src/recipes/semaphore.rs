//! A counting semaphore: at most `permits` holders at once.
//!
//! Each waiter creates an ephemeral sequential `lease-…` node; the first
//! `permits` of them (by sequence number) hold a lease. Every holder
//! leaving can admit a waiter, so waiters watch the directory's children
//! (a release wakes them all; they look again). Every process using a
//! semaphore must give it the same number of permits. A lease lasts until
//! it is released or its session ends.

use tokio::time::Instant;

use super::waitlist::{Admission, Entry, Waitlist};
use crate::{Client, Error, WatchEvent};

const LEASE: &str = "lease-";

/// The semaphore recipe: see the [module docs](self).
#[derive(Debug)]
pub struct Semaphore;

/// A held lease. Release it with [`Lease::release`]: dropping it keeps
/// the lease until the session ends.
#[derive(Debug)]
#[must_use = "dropping a Lease keeps it until the session ends; call release"]
pub struct Lease<'a> {
    line: Waitlist<'a>,
    entry: Entry,
    other_events: Vec<WatchEvent>,
}

impl Semaphore {
    /// Waits for one of the `permits` leases of the semaphore at `dir`.
    pub async fn acquire<'a>(
        client: &'a Client,
        dir: &str,
        permits: usize,
    ) -> Result<Lease<'a>, Error> {
        Semaphore::acquire_until(client, dir, permits, None)
            .await?
            .ok_or(Error::ConnectionLoss)
    }

    /// Like [`Semaphore::acquire`], giving up after `wait` (`Ok(None)`).
    pub async fn acquire_timeout<'a>(
        client: &'a Client,
        dir: &str,
        permits: usize,
        wait: std::time::Duration,
    ) -> Result<Option<Lease<'a>>, Error> {
        Semaphore::acquire_until(client, dir, permits, Some(Instant::now() + wait)).await
    }

    async fn acquire_until<'a>(
        client: &'a Client,
        dir: &str,
        permits: usize,
        deadline: Option<Instant>,
    ) -> Result<Option<Lease<'a>>, Error> {
        let line = Waitlist::new(client, dir, LEASE, Admission::FewerBefore(permits.max(1)));
        let mut other_events = Vec::new();
        let entry = line.enter(b"", deadline, &mut other_events).await?;
        Ok(entry.map(|entry| Lease {
            line,
            entry,
            other_events,
        }))
    }
}

impl Lease<'_> {
    /// Whether the lease is still held, as of now (a linearizable read).
    pub async fn check(&self) -> Result<bool, Error> {
        self.line.holds(&self.entry).await
    }

    /// Watch events about other paths that arrived while waiting.
    pub fn take_other_events(&mut self) -> Vec<WatchEvent> {
        std::mem::take(&mut self.other_events)
    }

    /// Gives the lease back (retrying through connection loss).
    pub async fn release(self) -> Result<(), Error> {
        self.line.leave(&self.entry.path).await
    }
}
