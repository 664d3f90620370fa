//! Replies against a connection's frame limit (wire-spec §2 and §9). A reply
//! that would not fit is answered `FrameTooLarge` instead, and the
//! connection stays usable; a write whose success reply might not fit is
//! refused before it is proposed, so nothing of it is ever applied.

use zab_proto::{
    CreateReply, ErrorCode, MultiOp, MultiResult, Outcome, Reply, Request, Response, ServerFrame,
    Stat, Xid,
};

use crate::tree::path::SEQUENCE_DIGITS;

/// `frame` as it may be sent on a connection whose limit is `limit` body
/// bytes: unchanged if it fits, else a reply becomes `FrameTooLarge`.
/// Events and pings are small by construction (paths are bounded far below
/// the smallest limit).
pub(super) fn fitted(frame: ServerFrame, limit: u32) -> ServerFrame {
    if frame.body_len() <= limit as usize {
        return frame;
    }
    match frame {
        ServerFrame::Reply(r) => {
            let multi = matches!(
                r.outcome,
                Outcome::Ok(Response::Multi(_)) | Outcome::MultiErr { .. }
            );
            ServerFrame::Reply(Reply {
                xid: r.xid,
                zxid: r.zxid,
                outcome: refused(multi, ErrorCode::FrameTooLarge),
            })
        }
        other => other,
    }
}

/// A request refused before it was proposed, with `code`: in a multi's
/// error layout for a multi (an empty per-op list: the failure is no one
/// op's).
pub(super) fn refused(multi: bool, code: ErrorCode) -> Outcome {
    if multi {
        Outcome::MultiErr {
            err: code,
            errors: Vec::new(),
        }
    } else {
        Outcome::Err(code)
    }
}

/// Bytes a reply spends besides its paths and data, with room to spare:
/// header, stat, counts, opcodes. Below this plus the paths and data, a
/// reply surely fits, and the exact size need not be built.
const REPLY_SLACK_BYTES: usize = 256;
/// The same, per op of a multi.
const OP_SLACK_BYTES: usize = 128;

/// Why this server refuses `request` (a write from a connection whose frame
/// limit is `limit`) before proposing it, if it does: its reply might not
/// fit (`FrameTooLarge`), its data could not be read back
/// (`FrameTooLarge`), or it would take the tree past the data quota
/// (`QuotaExceeded`). The common case costs a few additions: the exact
/// checks run only when a cheap bound says they might fail.
pub(super) fn refusal(
    xid: Xid,
    request: &Request,
    limit: u32,
    limits: &super::SessionLimits,
    tree: &crate::tree::DataTree,
) -> Option<ErrorCode> {
    if !write_reply_fits(xid, request, limit) || !data_readable(request, limits.frame_bytes_max) {
        return Some(ErrorCode::FrameTooLarge);
    }
    let quota = limits.data_bytes_max;
    let surely_within = tree.data_bytes().saturating_add(data_bound(request)) <= quota;
    if !surely_within && tree.data_bytes().saturating_add(data_added(request, tree)) > quota {
        return Some(ErrorCode::QuotaExceeded);
    }
    None
}

/// The paths and data of `request`'s ops, sequential names at full length:
/// at least what it can add to the tree, and what its reply can echo.
fn data_bound(request: &Request) -> u64 {
    let create = |c: &zab_proto::CreateRequest| {
        let acl = c.acl.as_deref().map_or(0, crate::acl::charge) as usize;
        c.path.len() + SEQUENCE_DIGITS + c.data.len() + acl
    };
    let bytes = match request {
        Request::Create(c) => create(c),
        Request::SetData(s) => s.data.len(),
        Request::Multi(ops) => ops
            .iter()
            .map(|op| match op {
                MultiOp::Create(c) => create(c),
                MultiOp::SetData(s) => s.path.len() + s.data.len(),
                MultiOp::Delete(d) => d.path.len(),
                MultiOp::Check(c) => c.path.len(),
            })
            .sum(),
        Request::SetAcl { acl, .. } => crate::acl::charge(acl) as usize,
        _ => 0,
    };
    bytes as u64
}

/// Whether every reply `request` (a write) can get fits `limit`: its
/// success reply with every sequential name at full length. Error replies
/// are never larger than a success's.
pub(super) fn write_reply_fits(xid: Xid, request: &Request, limit: u32) -> bool {
    let ops = match request {
        Request::Multi(ops) => ops.len(),
        _ => 1,
    };
    let bound = REPLY_SLACK_BYTES + ops * OP_SLACK_BYTES + data_bound(request) as usize;
    if bound <= limit as usize {
        return true;
    }
    let response = match request {
        Request::Create(c) => Response::Create(created(&c.path, c.mode.is_sequential())),
        Request::Multi(ops) => Response::Multi(ops.iter().map(largest_result).collect()),
        // The rest answer with at most a stat.
        _ => return true,
    };
    let reply = ServerFrame::Reply(Reply {
        xid,
        zxid: 0,
        outcome: Outcome::Ok(response),
    });
    reply.body_len() <= limit as usize
}

/// Whether every node `request` (a write) sets data on could be read back
/// by a client at the server's own frame limit: data that no client can
/// read must not be written. (The replicated data limit is checked where
/// the write is prepared; this one depends on this server's configuration,
/// so it is judged here, before the log.)
pub(super) fn data_readable(request: &Request, server_limit: u32) -> bool {
    let readable = |data: &bytes::Bytes| {
        if data.len() + REPLY_SLACK_BYTES <= server_limit as usize {
            return true;
        }
        let reply = ServerFrame::Reply(Reply {
            xid: Xid::new(1).expect("1 is a request xid"),
            zxid: 0,
            outcome: Outcome::Ok(Response::GetData {
                data: data.clone(),
                stat: Stat::default(),
            }),
        });
        reply.body_len() <= server_limit as usize
    };
    match request {
        Request::Create(c) => readable(&c.data),
        Request::SetData(s) => readable(&s.data),
        Request::Multi(ops) => ops.iter().all(|op| match op {
            MultiOp::Create(c) => readable(&c.data),
            MultiOp::SetData(s) => readable(&s.data),
            MultiOp::Delete(_) | MultiOp::Check(_) => true,
        }),
        _ => true,
    }
}

/// The bytes of paths and data `request` (a write) could add to `tree`:
/// what the data quota is checked against before the write is proposed.
/// A SetData counts only what it grows the node by, so shrinking data or
/// deleting is always possible over quota.
fn data_added(request: &Request, tree: &crate::tree::DataTree) -> u64 {
    let created = |c: &zab_proto::CreateRequest| {
        let suffix = if c.mode.is_sequential() {
            SEQUENCE_DIGITS
        } else {
            0
        };
        let acl = c.acl.as_deref().map_or(0, crate::acl::charge);
        (c.path.len() + suffix + c.data.len()) as u64 + acl
    };
    let grown = |path: &str, data: &bytes::Bytes| {
        let now = tree.get(path).map_or(0, |(d, _)| d.len());
        data.len().saturating_sub(now) as u64
    };
    match request {
        Request::Create(c) => created(c),
        Request::SetData(s) => grown(&s.path, &s.data),
        Request::Multi(ops) => ops
            .iter()
            .map(|op| match op {
                MultiOp::Create(c) => created(c),
                MultiOp::SetData(s) => grown(&s.path, &s.data),
                MultiOp::Delete(_) | MultiOp::Check(_) => 0,
            })
            .sum(),
        Request::SetAcl { path, acl, .. } => {
            let now = tree.acl(path).map_or(0, |(a, _)| crate::acl::charge(a));
            crate::acl::charge(acl).saturating_sub(now)
        }
        _ => 0,
    }
}

fn largest_result(op: &MultiOp) -> MultiResult {
    match op {
        MultiOp::Create(c) => MultiResult::Create(created(&c.path, c.mode.is_sequential())),
        MultiOp::Delete(_) => MultiResult::Delete,
        MultiOp::SetData(_) => MultiResult::SetData(Stat::default()),
        MultiOp::Check(_) => MultiResult::Check,
    }
}

fn created(path: &str, sequential: bool) -> CreateReply {
    let mut path = path.to_owned();
    if sequential {
        path.extend(std::iter::repeat_n('0', SEQUENCE_DIGITS));
    }
    CreateReply {
        path,
        stat: Stat::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use zab_proto::{CreateMode, CreateRequest};

    fn create(path: &str, mode: CreateMode) -> MultiOp {
        MultiOp::Create(CreateRequest {
            path: path.into(),
            data: Bytes::new(),
            mode,
            ttl_ms: 0,
            acl: None,
        })
    }

    #[test]
    fn an_oversized_reply_becomes_frame_too_large_with_its_xid() {
        let xid = Xid::new(7).expect("a request xid");
        let big = ServerFrame::Reply(Reply {
            xid,
            zxid: 9,
            outcome: Outcome::Ok(Response::GetData {
                data: Bytes::from(vec![0u8; 5000]),
                stat: Stat::default(),
            }),
        });
        match fitted(big.clone(), 4096) {
            ServerFrame::Reply(r) => {
                assert_eq!((r.xid, r.zxid), (xid, 9));
                assert_eq!(r.outcome, Outcome::Err(ErrorCode::FrameTooLarge));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(fitted(big.clone(), 8192), big);
    }

    #[test]
    fn a_multi_is_judged_by_its_largest_success_reply() {
        let xid = Xid::new(1).expect("a request xid");
        let ops: Vec<MultiOp> = (0..60)
            .map(|i| create(&format!("/q/n{i}-"), CreateMode::PersistentSequential))
            .collect();
        let exact = ServerFrame::Reply(Reply {
            xid,
            zxid: 0,
            outcome: Outcome::Ok(Response::Multi(ops.iter().map(largest_result).collect())),
        })
        .body_len() as u32;
        let multi = Request::Multi(ops);
        assert!(write_reply_fits(xid, &multi, exact));
        assert!(!write_reply_fits(xid, &multi, exact - 1));
        // Sequential names count at full length: ten digits each.
        let plain = Request::Multi(
            (0..60)
                .map(|i| create(&format!("/q/n{i}-"), CreateMode::Persistent))
                .collect(),
        );
        assert!(write_reply_fits(xid, &plain, exact - 60 * 10));
    }
}
