//! A node's child names: a sorted set whose clone is cheap whatever its
//! size, so copying a parent for copy-on-write never copies its children.
//!
//! Why: while a snapshot holds a frozen view, the first change to a node
//! copies it (see [`super::node_map`]), and a create or delete changes the
//! parent's child list. With the names in one `BTreeSet`, the first create
//! under a parent after each freeze cloned every name under it: 59 ms at
//! 1M children (`cargo bench -p zab-server --bench tree`), seconds at 10M,
//! on the thread that serves everyone, long enough for followers to give
//! up on their leader. Here the names are kept in sorted chunks of at most
//! [`CHUNK_MAX`], each behind an `Arc`: a clone copies one pointer per
//! chunk, and a change then copies the one chunk it touches.
//!
//! Small sets pay nothing for it: a node with one child holds one chunk of
//! one name (less than the leaf node a `BTreeSet` allocates), and a leaf
//! holds no set at all.

use std::sync::Arc;

/// Names per chunk, at most: a chunk is copied whole by the first change to
/// it after a freeze (this many small allocations), and found by binary
/// search over the chunks. A power of two, so a chunk filled by appends
/// ends with no spare capacity.
const CHUNK_MAX: usize = 512;

/// A chunk this small after a delete is merged into a neighbour that has
/// room, so a set that shrank does not keep many near-empty chunks.
const CHUNK_MERGE_BELOW: usize = CHUNK_MAX / 4;

type Chunk = Vec<Box<str>>;

/// The names (last path segment only), sorted. One word: absent for a leaf.
#[derive(Clone, Default)]
// The box is the point: one word inline for the (many) leaves.
#[allow(clippy::box_collection)]
pub(crate) struct Children(Option<Box<ChildSet>>);

#[derive(Clone)]
struct ChildSet {
    /// Non-empty, each sorted and holding at most [`CHUNK_MAX`] names, and
    /// every name of a chunk sorts before every name of the next.
    chunks: Vec<Arc<Chunk>>,
    len: usize,
}

impl ChildSet {
    /// The chunk where `name` is or would go: the first whose last name is
    /// not below it, or the last chunk (an append).
    fn chunk_for(&self, name: &str) -> usize {
        let i = self
            .chunks
            .partition_point(|c| c.last().is_some_and(|last| &**last < name));
        i.min(self.chunks.len() - 1)
    }
}

impl Children {
    /// No names (a leaf's).
    pub(crate) const fn new() -> Children {
        Children(None)
    }

    pub(crate) fn len(&self) -> usize {
        self.0.as_ref().map_or(0, |set| set.len)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    /// The names, sorted.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &str> {
        self.0
            .iter()
            .flat_map(|set| set.chunks.iter())
            .flat_map(|chunk| chunk.iter().map(|name| &**name))
    }

    /// The names after `after`, sorted.
    pub(crate) fn after<'a>(&'a self, after: &'a str) -> impl Iterator<Item = &'a str> {
        let chunks: &[Arc<Chunk>] = self.0.as_ref().map_or(&[], |set| &set.chunks);
        // Chunks before `first` hold only names at or below `after`.
        let first = chunks.partition_point(|c| c.last().is_some_and(|last| &**last <= after));
        let rest = &chunks[first..];
        let skip = rest
            .first()
            .map_or(0, |c| c.partition_point(|name| &**name <= after));
        rest.iter()
            .flat_map(|chunk| chunk.iter().map(|name| &**name))
            .skip(skip)
    }

    /// Adds `name`; false if it was there.
    pub(crate) fn insert(&mut self, name: &str) -> bool {
        let Some(set) = &mut self.0 else {
            self.0 = Some(Box::new(ChildSet {
                chunks: vec![Arc::new(vec![Box::from(name)])],
                len: 1,
            }));
            return true;
        };
        let mut i = set.chunk_for(name);
        // Searched before `make_mut`: a name already there copies nothing.
        let Err(mut at) = set.chunks[i].binary_search_by(|n| (**n).cmp(name)) else {
            return false;
        };
        if set.chunks[i].len() == CHUNK_MAX {
            // Split before growing, so no chunk's buffer doubles past
            // CHUNK_MAX. An append to the last chunk starts a new one (names
            // created in order fill chunks, and the full one, which a frozen
            // view may share, is not copied); any other insert halves it.
            if i + 1 == set.chunks.len() && at == CHUNK_MAX {
                set.chunks.push(Arc::new(Vec::new()));
                i += 1;
                at = 0;
            } else {
                let keep = CHUNK_MAX / 2;
                let tail = Arc::make_mut(&mut set.chunks[i]).split_off(keep);
                set.chunks.insert(i + 1, Arc::new(tail));
                if at >= keep {
                    i += 1;
                    at -= keep;
                }
            }
        }
        let chunk = Arc::make_mut(&mut set.chunks[i]);
        reserve_within_max(chunk, 1);
        chunk.insert(at, Box::from(name));
        set.len += 1;
        true
    }

    /// Removes `name`; false if it was not there.
    pub(crate) fn remove(&mut self, name: &str) -> bool {
        let Some(set) = &mut self.0 else {
            return false;
        };
        let i = set.chunk_for(name);
        let Ok(at) = set.chunks[i].binary_search_by(|n| (**n).cmp(name)) else {
            return false;
        };
        set.len -= 1;
        if set.len == 0 {
            self.0 = None;
            return true;
        }
        let chunk = Arc::make_mut(&mut set.chunks[i]);
        chunk.remove(at);
        let left = chunk.len();
        if left == 0 {
            set.chunks.remove(i);
        } else if left < CHUNK_MERGE_BELOW {
            // Into the next chunk if it has room, else the previous.
            let neighbour = [i + 1, i.wrapping_sub(1)].into_iter().find(|&j| {
                set.chunks
                    .get(j)
                    .is_some_and(|c| c.len() + left <= CHUNK_MAX)
            });
            if let Some(j) = neighbour {
                let moved = Arc::unwrap_or_clone(set.chunks.remove(i));
                // The chunks after `i` moved down by one.
                let (j, before) = if j > i { (j - 1, true) } else { (j, false) };
                let into = Arc::make_mut(&mut set.chunks[j]);
                reserve_within_max(into, moved.len());
                if before {
                    into.splice(0..0, moved);
                } else {
                    into.extend(moved);
                }
            }
        }
        true
    }
}

/// Makes room for `more` names in `chunk` without letting its buffer grow
/// past [`CHUNK_MAX`] (a `Vec` left to itself doubles: a copied chunk of
/// 300 names would take room for 600). The caller keeps the length within.
fn reserve_within_max(chunk: &mut Chunk, more: usize) {
    if chunk.capacity() - chunk.len() < more {
        let doubled = chunk.len().max(4);
        let room = CHUNK_MAX.saturating_sub(chunk.len()).max(more);
        chunk.reserve_exact(doubled.clamp(more, room));
    }
}

/// Equal when the names are: how they are chunked is not part of the value
/// (a restored tree chunks them differently from the one it was taken of).
impl PartialEq for Children {
    fn eq(&self, other: &Children) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl Eq for Children {}

impl std::fmt::Debug for Children {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    fn chunk_lens(c: &Children) -> Vec<usize> {
        c.0.iter()
            .flat_map(|s| s.chunks.iter().map(|k| k.len()))
            .collect()
    }

    /// Checks every invariant of the chunked set against `model`.
    fn check(c: &Children, model: &BTreeSet<String>) {
        assert_eq!(c.len(), model.len());
        assert_eq!(c.is_empty(), model.is_empty());
        assert!(c.iter().eq(model.iter().map(String::as_str)));
        if let Some(set) = &c.0 {
            assert!(set
                .chunks
                .iter()
                .all(|k| !k.is_empty() && k.len() <= CHUNK_MAX && k.capacity() <= CHUNK_MAX));
        }
    }

    #[test]
    fn a_leaf_holds_no_child_set_and_the_last_child_frees_it() {
        let mut c = Children::default();
        assert!(c.is_empty() && c.0.is_none());
        assert!(c.insert("b") && c.insert("a") && !c.insert("a"));
        assert_eq!(c.iter().collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(c.after("a").collect::<Vec<_>>(), ["b"]);
        assert_eq!(c.len(), 2);
        assert!(c.remove("a") && !c.remove("a") && c.remove("b"));
        assert!(c.is_empty() && c.0.is_none() && !c.remove("b"));
    }

    #[test]
    fn names_created_in_order_fill_whole_chunks() {
        let mut c = Children::default();
        for k in 0..3 * CHUNK_MAX + 7 {
            assert!(c.insert(&format!("n{k:08}")));
        }
        assert_eq!(chunk_lens(&c), [CHUNK_MAX, CHUNK_MAX, CHUNK_MAX, 7]);
    }

    #[test]
    fn matches_a_sorted_set_under_random_inserts_and_removes() {
        // A fixed linear congruential sequence: reproducible, no dependency.
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move |m: u64| {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (x >> 33) % m
        };
        let mut c = Children::default();
        let mut model = BTreeSet::new();
        for round in 0..40_000 {
            let name = format!("k{}", next(5_000));
            // Grow for the first half, shrink for the second.
            let insert = next(100) < if round < 20_000 { 70 } else { 25 };
            if insert {
                assert_eq!(c.insert(&name), model.insert(name.clone()), "{name}");
            } else {
                assert_eq!(c.remove(&name), model.remove(&name), "{name}");
            }
            if round % 997 == 0 {
                check(&c, &model);
                let from = format!("k{}", next(5_000));
                let expected: Vec<&str> = model
                    .range::<String, _>((
                        std::ops::Bound::Excluded(&from),
                        std::ops::Bound::Unbounded,
                    ))
                    .map(String::as_str)
                    .collect();
                assert_eq!(c.after(&from).collect::<Vec<_>>(), expected, "after {from}");
            }
        }
        check(&c, &model);
        // Shrunk sets merge their chunks rather than keep slivers.
        let chunks = chunk_lens(&c).len();
        assert!(
            chunks <= 2 * model.len() / CHUNK_MERGE_BELOW + 1,
            "{chunks} chunks"
        );
        for name in model.clone() {
            assert!(c.remove(&name));
            model.remove(&name);
        }
        check(&c, &model);
        assert!(c.0.is_none());
    }

    #[test]
    fn a_clone_shares_every_chunk_and_a_change_copies_only_its_own() {
        let mut c = Children::default();
        for k in 0..4 * CHUNK_MAX {
            c.insert(&format!("n{k:08}"));
        }
        let frozen = c.clone();
        assert!(c.insert("n00000100x") && c.remove("n00001800"));
        let (live, old) = (
            c.0.as_ref().expect("a set"),
            frozen.0.as_ref().expect("a set"),
        );
        let shared: Vec<bool> = live
            .chunks
            .iter()
            .map(|k| old.chunks.iter().any(|o| Arc::ptr_eq(k, o)))
            .collect();
        // The first chunk took the insert (and split in two), the fourth
        // the remove; the second and third are still the frozen ones.
        assert_eq!(shared, [false, false, true, true, false]);
        assert_eq!(frozen.len(), 4 * CHUNK_MAX);
        assert!(frozen.iter().all(|n| n != "n00000100x"));
        assert!(frozen.iter().any(|n| n == "n00001800"));
        assert_ne!(c, frozen);
    }

    #[test]
    fn an_append_past_a_full_shared_chunk_leaves_it_shared() {
        let mut c = Children::default();
        for k in 0..CHUNK_MAX {
            c.insert(&format!("n{k:08}"));
        }
        let frozen = c.clone();
        assert!(c.insert("z"));
        let (live, old) = (
            c.0.as_ref().expect("a set"),
            frozen.0.as_ref().expect("a set"),
        );
        assert!(Arc::ptr_eq(&live.chunks[0], &old.chunks[0]));
        assert_eq!(chunk_lens(&c), [CHUNK_MAX, 1]);
    }

    #[test]
    fn equality_ignores_how_the_names_are_chunked() {
        let (mut appended, mut scattered) = (Children::default(), Children::default());
        for k in 0..2 * CHUNK_MAX {
            appended.insert(&format!("n{k:08}"));
        }
        for k in (0..2 * CHUNK_MAX).rev() {
            scattered.insert(&format!("n{k:08}"));
        }
        assert_ne!(chunk_lens(&appended), chunk_lens(&scattered));
        assert_eq!(appended, scattered);
    }
}
