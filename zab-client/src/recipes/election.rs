//! Leader election.
//!
//! Each candidate creates an ephemeral sequential node `candidate-…` under
//! the election's directory with its id as data; the lowest sequence number
//! leads. When the leader's node goes (it resigned, closed its session, or
//! the session expired) the next candidate in line leads. Candidates watch
//! only the node before theirs, so a change wakes one of them.
//!
//! # Limits
//!
//! At most one candidate's node is lowest at any zxid, but a leader cut off
//! from the ensemble learns that its session expired only when it talks to a
//! server again; meanwhile another candidate may lead. Treat
//! [`Error::ConnectionLoss`] as "maybe not leader" until
//! [`Leadership::check`] says `Ok(true)`, and fence the leader's writes with
//! [`Leadership::term`], which grows with every new leader.

use tokio::time::Instant;

use super::waitlist::{Admission, Entry, Waitlist};
use super::{wait_event, RECHECK};
use crate::{Client, Consistency, Error, ErrorCode, WatchEvent};

/// The election recipe: see the [module docs](self).
#[derive(Debug)]
pub struct Election;

/// This candidate leads. End it with [`Leadership::resign`] (or by closing
/// the session): dropping it does *not* resign.
#[derive(Debug)]
#[must_use = "dropping a Leadership keeps leading until the session ends; call resign"]
pub struct Leadership<'a> {
    queue: Waitlist<'a>,
    entry: Entry,
    id: String,
    other_events: Vec<WatchEvent>,
}

pub(super) const PREFIX: &str = "candidate-";

impl Election {
    /// Stands as candidate `id` in the election at `dir` (created if
    /// missing) and waits until it leads.
    ///
    /// Rides through connection loss and a lost quorum; fails with
    /// [`Error::SessionExpired`] if the session ends. Not cancellation safe,
    /// like [`super::Lock::acquire`]: a dropped campaign stays in line until
    /// the session ends.
    ///
    /// ```no_run
    /// # async fn demo(client: &zab_client::Client) -> Result<(), zab_client::Error> {
    /// use zab_client::recipes::Election;
    /// let mut leadership = Election::campaign(client, "/election/scheduler", "host-a").await?;
    /// // ... lead, fencing writes with leadership.term() ...
    /// leadership.lost().await?; // returns when no longer leader
    /// # Ok(()) }
    /// ```
    pub async fn campaign<'a>(
        client: &'a Client,
        dir: &str,
        id: &str,
    ) -> Result<Leadership<'a>, Error> {
        let queue = Waitlist::new(client, dir, PREFIX, Admission::NoneBefore(&[PREFIX]));
        let mut other_events = Vec::new();
        match queue.enter(id.as_bytes(), None, &mut other_events).await? {
            Some(entry) => Ok(Leadership {
                queue,
                entry,
                id: id.to_string(),
                other_events,
            }),
            // Without a deadline `enter` waits until first or fails.
            None => Err(Error::ConnectionLoss),
        }
    }

    /// The id of the current leader of the election at `dir`, or `None` if
    /// there is no candidate: a linearizable read, so it reflects every
    /// change acknowledged before the call. Transient errors are returned.
    pub async fn leader(client: &Client, dir: &str) -> Result<Option<String>, Error> {
        let queue = Waitlist::new(client, dir, PREFIX, Admission::NoneBefore(&[PREFIX]));
        loop {
            let members = match queue.members(Consistency::Linearizable).await {
                Err(Error::Server(ErrorCode::NoNode)) => return Ok(None),
                other => other?,
            };
            let Some((_, first)) = members.first() else {
                return Ok(None);
            };
            // Same server, after the sync: the node is there unless it was
            // deleted since, and then there is a new first to read.
            match client
                .get(&format!("{}/{first}", queue.dir()), Consistency::Local)
                .await
            {
                Ok((data, _)) => return Ok(Some(String::from_utf8_lossy(&data).into_owned())),
                Err(Error::Server(ErrorCode::NoNode)) => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

impl<'a> Leadership<'a> {
    /// The leadership of `entry`, admitted first in `queue`'s line.
    pub(super) fn admitted(
        queue: Waitlist<'a>,
        entry: Entry,
        id: &str,
        other_events: Vec<WatchEvent>,
    ) -> Leadership<'a> {
        Leadership {
            queue,
            entry,
            id: id.to_string(),
            other_events,
        }
    }

    /// This leader's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The path of this leader's candidate node.
    pub fn path(&self) -> &str {
        &self.entry.path
    }

    /// The leader's term: the zxid that created its candidate node. Every
    /// later leader of this election has a larger term; use it to fence.
    pub fn term(&self) -> u64 {
        self.entry.czxid
    }

    /// Whether this candidate still leads, as of now (a linearizable read).
    /// `Ok(false)` or [`Error::SessionExpired`]: leadership is over. Other
    /// errors: unknown; do not act as leader until a check says `Ok(true)`.
    pub async fn check(&self) -> Result<bool, Error> {
        self.queue.holds(&self.entry).await
    }

    /// Waits until leadership is lost: `Ok(())` when our node is gone
    /// (someone deleted it), an error when the session is (`SessionExpired`)
    /// or may be (any other error) gone. Asks the server at least every
    /// [`RECHECK`]. Reads the client's events while it waits, like
    /// `campaign`; events about other paths are kept for
    /// [`Leadership::take_other_events`]. Cancel safe.
    pub async fn lost(&mut self) -> Result<(), Error> {
        let path = self.entry.path.clone();
        loop {
            match self
                .queue
                .client()
                .exists(&path, Consistency::Local, true)
                .await?
            {
                Some(stat) if stat.ephemeral_owner == self.queue.client().session_id() => {}
                _ => return Ok(()),
            }
            let until = Instant::now() + RECHECK;
            let is_ours = |e: &WatchEvent| e.path == path;
            wait_event(self.queue.client(), is_ours, until, &mut self.other_events).await?;
        }
    }

    /// Watch events about other paths that arrived while `campaign` or
    /// `lost` waited: handle them as if from [`Client::next_event`].
    pub fn take_other_events(&mut self) -> Vec<WatchEvent> {
        std::mem::take(&mut self.other_events)
    }

    /// Steps down: deletes the candidate node (retrying through connection
    /// loss and a lost quorum), which makes the next candidate leader.
    pub async fn resign(self) -> Result<(), Error> {
        self.queue.leave(&self.entry.path).await
    }
}
