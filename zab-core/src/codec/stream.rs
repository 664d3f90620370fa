//! Messages larger than a frame: a snapshot of a big tree crosses the link as
//! a stream of bounded frames, so no tree is too large to transfer and no
//! frame is larger than [`CHUNK_BYTES`] plus a header.
//!
//! ```text
//! SNAPSHOT_BEGIN  epoch u32, join u64, zxid u64, total u64
//! SNAPSHOT_CHUNK  raw bytes (the rest of the frame)      ... as many as needed
//! SNAPSHOT_END    crc32 u32 of all chunk bytes, in order
//! ```
//!
//! The sender writes the frames back to back (nothing interleaves: one
//! connection carries one FIFO stream), and the chunks are zero-copy slices
//! of the snapshot. Flow control is the connection's own: the sender writes
//! a chunk only when the socket takes it.
//!
//! The receiver ([`StreamDecoder`]) hands the core a single
//! `Message::Snapshot` only once the last chunk arrived, the length matches
//! what was announced and the checksum agrees: the follower installs a
//! snapshot whole or not at all. A stream cut short (the link drops) leaves
//! nothing behind; the leader sends a fresh snapshot on the next sync.
//! Snapshots that fit one chunk keep the single-frame `SNAPSHOT` encoding.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::{decode_body, encode_to_bytes, tag, take_frame, CodecError, LEN_PREFIX};
use crate::message::Message;
use crate::types::{Epoch, Zxid};

/// Snapshot bytes per chunk frame.
pub const CHUNK_BYTES: usize = 1 << 20;

/// The default bound on a streamed snapshot the receiver assembles: far past
/// any tree this server holds in memory, yet a corrupt length cannot make it
/// wait for (or reserve) more.
pub const SNAPSHOT_BYTES_MAX: u64 = 1 << 40;

/// Memory reserved up front for an announced snapshot; the rest grows as
/// chunks arrive, so an announced size alone never allocates much.
const RESERVE_MAX: u64 = 64 << 20;

const BEGIN_BODY: usize = 1 + 4 + 8 + 8 + 8;
const END_BODY: usize = 1 + 4;

/// The frames that carry `msg`, in order: one for every message but a
/// snapshot longer than `chunk_bytes`, which is streamed. The chunk frames
/// share the snapshot's buffer (no copy).
///
/// # Panics
///
/// If `chunk_bytes` is 0, or under the conditions of [`super::encode`].
pub fn frames(msg: &Message, chunk_bytes: usize) -> Vec<Bytes> {
    assert!(chunk_bytes > 0, "chunks must hold bytes");
    let Message::Snapshot {
        epoch,
        join,
        zxid,
        data,
    } = msg
    else {
        return vec![encode_to_bytes(msg)];
    };
    if data.len() <= chunk_bytes {
        return vec![encode_to_bytes(msg)];
    }
    let mut out = Vec::with_capacity(2 * data.len().div_ceil(chunk_bytes) + 2);
    let mut begin = BytesMut::with_capacity(LEN_PREFIX + BEGIN_BODY);
    begin.put_u32(BEGIN_BODY as u32);
    begin.put_u8(tag::SNAPSHOT_BEGIN);
    begin.put_u32(epoch.0);
    begin.put_u64(*join);
    begin.put_u64(zxid.0);
    begin.put_u64(data.len() as u64);
    out.push(begin.freeze());
    let mut at = 0;
    while at < data.len() {
        let end = data.len().min(at + chunk_bytes);
        let mut header = BytesMut::with_capacity(LEN_PREFIX + 1);
        // Cannot truncate: a chunk is at most `chunk_bytes` of a snapshot
        // whose single-frame encoding would have fit a u32 length.
        header.put_u32((1 + end - at) as u32);
        header.put_u8(tag::SNAPSHOT_CHUNK);
        out.push(header.freeze());
        out.push(data.slice(at..end));
        at = end;
    }
    let mut finish = BytesMut::with_capacity(LEN_PREFIX + END_BODY);
    finish.put_u32(END_BODY as u32);
    finish.put_u8(tag::SNAPSHOT_END);
    finish.put_u32(crc32fast::hash(data));
    out.push(finish.freeze());
    out
}

/// A connection's decoder: frames in, whole messages out, with streamed
/// snapshots reassembled and checked. One per connection, since a stream
/// spans frames.
#[derive(Debug)]
pub struct StreamDecoder {
    frame_bytes_max: usize,
    snapshot_bytes_max: u64,
    assembling: Option<Assembly>,
}

#[derive(Debug)]
struct Assembly {
    epoch: Epoch,
    join: u64,
    zxid: Zxid,
    total: u64,
    data: BytesMut,
    crc: crc32fast::Hasher,
}

impl StreamDecoder {
    /// Frames up to `frame_bytes_max` body bytes; streamed snapshots up to
    /// `snapshot_bytes_max` bytes in all.
    pub fn new(frame_bytes_max: usize, snapshot_bytes_max: u64) -> StreamDecoder {
        StreamDecoder {
            frame_bytes_max,
            snapshot_bytes_max,
            assembling: None,
        }
    }

    /// Whether a streamed snapshot is partly received.
    pub fn is_assembling(&self) -> bool {
        self.assembling.is_some()
    }

    /// The next whole message, if the buffered frames complete one. As with
    /// [`super::decode`], any error means the connection cannot be trusted;
    /// a partial snapshot is dropped with it.
    pub fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Message>, CodecError> {
        while let Some(body) = take_frame(src, self.frame_bytes_max)? {
            let result = self.frame(body);
            if result.is_err() {
                self.assembling = None;
            }
            if let Some(msg) = result? {
                return Ok(Some(msg));
            }
        }
        Ok(None)
    }

    fn frame(&mut self, mut body: Bytes) -> Result<Option<Message>, CodecError> {
        let bad = |reason| Err(CodecError::BadSnapshotStream { reason });
        let t = body.first().copied();
        match (t, &mut self.assembling) {
            (Some(tag::HEARTBEAT), _) if body.len() == 1 => Ok(None),
            (Some(tag::SNAPSHOT_BEGIN), None) => {
                if body.len() != BEGIN_BODY {
                    return bad("a begin frame of the wrong length");
                }
                body.advance(1);
                let (epoch, join, zxid, total) = (
                    Epoch(body.get_u32()),
                    body.get_u64(),
                    Zxid(body.get_u64()),
                    body.get_u64(),
                );
                if total > self.snapshot_bytes_max {
                    return bad("announced size exceeds the receiver's limit");
                }
                let reserve = usize::try_from(total.min(RESERVE_MAX)).unwrap_or(0);
                self.assembling = Some(Assembly {
                    epoch,
                    join,
                    zxid,
                    total,
                    data: BytesMut::with_capacity(reserve),
                    crc: crc32fast::Hasher::new(),
                });
                Ok(None)
            }
            (Some(tag::SNAPSHOT_CHUNK), Some(a)) => {
                let chunk = &body[1..];
                if a.data.len() as u64 + chunk.len() as u64 > a.total {
                    return bad("more bytes than the begin frame announced");
                }
                a.crc.update(chunk);
                a.data.extend_from_slice(chunk);
                Ok(None)
            }
            (Some(tag::SNAPSHOT_END), Some(_)) => {
                let Some(a) = self.assembling.take() else {
                    return bad("an end frame outside a stream");
                };
                if body.len() != END_BODY {
                    return bad("an end frame of the wrong length");
                }
                body.advance(1);
                if a.data.len() as u64 != a.total {
                    return bad("fewer bytes than the begin frame announced");
                }
                if a.crc.finalize() != body.get_u32() {
                    return bad("checksum mismatch");
                }
                Ok(Some(Message::Snapshot {
                    epoch: a.epoch,
                    join: a.join,
                    zxid: a.zxid,
                    data: a.data.freeze(),
                }))
            }
            (Some(tag::SNAPSHOT_BEGIN), Some(_)) => bad("a second begin inside a stream"),
            (Some(tag::SNAPSHOT_CHUNK | tag::SNAPSHOT_END), None) => {
                bad("a chunk or end frame outside a stream")
            }
            (_, Some(_)) => bad("another message inside a stream"),
            (_, None) => decode_body(body).map(Some),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::RequestId;

    fn snapshot(len: usize) -> Message {
        Message::Snapshot {
            epoch: Epoch(3),
            join: 9,
            zxid: Zxid(0x3_0000_0007),
            data: Bytes::from((0..len).map(|i| (i * 7 % 251) as u8).collect::<Vec<u8>>()),
        }
    }

    fn wire(frames: &[Bytes]) -> BytesMut {
        let mut buf = BytesMut::new();
        for f in frames {
            buf.extend_from_slice(f);
        }
        buf
    }

    fn decoder() -> StreamDecoder {
        StreamDecoder::new(64, 1 << 20)
    }

    #[test]
    fn a_large_snapshot_crosses_in_bounded_frames_and_arrives_whole() {
        let msg = snapshot(1000);
        let frames = frames(&msg, 40);
        assert!(frames.len() > 25 * 2, "{} frames", frames.len());
        // Every frame fits a 64-byte frame limit although the message does not.
        let mut buf = wire(&frames);
        let mut d = decoder();
        // Fed a byte at a time, it yields exactly one message at the end.
        let mut got = Vec::new();
        let mut feed = BytesMut::new();
        while !buf.is_empty() {
            feed.extend_from_slice(&buf.split_to(1));
            while let Some(m) = d.decode(&mut feed).expect("valid stream") {
                got.push(m);
            }
        }
        assert_eq!(got, vec![msg]);
        assert!(!d.is_assembling());
    }

    #[test]
    fn small_snapshots_and_other_messages_keep_one_frame() {
        let small = snapshot(30);
        assert_eq!(frames(&small, 40).len(), 1);
        let ping = Message::Sync {
            epoch: Epoch(1),
            id: RequestId(4),
        };
        let mut buf = wire(&[frames(&small, 40), frames(&ping, 40)].concat());
        let mut d = decoder();
        assert_eq!(d.decode(&mut buf), Ok(Some(small)));
        assert_eq!(d.decode(&mut buf), Ok(Some(ping)));
        assert_eq!(d.decode(&mut buf), Ok(None));
    }

    #[test]
    fn a_flipped_byte_fails_the_checksum_and_nothing_is_delivered() {
        let frames = frames(&snapshot(500), 40);
        let mut buf = wire(&frames);
        let at = frames[0].len() + frames[1].len() + 3;
        buf[at] ^= 0x10;
        let got = decoder().decode(&mut buf);
        assert_eq!(
            got,
            Err(CodecError::BadSnapshotStream {
                reason: "checksum mismatch"
            })
        );
    }

    #[test]
    fn out_of_order_or_oversized_streams_are_refused() {
        let frames = frames(&snapshot(500), 40);
        let reason = |buf: &mut BytesMut, d: &mut StreamDecoder| match d.decode(buf) {
            Err(CodecError::BadSnapshotStream { reason }) => reason,
            other => panic!("accepted a broken stream: {other:?}"),
        };
        // A chunk without a begin.
        let mut d = decoder();
        let mut buf = wire(&frames[1..]);
        assert_eq!(
            reason(&mut buf, &mut d),
            "a chunk or end frame outside a stream"
        );
        // The end frame missing a chunk.
        let mut cut = frames.clone();
        cut.drain(1..3);
        let mut d = decoder();
        assert_eq!(
            reason(&mut wire(&cut), &mut d),
            "fewer bytes than the begin frame announced"
        );
        // Another message inside the stream.
        let mut mixed = frames[..3].to_vec();
        mixed.push(encode_to_bytes(&Message::Sync {
            epoch: Epoch(1),
            id: RequestId(1),
        }));
        let mut d = decoder();
        assert_eq!(
            reason(&mut wire(&mixed), &mut d),
            "another message inside a stream"
        );
        assert!(!d.is_assembling(), "a broken stream left its part behind");
        // An announced size past the receiver's limit.
        let mut d = StreamDecoder::new(64, 100);
        assert_eq!(
            reason(&mut wire(&frames), &mut d),
            "announced size exceeds the receiver's limit"
        );
    }

    #[test]
    fn heartbeats_are_consumed_anywhere_and_never_yield_a_message() {
        use super::super::heartbeat;
        let msg = snapshot(200);
        let mut framed = vec![heartbeat(), heartbeat()];
        for f in frames(&msg, 40) {
            // A chunk frame is its header, then its data (a second item):
            // heartbeats go between whole frames, as the transport sends them.
            let chunk_header = f.len() == LEN_PREFIX + 1 && f[LEN_PREFIX] == tag::SNAPSHOT_CHUNK;
            framed.push(f);
            if !chunk_header {
                framed.push(heartbeat());
            }
        }
        let ping = Message::Ping {
            epoch: Epoch(3),
            round: 1,
        };
        framed.push(encode_to_bytes(&ping));
        let mut buf = wire(&framed);
        let mut d = decoder();
        assert_eq!(d.decode(&mut buf), Ok(Some(msg)));
        assert_eq!(d.decode(&mut buf), Ok(Some(ping)));
        assert_eq!(d.decode(&mut buf), Ok(None));
        assert!(buf.is_empty(), "every heartbeat was consumed");
        // A heartbeat frame with a body is not a heartbeat.
        let mut bad = BytesMut::from(&[0, 0, 0, 2, tag::HEARTBEAT, 0][..]);
        assert!(decoder().decode(&mut bad).is_err());
        // The single-frame decoder knows no heartbeats.
        let mut one = BytesMut::from(&heartbeat()[..]);
        assert_eq!(
            super::super::decode(&mut one, 64),
            Err(CodecError::UnknownTag(tag::HEARTBEAT))
        );
    }

    #[test]
    fn the_single_frame_decoder_does_not_take_stream_frames_for_messages() {
        let frames = frames(&snapshot(500), 40);
        let mut buf = wire(&frames[..1]);
        assert_eq!(
            super::super::decode(&mut buf, 64),
            Err(CodecError::UnknownTag(tag::SNAPSHOT_BEGIN))
        );
    }
}
