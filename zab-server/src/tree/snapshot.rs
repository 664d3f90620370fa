//! The tree as snapshot bytes: canonical (one encoding per tree, so two
//! replicas in the same state write identical bytes) and versioned. The
//! storage layer's snapshot file adds the header and checksum.
//!
//! ```text
//! snapshot := "ZTRE" version:u8 (=2) last_applied:u64
//!             session_count:u32 (session:u64 timeout_ms:u32)*   ascending ids
//!             node_count:u32 node*                              ascending paths, root first
//! node     := path data czxid:u64 mzxid:u64 pzxid:u64 ctime_ms:i64 mtime_ms:i64
//!             version:i32 cversion:i32 child_creates:i32 kind ephemeral_owner:u64
//!             aversion:i32 acl_index:u32 [acl]
//! acl      := count:u32 (perms:u8 scheme id)*
//! ```
//!
//! ACL lists are numbered by first appearance: a node whose `acl_index`
//! equals the number of lists seen so far introduces a new list, written
//! right after it; any smaller index refers back. A million nodes with the
//! open ACL cost 8 bytes each, and every distinct list is written once.
//! Version 1 (before ACLs) still decodes: every node open, aversion 0.
//!
//! Paths sort bytewise, so a parent always precedes its children. Children
//! lists, child counts, the ephemerals index and the container/TTL index are
//! not stored: they are rebuilt, and so cannot disagree with the nodes.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::Arc;

use bytes::BufMut;
use zab_core::Zxid;
use zab_proto::Acl;

use super::data_tree::DataTree;
use super::node_map::NodeMap;
use super::path::{self, ROOT};
use super::wire::{put_acls, put_bytes, put_kind, Malformed, Reader};
use super::znode::{open_acl, ChildCounters, Node, NodeKind};
use crate::acl::AclRef;

/// The snapshot format version written after the magic.
pub const SNAPSHOT_FORMAT_VERSION: u8 = 2;

const MAGIC: &[u8; 4] = b"ZTRE";
const SESSION_BYTES: usize = 8 + 4;
/// The smallest encoded node of version 1: empty path and data, a
/// one-byte kind. Version 2 adds the aversion and the ACL index.
const NODE_BYTES_MIN: usize = 4 + 4 + 3 * 8 + 2 * 8 + 3 * 4 + 1 + 8;

/// About what a snapshot of `nodes` nodes whose paths and data take
/// `data_bytes`, and of `sessions` sessions, encodes to (ACLs aside).
pub(crate) fn encoded_bytes_estimate(nodes: usize, data_bytes: u64, sessions: usize) -> u64 {
    (32 + sessions * SESSION_BYTES + nodes * (NODE_BYTES_MIN + 8)) as u64 + data_bytes
}

/// Snapshot bytes that are not a valid tree: `offset` is where the failed
/// check looked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SnapshotDecodeError {
    pub offset: usize,
    pub reason: &'static str,
}

impl fmt::Display for SnapshotDecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "tree snapshot is invalid at byte {}: {}",
            self.offset, self.reason
        )
    }
}

impl std::error::Error for SnapshotDecodeError {}

/// A tree frozen at one zxid for its snapshot. Taking one is O(1) in the
/// number of nodes (the node map is sharded copy-on-write: see `node_map.rs`), and it is
/// `Send`, so it is serialized on another thread while the tree it came from
/// goes on applying transactions.
#[derive(Clone, Debug)]
pub struct FrozenTree {
    nodes: NodeMap,
    sessions: HashMap<u64, u32>,
    last_applied: Zxid,
}

impl FrozenTree {
    /// The frozen nodes.
    pub(super) fn nodes(&self) -> &NodeMap {
        &self.nodes
    }

    /// How many nodes the frozen tree holds.
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// The canonical snapshot of the tree as it was when frozen.
    pub fn serialize(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.serialize_into(&mut out);
        out
    }

    /// Appends the canonical snapshot to `out` (reserving what it needs
    /// once), so a caller that frames it copies nothing.
    pub fn serialize_into(&self, out: &mut Vec<u8>) {
        // With no chunk limit nothing is flushed, so nothing can fail.
        let never = |_: &mut Vec<u8>| -> Result<(), std::convert::Infallible> { Ok(()) };
        let _ = self.serialize_with(out, None, never);
    }

    /// Streams the canonical snapshot through `out`: whenever it holds
    /// `chunk` bytes or more, `flush` takes them (and must leave `out`
    /// empty), so a tree of any size is written through one buffer of about
    /// `chunk` bytes. Returns the snapshot's length, or `flush`'s error.
    pub fn serialize_chunked<E>(
        &self,
        out: &mut Vec<u8>,
        chunk: usize,
        flush: impl FnMut(&mut Vec<u8>) -> Result<(), E>,
    ) -> Result<u64, E> {
        self.serialize_with(out, Some(chunk), flush)
    }

    /// Without a `chunk`, everything goes into `out`, reserved once.
    fn serialize_with<E>(
        &self,
        out: &mut Vec<u8>,
        chunk: Option<usize>,
        mut flush: impl FnMut(&mut Vec<u8>) -> Result<(), E>,
    ) -> Result<u64, E> {
        // Bytes of this snapshot flushed so far, and where its unflushed
        // part starts in `out` (after what the caller put there first).
        let (mut flushed, mut from) = (0u64, out.len());
        let mut sessions: Vec<(u64, u32)> = self.sessions.iter().map(|(&s, &t)| (s, t)).collect();
        sessions.sort_unstable();
        let mut nodes: Vec<(&str, &Node)> = self.nodes.iter().collect();
        nodes.sort_unstable_by(|a, b| a.0.cmp(b.0));

        if chunk.is_none() {
            let held: usize = nodes.iter().map(|(p, n)| p.len() + n.data.len()).sum();
            let estimate = encoded_bytes_estimate(nodes.len(), held as u64, sessions.len());
            out.reserve(usize::try_from(estimate).unwrap_or(0));
        }
        let chunk = chunk.unwrap_or(usize::MAX);
        out.put_slice(MAGIC);
        out.put_u8(SNAPSHOT_FORMAT_VERSION);
        out.put_u64(self.last_applied.0);
        out.put_u32(count(sessions.len()));
        for (session, timeout_ms) in sessions {
            out.put_u64(session);
            out.put_u32(timeout_ms);
        }
        out.put_u32(count(nodes.len()));
        let mut acl_index = AclIndex::default();
        for (path, node) in nodes {
            put_node(out, path, node);
            acl_index.put(out, &node.acl);
            if out.len() >= chunk {
                flushed += (out.len() - from) as u64;
                flush(out)?;
                debug_assert!(out.is_empty(), "flush leaves the buffer empty");
                from = 0;
            }
        }
        Ok(flushed + (out.len() - from) as u64)
    }
}

/// A node as the snapshot stores it, all but its ACL (which follows, as
/// an index here, in full in the digest).
pub(super) fn put_node(out: &mut impl BufMut, path: &str, node: &Node) {
    put_bytes(out, path.as_bytes());
    put_bytes(out, &node.data);
    let counters = node.child_counters();
    out.put_u64(node.czxid.0);
    out.put_u64(node.mzxid.0);
    out.put_u64(counters.pzxid.0);
    out.put_i64(node.ctime_ms);
    out.put_i64(node.mtime_ms);
    out.put_i32(node.version);
    out.put_i32(counters.cversion);
    out.put_i32(counters.child_creates);
    put_kind(out, node.kind());
    out.put_u64(node.ephemeral_owner());
    out.put_i32(node.aversion);
}

/// Numbers ACL lists by first appearance while a snapshot is written: by
/// allocation first (one hash of a pointer per node), by content when an
/// allocation is new, so equal lists get one number whatever shares them.
#[derive(Default)]
struct AclIndex<'a> {
    by_ptr: HashMap<*const Vec<Acl>, u32>,
    by_content: HashMap<&'a Vec<Acl>, u32>,
}

impl<'a> AclIndex<'a> {
    fn put(&mut self, out: &mut Vec<u8>, acl: &'a AclRef) {
        let ptr = Arc::as_ptr(acl);
        if let Some(&i) = self.by_ptr.get(&ptr) {
            out.put_u32(i);
            return;
        }
        let next = count(self.by_content.len());
        let i = *self.by_content.entry(&**acl).or_insert(next);
        self.by_ptr.insert(ptr, i);
        out.put_u32(i);
        if i == next {
            put_acls(out, acl);
        }
    }
}

impl DataTree {
    /// The tree as it is now, for a snapshot written later or elsewhere.
    pub fn freeze(&self) -> FrozenTree {
        FrozenTree {
            nodes: self.nodes.clone(),
            sessions: self.sessions.clone(),
            last_applied: self.last_applied,
        }
    }

    /// The canonical snapshot of this tree.
    pub fn serialize(&self) -> Vec<u8> {
        self.freeze().serialize()
    }

    /// Rebuilds a tree from `serialize`'s bytes, checking every structural
    /// invariant on the way (never panics, never trusts a count).
    pub fn deserialize(bytes: &[u8]) -> Result<DataTree, SnapshotDecodeError> {
        decode(&mut Reader::new(bytes)).map_err(|m| SnapshotDecodeError {
            offset: m.offset,
            reason: m.reason,
        })
    }
}

/// Counts are bounded by memory long before 4 billion; saturating keeps
/// serialize infallible, and a saturated count fails to decode.
fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn decode(r: &mut Reader<'_>) -> Result<DataTree, Malformed> {
    r.magic(MAGIC)?;
    let version = r.u8()?;
    if version != 1 && version != SNAPSHOT_FORMAT_VERSION {
        return Err(Malformed {
            offset: MAGIC.len(),
            reason: "unknown snapshot format version",
        });
    }
    let last_applied = Zxid(r.u64()?);

    let session_count = r.count(SESSION_BYTES)?;
    let mut sessions = HashMap::with_capacity(session_count);
    let mut previous = 0u64;
    for _ in 0..session_count {
        let at = r.offset();
        let session = r.u64()?;
        if session <= previous {
            // Zero is never a session; ids ascend strictly.
            return Err(Malformed {
                offset: at,
                reason: "session ids not ascending",
            });
        }
        previous = session;
        sessions.insert(session, r.u32()?);
    }

    let node_count = r.count(NODE_BYTES_MIN)?;
    let mut tree = DataTree {
        nodes: NodeMap::with_capacity(node_count),
        sessions,
        ephemerals: HashMap::new(),
        expirable: Default::default(),
        last_applied,
        data_bytes: 0,
        ephemeral_count: 0,
        acls: Default::default(),
    };
    let mut lists: Vec<AclRef> = Vec::new();
    let mut seen: HashSet<AclRef> = HashSet::new();
    let mut previous: Option<String> = None;
    for _ in 0..node_count {
        let at = r.offset();
        let (path, mut node) = decode_node(r)?;
        if version >= 2 {
            node.aversion = r.i32()?;
            node.acl = decode_acl_ref(r, (&mut lists, &mut seen), &mut tree)?;
        }
        let bad = |reason| Malformed { offset: at, reason };
        let in_order = match &previous {
            None => path == ROOT,
            Some(previous) => path.as_str() > previous.as_str(),
        };
        if !in_order {
            return Err(bad("paths not ascending from the root"));
        }
        path::validate(&path).map_err(|_| bad("invalid path"))?;
        insert(&mut tree, &path, node).map_err(bad)?;
        previous = Some(path);
    }
    if previous.is_none() {
        return Err(r.error("no root node"));
    }
    r.finish()?;
    Ok(tree)
}

/// A node's ACL index, and the list it introduces if it is a new one. A new
/// list must differ from every earlier one (the encoding is canonical).
fn decode_acl_ref(
    r: &mut Reader<'_>,
    (lists, seen): (&mut Vec<AclRef>, &mut HashSet<AclRef>),
    tree: &mut DataTree,
) -> Result<AclRef, Malformed> {
    let at = r.offset();
    let index = r.u32()? as usize;
    if let Some(known) = lists.get(index) {
        return Ok(known.clone());
    }
    if index != lists.len() {
        return Err(Malformed {
            offset: at,
            reason: "ACL index refers to no list",
        });
    }
    let list = tree.acls.intern(&Arc::new(r.acls()?));
    if !seen.insert(list.clone()) {
        return Err(Malformed {
            offset: at,
            reason: "an ACL list written twice",
        });
    }
    lists.push(list.clone());
    Ok(list)
}

fn decode_node(r: &mut Reader<'_>) -> Result<(String, Node), Malformed> {
    let path = r.string()?;
    let data = Box::from(r.slice()?);
    let czxid = Zxid(r.u64()?);
    let mzxid = Zxid(r.u64()?);
    let pzxid = Zxid(r.u64()?);
    let ctime_ms = r.i64()?;
    let mtime_ms = r.i64()?;
    let version = r.i32()?;
    let cversion = r.i32()?;
    let child_creates = r.i32()?;
    let kind = r.kind()?;
    let owner_at = r.offset();
    let owner = r.u64()?;
    if (kind == NodeKind::Ephemeral) != (owner != 0) || kind == (NodeKind::Ttl { ttl_ms: 0 }) {
        return Err(Malformed {
            offset: owner_at,
            reason: "node kind and owner disagree",
        });
    }
    let mut node = Node::new(kind, owner, data, czxid, ctime_ms, open_acl());
    node.mzxid = mzxid;
    node.mtime_ms = mtime_ms;
    node.version = version;
    node.set_child_counters(ChildCounters {
        pzxid,
        cversion,
        child_creates,
    });
    Ok((path, node))
}

/// Adds a decoded node under its (already decoded) parent, with its indexes.
fn insert(tree: &mut DataTree, path: &str, node: Node) -> Result<(), &'static str> {
    match path::split(path) {
        None => {
            if node.kind() != NodeKind::Persistent {
                return Err("the root is not persistent");
            }
        }
        Some((parent_path, name)) => {
            let parent = tree
                .node_mut(parent_path)
                .ok_or("a node without its parent")?;
            if parent.is_ephemeral() {
                return Err("a child of an ephemeral node");
            }
            parent.restore_child(name);
            tree.count_descendant(parent_path, true);
        }
    }
    let owner = node.ephemeral_owner();
    if owner != 0 {
        if !tree.sessions.contains_key(&owner) {
            return Err("an ephemeral node of a session that is not open");
        }
        tree.ephemeral_count += 1;
        tree.ephemerals
            .entry(owner)
            .or_default()
            .insert(path.to_owned());
    }
    if node.is_expirable() {
        tree.expirable.insert(path.to_owned());
    }
    tree.data_bytes += (path.len() + node.data.len()) as u64 + crate::acl::charge(&node.acl);
    tree.nodes.insert(path, node);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree::{Request, Txn};
    use bytes::Bytes;
    use zab_core::Epoch;

    /// A tree with every kind of node, sessions, deletes and data.
    fn build(tree: &mut DataTree) {
        let mut counter = 0;
        let mut run = |tree: &mut DataTree, session: u64, request: Request| {
            let txn = tree
                .prepare(session, &request)
                .unwrap_or_else(|e| panic!("{request:?}: {e:?}"));
            counter += 1;
            let applied = tree.apply(
                Zxid::new(Epoch(2), counter),
                i64::from(counter) * 1_000,
                &txn,
            );
            applied.unwrap_or_else(|e| panic!("{e}"));
        };
        let create = |path: &str, data: &'static [u8], kind, sequential| Request::Create {
            path: path.into(),
            data: Bytes::from_static(data),
            kind,
            sequential,
            acl: None,
        };
        run(tree, 11, Request::CreateSession { timeout_ms: 4_000 });
        run(tree, 5, Request::CreateSession { timeout_ms: 6_000 });
        run(tree, 9, Request::CreateSession { timeout_ms: 9_000 });
        run(
            tree,
            11,
            create("/app", b"config", NodeKind::Persistent, false),
        );
        run(
            tree,
            11,
            create("/app/q-", b"1", NodeKind::Persistent, true),
        );
        run(
            tree,
            11,
            create("/app/q-", b"2", NodeKind::Persistent, true),
        );
        run(
            tree,
            5,
            create("/app/lock-", b"", NodeKind::Ephemeral, true),
        );
        run(tree, 11, create("/c", b"", NodeKind::Container, false));
        run(tree, 11, create("/c/x", b"", NodeKind::Persistent, false));
        run(
            tree,
            11,
            create("/t", b"ttl", NodeKind::Ttl { ttl_ms: 60_000 }, false),
        );
        run(tree, 11, create("/app-b", b"", NodeKind::Persistent, false));
        run(
            tree,
            9,
            create("/e9", b"gone soon", NodeKind::Ephemeral, false),
        );
        run(
            tree,
            11,
            Request::SetData {
                path: "/app".into(),
                data: Bytes::from_static(b"config v2"),
                version: 0,
            },
        );
        run(
            tree,
            11,
            Request::Delete {
                path: "/app/q-0000000000".into(),
                version: -1,
            },
        );
        run(tree, 9, Request::CloseSession);
    }

    fn built() -> DataTree {
        let mut tree = DataTree::new();
        build(&mut tree);
        tree
    }

    #[test]
    fn round_trip_gives_an_equal_tree_and_the_same_bytes() {
        let tree = built();
        let bytes = tree.serialize();
        let back = DataTree::deserialize(&bytes).expect("valid snapshot");
        assert_eq!(back, tree);
        assert_eq!(back.serialize(), bytes);
        assert_eq!(back.ephemerals(5), vec!["/app/lock-0000000002"]);
        assert_eq!(
            back.children("/app").map(|c| c.0),
            Some(vec![
                "lock-0000000002".to_owned(),
                "q-0000000001".to_owned()
            ])
        );
        assert_eq!(back.sessions(), vec![(5, 6_000), (11, 4_000)]);
        assert_eq!(back.last_applied_zxid(), Zxid::new(Epoch(2), 15));
        // The rebuilt indexes work: containers/TTL and ephemerals.
        assert_eq!(back.expired_candidates(i64::MAX), vec!["/t"]);
        // The data size, kept as the tree changed, is what the nodes hold.
        let held: usize = tree.nodes.iter().map(|(p, n)| p.len() + n.data.len()).sum();
        assert_eq!(
            (tree.data_bytes(), back.data_bytes()),
            (held as u64, held as u64)
        );
        // So is the ephemeral count (session 9's went with its close).
        let ephemerals = tree.nodes.iter().filter(|(_, n)| n.ephemeral_owner() != 0);
        assert_eq!(
            (tree.ephemeral_count(), back.ephemeral_count()),
            (ephemerals.count(), 1)
        );
        let empty = DataTree::new();
        assert_eq!(DataTree::deserialize(&empty.serialize()), Ok(empty));
    }

    /// A snapshot written before ACLs (format 1, the same fields without
    /// aversion and ACL) restores to the same tree, every node open.
    #[test]
    fn format_1_snapshots_still_restore() {
        let tree = built();
        let mut v1 = Vec::new();
        v1.put_slice(MAGIC);
        v1.put_u8(1);
        v1.put_u64(tree.last_applied.0);
        let mut sessions = tree.sessions();
        sessions.sort_unstable();
        v1.put_u32(sessions.len() as u32);
        for (session, timeout_ms) in sessions {
            v1.put_u64(session);
            v1.put_u32(timeout_ms);
        }
        let mut nodes: Vec<(&str, &Node)> = tree.nodes.iter().collect();
        nodes.sort_unstable_by(|a, b| a.0.cmp(b.0));
        v1.put_u32(nodes.len() as u32);
        for (path, node) in nodes {
            put_bytes(&mut v1, path.as_bytes());
            put_bytes(&mut v1, &node.data);
            let counters = node.child_counters();
            for z in [node.czxid, node.mzxid, counters.pzxid] {
                v1.put_u64(z.0);
            }
            v1.put_i64(node.ctime_ms);
            v1.put_i64(node.mtime_ms);
            v1.put_i32(node.version);
            v1.put_i32(counters.cversion);
            v1.put_i32(counters.child_creates);
            put_kind(&mut v1, node.kind());
            v1.put_u64(node.ephemeral_owner());
        }
        let back = DataTree::deserialize(&v1).expect("a format 1 snapshot");
        assert_eq!(back, tree);
        assert!(back
            .nodes
            .iter()
            .all(|(_, n)| Arc::ptr_eq(&n.acl, &open_acl())));
        assert_eq!(back.serialize(), tree.serialize(), "written as format 2");
    }

    #[test]
    fn replicas_with_the_same_history_write_identical_bytes() {
        // Each HashMap has its own random hash seed, so iteration orders
        // differ between these trees; the bytes must not.
        let first = built().serialize();
        for _ in 0..8 {
            assert_eq!(built().serialize(), first);
        }
    }

    #[test]
    fn damage_is_an_error_never_a_panic() {
        let bytes = built().serialize();
        for cut in 0..bytes.len() {
            assert!(
                DataTree::deserialize(&bytes[..cut]).is_err(),
                "cut at {cut}"
            );
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(
            DataTree::deserialize(&longer),
            Err(SnapshotDecodeError {
                offset: bytes.len(),
                reason: "trailing bytes"
            })
        );
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..20_000 {
            let mut damaged = bytes.clone();
            for _ in 0..1 + next() % 4 {
                let at = (next() as usize) % damaged.len();
                damaged[at] = next() as u8;
            }
            // Whatever still decodes is a valid tree, and canonical.
            if let Ok(tree) = DataTree::deserialize(&damaged) {
                assert_eq!(tree.serialize(), damaged);
            }
        }
    }

    #[test]
    fn structural_lies_are_refused() {
        let mut tree = built();
        // An orphan: remove a parent behind the tree's back.
        tree.nodes.remove("/c");
        assert_eq!(
            DataTree::deserialize(&tree.serialize()).map_err(|e| e.reason),
            Err("a node without its parent")
        );
        let mut tree = built();
        tree.sessions.remove(&5);
        assert_eq!(
            DataTree::deserialize(&tree.serialize()).map_err(|e| e.reason),
            Err("an ephemeral node of a session that is not open")
        );
        let mut tree = built();
        tree.nodes.remove("/");
        assert_eq!(
            DataTree::deserialize(&tree.serialize()).map_err(|e| e.reason),
            Err("paths not ascending from the root")
        );
        // The empty tree's snapshot cut after its header (magic, version,
        // last applied, no sessions, the node count), the count zeroed.
        let mut no_nodes = DataTree::new().serialize();
        no_nodes.truncate(4 + 1 + 8 + 4 + 4);
        let n = no_nodes.len();
        no_nodes[n - 4..].copy_from_slice(&0u32.to_be_bytes());
        assert_eq!(
            DataTree::deserialize(&no_nodes).map_err(|e| e.reason),
            Err("no root node")
        );
        let mut txn_not_snapshot = Txn::Noop.to_payload(&Default::default());
        txn_not_snapshot.resize(64, 0);
        assert_eq!(
            DataTree::deserialize(&txn_not_snapshot).map_err(|e| e.reason),
            Err("bad magic")
        );
    }
}
