//! A waiting line of ephemeral sequential nodes named
//! `<prefix><session>-<n>-<seq>` under a directory, ordered by sequence
//! number: the shared core of [`Lock`](super::Lock),
//! [`Election`](super::Election), [`RwLock`](super::RwLock) and
//! [`Semaphore`](super::Semaphore). What admits a member is the line's
//! [`Admission`].

use std::sync::atomic::{AtomicU64, Ordering};

use tokio::time::Instant;

use super::{ensure_path, is_transient, retry, sequence, wait_event, BACKOFF_MIN, RECHECK};
use crate::{Client, Consistency, CreateMode, Error, ErrorCode, WatchEvent};

/// When a member's turn has come.
#[derive(Clone, Copy, Debug)]
pub(super) enum Admission {
    /// No node before it has one of these prefixes (a lock, a leader, a
    /// writer: its own; a reader: writers'). It watches the last such node
    /// before it, so one leaving wakes one waiter.
    NoneBefore(&'static [&'static str]),
    /// Fewer than this many nodes of its own prefix are before it (a
    /// semaphore's permits). Any of them leaving may admit it, so it watches
    /// the directory's children.
    FewerBefore(usize),
}

#[derive(Debug)]
pub(super) struct Waitlist<'a> {
    client: &'a Client,
    dir: String,
    prefix: &'static str,
    admission: Admission,
}

/// Our place in a [`Waitlist`].
#[derive(Debug)]
pub(super) struct Entry {
    /// Full path of our node.
    pub path: String,
    /// Zxid of the create that made our node.
    pub czxid: u64,
    /// The name every node of this attempt starts with.
    tag: String,
}

/// Why [`Waitlist::wait_turn`] returned.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Turn {
    Admitted,
    TimedOut,
}

/// What a waiting member watches.
enum Watch {
    Node(String),
    Children,
}

impl<'a> Waitlist<'a> {
    pub(super) fn new(
        client: &'a Client,
        dir: &str,
        prefix: &'static str,
        admission: Admission,
    ) -> Waitlist<'a> {
        Waitlist {
            client,
            dir: dir.trim_end_matches('/').to_string(),
            prefix,
            admission,
        }
    }

    pub(super) fn dir(&self) -> &str {
        &self.dir
    }

    pub(super) fn client(&self) -> &'a Client {
        self.client
    }

    /// Prefixes whose nodes are members of this line.
    fn counts(&self, name: &str) -> bool {
        name.starts_with(self.prefix)
            || matches!(self.admission, Admission::NoneBefore(p) if p.iter().any(|p| name.starts_with(p)))
    }

    /// The line's nodes, lowest sequence first: `(sequence, name)`.
    pub(super) async fn members(
        &self,
        consistency: Consistency,
    ) -> Result<Vec<(u64, String)>, Error> {
        let (names, _) = self.client.children(&self.dir, consistency, false).await?;
        let mut members: Vec<(u64, String)> = names
            .into_iter()
            .filter(|n| self.counts(n))
            .filter_map(|n| Some((sequence(&n)?, n)))
            .collect();
        members.sort();
        Ok(members)
    }

    /// Joins the line with `data`: creates `dir` if missing, then our node.
    pub(super) async fn join(&self, data: &[u8]) -> Result<Entry, Error> {
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

    /// Whether the member at `at` of `names` is admitted, or what it must
    /// watch.
    fn admitted(&self, names: &[&str], at: usize) -> Result<(), Watch> {
        match self.admission {
            Admission::NoneBefore(blockers) => {
                let blocking = names[..at]
                    .iter()
                    .rev()
                    .find(|n| blockers.iter().any(|b| n.starts_with(b)));
                match blocking {
                    None => Ok(()),
                    Some(n) => Err(Watch::Node(format!("{}/{n}", self.dir))),
                }
            }
            Admission::FewerBefore(permits) => {
                let before = names[..at]
                    .iter()
                    .filter(|n| n.starts_with(self.prefix))
                    .count();
                if before < permits {
                    Ok(())
                } else {
                    Err(Watch::Children)
                }
            }
        }
    }

    /// Waits until `entry` is admitted, or until `deadline`. Errors with
    /// `NoNode` if our node was deleted under us.
    pub(super) async fn wait_turn(
        &self,
        entry: &Entry,
        deadline: Option<Instant>,
        others: &mut Vec<WatchEvent>,
    ) -> Result<Turn, Error> {
        let under = format!("{}/", self.dir);
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
            let watch = match self.admitted(&names, at) {
                Ok(()) => return Ok(Turn::Admitted),
                Err(watch) => watch,
            };
            let armed = match &watch {
                Watch::Node(path) => retry(|| self.client.exists(path, Consistency::Local, true))
                    .await?
                    .is_some(),
                Watch::Children => {
                    retry(|| self.client.children(&self.dir, Consistency::Local, true)).await?;
                    true
                }
            };
            let now = Instant::now();
            if deadline.is_some_and(|d| d <= now) {
                return Ok(Turn::TimedOut);
            }
            if armed {
                let until = deadline.map_or(now + RECHECK, |d| d.min(now + RECHECK));
                // Any event about this line's directory or nodes (even a
                // stale one) just means: look again.
                let dir = self.dir.as_str();
                let is_ours = |e: &WatchEvent| e.path.starts_with(&under) || e.path == dir;
                wait_event(self.client, is_ours, until, others).await?;
            }
        }
    }

    /// Joins with `data` and waits to be admitted. On timeout (`Ok(None)`)
    /// or failure it leaves again, so no waiter is left behind to block the
    /// line (if the session expired, the server removed the node already).
    pub(super) async fn enter(
        &self,
        data: &[u8],
        deadline: Option<Instant>,
        others: &mut Vec<WatchEvent>,
    ) -> Result<Option<Entry>, Error> {
        let entry = self.join(data).await?;
        match self.wait_turn(&entry, deadline, others).await {
            Ok(Turn::Admitted) => Ok(Some(entry)),
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
    pub(super) async fn leave(&self, path: &str) -> Result<(), Error> {
        match retry(|| self.client.delete(path, -1)).await {
            Ok(()) | Err(Error::Server(ErrorCode::NoNode)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Whether our node still exists and belongs to this session, as of now
    /// (a linearizable read). Transient errors are returned, not retried.
    pub(super) async fn holds(&self, entry: &Entry) -> Result<bool, Error> {
        let stat = self
            .client
            .exists(&entry.path, Consistency::Linearizable, false)
            .await?;
        Ok(stat.is_some_and(|s| s.ephemeral_owner == self.client.session_id()))
    }
}
