//! A digest of the tree: SHA-256 over every node (path, data, stat, kind,
//! owner, ACL) in path order. Two trees have the same digest exactly when
//! their nodes are the same, whatever their sessions, their encoding, or
//! how their memory is laid out, so a backup, a restored data directory and
//! a live server can be compared byte for byte by one line of hex.

use std::fmt;

use sha2::{Digest as _, Sha256};

use super::snapshot::{put_node, FrozenTree};
use super::wire::put_acls;
use super::znode::Node;

/// Bumped if what the digest covers ever changes, so digests of different
/// definitions never compare equal by accident.
const LABEL: &[u8] = b"zab tree digest v1";

/// A tree's digest, shown as 64 hex digits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TreeDigest(pub [u8; 32]);

impl fmt::Display for TreeDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl FrozenTree {
    /// The digest of the frozen tree's nodes (a full pass: run it off any
    /// thread that must stay responsive).
    pub fn digest(&self) -> TreeDigest {
        let mut nodes: Vec<(&str, &Node)> = self.nodes().iter().collect();
        nodes.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let mut hasher = Sha256::new();
        hasher.update(LABEL);
        hasher.update((nodes.len() as u64).to_be_bytes());
        let mut buf = Vec::with_capacity(256);
        for (path, node) in nodes {
            buf.clear();
            // Every field a snapshot stores, so no difference a snapshot
            // would carry escapes the digest.
            put_node(&mut buf, path, node);
            put_acls(&mut buf, &node.acl);
            hasher.update(&buf);
        }
        TreeDigest(hasher.finalize().into())
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use zab_core::Zxid;

    use crate::tree::{DataTree, Txn};

    fn create(path: &str, data: &[u8]) -> Txn {
        Txn::Create {
            path: path.into(),
            data: Bytes::copy_from_slice(data),
            ephemeral_owner: 0,
            kind: crate::tree::NodeKind::Persistent,
            parent_cversion: 1,
            acl: crate::tree::open_acl(),
        }
    }

    #[test]
    fn equal_trees_agree_and_any_difference_shows() {
        let build = |data: &[u8]| {
            let mut t = DataTree::new();
            assert!(t.apply(Zxid(1), 10, &create("/a", b"x")).is_ok());
            assert!(t.apply(Zxid(2), 11, &create("/a/b", data)).is_ok());
            t
        };
        let a = build(b"y");
        let same = build(b"y");
        assert_eq!(a.freeze().digest(), same.freeze().digest());
        // Restored from a snapshot, it is still the same tree.
        let restored = DataTree::deserialize(&a.serialize()).expect("restores");
        assert_eq!(a.freeze().digest(), restored.freeze().digest());
        // One byte of data differs.
        assert_ne!(a.freeze().digest(), build(b"z").freeze().digest());
        // A stat field differs (the same data written again bumps version).
        let mut written = build(b"y");
        let set = Txn::SetData {
            path: "/a/b".into(),
            data: Bytes::from_static(b"y"),
            version: 1,
        };
        assert!(written.apply(Zxid(3), 12, &set).is_ok());
        assert_ne!(a.freeze().digest(), written.freeze().digest());
        assert_eq!(a.freeze().digest().to_string().len(), 64);
    }
}
