//! A ZooKeeper client's connection (issue #18): the same server core, the
//! same sessions, watches and replies, translated at the edge.
//!
//! The reader turns each ZooKeeper frame into this protocol's request
//! ([`zab_proto::zk::Incoming`]) under an xid of its own, and notes in the
//! connection's [`Ledger`] how its reply must look and under which
//! ZooKeeper xid. The writer reads what the core sends (this protocol's
//! frames, in request order) and writes each reply as ZooKeeper's client
//! expects it. Requests answered without the core (WhoAmI, opcodes this
//! server does not run) wait in the same ledger, so every reply leaves in
//! request order. Backpressure and the backlog's bounds are the same as on
//! the main client port, counted in the core's bytes.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, watch, Notify};
use tracing::{debug, warn};
use zab_proto::zk::{self, Incoming, Shape, ZkConnect};
use zab_proto::{
    ConnectReply, ConnectRequest, ErrorCode, OpCode, Outcome, Request, RequestFrame, ServerFrame,
    Xid, HANDSHAKE_FRAME_BYTES_MAX, PASSWORD_BYTES, PROTOCOL_VERSION,
};

use super::{four_letter, ClientEvent, ListenerConfig};
use crate::core::{ConnId, OUTSTANDING_MAX};

/// The largest reply a ZooKeeper client takes by default (its
/// `jute.maxbuffer`, 0xfffff), less room for the difference between the two
/// encodings: the frame limit asked of the core.
const ZK_REPLY_BYTES_MAX: u32 = 0xfffff - 4096;

/// What a reply waits for, in request order.
#[derive(Debug)]
enum Waiting {
    /// The core's answer to a ping.
    Ping,
    /// The core's reply to `ours`, written under ZooKeeper's `xid` in
    /// `shape`; an AddAuth's identity is remembered when it succeeds.
    Reply {
        ours: Xid,
        opcode: OpCode,
        xid: i32,
        shape: Shape,
        auth: Option<(String, String)>,
    },
    /// Answered here: WhoAmI, or `Unimplemented`.
    WhoAmI {
        xid: i32,
    },
    Unsupported {
        xid: i32,
    },
    /// A value out of range: `BadArguments`.
    Invalid {
        xid: i32,
    },
}

/// The replies a connection owes, in request order, and who it proved.
#[derive(Debug, Default)]
struct Ledger {
    waiting: VecDeque<Waiting>,
    /// (scheme, id): its address, then each identity AddAuth proved.
    identities: Vec<(String, String)>,
}

/// Runs one ZooKeeper connection until either side ends it.
pub(super) async fn connection<R, W>(
    (conn, ip, x509): (ConnId, IpAddr, Option<String>),
    (mut reader, mut writer): (R, W),
    events: &mpsc::Sender<ClientEvent>,
    cfg: &ListenerConfig,
) -> std::io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut identities = vec![("ip".to_string(), ip.to_string())];
    if let Some(subject) = &x509 {
        identities.push(("x509".to_string(), subject.clone()));
    }
    // A four-letter word instead of a handshake: answered, then closed,
    // without a word to the core.
    let mut buf = BytesMut::with_capacity(16 * 1024);
    while buf.len() < 4 {
        match tokio::time::timeout(cfg.stall, reader.read_buf(&mut buf)).await {
            Ok(Ok(0)) | Err(_) => return Ok(()),
            Ok(read) => read?,
        };
    }
    if let (Some(word), Some(words)) = (four_letter::word(&buf[..4]), &cfg.four_letter_words) {
        let answer = words.answer(word, &cfg.metrics);
        writer.write_all(answer.as_bytes()).await?;
        return writer.shutdown().await;
    }
    let Some((mut rx, backlog)) = super::open((conn, ip, x509), events, cfg).await else {
        return Ok(());
    };
    let ledger = Arc::new(Mutex::new(Ledger {
        waiting: VecDeque::new(),
        identities,
    }));
    let local = Arc::new(Notify::new());
    // ZooKeeper's clients send their requests (SetWatches, AddAuth...)
    // right behind the handshake; the core takes them only once the
    // session is attached, so the reader holds them until then.
    let (attached_tx, mut attached) = watch::channel(false);
    let (writer_ledger, writer_local, writer_backlog) =
        (ledger.clone(), local.clone(), backlog.clone());
    let metrics = cfg.metrics.clone();
    let write = async move {
        let mut translator = Translator {
            ledger: writer_ledger,
            inbox: BytesMut::new(),
            handshaken: false,
            zxid: 0,
            attached: attached_tx,
        };
        loop {
            let taken = tokio::select! {
                got = rx.recv() => match got {
                    Some(first) => {
                        let mut taken = first.len();
                        translator.inbox.extend_from_slice(&first);
                        while let Ok(more) = rx.try_recv() {
                            taken += more.len();
                            translator.inbox.extend_from_slice(&more);
                        }
                        taken
                    }
                    None => break,
                },
                () = writer_local.notified() => 0,
            };
            let mut out = BytesMut::new();
            let keep_open = translator.translate(&mut out);
            if !out.is_empty() && writer.write_all(&out).await.is_err() {
                return;
            }
            metrics.client_sent_bytes.inc_by(out.len() as u64);
            writer_backlog.taken(taken);
            if !keep_open {
                break;
            }
        }
        // The core dropped us (close or refusal), or refused the session:
        // flush and end.
        let _ = writer.shutdown().await;
    };
    let reader_backlog = backlog.clone();
    let read = async move {
        let mut next = Xid::FIRST;
        let mut hello = true;
        loop {
            reader_backlog.room().await;
            // The handshake is small; requests are bounded by what a
            // ZooKeeper client can read back (ZK_REPLY_BYTES_MAX).
            let limit = match hello {
                true => HANDSHAKE_FRAME_BYTES_MAX,
                false => cfg.frame_bytes_max.min(ZK_REPLY_BYTES_MAX),
            };
            while let Some(body) = zk_frame(&mut buf, limit, conn)? {
                cfg.metrics.client_requests.inc();
                let event = if hello {
                    hello = false;
                    let connect = ZkConnect::decode(body).map_err(|e| {
                        warn!(conn, error = %e, "malformed ZooKeeper handshake; closing");
                        std::io::Error::other(e)
                    })?;
                    ClientEvent::Hello {
                        conn,
                        hello: handshake(&connect),
                    }
                } else {
                    if attached.wait_for(|a| *a).await.is_err() {
                        return Ok(()); // the handshake was refused
                    }
                    let incoming = Incoming::decode(body).map_err(|e| {
                        warn!(conn, error = %e, "malformed ZooKeeper request; closing");
                        std::io::Error::other(e)
                    })?;
                    match note(&ledger, incoming, &mut next)? {
                        Some(frame) => ClientEvent::Frame { conn, frame },
                        None => {
                            local.notify_one();
                            continue;
                        }
                    }
                };
                if events.send(event).await.is_err() {
                    return Ok(());
                }
            }
            if !super::read_more(&mut reader, &mut buf, cfg, conn).await? {
                return Ok(());
            }
        }
    };
    super::run_until_done(conn, write, read, &backlog).await
}

/// One whole frame's body from `buf`, if there is one. A length that is
/// negative or past `limit` ends the connection (ZooKeeper's server does
/// the same).
fn zk_frame(buf: &mut BytesMut, limit: u32, conn: ConnId) -> std::io::Result<Option<Bytes>> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let len = i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
    if len < 0 || len as u32 > limit {
        warn!(
            conn,
            len, "ZooKeeper frame length out of range; closing the connection"
        );
        return Err(std::io::Error::other("ZooKeeper frame length out of range"));
    }
    let len = len as usize;
    if buf.len() < 4 + len {
        buf.reserve(4 + len - buf.len());
        return Ok(None);
    }
    buf.advance(4);
    Ok(Some(buf.split_to(len).freeze()))
}

/// ZooKeeper's handshake as ours. A password of another length cannot be
/// a session's: a new session sends zeros.
fn handshake(c: &ZkConnect) -> ConnectRequest {
    let mut password = [0u8; PASSWORD_BYTES];
    if c.password.len() == PASSWORD_BYTES {
        password.copy_from_slice(&c.password);
    }
    ConnectRequest {
        protocol_version: PROTOCOL_VERSION,
        last_zxid_seen: c.last_zxid_seen as u64,
        timeout_ms: u32::try_from(c.timeout_ms).unwrap_or(0),
        session_id: c.session_id as u64,
        password,
        max_frame_bytes: ZK_REPLY_BYTES_MAX,
    }
}

/// Notes what `incoming`'s reply will need and returns the frame for the
/// core, or `None` if it is answered here.
///
/// Past [`OUTSTANDING_MAX`] replies owed the connection is closed, as the
/// core closes one that has that many requests outstanding: replies made
/// here count too, so a client cannot queue them without bound.
fn note(
    ledger: &Mutex<Ledger>,
    incoming: Incoming,
    next: &mut Xid,
) -> std::io::Result<Option<RequestFrame>> {
    let mut ledger = ledger.lock().unwrap_or_else(|e| e.into_inner());
    if ledger.waiting.len() >= OUTSTANDING_MAX {
        warn!("a ZooKeeper client has too many requests outstanding; closing the connection");
        return Err(std::io::Error::other("too many outstanding requests"));
    }
    Ok(match incoming {
        Incoming::Ping => {
            ledger.waiting.push_back(Waiting::Ping);
            Some(RequestFrame::Ping)
        }
        Incoming::Op {
            xid,
            shape,
            request,
        } => {
            let ours = *next;
            *next = next.next();
            let auth = match &request {
                Request::AddAuth { scheme, auth } => {
                    let user = String::from_utf8_lossy(auth);
                    let user = user.split(':').next().unwrap_or_default().to_string();
                    Some((scheme.clone(), user))
                }
                _ => None,
            };
            ledger.waiting.push_back(Waiting::Reply {
                ours,
                opcode: request.opcode(),
                xid,
                shape,
                auth,
            });
            Some(RequestFrame::Op { xid: ours, request })
        }
        Incoming::WhoAmI { xid } => {
            ledger.waiting.push_back(Waiting::WhoAmI { xid });
            None
        }
        Incoming::Unsupported { xid, opcode } => {
            debug!(opcode, "a ZooKeeper opcode this server does not run");
            ledger.waiting.push_back(Waiting::Unsupported { xid });
            None
        }
        Incoming::Invalid { xid, error } => {
            debug!(%error, "a ZooKeeper request with a value out of range");
            ledger.waiting.push_back(Waiting::Invalid { xid });
            None
        }
    })
}

/// The writer's side: the core's frames in, ZooKeeper's out.
struct Translator {
    ledger: Arc<Mutex<Ledger>>,
    /// What the core sent that is not a whole frame yet.
    inbox: BytesMut,
    handshaken: bool,
    /// The last zxid a reply carried, for replies made here.
    zxid: i64,
    /// Set once the core accepted the handshake.
    attached: watch::Sender<bool>,
}

impl Translator {
    /// Translates every whole frame in the inbox, then the replies made
    /// here that are due. False when the connection must close (a refused
    /// handshake, or something the core sent that does not decode).
    fn translate(&mut self, out: &mut BytesMut) -> bool {
        loop {
            if self.handshaken {
                self.answer_local(out);
            }
            let body = match zab_proto::decode_frame(&mut self.inbox, u32::MAX) {
                Ok(Some(body)) => body,
                Ok(None) => return true,
                Err(_) => return false,
            };
            if !self.handshaken {
                self.handshaken = true;
                match ConnectReply::decode(body) {
                    Ok(ConnectReply::Accepted(a)) => {
                        let timeout = i32::try_from(a.timeout_ms).unwrap_or(i32::MAX);
                        self.zxid = a.last_zxid as i64;
                        zk::encode_connect_response(out, timeout, a.session_id as i64, &a.password);
                        self.attached.send_replace(true);
                    }
                    // ZooKeeper's way to say "expired": a zero timeout. It
                    // answers a wrong password the same way.
                    Ok(ConnectReply::Refused(r))
                        if matches!(r.code, ErrorCode::SessionExpired | ErrorCode::AuthFailed) =>
                    {
                        zk::encode_connect_response(out, 0, 0, &[0; PASSWORD_BYTES]);
                        return false;
                    }
                    // Behind, or refused otherwise: the client tries
                    // another server.
                    _ => return false,
                }
                continue;
            }
            let mut ledger = self.ledger.lock().unwrap_or_else(|e| e.into_inner());
            let expected = match ledger.waiting.front() {
                Some(Waiting::Reply { ours, opcode, .. }) => Some((*ours, *opcode)),
                _ => None,
            };
            let opcode_of = |x: Xid| expected.filter(|(ours, _)| *ours == x).map(|(_, o)| o);
            let frame = match ServerFrame::decode(body, opcode_of) {
                Ok(frame) => frame,
                Err(e) => {
                    warn!(error = %e, waiting = ?ledger.waiting.front(), "a reply the ZooKeeper adapter cannot match; closing");
                    return false;
                }
            };
            match frame {
                ServerFrame::Watch { event, .. } => {
                    zk::encode_notification(out, &event);
                }
                ServerFrame::Ping { zxid } => {
                    self.zxid = zxid as i64;
                    if matches!(ledger.waiting.front(), Some(Waiting::Ping)) {
                        ledger.waiting.pop_front();
                    }
                    zk::encode_ping_reply(out, self.zxid);
                }
                ServerFrame::Reply(reply) => {
                    self.zxid = reply.zxid as i64;
                    let Some(Waiting::Reply {
                        xid, shape, auth, ..
                    }) = ledger.waiting.pop_front()
                    else {
                        warn!(xid = %reply.xid, "a reply the ZooKeeper adapter does not expect; closing");
                        return false;
                    };
                    let failed_auth = auth.is_some() && !matches!(reply.outcome, Outcome::Ok(_));
                    if let (Some(id), Outcome::Ok(_)) = (auth, &reply.outcome) {
                        ledger.identities.push(id);
                    }
                    zk::encode_reply(out, xid, self.zxid, &shape, &reply.outcome);
                    // ZooKeeper closes a connection whose AddAuth failed,
                    // after telling it.
                    if failed_auth {
                        return false;
                    }
                }
            }
        }
    }

    /// Writes the replies made here that no earlier reply holds back.
    fn answer_local(&mut self, out: &mut BytesMut) {
        let mut ledger = self.ledger.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            match ledger.waiting.front() {
                Some(Waiting::WhoAmI { xid }) => {
                    zk::encode_who_am_i(out, *xid, self.zxid, &ledger.identities);
                }
                Some(Waiting::Unsupported { xid }) => {
                    zk::encode_error(out, *xid, self.zxid, ErrorCode::Unimplemented);
                }
                Some(Waiting::Invalid { xid }) => {
                    zk::encode_error(out, *xid, self.zxid, ErrorCode::BadArguments);
                }
                _ => return,
            }
            ledger.waiting.pop_front();
        }
    }
}
