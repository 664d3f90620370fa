//! Requests answered from this server's applied tree (reads, AddWatch,
//! RemoveWatches, SetWatches' catch-up), and the wire forms of the tree's
//! results.

use zab_proto::{
    CreateReply, ErrorCode, MultiResult, Outcome as WireOutcome, Perms, ReadOp, ReadResult,
    Request, Response, WatchEvent,
};

use crate::acl::{self, Caller};
use crate::replica::Replica;
use crate::tree::Outcome;
use crate::watches::{OneShot, Watches};

/// Re-arms a reconnected session's watches (SetWatches) and returns what
/// the client missed, to be sent before the reply; later changes fire as
/// they are applied.
///
/// If this server still holds every change since the client's last zxid,
/// the client is sent exactly the events its watches would have fired, in
/// order, each at its own zxid (resumable watches): one-shot watches fire
/// for the first change they cover and are gone, persistent ones report
/// every change. Otherwise, as ZooKeeper does, one-shot watches are judged
/// by comparing stats and persistent ones get `ContinuityLost`, at
/// `applied`.
///
/// All or nothing: an invalid path is `BadArguments`, an existing node the
/// caller may not READ is `NoAuth` (a watch is a read: re-arming must not
/// leak what arming could not), and a set that could take the session or
/// the server past its watch limit is `TooManyWatches`; either way nothing
/// is armed and nothing is reported.
pub(super) fn catch_up(
    set: &zab_proto::SetWatches,
    replica: &Replica,
    watches: &mut Watches,
    (session, caller): (u64, &Caller),
    applied: u64,
) -> Result<Vec<WatchEvent>, ErrorCode> {
    let lists = [
        &set.data,
        &set.exists,
        &set.children,
        &set.persistent,
        &set.persistent_recursive,
    ];
    let paths = lists.iter().flat_map(|l| l.iter());
    if !paths
        .clone()
        .all(|p| crate::tree::path::validate(p).is_ok())
    {
        return Err(ErrorCode::BadArguments);
    }
    let readable = |p: &String| {
        replica
            .tree
            .acl(p)
            .is_none_or(|(acl, _)| caller.permits(acl, Perms::READ))
    };
    if !paths.clone().all(readable) {
        return Err(ErrorCode::NoAuth);
    }
    if !watches.has_room(session, paths.count()) {
        return Err(ErrorCode::TooManyWatches);
    }
    watches.recent.start_at(applied);
    if let Some(events) = replay(set, watches, session, caller) {
        return Ok(events);
    }
    Ok(rearm(watches, session, set, replica)
        .into_iter()
        .map(|(kind, path)| WatchEvent {
            kind,
            path,
            zxid: applied,
        })
        .collect())
}

/// Replays the changes after `set.relative_zxid` to `set`'s watches, if
/// this server holds them all, arming whatever is left armed after them.
/// The live firing rules are used, on a scratch set holding only this
/// session's watches, so the events are exactly those a connection that
/// never broke would have carried.
fn replay(
    set: &zab_proto::SetWatches,
    watches: &mut Watches,
    session: u64,
    caller: &Caller,
) -> Option<Vec<WatchEvent>> {
    use crate::watches::{WatchLimits, Watches as Set};
    let changes = watches.recent.after(set.relative_zxid)?;
    let mut scratch = Set::new(WatchLimits {
        per_session: usize::MAX,
        per_server: usize::MAX,
        resume_changes: 0,
    });
    arm_all(&mut scratch, session, set);
    let mut events = Vec::new();
    for (zxid, change) in changes {
        for fired in scratch.fire(change) {
            if fired.below && !caller.permits(&change.acl, Perms::READ) {
                continue;
            }
            events.push(WatchEvent {
                kind: fired.kind,
                path: fired.path,
                zxid: *zxid,
            });
        }
    }
    let left = scratch.take(session);
    arm_all(watches, session, &left);
    Some(events)
}

/// Arms every watch `set` lists (the caller made room for them).
fn arm_all(watches: &mut Watches, session: u64, set: &zab_proto::SetWatches) {
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

/// Re-arms watches after a reconnect and reports what changed since the
/// client's last zxid, as ZooKeeper does: by comparing the zxids in each
/// node's stat with the client's. For a gap older than the recent changes
/// this server holds, persistent watches cannot be caught up (the changes
/// under them are gone), so they get an explicit `ContinuityLost` instead of
/// a silent gap.
fn rearm(
    watches: &mut Watches,
    session: u64,
    set: &zab_proto::SetWatches,
    replica: &Replica,
) -> Vec<(zab_proto::WatchEventKind, String)> {
    use zab_proto::WatchEventKind as K;
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

/// What a GetChildrenPage reply spends besides its names: the reply header,
/// the list's count, the stat and the `more` flag, with room to spare.
const PAGE_OVERHEAD_BYTES: usize = 16 + 4 + 68 + 1 + 32;

/// Runs a read, AddWatch or RemoveWatches against the applied tree, for
/// `caller` on a connection whose frame limit is `frame_limit`. Every read
/// of an existing node, and every watch on one, needs READ on it (`NoAuth`
/// otherwise, before anything is armed); getAcl needs READ or ADMIN.
pub(super) fn read(
    request: &Request,
    replica: &Replica,
    watches: &mut Watches,
    (session, caller): (u64, &Caller),
    frame_limit: u32,
) -> WireOutcome {
    let tree = &replica.tree;
    let valid = |path: &str| crate::tree::path::validate(path).is_ok();
    let path = match request {
        Request::Exists { path, .. }
        | Request::GetData { path, .. }
        | Request::GetChildren { path, .. }
        | Request::GetChildrenPage { path, .. }
        | Request::GetAcl { path }
        | Request::AddWatch { path, .. } => path,
        Request::GetAllChildrenNumber { path } => path,
        Request::RemoveWatches { path, kind } => {
            return if watches.remove(*kind, path, session) {
                WireOutcome::Ok(Response::RemoveWatches)
            } else {
                WireOutcome::Err(ErrorCode::NoWatcher)
            };
        }
        Request::GetEphemerals { prefix } => {
            // A string prefix, so `/app/` and `/app/lock-` are fine.
            if crate::tree::path::validate_sequential_prefix(prefix).is_err() {
                return WireOutcome::Err(ErrorCode::BadArguments);
            }
            let paths = tree.ephemerals_with_prefix(session, prefix);
            return WireOutcome::Ok(Response::GetEphemerals { paths });
        }
        Request::MultiRead(ops) => {
            let results = ops.iter().map(|op| read_one(op, replica, caller)).collect();
            return WireOutcome::Ok(Response::MultiRead(results));
        }
        _ => return WireOutcome::Err(ErrorCode::Unimplemented),
    };
    if !valid(path) {
        return WireOutcome::Err(ErrorCode::BadArguments);
    }
    if let Some((acl, stat)) = tree.acl(path) {
        if let Request::GetAcl { .. } = request {
            return match caller.permits(acl, Perms::ADMIN) {
                true => WireOutcome::Ok(Response::GetAcl {
                    acl: acl.to_vec(),
                    stat,
                }),
                false if caller.permits(acl, Perms::READ) => WireOutcome::Ok(Response::GetAcl {
                    acl: acl::redact(acl),
                    stat,
                }),
                false => WireOutcome::Err(ErrorCode::NoAuth),
            };
        }
        if !caller.permits(acl, Perms::READ) {
            return WireOutcome::Err(ErrorCode::NoAuth);
        }
    }
    // A watch that cannot be armed fails the read: nothing is read or
    // armed (wire-spec §11).
    let too_many = |_| WireOutcome::Err(ErrorCode::TooManyWatches);
    let mut arm = |watch: bool, kind| match watch {
        true => watches.arm(kind, path, session),
        false => Ok(()),
    };
    match request {
        Request::Exists { path, watch } => match arm(*watch, OneShot::Exists) {
            Ok(()) => WireOutcome::Ok(Response::Exists(tree.exists(path))),
            Err(e) => too_many(e),
        },
        Request::GetData { path, watch } => match tree.get(path) {
            Some((data, stat)) => match arm(*watch, OneShot::Data) {
                Ok(()) => WireOutcome::Ok(Response::GetData {
                    data: data.clone(),
                    stat,
                }),
                Err(e) => too_many(e),
            },
            None => WireOutcome::Err(ErrorCode::NoNode),
        },
        Request::AddWatch { path, mode } => match watches.add(*mode, path, session) {
            Ok(()) => WireOutcome::Ok(Response::AddWatch),
            Err(e) => too_many(e),
        },
        Request::GetChildren { path, watch } => match tree.children(path) {
            Some((children, stat)) => match arm(*watch, OneShot::Child) {
                Ok(()) => WireOutcome::Ok(Response::GetChildren { children, stat }),
                Err(e) => too_many(e),
            },
            None => WireOutcome::Err(ErrorCode::NoNode),
        },
        Request::GetChildrenPage {
            path,
            after,
            max,
            watch,
        } => {
            let budget = (frame_limit as usize).saturating_sub(PAGE_OVERHEAD_BYTES);
            match tree.children_page(path, after, *max as usize, budget) {
                Some((children, stat, more)) => match arm(*watch, OneShot::Child) {
                    Ok(()) => WireOutcome::Ok(Response::GetChildrenPage {
                        children,
                        stat,
                        more,
                    }),
                    Err(e) => too_many(e),
                },
                None => WireOutcome::Err(ErrorCode::NoNode),
            }
        }
        Request::GetAllChildrenNumber { path } => match tree.descendant_count(path) {
            Some(count) => WireOutcome::Ok(Response::GetAllChildrenNumber { count }),
            None => WireOutcome::Err(ErrorCode::NoNode),
        },
        Request::GetAcl { .. } => WireOutcome::Err(ErrorCode::NoNode),
        _ => WireOutcome::Err(ErrorCode::Unimplemented),
    }
}

/// One op of a MultiRead, checked as the same read alone would be.
fn read_one(op: &ReadOp, replica: &Replica, caller: &Caller) -> ReadResult {
    let path = op.path();
    if crate::tree::path::validate(path).is_err() {
        return ReadResult::Error(ErrorCode::BadArguments);
    }
    let tree = &replica.tree;
    match tree.acl(path) {
        None => return ReadResult::Error(ErrorCode::NoNode),
        Some((acl, _)) if !caller.permits(acl, Perms::READ) => {
            return ReadResult::Error(ErrorCode::NoAuth)
        }
        Some(_) => {}
    }
    let found = match op {
        ReadOp::GetData { .. } => tree.get(path).map(|(data, stat)| ReadResult::GetData {
            data: data.clone(),
            stat,
        }),
        ReadOp::GetChildren { .. } => tree
            .children(path)
            .map(|(children, stat)| ReadResult::GetChildren { children, stat }),
    };
    found.unwrap_or(ReadResult::Error(ErrorCode::NoNode))
}

/// The client-facing result of an applied write.
pub(super) fn wire_outcome(outcome: &Outcome) -> WireOutcome {
    match outcome {
        Outcome::Created { path, stat } => WireOutcome::Ok(Response::Create(CreateReply {
            path: path.clone(),
            stat: *stat,
        })),
        Outcome::Deleted => WireOutcome::Ok(Response::Delete),
        Outcome::DataSet { stat } => WireOutcome::Ok(Response::SetData(*stat)),
        Outcome::AclSet { stat } => WireOutcome::Ok(Response::SetAcl(*stat)),
        Outcome::Checked => WireOutcome::Ok(Response::Check),
        Outcome::SessionClosed => WireOutcome::Ok(Response::CloseSession),
        Outcome::Error(code) => WireOutcome::Err(*code),
        Outcome::Multi(ops) => {
            let failed = ops.iter().find_map(|o| match o {
                Outcome::Error(code) if code.code() != 0 && code.code() != -2 => Some(*code),
                _ => None,
            });
            match failed {
                Some(err) => WireOutcome::MultiErr {
                    err,
                    errors: ops
                        .iter()
                        .map(|o| match o {
                            Outcome::Error(c) => *c,
                            _ => ErrorCode::Ok,
                        })
                        .collect(),
                },
                None => WireOutcome::Ok(Response::Multi(
                    ops.iter()
                        .map(|o| match o {
                            Outcome::Created { path, stat } => MultiResult::Create(CreateReply {
                                path: path.clone(),
                                stat: *stat,
                            }),
                            Outcome::Deleted => MultiResult::Delete,
                            Outcome::DataSet { stat } => MultiResult::SetData(*stat),
                            _ => MultiResult::Check,
                        })
                        .collect(),
                )),
            }
        }
        Outcome::SessionCreated | Outcome::Noop => WireOutcome::Err(ErrorCode::SystemError),
    }
}
