//! Every znode by full path, in a map whose clone is cheap: a fixed number of
//! shards, each a hash table behind an `Arc`, holding shared nodes.
//!
//! A snapshot clones the map ([`NodeMap::clone`]: one reference count per
//! shard, whatever the tree's size) and is encoded on another thread while
//! the tree goes on changing. A change to a shard that a snapshot still
//! shares copies that shard first, then the node it changes: the copying a
//! snapshot costs is spread over the first write to each shard, never one
//! stall.
//!
//! A slot is one pointer: the path is the node's own field, so a shard's
//! copy is its pointers (about 1,000 reference counts at 1M znodes) and no
//! allocation, and a path is stored once. That takes a table that hashes
//! by a field of its values, hence `hashbrown::HashTable` rather than a
//! `HashMap` keyed by a second copy of the path.
//!
//! Why not a persistent map crate: measured at 1M znodes, a HAMT spent
//! about 180 B more per znode than this (sparse nodes near its leaves), and
//! one big hash map stalls for tens of ms whenever it doubles; shards grow
//! one at a time.

use std::hash::BuildHasher;
use std::sync::Arc;

use hashbrown::HashTable;
use std::collections::hash_map::RandomState;
/// A node's reference count: one word (no weak count), so a node and its
/// count fit jemalloc's 96-byte class.
use triomphe::Arc as NodeArc;

use super::znode::Node;

/// Shards: enough that copying one is short (about 1,000 entries at 1M
/// znodes), few enough that cloning the map is (a microsecond or so).
const SHARDS: usize = 1024;

type Shard = HashTable<NodeArc<Node>>;

#[derive(Clone)]
pub(crate) struct NodeMap {
    shards: Vec<Arc<Shard>>,
    len: usize,
    /// Keyed (SipHash): hostile paths cannot be made to collide within a
    /// shard. A clone shares the keys, as its tables were hashed with them.
    hasher: RandomState,
}

impl NodeMap {
    pub(crate) fn new() -> NodeMap {
        NodeMap::with_capacity(0)
    }

    /// Room for about `nodes` without growing (a restore knows its count):
    /// each shard gets the mean, so most never rehash on the way up, and
    /// none is sized beyond what its share would have grown it to.
    pub(crate) fn with_capacity(nodes: usize) -> NodeMap {
        NodeMap {
            shards: (0..SHARDS)
                .map(|_| Arc::new(Shard::with_capacity(nodes / SHARDS)))
                .collect(),
            len: 0,
            hasher: RandomState::new(),
        }
    }

    /// The shard of `path`: FNV-1a, fixed (a path always lands in the same
    /// shard) and cheap next to the table's own keyed hash, which keeps
    /// hostile paths from colliding within a shard. A separate function, so
    /// that within a shard the table's hash bits still vary.
    fn shard_of(path: &str) -> usize {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for &b in path.as_bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        (h as usize) % SHARDS
    }

    fn hash(&self, path: &str) -> u64 {
        self.hasher.hash_one(path)
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn get(&self, path: &str) -> Option<&Node> {
        self.shards[Self::shard_of(path)]
            .find(self.hash(path), |n| &*n.path == path)
            .map(|n| &**n)
    }

    pub(crate) fn contains_key(&self, path: &str) -> bool {
        self.get(path).is_some()
    }

    /// The shard holding `path` (whose hash is `hash`), to change: copied
    /// first if a clone of this map still shares it, but only if `path` is
    /// there (a miss copies nothing).
    fn shard_to_change<'a>(
        shards: &'a mut [Arc<Shard>],
        path: &str,
        hash: u64,
    ) -> Option<&'a mut Shard> {
        let shard = &mut shards[Self::shard_of(path)];
        shard.find(hash, |n| &*n.path == path)?;
        Some(Arc::make_mut(shard))
    }

    /// The node to change in place: its shard and then the node itself are
    /// copied first if a clone of this map still shares them.
    pub(crate) fn get_mut(&mut self, path: &str) -> Option<&mut Node> {
        let hash = self.hash(path);
        Self::shard_to_change(&mut self.shards, path, hash)?
            .find_mut(hash, |n| &*n.path == path)
            .map(NodeArc::make_mut)
    }

    /// Inserts or replaces the node at `path`.
    pub(crate) fn insert(&mut self, path: &str, mut node: Node) {
        node.path = Box::from(path);
        let hash = self.hash(path);
        let NodeMap {
            shards,
            len,
            hasher,
        } = self;
        let shard = Arc::make_mut(&mut shards[Self::shard_of(path)]);
        match shard.find_mut(hash, |n| &*n.path == path) {
            Some(slot) => *slot = NodeArc::new(node),
            None => {
                shard.insert_unique(hash, NodeArc::new(node), |n| hasher.hash_one(&*n.path));
                *len += 1;
            }
        }
    }

    pub(crate) fn remove(&mut self, path: &str) -> Option<NodeArc<Node>> {
        let hash = self.hash(path);
        let NodeMap {
            shards,
            len,
            hasher,
        } = self;
        let table = Self::shard_to_change(shards, path, hash)?;
        let (removed, _) = table.find_entry(hash, |n| &*n.path == path).ok()?.remove();
        *len -= 1;
        // Give back the room of a shard that emptied out (a hash table
        // never shrinks by itself): after an ephemeral-heavy run the tree's
        // memory returns, not just its nodes'.
        if table.capacity() > 64 && table.capacity() > 4 * table.len() {
            table.shrink_to(2 * table.len(), |n| hasher.hash_one(&*n.path));
        }
        Some(removed)
    }

    /// Every (path, node), in no particular order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, &Node)> {
        self.shards
            .iter()
            .flat_map(|s| s.iter().map(|n| (&*n.path, &**n)))
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

    /// `/n0` .. `/n4999`, each holding `data`.
    fn filled(data: &'static [u8]) -> NodeMap {
        let mut map = NodeMap::new();
        for k in 0..5_000 {
            map.insert(&format!("/n{k}"), node(data));
        }
        map
    }

    #[test]
    fn a_clone_keeps_what_the_original_changes_after_it() {
        let mut map = filled(b"before");
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
    fn a_shard_copied_for_a_change_shares_every_other_node() {
        let mut map = filled(b"v");
        let frozen = map.clone();
        map.get_mut("/n0").expect("present").version = 1;
        let shard = NodeMap::shard_of("/n0");
        let (live, old) = (&map.shards[shard], &frozen.shards[shard]);
        assert!(!Arc::ptr_eq(live, old), "the changed shard was copied");
        assert!(live.len() > 1);
        for n in live.iter() {
            let before = old
                .find(frozen.hash(&n.path), |o| o.path == n.path)
                .expect("same paths");
            // Only the changed node is a new allocation; the copy holds the
            // others by reference, and holds each path once, in its node.
            assert_eq!(NodeArc::ptr_eq(n, before), &*n.path != "/n0", "{}", n.path);
        }
        assert_eq!(frozen.get("/n0").map(|n| n.version), Some(0));
        assert_eq!(map.get("/n0").map(|n| n.version), Some(1));
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
