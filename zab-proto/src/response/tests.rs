use super::*;
use crate::testkit::{self, body_of, connect_replies, raw_body, server_frames, stat, xid};

fn decode_as(body: Bytes, op: Option<OpCode>) -> Result<ServerFrame, DecodeError> {
    ServerFrame::decode(body, |_| op)
}

#[test]
fn samples_cover_every_response_variant() {
    let mut ops: Vec<OpCode> = server_frames()
        .iter()
        .filter_map(|(f, _)| match f {
            ServerFrame::Reply(Reply {
                outcome: Outcome::Ok(r),
                ..
            }) => Some(r.opcode()),
            _ => None,
        })
        .collect();
    ops.sort_by_key(|op| op.to_u8());
    ops.dedup();
    let mut replies: Vec<OpCode> = OpCode::ALL.iter().map(|op| op.reply()).collect();
    replies.sort_by_key(|op| op.to_u8());
    replies.dedup();
    assert_eq!(ops, replies);
    let frames: Vec<ServerFrame> = server_frames().into_iter().map(|(f, _)| f).collect();
    let has = |p: fn(&ServerFrame) -> bool| frames.iter().any(p);
    assert!(has(|f| matches!(f, ServerFrame::Ping { .. })));
    assert!(has(|f| matches!(f, ServerFrame::Watch { .. })));
    assert!(has(|f| matches!(
        f,
        ServerFrame::Reply(Reply {
            outcome: Outcome::Err(_),
            ..
        })
    )));
    assert!(has(|f| matches!(
        f,
        ServerFrame::Reply(Reply {
            outcome: Outcome::MultiErr { .. },
            ..
        })
    )));
    assert!(has(|f| matches!(
        f,
        ServerFrame::Reply(Reply {
            outcome: Outcome::Ok(Response::Exists(None)),
            ..
        })
    )));
    for kind in WatchEventKind::ALL {
        assert!(frames
            .iter()
            .any(|f| matches!(f, ServerFrame::Watch { event, .. } if event.kind == *kind)));
    }
}

#[test]
fn round_trip_every_variant() {
    for (frame, op) in server_frames() {
        let body = body_of(|b| frame.encode(b));
        assert_eq!(body.len(), frame.body_len(), "{frame:?}");
        let mut asked = None;
        let got = ServerFrame::decode(body, |x| {
            asked = Some(x);
            op
        });
        assert_eq!(got, Ok(frame.clone()));
        let expected_ask = match &frame {
            ServerFrame::Reply(r) => Some(r.xid),
            _ => None,
        };
        assert_eq!(
            asked, expected_ask,
            "opcode_of called wrongly for {frame:?}"
        );
    }
    for reply in connect_replies() {
        let body = body_of(|b| reply.encode(b));
        assert_eq!(body.len(), reply.body_len());
        assert_eq!(ConnectReply::decode(body), Ok(reply.clone()));
    }
}

#[test]
fn response_decode_takes_the_reply_body() {
    for (frame, op) in server_frames() {
        let ServerFrame::Reply(Reply {
            outcome: Outcome::Ok(response),
            ..
        }) = frame.clone()
        else {
            continue;
        };
        let body = body_of(|b| frame.encode(b)).slice(16..);
        let op = op.expect("replies have an opcode");
        assert_eq!(Response::decode(op, body), Ok(response));
    }
}

#[test]
fn every_truncation_is_an_error() {
    for (frame, op) in server_frames() {
        testkit::assert_truncations_fail(&body_of(|b| frame.encode(b)), |b| decode_as(b, op));
    }
    for reply in connect_replies() {
        testkit::assert_truncations_fail(&body_of(|b| reply.encode(b)), ConnectReply::decode);
    }
}

#[test]
fn trailing_bytes_are_rejected() {
    for (frame, op) in server_frames() {
        let got = testkit::with_trailing_byte(&body_of(|b| frame.encode(b)), |b| decode_as(b, op));
        assert!(
            matches!(got, Err(DecodeError::TrailingBytes { extra: 1, .. })),
            "{frame:?}: {got:?}"
        );
    }
    for reply in connect_replies() {
        let got = testkit::with_trailing_byte(&body_of(|b| reply.encode(b)), ConnectReply::decode);
        assert!(
            matches!(got, Err(DecodeError::TrailingBytes { extra: 1, .. })),
            "{got:?}"
        );
    }
}

#[test]
fn data_is_a_slice_of_the_frame() {
    let frame = ServerFrame::Reply(Reply {
        xid: xid(2),
        zxid: 9,
        outcome: Outcome::Ok(Response::GetData {
            data: Bytes::from(vec![1; 50]),
            stat: stat(),
        }),
    });
    let body = body_of(|b| frame.encode(b));
    let range = body.as_ptr() as usize..body.as_ptr() as usize + body.len();
    let Ok(ServerFrame::Reply(Reply {
        outcome: Outcome::Ok(Response::GetData { data, .. }),
        ..
    })) = decode_as(body.clone(), Some(OpCode::GetData))
    else {
        panic!("expected a GetData reply");
    };
    assert!(range.contains(&(data.as_ptr() as usize)), "data was copied");
}

#[test]
fn errors_carry_no_body_except_for_multi() {
    let header = |x: i32, err: i32| {
        let mut b = x.to_be_bytes().to_vec();
        b.extend_from_slice(&7u64.to_be_bytes());
        b.extend_from_slice(&err.to_be_bytes());
        b
    };
    let no_node = header(3, -101);
    assert_eq!(
        decode_as(raw_body(&no_node), Some(OpCode::GetData)),
        Ok(ServerFrame::Reply(Reply {
            xid: xid(3),
            zxid: 7,
            outcome: Outcome::Err(ErrorCode::NoNode)
        }))
    );
    // The same header for a multi needs its (here empty) result list.
    let got = decode_as(raw_body(&no_node), Some(OpCode::Multi));
    assert!(
        matches!(
            got,
            Err(DecodeError::Truncated {
                field: "errors",
                ..
            })
        ),
        "{got:?}"
    );
    let mut multi = no_node.clone();
    multi.extend_from_slice(&[0, 0, 0, 0]);
    assert_eq!(
        decode_as(raw_body(&multi), Some(OpCode::Multi)),
        Ok(ServerFrame::Reply(Reply {
            xid: xid(3),
            zxid: 7,
            outcome: Outcome::MultiErr {
                err: ErrorCode::NoNode,
                errors: vec![]
            }
        }))
    );
    // Unknown codes are kept, not rejected.
    assert_eq!(
        decode_as(raw_body(&header(3, -4242)), Some(OpCode::Delete)),
        Ok(ServerFrame::Reply(Reply {
            xid: xid(3),
            zxid: 7,
            outcome: Outcome::Err(ErrorCode::Unknown(-4242))
        }))
    );
    // Pings and notifications cannot carry an error.
    for x in [XID_PING, XID_NOTIFICATION] {
        let got = decode_as(raw_body(&header(x, -101)), None);
        assert!(
            matches!(
                got,
                Err(DecodeError::BadErr {
                    err: ErrorCode::NoNode,
                    ..
                })
            ),
            "{got:?}"
        );
    }
}

#[test]
fn replies_to_no_outstanding_request_are_rejected() {
    let mut body = 5i32.to_be_bytes().to_vec();
    body.extend_from_slice(&[0; 12]);
    assert_eq!(
        decode_as(raw_body(&body), None),
        Err(DecodeError::UnexpectedXid { xid: 5 })
    );
    body[..4].copy_from_slice(&(-3i32).to_be_bytes());
    assert_eq!(
        ServerFrame::decode(raw_body(&body), |_| panic!("not asked for reserved xids")),
        Err(DecodeError::UnexpectedXid { xid: -3 })
    );
}

#[test]
fn bad_enum_values_are_typed_errors() {
    // A notification of kind 5 (reserved).
    let mut watch = (-1i32).to_be_bytes().to_vec();
    watch.extend_from_slice(&[0; 12]);
    watch.extend_from_slice(&[5, 0, 0, 0, 1, b'/', 0, 0, 0, 0, 0, 0, 0, 1]);
    assert_eq!(
        decode_as(raw_body(&watch), None),
        Err(DecodeError::BadValue {
            message: "watch notification",
            field: "kind",
            value: 5
        })
    );
    // An Exists reply with presence flag 2.
    assert_eq!(
        Response::decode(OpCode::Exists, raw_body(&[2])),
        Err(DecodeError::BadValue {
            message: "Exists reply",
            field: "stat present",
            value: 2
        })
    );
    // Multi results naming a non-multi op, then an unknown op.
    let mut multi = vec![0, 0, 0, 1, OpCode::Sync.to_u8()];
    assert_eq!(
        Response::decode(OpCode::Multi, raw_body(&multi)),
        Err(DecodeError::NotAMultiOp {
            opcode: OpCode::Sync
        })
    );
    multi[4] = 99;
    assert_eq!(
        Response::decode(OpCode::Multi, raw_body(&multi)),
        Err(DecodeError::UnknownOpCode { opcode: 99 })
    );
    // Handshake answers: unknown status, a refusal with code 0.
    assert_eq!(
        ConnectReply::decode(raw_body(&[3])),
        Err(DecodeError::BadValue {
            message: "ConnectReply",
            field: "status",
            value: 3
        })
    );
    assert_eq!(
        ConnectReply::decode(raw_body(&[2, 0, 0, 0, 0, 0, 0, 0, 0])),
        Err(DecodeError::BadErr {
            message: "ConnectRefused",
            err: ErrorCode::Ok
        })
    );
}

#[test]
fn connect_response_debug_hides_the_password() {
    let Some(ConnectReply::Accepted(a)) = connect_replies().into_iter().next() else {
        panic!("first sample is accepted");
    };
    let text = format!("{a:?}");
    assert!(
        text.contains("<redacted>") && !text.contains("password: ["),
        "{text}"
    );
}
