//! Exact outputs of the session machine for each input.

use bytes::{Bytes, BytesMut};
use zab_proto::{
    AddWatchMode, ConnectRefused, ConnectRequest, ConnectResponse, CreateMode, CreateReply,
    CreateRequest, Reply, Response, SetWatches, Stat, WatchEvent, WatchEventKind, PASSWORD_BYTES,
};

use super::*;

pub(super) const TIMEOUT: u32 = 6_000;

pub(super) fn accepted(session_id: u64, last_zxid: u64) -> Bytes {
    let mut out = BytesMut::new();
    ConnectReply::Accepted(ConnectResponse {
        protocol_version: PROTOCOL_VERSION,
        timeout_ms: TIMEOUT,
        session_id,
        password: [7; PASSWORD_BYTES],
        max_frame_bytes: 4096,
        server_id: 1,
        last_zxid,
    })
    .encode(&mut out);
    out.freeze()
}

fn refused(code: ErrorCode) -> Bytes {
    let mut out = BytesMut::new();
    ConnectReply::Refused(ConnectRefused {
        code,
        message: "no".into(),
    })
    .encode(&mut out);
    out.freeze()
}

fn server_frame(frame: ServerFrame) -> Bytes {
    let mut out = BytesMut::new();
    frame.encode(&mut out);
    out.freeze()
}

fn reply(xid: i32, zxid: u64, outcome: Outcome) -> Bytes {
    server_frame(ServerFrame::Reply(Reply {
        xid: Xid::new(xid).expect("positive"),
        zxid,
        outcome,
    }))
}

fn event(kind: WatchEventKind, path: &str, zxid: u64) -> Bytes {
    server_frame(ServerFrame::Watch {
        zxid,
        event: WatchEvent {
            kind,
            path: path.into(),
            zxid,
        },
    })
}

fn hello(last_zxid_seen: u64, session_id: u64) -> Output {
    let password = if session_id == 0 {
        [0; PASSWORD_BYTES]
    } else {
        [7; PASSWORD_BYTES]
    };
    let mut out = BytesMut::new();
    ConnectRequest {
        protocol_version: PROTOCOL_VERSION,
        last_zxid_seen,
        timeout_ms: TIMEOUT,
        session_id,
        password,
        max_frame_bytes: FRAME_BYTES_DEFAULT,
    }
    .encode(&mut out);
    Output::Send(out.freeze())
}

fn op(xid: i32, request: Request) -> Output {
    let mut out = BytesMut::new();
    RequestFrame::Op {
        xid: Xid::new(xid).expect("positive"),
        request,
    }
    .encode(&mut out);
    Output::Send(out.freeze())
}

fn ping() -> Output {
    let mut out = BytesMut::new();
    RequestFrame::Ping.encode(&mut out);
    Output::Send(out.freeze())
}

fn get(path: &str, watch: bool) -> Request {
    Request::GetData {
        path: path.into(),
        watch,
    }
}

fn got() -> Outcome {
    Outcome::Ok(Response::GetData {
        data: Bytes::from_static(b"d"),
        stat: Stat::default(),
    })
}

/// A machine over 3 servers whose session 0x55 was accepted by server 0 at
/// zxid 10, at time 0.
pub(super) fn connected() -> Machine {
    let mut m = Machine::new(3, TIMEOUT, 0);
    m.dialed(0);
    m.received(0, &accepted(0x55, 10));
    m.take_outputs();
    m
}

#[test]
fn a_new_session_dials_sends_hello_and_starts_at_the_accepted_zxid() {
    let mut m = Machine::new(3, TIMEOUT, 0);
    assert_eq!(m.take_outputs(), [Output::Dial { server: 0 }]);
    m.dialed(1);
    assert_eq!(m.take_outputs(), [hello(0, 0)]);
    m.received(2, &accepted(0x55, 10));
    assert_eq!(m.take_outputs(), [Output::State(SessionState::Connected)]);
    assert_eq!(m.last_zxid(), 10, "the zxid the session was created at");
    assert_eq!(m.session().map(|s| s.id), Some(0x55));
}

#[test]
fn calls_made_before_the_accept_go_out_right_after_it_in_order() {
    let mut m = Machine::new(1, TIMEOUT, 0);
    m.dialed(0);
    m.take_outputs();
    let a = m.call(Request::Sync { path: "/".into() }, false);
    let b = m.call(get("/a", false), false);
    assert_eq!(m.take_outputs(), [], "nothing is sent before the accept");
    m.received(1, &accepted(0x55, 10));
    assert_eq!(
        m.take_outputs(),
        [
            Output::State(SessionState::Connected),
            op(1, Request::Sync { path: "/".into() }),
            op(2, get("/a", false)),
        ]
    );
    // Replies are matched in order; a reply's zxid raises the last zxid.
    let mut both = reply(1, 11, Outcome::Ok(Response::Sync { zxid: 11 })).to_vec();
    both.extend_from_slice(&reply(2, 11, got()));
    m.received(2, &both);
    assert_eq!(
        m.take_outputs(),
        [
            Output::Reply {
                call: a,
                result: Ok(Response::Sync { zxid: 11 })
            },
            Output::Reply {
                call: b,
                result: Ok(Response::GetData {
                    data: Bytes::from_static(b"d"),
                    stat: Stat::default()
                })
            },
        ]
    );
    assert_eq!(m.last_zxid(), 11);
}

#[test]
fn frames_right_behind_the_accept_are_handled() {
    let mut m = Machine::new(1, TIMEOUT, 0);
    m.dialed(0);
    m.take_outputs();
    let mut bytes = accepted(0x55, 10).to_vec();
    bytes.extend_from_slice(&event(WatchEventKind::NodeDeleted, "/x", 12));
    m.received(1, &bytes);
    assert_eq!(
        m.take_outputs(),
        [
            Output::State(SessionState::Connected),
            Output::Event {
                to: Delivery::Session,
                event: WatchEvent {
                    kind: WatchEventKind::NodeDeleted,
                    path: "/x".into(),
                    zxid: 12
                }
            },
        ]
    );
}

#[test]
fn a_first_connection_tries_every_server_once_then_gives_up() {
    let mut m = Machine::new(2, TIMEOUT, 0);
    assert_eq!(m.take_outputs(), [Output::Dial { server: 0 }]);
    m.dial_failed(1, "connection refused");
    assert_eq!(m.take_outputs(), [Output::Dial { server: 1 }]);
    m.dialed(2);
    m.take_outputs();
    m.received(3, &refused(ErrorCode::NotLeaderNoQuorum));
    let out = m.take_outputs();
    assert_eq!(out[0], Output::Hangup);
    let [_, Output::Finished(Some(Error::NoServer(why)))] = &out[..] else {
        panic!("expected to give up, got {out:?}");
    };
    assert!(why.contains("NotLeaderNoQuorum"), "{why}");
    assert_eq!(m.next_deadline(), None);
    let late = m.call(get("/", false), false);
    assert_eq!(
        m.take_outputs(),
        [Output::Reply {
            call: late,
            result: Err(Error::ConnectionLoss)
        }]
    );
}

#[test]
fn pings_every_third_of_the_timeout_and_leaves_a_silent_server_at_two_thirds() {
    let mut m = connected();
    assert_eq!(m.next_deadline(), Some(2_000));
    m.tick(2_000);
    assert_eq!(m.take_outputs(), [ping()]);
    m.received(2_500, &server_frame(ServerFrame::Ping { zxid: 10 }));
    m.tick(4_000);
    assert_eq!(m.take_outputs(), [ping()]);
    // Heard at 2.5 s: silent from then on, left at 2.5 + 4 s.
    m.tick(6_000);
    assert_eq!(m.take_outputs(), [ping()]);
    assert_eq!(m.next_deadline(), Some(6_500));
    m.tick(6_500);
    assert_eq!(
        m.take_outputs(),
        [
            Output::Hangup,
            Output::State(SessionState::Disconnected),
            Output::Dial { server: 0 },
        ]
    );
}

#[test]
fn a_lost_connection_fails_what_was_in_flight_and_resumes_with_the_last_zxid() {
    let mut m = connected();
    let a = m.call(get("/a", false), false);
    assert_eq!(m.take_outputs(), [op(1, get("/a", false))]);
    m.connection_lost(100);
    assert_eq!(
        m.take_outputs(),
        [
            Output::Reply {
                call: a,
                result: Err(Error::ConnectionLoss)
            },
            Output::State(SessionState::Disconnected),
            Output::Dial { server: 0 },
        ]
    );
    // A call made while disconnected waits for the next connection.
    let b = m.call(get("/b", false), false);
    m.dial_failed(150, "refused");
    assert_eq!(m.take_outputs(), [Output::Dial { server: 1 }]);
    m.dialed(200);
    assert_eq!(m.take_outputs(), [hello(10, 0x55)]);
    m.received(300, &refused(ErrorCode::ServerBehind));
    assert_eq!(
        m.take_outputs(),
        [Output::Hangup, Output::Dial { server: 2 }]
    );
    m.dialed(400);
    m.take_outputs();
    m.received(500, &accepted(0x55, 12));
    // Xids run on across connections.
    assert_eq!(
        m.take_outputs(),
        [
            Output::State(SessionState::Reconnected),
            op(2, get("/b", false)),
        ]
    );
    assert_eq!(m.server(), Some(2));
    m.received(600, &reply(2, 12, got()));
    assert!(matches!(
        &m.take_outputs()[..],
        [Output::Reply { call, result: Ok(_) }] if *call == b
    ));
}

#[test]
fn a_session_not_resumed_within_its_timeout_expires() {
    let mut m = connected();
    let watch = m.call(
        Request::AddWatch {
            path: "/w".into(),
            mode: AddWatchMode::Persistent,
        },
        true,
    );
    m.received(10, &reply(1, 10, Outcome::Ok(Response::AddWatch)));
    m.take_outputs();
    m.connection_lost(1_000);
    m.take_outputs();
    m.dialed(1_010);
    m.take_outputs();
    let waiting = m.call(get("/a", false), false);
    // A server that never answers the hello is left at the handshake
    // timeout; the next one is still handshaking when the session's
    // timeout since the loss runs out.
    assert_eq!(m.next_deadline(), Some(1_010 + HANDSHAKE_TIMEOUT_MS));
    m.tick(1_010 + HANDSHAKE_TIMEOUT_MS);
    assert_eq!(
        m.take_outputs(),
        [Output::Hangup, Output::Dial { server: 1 }]
    );
    m.dialed(6_100);
    m.take_outputs();
    assert_eq!(m.next_deadline(), Some(1_000 + u64::from(TIMEOUT)));
    m.tick(7_000);
    assert_eq!(
        m.take_outputs(),
        [
            Output::Hangup,
            Output::State(SessionState::Expired),
            Output::EndStream(watch),
            Output::EndEvents,
            Output::Reply {
                call: waiting,
                result: Err(Error::SessionExpired)
            },
        ]
    );
    let later = m.call(get("/a", false), false);
    assert_eq!(
        m.take_outputs(),
        [Output::Reply {
            call: later,
            result: Err(Error::SessionExpired)
        }]
    );
    assert_eq!(m.next_deadline(), None);
}

#[test]
fn a_resume_refused_as_expired_ends_the_session_at_once() {
    let mut m = connected();
    m.connection_lost(1_000);
    m.take_outputs();
    m.dialed(1_001);
    m.take_outputs();
    m.received(1_002, &refused(ErrorCode::SessionExpired));
    assert_eq!(
        m.take_outputs(),
        [
            Output::Hangup,
            Output::State(SessionState::Expired),
            Output::EndEvents,
        ]
    );
}

#[test]
fn a_request_over_the_negotiated_frame_limit_fails_typed_and_is_not_sent() {
    let mut m = connected();
    let big = m.call(
        Request::Create(CreateRequest {
            path: "/big".into(),
            data: Bytes::from(vec![0; 5_000]),
            mode: CreateMode::Persistent,
            ttl_ms: 0,
            acl: None,
        }),
        false,
    );
    assert_eq!(
        m.take_outputs(),
        [Output::Reply {
            call: big,
            result: Err(Error::Server(ErrorCode::FrameTooLarge))
        }]
    );
    // The xid was not used.
    m.call(get("/a", false), false);
    assert_eq!(m.take_outputs(), [op(1, get("/a", false))]);
}

#[test]
fn watches_are_rearmed_from_the_zxid_seen_before_the_reconnect() {
    let mut m = connected();
    let watch = m.call(get("/c", true), true);
    m.take_outputs();
    m.received(10, &reply(1, 15, got()));
    m.take_outputs();
    m.connection_lost(100);
    m.take_outputs();
    m.dialed(101);
    assert_eq!(m.take_outputs(), [hello(15, 0x55)]);
    m.received(102, &accepted(0x55, 20));
    let set = SetWatches {
        relative_zxid: 15,
        data: vec!["/c".into()],
        ..Default::default()
    };
    assert_eq!(
        m.take_outputs(),
        [
            Output::State(SessionState::Reconnected),
            op(2, Request::SetWatches(set.clone())),
        ]
    );
    // Cut short before the SetWatches reply (the server had applied up to
    // 20): the next re-registration starts from 15 again.
    m.connection_lost(200);
    m.take_outputs();
    m.dialed(201);
    assert_eq!(m.take_outputs(), [hello(20, 0x55)]);
    m.received(202, &accepted(0x55, 20));
    assert_eq!(
        m.take_outputs(),
        [
            Output::State(SessionState::Reconnected),
            op(3, Request::SetWatches(set)),
        ]
    );
    // The catch-up fires the one-shot: it goes to its stream, which ends.
    let mut bytes = reply(3, 20, Outcome::Ok(Response::SetWatches)).to_vec();
    bytes.extend_from_slice(&event(WatchEventKind::NodeDataChanged, "/c", 18));
    m.received(300, &bytes);
    assert_eq!(
        m.take_outputs(),
        [
            Output::Event {
                to: Delivery::Stream(watch),
                event: WatchEvent {
                    kind: WatchEventKind::NodeDataChanged,
                    path: "/c".into(),
                    zxid: 18
                }
            },
            Output::EndStream(watch),
        ]
    );
    // Completed and fired: the next reconnect re-arms nothing.
    m.connection_lost(400);
    m.take_outputs();
    m.dialed(401);
    m.take_outputs();
    m.received(402, &accepted(0x55, 20));
    assert_eq!(m.take_outputs(), [Output::State(SessionState::Reconnected)]);
}

#[test]
fn a_failed_watching_read_ends_its_stream_and_arms_nothing() {
    let mut m = connected();
    let watch = m.call(get("/none", true), true);
    m.take_outputs();
    m.received(10, &reply(1, 10, Outcome::Err(ErrorCode::NoNode)));
    assert_eq!(
        m.take_outputs(),
        [
            Output::Reply {
                call: watch,
                result: Err(Error::Server(ErrorCode::NoNode))
            },
            Output::EndStream(watch),
        ]
    );
    m.connection_lost(100);
    m.take_outputs();
    m.dialed(101);
    m.take_outputs();
    m.received(102, &accepted(0x55, 10));
    assert_eq!(m.take_outputs(), [Output::State(SessionState::Reconnected)]);
}

/// A server that refuses to re-arm the session's watches (past its watch
/// limit) arms none of them: every watch hears ContinuityLost and is
/// dropped, its stream ends, and later reconnects re-arm nothing.
#[test]
fn a_refused_rearm_tells_every_watch_it_is_lost() {
    let mut m = connected();
    let watch = m.call(get("/c", true), true);
    m.take_outputs();
    m.received(10, &reply(1, 15, got()));
    m.take_outputs();
    m.call(get("/d", true), false);
    m.take_outputs();
    m.received(11, &reply(2, 15, got()));
    m.take_outputs();
    m.connection_lost(100);
    m.take_outputs();
    m.dialed(101);
    m.take_outputs();
    m.received(102, &accepted(0x55, 20));
    m.take_outputs();
    m.received(103, &reply(3, 20, Outcome::Err(ErrorCode::TooManyWatches)));
    let lost = |to, path: &str| Output::Event {
        to,
        event: WatchEvent {
            kind: WatchEventKind::ContinuityLost,
            path: path.into(),
            zxid: 20,
        },
    };
    assert_eq!(
        m.take_outputs(),
        [
            lost(Delivery::Stream(watch), "/c"),
            lost(Delivery::Session, "/d"),
            Output::EndStream(watch),
        ]
    );
    m.connection_lost(200);
    m.take_outputs();
    m.dialed(201);
    m.take_outputs();
    m.received(202, &accepted(0x55, 20));
    assert_eq!(m.take_outputs(), [Output::State(SessionState::Reconnected)]);
}

#[test]
fn removed_watches_end_their_streams_and_are_not_rearmed() {
    let mut m = connected();
    let data = m.call(get("/c", true), true);
    let persistent = m.call(
        Request::AddWatch {
            path: "/c".into(),
            mode: zab_proto::AddWatchMode::Persistent,
        },
        true,
    );
    m.take_outputs();
    m.received(10, &reply(1, 15, got()));
    m.received(11, &reply(2, 15, Outcome::Ok(Response::AddWatch)));
    m.take_outputs();
    let remove = |kind| Request::RemoveWatches {
        path: "/c".into(),
        kind,
    };
    let removed = m.call(remove(zab_proto::WatcherKind::Data), false);
    assert_eq!(
        m.take_outputs(),
        [op(3, remove(zab_proto::WatcherKind::Data))]
    );
    m.received(12, &reply(3, 15, Outcome::Ok(Response::RemoveWatches)));
    assert_eq!(
        m.take_outputs(),
        [
            Output::EndStream(data),
            Output::Reply {
                call: removed,
                result: Ok(Response::RemoveWatches)
            },
        ]
    );
    // Only the persistent watch is re-armed; its stream goes on.
    let set = m.watches.rearm(15).expect("something to re-arm");
    assert_eq!((set.data.len(), set.persistent.len()), (0, 1));
    // A refused removal (NoWatcher) changes nothing.
    m.call(remove(zab_proto::WatcherKind::Children), false);
    m.take_outputs();
    m.received(13, &reply(4, 15, Outcome::Err(ErrorCode::NoWatcher)));
    let out = m.take_outputs();
    assert!(!out.contains(&Output::EndStream(persistent)), "{out:?}");
    assert_eq!(m.watches.rearm(15).map(|s| s.persistent.len()), Some(1));
}

#[test]
fn shutting_down_closes_an_open_session_and_finishes_at_the_reply() {
    let mut m = connected();
    m.shutdown();
    assert_eq!(m.take_outputs(), [op(1, Request::CloseSession)]);
    // Nothing more goes out meanwhile.
    let late = m.call(get("/a", false), false);
    assert_eq!(
        m.take_outputs(),
        [Output::Reply {
            call: late,
            result: Err(Error::SessionExpired)
        }]
    );
    m.received(10, &reply(1, 11, Outcome::Ok(Response::CloseSession)));
    assert_eq!(
        m.take_outputs(),
        [
            Output::Hangup,
            Output::State(SessionState::Expired),
            Output::Finished(None)
        ]
    );

    // A server that never answers: the read timeout ends it, without a
    // reconnect.
    let mut m = connected();
    m.shutdown();
    m.take_outputs();
    let mut out = Vec::new();
    let mut at = 0;
    for _ in 0..10 {
        at = m.next_deadline().expect("a deadline until it finishes");
        m.tick(at);
        out.extend(m.take_outputs());
        if out.contains(&Output::Finished(None)) {
            break;
        }
    }
    assert!(out.contains(&Output::Finished(None)), "{out:?}");
    assert!(at <= u64::from(TIMEOUT), "finished only at {at} ms");
    assert!(
        !out.iter().any(|o| matches!(o, Output::Dial { .. })),
        "{out:?}"
    );

    // Without a connection there is nothing to close: it just stops.
    let mut m = Machine::new(3, TIMEOUT, 0);
    m.take_outputs();
    m.shutdown();
    assert_eq!(m.take_outputs(), [Output::Hangup, Output::Finished(None)]);
}

#[test]
fn closing_sends_close_session_and_finishes_at_its_reply() {
    let mut m = connected();
    let close = m.call(Request::CloseSession, false);
    assert_eq!(m.take_outputs(), [op(1, Request::CloseSession)]);
    let after = m.call(get("/a", false), false);
    assert_eq!(
        m.take_outputs(),
        [Output::Reply {
            call: after,
            result: Err(Error::SessionExpired)
        }]
    );
    m.received(10, &reply(1, 11, Outcome::Ok(Response::CloseSession)));
    assert_eq!(
        m.take_outputs(),
        [
            Output::Reply {
                call: close,
                result: Ok(Response::CloseSession)
            },
            Output::Hangup,
            Output::State(SessionState::Expired),
            Output::Finished(None),
        ]
    );
}

#[test]
fn a_reply_to_nothing_or_a_bad_frame_is_a_violation_that_drops_the_connection() {
    let mut m = connected();
    m.received(
        10,
        &reply(
            9,
            10,
            Outcome::Ok(Response::Create(CreateReply {
                path: "/x".into(),
                stat: Stat::default(),
            })),
        ),
    );
    assert_eq!(
        m.take_outputs(),
        [
            Output::ProtocolViolation {
                server: 0,
                why: "reply with xid 9 does not answer the oldest outstanding request; replies \
                      must come back in request order; the other side runs an incompatible \
                      version or its encoder is broken"
                    .into()
            },
            Output::Hangup,
            Output::State(SessionState::Disconnected),
            Output::Dial { server: 0 },
        ]
    );
    let mut m = connected();
    m.received(10, &[0xff, 0xff, 0xff, 0xff, 0]);
    let out = m.take_outputs();
    assert!(
        matches!(
            &out[..2],
            [Output::ProtocolViolation { server: 0, .. }, Output::Hangup]
        ),
        "{out:?}"
    );
}

#[test]
fn a_reply_carrying_another_requests_xid_is_refused_not_paired() {
    // A server that answered the second request first (or routed another
    // connection's reply here) must not have its answer taken for the
    // first request's.
    let mut m = connected();
    let a = m.call(get("/a", false), false);
    let _b = m.call(get("/b", false), false);
    m.take_outputs();
    m.received(10, &reply(2, 10, got()));
    assert_eq!(
        m.take_outputs(),
        [
            Output::ProtocolViolation {
                server: 0,
                why: "reply with xid 2 does not answer the oldest outstanding request; replies \
                      must come back in request order; the other side runs an incompatible \
                      version or its encoder is broken"
                    .into()
            },
            Output::Hangup,
            Output::Reply {
                call: a,
                result: Err(Error::ConnectionLoss)
            },
            Output::Reply {
                call: _b,
                result: Err(Error::ConnectionLoss)
            },
            Output::State(SessionState::Disconnected),
            Output::Dial { server: 0 },
        ]
    );
}

#[test]
fn the_defect_switch_starts_a_new_session_at_zxid_zero() {
    let mut m = Machine::with_defects(
        1,
        TIMEOUT,
        0,
        Defects {
            new_session_zxid_at_zero: true,
        },
    );
    m.dialed(0);
    m.received(0, &accepted(0x55, 10));
    assert_eq!(m.last_zxid(), 0);
}

mod rearm;
