use super::*;
use std::error::Error;
use zab_tests::sim::rng::Rng;

fn v(epoch: u32, counter: u32, leader: u64) -> Vote {
    Vote {
        epoch: Epoch(epoch),
        zxid: Zxid::new(Epoch(epoch), counter),
        leader: PeerId(leader),
    }
}

/// One or more instances of every variant, in declaration order, with
/// extreme values so byte order and width mistakes show up.
fn samples() -> Vec<Message> {
    let z = Zxid::new(Epoch(7), 42);
    vec![
        Message::Notification {
            vote: v(3, 9, 2),
            round: u64::MAX,
            state: ServerState::Looking,
            standing: Standing::Member(EnsembleId(u64::MAX)),
        },
        Message::Notification {
            vote: v(u32::MAX, u32::MAX, u64::MAX),
            round: 0,
            state: ServerState::Following,
            standing: Standing::Blank,
        },
        Message::Notification {
            vote: v(1, 1, 1),
            round: 5,
            state: ServerState::Leading,
            standing: Standing::Recovering(EnsembleId(0x0102_0304_0506_0708)),
        },
        Message::Notification {
            vote: v(0, 0, 0),
            round: 1,
            state: ServerState::Observing,
            standing: Standing::Recovering(EnsembleId::NONE),
        },
        Message::FollowerInfo {
            accepted_epoch: Epoch(4),
            observer: false,
            join: 1,
            standing: Standing::Member(EnsembleId(9)),
        },
        Message::FollowerInfo {
            accepted_epoch: Epoch(u32::MAX),
            observer: true,
            join: u64::MAX,
            standing: Standing::Blank,
        },
        Message::LeaderInfo {
            term: Epoch(5),
            epoch: Epoch(6),
            join: 3,
            ensemble: EnsembleId(u64::MAX),
        },
        Message::AckEpoch {
            epoch: Epoch(6),
            join: 3,
            fresh: true,
            current_epoch: Epoch(5),
            last_zxid: z,
            log_start: Zxid(0x0102_0304_0506_0708),
        },
        Message::AckEpoch {
            epoch: Epoch(6),
            join: 3,
            fresh: false,
            current_epoch: Epoch(0),
            last_zxid: Zxid::ZERO,
            log_start: Zxid::ZERO,
        },
        Message::Diff {
            epoch: Epoch(6),
            join: 3,
        },
        Message::Trunc {
            epoch: Epoch(6),
            join: 3,
            to: z,
        },
        Message::Snapshot {
            epoch: Epoch(6),
            join: 3,
            zxid: z,
            data: Bytes::from_static(b"snapshot-bytes\x00\xff"),
        },
        Message::Snapshot {
            epoch: Epoch(6),
            join: 3,
            zxid: Zxid::ZERO,
            data: Bytes::new(),
        },
        Message::NewLeader {
            epoch: Epoch(6),
            join: 3,
            current_epoch: Epoch(6),
            zxid: z,
        },
        Message::AckNewLeader {
            epoch: Epoch(6),
            join: 3,
        },
        Message::UpToDate {
            epoch: Epoch(6),
            committed: z,
        },
        Message::Proposal {
            epoch: Epoch(6),
            prev: Zxid(0x0000_0006_0000_0001),
            txn: Txn {
                zxid: z,
                payload: Bytes::from(vec![0xAB; 300]),
            },
        },
        Message::Proposal {
            epoch: Epoch(6),
            prev: Zxid(0x0000_0006_0000_0001),
            txn: Txn {
                zxid: z,
                payload: Bytes::new(),
            },
        },
        Message::Ack {
            epoch: Epoch(6),
            zxid: z,
        },
        Message::Commit {
            epoch: Epoch(6),
            zxid: z,
        },
        Message::Ping {
            epoch: Epoch(6),
            round: 77,
        },
        Message::PingAck {
            epoch: Epoch(6),
            round: 77,
        },
        Message::NewEpoch {
            epoch: Epoch(6),
            new_epoch: Epoch(7),
            last: Zxid::new(Epoch(6), u32::MAX),
        },
        Message::AckNewEpoch {
            epoch: Epoch(6),
            new_epoch: Epoch(7),
        },
        Message::Forward {
            epoch: Epoch(6),
            id: RequestId(99),
            payload: Bytes::from_static(b"create /a"),
        },
        Message::Rejected {
            epoch: Epoch(6),
            id: RequestId(99),
        },
        Message::Sync {
            epoch: Epoch(6),
            id: RequestId(u64::MAX),
        },
        Message::SyncReply {
            epoch: Epoch(6),
            id: RequestId(100),
            zxid: z,
        },
        Message::Relay {
            epoch: Epoch(6),
            payload: Bytes::from_static(b"touch"),
        },
    ]
}

/// A proposal with a non-empty payload.
fn proposal() -> Message {
    samples()
        .into_iter()
        .find(|m| matches!(m, Message::Proposal { txn, .. } if !txn.payload.is_empty()))
        .expect("samples include a proposal with a payload")
}

fn buf_of(bytes: &[u8]) -> BytesMut {
    BytesMut::from(bytes)
}

/// Builds a frame with a correct length prefix around `body`.
fn frame(body: &[u8]) -> BytesMut {
    let mut b = BytesMut::new();
    b.put_u32(u32::try_from(body.len()).expect("test bodies are small"));
    b.put_slice(body);
    b
}

fn decode_one(bytes: &[u8]) -> Result<Option<Message>, CodecError> {
    decode(&mut buf_of(bytes), FRAME_BYTES_MAX)
}

#[test]
fn samples_cover_every_tag_in_declaration_order() {
    let mut tags: Vec<u8> = samples().iter().map(tag_of).collect();
    tags.dedup();
    assert_eq!(tags, (1..=22).collect::<Vec<u8>>());
}

#[test]
fn tag_names_match_message_kind() {
    for msg in samples() {
        assert_eq!(kind_of(tag_of(&msg)), Some(msg.kind()));
    }
    assert_eq!(kind_of(0), None);
    assert_eq!(kind_of(23), None);
}

#[test]
fn round_trip_every_variant() {
    for msg in samples() {
        let mut buf = BytesMut::new();
        encode(&msg, &mut buf);
        assert_eq!(&buf[..], &encode_to_bytes(&msg)[..], "{msg:?}");
        let decoded = decode(&mut buf, FRAME_BYTES_MAX);
        assert_eq!(decoded, Ok(Some(msg.clone())));
        assert!(buf.is_empty(), "{msg:?} left bytes behind");
    }
}

#[test]
fn wire_format_is_pinned() {
    let ping = Message::Ping {
        epoch: Epoch(1),
        round: 2,
    };
    let expected: &[u8] = &[0, 0, 0, 13, 14, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2];
    assert_eq!(&encode_to_bytes(&ping)[..], expected);

    let fwd = Message::Forward {
        epoch: Epoch(0x0102_0304),
        id: RequestId(5),
        payload: Bytes::from_static(b"xy"),
    };
    let expected: &[u8] = &[
        0, 0, 0, 19, 18, 1, 2, 3, 4, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 2, b'x', b'y',
    ];
    assert_eq!(&encode_to_bytes(&fwd)[..], expected);
}

#[test]
fn bytes_fields_are_slices_of_the_frame() {
    let mut buf = BytesMut::from(&encode_to_bytes(&proposal())[..]);
    let start = buf.as_ptr() as usize;
    let end = start + buf.len();
    let Ok(Some(Message::Proposal { txn, .. })) = decode(&mut buf, FRAME_BYTES_MAX) else {
        panic!("expected a proposal");
    };
    let p = txn.payload.as_ptr() as usize;
    assert!(
        p >= start && p + txn.payload.len() <= end,
        "payload was copied"
    );
}

#[test]
fn byte_by_byte_feeding_yields_none_until_complete() {
    for msg in samples() {
        let wire = encode_to_bytes(&msg);
        let mut buf = BytesMut::new();
        for (i, byte) in wire.iter().enumerate() {
            buf.put_u8(*byte);
            let got = decode(&mut buf, FRAME_BYTES_MAX);
            if i + 1 < wire.len() {
                assert_eq!(got, Ok(None), "{msg:?} at {i}");
                assert_eq!(buf.len(), i + 1, "incomplete frame was consumed");
            } else {
                assert_eq!(got, Ok(Some(msg.clone())));
            }
        }
        assert!(buf.is_empty());
    }
}

#[test]
fn frames_back_to_back() {
    let all = samples();
    let mut buf = BytesMut::new();
    for msg in &all {
        encode(msg, &mut buf);
    }
    for msg in &all {
        assert_eq!(decode(&mut buf, FRAME_BYTES_MAX), Ok(Some(msg.clone())));
    }
    assert_eq!(decode(&mut buf, FRAME_BYTES_MAX), Ok(None));
    assert!(buf.is_empty());
}

#[test]
fn oversized_length_rejected_before_reserving() {
    let mut buf = buf_of(&u32::MAX.to_be_bytes());
    let capacity = buf.capacity();
    let got = decode(&mut buf, FRAME_BYTES_MAX);
    assert_eq!(
        got,
        Err(CodecError::FrameTooLarge {
            len: u32::MAX as usize,
            max: FRAME_BYTES_MAX
        })
    );
    assert_eq!(buf.capacity(), capacity, "reserved for a rejected frame");
    assert_eq!(buf.len(), 4, "rejected frame was consumed");
}

#[test]
fn limit_is_inclusive_and_counts_the_body_only() {
    let wire = encode_to_bytes(&Message::Diff {
        epoch: Epoch(1),
        join: 0,
    });
    let body_len = wire.len() - LEN_PREFIX;
    assert!(decode(&mut buf_of(&wire), body_len).is_ok_and(|m| m.is_some()));
    assert_eq!(
        decode(&mut buf_of(&wire), body_len - 1),
        Err(CodecError::FrameTooLarge {
            len: body_len,
            max: body_len - 1
        })
    );
}

#[test]
fn incomplete_frame_reserves_room_for_the_rest() {
    let wire = encode_to_bytes(&proposal());
    let mut buf = buf_of(&wire[..6]);
    assert_eq!(decode(&mut buf, FRAME_BYTES_MAX), Ok(None));
    assert!(buf.capacity() >= wire.len());
}

#[test]
fn empty_frame_and_unknown_tags() {
    assert_eq!(decode_one(&frame(&[])), Err(CodecError::EmptyFrame));
    for t in [0u8, 23, 200, 255] {
        assert_eq!(decode_one(&frame(&[t])), Err(CodecError::UnknownTag(t)));
    }
}

#[test]
fn every_cut_point_is_incomplete_and_consumes_nothing() {
    for msg in samples() {
        let wire = encode_to_bytes(&msg);
        for cut in 0..wire.len() {
            let mut buf = buf_of(&wire[..cut]);
            assert_eq!(decode(&mut buf, FRAME_BYTES_MAX), Ok(None));
            assert_eq!(buf.len(), cut);
        }
    }
}

#[test]
fn every_truncated_body_is_an_error() {
    for msg in samples() {
        let wire = encode_to_bytes(&msg);
        let body = &wire[LEN_PREFIX..];
        for cut in 0..body.len() {
            let mut buf = frame(&body[..cut]);
            let got = decode(&mut buf, FRAME_BYTES_MAX);
            assert!(
                matches!(
                    got,
                    Err(CodecError::Truncated { .. } | CodecError::EmptyFrame)
                ),
                "{msg:?} cut at {cut}: {got:?}"
            );
            assert!(buf.is_empty(), "bad frame was not consumed");
        }
    }
}

#[test]
fn inner_length_beyond_frame_is_truncated() {
    // A FORWARD claiming a 4 GiB payload inside a 21-byte body.
    let mut body = vec![tag::FORWARD, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1];
    body.extend_from_slice(&u32::MAX.to_be_bytes());
    body.extend_from_slice(b"abcd");
    assert_eq!(
        decode_one(&frame(&body)),
        Err(CodecError::Truncated {
            kind: "FORWARD",
            field: "payload",
            needed: u32::MAX as usize,
            remaining: 4
        })
    );
}

#[test]
fn trailing_bytes_are_rejected() {
    for msg in samples() {
        let wire = encode_to_bytes(&msg);
        let mut body = wire[LEN_PREFIX..].to_vec();
        body.extend_from_slice(&[0, 0]);
        assert_eq!(
            decode_one(&frame(&body)),
            Err(CodecError::TrailingBytes {
                kind: msg.kind(),
                extra: 2
            })
        );
    }
}

#[test]
fn a_standing_has_one_encoding() {
    let info = Message::FollowerInfo {
        accepted_epoch: Epoch(1),
        observer: false,
        join: 0,
        standing: Standing::Blank,
    };
    let wire = encode_to_bytes(&info).to_vec();
    let kind = wire.len() - 9;
    let mut unknown = wire.clone();
    unknown[kind] = 3;
    assert_eq!(
        decode_one(&unknown),
        Err(CodecError::BadValue {
            kind: "FOLLOWERINFO",
            field: "standing",
            value: 3
        })
    );
    // Blank names no ensemble; a blank standing with an id is not canonical.
    let mut named_blank = wire;
    named_blank[kind + 8] = 1;
    assert!(decode_one(&named_blank).is_err());
}

#[test]
fn bad_bool_and_state_are_rejected() {
    let info = Message::FollowerInfo {
        accepted_epoch: Epoch(1),
        observer: true,
        join: 0,
        standing: Standing::Blank,
    };
    let mut wire = encode_to_bytes(&info).to_vec();
    // The observer flag sits before the 8-byte join number and the 9-byte standing.
    let flag = wire.len() - 18;
    wire[flag] = 2;
    assert_eq!(
        decode_one(&wire),
        Err(CodecError::BadValue {
            kind: "FOLLOWERINFO",
            field: "observer",
            value: 2
        })
    );

    let note = &samples()[0];
    let mut wire = encode_to_bytes(note).to_vec();
    // The state byte comes just before the 9-byte standing.
    let state = wire.len() - 10;
    wire[state] = 4;
    assert_eq!(
        decode_one(&wire),
        Err(CodecError::BadValue {
            kind: "NOTIFICATION",
            field: "state",
            value: 4
        })
    );
}

#[test]
fn errors_explain_themselves() {
    let errors = [
        CodecError::FrameTooLarge { len: 10, max: 5 },
        CodecError::EmptyFrame,
        CodecError::UnknownTag(99),
        CodecError::Truncated {
            kind: "PING",
            field: "round",
            needed: 8,
            remaining: 3,
        },
        CodecError::TrailingBytes {
            kind: "PING",
            extra: 1,
        },
        CodecError::BadValue {
            kind: "NOTIFICATION",
            field: "state",
            value: 9,
        },
    ];
    for e in errors {
        let text = e.to_string();
        assert!(text.contains("peer"), "{text}");
        let _: &dyn Error = &e;
    }
}

/// Decodes everything in `bytes` until it needs more input or fails,
/// checking that whatever decodes is canonical: re-encoding a decoded
/// message reproduces exactly the frame it came from.
fn drain(bytes: &[u8], max: usize) {
    let mut buf = buf_of(bytes);
    loop {
        let before = buf.clone();
        match decode(&mut buf, max) {
            Ok(Some(msg)) => {
                let used = before.len() - buf.len();
                assert_eq!(&encode_to_bytes(&msg)[..], &before[..used]);
            }
            Ok(None) => {
                assert_eq!(buf, before, "Ok(None) consumed input");
                return;
            }
            Err(_) => return,
        }
    }
}

#[test]
fn fuzz_random_and_mutated_input_never_panics() {
    let mut rng = Rng::new(0x9E37_79B9_7F4A_7C15);
    let valid = samples();
    let maxes = [0, 1, 16, 64, FRAME_BYTES_MAX];
    for i in 0..20_000 {
        let max = maxes[rng.index(maxes.len())];
        // Raw noise: mostly exercises the length prefix.
        let len = rng.index(64);
        drain(&rng.bytes(len), max);

        // Noise with a plausible prefix and tag: exercises field parsing.
        let body_len = rng.index(48);
        let mut body = rng.bytes(body_len);
        if let Some(first) = body.first_mut() {
            *first = rng.index(23) as u8;
        }
        drain(&frame(&body), FRAME_BYTES_MAX);

        // Mutations of valid back-to-back frames.
        let mut wire = BytesMut::new();
        for _ in 0..1 + rng.index(3) {
            encode(&valid[rng.index(valid.len())], &mut wire);
        }
        let mut wire = wire.to_vec();
        for _ in 0..1 + rng.index(4) {
            match rng.index(4) {
                0 => {
                    let at = rng.index(wire.len());
                    wire[at] ^= 1 << rng.index(8);
                }
                1 => {
                    let at = rng.index(wire.len());
                    wire[at] = rng.next_u64() as u8;
                }
                2 => wire.truncate(rng.index(wire.len() + 1).max(1)),
                _ => {
                    let at = rng.index(wire.len() + 1);
                    wire.insert(at, rng.next_u64() as u8);
                }
            }
        }
        drain(&wire, if i % 2 == 0 { FRAME_BYTES_MAX } else { max });
    }
}
