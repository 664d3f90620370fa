//! One znode: its data, its stat fields and its children's names.

use std::sync::{Arc, OnceLock};

use zab_core::Zxid;
use zab_proto::{Acl, Stat};

use crate::acl::AclRef;

pub(crate) use super::children::Children;

/// The open ACL (`world:anyone:cdrwa`), one allocation shared by every node
/// that has it: the root, and every node made by a plain Create.
pub fn open_acl() -> AclRef {
    static OPEN: OnceLock<AclRef> = OnceLock::new();
    OPEN.get_or_init(|| Arc::new(Acl::open_unsafe())).clone()
}

/// The longest TTL accepted, in ms: ZooKeeper's limit (it keeps TTLs in 40
/// bits), so a TTL valid there is valid here and the other way round.
pub const TTL_MS_MAX: u64 = (1 << 40) - 1;

/// What a znode is, fixed when it is created. Ephemeral and TTL are exclusive
/// by construction (ZooKeeper refuses an ephemeral TTL node). Whether a create
/// is sequential is not a kind: it only decides the name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NodeKind {
    Persistent,
    /// Owned by a session; removed when it closes; cannot have children.
    Ephemeral,
    /// Removed by the leader some time after its last child is deleted.
    Container,
    /// Removed by the leader once unmodified for `ttl_ms` and childless.
    Ttl {
        ttl_ms: u64,
    },
}

/// A znode as stored. Fields are laid out for size: the node holds its own
/// path (so a node-map slot is one pointer, and copying a shard for
/// copy-on-write copies pointers, not paths); what a persistent leaf, by
/// far the most common znode, does not need (child names and counters,
/// the kind of an ephemeral, container or TTL node and its owner or TTL)
/// is boxed apart in one word; and the data is a boxed slice (two words
/// where `Bytes` takes four: a read copies it into its reply, which the
/// frame encoder copies anyway). 88 bytes: with the node map's one-count
/// `Arc`, it fits jemalloc's 96-byte class.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Node {
    pub(crate) data: Box<[u8]>,
    /// The full path: set by the node map when the node is inserted.
    pub(super) path: Box<str>,
    pub(crate) czxid: Zxid,
    pub(crate) mzxid: Zxid,
    pub(crate) ctime_ms: i64,
    pub(crate) mtime_ms: i64,
    pub(crate) version: i32,
    /// setAcl calls on the node.
    pub(crate) aversion: i32,
    /// Child names, the child counters and the kind when not persistent;
    /// absent for a persistent node that never had a child.
    extra: Option<Box<Extra>>,
    /// Who may do what (shared with every node whose list is the same).
    pub(crate) acl: AclRef,
}

/// What a node that is not a persistent leaf carries besides (48 bytes:
/// jemalloc's 48-byte class). A node that never had a child has no child
/// counters to keep: its `pzxid` is its `czxid` and both counts are 0.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Extra {
    special: Option<Special>,
    children: Children,
    pzxid: Zxid,
    cversion: i32,
    /// Children ever created here: the next sequential suffix. Unlike
    /// `cversion` it does not count deletes (see the module docs).
    child_creates: i32,
    /// Nodes below this one, at any depth: kept as nodes come and go (one
    /// step per ancestor), so GetAllChildrenNumber reads it in O(1) instead
    /// of walking a subtree on the thread that serves everyone.
    descendants: u64,
}

/// A node's child counters: what its stat reports of its children's
/// history, and the next sequential suffix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ChildCounters {
    /// The zxid of the last change to the child list.
    pub(crate) pzxid: Zxid,
    /// Changes to the child list.
    pub(crate) cversion: i32,
    /// Children ever created here (not counting deletes).
    pub(crate) child_creates: i32,
}

impl ChildCounters {
    /// A node's counters before it has had a child.
    fn fresh(czxid: Zxid) -> ChildCounters {
        ChildCounters {
            pzxid: czxid,
            cversion: 0,
            child_creates: 0,
        }
    }
}

/// What a node that is not persistent carries besides.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Special {
    Ephemeral { owner: u64 },
    Container,
    Ttl { ttl_ms: u64 },
}

impl Node {
    /// A fresh node created at `zxid`. `ephemeral_owner` is used only when
    /// `kind` is `Ephemeral` (the caller checked they agree).
    pub(crate) fn new(
        kind: NodeKind,
        ephemeral_owner: u64,
        data: Box<[u8]>,
        zxid: Zxid,
        time_ms: i64,
        acl: AclRef,
    ) -> Node {
        let special = match kind {
            NodeKind::Persistent => None,
            NodeKind::Ephemeral => Some(Special::Ephemeral {
                owner: ephemeral_owner,
            }),
            NodeKind::Container => Some(Special::Container),
            NodeKind::Ttl { ttl_ms } => Some(Special::Ttl { ttl_ms }),
        };
        let extra = special.map(|special| {
            Box::new(Extra {
                special: Some(special),
                children: Children::default(),
                pzxid: zxid,
                cversion: 0,
                child_creates: 0,
                descendants: 0,
            })
        });
        Node {
            data,
            path: Box::default(),
            czxid: zxid,
            mzxid: zxid,
            ctime_ms: time_ms,
            mtime_ms: time_ms,
            version: 0,
            aversion: 0,
            extra,
            acl,
        }
    }

    /// The root: everything zero, as in ZooKeeper.
    pub(crate) fn root() -> Node {
        Node::new(
            NodeKind::Persistent,
            0,
            Box::default(),
            Zxid::ZERO,
            0,
            open_acl(),
        )
    }

    fn special(&self) -> Option<&Special> {
        self.extra.as_ref().and_then(|e| e.special.as_ref())
    }

    /// Child names (last segment only), sorted.
    pub(crate) fn children(&self) -> &Children {
        static NONE: Children = Children::new();
        self.extra.as_ref().map_or(&NONE, |e| &e.children)
    }

    /// The child counters (fresh ones for a node that never had a child).
    pub(crate) fn child_counters(&self) -> ChildCounters {
        self.extra.as_ref().map_or_else(
            || ChildCounters::fresh(self.czxid),
            |e| ChildCounters {
                pzxid: e.pzxid,
                cversion: e.cversion,
                child_creates: e.child_creates,
            },
        )
    }

    /// Sets the child counters (a restore); a node that never had a child
    /// gets no box for them.
    pub(crate) fn set_child_counters(&mut self, counters: ChildCounters) {
        if self.extra.is_none() && counters == ChildCounters::fresh(self.czxid) {
            return;
        }
        let extra = self.extra_mut();
        extra.pzxid = counters.pzxid;
        extra.cversion = counters.cversion;
        extra.child_creates = counters.child_creates;
    }

    fn extra_mut(&mut self) -> &mut Extra {
        let czxid = self.czxid;
        self.extra.get_or_insert_with(|| {
            Box::new(Extra {
                special: None,
                children: Children::default(),
                pzxid: czxid,
                cversion: 0,
                child_creates: 0,
                descendants: 0,
            })
        })
    }

    /// Nodes below this one, at any depth.
    pub(crate) fn descendants(&self) -> u64 {
        self.extra.as_ref().map_or(0, |e| e.descendants)
    }

    /// Counts a node created (`true`) or deleted somewhere below this one.
    pub(crate) fn count_descendant(&mut self, created: bool) {
        let extra = self.extra_mut();
        debug_assert!(created || extra.descendants > 0, "a count below zero");
        extra.descendants = if created {
            extra.descendants + 1
        } else {
            extra.descendants.saturating_sub(1)
        };
    }

    /// Records the child `name` created at `zxid`, the child list's change
    /// number becoming `cversion`; false if the child was there.
    pub(crate) fn add_child(&mut self, name: &str, zxid: Zxid, cversion: i32) -> bool {
        let extra = self.extra_mut();
        if !extra.children.insert(name) {
            return false;
        }
        extra.cversion = cversion;
        extra.child_creates = extra.child_creates.wrapping_add(1);
        extra.pzxid = zxid;
        true
    }

    /// Adds the child `name` to the set only, counters untouched (a
    /// restore, which sets them from the snapshot).
    pub(crate) fn restore_child(&mut self, name: &str) -> bool {
        self.extra_mut().children.insert(name)
    }

    /// Records the child `name` deleted at `zxid`; false if it was not
    /// there. The counters stay (a node that had children keeps its box);
    /// the last child frees the set of names.
    pub(crate) fn remove_child(&mut self, name: &str, zxid: Zxid) -> bool {
        let Some(extra) = &mut self.extra else {
            return false;
        };
        if !extra.children.remove(name) {
            return false;
        }
        extra.cversion = extra.cversion.wrapping_add(1);
        extra.pzxid = zxid;
        true
    }

    pub(crate) fn kind(&self) -> NodeKind {
        match self.special() {
            None => NodeKind::Persistent,
            Some(Special::Ephemeral { .. }) => NodeKind::Ephemeral,
            Some(Special::Container) => NodeKind::Container,
            Some(&Special::Ttl { ttl_ms }) => NodeKind::Ttl { ttl_ms },
        }
    }

    pub(crate) fn ephemeral_owner(&self) -> u64 {
        match self.special() {
            Some(&Special::Ephemeral { owner }) => owner,
            _ => 0,
        }
    }

    pub(crate) fn is_ephemeral(&self) -> bool {
        matches!(self.special(), Some(Special::Ephemeral { .. }))
    }

    /// Containers and TTL nodes: the ones `expired_candidates` looks at.
    pub(crate) fn is_expirable(&self) -> bool {
        matches!(
            self.special(),
            Some(Special::Container | Special::Ttl { .. })
        )
    }

    /// The node's stat as clients see it (REFERENCE §3): `ephemeral_owner`
    /// is 0 for containers and
    /// TTL nodes (unlike ZooKeeper, we do not encode them in that field).
    pub(crate) fn stat(&self) -> Stat {
        Stat {
            czxid: self.czxid.0,
            mzxid: self.mzxid.0,
            ctime: self.ctime_ms,
            mtime: self.mtime_ms,
            version: self.version,
            cversion: self.child_counters().cversion,
            aversion: self.aversion,
            ephemeral_owner: self.ephemeral_owner(),
            data_length: clamp_i32(self.data.len()),
            num_children: clamp_i32(self.children().len()),
            pzxid: self.child_counters().pzxid.0,
        }
    }
}

/// Counts that do not fit the wire's i32 are reported as i32::MAX; data is
/// limited far below that, and four billion children exhaust memory first.
fn clamp_i32(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_and_owner_round_trip_through_the_boxed_special_fields() {
        let z = Zxid(7);
        for (kind, owner, expected_owner) in [
            (NodeKind::Persistent, 0, 0),
            (NodeKind::Ephemeral, 0x42, 0x42),
            (NodeKind::Container, 0, 0),
            (NodeKind::Ttl { ttl_ms: 5_000 }, 0, 0),
        ] {
            let node = Node::new(kind, owner, Box::default(), z, 1, open_acl());
            assert_eq!(node.kind(), kind);
            assert_eq!(node.ephemeral_owner(), expected_owner);
            assert_eq!(node.stat().ephemeral_owner, expected_owner);
        }
    }

    #[test]
    fn node_stays_small() {
        // Memory per znode matters (benchmarks against ZooKeeper): with the
        // 8 bytes of its one-count `Arc`, a node (path and all) must stay
        // within jemalloc's 96-byte size class, and the box of a node that
        // is not a persistent leaf within 48; grow them only on purpose.
        assert!(
            std::mem::size_of::<Node>() <= 88,
            "{}",
            std::mem::size_of::<Node>()
        );
        assert!(std::mem::size_of::<Extra>() <= 48);
    }

    #[test]
    fn a_node_that_never_had_a_child_holds_no_box_and_one_that_had_keeps_its_counters() {
        let z = Zxid(7);
        let mut n = Node::new(NodeKind::Persistent, 0, Box::default(), z, 1, open_acl());
        assert!(n.extra.is_none());
        assert_eq!(n.child_counters(), ChildCounters::fresh(z));
        assert_eq!((n.stat().pzxid, n.stat().cversion), (7, 0));
        assert!(n.add_child("a", Zxid(8), 1) && !n.add_child("a", Zxid(9), 2));
        assert!(n.extra.is_some());
        assert_eq!(n.children().iter().collect::<Vec<_>>(), ["a"]);
        assert!(n.add_child("b", Zxid(10), 2));
        assert!(n.remove_child("a", Zxid(11)) && !n.remove_child("a", Zxid(12)));
        assert!(n.remove_child("b", Zxid(13)));
        // The names are gone; the counters are not: the stat still tells
        // of the children it had, and the next sequential suffix is 2.
        assert!(n.children().is_empty());
        let counters = ChildCounters {
            pzxid: Zxid(13),
            cversion: 4,
            child_creates: 2,
        };
        assert_eq!(n.child_counters(), counters);
        assert_eq!((n.stat().pzxid, n.stat().cversion), (13, 4));
        // A restore recreates the same node, and a fresh one stays unboxed.
        let mut r = Node::new(NodeKind::Persistent, 0, Box::default(), z, 1, open_acl());
        r.set_child_counters(counters);
        assert_eq!(r.child_counters(), counters);
        let mut fresh = Node::new(NodeKind::Persistent, 0, Box::default(), z, 1, open_acl());
        fresh.set_child_counters(ChildCounters::fresh(z));
        assert!(fresh.extra.is_none());
        // A container keeps its kind when its last child goes.
        let mut c = Node::new(NodeKind::Container, 0, Box::default(), z, 1, open_acl());
        assert!(c.add_child("a", Zxid(8), 1) && c.remove_child("a", Zxid(9)));
        assert_eq!(c.kind(), NodeKind::Container);
        assert!(c.children().is_empty());
    }
}
