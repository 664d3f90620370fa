//! Barriers: [`Barrier`] holds everyone back while one node exists;
//! [`DoubleBarrier`] lets a group of `n` start together and finish
//! together.
//!
//! A double barrier's participants each hold an ephemeral node
//! `dir/<id>`. [`DoubleBarrier::enter`] returns once `n` have entered: the
//! participant that sees the `n`-th creates `dir/ready`, and the others wait
//! for it. [`DoubleBarrier::leave`] removes its node and returns once every
//! participant's node is gone; the last one out removes `ready`, so the
//! barrier can be used again. A participant whose session ends counts as
//! gone.

use super::{ensure_path, retry, wait_event, RECHECK};
use crate::{Client, Consistency, CreateMode, Error, ErrorCode, WatchEvent};

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

    /// Waits until the barrier is down. Events about other paths that
    /// arrive meanwhile are returned.
    pub async fn wait(&self) -> Result<Vec<WatchEvent>, Error> {
        let mut others = Vec::new();
        loop {
            let up = retry(|| {
                self.client
                    .exists(&self.path, Consistency::Linearizable, true)
            })
            .await?
            .is_some();
            if !up {
                return Ok(others);
            }
            let until = tokio::time::Instant::now() + RECHECK;
            let path = self.path.clone();
            wait_event(&self.client, |e| e.path == path, until, &mut others).await?;
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
    async fn participants(&self, watch: bool) -> Result<Vec<String>, Error> {
        let (names, _) = retry(|| {
            self.client
                .children(&self.dir, Consistency::Linearizable, watch)
        })
        .await?;
        Ok(names.into_iter().filter(|n| n != READY).collect())
    }

    /// Joins and waits until `n` participants have joined.
    pub async fn enter(&self) -> Result<Vec<WatchEvent>, Error> {
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
        let mut others = Vec::new();
        loop {
            if retry(|| self.client.exists(&ready, Consistency::Linearizable, true))
                .await?
                .is_some()
            {
                return Ok(others);
            }
            if self.participants(false).await?.len() >= self.n {
                match retry(|| self.client.create(&ready, b"", CreateMode::Persistent)).await {
                    Ok(_) | Err(Error::Server(ErrorCode::NodeExists)) => return Ok(others),
                    Err(e) => return Err(e),
                }
            }
            let until = tokio::time::Instant::now() + RECHECK;
            let under = format!("{}/", self.dir);
            wait_event(
                &self.client,
                |e| e.path.starts_with(&under),
                until,
                &mut others,
            )
            .await?;
        }
    }

    /// Leaves and waits until every participant has left.
    pub async fn leave(&self) -> Result<Vec<WatchEvent>, Error> {
        match retry(|| self.client.delete(&self.me, -1)).await {
            Ok(()) | Err(Error::Server(ErrorCode::NoNode)) => {}
            Err(e) => return Err(e),
        }
        let mut others = Vec::new();
        loop {
            if self.participants(true).await?.is_empty() {
                let ready = format!("{}/{READY}", self.dir);
                match retry(|| self.client.delete(&ready, -1)).await {
                    Ok(()) | Err(Error::Server(ErrorCode::NoNode)) => return Ok(others),
                    Err(e) => return Err(e),
                }
            }
            let until = tokio::time::Instant::now() + RECHECK;
            let dir = self.dir.clone();
            wait_event(&self.client, |e| e.path == dir, until, &mut others).await?;
        }
    }
}
