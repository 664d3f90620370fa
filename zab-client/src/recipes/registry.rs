//! Service registration and discovery.
//!
//! An instance registers as an ephemeral node `service_dir/<instance>` whose
//! data is its payload (an address, a JSON blob): it is listed as long as its
//! session lives, and disappears when the session is closed or expires. A
//! [`Discovery`] lists the live instances and waits for the set to change.
//!
//! # Limits
//!
//! * A crashed instance stays listed until its session expires (the session
//!   timeout): consumers must tolerate a dead instance for that long.
//! * Discovery follows membership, not payloads: an instance that changes
//!   its payload is seen at the next [`Discovery::live`] call.
//! * After a crash, an instance that registers again under the same name
//!   from a new session gets `Server(NodeExists)` until the old session
//!   expires: retry, or use a name unique to the process.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use tokio::time::Instant;

use super::{ensure_path, is_transient, retry, wait_event, RECHECK};
use crate::{Client, Consistency, CreateMode, Error, ErrorCode, WatchEvent};

/// Registers `instance` under `service_dir` (created if missing) with
/// `payload`, for as long as `client`'s session lives; returns the node's
/// path. Registering again from the same session replaces the payload.
///
/// Rides through connection loss and a lost quorum. `Server(NodeExists)`:
/// another live session has registered this name. `Server(BadArguments)`:
/// `instance` is empty or contains `/`.
///
/// ```no_run
/// # async fn demo(client: &zab_client::Client) -> Result<(), zab_client::Error> {
/// use zab_client::recipes::register;
/// register(client, "/services/api", "host-a:8080", b"{\"zone\":\"eu-1\"}").await?;
/// # Ok(()) }
/// ```
pub async fn register(
    client: &Client,
    service_dir: &str,
    instance: &str,
    payload: &[u8],
) -> Result<String, Error> {
    if instance.is_empty() || instance.contains('/') {
        return Err(Error::Server(ErrorCode::BadArguments));
    }
    let dir = service_dir.trim_end_matches('/');
    ensure_path(client, dir).await?;
    let path = format!("{dir}/{instance}");
    loop {
        match client.create(&path, payload, CreateMode::Ephemeral).await {
            Ok(path) => return Ok(path),
            Err(Error::Server(ErrorCode::NodeExists)) => {
                // Ours (an earlier call, or a create whose reply was lost)
                // or another session's?
                match retry(|| client.exists(&path, Consistency::Linearizable, false)).await? {
                    Some(stat) if stat.ephemeral_owner == client.session_id() => {
                        retry(|| client.set(&path, payload, -1)).await?;
                        return Ok(path);
                    }
                    Some(_) => return Err(Error::Server(ErrorCode::NodeExists)),
                    None => {} // gone meanwhile: create again
                }
            }
            Err(e) if is_transient(&e) => tokio::time::sleep(super::BACKOFF_MIN).await,
            Err(e) => return Err(e),
        }
    }
}

/// The live instances of one service, and their changes.
///
/// Owns its client: it is that session's only reader of watch events
/// (see the [recipes docs](super)). The same session may register
/// instances through [`Discovery::client`], but should arm no other watches.
///
/// ```no_run
/// # async fn demo(client: zab_client::Client) -> Result<(), zab_client::Error> {
/// use zab_client::recipes::Discovery;
/// let mut discovery = Discovery::new(client, "/services/api");
/// loop {
///     let live = discovery.live().await?; // instance name -> payload
///     println!("{} instances: {:?}", live.len(), live.keys());
///     discovery.changed().await?;
/// }
/// # }
/// ```
#[derive(Debug)]
pub struct Discovery {
    client: Client,
    dir: String,
    /// The instance names the last `live` returned; None before the first.
    known: Option<BTreeSet<String>>,
}

impl Discovery {
    pub fn new(client: Client, service_dir: &str) -> Discovery {
        Discovery {
            client,
            dir: service_dir.trim_end_matches('/').to_string(),
            known: None,
        }
    }

    /// The live instances, name to payload, as of now (a linearizable
    /// listing: it includes every registration acknowledged before the
    /// call), and arms the watch that [`Discovery::changed`] waits on. An
    /// absent service directory is an empty set. Errors are returned as they
    /// come (`ConnectionLoss`: call again).
    pub async fn live(&mut self) -> Result<BTreeMap<String, Bytes>, Error> {
        let names = loop {
            match self
                .client
                .children(&self.dir, Consistency::Linearizable, true)
                .await
            {
                Ok((names, _)) => break names,
                // No directory, no watch armed: watch for its creation.
                Err(Error::Server(ErrorCode::NoNode)) => {
                    if self
                        .client
                        .exists(&self.dir, Consistency::Local, true)
                        .await?
                        .is_none()
                    {
                        break Vec::new();
                    }
                }
                Err(e) => return Err(e),
            }
        };
        let mut live = BTreeMap::new();
        for name in names {
            let path = format!("{}/{name}", self.dir);
            match self.client.get(&path, Consistency::Local).await {
                Ok((payload, _)) => {
                    live.insert(name, payload);
                }
                // Left between the listing and now; the watch has fired.
                Err(Error::Server(ErrorCode::NoNode)) => {}
                Err(e) => return Err(e),
            }
        }
        self.known = Some(live.keys().cloned().collect());
        Ok(live)
    }

    /// Waits until the set of instances may have changed since the last
    /// [`Discovery::live`] (at once if there was none); then call `live`
    /// again. May wake without a change, never sleeps through one: if no
    /// event comes it compares the listing every [`RECHECK`], which also
    /// surfaces `SessionExpired`. Rides through connection loss.
    ///
    /// Cancel safe (it can be one branch of a `select!`): a change it was
    /// interrupted while checking is reported by the next call.
    pub async fn changed(&mut self) -> Result<(), Error> {
        let Some(known) = &self.known else {
            return Ok(());
        };
        let mut dropped = Vec::new();
        loop {
            let until = Instant::now() + RECHECK;
            let is_ours = |e: &WatchEvent| e.path == self.dir;
            if wait_event(&self.client, is_ours, until, &mut dropped).await? {
                return Ok(());
            }
            dropped.clear();
            let now =
                match retry(|| self.client.children(&self.dir, Consistency::Local, false)).await {
                    Ok((names, _)) => names.into_iter().collect(),
                    Err(Error::Server(ErrorCode::NoNode)) => BTreeSet::new(),
                    Err(e) => return Err(e),
                };
            if &now != known {
                return Ok(());
            }
        }
    }

    /// The session this discovery reads with.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Gives the client back.
    pub fn into_client(self) -> Client {
        self.client
    }
}
