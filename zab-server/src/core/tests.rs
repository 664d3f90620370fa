//! Exact-output tests of the client side of the server core: a frontend
//! and its replica, commits applied by hand, time moved by hand.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use zab_core::{Epoch, Input, Zxid};
use zab_proto::{
    AddWatchMode, ConnectReply, ConnectRequest, CreateMode, CreateRequest, ErrorCode, OpCode,
    Outcome as WireOutcome, Request, RequestFrame, Response, ServerFrame, Xid, PASSWORD_BYTES,
    PROTOCOL_VERSION,
};

use super::frontend::{ClientOutput, Frontend};
use super::{Clock, ConnId, Entropy, SessionLimits};
use crate::replica::Replica;
use crate::server::Application;

type Inputs = Vec<Input>;

/// A frontend and its replica, with commits applied by hand.
struct Harness {
    fe: Frontend,
    replica: Replica,
    counter: u32,
    /// What each connection was sent, and whether it was closed.
    sent: HashMap<ConnId, BytesMut>,
    closed: Vec<ConnId>,
    entropy: u8,
}

/// A session's id and password.
type Credentials = (u64, [u8; PASSWORD_BYTES]);

impl Harness {
    fn new() -> Harness {
        Harness::with_server(1)
    }

    fn with_server(me: u64) -> Harness {
        let mut fe = Frontend::new(
            me,
            SessionLimits::default(),
            0x5eed,
            Arc::new(crate::metrics::Metrics::default()),
        );
        fe.clock = Clock {
            mono_us: 1_000_000,
            wall_ms: 1_700_000_000_000,
        };
        // In a working quorum: only then are handshakes taken.
        fe.on_role_changed(following());
        Harness {
            fe,
            replica: Replica::new(),
            counter: 0,
            sent: HashMap::new(),
            closed: Vec::new(),
            entropy: 0,
        }
    }

    /// Moves both clocks on by `ms`.
    fn advance(&mut self, ms: u64) {
        self.fe.clock.mono_us += ms * 1000;
        self.fe.clock.wall_ms += ms as i64;
    }

    /// Collects the frontend's outputs.
    fn drain(&mut self) {
        while let Some(out) = self.fe.poll_output() {
            match out {
                ClientOutput::Send { conn, bytes } => {
                    self.sent.entry(conn).or_default().extend_from_slice(&bytes)
                }
                ClientOutput::Close { conn } => self.closed.push(conn),
            }
        }
    }

    fn is_closed(&mut self, conn: ConnId) -> bool {
        self.drain();
        self.closed.contains(&conn)
    }

    /// Commits `inputs`' proposals, in order, as the log would.
    fn commit(&mut self, inputs: Inputs) {
        for input in inputs {
            self.commit_together(vec![input]);
        }
    }

    /// Commits `inputs`' proposals as one batch of deliveries.
    fn commit_together(&mut self, inputs: Inputs) {
        for input in inputs {
            let Input::Propose { payload, .. } = input else {
                panic!("expected a proposal, got {input:?}");
            };
            self.apply(&payload);
        }
        self.applied();
    }

    fn apply(&mut self, payload: &Bytes) {
        self.counter += 1;
        let zxid = Zxid::new(Epoch(1), self.counter);
        self.replica.apply(zxid, payload).expect("applies");
    }

    fn applied(&mut self) {
        let done = std::mem::take(&mut self.replica.completed);
        self.fe.on_applied(done, &self.replica);
        self.drain();
    }

    fn tick(&mut self, role: zab_core::Role) -> Inputs {
        let inputs = self.fe.on_tick(role, &self.replica);
        self.drain();
        inputs
    }

    fn close(&mut self, conn: ConnId) {
        self.fe.on_closed(conn);
        self.drain();
    }

    /// Opens `conn` and sends its hello; returns what the frontend asked.
    fn hello(&mut self, conn: ConnId, session: Option<Credentials>, timeout_ms: u32) -> Inputs {
        let (session_id, password) = session.unwrap_or((0, [0; PASSWORD_BYTES]));
        let hello = ConnectRequest {
            protocol_version: PROTOCOL_VERSION,
            last_zxid_seen: 0,
            timeout_ms,
            session_id,
            password,
            max_frame_bytes: zab_proto::FRAME_BYTES_DEFAULT,
        };
        self.entropy += 1;
        let entropy = Entropy([self.entropy; 24]);
        self.fe.on_opened(conn, None, None);
        let applied = self.replica.tree.last_applied_zxid();
        let inputs = self
            .fe
            .on_hello(conn, hello, entropy, &self.replica, applied);
        self.drain();
        inputs
    }

    /// The connect reply `conn` received (taken off its bytes).
    fn connect_reply(&mut self, conn: ConnId) -> ConnectReply {
        self.drain();
        let buf = self.sent.entry(conn).or_default();
        let body = zab_proto::decode_frame(buf, u32::MAX)
            .expect("well framed")
            .expect("a connect reply");
        ConnectReply::decode(body).expect("a connect reply")
    }

    /// Connects `conn`: a new session (`session` None) or a re-attach,
    /// committing what the handshake logs. Returns the session's credentials.
    fn connect(&mut self, conn: ConnId, session: Option<Credentials>) -> Credentials {
        let inputs = self.hello(conn, session, 10_000);
        self.commit(inputs);
        match self.connect_reply(conn) {
            ConnectReply::Accepted(r) => (r.session_id, r.password),
            ConnectReply::Refused(r) => panic!("refused: {r:?}"),
        }
    }

    fn send(&mut self, conn: ConnId, xid: i32, request: Request) -> Inputs {
        let xid = Xid::new(xid).expect("a request xid");
        self.frame(conn, RequestFrame::Op { xid, request })
    }

    fn frame(&mut self, conn: ConnId, frame: RequestFrame) -> Inputs {
        let applied = self.replica.tree.last_applied_zxid();
        let inputs = self.fe.on_frame(conn, frame, &self.replica, applied);
        self.drain();
        inputs
    }

    /// Every frame `conn` received since its connect reply; replies decode
    /// as `opcodes`, in order.
    fn frames(&mut self, conn: ConnId, opcodes: &[OpCode]) -> Vec<ServerFrame> {
        self.drain();
        let buf = self.sent.entry(conn).or_default();
        let mut ops = opcodes.iter().copied();
        let mut out = Vec::new();
        while let Some(body) = zab_proto::decode_frame(buf, u32::MAX).expect("well framed") {
            out.push(ServerFrame::decode(body, |_| ops.next()).expect("a server frame"));
        }
        out
    }
}

fn leading() -> zab_core::Role {
    zab_core::Role::Leading {
        term: Epoch(1),
        epoch: Epoch(1),
        phase: zab_core::Phase::Broadcast,
    }
}

fn following() -> zab_core::Role {
    zab_core::Role::Following {
        leader: zab_core::PeerId(2),
        term: Epoch(1),
        phase: zab_core::Phase::Broadcast,
    }
}

/// The sessions a follower's tick relays to the leader.
fn relayed(inputs: &Inputs) -> Vec<u64> {
    inputs
        .iter()
        .flat_map(|i| match i {
            Input::Relay { payload } => payload
                .chunks(8)
                .map(|c| u64::from_be_bytes(c.try_into().expect("8 bytes")))
                .collect(),
            _ => Vec::new(),
        })
        .collect()
}

/// Whether the inputs propose expiring `session`.
fn expires(inputs: &Inputs, session: u64) -> bool {
    inputs.iter().any(|i| match i {
        Input::Propose { payload, .. } => crate::replica::Command::decode(payload.clone())
            .is_ok_and(|c| {
                c.session == session && c.body == crate::replica::CommandBody::ExpireSession
            }),
        _ => false,
    })
}

/// An open connection is no proof of life: a client that sends nothing
/// (cut off with its socket open, or paused) is not relayed, and its
/// connection is closed once silent for its session timeout.
#[test]
fn a_silent_connection_keeps_nothing_alive() {
    let mut h = Harness::new();
    let (session, _) = h.connect(1, None);
    h.tick(following()); // the handshake's touch
    h.advance(100);
    assert_eq!(relayed(&h.tick(following())), Vec::<u64>::new());
    h.advance(9_800);
    h.tick(following());
    assert!(!h.is_closed(1), "closed before its timeout");
    h.advance(300);
    h.tick(following());
    assert!(
        h.is_closed(1),
        "a connection silent past its 10 s timeout stays open"
    );
    let _ = session;
}

/// Pings are traffic: each is relayed and keeps the connection open.
#[test]
fn pings_keep_a_session_alive() {
    let mut h = Harness::new();
    let (session, _) = h.connect(1, None);
    for _ in 0..10 {
        h.advance(3_000);
        h.frame(1, RequestFrame::Ping);
        assert_eq!(relayed(&h.tick(following())), vec![session]);
    }
    assert!(!h.is_closed(1));
}

/// The leader expires a session by its monotonic clock: not before the
/// timeout, and whatever the wall clock does.
#[test]
fn the_leader_expires_on_the_monotonic_clock_only() {
    let mut h = Harness::new();
    let (session, _) = h.connect(1, None);
    h.tick(leading()); // a new leader restarts every session's clock
    h.close(1);
    // The wall clock jumps an hour ahead: nothing expires early.
    h.fe.clock.wall_ms += 3_600_000;
    h.advance(9_900);
    assert!(!expires(&h.tick(leading()), session), "expired early");
    // ... and an hour back: nothing lives on.
    h.fe.clock.wall_ms -= 7_200_000;
    h.advance(200);
    assert!(
        expires(&h.tick(leading()), session),
        "not expired after its timeout"
    );
}

/// A ping heard while this follower is still syncing with a new leader is
/// relayed once it broadcasts, not dropped: the new leader restarted every
/// session's clock when it started, and a slow rejoin must not expire a
/// session whose client pinged all along.
#[test]
fn touches_heard_while_syncing_reach_the_leader_later() {
    let mut h = Harness::new();
    let (session, _) = h.connect(1, None);
    h.tick(following());
    h.advance(1_000);
    h.frame(1, RequestFrame::Ping);
    let syncing = zab_core::Role::Following {
        leader: zab_core::PeerId(2),
        term: Epoch(2),
        phase: zab_core::Phase::Synchronization,
    };
    assert_eq!(relayed(&h.tick(syncing)), Vec::<u64>::new());
    h.advance(100);
    assert_eq!(relayed(&h.tick(following())), vec![session]);
}

/// A session heard on a follower (relayed) is alive at the leader.
#[test]
fn relayed_sessions_stay_alive_at_the_leader() {
    let mut h = Harness::new();
    let (session, _) = h.connect(1, None);
    h.close(1);
    h.tick(leading());
    for _ in 0..5 {
        h.advance(4_000);
        h.fe.on_relayed(Bytes::copy_from_slice(&session.to_be_bytes()));
        assert!(!expires(&h.tick(leading()), session));
    }
}

/// A server that leaves the quorum closes its connections (their clients
/// move to a server whose traffic reaches the leader) and refuses
/// handshakes until it is back.
#[test]
fn a_server_out_of_the_quorum_serves_no_sessions() {
    let mut h = Harness::new();
    h.connect(1, None);
    h.fe.on_role_changed(zab_core::Role::Looking);
    assert!(h.is_closed(1));
    h.hello(2, None, 10_000);
    match h.connect_reply(2) {
        ConnectReply::Refused(r) => assert_eq!(r.code, ErrorCode::NotLeaderNoQuorum),
        ConnectReply::Accepted(r) => panic!("accepted out of the quorum: {r:?}"),
    }
}

/// A connection that never completes its handshake is closed.
#[test]
fn a_connection_without_a_handshake_is_closed() {
    let mut h = Harness::new();
    h.fe.on_opened(7, None, None);
    h.advance(9_900);
    h.tick(following());
    assert!(!h.is_closed(7));
    h.advance(200);
    h.tick(following());
    assert!(
        h.is_closed(7),
        "a connection without a handshake stays open"
    );
}

/// ZooKeeper's usual timeouts are granted by default.
#[test]
fn a_thirty_second_timeout_is_granted() {
    let mut h = Harness::new();
    let inputs = h.hello(1, None, 30_000);
    h.commit(inputs);
    match h.connect_reply(1) {
        ConnectReply::Accepted(r) => assert_eq!(r.timeout_ms, 30_000),
        ConnectReply::Refused(r) => panic!("refused: {r:?}"),
    }
}

/// A session that re-attaches to another server moves through the log; on
/// the server it left, its old connection answers SessionMoved and closes,
/// and a write it had logged after the move fails with SessionMoved.
#[test]
fn a_moved_sessions_old_connection_gets_session_moved() {
    let mut a = Harness::with_server(1);
    let (session, password) = a.connect(1, None);
    // Server 2 applies the same log; the client re-attaches there.
    let mut b = Harness::with_server(2);
    let create_session = a.replica.snapshot();
    b.replica.restore(&create_session).expect("restores");
    b.counter = a.counter;
    let move_here = b.hello(1, Some((session, password)), 10_000);
    assert_eq!(move_here.len(), 1, "the move goes through the log");
    // The old connection on server 1 logs a write before it hears of the move.
    let stale_write = a.send(1, 1, create("/stale"));
    for input in move_here.iter().chain(stale_write.iter()) {
        let Input::Propose { payload, .. } = input else {
            panic!("a proposal");
        };
        a.apply(payload);
        b.apply(payload);
    }
    a.applied();
    b.applied();
    assert!(matches!(b.connect_reply(1), ConnectReply::Accepted(_)));
    assert!(
        a.replica.tree.exists("/stale").is_none(),
        "a stale write applied"
    );
    let frames = a.frames(1, &[OpCode::Create]);
    let [ServerFrame::Reply(r)] = &frames[..] else {
        panic!("expected the stale write's reply, got {frames:?}");
    };
    assert_eq!(r.outcome, WireOutcome::Err(ErrorCode::SessionMoved));
    // A further request on the old connection, a multi: SessionMoved, in
    // a multi's own error form (which a client decodes as a multi's), then
    // the connection is closed.
    let delete = zab_proto::DeleteRequest {
        path: "/".into(),
        version: -1,
    };
    a.send(
        1,
        2,
        Request::Multi(vec![zab_proto::MultiOp::Delete(delete)]),
    );
    let frames = a.frames(1, &[OpCode::Multi]);
    let [ServerFrame::Reply(r)] = &frames[..] else {
        panic!("expected one reply, got {frames:?}");
    };
    let moved = WireOutcome::MultiErr {
        err: ErrorCode::SessionMoved,
        errors: Vec::new(),
    };
    assert_eq!(r.outcome, moved);
    assert!(a.is_closed(1));
}

/// Resuming a session that expired is refused SessionExpired.
#[test]
fn an_expired_sessions_resume_is_refused() {
    let mut h = Harness::new();
    let credentials = h.connect(1, None);
    h.tick(leading());
    h.close(1);
    h.advance(10_100);
    let expiry = h.tick(leading());
    assert!(expires(&expiry, credentials.0));
    h.commit(expiry);
    h.hello(2, Some(credentials), 10_000);
    match h.connect_reply(2) {
        ConnectReply::Refused(r) => assert_eq!(r.code, ErrorCode::SessionExpired),
        ConnectReply::Accepted(r) => panic!("an expired session resumed: {r:?}"),
    }
    assert!(h.is_closed(2));
}

fn create(path: &str) -> Request {
    Request::Create(CreateRequest {
        path: path.into(),
        data: Bytes::new(),
        mode: CreateMode::Persistent,
        ttl_ms: 0,
        acl: None,
    })
}

fn watch_recursive(path: &str) -> Request {
    Request::AddWatch {
        path: path.into(),
        mode: AddWatchMode::PersistentRecursive,
    }
}

/// A session's next connection reuses xids; a write its earlier
/// connection left behind that commits later must not answer the new
/// connection's request with the same xid (a sync answered that way
/// would let a stale read through).
#[test]
fn a_write_left_by_a_closed_connection_answers_nobody() {
    let mut h = Harness::new();
    let session = h.connect(1, None);
    let left_behind = h.send(1, 5, create("/x"));
    h.close(1);
    h.connect(2, Some(session));
    let own = h.send(2, 5, create("/y"));
    h.commit(left_behind);
    assert!(
        h.frames(2, &[OpCode::Create]).is_empty(),
        "the new connection was answered by its predecessor's write"
    );
    h.commit(own);
    let frames = h.frames(2, &[OpCode::Create]);
    let [ServerFrame::Reply(reply)] = &frames[..] else {
        panic!("expected one reply, got {frames:?}");
    };
    assert_eq!(reply.xid.get(), 5);
    match &reply.outcome {
        WireOutcome::Ok(Response::Create(c)) => assert_eq!(c.path, "/y"),
        other => panic!("expected /y created, got {other:?}"),
    }
}

/// Header zxids never decrease on a connection, even when a write's
/// reply and an event for a later change come out of one batch.
#[test]
fn header_zxids_never_decrease_on_a_connection() {
    let mut h = Harness::new();
    h.connect(1, None);
    h.connect(2, None);
    let root = h.send(2, 1, create("/r"));
    h.commit(root);
    h.send(1, 1, watch_recursive("/r"));
    let mut batch = h.send(1, 2, create("/r/mine"));
    batch.extend(h.send(2, 2, create("/r/theirs")));
    h.commit_together(batch);
    let frames = h.frames(1, &[OpCode::AddWatch, OpCode::Create]);
    let headers: Vec<u64> = frames
        .iter()
        .map(|f| match f {
            ServerFrame::Reply(r) => r.zxid,
            ServerFrame::Ping { zxid } | ServerFrame::Watch { zxid, .. } => *zxid,
        })
        .collect();
    assert_eq!(frames.len(), 4, "{frames:?}");
    assert!(
        headers.windows(2).all(|w| w[0] <= w[1]),
        "header zxids went back: {headers:x?}"
    );
}

/// A watch request queued behind a write is armed in request order:
/// its reply comes first, and every event it reports is after the
/// reply's zxid (the client routes events to the watch's stream only
/// once the reply has registered it).
#[test]
fn a_watch_queued_behind_a_write_reports_only_after_its_reply() {
    let mut h = Harness::new();
    h.connect(1, None);
    h.connect(2, None);
    let root = h.send(2, 1, create("/r"));
    h.commit(root);
    let write = h.send(1, 1, create("/a"));
    h.send(1, 2, watch_recursive("/r"));
    let before = h.send(2, 2, create("/r/before"));
    h.commit(before);
    h.commit(write);
    let after = h.send(2, 3, create("/r/after"));
    h.commit(after);
    let frames = h.frames(1, &[OpCode::Create, OpCode::AddWatch]);
    let mut registered = None;
    let mut events = Vec::new();
    for f in &frames {
        match f {
            ServerFrame::Reply(r) if r.xid.get() == 2 => registered = Some(r.zxid),
            ServerFrame::Watch { event, .. } => {
                let at = registered
                    .unwrap_or_else(|| panic!("event on {} before the AddWatch reply", event.path));
                assert!(event.zxid > at, "event at {:#x} <= {at:#x}", event.zxid);
                events.push(event.path.clone());
            }
            _ => {}
        }
    }
    assert!(registered.is_some(), "no AddWatch reply in {frames:?}");
    assert_eq!(events, ["/r/after"]);
}

fn set_watches(exists: &[&str], persistent: &[&str]) -> Request {
    Request::SetWatches(zab_proto::SetWatches {
        relative_zxid: 0,
        data: Vec::new(),
        exists: exists.iter().map(|p| p.to_string()).collect(),
        children: Vec::new(),
        persistent: persistent.iter().map(|p| p.to_string()).collect(),
        persistent_recursive: Vec::new(),
    })
}

fn reply_outcome(frame: &ServerFrame) -> Option<&zab_proto::Outcome> {
    match frame {
        ServerFrame::Reply(r) => Some(&r.outcome),
        _ => None,
    }
}

/// SetWatches is held to the same watch limit as every other way of arming
/// one, and arms only valid paths: all of its watches or none.
#[test]
fn set_watches_is_all_or_nothing_within_the_limit() {
    let mut h = Harness::new();
    h.fe.watches = crate::watches::Watches::new(crate::watches::WatchLimits {
        per_session: 3,
        per_server: 100,
        resume_changes: 0,
    });
    let (session, _) = h.connect(1, None);
    h.frames(1, &[]);
    h.send(1, 1, set_watches(&["/a", "/b"], &["/c", "/d"]));
    h.send(1, 2, set_watches(&["/a", "bad path"], &[]));
    h.send(1, 3, set_watches(&["/a", "/b"], &["/c"]));
    let frames = h.frames(1, &[OpCode::SetWatches; 3]);
    let outcomes: Vec<_> = frames.iter().filter_map(reply_outcome).collect();
    assert_eq!(
        outcomes[..2],
        [
            &zab_proto::Outcome::Err(ErrorCode::TooManyWatches),
            &zab_proto::Outcome::Err(ErrorCode::BadArguments),
        ]
    );
    assert!(matches!(outcomes[2], zab_proto::Outcome::Ok(_)));
    // Only the third request armed anything: its three watches.
    assert_eq!(h.fe.watches.count(session), 3);
    let events = frames
        .iter()
        .filter(|f| matches!(f, ServerFrame::Watch { .. }))
        .count();
    assert_eq!(
        events, 1,
        "one ContinuityLost, for the third's persistent watch"
    );
}

mod acl;
mod reads;
mod resume;
