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

/// Whether every reply `request` (a write) can get fits `limit`: its
/// success reply with every sequential name at full length. Error replies
/// are never larger than a success's.
pub(super) fn write_reply_fits(xid: Xid, request: &Request, limit: u32) -> bool {
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
pub(super) fn data_added(request: &Request, tree: &crate::tree::DataTree) -> u64 {
    let created = |c: &zab_proto::CreateRequest| {
        let suffix = if c.mode.is_sequential() {
            SEQUENCE_DIGITS
        } else {
            0
        };
        (c.path.len() + suffix + c.data.len()) as u64
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
