//! The byte encoding of [`Message`] between peers: one length-prefixed frame
//! per message, sans-IO, over the `bytes` crate.
//!
//! # Frame layout
//!
//! ```text
//! +----------------+---------+-------------------------------+
//! | body len (u32) | tag (u8)| fields, in declaration order  |
//! +----------------+---------+-------------------------------+
//!                  |<------------- body len bytes ---------->|
//! ```
//!
//! Everything is big-endian. The length counts the body only (not the 4-byte
//! prefix) and is what [`decode`]'s `frame_bytes_max` limits.
//!
//! Field encodings:
//!
//! | Type          | Encoding                                               |
//! |---------------|--------------------------------------------------------|
//! | `Epoch`       | u32                                                    |
//! | `Zxid`        | u64                                                    |
//! | `PeerId`      | u64                                                    |
//! | `RequestId`   | u64                                                    |
//! | round         | u64                                                    |
//! | `bool`        | u8: 0 = false, 1 = true; anything else is rejected     |
//! | `ServerState` | u8: 0 = Looking, 1 = Following, 2 = Leading, 3 = Observing |
//! | `Vote`        | epoch u32, zxid u64, leader u64                        |
//! | bytes         | u32 length, then that many bytes                       |
//!
//! The encoding is canonical: every message has exactly one encoding, so a
//! frame that decodes re-encodes to the identical bytes.
//!
//! # Message tags
//!
//! Tags are part of the wire protocol: they are never renumbered or reused.
//! Tag 0 is reserved so that a zero-filled buffer is never a valid message.
//!
//! | Tag | Message           | Fields after the tag                                 |
//! |----:|-------------------|------------------------------------------------------|
//! |   1 | `Notification`    | vote, round u64, state, standing                     |
//! |   2 | `FollowerInfo`    | accepted_epoch, observer bool, join, standing        |
//! |   3 | `LeaderInfo`      | term, epoch, join, ensemble u64                      |
//! |   4 | `AckEpoch`        | epoch, join, fresh, current_epoch, last_zxid, log_start |
//! |   5 | `Diff`            | epoch, join                                          |
//! |   6 | `Trunc`           | epoch, join, to                                      |
//! |   7 | `Snapshot`        | epoch, join, zxid, data bytes                        |
//! |   8 | `NewLeader`       | epoch, join, current_epoch, zxid                     |
//! |   9 | `AckNewLeader`    | epoch, join                                          |
//! |  10 | `UpToDate`        | epoch, committed                                     |
//! |  11 | `Proposal`        | epoch, prev, txn.zxid, txn.payload bytes             |
//! |  12 | `Ack`             | epoch, zxid                                          |
//! |  13 | `Commit`          | epoch, zxid                                          |
//! |  14 | `Ping`            | epoch, round u64                                     |
//! |  15 | `PingAck`         | epoch, round u64                                     |
//! |  16 | `NewEpoch`        | epoch, new_epoch, last                               |
//! |  17 | `AckNewEpoch`     | epoch, new_epoch                                     |
//! |  18 | `Forward`         | epoch, id, payload bytes                             |
//! |  19 | `Rejected`        | epoch, id                                            |
//! |  20 | `Sync`            | epoch, id                                            |
//! |  21 | `SyncReply`       | epoch, id, zxid                                      |
//! |  22 | `Relay`           | epoch, payload bytes                                 |
//! |  23 | snapshot begin    | epoch, join, zxid, total u64 (see [`StreamDecoder`]) |
//! |  24 | snapshot chunk    | raw bytes: the rest of the frame                     |
//! |  25 | snapshot end      | crc32 u32 of the whole snapshot                      |
//! |  26 | link heartbeat    | none (see [`heartbeat`])                             |
//!
//! # Untrusted input
//!
//! [`decode`] treats the buffer as hostile: it never panics, checks the length
//! prefix against the caller's limit before reserving memory for the frame,
//! and checks every inner length against what is left of the frame before
//! slicing. Bytes fields are zero-copy slices of the received frame.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::message::Message;
use crate::types::{EnsembleId, Epoch, PeerId, RequestId, ServerState, Standing, Txn, Vote, Zxid};

/// Default limit on a frame's body length: 16 MiB. Large enough for snapshot
/// chunks and client payloads with room to spare, small enough that a corrupt
/// or hostile length prefix cannot make a server reserve gigabytes.
pub const FRAME_BYTES_MAX: usize = 16 * 1024 * 1024;

/// Appends one frame holding `msg` to `dst`.
///
/// Encoding cannot fail for any message that fits in a frame; the receiver
/// enforces its own limit, so a sender that produces large messages (snapshot
/// chunks) must keep them under the peer's `frame_bytes_max`.
///
/// # Panics
///
/// If the body would exceed `u32::MAX` bytes (a bytes field of about 4 GiB).
/// The length prefix cannot express that, and the shell never builds such a
/// message, so this is a programming error rather than a runtime condition.
pub fn encode(msg: &Message, dst: &mut impl BufMut) {
    let len = body_len(msg);
    dst.put_u32(len);
    write_body(msg, &mut Writer(dst));
}

/// Encodes `msg` into a fresh, exactly-sized buffer. Convenient for the
/// simulator and for fan-out, where one frame is cloned to many peers.
///
/// # Panics
///
/// Under the same condition as [`encode`].
pub fn encode_to_bytes(msg: &Message) -> Bytes {
    let len = body_len(msg);
    let mut buf = BytesMut::with_capacity(LEN_PREFIX + len as usize);
    buf.put_u32(len);
    write_body(msg, &mut Writer(&mut buf));
    buf.freeze()
}

/// Takes one message off the front of `src`, if a whole frame is buffered.
///
/// Returns `Ok(None)` without consuming anything while the frame is
/// incomplete; in that case it reserves room for the rest of the frame (after
/// checking the limit) so the transport reads it without repeated regrowth.
/// On `Ok(Some(_))` exactly one frame has been consumed.
///
/// `frame_bytes_max` bounds the body length; a larger prefix is rejected with
/// [`CodecError::FrameTooLarge`] before anything is reserved or consumed.
/// Other errors consume the offending frame. Any error means the stream
/// cannot be trusted and the connection should be closed.
pub fn decode(src: &mut BytesMut, frame_bytes_max: usize) -> Result<Option<Message>, CodecError> {
    match take_frame(src, frame_bytes_max)? {
        Some(body) => decode_body(body).map(Some),
        None => Ok(None),
    }
}

/// Takes one frame's body off the front of `src`, as [`decode`] describes.
fn take_frame(src: &mut BytesMut, frame_bytes_max: usize) -> Result<Option<Bytes>, CodecError> {
    let Some(len) = peek_body_len(src) else {
        return Ok(None);
    };
    if len > frame_bytes_max {
        return Err(CodecError::FrameTooLarge {
            len,
            max: frame_bytes_max,
        });
    }
    // Only overflows on a 32-bit target with a limit near 4 GiB; such a
    // frame could never be buffered there anyway.
    let Some(frame_len) = len.checked_add(LEN_PREFIX) else {
        return Err(CodecError::FrameTooLarge {
            len,
            max: frame_bytes_max,
        });
    };
    if src.len() < frame_len {
        src.reserve(frame_len - src.len());
        return Ok(None);
    }
    src.advance(LEN_PREFIX);
    Ok(Some(src.split_to(len).freeze()))
}

// ---------------------------------------------------------------------------
// Tags
// ---------------------------------------------------------------------------

/// Size of the big-endian u32 body-length prefix.
const LEN_PREFIX: usize = 4;

/// Wire tags; see the table in the module documentation.
mod tag {
    pub const NOTIFICATION: u8 = 1;
    pub const FOLLOWER_INFO: u8 = 2;
    pub const LEADER_INFO: u8 = 3;
    pub const ACK_EPOCH: u8 = 4;
    pub const DIFF: u8 = 5;
    pub const TRUNC: u8 = 6;
    pub const SNAPSHOT: u8 = 7;
    pub const NEW_LEADER: u8 = 8;
    pub const ACK_NEW_LEADER: u8 = 9;
    pub const UP_TO_DATE: u8 = 10;
    pub const PROPOSAL: u8 = 11;
    pub const ACK: u8 = 12;
    pub const COMMIT: u8 = 13;
    pub const PING: u8 = 14;
    pub const PING_ACK: u8 = 15;
    pub const NEW_EPOCH: u8 = 16;
    pub const ACK_NEW_EPOCH: u8 = 17;
    pub const FORWARD: u8 = 18;
    pub const REJECTED: u8 = 19;
    pub const SYNC: u8 = 20;
    pub const SYNC_REPLY: u8 = 21;
    pub const RELAY: u8 = 22;
    // Frames of a streamed snapshot (see `stream`); never a message alone.
    pub const SNAPSHOT_BEGIN: u8 = 23;
    pub const SNAPSHOT_CHUNK: u8 = 24;
    pub const SNAPSHOT_END: u8 = 25;
    // A link's heartbeat; carries nothing and is never a message.
    pub const HEARTBEAT: u8 = 26;
}

/// A link heartbeat frame: it carries nothing, and [`StreamDecoder`]
/// consumes it (anywhere, even inside a snapshot stream) without yielding a
/// message. A transport sends one on a link it has not written to lately so
/// that the other end can tell a quiet link from a dead one: silence on a
/// link both ends heartbeat means the link is gone. [`decode`] refuses it.
pub fn heartbeat() -> Bytes {
    Bytes::from_static(&[0, 0, 0, 1, tag::HEARTBEAT])
}

fn tag_of(msg: &Message) -> u8 {
    match msg {
        Message::Notification { .. } => tag::NOTIFICATION,
        Message::FollowerInfo { .. } => tag::FOLLOWER_INFO,
        Message::LeaderInfo { .. } => tag::LEADER_INFO,
        Message::AckEpoch { .. } => tag::ACK_EPOCH,
        Message::Diff { .. } => tag::DIFF,
        Message::Trunc { .. } => tag::TRUNC,
        Message::Snapshot { .. } => tag::SNAPSHOT,
        Message::NewLeader { .. } => tag::NEW_LEADER,
        Message::AckNewLeader { .. } => tag::ACK_NEW_LEADER,
        Message::UpToDate { .. } => tag::UP_TO_DATE,
        Message::Proposal { .. } => tag::PROPOSAL,
        Message::Ack { .. } => tag::ACK,
        Message::Commit { .. } => tag::COMMIT,
        Message::Ping { .. } => tag::PING,
        Message::PingAck { .. } => tag::PING_ACK,
        Message::NewEpoch { .. } => tag::NEW_EPOCH,
        Message::AckNewEpoch { .. } => tag::ACK_NEW_EPOCH,
        Message::Forward { .. } => tag::FORWARD,
        Message::Rejected { .. } => tag::REJECTED,
        Message::Sync { .. } => tag::SYNC,
        Message::SyncReply { .. } => tag::SYNC_REPLY,
        Message::Relay { .. } => tag::RELAY,
    }
}

/// The [`Message::kind`] name for a tag, so decode errors can name the
/// message before it exists. A test keeps the two in step.
fn kind_of(t: u8) -> Option<&'static str> {
    Some(match t {
        tag::NOTIFICATION => "NOTIFICATION",
        tag::FOLLOWER_INFO => "FOLLOWERINFO",
        tag::LEADER_INFO => "LEADERINFO",
        tag::ACK_EPOCH => "ACKEPOCH",
        tag::DIFF => "DIFF",
        tag::TRUNC => "TRUNC",
        tag::SNAPSHOT => "SNAP",
        tag::NEW_LEADER => "NEWLEADER",
        tag::ACK_NEW_LEADER => "ACK(NEWLEADER)",
        tag::UP_TO_DATE => "UPTODATE",
        tag::PROPOSAL => "PROPOSAL",
        tag::ACK => "ACK",
        tag::COMMIT => "COMMIT",
        tag::PING => "PING",
        tag::PING_ACK => "PINGACK",
        tag::NEW_EPOCH => "NEWEPOCH",
        tag::ACK_NEW_EPOCH => "ACK(NEWEPOCH)",
        tag::FORWARD => "FORWARD",
        tag::REJECTED => "REJECTED",
        tag::SYNC => "SYNC",
        tag::SYNC_REPLY => "SYNC_REPLY",
        tag::RELAY => "RELAY",
        _ => return None,
    })
}

// ---------------------------------------------------------------------------
// Encoding
// ---------------------------------------------------------------------------

/// Where the body goes. One body writer serves both the sizing pass and the
/// real write, so the length prefix can never disagree with the bytes written
/// and no intermediate buffer (no copy of a snapshot) is needed.
trait Sink {
    fn u8(&mut self, v: u8);
    fn u32(&mut self, v: u32);
    fn u64(&mut self, v: u64);
    /// A length-prefixed bytes field.
    fn blob(&mut self, b: &[u8]);
}

/// Counts bytes instead of writing them.
struct Sizer(usize);

impl Sink for Sizer {
    fn u8(&mut self, _: u8) {
        self.0 = self.0.saturating_add(1);
    }
    fn u32(&mut self, _: u32) {
        self.0 = self.0.saturating_add(4);
    }
    fn u64(&mut self, _: u64) {
        self.0 = self.0.saturating_add(8);
    }
    fn blob(&mut self, b: &[u8]) {
        self.0 = self.0.saturating_add(4).saturating_add(b.len());
    }
}

/// Writes into the caller's buffer. Only built after [`body_len`] has checked
/// that the whole body, and so every field in it, fits a u32 length.
struct Writer<'a, B: BufMut>(&'a mut B);

impl<B: BufMut> Sink for Writer<'_, B> {
    fn u8(&mut self, v: u8) {
        self.0.put_u8(v);
    }
    fn u32(&mut self, v: u32) {
        self.0.put_u32(v);
    }
    fn u64(&mut self, v: u64) {
        self.0.put_u64(v);
    }
    fn blob(&mut self, b: &[u8]) {
        // Cannot truncate: the body containing `b` was checked to fit a u32.
        self.0.put_u32(b.len() as u32);
        self.0.put_slice(b);
    }
}

/// The body length of `msg` as its u32 prefix.
fn body_len(msg: &Message) -> u32 {
    let mut sizer = Sizer(0);
    write_body(msg, &mut sizer);
    u32::try_from(sizer.0).expect("message body exceeds u32::MAX bytes; see encode() docs")
}

fn write_body(msg: &Message, s: &mut impl Sink) {
    s.u8(tag_of(msg));
    match msg {
        Message::Notification {
            vote,
            round,
            state,
            standing,
        } => {
            write_vote(s, vote);
            s.u64(*round);
            s.u8(state_to_u8(*state));
            write_standing(s, *standing);
        }
        Message::FollowerInfo {
            accepted_epoch,
            observer,
            join,
            standing,
        } => {
            s.u32(accepted_epoch.0);
            s.u8(u8::from(*observer));
            s.u64(*join);
            write_standing(s, *standing);
        }
        Message::LeaderInfo {
            term,
            epoch,
            join,
            ensemble,
        } => {
            s.u32(term.0);
            s.u32(epoch.0);
            s.u64(*join);
            s.u64(ensemble.0);
        }
        Message::AckEpoch {
            epoch,
            join,
            fresh,
            current_epoch,
            last_zxid,
            log_start,
        } => {
            s.u32(epoch.0);
            s.u64(*join);
            s.u8(u8::from(*fresh));
            s.u32(current_epoch.0);
            s.u64(last_zxid.0);
            s.u64(log_start.0);
        }
        Message::Diff { epoch, join } | Message::AckNewLeader { epoch, join } => {
            s.u32(epoch.0);
            s.u64(*join);
        }
        Message::Trunc { epoch, join, to } => {
            s.u32(epoch.0);
            s.u64(*join);
            s.u64(to.0);
        }
        Message::UpToDate {
            epoch,
            committed: zxid,
        }
        | Message::Ack { epoch, zxid }
        | Message::Commit { epoch, zxid } => {
            s.u32(epoch.0);
            s.u64(zxid.0);
        }
        Message::Snapshot {
            epoch,
            join,
            zxid,
            data,
        } => {
            s.u32(epoch.0);
            s.u64(*join);
            s.u64(zxid.0);
            s.blob(data);
        }
        Message::NewLeader {
            epoch,
            join,
            current_epoch,
            zxid,
        } => {
            s.u32(epoch.0);
            s.u64(*join);
            s.u32(current_epoch.0);
            s.u64(zxid.0);
        }
        Message::Proposal { epoch, prev, txn } => {
            s.u32(epoch.0);
            s.u64(prev.0);
            s.u64(txn.zxid.0);
            s.blob(&txn.payload);
        }
        Message::Ping { epoch, round } | Message::PingAck { epoch, round } => {
            s.u32(epoch.0);
            s.u64(*round);
        }
        Message::NewEpoch {
            epoch,
            new_epoch,
            last,
        } => {
            s.u32(epoch.0);
            s.u32(new_epoch.0);
            s.u64(last.0);
        }
        Message::AckNewEpoch { epoch, new_epoch } => {
            s.u32(epoch.0);
            s.u32(new_epoch.0);
        }
        Message::Forward { epoch, id, payload } => {
            s.u32(epoch.0);
            s.u64(id.0);
            s.blob(payload);
        }
        Message::Rejected { epoch, id } | Message::Sync { epoch, id } => {
            s.u32(epoch.0);
            s.u64(id.0);
        }
        Message::Relay { epoch, payload } => {
            s.u32(epoch.0);
            s.blob(payload);
        }
        Message::SyncReply { epoch, id, zxid } => {
            s.u32(epoch.0);
            s.u64(id.0);
            s.u64(zxid.0);
        }
    }
}

/// A standing is its kind (0 member, 1 blank, 2 recovering) and an ensemble
/// id (always 0 for blank, so the encoding stays canonical).
fn write_standing(s: &mut impl Sink, standing: Standing) {
    let kind = match standing {
        Standing::Member(_) => 0,
        Standing::Blank => 1,
        Standing::Recovering(_) => 2,
    };
    s.u8(kind);
    s.u64(standing.ensemble().0);
}

fn write_vote(s: &mut impl Sink, vote: &Vote) {
    s.u32(vote.epoch.0);
    s.u64(vote.zxid.0);
    s.u64(vote.leader.0);
}

fn state_to_u8(state: ServerState) -> u8 {
    match state {
        ServerState::Looking => 0,
        ServerState::Following => 1,
        ServerState::Leading => 2,
        ServerState::Observing => 3,
    }
}

// ---------------------------------------------------------------------------
// Decoding
// ---------------------------------------------------------------------------

/// The body length announced by a buffered prefix, if four bytes are there.
/// A length that does not fit `usize` (16-bit targets) saturates, which the
/// limit check then rejects.
fn peek_body_len(src: &[u8]) -> Option<usize> {
    let prefix: [u8; LEN_PREFIX] = src.get(..LEN_PREFIX)?.try_into().ok()?;
    let len = u32::from_be_bytes(prefix);
    Some(usize::try_from(len).unwrap_or(usize::MAX))
}

fn decode_body(mut body: Bytes) -> Result<Message, CodecError> {
    if body.is_empty() {
        return Err(CodecError::EmptyFrame);
    }
    let t = body.get_u8();
    let kind = kind_of(t).ok_or(CodecError::UnknownTag(t))?;
    let mut r = Reader { buf: body, kind };
    let msg = decode_fields(t, &mut r)?;
    r.finish()?;
    Ok(msg)
}

/// Reads the fields of the message with tag `t`. Struct-literal fields are
/// evaluated in source order, which is the wire order.
fn decode_fields(t: u8, r: &mut Reader) -> Result<Message, CodecError> {
    Ok(match t {
        tag::NOTIFICATION => Message::Notification {
            vote: r.vote()?,
            round: r.u64("round")?,
            state: r.state("state")?,
            standing: r.standing()?,
        },
        tag::FOLLOWER_INFO => Message::FollowerInfo {
            accepted_epoch: r.epoch("accepted_epoch")?,
            observer: r.bool("observer")?,
            join: r.u64("join")?,
            standing: r.standing()?,
        },
        tag::LEADER_INFO => Message::LeaderInfo {
            term: r.epoch("term")?,
            epoch: r.epoch("epoch")?,
            join: r.u64("join")?,
            ensemble: EnsembleId(r.u64("ensemble")?),
        },
        tag::ACK_EPOCH => Message::AckEpoch {
            epoch: r.epoch("epoch")?,
            join: r.u64("join")?,
            fresh: r.bool("fresh")?,
            current_epoch: r.epoch("current_epoch")?,
            last_zxid: r.zxid("last_zxid")?,
            log_start: r.zxid("log_start")?,
        },
        tag::DIFF => Message::Diff {
            epoch: r.epoch("epoch")?,
            join: r.u64("join")?,
        },
        tag::TRUNC => Message::Trunc {
            epoch: r.epoch("epoch")?,
            join: r.u64("join")?,
            to: r.zxid("to")?,
        },
        tag::SNAPSHOT => Message::Snapshot {
            epoch: r.epoch("epoch")?,
            join: r.u64("join")?,
            zxid: r.zxid("zxid")?,
            data: r.blob("data")?,
        },
        tag::NEW_LEADER => Message::NewLeader {
            epoch: r.epoch("epoch")?,
            join: r.u64("join")?,
            current_epoch: r.epoch("current_epoch")?,
            zxid: r.zxid("zxid")?,
        },
        tag::ACK_NEW_LEADER => Message::AckNewLeader {
            epoch: r.epoch("epoch")?,
            join: r.u64("join")?,
        },
        tag::UP_TO_DATE => Message::UpToDate {
            epoch: r.epoch("epoch")?,
            committed: r.zxid("committed")?,
        },
        tag::PROPOSAL => Message::Proposal {
            epoch: r.epoch("epoch")?,
            prev: r.zxid("prev")?,
            txn: Txn {
                zxid: r.zxid("txn.zxid")?,
                payload: r.blob("txn.payload")?,
            },
        },
        tag::ACK => Message::Ack {
            epoch: r.epoch("epoch")?,
            zxid: r.zxid("zxid")?,
        },
        tag::COMMIT => Message::Commit {
            epoch: r.epoch("epoch")?,
            zxid: r.zxid("zxid")?,
        },
        tag::PING => Message::Ping {
            epoch: r.epoch("epoch")?,
            round: r.u64("round")?,
        },
        tag::PING_ACK => Message::PingAck {
            epoch: r.epoch("epoch")?,
            round: r.u64("round")?,
        },
        tag::NEW_EPOCH => Message::NewEpoch {
            epoch: r.epoch("epoch")?,
            new_epoch: r.epoch("new_epoch")?,
            last: r.zxid("last")?,
        },
        tag::ACK_NEW_EPOCH => Message::AckNewEpoch {
            epoch: r.epoch("epoch")?,
            new_epoch: r.epoch("new_epoch")?,
        },
        tag::FORWARD => Message::Forward {
            epoch: r.epoch("epoch")?,
            id: r.request_id("id")?,
            payload: r.blob("payload")?,
        },
        tag::REJECTED => Message::Rejected {
            epoch: r.epoch("epoch")?,
            id: r.request_id("id")?,
        },
        tag::SYNC => Message::Sync {
            epoch: r.epoch("epoch")?,
            id: r.request_id("id")?,
        },
        tag::SYNC_REPLY => Message::SyncReply {
            epoch: r.epoch("epoch")?,
            id: r.request_id("id")?,
            zxid: r.zxid("zxid")?,
        },
        tag::RELAY => Message::Relay {
            epoch: r.epoch("epoch")?,
            payload: r.blob("payload")?,
        },
        // kind_of() already accepted the tag, so this is unreachable; an error
        // rather than a panic keeps decode panic-free if the two ever diverge.
        other => return Err(CodecError::UnknownTag(other)),
    })
}

/// A bounds-checked cursor over one frame's body. Every read checks the
/// remaining length first, so the panicking `Buf` getters are never reached
/// with too few bytes.
struct Reader {
    buf: Bytes,
    kind: &'static str,
}

impl Reader {
    fn need(&self, needed: usize, field: &'static str) -> Result<(), CodecError> {
        let remaining = self.buf.remaining();
        if remaining < needed {
            return Err(CodecError::Truncated {
                kind: self.kind,
                field,
                needed,
                remaining,
            });
        }
        Ok(())
    }

    fn u8(&mut self, field: &'static str) -> Result<u8, CodecError> {
        self.need(1, field)?;
        Ok(self.buf.get_u8())
    }

    fn u32(&mut self, field: &'static str) -> Result<u32, CodecError> {
        self.need(4, field)?;
        Ok(self.buf.get_u32())
    }

    fn u64(&mut self, field: &'static str) -> Result<u64, CodecError> {
        self.need(8, field)?;
        Ok(self.buf.get_u64())
    }

    fn epoch(&mut self, field: &'static str) -> Result<Epoch, CodecError> {
        self.u32(field).map(Epoch)
    }

    fn zxid(&mut self, field: &'static str) -> Result<Zxid, CodecError> {
        self.u64(field).map(Zxid)
    }

    fn request_id(&mut self, field: &'static str) -> Result<RequestId, CodecError> {
        self.u64(field).map(RequestId)
    }

    fn vote(&mut self) -> Result<Vote, CodecError> {
        Ok(Vote {
            epoch: self.epoch("vote.epoch")?,
            zxid: self.zxid("vote.zxid")?,
            leader: PeerId(self.u64("vote.leader")?),
        })
    }

    fn standing(&mut self) -> Result<Standing, CodecError> {
        let kind = self.u8("standing")?;
        let ensemble = EnsembleId(self.u64("standing.ensemble")?);
        match kind {
            0 => Ok(Standing::Member(ensemble)),
            1 if ensemble.is_none() => Ok(Standing::Blank),
            2 => Ok(Standing::Recovering(ensemble)),
            value => Err(self.bad_value("standing", value)),
        }
    }

    fn bool(&mut self, field: &'static str) -> Result<bool, CodecError> {
        match self.u8(field)? {
            0 => Ok(false),
            1 => Ok(true),
            value => Err(self.bad_value(field, value)),
        }
    }

    fn state(&mut self, field: &'static str) -> Result<ServerState, CodecError> {
        match self.u8(field)? {
            0 => Ok(ServerState::Looking),
            1 => Ok(ServerState::Following),
            2 => Ok(ServerState::Leading),
            3 => Ok(ServerState::Observing),
            value => Err(self.bad_value(field, value)),
        }
    }

    /// A length-prefixed bytes field, sliced from the frame without copying.
    /// The inner length is checked against the rest of the frame first.
    fn blob(&mut self, field: &'static str) -> Result<Bytes, CodecError> {
        let len = self.u32(field)?;
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        self.need(len, field)?;
        Ok(self.buf.split_to(len))
    }

    fn bad_value(&self, field: &'static str, value: u8) -> CodecError {
        CodecError::BadValue {
            kind: self.kind,
            field,
            value,
        }
    }

    fn finish(self) -> Result<(), CodecError> {
        match self.buf.remaining() {
            0 => Ok(()),
            extra => Err(CodecError::TrailingBytes {
                kind: self.kind,
                extra,
            }),
        }
    }
}

mod error;
mod stream;
#[cfg(test)]
mod tests;

pub use error::CodecError;
pub use stream::{frames, StreamDecoder, CHUNK_BYTES, SNAPSHOT_BYTES_MAX};
