//! A deterministic fuzz loop over every decoder: random bytes and mutated
//! valid frames must never panic, and whatever decodes must be canonical
//! (re-encoding it reproduces the frame exactly).

use bytes::{BufMut, Bytes, BytesMut};
use zab_tests::sim::rng::Rng;

use crate::connect::ConnectRequest;
use crate::frame::{decode_frame, FRAME_BYTES_DEFAULT};
use crate::request::{OpCode, RequestFrame};
use crate::response::{ConnectReply, Response, ServerFrame};
use crate::testkit::{connect_replies, connect_requests, frame_of, request_frames, server_frames};
use crate::types::Xid;

/// The opcode a fuzzed reply is decoded as: any fixed function of the xid
/// will do, as long as the re-encoding check uses the same one.
fn opcode_for(xid: Xid) -> Option<OpCode> {
    let all = OpCode::ALL;
    let i = usize::try_from(xid.get()).unwrap_or(0) % (all.len() + 1);
    all.get(i).copied() // `None` for one residue: an unexpected xid
}

/// What the fuzz loop reached, so the test can show it is not vacuous.
#[derive(Default, Debug)]
struct Reached {
    /// Bodies some message decoder accepted (and re-encoded identically).
    decoded: usize,
    /// Bodies every message decoder rejected.
    rejected: usize,
    /// Streams whose framing failed (length over the limit).
    too_large: usize,
}

/// Runs every decoder on one body; each success must re-encode to `frame`.
fn decode_all(frame: &[u8], body: &Bytes, reached: &mut Reached) {
    let mut any = false;
    let check = |encode: &dyn Fn(&mut BytesMut)| {
        let mut again = BytesMut::new();
        encode(&mut again);
        assert_eq!(&again[..], frame, "decoded message is not canonical");
        true
    };
    if let Ok(m) = ConnectRequest::decode(body.clone()) {
        any |= check(&|b| m.encode(b));
    }
    if let Ok(m) = ConnectReply::decode(body.clone()) {
        any |= check(&|b| m.encode(b));
    }
    if let Ok(m) = RequestFrame::decode(body.clone()) {
        any |= check(&|b| m.encode(b));
    }
    if let Ok(m) = ServerFrame::decode(body.clone(), opcode_for) {
        any |= check(&|b| m.encode(b));
    }
    // Reply bodies on their own, as every opcode.
    for &op in OpCode::ALL {
        if let Ok(r) = Response::decode(op, body.clone()) {
            assert_eq!(r.opcode(), op.reply());
        }
    }
    if any {
        reached.decoded += 1;
    } else {
        reached.rejected += 1;
    }
}

/// Takes frames off `bytes` until more input is needed or framing fails.
fn drain(bytes: &[u8], max: u32, reached: &mut Reached) {
    let mut buf = BytesMut::from(bytes);
    loop {
        let before = buf.clone();
        match decode_frame(&mut buf, max) {
            Ok(Some(body)) => {
                let used = before.len() - buf.len();
                decode_all(&before[..used], &body, reached);
            }
            Ok(None) => {
                assert_eq!(buf, before, "Ok(None) consumed input");
                return;
            }
            Err(_) => {
                reached.too_large += 1;
                assert_eq!(buf, before, "a rejected frame was consumed");
                return;
            }
        }
    }
}

fn valid_frames() -> Vec<Bytes> {
    let mut all = Vec::new();
    all.extend(connect_requests().iter().map(|m| frame_of(|b| m.encode(b))));
    all.extend(connect_replies().iter().map(|m| frame_of(|b| m.encode(b))));
    all.extend(request_frames().iter().map(|m| frame_of(|b| m.encode(b))));
    all.extend(
        server_frames()
            .iter()
            .map(|(m, _)| frame_of(|b| m.encode(b))),
    );
    all
}

#[test]
fn fuzz_random_and_mutated_input_never_panics() {
    let mut rng = Rng::new(0x9E37_79B9_7F4A_7C15);
    let valid = valid_frames();
    let maxes = [0, 1, 16, 64, 4096, FRAME_BYTES_DEFAULT];
    let mut reached = Reached::default();
    for _ in 0..20_000 {
        let max = maxes[rng.index(maxes.len())];
        // Raw noise: mostly exercises the length prefix.
        let len = rng.index(64);
        drain(&rng.bytes(len), max, &mut reached);

        // Noise behind a correct prefix: exercises headers and fields.
        let body_len = rng.index(96);
        let mut framed = BytesMut::new();
        framed.put_u32(u32::try_from(body_len).unwrap_or(0));
        framed.put_slice(&rng.bytes(body_len));
        drain(&framed, FRAME_BYTES_DEFAULT, &mut reached);

        // Mutations of valid back-to-back frames.
        let mut wire = Vec::new();
        for _ in 0..1 + rng.index(3) {
            wire.extend_from_slice(&valid[rng.index(valid.len())]);
        }
        for _ in 0..1 + rng.index(4) {
            match rng.index(5) {
                0 => {
                    let at = rng.index(wire.len());
                    wire[at] ^= 1 << rng.index(8);
                }
                1 => {
                    let at = rng.index(wire.len());
                    wire[at] = rng.next_u64() as u8;
                }
                2 => wire.truncate(rng.index(wire.len() + 1).max(1)),
                3 => {
                    let at = rng.index(wire.len() + 1);
                    wire.insert(at, rng.next_u64() as u8);
                }
                _ => {
                    // A huge or odd length/count somewhere in the frame.
                    let at = rng.index(wire.len());
                    let value = [u32::MAX, 0x8000_0000, 0, 1, rng.next_u64() as u32][rng.index(5)];
                    for (i, b) in value.to_be_bytes().into_iter().enumerate() {
                        if let Some(slot) = wire.get_mut(at + i) {
                            *slot = b;
                        }
                    }
                }
            }
        }
        let max = if rng.index(2) == 0 {
            FRAME_BYTES_DEFAULT
        } else {
            max
        };
        drain(&wire, max, &mut reached);
    }
    eprintln!("fuzz reached: {reached:?}");
    // Mutations of valid frames must keep reaching the field decoders, and
    // the noise must keep hitting every kind of rejection.
    assert!(reached.decoded > 5_000, "{reached:?}");
    assert!(reached.rejected > 5_000, "{reached:?}");
    assert!(reached.too_large > 5_000, "{reached:?}");
}

#[test]
fn valid_frames_back_to_back_decode_in_order() {
    let valid = valid_frames();
    let mut stream = BytesMut::new();
    for f in &valid {
        stream.put_slice(f);
    }
    for f in &valid {
        let body = decode_frame(&mut stream, FRAME_BYTES_DEFAULT)
            .expect("within the limit")
            .expect("whole frame buffered");
        assert_eq!(&body[..], &f[4..]);
    }
    assert!(stream.is_empty());
}
