//! A distributed FIFO queue: producers add persistent sequential nodes
//! `item-<seq>` under the queue's directory; a consumer takes the lowest.
//!
//! Each item is taken exactly once. A consumer claims an item with one
//! multi that deletes it and creates a claim node naming the consumer's
//! attempt (`claim-<item>-<tag>`, holding the item's data), so a consumer
//! whose reply was lost looks for its claim instead of guessing: found, the
//! item is its own (the claim is removed); absent, the item was not taken by
//! it. Items survive the sessions that added them; claims are left behind
//! only by a consumer that dies between claiming and cleaning up, and
//! [`Queue::stale_claims`] lists them with the data they took.
//!
//! A waiting [`Queue::take`] watches through a stream of its own: it never
//! reads the session's event stream.

use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;

use super::{ensure_path, is_transient, retry, sequence, BACKOFF_MIN, RECHECK};
use crate::{
    Client, Consistency, CreateMode, CreateRequest, DeleteRequest, Error, ErrorCode, MultiOp,
};

const ITEM: &str = "item-";
const CLAIM: &str = "claim-";

/// An item taken from a [`Queue`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Item {
    /// The item's node, as it was (`dir/item-<seq>`).
    pub path: String,
    pub data: Bytes,
}

/// A queue at one directory: see the [module docs](self).
#[derive(Debug, Clone)]
pub struct Queue {
    client: Client,
    dir: String,
}

impl Queue {
    pub fn new(client: &Client, dir: &str) -> Queue {
        Queue {
            client: client.clone(),
            dir: dir.trim_end_matches('/').to_string(),
        }
    }

    /// Appends `data`; returns the item's path. A put whose reply was lost
    /// is retried, and may then be in the queue twice: give items ids if
    /// consumers must tell.
    pub async fn put(&self, data: &[u8]) -> Result<String, Error> {
        ensure_path(&self.client, &self.dir).await?;
        let base = format!("{}/{ITEM}", self.dir);
        retry(|| {
            self.client
                .create(&base, data, CreateMode::PersistentSequential)
        })
        .await
    }

    /// The items waiting, oldest first: `(sequence, name)`.
    async fn items(&self) -> Result<Vec<(u64, String)>, Error> {
        let names = retry(|| {
            self.client
                .all_children(&self.dir, Consistency::Linearizable)
        })
        .await?;
        let mut items: Vec<(u64, String)> = names
            .into_iter()
            .filter(|n| n.starts_with(ITEM))
            .filter_map(|n| Some((sequence(&n)?, n)))
            .collect();
        items.sort();
        Ok(items)
    }

    /// Takes the oldest item, if any: `Ok(None)` when the queue is empty.
    pub async fn try_take(&self) -> Result<Option<Item>, Error> {
        static ATTEMPTS: AtomicU64 = AtomicU64::new(0);
        loop {
            let items = match self.items().await {
                Err(Error::Server(ErrorCode::NoNode)) => return Ok(None),
                other => other?,
            };
            let Some((_, name)) = items.into_iter().next() else {
                return Ok(None);
            };
            let item = format!("{}/{name}", self.dir);
            let data = match retry(|| self.client.get(&item, Consistency::Local)).await {
                Ok((data, _)) => data,
                // Taken by someone else meanwhile.
                Err(Error::Server(ErrorCode::NoNode)) => continue,
                Err(e) => return Err(e),
            };
            let n = ATTEMPTS.fetch_add(1, Ordering::Relaxed);
            let tag = format!("{:x}-{n}", self.client.session_id());
            let claim = format!("{}/{CLAIM}{name}-{tag}", self.dir);
            let ops = vec![
                MultiOp::Delete(DeleteRequest {
                    path: item.clone(),
                    version: -1,
                }),
                MultiOp::Create(CreateRequest {
                    path: claim.clone(),
                    data: data.clone(),
                    mode: CreateMode::Persistent,
                    ttl_ms: 0,
                    acl: None,
                }),
            ];
            let taken = match self.client.multi(ops).await {
                Ok(_) => true,
                Err(Error::MultiFailed { .. }) => false,
                Err(e) if is_transient(&e) => {
                    tokio::time::sleep(BACKOFF_MIN).await;
                    // The claim says whether the multi was applied.
                    retry(|| self.client.exists(&claim, Consistency::Linearizable, false))
                        .await?
                        .is_some()
                }
                Err(e) => return Err(e),
            };
            if taken {
                // The item is ours whatever happens to the claim now: a
                // claim left behind is listed by `stale_claims`, with the
                // data, rather than the item lost.
                let _ = retry(|| self.client.delete(&claim, -1)).await;
                return Ok(Some(Item { path: item, data }));
            }
        }
    }

    /// Takes the oldest item, waiting for one to be added.
    pub async fn take(&self) -> Result<Item, Error> {
        ensure_path(&self.client, &self.dir).await?;
        loop {
            // Watch first, then look: an item added in between wakes us.
            let (_, _, mut added) = retry(|| {
                self.client
                    .children_and_watch(&self.dir, Consistency::Linearizable)
            })
            .await?;
            if let Some(item) = self.try_take().await? {
                return Ok(item);
            }
            let _ = tokio::time::timeout(RECHECK, added.next()).await;
        }
    }

    /// How many items wait.
    pub async fn len(&self) -> Result<usize, Error> {
        match self.items().await {
            Ok(items) => Ok(items.len()),
            Err(Error::Server(ErrorCode::NoNode)) => Ok(0),
            Err(e) => Err(e),
        }
    }

    /// Whether no item waits.
    pub async fn is_empty(&self) -> Result<bool, Error> {
        self.len().await.map(|n| n == 0)
    }

    /// Claims left by consumers that died between taking an item and
    /// cleaning up: each claim's path names the item it took, and holds its
    /// data.
    pub async fn stale_claims(&self) -> Result<Vec<Item>, Error> {
        let names = retry(|| {
            self.client
                .all_children(&self.dir, Consistency::Linearizable)
        })
        .await?;
        let mut claims = Vec::new();
        for name in names.into_iter().filter(|n| n.starts_with(CLAIM)) {
            let path = format!("{}/{name}", self.dir);
            match retry(|| self.client.get(&path, Consistency::Local)).await {
                Ok((data, _)) => claims.push(Item { path, data }),
                Err(Error::Server(ErrorCode::NoNode)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(claims)
    }
}
