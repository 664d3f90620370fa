//! An ephemeral node that is there for as long as its owner runs, across
//! connection losses, deletions by others and the loss of the session
//! itself (Curator's PersistentNode): a service's registration that must
//! come back on its own after a long partition.
//!
//! A task owns its own session, made from a [`Builder`]: it creates the
//! node, watches it, creates it again if someone deletes it, and when the
//! session expires opens a new one and creates the node again there (once
//! the server has removed the old session's copy). While the ensemble is
//! out of reach the node may be missing; it returns when a session can be
//! had. [`PersistentNode::close`] stops the task and deletes the node.

use tokio::sync::{oneshot, watch};

use super::{ensure_path, is_transient, retry, BACKOFF_MAX, BACKOFF_MIN};
use crate::{Builder, Client, Consistency, CreateMode, Error, ErrorCode, SessionState};

/// An ephemeral node kept alive by a task: see the [module docs](self).
#[derive(Debug)]
pub struct PersistentNode {
    present: watch::Receiver<Option<u64>>,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl PersistentNode {
    /// Starts keeping `path` (with `data`) alive; returns once it exists
    /// the first time.
    pub async fn start(builder: Builder, path: &str, data: &[u8]) -> Result<PersistentNode, Error> {
        let (present_tx, mut present) = watch::channel(None);
        let (stop, stopped) = oneshot::channel();
        let (failed_tx, mut failed) = oneshot::channel();
        let node = (path.to_string(), data.to_vec());
        let task = tokio::spawn(keep(builder, node, present_tx, failed_tx, stopped));
        // The first creation, or why the task cannot make the node.
        loop {
            if present.borrow_and_update().is_some() {
                break;
            }
            tokio::select! {
                changed = present.changed() => {
                    if changed.is_err() {
                        return Err(Error::SessionExpired);
                    }
                }
                why = &mut failed => return Err(why.unwrap_or(Error::SessionExpired)),
            }
        }
        Ok(PersistentNode {
            present,
            stop: Some(stop),
            task,
        })
    }

    /// The session that owns the node now, if it exists now (as far as the
    /// task knows).
    pub fn owner(&self) -> Option<u64> {
        *self.present.borrow()
    }

    /// Waits until the node's owner changes (made again, in a new session,
    /// or gone for a while).
    /// `SessionExpired` once the task has ended (the node could not be
    /// made any more).
    pub async fn changed(&mut self) -> Result<Option<u64>, Error> {
        self.present
            .changed()
            .await
            .map_err(|_| Error::SessionExpired)?;
        Ok(*self.present.borrow())
    }

    /// Stops keeping the node and deletes it (closing the task's session).
    pub async fn close(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
    }
}

impl Drop for PersistentNode {
    fn drop(&mut self) {
        // Without close: the task ends and its session with it.
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// The task: one session after another, the node kept in each.
async fn keep(
    builder: Builder,
    (path, data): (String, Vec<u8>),
    present: watch::Sender<Option<u64>>,
    failed: oneshot::Sender<Error>,
    mut stopped: oneshot::Receiver<()>,
) {
    let mut backoff = BACKOFF_MIN;
    loop {
        let client = tokio::select! {
            c = builder.clone().connect() => c,
            _ = &mut stopped => return,
        };
        let client = match client {
            Ok(client) => {
                backoff = BACKOFF_MIN;
                client
            }
            Err(_) => {
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = &mut stopped => return,
                }
                backoff = (backoff * 2).min(BACKOFF_MAX);
                continue;
            }
        };
        let kept = tokio::select! {
            kept = keep_in(&client, &path, &data, &present) => kept,
            _ = &mut stopped => {
                let _ = client.close().await;
                return;
            }
        };
        // The session ended (the node went with it), or the node cannot be
        // made at all (no permission, an ephemeral parent, a bad path):
        // that ends the task, and `start` says why.
        present.send_replace(None);
        match kept {
            Err(Error::SessionExpired) => {}
            Err(e) => {
                let _ = client.close().await;
                let _ = failed.send(e);
                return;
            }
            Ok(()) => {}
        }
        // Never a tight loop of sessions.
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = &mut stopped => return,
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// Keeps the node in `client`'s session until the session ends.
async fn keep_in(
    client: &Client,
    path: &str,
    data: &[u8],
    present: &watch::Sender<Option<u64>>,
) -> Result<(), Error> {
    if let Some((parent, _)) = path.rsplit_once('/') {
        if !parent.is_empty() {
            ensure_path(client, parent).await?;
        }
    }
    let me = client.session_id();
    let mut states = client.session_states();
    loop {
        let (stat, mut gone) =
            retry(|| client.exists_and_watch(path, Consistency::Linearizable)).await?;
        match stat {
            Some(s) if s.ephemeral_owner == me => {
                present.send_replace(Some(me));
            }
            // Another session's (ours before, not yet expired on the
            // servers): wait for it to go.
            Some(_) => {}
            None => match client.create(path, data, CreateMode::Ephemeral).await {
                Ok(_) => {
                    present.send_replace(Some(me));
                }
                Err(Error::Server(ErrorCode::NodeExists)) => continue,
                Err(e) if is_transient(&e) => {
                    tokio::time::sleep(BACKOFF_MIN).await;
                    continue;
                }
                Err(e) => return Err(e),
            },
        }
        // Until the node changes (the watch is re-armed across reconnects)
        // or the session ends.
        tokio::select! {
            _ = gone.next() => {}
            _ = states.wait_for(|s| *s == SessionState::Expired) => return Err(Error::SessionExpired),
        }
    }
}
