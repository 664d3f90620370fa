//! Every znode by full path, in a map whose clone is cheap: a fixed number of
//! shards, each a hash map behind an `Arc`, holding shared nodes.
//!
//! A snapshot clones the map ([`NodeMap::clone`]: one reference count per
//! shard, whatever the tree's size) and is encoded on another thread while
//! the tree goes on changing. A change to a shard that a snapshot still
//! shares copies that shard first (its entries are reference-counted
//! pointers, not nodes), then the node it changes: the copying a snapshot
//! costs is spread over the first write to each shard, never one stall.
//!
//! Why not a persistent map crate: measured at 1M znodes, a HAMT spent
//! about 180 B more per znode than this (sparse nodes near its leaves), and
//! one big hash map stalls for tens of ms whenever it doubles; shards grow
//! one at a time.

use std::collections::HashMap;
use std::sync::Arc;

use super::znode::Node;

/// Shards: enough that copying one is short (about 1,000 entries at 1M
/// znodes), few enough that cloning the map is (a microsecond or so).
const SHARDS: usize = 1024;

/// Keys are boxed, not reference-counted: a path is held by its shard
/// alone (16 bytes less per znode than an `Arc<str>`'s counts and rounding),
/// and copying a shard for copy-on-write copies its ~1,000 paths.
type Shard = HashMap<Box<str>, Arc<Node>>;

#[derive(Clone)]
pub(crate) struct NodeMap {
    shards: Vec<Arc<Shard>>,
    len: usize,
}

impl NodeMap {
    pub(crate) fn new() -> NodeMap {
        NodeMap {
            shards: (0..SHARDS).map(|_| Arc::new(Shard::new())).collect(),
            len: 0,
        }
    }

    /// The shard of `path`: FNV-1a, fixed (a path always lands in the same
    /// shard) and cheap next to the shard map's own keyed hash, which keeps
    /// hostile paths from colliding within a shard.
    fn shard_of(path: &str) -> usize {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for &b in path.as_bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        (h as usize) % SHARDS
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn get(&self, path: &str) -> Option<&Node> {
        self.shards[Self::shard_of(path)].get(path).map(|n| &**n)
    }

    pub(crate) fn contains_key(&self, path: &str) -> bool {
        self.shards[Self::shard_of(path)].contains_key(path)
    }

    /// The node to change in place: its shard and then the node itself are
    /// copied first if a clone of this map still shares them.
    pub(crate) fn get_mut(&mut self, path: &str) -> Option<&mut Node> {
        let shard = &mut self.shards[Self::shard_of(path)];
        if !shard.contains_key(path) {
            return None;
        }
        Arc::make_mut(shard).get_mut(path).map(Arc::make_mut)
    }

    /// Inserts or replaces the node at `path`.
    pub(crate) fn insert(&mut self, path: &str, node: Node) {
        let shard = Arc::make_mut(&mut self.shards[Self::shard_of(path)]);
        if shard.insert(Box::from(path), Arc::new(node)).is_none() {
            self.len += 1;
        }
    }

    pub(crate) fn remove(&mut self, path: &str) -> Option<Arc<Node>> {
        let shard = &mut self.shards[Self::shard_of(path)];
        if !shard.contains_key(path) {
            return None;
        }
        let map = Arc::make_mut(shard);
        let removed = map.remove(path);
        self.len -= usize::from(removed.is_some());
        // Give back the room of a shard that emptied out (a hash map never
        // shrinks by itself): after an ephemeral-heavy run the tree's
        // memory returns, not just its nodes'.
        if map.capacity() > 64 && map.capacity() > 4 * map.len() {
            map.shrink_to(2 * map.len());
        }
        removed
    }

    /// Every (path, node), in no particular order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, &Node)> {
        self.shards
            .iter()
            .flat_map(|s| s.iter().map(|(p, n)| (&**p, &**n)))
    }
}

impl PartialEq for NodeMap {
    fn eq(&self, other: &NodeMap) -> bool {
        self.len == other.len && self.iter().all(|(p, n)| other.get(p) == Some(n))
    }
}

impl Eq for NodeMap {}

impl std::fmt::Debug for NodeMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zab_core::Zxid;

    fn node(data: &'static [u8]) -> Node {
        Node::new(
            super::super::NodeKind::Persistent,
            0,
            Box::from(data),
            Zxid(1),
            0,
            super::super::open_acl(),
        )
    }

    #[test]
    fn a_clone_keeps_what_the_original_changes_after_it() {
        let mut map = NodeMap::new();
        for k in 0..5_000 {
            map.insert(&format!("/n{k}"), node(b"before"));
        }
        let frozen = map.clone();
        for k in 0..2_500 {
            map.get_mut(&format!("/n{k}")).expect("present").data = Box::from(&b"after"[..]);
            map.remove(&format!("/n{}", 2_500 + k));
        }
        map.insert("/new", node(b"new"));
        assert_eq!((frozen.len(), map.len()), (5_000, 2_501));
        assert!(frozen.iter().all(|(_, n)| &*n.data == b"before"));
        assert_eq!(map.get("/n0").map(|n| &*n.data), Some(&b"after"[..]));
        assert!(frozen.get("/new").is_none() && map.get("/n4999").is_none());
        assert_ne!(frozen, map);
    }

    #[test]
    fn len_counts_inserts_replacements_and_removals() {
        let mut map = NodeMap::new();
        map.insert("/a", node(b""));
        map.insert("/a", node(b"x"));
        map.insert("/b", node(b""));
        assert_eq!(map.len(), 2);
        assert!(map.remove("/a").is_some() && map.remove("/a").is_none());
        assert_eq!(map.len(), 1);
        assert!(map.get_mut("/a").is_none());
        assert_eq!(map.iter().count(), 1);
    }
}
