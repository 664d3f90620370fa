//! A shared counter: one node whose data is a signed 64-bit value (as
//! text), changed by compare-and-set on the node's version.
//!
//! An increment whose reply is lost (the connection broke) is neither
//! repeated nor forgotten. Each change is one multi that sets the value and
//! creates an ephemeral marker child `<path>/<change id>`: a client that
//! lost the reply looks for its marker, and knows. The marker is deleted
//! once the outcome is known (or goes with the session). Readers see only
//! the value; `zabctl get <path>` prints it.

use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;

use super::{ensure_path, is_transient, retry, BACKOFF_MIN};
use crate::{
    Client, Consistency, CreateMode, CreateRequest, Error, ErrorCode, MultiOp, SetDataRequest,
};

/// A counter at one path: see the [module docs](self).
#[derive(Debug, Clone)]
pub struct Counter {
    client: Client,
    path: String,
}

fn decode(data: &[u8]) -> Result<i64, Error> {
    let text = std::str::from_utf8(data).map_err(|_| Error::Server(ErrorCode::BadArguments))?;
    match text.trim() {
        "" => Ok(0),
        v => v
            .parse()
            .map_err(|_| Error::Server(ErrorCode::BadArguments)),
    }
}

impl Counter {
    /// The counter at `path` (created, at 0, on first use).
    pub fn new(client: &Client, path: &str) -> Counter {
        Counter {
            client: client.clone(),
            path: path.to_string(),
        }
    }

    /// The value now (a linearizable read); 0 if the counter does not exist
    /// yet.
    pub async fn get(&self) -> Result<i64, Error> {
        match self.client.get(&self.path, Consistency::Linearizable).await {
            Ok((data, _)) => decode(&data),
            Err(Error::Server(ErrorCode::NoNode)) => Ok(0),
            Err(e) => Err(e),
        }
    }

    /// Adds `delta` (negative to subtract) exactly once; returns the value
    /// right after (or, when a lost reply had to be looked up, the value
    /// then, which may include later changes). Overflow is `BadArguments`
    /// and changes nothing.
    pub async fn add(&self, delta: i64) -> Result<i64, Error> {
        static CHANGES: AtomicU64 = AtomicU64::new(0);
        let marker = format!(
            "{}/change-{:x}-{}",
            self.path,
            self.client.session_id(),
            CHANGES.fetch_add(1, Ordering::Relaxed)
        );
        self.ensure().await?;
        loop {
            let (data, stat) =
                retry(|| self.client.get(&self.path, Consistency::Linearizable)).await?;
            let value = decode(&data)?
                .checked_add(delta)
                .ok_or(Error::Server(ErrorCode::BadArguments))?;
            let ops = vec![
                MultiOp::SetData(SetDataRequest {
                    path: self.path.clone(),
                    data: Bytes::from(value.to_string()),
                    version: stat.version,
                }),
                MultiOp::Create(CreateRequest {
                    path: marker.clone(),
                    data: Bytes::new(),
                    mode: CreateMode::Ephemeral,
                    ttl_ms: 0,
                    acl: None,
                }),
            ];
            match self.client.multi(ops).await {
                Ok(_) => {
                    self.forget(&marker).await;
                    return Ok(value);
                }
                // Our marker is there already: an earlier try was applied.
                Err(Error::MultiFailed {
                    err: ErrorCode::NodeExists,
                    ..
                }) => {
                    self.forget(&marker).await;
                    return retry(|| self.get()).await;
                }
                // Someone else changed it first: read again.
                Err(Error::MultiFailed {
                    err: ErrorCode::BadVersion,
                    ..
                }) => {}
                Err(e) if is_transient(&e) => {
                    tokio::time::sleep(BACKOFF_MIN).await;
                    let applied = retry(|| {
                        self.client
                            .exists(&marker, Consistency::Linearizable, false)
                    })
                    .await?;
                    if applied.is_some() {
                        self.forget(&marker).await;
                        return retry(|| self.get()).await;
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Removes a marker once the outcome is known. Best effort: the
    /// outcome stands whatever happens here, and a marker left behind is
    /// ephemeral (it goes with the session).
    async fn forget(&self, marker: &str) {
        let _ = retry(|| self.client.delete(marker, -1)).await;
    }

    async fn ensure(&self) -> Result<(), Error> {
        if let Some((parent, _)) = self.path.rsplit_once('/') {
            if !parent.is_empty() {
                ensure_path(&self.client, parent).await?;
            }
        }
        match retry(|| self.client.create(&self.path, b"0", CreateMode::Persistent)).await {
            Ok(_) | Err(Error::Server(ErrorCode::NodeExists)) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_text() {
        assert_eq!(decode(b"-42"), Ok(-42));
        assert_eq!(decode(b""), Ok(0));
        assert_eq!(decode(b" 7\n"), Ok(7));
        assert!(decode(b"x").is_err());
    }
}
