//! A leader selector (Curator's `LeaderSelector`): a task that stands in an
//! [`Election`](super::Election) on its own and runs the application's
//! listener while this candidate leads.
//!
//! - Leadership begins: the listener is called with a [`Leading`] (the
//!   term to fence writes with) and its future is run.
//! - The listener's future returns: the candidate resigns and, by default,
//!   stands again at the back of the line (`requeue`), so leadership
//!   rotates among candidates whose listeners return.
//! - Leadership is lost, or may be (a connection lost while leading): the
//!   listener's future is dropped (cancelled at its next await), the
//!   candidate resigns if its node is still there, and stands again.
//! - [`LeaderSelector::stop`] (or dropping the selector): the listener is
//!   cancelled, the candidate leaves the line (leading or waiting), and
//!   the task ends.
//! - The session expires: the task ends with [`Error::SessionExpired`],
//!   which [`LeaderSelector::stop`] (or [`LeaderSelector::ended`]) returns.
//!
//! A listener runs only while this candidate's node is first, as far as
//! the selector can tell: as with [`Leadership`], fence the leader's writes
//! with [`Leading::term`], since a leader cut off from the ensemble learns
//! it lost only when it talks to a server again.
//!
//! Like [`Election`](super::Election), the selector reads the session's
//! watch events while it waits and discards those about other paths: give
//! it a session of its own ([`Client::builder`]) if the application reads
//! [`Client::next_event`]. A clone of a `Client` shares its session.

use std::future::Future;
use std::time::Duration;

use super::RECHECK;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::election::{Leadership, PREFIX};
use super::waitlist::{Admission, Turn, Waitlist};
use crate::{Client, Error};

/// How often a waiting candidate looks whether it was asked to stop: as
/// often as the line is re-checked anyway.
const STOP_POLL: Duration = RECHECK;

/// What the listener is told when this candidate begins to lead.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Leading {
    /// This candidate's id.
    pub id: String,
    /// Its candidate node.
    pub path: String,
    /// The leadership's term: larger for every later leader; fence with it.
    pub term: u64,
}

/// A running selector: see the [module docs](self).
#[derive(Debug)]
pub struct LeaderSelector {
    stop: watch::Sender<bool>,
    leading: watch::Receiver<Option<u64>>,
    task: Option<JoinHandle<Result<(), Error>>>,
}

impl LeaderSelector {
    /// Stands as candidate `id` in the election at `dir` (created if
    /// missing), on `client`'s session, calling `listener` each time it
    /// leads; with `requeue`, it stands again after each leadership,
    /// otherwise it stops after the first. Needs a tokio runtime.
    ///
    /// ```no_run
    /// # async fn demo(client: zab_client::Client) -> Result<(), zab_client::Error> {
    /// use zab_client::recipes::LeaderSelector;
    /// let selector = LeaderSelector::start(client, "/election/scheduler", "host-a", true, |leading| async move {
    ///     // Lead until done (or cancelled when leadership is lost),
    ///     // fencing writes with leading.term.
    ///     let _ = leading.term;
    /// });
    /// // ...
    /// selector.stop().await?;
    /// # Ok(()) }
    /// ```
    pub fn start<F, Fut>(
        client: Client,
        dir: &str,
        id: &str,
        requeue: bool,
        listener: F,
    ) -> LeaderSelector
    where
        F: FnMut(Leading) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let (stop, stopped) = watch::channel(false);
        let (leads, leading) = watch::channel(None);
        let run = Run {
            client,
            dir: dir.to_string(),
            id: id.to_string(),
            requeue,
            stopped,
            leads,
        };
        let task = tokio::spawn(run.run(listener));
        LeaderSelector {
            stop,
            leading,
            task: Some(task),
        }
    }

    /// The term this candidate leads in now, as the selector last knew;
    /// `None` while it waits (or after it stopped).
    pub fn leading(&self) -> Option<u64> {
        *self.leading.borrow()
    }

    /// Waits until the selector ends on its own: without `requeue`, after
    /// its one leadership; otherwise only on an error (`SessionExpired`).
    pub async fn ended(&mut self) -> Result<(), Error> {
        match self.task.take() {
            Some(task) => task.await.unwrap_or(Err(Error::ConnectionLoss)),
            None => Ok(()),
        }
    }

    /// Stops: cancels the listener, leaves the election (resigning if it
    /// leads), and waits for the task to end; its error, if it ended with one.
    pub async fn stop(mut self) -> Result<(), Error> {
        let _ = self.stop.send(true);
        self.ended().await
    }
}

/// The selector's task.
struct Run {
    client: Client,
    dir: String,
    id: String,
    requeue: bool,
    stopped: watch::Receiver<bool>,
    leads: watch::Sender<Option<u64>>,
}

impl Run {
    async fn run<F, Fut>(self, mut listener: F) -> Result<(), Error>
    where
        F: FnMut(Leading) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let mut stopped = self.stopped.clone();
        loop {
            let Some(mut leadership) = self.campaign().await? else {
                return Ok(()); // asked to stop while waiting
            };
            let leading = Leading {
                id: self.id.clone(),
                path: leadership.path().to_string(),
                term: leadership.term(),
            };
            self.leads.send_replace(Some(leading.term));
            let stop_asked = tokio::select! {
                () = listener(leading) => false,
                lost = leadership.lost() => match lost {
                    Err(Error::SessionExpired) => {
                        self.leads.send_replace(None);
                        return Err(Error::SessionExpired);
                    }
                    // Gone, or maybe: stand again (resigning first, below,
                    // in case the node is still ours).
                    _ => false,
                },
                _ = stopped.wait_for(|s| *s) => true,
            };
            self.leads.send_replace(None);
            leadership.resign().await?;
            if stop_asked || !self.requeue || self.stop_asked() {
                return Ok(());
            }
        }
    }

    /// Whether [`LeaderSelector::stop`] was called, or the selector dropped.
    fn stop_asked(&self) -> bool {
        *self.stopped.borrow() || self.stopped.has_changed().is_err()
    }

    /// Joins the line and waits to lead; `None` if asked to stop first
    /// (having left the line). On an error, leaves the line too unless the
    /// session is gone.
    async fn campaign(&self) -> Result<Option<Leadership<'_>>, Error> {
        let queue = Waitlist::new(
            &self.client,
            &self.dir,
            PREFIX,
            Admission::NoneBefore(&[PREFIX]),
        );
        let entry = queue.join(self.id.as_bytes()).await?;
        let mut others = Vec::new();
        loop {
            if self.stop_asked() {
                queue.leave(&entry.path).await?;
                return Ok(None);
            }
            let poll = Some(Instant::now() + STOP_POLL);
            match queue.wait_turn(&entry, poll, &mut others).await {
                Ok(Turn::Admitted) => {
                    return Ok(Some(Leadership::admitted(queue, entry, &self.id, others)))
                }
                Ok(Turn::TimedOut) => {}
                Err(e) => {
                    if e != Error::SessionExpired {
                        let _ = queue.leave(&entry.path).await;
                    }
                    return Err(e);
                }
            }
        }
    }
}
