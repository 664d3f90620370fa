//! # zab-proto
//!
//! The client wire protocol of the zab coordination service, as plain types
//! with encoders and decoders: no sockets, no async, no clocks. The server
//! and the client library both build on it. `wire-spec.md` at the top of the
//! repository is the normative description; this crate is its reference
//! implementation, and its tests check the spec's hex dumps byte for byte.
//!
//! ## Shape
//!
//! - Every message is a frame: a big-endian u32 body length, then the body.
//!   [`decode_frame`] takes one body off a receive buffer, checking the
//!   length against the connection's limit before reserving anything.
//! - The client opens with a [`ConnectRequest`]; the server answers with a
//!   [`ConnectReply`] (accepted with the negotiated terms, or refused).
//! - Then the client sends [`RequestFrame`]s (a ping, or a [`Request`] with
//!   its [`Xid`]) and the server sends [`ServerFrame`]s: [`Reply`]s in
//!   request order, ping replies, and watch notifications ([`WatchEvent`]).
//! - Encoding is infallible, into any `bytes::BufMut`. Decoding takes one
//!   frame's body as `bytes::Bytes`, never panics, rejects trailing bytes,
//!   and slices data fields out of the frame without copying.
//!
//! ## One exchange, both sides
//!
//! ```
//! use bytes::BytesMut;
//! use zab_proto::*;
//!
//! // Client: the handshake, then a request.
//! let mut to_server = BytesMut::new();
//! ConnectRequest {
//!     protocol_version: PROTOCOL_VERSION,
//!     last_zxid_seen: 0,
//!     timeout_ms: 10_000,
//!     session_id: 0,
//!     password: [0; PASSWORD_BYTES],
//!     max_frame_bytes: FRAME_BYTES_DEFAULT,
//! }
//! .encode(&mut to_server);
//! let get = Request::GetData { path: "/app/config".into(), watch: true };
//! RequestFrame::Op { xid: Xid::FIRST, request: get }.encode(&mut to_server);
//!
//! // Server: the first frame under the handshake limit, the rest under the
//! // negotiated one.
//! let body = decode_frame(&mut to_server, HANDSHAKE_FRAME_BYTES_MAX)?.expect("buffered");
//! let hello = ConnectRequest::decode(body)?;
//! let limit = negotiate_frame_bytes(hello.max_frame_bytes, FRAME_BYTES_DEFAULT)
//!     .expect("the client offered at least FRAME_BYTES_MIN");
//! let mut to_client = BytesMut::new();
//! ConnectReply::Accepted(ConnectResponse {
//!     protocol_version: hello.protocol_version,
//!     timeout_ms: negotiate_timeout_ms(hello.timeout_ms, 2_000, 60_000),
//!     session_id: 0x0100_0000_0000_002a,
//!     password: *b"0123456789abcdef",
//!     max_frame_bytes: limit,
//!     server_id: 1,
//!     last_zxid: 0x5_0000_0014,
//! })
//! .encode(&mut to_client);
//! let body = decode_frame(&mut to_server, limit)?.expect("buffered");
//! let RequestFrame::Op { xid, request } = RequestFrame::decode(body)? else {
//!     panic!("expected an operation");
//! };
//! assert_eq!(request.opcode(), OpCode::GetData);
//! let reply = Reply { xid, zxid: 0x5_0000_0014, outcome: Outcome::Err(ErrorCode::NoNode) };
//! ServerFrame::Reply(reply).encode(&mut to_client);
//!
//! // Client: the handshake answer, then replies in request order. The reply
//! // body's layout depends on the request, so the decoder asks for its opcode.
//! let body = decode_frame(&mut to_client, HANDSHAKE_FRAME_BYTES_MAX)?.expect("buffered");
//! let ConnectReply::Accepted(session) = ConnectReply::decode(body)? else {
//!     panic!("refused");
//! };
//! let outstanding = [(Xid::FIRST, OpCode::GetData)];
//! let body = decode_frame(&mut to_client, session.max_frame_bytes)?.expect("buffered");
//! let frame = ServerFrame::decode(body, |xid| {
//!     outstanding.iter().find(|(x, _)| *x == xid).map(|(_, op)| *op)
//! })?;
//! let ServerFrame::Reply(reply) = frame else { panic!("expected a reply") };
//! assert_eq!(reply.outcome, Outcome::Err(ErrorCode::NoNode));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Hostile input
//!
//! Every decoder treats its input as hostile. A length prefix is checked
//! against the limit before anything is reserved; every inner length and
//! list count is checked against what is left of the frame before slicing
//! or allocating; bools, flags and enums outside their domain, unknown
//! opcodes and invalid UTF-8 are typed [`DecodeError`]s naming the message
//! and field. Unknown error codes are kept as [`ErrorCode::Unknown`] so a
//! newer server can add codes. The encoding is canonical: a frame that
//! decodes re-encodes to the same bytes.

mod acl;
mod connect;
mod error;
mod frame;
mod request;
mod response;
mod types;
mod wire;
pub mod zk;

#[cfg(test)]
mod fuzz;
#[cfg(test)]
mod spec;
#[cfg(test)]
mod testkit;

pub use acl::{digest_id, Acl, Perms};
pub use connect::{
    negotiate_frame_bytes, negotiate_timeout_ms, ConnectRequest, MAGIC, PASSWORD_BYTES,
    PROTOCOL_VERSION,
};
pub use error::DecodeError;
pub use frame::{
    decode_frame, FrameError, FRAME_BYTES_DEFAULT, FRAME_BYTES_MIN, HANDSHAKE_FRAME_BYTES_MAX,
    LEN_PREFIX_BYTES,
};
pub use request::{
    CheckRequest, CreateRequest, DeleteRequest, MultiOp, OpCode, ReadOp, Request, RequestFrame,
    SetDataRequest, SetWatches, PING_OPCODE,
};
pub use response::{
    ConnectRefused, ConnectReply, ConnectResponse, CreateReply, MultiResult, Outcome, ReadResult,
    Reply, Response, ServerFrame, WatchEvent, REFUSED_MESSAGE_BYTES_MAX,
};
pub use types::{
    AddWatchMode, CreateMode, ErrorCode, Stat, WatchEventKind, WatcherKind, Xid, ANY_VERSION,
    XID_NOTIFICATION, XID_PING,
};
pub use wire::Reader;
