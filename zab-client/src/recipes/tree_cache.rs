//! A local copy of a subtree, kept up to date: every node's data and stat
//! under a root, for reads without a round trip.
//!
//! The cache arms a recursive watch on the root *before* loading the
//! subtree, so no change falls between the load and the watch. Each event
//! makes it read the node again (the server sends an event only once the
//! change is applied, so the read sees it or something later); a
//! `ContinuityLost` (a gap the servers could not replay) reloads the whole
//! subtree. The application drives it: [`TreeCache::next_change`] applies
//! the next change and says what it was, so the copy changes only when the
//! application asks, never behind its back.

use std::collections::BTreeMap;

use bytes::Bytes;

use super::retry;
use crate::{Client, Consistency, Error, ErrorCode, Stat, WatchEventKind, WatchStream};

/// What [`TreeCache::next_change`] applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CacheChange {
    /// The node is new in the copy, or its data or stat changed.
    Updated(String),
    /// The node is gone from the copy.
    Removed(String),
    /// The whole copy was loaded again.
    Reloaded,
}

/// A copy of the subtree at a root: see the [module docs](self).
#[derive(Debug)]
pub struct TreeCache {
    client: Client,
    root: String,
    events: WatchStream,
    nodes: BTreeMap<String, (Bytes, Stat)>,
}

impl TreeCache {
    /// Arms the watch and loads the subtree at `root` (empty if `root` does
    /// not exist yet; it fills as nodes are created).
    pub async fn start(client: &Client, root: &str) -> Result<TreeCache, Error> {
        let events = retry(|| client.add_watch(root, true)).await?;
        let mut cache = TreeCache {
            client: client.clone(),
            root: root.to_string(),
            events,
            nodes: BTreeMap::new(),
        };
        cache.reload().await?;
        Ok(cache)
    }

    /// The node's data and stat, as of the last change applied.
    pub fn get(&self, path: &str) -> Option<&(Bytes, Stat)> {
        self.nodes.get(path)
    }

    /// The names of the node's children in the copy, sorted.
    pub fn children(&self, path: &str) -> Vec<String> {
        let prefix = if path == "/" {
            "/".to_string()
        } else {
            format!("{path}/")
        };
        self.nodes
            .range(prefix.clone()..)
            .take_while(|(p, _)| p.starts_with(&prefix))
            .filter_map(|(p, _)| {
                let rest = &p[prefix.len()..];
                (!rest.is_empty() && !rest.contains('/')).then(|| rest.to_string())
            })
            .collect()
    }

    /// Nodes in the copy, the root included.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Every path in the copy, sorted.
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.nodes.keys().map(String::as_str)
    }

    /// Waits for the next change under the root and applies it to the copy.
    /// Fails with `SessionExpired` when the session ends.
    pub async fn next_change(&mut self) -> Result<CacheChange, Error> {
        let Some(event) = self.events.next().await else {
            // The watch is gone: the session ended, or the servers refused
            // to re-arm it after a reconnect. Arm it again (failing if the
            // session is over) and load everything.
            self.events = retry(|| self.client.add_watch(&self.root, true)).await?;
            self.reload().await?;
            return Ok(CacheChange::Reloaded);
        };
        if event.kind == WatchEventKind::ContinuityLost {
            self.reload().await?;
            return Ok(CacheChange::Reloaded);
        }
        let change = self.refresh(&event.path).await?;
        // A recursive watch reports a child's creation or deletion, never its
        // parent's children change: the parent's stat moved too.
        if matches!(
            event.kind,
            WatchEventKind::NodeCreated | WatchEventKind::NodeDeleted
        ) {
            if let Some((parent, _)) = event.path.rsplit_once('/') {
                let parent = if parent.is_empty() { "/" } else { parent };
                if self.nodes.contains_key(parent) {
                    self.refresh(parent).await?;
                }
            }
        }
        Ok(change)
    }

    /// Reads `path` again: updated, or removed if it is gone.
    async fn refresh(&mut self, path: &str) -> Result<CacheChange, Error> {
        match retry(|| self.client.get(path, Consistency::Local)).await {
            Ok((data, stat)) => {
                self.nodes.insert(path.to_string(), (data, stat));
                Ok(CacheChange::Updated(path.to_string()))
            }
            Err(Error::Server(ErrorCode::NoNode)) => {
                self.nodes.remove(path);
                Ok(CacheChange::Removed(path.to_string()))
            }
            Err(e) => Err(e),
        }
    }

    /// Loads the whole subtree again (linearizable: at least as new as
    /// every change acknowledged before).
    async fn reload(&mut self) -> Result<(), Error> {
        retry(|| self.client.sync(&self.root)).await?;
        let mut nodes = BTreeMap::new();
        let mut stack = vec![self.root.clone()];
        while let Some(path) = stack.pop() {
            let (data, stat) = match retry(|| self.client.get(&path, Consistency::Local)).await {
                Ok(found) => found,
                // Deleted since its parent was listed (its event follows).
                Err(Error::Server(ErrorCode::NoNode)) => continue,
                Err(e) => return Err(e),
            };
            if stat.num_children > 0 {
                let names =
                    match retry(|| self.client.all_children(&path, Consistency::Local)).await {
                        Ok(names) => names,
                        Err(Error::Server(ErrorCode::NoNode)) => Vec::new(),
                        Err(e) => return Err(e),
                    };
                for name in names {
                    stack.push(if path == "/" {
                        format!("/{name}")
                    } else {
                        format!("{path}/{name}")
                    });
                }
            }
            nodes.insert(path, (data, stat));
        }
        self.nodes = nodes;
        Ok(())
    }
}
