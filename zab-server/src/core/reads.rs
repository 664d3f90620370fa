//! Requests answered from this server's applied tree (reads, AddWatch,
//! RemoveWatches), and the wire forms of the tree's results. SetWatches'
//! catch-up is `catch_up`'s.

use bytes::Bytes;
use zab_proto::{
    CreateReply, ErrorCode, MultiResult, Outcome as WireOutcome, Perms, ReadOp, ReadResult,
    Request, Response,
};

use crate::acl::{self, Caller};
use crate::replica::Replica;
use crate::tree::Outcome;
use crate::watches::{OneShot, Watches};

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
        Request::CheckWatches { path, kind } => {
            return if watches.contains(*kind, path, session) {
                WireOutcome::Ok(Response::CheckWatches)
            } else {
                WireOutcome::Err(ErrorCode::NoWatcher)
            };
        }
        Request::GetEphemerals { prefix } => {
            // A string prefix: a path (`/app/lock-`), or one with a
            // trailing `/` (`/app/`).
            let path = prefix.strip_suffix('/').filter(|p| !p.is_empty());
            if crate::tree::path::validate(path.unwrap_or(prefix)).is_err() {
                return WireOutcome::Err(ErrorCode::BadArguments);
            }
            let paths = tree.ephemerals_with_prefix(session, prefix);
            return WireOutcome::Ok(Response::GetEphemerals { paths });
        }
        Request::MultiRead(ops) => return multi_read(ops, replica, caller, frame_limit),
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
                    data: Bytes::copy_from_slice(data),
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

/// A MultiRead: every op's result, or `FrameTooLarge` as soon as they
/// outgrow the connection's frame (checked as they are read, so a request
/// of many large reads never builds its whole reply first).
fn multi_read(ops: &[ReadOp], replica: &Replica, caller: &Caller, frame_limit: u32) -> WireOutcome {
    // Reply header and count; then per result its error code, opcode,
    // and stat besides the data or names.
    let mut bytes = 16 + 4;
    let mut results = Vec::with_capacity(ops.len().min(1024));
    for op in ops {
        let result = read_one(op, replica, caller);
        bytes += 4 + match &result {
            ReadResult::GetData { data, .. } => 1 + 4 + data.len() + 68,
            ReadResult::GetChildren { children, .. } => {
                1 + 4 + children.iter().map(|c| 4 + c.len()).sum::<usize>() + 68
            }
            ReadResult::Error(_) => 0,
        };
        if bytes > frame_limit as usize {
            return WireOutcome::Err(ErrorCode::FrameTooLarge);
        }
        results.push(result);
    }
    WireOutcome::Ok(Response::MultiRead(results))
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
            data: Bytes::copy_from_slice(data),
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
