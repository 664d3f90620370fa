//! A configuration watcher: one node's data, parsed into a typed value and
//! kept current.
//!
//! # Limits
//!
//! * Watches are one-shot and re-armed by each read, so values written in
//!   quick succession may be skipped: [`ConfigWatcher::next`] always moves
//!   to the *latest* value, not through every one.
//! * A value that does not parse is reported once ([`ConfigError::Parse`])
//!   and [`ConfigWatcher::current`] keeps the last good value.
//! * If the node is deleted, `next` reports `Server(NoNode)` once, and the
//!   following call waits for it to be created again.

use std::fmt;

use tokio::time::Instant;

use super::{retry, wait_event, RECHECK};
use crate::{Client, Consistency, Error, ErrorCode, Stat, WatchEvent};

/// Why a [`ConfigWatcher`] call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigError<E> {
    /// The client failed (see [`Error`]); the watcher can be called again
    /// unless it is `SessionExpired`.
    Client(Error),
    /// The node's new data does not parse; the current value is unchanged.
    Parse(E),
}

impl<E> From<Error> for ConfigError<E> {
    fn from(e: Error) -> Self {
        ConfigError::Client(e)
    }
}

impl<E: fmt::Display> fmt::Display for ConfigError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Client(e) => write!(f, "{e}"),
            ConfigError::Parse(e) => write!(f, "the configuration value does not parse: {e}"),
        }
    }
}

impl<E: fmt::Debug + fmt::Display> std::error::Error for ConfigError<E> {}

type Parse<T, E> = Box<dyn Fn(&[u8]) -> Result<T, E> + Send + Sync>;

/// A typed value stored in one node, followed as it changes.
///
/// Owns its client: it is that session's only reader of watch events (see
/// the [recipes docs](super)).
///
/// ```no_run
/// # async fn demo(client: zab_client::Client) -> Result<(), Box<dyn std::error::Error>> {
/// use zab_client::recipes::ConfigWatcher;
/// let parse = |b: &[u8]| std::str::from_utf8(b).unwrap_or("").trim().parse::<u32>();
/// let mut pool_size = ConfigWatcher::new(client, "/app/config/db/pool_size", parse).await?;
/// println!("pool size {}", pool_size.current());
/// loop {
///     let size = pool_size.next().await?; // waits for a change
///     println!("pool size now {size}");
/// }
/// # }
/// ```
pub struct ConfigWatcher<T, E> {
    client: Client,
    path: String,
    parse: Parse<T, E>,
    current: T,
    /// `(czxid, mzxid)` of the node as last read; None if it was missing.
    seen: Option<(u64, u64)>,
    version: i32,
    /// An event said the node changed and it has not been read since: kept
    /// here, not in `next`, so a `next` cancelled after taking the event
    /// does not lose the change.
    stale: bool,
}

impl<T: fmt::Debug, E> fmt::Debug for ConfigWatcher<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConfigWatcher")
            .field("path", &self.path)
            .field("current", &self.current)
            .field("version", &self.version)
            .finish()
    }
}

fn key(stat: &Stat) -> (u64, u64) {
    (stat.czxid, stat.mzxid)
}

impl<T, E> ConfigWatcher<T, E> {
    /// Reads `path` (linearizably: the value reflects every write
    /// acknowledged before the call), parses it and arms a watch. Fails if
    /// the node is missing (`Server(NoNode)`) or does not parse.
    pub async fn new<F>(client: Client, path: &str, parse: F) -> Result<Self, ConfigError<E>>
    where
        F: Fn(&[u8]) -> Result<T, E> + Send + Sync + 'static,
    {
        let (data, stat) = client
            .get_watch(path, Consistency::Linearizable, true)
            .await?;
        let current = parse(&data).map_err(ConfigError::Parse)?;
        Ok(ConfigWatcher {
            client,
            path: path.to_string(),
            parse: Box::new(parse),
            current,
            seen: Some(key(&stat)),
            version: stat.version,
            stale: false,
        })
    }

    /// The latest value that parsed.
    pub fn current(&self) -> &T {
        &self.current
    }

    /// The node's data version of [`ConfigWatcher::current`] (counts sets).
    pub fn version(&self) -> i32 {
        self.version
    }

    /// Waits until the node changes, then returns the new value (also the
    /// new [`ConfigWatcher::current`]). Never sleeps through a change: with
    /// no event it compares the node's stat every [`RECHECK`], which also
    /// surfaces `SessionExpired`. Rides through connection loss.
    ///
    /// Cancel safe (it can be one branch of a `select!`): a change it was
    /// interrupted while reading is returned by the next call.
    pub async fn next(&mut self) -> Result<T, ConfigError<E>>
    where
        T: Clone,
    {
        let mut dropped = Vec::new();
        loop {
            if !self.stale {
                let until = Instant::now() + RECHECK;
                let is_ours = |e: &WatchEvent| e.path == self.path;
                if !wait_event(&self.client, is_ours, until, &mut dropped).await? {
                    dropped.clear();
                    // Quiet: has the node changed without our hearing?
                    let stat =
                        retry(|| self.client.exists(&self.path, Consistency::Local, false)).await?;
                    if stat.as_ref().map(key) == self.seen {
                        continue;
                    }
                }
                self.stale = true;
            }
            match retry(|| self.client.get_watch(&self.path, Consistency::Local, true)).await {
                Ok((data, stat)) => {
                    self.stale = false;
                    if Some(key(&stat)) == self.seen {
                        continue; // an event with no news, e.g. ContinuityLost
                    }
                    self.seen = Some(key(&stat));
                    let value = (self.parse)(&data).map_err(ConfigError::Parse)?;
                    self.current = value.clone();
                    self.version = stat.version;
                    return Ok(value);
                }
                Err(Error::Server(ErrorCode::NoNode)) => {
                    // Deleted: no watch is armed; watch for its creation.
                    let stat =
                        retry(|| self.client.exists(&self.path, Consistency::Local, true)).await?;
                    if stat.is_some() {
                        continue; // created again meanwhile: still stale, read it
                    }
                    self.stale = false;
                    if self.seen.take().is_some() {
                        return Err(Error::Server(ErrorCode::NoNode).into());
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Gives the client back.
    pub fn into_client(self) -> Client {
        self.client
    }
}
