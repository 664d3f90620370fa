//! Watches of the clients connected to this server (REFERENCE §5).
//!
//! One-shot watches: `exists` arms created/deleted/data-changed, `get` arms
//! deleted/data-changed, `children` arms deleted/children-changed; each fires
//! once and is gone. Persistent watches stay armed; recursive ones cover the
//! whole subtree (and, as in ZooKeeper, do not report children-changed, which
//! their created/deleted events already convey). Watches belong to a
//! connection's session and are fired in zxid order as changes are applied,
//! before the reply that carries the change's zxid.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use zab_proto::{AddWatchMode, WatchEventKind, WatcherKind};

use crate::tree::{Change, ChangeKind};

mod recent;
pub use recent::RecentChanges;

/// Whoever holds a watch: a session on this server.
pub type Watcher = u64;

/// One event a change fires for one watcher.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fired {
    pub watcher: Watcher,
    pub kind: WatchEventKind,
    /// The node that changed.
    pub path: String,
    /// Reported only by a recursive watch on an ancestor of `path`: the
    /// watcher was never checked for READ on this node, so the caller
    /// checks before sending it.
    pub below: bool,
}

/// How many watches may be armed: per session and on this server in all.
/// Re-arming a watch that is already armed never counts against them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WatchLimits {
    pub per_session: usize,
    pub per_server: usize,
    /// Recent changes kept for reconnecting watchers (0: none).
    pub resume_changes: usize,
}

impl Default for WatchLimits {
    /// 100,000 per session (wire-spec §11) and 2,000,000 per server (about
    /// 200 MB of watch state at most); the last 100,000 changes kept for
    /// resuming watches (about 15 MB with 100-byte paths).
    fn default() -> WatchLimits {
        WatchLimits {
            per_session: 100_000,
            per_server: 2_000_000,
            resume_changes: 100_000,
        }
    }
}

/// A watch could not be armed: the session's or the server's limit is
/// reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TooManyWatches;

/// The five kinds of watch, each with its own path index.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Slot {
    Data,
    Exists,
    Child,
    Persistent,
    Recursive,
}

const SLOTS: usize = 5;

type Index = BTreeMap<Arc<str>, BTreeSet<Watcher>>;

/// One session's watches, by kind: the paths share their allocation with
/// the path index, and are found by `&str` (no allocation to remove one).
#[derive(Debug, Default)]
struct Held {
    paths: [BTreeSet<Arc<str>>; SLOTS],
    len: usize,
}

/// The watches of this server's sessions, indexed both ways: by path (to
/// fire them) and by session (to count them in O(1) and forget a session's
/// in time proportional to its own).
#[derive(Debug, Default)]
pub struct Watches {
    by_path: [Index; SLOTS],
    by_watcher: HashMap<Watcher, Held>,
    total: usize,
    limits: WatchLimits,
    /// What was applied lately, to replay to reconnecting watchers.
    pub recent: RecentChanges,
}

/// Which one-shot watch a read arms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OneShot {
    Data,
    Exists,
    Child,
}

impl From<OneShot> for Slot {
    fn from(kind: OneShot) -> Slot {
        match kind {
            OneShot::Data => Slot::Data,
            OneShot::Exists => Slot::Exists,
            OneShot::Child => Slot::Child,
        }
    }
}

impl From<AddWatchMode> for Slot {
    fn from(mode: AddWatchMode) -> Slot {
        match mode {
            AddWatchMode::Persistent => Slot::Persistent,
            AddWatchMode::PersistentRecursive => Slot::Recursive,
        }
    }
}

impl Watches {
    pub fn new(limits: WatchLimits) -> Watches {
        Watches {
            limits,
            recent: RecentChanges::new(limits.resume_changes),
            ..Watches::default()
        }
    }

    /// Arms a one-shot watch (a read's).
    pub fn arm(&mut self, kind: OneShot, path: &str, who: Watcher) -> Result<(), TooManyWatches> {
        self.insert(kind.into(), path, who)
    }

    /// Arms a persistent watch (AddWatch's).
    pub fn add(
        &mut self,
        mode: AddWatchMode,
        path: &str,
        who: Watcher,
    ) -> Result<(), TooManyWatches> {
        self.insert(mode.into(), path, who)
    }

    /// Whether `who` could arm `new` more watches now.
    pub fn has_room(&self, who: Watcher, new: usize) -> bool {
        self.count(who).saturating_add(new) <= self.limits.per_session
            && self.total.saturating_add(new) <= self.limits.per_server
    }

    /// Whether `who` holds this watch already (arming it again is free).
    fn holds(&self, slot: Slot, path: &str, who: Watcher) -> bool {
        self.by_path[slot as usize]
            .get(path)
            .is_some_and(|set| set.contains(&who))
    }

    fn insert(&mut self, slot: Slot, path: &str, who: Watcher) -> Result<(), TooManyWatches> {
        if self.holds(slot, path, who) {
            return Ok(());
        }
        if !self.has_room(who, 1) {
            return Err(TooManyWatches);
        }
        let index = &mut self.by_path[slot as usize];
        let key = match index.get_key_value(path) {
            Some((key, _)) => key.clone(),
            None => Arc::from(path),
        };
        index.entry(key.clone()).or_default().insert(who);
        let held = self.by_watcher.entry(who).or_default();
        held.paths[slot as usize].insert(key);
        held.len += 1;
        self.total += 1;
        Ok(())
    }

    /// Drops `who`'s watch in `slot` on `path` from the session index (the
    /// path index is the caller's).
    fn unhold(&mut self, slot: Slot, path: &str, who: Watcher) {
        if let Some(held) = self.by_watcher.get_mut(&who) {
            if held.paths[slot as usize].remove(path) {
                held.len -= 1;
                self.total -= 1;
            }
            if held.len == 0 {
                self.by_watcher.remove(&who);
            }
        }
    }

    /// Whether `who` holds a watch of `kind` on `path` (ZooKeeper's
    /// checkWatches); nothing changes.
    pub fn contains(&self, kind: WatcherKind, path: &str, who: Watcher) -> bool {
        Self::slots_of(kind).iter().any(|&slot| {
            self.by_path[slot as usize]
                .get(path)
                .is_some_and(|set| set.contains(&who))
        })
    }

    /// Removes `who`'s watches of `kind` on `path`; whether any existed.
    pub fn remove(&mut self, kind: WatcherKind, path: &str, who: Watcher) -> bool {
        let mut found = false;
        for &slot in Self::slots_of(kind) {
            let index = &mut self.by_path[slot as usize];
            let Some(set) = index.get_mut(path) else {
                continue;
            };
            if set.remove(&who) {
                found = true;
                if set.is_empty() {
                    index.remove(path);
                }
                self.unhold(slot, path, who);
            }
        }
        found
    }

    /// The slots a watcher kind names.
    fn slots_of(kind: WatcherKind) -> &'static [Slot] {
        match kind {
            WatcherKind::Children => &[Slot::Child],
            WatcherKind::Data => &[Slot::Data, Slot::Exists],
            // Every watch at the path, persistent ones too (wire-spec.md).
            WatcherKind::Any => &[
                Slot::Data,
                Slot::Exists,
                Slot::Child,
                Slot::Persistent,
                Slot::Recursive,
            ],
            WatcherKind::Persistent => &[Slot::Persistent],
            WatcherKind::PersistentRecursive => &[Slot::Recursive],
        }
    }

    /// Drops every watch of `who` (its session ended or moved), in time
    /// proportional to its own watches.
    pub fn forget(&mut self, who: Watcher) {
        let Some(held) = self.by_watcher.remove(&who) else {
            return;
        };
        self.total -= held.len;
        for (index, paths) in self.by_path.iter_mut().zip(held.paths) {
            for path in paths {
                if let Some(set) = index.get_mut(&path) {
                    set.remove(&who);
                    if set.is_empty() {
                        index.remove(&path);
                    }
                }
            }
        }
    }

    /// Takes every watch `who` holds away, as the lists SetWatches names
    /// them in (its `relative_zxid` left 0).
    pub fn take(&mut self, who: Watcher) -> zab_proto::SetWatches {
        let mut set = zab_proto::SetWatches::default();
        let Some(held) = self.by_watcher.get(&who) else {
            return set;
        };
        let lists = [
            &mut set.data,
            &mut set.exists,
            &mut set.children,
            &mut set.persistent,
            &mut set.persistent_recursive,
        ];
        for (list, paths) in lists.into_iter().zip(&held.paths) {
            list.extend(paths.iter().map(|p| p.to_string()));
        }
        self.forget(who);
        set
    }

    /// Watches held by `who`, in O(1).
    pub fn count(&self, who: Watcher) -> usize {
        self.by_watcher.get(&who).map_or(0, |h| h.len)
    }

    /// Watches held on this server in all.
    pub fn total(&self) -> usize {
        self.total
    }

    /// Distinct watched paths per kind (data, exists, child, persistent,
    /// recursive), and the `top` sessions holding the most watches, most
    /// first (ties by session id).
    pub fn census(&self, top: usize) -> ([usize; SLOTS], Vec<(Watcher, usize)>) {
        let paths = [0, 1, 2, 3, 4].map(|slot| self.by_path[slot].len());
        let mut held: Vec<(Watcher, usize)> =
            self.by_watcher.iter().map(|(&w, h)| (w, h.len)).collect();
        let most_first =
            |a: &(Watcher, usize), b: &(Watcher, usize)| b.1.cmp(&a.1).then(a.0.cmp(&b.0));
        // The top `top` in linear time, then only those sorted.
        if top < held.len() {
            held.select_nth_unstable_by(top, most_first);
            held.truncate(top);
        }
        held.sort_unstable_by(most_first);
        (paths, held)
    }

    /// Sessions holding at least one watch.
    pub fn watchers(&self) -> usize {
        self.by_watcher.len()
    }

    /// The events one change fires, disarming the one-shot watches it used.
    /// Recursive watches are found by the change's ancestors, so the cost
    /// is the path's depth, not the number of recursive watches.
    pub fn fire(&mut self, change: &Change) -> Vec<Fired> {
        let path = change.path.as_str();
        let (kind, one_shot): (WatchEventKind, &[Slot]) = match change.kind {
            ChangeKind::Created => (WatchEventKind::NodeCreated, &[Slot::Exists]),
            ChangeKind::Deleted => (
                WatchEventKind::NodeDeleted,
                &[Slot::Data, Slot::Exists, Slot::Child],
            ),
            ChangeKind::DataChanged => {
                (WatchEventKind::NodeDataChanged, &[Slot::Data, Slot::Exists])
            }
            ChangeKind::ChildrenChanged => (WatchEventKind::NodeChildrenChanged, &[Slot::Child]),
        };
        let mut who = BTreeSet::new();
        for &slot in one_shot {
            if let Some(set) = self.by_path[slot as usize].remove(path) {
                for &w in &set {
                    self.unhold(slot, path, w);
                }
                who.extend(set);
            }
        }
        if let Some(set) = self.by_path[Slot::Persistent as usize].get(path) {
            who.extend(set.iter().copied());
        }
        let mut below = BTreeSet::new();
        if change.kind != ChangeKind::ChildrenChanged {
            let recursive = &self.by_path[Slot::Recursive as usize];
            if !recursive.is_empty() {
                for prefix in ancestors(path) {
                    if let Some(set) = recursive.get(prefix) {
                        match prefix == path {
                            true => who.extend(set.iter().copied()),
                            false => below.extend(set.iter().copied()),
                        }
                    }
                }
            }
        }
        let below = below
            .into_iter()
            .filter(|w| !who.contains(w))
            .collect::<Vec<_>>();
        let fired = who.into_iter().map(|w| Fired {
            watcher: w,
            kind,
            path: path.to_string(),
            below: false,
        });
        let under = below.into_iter().map(|w| Fired {
            watcher: w,
            kind,
            path: path.to_string(),
            below: true,
        });
        fired.chain(under).collect()
    }
}

/// `path` and every ancestor of it, the root included: the prefixes whose
/// recursive watches cover it.
pub(crate) fn ancestors(path: &str) -> impl Iterator<Item = &str> {
    let cuts = path
        .char_indices()
        .filter(|&(i, c)| c == '/' && i > 0)
        .map(|(i, _)| i);
    std::iter::once("/")
        .chain(cuts.map(move |i| &path[..i]))
        .chain((path != "/").then_some(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(path: &str, kind: ChangeKind) -> Change {
        Change {
            path: path.to_string(),
            kind,
            acl: crate::tree::open_acl(),
        }
    }

    #[test]
    fn contains_checks_by_kind_and_session_and_removes_nothing() {
        let mut w = Watches::default();
        w.arm(OneShot::Exists, "/a", 1).expect("room");
        w.add(AddWatchMode::PersistentRecursive, "/b", 1)
            .expect("room");
        assert!(w.contains(WatcherKind::Data, "/a", 1));
        assert!(w.contains(WatcherKind::Any, "/a", 1));
        assert!(!w.contains(WatcherKind::Children, "/a", 1));
        assert!(!w.contains(WatcherKind::Data, "/a", 2), "another session's");
        assert!(w.contains(WatcherKind::PersistentRecursive, "/b", 1));
        assert!(!w.contains(WatcherKind::Persistent, "/b", 1));
        // Still armed: the check changed nothing.
        assert!(w.remove(WatcherKind::Data, "/a", 1));
        assert!(!w.contains(WatcherKind::Any, "/a", 1));
    }

    #[test]
    fn one_shot_watches_fire_once_and_persistent_ones_stay() {
        let mut w = Watches::default();
        w.arm(OneShot::Data, "/a", 1).expect("room");
        w.arm(OneShot::Exists, "/a", 2).expect("room");
        w.add(AddWatchMode::Persistent, "/a", 3).expect("room");
        let fired = w.fire(&change("/a", ChangeKind::DataChanged));
        let who: Vec<_> = fired.iter().map(|f| f.watcher).collect();
        assert_eq!(who, vec![1, 2, 3]);
        assert!(fired
            .iter()
            .all(|f| f.kind == WatchEventKind::NodeDataChanged && !f.below));
        let again: Vec<_> = w
            .fire(&change("/a", ChangeKind::DataChanged))
            .into_iter()
            .map(|e| e.watcher)
            .collect();
        assert_eq!(again, vec![3], "one-shot watches are gone");
    }

    #[test]
    fn recursive_watches_cover_the_subtree_but_not_siblings() {
        let mut w = Watches::default();
        w.add(AddWatchMode::PersistentRecursive, "/app", 7)
            .expect("room");
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
        w.arm(OneShot::Data, "/n", 1).expect("room");
        w.arm(OneShot::Child, "/n", 2).expect("room");
        assert!(w.fire(&change("/n", ChangeKind::Created)).is_empty());
        let who: Vec<_> = w
            .fire(&change("/n", ChangeKind::Deleted))
            .into_iter()
            .map(|e| e.watcher)
            .collect();
        assert_eq!(who, vec![1, 2]);
    }

    #[test]
    fn the_root_recursive_watch_covers_everything() {
        let mut w = Watches::default();
        w.add(AddWatchMode::PersistentRecursive, "/", 1)
            .expect("room");
        w.add(AddWatchMode::PersistentRecursive, "/a/b", 2)
            .expect("room");
        let who = |w: &mut Watches, path| -> Vec<Watcher> {
            w.fire(&change(path, ChangeKind::DataChanged))
                .into_iter()
                .map(|e| e.watcher)
                .collect()
        };
        assert_eq!(who(&mut w, "/"), vec![1]);
        assert_eq!(who(&mut w, "/a"), vec![1]);
        assert_eq!(
            who(&mut w, "/a/b"),
            vec![2, 1],
            "its own first, then ancestors'"
        );
        let below: Vec<(Watcher, bool)> = w
            .fire(&change("/a/b", ChangeKind::DataChanged))
            .into_iter()
            .map(|f| (f.watcher, f.below))
            .collect();
        assert_eq!(below, vec![(2, false), (1, true)]);
        assert_eq!(who(&mut w, "/a/b/c/d"), vec![1, 2]);
        assert_eq!(who(&mut w, "/a/bc"), vec![1]);
    }

    #[test]
    fn counts_follow_every_arming_firing_removal_and_forgetting() {
        let mut w = Watches::default();
        w.arm(OneShot::Data, "/a", 1).expect("room");
        w.arm(OneShot::Data, "/a", 1).expect("re-arming is free");
        w.arm(OneShot::Child, "/a", 1).expect("room");
        w.add(AddWatchMode::Persistent, "/b", 1).expect("room");
        w.arm(OneShot::Data, "/a", 2).expect("room");
        assert_eq!((w.count(1), w.count(2), w.total()), (3, 1, 4));
        w.fire(&change("/a", ChangeKind::DataChanged));
        assert_eq!((w.count(1), w.count(2), w.total()), (2, 0, 2));
        assert!(w.remove(WatcherKind::Children, "/a", 1));
        assert!(!w.remove(WatcherKind::Children, "/a", 1));
        assert_eq!(w.count(1), 1);
        w.forget(1);
        assert_eq!((w.count(1), w.total()), (0, 0));
        assert!(w.fire(&change("/b", ChangeKind::DataChanged)).is_empty());
    }

    #[test]
    fn removing_any_removes_every_kind_at_the_path_and_only_there() {
        let mut w = Watches::default();
        w.arm(OneShot::Data, "/a", 1).expect("room");
        w.arm(OneShot::Child, "/a", 1).expect("room");
        w.add(AddWatchMode::Persistent, "/a", 1).expect("room");
        w.add(AddWatchMode::PersistentRecursive, "/a", 1)
            .expect("room");
        w.add(AddWatchMode::Persistent, "/b", 1).expect("room");
        assert!(w.remove(WatcherKind::Any, "/a", 1));
        assert_eq!(w.count(1), 1, "only /b's is left");
        assert!(w.fire(&change("/a", ChangeKind::DataChanged)).is_empty());
        assert!(!w.remove(WatcherKind::Any, "/a", 1));
    }

    #[test]
    fn limits_apply_per_session_and_per_server() {
        let mut w = Watches::new(WatchLimits {
            per_session: 3,
            per_server: 5,
            resume_changes: 0,
        });
        for k in 0..3 {
            w.arm(OneShot::Exists, &format!("/s1/{k}"), 1)
                .expect("room");
        }
        assert_eq!(w.arm(OneShot::Exists, "/s1/x", 1), Err(TooManyWatches));
        assert_eq!(
            w.add(AddWatchMode::Persistent, "/s1/x", 1),
            Err(TooManyWatches)
        );
        w.arm(OneShot::Exists, "/s1/0", 1)
            .expect("an armed watch re-arms at the limit");
        w.arm(OneShot::Exists, "/s2/0", 2).expect("room");
        w.arm(OneShot::Exists, "/s2/1", 2).expect("room");
        assert_eq!(w.arm(OneShot::Exists, "/s3/0", 3), Err(TooManyWatches));
        assert!(!w.has_room(3, 1));
        w.forget(1);
        assert!(w.has_room(3, 3) && !w.has_room(3, 4));
    }
}
