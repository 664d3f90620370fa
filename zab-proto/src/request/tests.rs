use super::*;
use crate::testkit::{self, body_of, raw_body, request_frames};

#[test]
fn samples_cover_every_opcode_and_multi_op() {
    let mut ops: Vec<OpCode> = request_frames()
        .iter()
        .filter_map(|f| match f {
            RequestFrame::Op { request, .. } => Some(request.opcode()),
            RequestFrame::Ping => None,
        })
        .collect();
    ops.sort_by_key(|op| op.to_u8());
    ops.dedup();
    assert_eq!(ops, OpCode::ALL);
    assert!(request_frames().contains(&RequestFrame::Ping));
    let multi_ops: Vec<OpCode> = request_frames()
        .iter()
        .filter_map(|f| match f {
            RequestFrame::Op {
                request: Request::Multi(ops),
                ..
            } => Some(ops.iter().map(MultiOp::opcode).collect::<Vec<_>>()),
            _ => None,
        })
        .flatten()
        .collect();
    for op in OpCode::ALL.iter().filter(|op| op.is_multi_op()) {
        assert!(multi_ops.contains(op), "{op:?} missing from multi samples");
    }
}

#[test]
fn round_trip_every_variant() {
    for frame in request_frames() {
        let body = body_of(|b| frame.encode(b));
        assert_eq!(body.len(), frame.body_len(), "{frame:?}");
        assert_eq!(RequestFrame::decode(body), Ok(frame.clone()));
    }
}

#[test]
fn data_is_a_slice_of_the_frame() {
    let frame = RequestFrame::Op {
        xid: Xid::FIRST,
        request: Request::SetData(SetDataRequest {
            path: "/a".into(),
            data: Bytes::from(vec![5; 64]),
            version: 0,
        }),
    };
    let body = body_of(|b| frame.encode(b));
    let range = body.as_ptr() as usize..body.as_ptr() as usize + body.len();
    let Ok(RequestFrame::Op {
        request: Request::SetData(d),
        ..
    }) = RequestFrame::decode(body.clone())
    else {
        panic!("expected a SetData request");
    };
    assert!(
        range.contains(&(d.data.as_ptr() as usize)),
        "data was copied"
    );
}

#[test]
fn every_truncation_is_an_error() {
    for frame in request_frames() {
        testkit::assert_truncations_fail(&body_of(|b| frame.encode(b)), RequestFrame::decode);
    }
}

#[test]
fn trailing_bytes_are_rejected() {
    for frame in request_frames() {
        let got = testkit::with_trailing_byte(&body_of(|b| frame.encode(b)), RequestFrame::decode);
        assert!(
            matches!(got, Err(DecodeError::TrailingBytes { extra: 1, .. })),
            "{frame:?}: {got:?}"
        );
    }
}

#[test]
fn a_multi_read_holds_only_reads() {
    // A MultiRead of one SetData op (with an empty path).
    let mut body = vec![0, 0, 0, 1, OpCode::MultiRead.to_u8(), 0, 0, 0, 1];
    body.extend_from_slice(&[OpCode::SetData.to_u8(), 0, 0, 0, 0]);
    assert!(matches!(
        RequestFrame::decode(raw_body(&body)),
        Err(DecodeError::BadValue {
            field: "ops.opcode",
            value: 5,
            ..
        })
    ));
}

#[test]
fn unknown_opcodes_are_typed_errors() {
    for opcode in [0u8, 24, 99, 255] {
        let body = raw_body(&[0, 0, 0, 1, opcode]);
        assert_eq!(
            RequestFrame::decode(body),
            Err(DecodeError::UnknownOpCode { opcode })
        );
    }
    // A Sync inside a multi; then an unknown op inside a multi.
    let mut body = vec![0, 0, 0, 1, OpCode::Multi.to_u8(), 0, 0, 0, 1];
    body.extend_from_slice(&[OpCode::Sync.to_u8(), 0, 0, 0, 1, b'/', 0, 0, 0, 0]);
    assert_eq!(
        RequestFrame::decode(raw_body(&body)),
        Err(DecodeError::NotAMultiOp {
            opcode: OpCode::Sync
        })
    );
    body[9] = 77;
    assert_eq!(
        RequestFrame::decode(raw_body(&body)),
        Err(DecodeError::UnknownOpCode { opcode: 77 })
    );
}

#[test]
fn xid_and_opcode_must_agree() {
    // A ping with an ordinary xid, an op with the ping xid or xid -1.
    for (xid, opcode) in [
        (5i32, PING_OPCODE),
        (-1, PING_OPCODE),
        (-2, OpCode::Sync.to_u8()),
        (-1, OpCode::CloseSession.to_u8()),
        (i32::MIN, OpCode::CloseSession.to_u8()),
    ] {
        let mut body = xid.to_be_bytes().to_vec();
        body.push(opcode);
        assert_eq!(
            RequestFrame::decode(raw_body(&body)),
            Err(DecodeError::BadXid { xid, opcode }),
            "xid {xid} opcode {opcode}"
        );
    }
}

#[test]
fn bad_enum_bool_and_utf8_values_are_typed_errors() {
    let exists = |watch: u8| raw_body(&[0, 0, 0, 1, 3, 0, 0, 0, 1, b'/', watch]);
    assert_eq!(
        RequestFrame::decode(exists(2)),
        Err(DecodeError::BadValue {
            message: "Exists request",
            field: "watch",
            value: 2
        })
    );
    let add_watch = raw_body(&[0, 0, 0, 1, 10, 0, 0, 0, 1, b'/', 2]);
    assert_eq!(
        RequestFrame::decode(add_watch),
        Err(DecodeError::BadValue {
            message: "AddWatch request",
            field: "mode",
            value: 2
        })
    );
    let remove = raw_body(&[0, 0, 0, 1, 11, 0, 0, 0, 1, b'/', 0]);
    assert_eq!(
        RequestFrame::decode(remove),
        Err(DecodeError::BadValue {
            message: "RemoveWatches request",
            field: "kind",
            value: 0
        })
    );
    let create = raw_body(&[
        0, 0, 0, 1, 1, 0, 0, 0, 1, b'/', 0, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 0,
    ]);
    assert_eq!(
        RequestFrame::decode(create),
        Err(DecodeError::BadValue {
            message: "Create request",
            field: "mode",
            value: 7
        })
    );
    let sync = raw_body(&[0, 0, 0, 1, 9, 0, 0, 0, 2, 0xC3, 0x28]);
    assert_eq!(
        RequestFrame::decode(sync),
        Err(DecodeError::BadUtf8 {
            message: "Sync request",
            field: "path"
        })
    );
}

#[test]
fn huge_counts_and_lengths_are_truncations_not_allocations() {
    // A multi claiming 2^32-1 ops, a SetWatches claiming 2^32-1 paths,
    // a Sync whose path claims 4 GiB: each inside a tiny body.
    let mut multi = vec![0, 0, 0, 1, OpCode::Multi.to_u8()];
    multi.extend_from_slice(&u32::MAX.to_be_bytes());
    let mut watches = vec![
        0,
        0,
        0,
        1,
        OpCode::SetWatches.to_u8(),
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
    ];
    watches.extend_from_slice(&u32::MAX.to_be_bytes());
    let mut sync = vec![0, 0, 0, 1, OpCode::Sync.to_u8()];
    sync.extend_from_slice(&u32::MAX.to_be_bytes());
    sync.extend_from_slice(b"/abc");
    for (body, field) in [(multi, "ops"), (watches, "data"), (sync, "path")] {
        let got = RequestFrame::decode(raw_body(&body));
        assert!(
            matches!(got, Err(DecodeError::Truncated { field: f, .. }) if f == field),
            "{got:?}"
        );
    }
}
