//! Watches of the clients connected to this server (REFERENCE §5).
//!
//! One-shot watches: `exists` arms created/deleted/data-changed, `get` arms
//! deleted/data-changed, `children` arms deleted/children-changed; each fires
//! once and is gone. Persistent watches stay armed; recursive ones cover the
//! whole subtree (and, as in ZooKeeper, do not report children-changed, which
//! their created/deleted events already convey). Watches belong to a
//! connection's session and are fired in zxid order as changes are applied,
//! before the reply that carries the change's zxid.

use std::collections::{BTreeMap, BTreeSet};

use zab_proto::{AddWatchMode, WatchEventKind, WatcherKind};

use crate::tree::{Change, ChangeKind};

/// Whoever holds a watch: a session on this server.
pub type Watcher = u64;

#[derive(Debug, Default)]
pub struct Watches {
    data: BTreeMap<String, BTreeSet<Watcher>>,
    exists: BTreeMap<String, BTreeSet<Watcher>>,
    child: BTreeMap<String, BTreeSet<Watcher>>,
    persistent: BTreeMap<String, BTreeSet<Watcher>>,
    recursive: BTreeMap<String, BTreeSet<Watcher>>,
}

/// Which one-shot watch a read arms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OneShot {
    Data,
    Exists,
    Child,
}

impl Watches {
    pub fn arm(&mut self, kind: OneShot, path: &str, who: Watcher) {
        let map = match kind {
            OneShot::Data => &mut self.data,
            OneShot::Exists => &mut self.exists,
            OneShot::Child => &mut self.child,
        };
        map.entry(path.to_string()).or_default().insert(who);
    }

    pub fn add(&mut self, mode: AddWatchMode, path: &str, who: Watcher) {
        let map = match mode {
            AddWatchMode::Persistent => &mut self.persistent,
            AddWatchMode::PersistentRecursive => &mut self.recursive,
        };
        map.entry(path.to_string()).or_default().insert(who);
    }

    /// Removes `who`'s watches of `kind` on `path`; whether any existed.
    pub fn remove(&mut self, kind: WatcherKind, path: &str, who: Watcher) -> bool {
        let maps: Vec<&mut BTreeMap<String, BTreeSet<Watcher>>> = match kind {
            WatcherKind::Children => vec![&mut self.child],
            WatcherKind::Data => vec![&mut self.data, &mut self.exists],
            WatcherKind::Any => vec![&mut self.data, &mut self.exists, &mut self.child],
            WatcherKind::Persistent => vec![&mut self.persistent],
            WatcherKind::PersistentRecursive => vec![&mut self.recursive],
        };
        let mut found = false;
        for map in maps {
            if let Some(set) = map.get_mut(path) {
                found |= set.remove(&who);
                if set.is_empty() {
                    map.remove(path);
                }
            }
        }
        found
    }

    /// Drops every watch of `who` (its session ended).
    pub fn forget(&mut self, who: Watcher) {
        for map in [
            &mut self.data,
            &mut self.exists,
            &mut self.child,
            &mut self.persistent,
            &mut self.recursive,
        ] {
            map.retain(|_, set| {
                set.remove(&who);
                !set.is_empty()
            });
        }
    }

    /// Watches held by `who`, for re-registration elsewhere.
    pub fn count(&self, who: Watcher) -> usize {
        [
            &self.data,
            &self.exists,
            &self.child,
            &self.persistent,
            &self.recursive,
        ]
        .iter()
        .map(|m| m.values().filter(|s| s.contains(&who)).count())
        .sum()
    }

    /// The events one change fires, disarming the one-shot watches it used.
    pub fn fire(&mut self, change: &Change) -> Vec<(Watcher, WatchEventKind, String)> {
        let path = change.path.as_str();
        let (kind, one_shot): (
            WatchEventKind,
            Vec<&mut BTreeMap<String, BTreeSet<Watcher>>>,
        ) = match change.kind {
            ChangeKind::Created => (WatchEventKind::NodeCreated, vec![&mut self.exists]),
            ChangeKind::Deleted => (
                WatchEventKind::NodeDeleted,
                vec![&mut self.data, &mut self.exists, &mut self.child],
            ),
            ChangeKind::DataChanged => (
                WatchEventKind::NodeDataChanged,
                vec![&mut self.data, &mut self.exists],
            ),
            ChangeKind::ChildrenChanged => {
                (WatchEventKind::NodeChildrenChanged, vec![&mut self.child])
            }
        };
        let mut who = BTreeSet::new();
        for map in one_shot {
            if let Some(set) = map.remove(path) {
                who.extend(set);
            }
        }
        if let Some(set) = self.persistent.get(path) {
            who.extend(set.iter().copied());
        }
        if change.kind != ChangeKind::ChildrenChanged {
            for (prefix, set) in &self.recursive {
                if covers(prefix, path) {
                    who.extend(set.iter().copied());
                }
            }
        }
        who.into_iter()
            .map(|w| (w, kind, path.to_string()))
            .collect()
    }
}

/// Whether a recursive watch on `prefix` covers `path`.
fn covers(prefix: &str, path: &str) -> bool {
    prefix == "/"
        || path == prefix
        || (path.starts_with(prefix) && path.as_bytes().get(prefix.len()) == Some(&b'/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(path: &str, kind: ChangeKind) -> Change {
        Change {
            path: path.to_string(),
            kind,
        }
    }

    #[test]
    fn one_shot_watches_fire_once_and_persistent_ones_stay() {
        let mut w = Watches::default();
        w.arm(OneShot::Data, "/a", 1);
        w.arm(OneShot::Exists, "/a", 2);
        w.add(AddWatchMode::Persistent, "/a", 3);
        let fired = w.fire(&change("/a", ChangeKind::DataChanged));
        let who: Vec<_> = fired.iter().map(|(w, _, _)| *w).collect();
        assert_eq!(who, vec![1, 2, 3]);
        assert!(fired
            .iter()
            .all(|(_, k, _)| *k == WatchEventKind::NodeDataChanged));
        let again: Vec<_> = w
            .fire(&change("/a", ChangeKind::DataChanged))
            .into_iter()
            .map(|e| e.0)
            .collect();
        assert_eq!(again, vec![3], "one-shot watches are gone");
    }

    #[test]
    fn recursive_watches_cover_the_subtree_but_not_siblings() {
        let mut w = Watches::default();
        w.add(AddWatchMode::PersistentRecursive, "/app", 7);
        assert_eq!(w.fire(&change("/app/x/y", ChangeKind::Created)).len(), 1);
        assert_eq!(w.fire(&change("/apple", ChangeKind::Created)).len(), 0);
        assert_eq!(
            w.fire(&change("/app", ChangeKind::ChildrenChanged)).len(),
            0
        );
    }

    #[test]
    fn get_watches_do_not_see_creation_and_child_watches_see_deletion() {
        let mut w = Watches::default();
        w.arm(OneShot::Data, "/n", 1);
        w.arm(OneShot::Child, "/n", 2);
        assert!(w.fire(&change("/n", ChangeKind::Created)).is_empty());
        let who: Vec<_> = w
            .fire(&change("/n", ChangeKind::Deleted))
            .into_iter()
            .map(|e| e.0)
            .collect();
        assert_eq!(who, vec![1, 2]);
    }
}
