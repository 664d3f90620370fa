//! SetWatches: re-arming a reconnected session's watches, and telling it
//! what it missed while it was away (wire-spec.md §8).
//!
//! Two ways, chosen per request:
//! - **replay** (resumable watches): this server still holds every change
//!   after the client's last zxid (`watches::RecentChanges`), so they are run
//!   through the live firing rules on a scratch copy of the session's
//!   watches: the client gets exactly the events an unbroken connection
//!   would have carried, each at its own zxid;
//! - **comparison** (as ZooKeeper does) otherwise: one-shot watches are
//!   judged by the zxids in each node's stat, and persistent ones get
//!   `ContinuityLost`, since the changes under them are gone.

use std::collections::HashSet;

use zab_proto::{ErrorCode, Perms, SetWatches, WatchEvent, WatchEventKind as K};

use crate::acl::Caller;
use crate::replica::Replica;
use crate::watches::{OneShot, RecentChanges, WatchLimits, Watches};

/// The most a replay may send, in encoded bytes: well within what a
/// connection may have queued (a frame plus 8 MiB) so that a replay never
/// gets its own connection dropped. A longer one falls back to comparison.
pub(crate) const REPLAY_BYTES_MAX: usize = 4 << 20;

/// A notification frame's bytes besides its path: length prefix, reply
/// header, kind, the path's length and the event's zxid, rounded up.
const EVENT_FRAME_OVERHEAD: usize = 40;

/// Re-arms `set` for `session` and returns the events it missed, to be sent
/// before the reply (later changes fire as they are applied).
///
/// All or nothing: an invalid path is `BadArguments`, a watch the caller may
/// not READ the node of is `NoAuth` (a watch is a read: re-arming must not
/// leak what arming could not; after a replay only the watches still armed
/// are judged, as a live connection would have been), and a set that could
/// take the session or the server past its watch limit is
/// `TooManyWatches`; either way nothing is armed and nothing is reported.
pub(super) fn catch_up(
    set: &SetWatches,
    replica: &Replica,
    watches: &mut Watches,
    (session, caller): (u64, &Caller),
    applied: u64,
) -> Result<Vec<WatchEvent>, ErrorCode> {
    if !paths(set).all(|p| crate::tree::path::validate(p).is_ok()) {
        return Err(ErrorCode::BadArguments);
    }
    if !watches.has_room(session, paths(set).count()) {
        return Err(ErrorCode::TooManyWatches);
    }
    let readable = |p: &String| {
        replica
            .tree
            .acl(p)
            .is_none_or(|(acl, _)| caller.permits(acl, Perms::READ))
    };
    watches.recent.start_at(applied);
    if let Some((events, left)) = replay(set, &watches.recent, session, caller) {
        if !paths(&left).all(readable) {
            return Err(ErrorCode::NoAuth);
        }
        arm_all(watches, session, &left);
        return Ok(events);
    }
    if !paths(set).all(readable) {
        return Err(ErrorCode::NoAuth);
    }
    Ok(compare(watches, session, set, replica)
        .into_iter()
        .map(|(kind, path)| WatchEvent {
            kind,
            path,
            zxid: applied,
        })
        .collect())
}

fn paths(set: &SetWatches) -> impl Iterator<Item = &String> + Clone {
    [
        &set.data,
        &set.exists,
        &set.children,
        &set.persistent,
        &set.persistent_recursive,
    ]
    .into_iter()
    .flat_map(|l| l.iter())
}

/// The paths a set of watches can hear of: cheap to ask of every change
/// before running the firing rules on it.
struct Interest<'a> {
    /// Watched paths themselves (every kind reports changes at its path;
    /// a child watch's NodeChildrenChanged is a change at its path too).
    at: HashSet<&'a str>,
    /// Roots of recursive watches.
    under: HashSet<&'a str>,
}

impl<'a> Interest<'a> {
    fn of(set: &'a SetWatches) -> Interest<'a> {
        let at = paths(set).map(String::as_str).collect();
        let under = set
            .persistent_recursive
            .iter()
            .map(String::as_str)
            .collect();
        Interest { at, under }
    }

    fn may_hear(&self, path: &str) -> bool {
        self.at.contains(path)
            || (!self.under.is_empty()
                && crate::watches::ancestors(path).any(|a| self.under.contains(a)))
    }
}

/// Replays the changes after `set.relative_zxid` to `set`'s watches, if
/// `recent` holds them all and the replay fits [`REPLAY_BYTES_MAX`]: the
/// events, and the watches left armed after them. The live firing rules
/// run on a scratch set holding only this session's watches.
fn replay(
    set: &SetWatches,
    recent: &RecentChanges,
    session: u64,
    caller: &Caller,
) -> Option<(Vec<WatchEvent>, SetWatches)> {
    let changes = recent.after(set.relative_zxid)?;
    let interest = Interest::of(set);
    let mut scratch = Watches::new(WatchLimits {
        per_session: usize::MAX,
        per_server: usize::MAX,
        resume_changes: 0,
    });
    arm_all(&mut scratch, session, set);
    let mut events = Vec::new();
    let mut bytes = 0usize;
    for (zxid, change) in changes {
        if !interest.may_hear(&change.path) {
            continue;
        }
        for fired in scratch.fire(change) {
            if fired.below && !caller.permits(&change.acl, Perms::READ) {
                continue;
            }
            bytes += EVENT_FRAME_OVERHEAD + fired.path.len();
            if bytes > REPLAY_BYTES_MAX {
                return None;
            }
            events.push(WatchEvent {
                kind: fired.kind,
                path: fired.path,
                zxid: *zxid,
            });
        }
    }
    Some((events, scratch.take(session)))
}

/// Arms every watch `set` lists (the caller made room for them).
fn arm_all(watches: &mut Watches, session: u64, set: &SetWatches) {
    for (paths, kind) in [
        (&set.data, OneShot::Data),
        (&set.exists, OneShot::Exists),
        (&set.children, OneShot::Child),
    ] {
        for path in paths {
            let _ = watches.arm(kind, path, session);
        }
    }
    for (paths, mode) in [
        (&set.persistent, zab_proto::AddWatchMode::Persistent),
        (
            &set.persistent_recursive,
            zab_proto::AddWatchMode::PersistentRecursive,
        ),
    ] {
        for path in paths {
            let _ = watches.add(mode, path, session);
        }
    }
}

/// Re-arms watches and reports what changed since the client's last zxid by
/// comparing the zxids in each node's stat with it. Persistent watches
/// cannot be caught up this way (the changes under them are gone), so they
/// get an explicit `ContinuityLost` instead of a silent gap.
fn compare(
    watches: &mut Watches,
    session: u64,
    set: &SetWatches,
    replica: &Replica,
) -> Vec<(K, String)> {
    // The caller made room for every path, so arming cannot fail.
    let mut arm = |kind, path: &str| {
        let _ = watches.arm(kind, path, session);
    };
    let rel = set.relative_zxid;
    let mut events = Vec::new();
    for path in &set.data {
        match replica.tree.exists(path) {
            None => events.push((K::NodeDeleted, path.clone())),
            Some(st) if st.mzxid > rel => events.push((K::NodeDataChanged, path.clone())),
            Some(_) => arm(OneShot::Data, path),
        }
    }
    for path in &set.exists {
        match replica.tree.exists(path) {
            Some(st) if st.czxid > rel => events.push((K::NodeCreated, path.clone())),
            Some(st) if st.mzxid > rel => events.push((K::NodeDataChanged, path.clone())),
            _ => arm(OneShot::Exists, path),
        }
    }
    for path in &set.children {
        match replica.tree.exists(path) {
            None => events.push((K::NodeDeleted, path.clone())),
            Some(st) if st.pzxid > rel => events.push((K::NodeChildrenChanged, path.clone())),
            Some(_) => arm(OneShot::Child, path),
        }
    }
    for (paths, mode) in [
        (&set.persistent, zab_proto::AddWatchMode::Persistent),
        (
            &set.persistent_recursive,
            zab_proto::AddWatchMode::PersistentRecursive,
        ),
    ] {
        for path in paths {
            let _ = watches.add(mode, path, session);
            events.push((K::ContinuityLost, path.clone()));
        }
    }
    events
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interest_covers_watched_paths_and_recursive_subtrees_only() {
        let set = SetWatches {
            data: vec!["/a".into()],
            persistent_recursive: vec!["/r".into()],
            ..SetWatches::default()
        };
        let i = Interest::of(&set);
        for (path, heard) in [
            ("/a", true),
            ("/a/b", false),
            ("/r", true),
            ("/r/x/y", true),
            ("/rx", false),
            ("/", false),
        ] {
            assert_eq!(i.may_hear(path), heard, "{path}");
        }
        let root = SetWatches {
            persistent_recursive: vec!["/".into()],
            ..SetWatches::default()
        };
        assert!(Interest::of(&root).may_hear("/x/y"));
        assert!(Interest::of(&root).may_hear("/"));
    }
}
