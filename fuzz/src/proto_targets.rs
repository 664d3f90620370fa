//! zab-proto: framing and every message decoder. The crate claims a
//! canonical encoding ("a frame that decodes re-encodes to the same
//! bytes"), so every success is re-encoded and compared.

use bytes::{BufMut, Bytes, BytesMut};
use zab_proto::{
    decode_frame, negotiate_frame_bytes, negotiate_timeout_ms, ConnectReply, ConnectRequest,
    OpCode, Outcome, Reader, Reply, Request, RequestFrame, Response, ServerFrame, Xid,
    FRAME_BYTES_DEFAULT, FRAME_BYTES_MIN, HANDSHAKE_FRAME_BYTES_MAX, LEN_PREFIX_BYTES,
};

use crate::Input;

/// The opcode a fuzzed reply is decoded as: a fixed function of the xid
/// (as in zab-proto's own fuzz loop), `None` for one residue.
fn opcode_for(xid: Xid) -> Option<OpCode> {
    let all = OpCode::ALL;
    let i = usize::try_from(xid.get()).unwrap_or(0) % (all.len() + 1);
    all.get(i).copied()
}

/// `body` with its length prefix: what an encoder must reproduce.
fn framed(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(LEN_PREFIX_BYTES + body.len());
    out.put_u32(u32::try_from(body.len()).expect("fuzz inputs are far below 4 GiB"));
    out.put_slice(body);
    out
}

fn assert_canonical(what: &str, frame: &[u8], encode: impl FnOnce(&mut BytesMut)) {
    let mut again = BytesMut::new();
    encode(&mut again);
    assert_eq!(
        &again[..],
        frame,
        "{what}: decoded message is not canonical"
    );
}

/// A reply body re-encodes, inside a reply frame, to the same bytes.
fn assert_response_canonical(response: Response, body: &[u8]) {
    let frame = ServerFrame::Reply(Reply {
        xid: Xid::FIRST,
        zxid: 0,
        outcome: Outcome::Ok(response),
    });
    let mut again = BytesMut::new();
    frame.encode(&mut again);
    // Length prefix, xid, zxid, err.
    let header = LEN_PREFIX_BYTES + 4 + 8 + 4;
    assert_eq!(&again[header..], body, "reply body is not canonical");
}

/// Every decoder on one frame body.
fn decode_all(body: &Bytes) {
    let frame = framed(body);
    if let Ok(m) = ConnectRequest::decode(body.clone()) {
        assert_canonical("ConnectRequest", &frame, |b| m.encode(b));
    }
    if let Ok(m) = ConnectReply::decode(body.clone()) {
        assert_eq!(m.body_len(), body.len());
        assert_canonical("ConnectReply", &frame, |b| m.encode(b));
    }
    if let Ok(m) = RequestFrame::decode(body.clone()) {
        assert_eq!(m.body_len(), body.len());
        assert_canonical("RequestFrame", &frame, |b| m.encode(b));
    }
    if let Ok(m) = ServerFrame::decode(body.clone(), opcode_for) {
        assert_eq!(m.body_len(), body.len());
        assert_canonical("ServerFrame", &frame, |b| m.encode(b));
    }
    for &op in OpCode::ALL {
        if let Ok(r) = Response::decode(op, body.clone()) {
            // A reply names the opcode whose layout it has (a CreateAcl is
            // answered as a Create).
            assert_eq!(r.opcode(), op.reply());
            assert_response_canonical(r, body);
        }
    }
}

/// A receive buffer: `decode_frame` under a limit chosen by the first byte,
/// then every decoder on each body taken off. `Ok(None)` and a rejected
/// length must consume nothing.
pub fn proto_frame_stream(data: &[u8]) {
    let mut input = Input::new(data);
    let maxes = [
        0,
        1,
        16,
        64,
        HANDSHAKE_FRAME_BYTES_MAX,
        FRAME_BYTES_MIN,
        FRAME_BYTES_DEFAULT,
        u32::MAX,
    ];
    let max = maxes[usize::from(input.u8()) % maxes.len()];
    let mut buf = BytesMut::from(input.rest());
    loop {
        let before = buf.clone();
        match decode_frame(&mut buf, max) {
            Ok(Some(body)) => {
                let used = before.len() - buf.len();
                assert_eq!(used, LEN_PREFIX_BYTES + body.len());
                assert!(body.len() <= max as usize);
                assert_eq!(&before[LEN_PREFIX_BYTES..used], &body[..]);
                decode_all(&body);
            }
            Ok(None) => {
                assert_eq!(buf, before, "Ok(None) consumed input");
                return;
            }
            Err(_) => {
                assert_eq!(buf, before, "a rejected frame was consumed");
                return;
            }
        }
    }
}

/// A client frame body (`RequestFrame::decode`), and the same bytes as a
/// logged request record (`Request::read_record`).
pub fn proto_request(data: &[u8]) {
    let body = Bytes::copy_from_slice(data);
    if let Ok(m) = RequestFrame::decode(body.clone()) {
        assert_eq!(m.body_len(), data.len());
        assert_canonical("RequestFrame", &framed(data), |b| m.encode(b));
        if let RequestFrame::Op { request, .. } = &m {
            // The record form is the frame without its xid.
            let mut record = BytesMut::new();
            request.write_record(&mut record);
            assert_eq!(&record[..], &data[4..], "record differs from the frame");
            let mut r = Reader::new(record.freeze(), "record");
            let back = Request::read_record(&mut r).expect("a written record reads back");
            assert_eq!(&back, request);
            r.finish().expect("a written record is read whole");
        }
    }
    let mut r = Reader::new(body, "record");
    if let Ok(request) = Request::read_record(&mut r) {
        if r.finish().is_ok() {
            let mut again = BytesMut::new();
            request.write_record(&mut again);
            assert_eq!(&again[..], data, "request record is not canonical");
        }
    }
}

/// A server frame body, decoded as the reply to the opcode the first byte
/// picks (or to none), and the rest as a bare reply body of that opcode.
pub fn proto_server_frame(data: &[u8]) {
    let mut input = Input::new(data);
    let all = OpCode::ALL;
    let op = all.get(usize::from(input.u8()) % (all.len() + 1)).copied();
    let rest = input.rest();
    let body = Bytes::copy_from_slice(rest);
    let frame = framed(rest);
    if let Ok(m) = ServerFrame::decode(body.clone(), |_| op) {
        assert_eq!(m.body_len(), rest.len());
        assert_canonical("ServerFrame", &frame, |b| m.encode(b));
    }
    if let Ok(m) = ServerFrame::decode(body.clone(), opcode_for) {
        assert_canonical("ServerFrame", &frame, |b| m.encode(b));
    }
    if let Some(op) = op {
        if let Ok(r) = Response::decode(op, body) {
            assert_eq!(r.opcode(), op.reply());
            assert_response_canonical(r, rest);
        }
    }
}

/// The handshake bodies: `ConnectRequest` (and the server's negotiation on
/// it) and `ConnectReply`.
pub fn proto_connect(data: &[u8]) {
    let body = Bytes::copy_from_slice(data);
    let frame = framed(data);
    if let Ok(m) = ConnectRequest::decode(body.clone()) {
        assert_eq!(data.len(), ConnectRequest::BODY_BYTES);
        assert_canonical("ConnectRequest", &frame, |b| m.encode(b));
        let _ = negotiate_frame_bytes(m.max_frame_bytes, FRAME_BYTES_DEFAULT);
        let _ = negotiate_timeout_ms(m.timeout_ms, 2_000, 60_000);
        let _ = format!("{m:?}");
    }
    if let Ok(m) = ConnectReply::decode(body) {
        assert_canonical("ConnectReply", &frame, |b| m.encode(b));
        let _ = format!("{m:?}");
    }
}
