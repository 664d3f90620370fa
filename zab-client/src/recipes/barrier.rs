//! Barriers: [`Barrier`] holds everyone back while one node exists;
//! [`DoubleBarrier`] lets a group of `n` start together and finish
//! together.
//!
//! A double barrier's participants each hold an ephemeral node
//! `dir/<id>`. [`DoubleBarrier::enter`] returns once `n` have entered: the
//! participant that sees the `n`-th creates `dir/ready`, and the others wait
//! for it. [`DoubleBarrier::leave`] removes its node and returns once every
//! participant's node is gone; the last one out removes `ready`. A
//! participant whose session ends counts as gone. One round per directory:
//! a group that meets again uses a new one (a participant that left and
//! entered again at once could otherwise hold a slow leaver back for good).
//!
//! Both wait through watch streams of their own, never the session's.

use super::{ensure_path, retry, RECHECK};
use crate::{Client, Consistency, CreateMode, Error, ErrorCode};

const READY: &str = "ready";

/// A barrier that stands while its node exists.
#[derive(Debug, Clone)]
pub struct Barrier {
    client: Client,
    path: String,
}

impl Barrier {
    pub fn new(client: &Client, path: &str) -> Barrier {
        Barrier {
            client: client.clone(),
            path: path.to_string(),
        }
    }

    /// Raises the barrier (creates its node; already up is fine).
    pub async fn set(&self) -> Result<(), Error> {
        if let Some((parent, _)) = self.path.rsplit_once('/') {
            if !parent.is_empty() {
                ensure_path(&self.client, parent).await?;
            }
        }
        match retry(|| self.client.create(&self.path, b"", CreateMode::Persistent)).await {
            Ok(_) | Err(Error::Server(ErrorCode::NodeExists)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Lowers it (deletes its node; already down is fine).
    pub async fn remove(&self) -> Result<(), Error> {
        match retry(|| self.client.delete(&self.path, -1)).await {
            Ok(()) | Err(Error::Server(ErrorCode::NoNode)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Waits until the barrier is down.
    pub async fn wait(&self) -> Result<(), Error> {
        loop {
            let (up, mut changed) = retry(|| {
                self.client
                    .exists_and_watch(&self.path, Consistency::Linearizable)
            })
            .await?;
            if up.is_none() {
                return Ok(());
            }
            let _ = tokio::time::timeout(RECHECK, changed.next()).await;
        }
    }
}

/// A group of `n` participants that enter together and leave together.
#[derive(Debug, Clone)]
pub struct DoubleBarrier {
    client: Client,
    dir: String,
    n: usize,
    me: String,
}

impl DoubleBarrier {
    /// Participant `id` (unique among those of `dir`) of a barrier of `n`.
    pub fn new(client: &Client, dir: &str, n: usize, id: &str) -> DoubleBarrier {
        let dir = dir.trim_end_matches('/').to_string();
        DoubleBarrier {
            client: client.clone(),
            me: format!("{dir}/{id}"),
            dir,
            n: n.max(1),
        }
    }

    /// The participants in the barrier now (`ready` aside).
    async fn participants(&self) -> Result<Vec<String>, Error> {
        let (names, _) = retry(|| {
            self.client
                .children(&self.dir, Consistency::Linearizable, false)
        })
        .await?;
        Ok(names.into_iter().filter(|n| n != READY).collect())
    }

    /// Joins and waits until `n` participants have joined.
    pub async fn enter(&self) -> Result<(), Error> {
        ensure_path(&self.client, &self.dir).await?;
        match retry(|| self.client.create(&self.me, b"", CreateMode::Ephemeral)).await {
            Ok(_) => {}
            // Ours, from a create whose reply was lost.
            Err(Error::Server(ErrorCode::NodeExists)) => {
                let stat = retry(|| {
                    self.client
                        .exists(&self.me, Consistency::Linearizable, false)
                })
                .await?;
                if stat.is_none_or(|s| s.ephemeral_owner != self.client.session_id()) {
                    return Err(Error::Server(ErrorCode::NodeExists));
                }
            }
            Err(e) => return Err(e),
        }
        let ready = format!("{}/{READY}", self.dir);
        loop {
            // Watch the children (arrivals) and `ready`, then look.
            let (_, _, mut joined) = retry(|| {
                self.client
                    .children_and_watch(&self.dir, Consistency::Linearizable)
            })
            .await?;
            let (up, mut readied) = retry(|| {
                self.client
                    .exists_and_watch(&ready, Consistency::Linearizable)
            })
            .await?;
            if up.is_some() {
                return Ok(());
            }
            if self.participants().await?.len() >= self.n {
                match retry(|| self.client.create(&ready, b"", CreateMode::Persistent)).await {
                    Ok(_) | Err(Error::Server(ErrorCode::NodeExists)) => return Ok(()),
                    Err(e) => return Err(e),
                }
            }
            let either = async {
                tokio::select! {
                    _ = joined.next() => {}
                    _ = readied.next() => {}
                }
            };
            let _ = tokio::time::timeout(RECHECK, either).await;
        }
    }

    /// Leaves and waits until every participant has left.
    pub async fn leave(&self) -> Result<(), Error> {
        match retry(|| self.client.delete(&self.me, -1)).await {
            Ok(()) | Err(Error::Server(ErrorCode::NoNode)) => {}
            Err(e) => return Err(e),
        }
        loop {
            let (_, _, mut left) = retry(|| {
                self.client
                    .children_and_watch(&self.dir, Consistency::Linearizable)
            })
            .await?;
            if self.participants().await?.is_empty() {
                let ready = format!("{}/{READY}", self.dir);
                return match retry(|| self.client.delete(&ready, -1)).await {
                    Ok(()) | Err(Error::Server(ErrorCode::NoNode)) => Ok(()),
                    Err(e) => Err(e),
                };
            }
            let _ = tokio::time::timeout(RECHECK, left.next()).await;
        }
    }
}
