//! The client's session as a sans-IO state machine.
//!
//! [`Machine`] holds everything the protocol needs on the client side: the
//! session's id, password and negotiated terms, the largest zxid seen, the
//! connection's phase (dialling, handshaking, open), requests in flight and
//! requests waiting for a connection, xids, the armed watches and where
//! their events go, and the base of the next re-registration. It reads no
//! clock and touches no socket: the driver (the async [`Client`]'s task, or
//! a simulator) hands it the monotonic time with every input and carries out
//! the [`Output`]s it queues. The same inputs give the same outputs, which
//! is what lets the whole-server simulator run the real client.
//!
//! Inputs: [`Machine::call`], [`Machine::dialed`], [`Machine::dial_failed`],
//! [`Machine::received`], [`Machine::connection_lost`], [`Machine::tick`]
//! (at [`Machine::next_deadline`]), [`Machine::shutdown`] (close) and
//! [`Machine::abandon`] (leave to expire). [`Machine::seed_jitter`] seeds
//! the pauses between failed reconnect passes. Outputs are taken with
//! [`Machine::take_outputs`].
//!
//! [`Client`]: crate::Client

use std::collections::VecDeque;

use bytes::BytesMut;
use zab_proto::{
    ConnectReply, ConnectRequest, ErrorCode, OpCode, Outcome, Request, RequestFrame, ServerFrame,
    Xid, FRAME_BYTES_DEFAULT, PASSWORD_BYTES, PROTOCOL_VERSION,
};

use crate::watch::{Armed, Delivery, Watches};
use crate::Error;
pub use backoff::{RETRY_PAUSE_MAX_MS, RETRY_PAUSE_MS};

mod backoff;
mod ending;
mod output;
mod rearm;
pub use output::{CallId, ExpiredBy, Output, Session, SessionState};

/// How long a TCP connect may take before the next server is tried (ms).
pub const DIAL_TIMEOUT_MS: u64 = 2_000;
/// How long the server may take to answer the hello (ms).
pub const HANDSHAKE_TIMEOUT_MS: u64 = 5_000;

/// A request that reached the server and waits for its reply, in order.
#[derive(Debug)]
struct Sent {
    xid: Xid,
    opcode: OpCode,
    /// None for the machine's own SetWatches.
    call: Option<CallId>,
    /// The watch the request arms if it succeeds, and where its events go.
    arms: Option<(Armed, String, Delivery)>,
    /// The watches the request (RemoveWatches) removes if it succeeds.
    removes: Option<(zab_proto::WatcherKind, String)>,
}

/// A call waiting for a connection.
#[derive(Debug)]
struct Waiting {
    call: CallId,
    request: Request,
    streamed: bool,
}

#[derive(Debug)]
enum Link {
    /// No connection: the next dial is due at `at`.
    Idle {
        at: u64,
    },
    Dialing {
        server: usize,
        since: u64,
    },
    Handshaking {
        server: usize,
        since: u64,
        buf: BytesMut,
        /// The largest zxid seen when the hello was sent: the base of the
        /// re-registration if this connection is accepted.
        hello_zxid: u64,
    },
    Open {
        server: usize,
        buf: BytesMut,
        last_heard: u64,
        next_ping: u64,
    },
    /// Finished: nothing more will be dialled.
    Done,
}

/// Test-only switches that reintroduce known client bugs, to show the
/// whole-server simulator catches them (feature `defects`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Defects {
    /// A new session's last zxid starts at 0 instead of the zxid the server
    /// accepted it at, so a reconnect may land on a server that has not
    /// applied the session's creation and be told it expired.
    pub new_session_zxid_at_zero: bool,
}

/// The client's session state machine. See the module docs.
#[derive(Debug)]
pub struct Machine {
    servers: usize,
    requested_timeout_ms: u32,
    session: Option<Session>,
    last_zxid: u64,
    link: Link,
    /// The server the next dial of this pass goes to, and how many of the
    /// pass have failed.
    next_server: usize,
    failed_in_pass: usize,
    /// Passes in a row in which every server failed (since the last
    /// accepted connection): the next pause grows with it.
    passes_failed: u32,
    /// The state of the pauses' jitter (xorshift).
    jitter: u64,
    last_error: String,
    /// Since when the session has had no open connection (None while
    /// open, or before the first accept): the session is given up when its
    /// timeout has passed since.
    lost_at: Option<u64>,
    expired: Option<ExpiredBy>,
    sent: VecDeque<Sent>,
    waiting: VecDeque<Waiting>,
    /// Xids run on across reconnects, as ZooKeeper's do: a reply meant for
    /// a request sent on an earlier connection can never pass for the reply
    /// to a newer one.
    next_xid: Xid,
    next_call: u64,
    watches: Watches,
    /// Watches are re-armed relative to the last zxid seen before the
    /// connection that is being (re)established, or before the last one
    /// whose re-registration completed.
    rearm_from: u64,
    /// A SetWatches was sent and its reply has not come: its catch-up may
    /// have been cut short, so the next one starts from the same zxid.
    rearm_outstanding: bool,
    /// Events of that catch-up, held until its reply (see `rearm`).
    caught_up: Vec<zab_proto::WatchEvent>,
    /// CloseSession was sent: no more calls go out.
    closing: bool,
    /// Credentials sent with AddAuth, in order: a server knows them per
    /// connection, so they are sent again first on every reconnect (before
    /// the re-registration of watches, which must pass the same ACLs).
    credentials: Vec<(String, bytes::Bytes)>,
    defects: Defects,
    out: Vec<Output>,
}

impl Machine {
    /// A machine for a new session on one of `servers` servers (tried in
    /// index order at the first connection and at every reconnect), asking
    /// for `timeout_ms`. Queues the first dial.
    pub fn new(servers: usize, timeout_ms: u32, now: u64) -> Machine {
        Machine::build(servers, timeout_ms, now, Defects::default())
    }

    /// [`Machine::new`] with known bugs switched on (tests only).
    #[cfg(any(test, feature = "defects"))]
    pub fn with_defects(servers: usize, timeout_ms: u32, now: u64, defects: Defects) -> Machine {
        Machine::build(servers, timeout_ms, now, defects)
    }

    fn build(servers: usize, timeout_ms: u32, now: u64, defects: Defects) -> Machine {
        let mut m = Machine {
            servers,
            requested_timeout_ms: timeout_ms,
            session: None,
            last_zxid: 0,
            link: Link::Idle { at: now },
            next_server: 0,
            failed_in_pass: 0,
            passes_failed: 0,
            jitter: 0x9e37_79b9_7f4a_7c15,
            last_error: String::from("no servers given"),
            lost_at: None,
            expired: None,
            sent: VecDeque::new(),
            waiting: VecDeque::new(),
            next_xid: Xid::FIRST,
            next_call: 0,
            watches: Watches::default(),
            rearm_from: 0,
            rearm_outstanding: false,
            caught_up: Vec::new(),
            closing: false,
            credentials: Vec::new(),
            defects,
            out: Vec::new(),
        };
        m.dial_or_give_up(now);
        m
    }

    /// The outputs queued so far, in order.
    pub fn take_outputs(&mut self) -> Vec<Output> {
        std::mem::take(&mut self.out)
    }

    /// The session, once a server has accepted it.
    pub fn session(&self) -> Option<Session> {
        self.session
    }

    /// The largest zxid this client has seen.
    pub fn last_zxid(&self) -> u64 {
        self.last_zxid
    }

    /// The server of the connection being opened or open, if any.
    pub fn server(&self) -> Option<usize> {
        match self.link {
            Link::Dialing { server, .. }
            | Link::Handshaking { server, .. }
            | Link::Open { server, .. } => Some(server),
            Link::Idle { .. } | Link::Done => None,
        }
    }

    /// Whether the session ended, and how.
    pub fn expired_by(&self) -> Option<ExpiredBy> {
        self.expired
    }

    /// Requests sent on the open connection whose replies have not come
    /// (the machine's own SetWatches included).
    pub fn in_flight(&self) -> usize {
        self.sent.len()
    }

    /// Whether requests flow (a connection is open and accepted).
    pub fn is_open(&self) -> bool {
        matches!(self.link, Link::Open { .. })
    }

    /// When [`Machine::tick`] must next be called, if ever.
    pub fn next_deadline(&self) -> Option<u64> {
        let link = match &self.link {
            Link::Idle { at } => Some(*at),
            Link::Dialing { since, .. } => Some(since + DIAL_TIMEOUT_MS),
            Link::Handshaking { since, .. } => Some(since + HANDSHAKE_TIMEOUT_MS),
            Link::Open {
                last_heard,
                next_ping,
                ..
            } => Some((*next_ping).min(last_heard + self.read_timeout_ms())),
            Link::Done => None,
        };
        let expiry = self.expiry_deadline();
        match (link, expiry) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Queues a request, in call order: sent at once if a connection is
    /// open, else when one is. `streamed`: the watch it arms delivers to
    /// its own stream ([`Delivery::Stream`] of the returned id) rather than
    /// the session's.
    pub fn call(&mut self, request: Request, streamed: bool) -> CallId {
        let call = CallId(self.next_call);
        self.next_call += 1;
        if self.expired.is_some() || self.closing {
            // Closed (by any handle) is as final as expired.
            self.fail(call, streamed, Error::SessionExpired);
        } else if matches!(self.link, Link::Done) {
            self.fail(call, streamed, Error::ConnectionLoss);
        } else if self.is_open() {
            self.send_call(call, request, streamed);
        } else {
            self.waiting.push_back(Waiting {
                call,
                request,
                streamed,
            });
        }
        call
    }

    /// The TCP connection asked for by [`Output::Dial`] is open: sends the
    /// hello.
    pub fn dialed(&mut self, now: u64) {
        let Link::Dialing { server, .. } = self.link else {
            return;
        };
        let (session_id, password, timeout_ms) = self
            .session
            .map_or((0, [0; PASSWORD_BYTES], self.requested_timeout_ms), |s| {
                (s.id, s.password, s.timeout_ms)
            });
        let mut hello = BytesMut::new();
        ConnectRequest {
            protocol_version: PROTOCOL_VERSION,
            last_zxid_seen: self.last_zxid,
            timeout_ms,
            session_id,
            password,
            max_frame_bytes: FRAME_BYTES_DEFAULT,
        }
        .encode(&mut hello);
        self.out.push(Output::Send(hello.freeze()));
        self.link = Link::Handshaking {
            server,
            since: now,
            buf: BytesMut::new(),
            hello_zxid: self.last_zxid,
        };
    }

    /// The dial asked for failed (refused, unresolvable…): the next server.
    pub fn dial_failed(&mut self, now: u64, why: &str) {
        if let Link::Dialing { server, .. } = self.link {
            self.attempt_failed(now, server, why);
        }
    }

    /// Bytes from the server on the current connection.
    pub fn received(&mut self, now: u64, bytes: &[u8]) {
        match &mut self.link {
            Link::Handshaking { buf, .. } => {
                buf.extend_from_slice(bytes);
                self.handshake_reply(now);
            }
            Link::Open {
                buf, last_heard, ..
            } => {
                buf.extend_from_slice(bytes);
                *last_heard = now;
                self.frames(now);
            }
            Link::Idle { .. } | Link::Dialing { .. } | Link::Done => {}
        }
    }

    /// The connection closed or broke (EOF, IO error).
    pub fn connection_lost(&mut self, now: u64) {
        match self.link {
            Link::Dialing { server, .. } | Link::Handshaking { server, .. } => {
                self.attempt_failed(now, server, "the connection closed during the handshake");
            }
            Link::Open { .. } => self.lose(now, false),
            Link::Idle { .. } | Link::Done => {}
        }
    }

    /// Time passed: dials due, pings due, a silent server left, attempts
    /// that took too long, a session given up.
    pub fn tick(&mut self, now: u64) {
        if self
            .expiry_deadline()
            .is_some_and(|deadline| now >= deadline)
        {
            if !matches!(self.link, Link::Idle { .. } | Link::Done) {
                self.out.push(Output::Hangup);
            }
            self.expire(ExpiredBy::Timeout);
            return;
        }
        let read_timeout = self.read_timeout_ms();
        let ping_every = self.ping_every_ms();
        match &mut self.link {
            Link::Idle { at } => {
                if now >= *at {
                    self.dial_or_give_up(now);
                }
            }
            Link::Dialing { server, since } => {
                if now >= *since + DIAL_TIMEOUT_MS {
                    let server = *server;
                    self.out.push(Output::Hangup);
                    self.attempt_failed(now, server, "connect timed out");
                }
            }
            Link::Handshaking { server, since, .. } => {
                if now >= *since + HANDSHAKE_TIMEOUT_MS {
                    let server = *server;
                    self.out.push(Output::Hangup);
                    self.attempt_failed(now, server, "handshake timed out");
                }
            }
            Link::Open {
                last_heard,
                next_ping,
                ..
            } => {
                if now >= *last_heard + read_timeout {
                    // A server that stops answering (paused, partitioned,
                    // hung) is left after two thirds of the session
                    // timeout, as ZooKeeper's clients do: early enough to
                    // reconnect elsewhere before the session expires.
                    self.lose(now, true);
                } else if now >= *next_ping {
                    *next_ping = now + ping_every;
                    let mut ping = BytesMut::new();
                    RequestFrame::Ping.encode(&mut ping);
                    self.out.push(Output::Send(ping.freeze()));
                }
            }
            Link::Done => {}
        }
    }

    // --- internals -----------------------------------------------------

    fn ping_every_ms(&self) -> u64 {
        let timeout = self
            .session
            .map_or(self.requested_timeout_ms, |s| s.timeout_ms);
        u64::from(timeout / 3).max(100)
    }

    fn read_timeout_ms(&self) -> u64 {
        let timeout = self
            .session
            .map_or(self.requested_timeout_ms, |s| s.timeout_ms);
        (u64::from(timeout) * 2 / 3).max(2 * self.ping_every_ms())
    }

    /// When the session is given up if no server accepts it again.
    fn expiry_deadline(&self) -> Option<u64> {
        let session = self.session?;
        if self.expired.is_some() {
            return None;
        }
        self.lost_at.map(|at| at + u64::from(session.timeout_ms))
    }

    /// Dials the next server of this pass, or, if every server failed,
    /// pauses before the next pass (the first connection gives up instead).
    fn dial_or_give_up(&mut self, now: u64) {
        if self.failed_in_pass >= self.servers.max(1) {
            self.failed_in_pass = 0;
            self.next_server = 0;
            if self.session.is_none() {
                let why = std::mem::take(&mut self.last_error);
                self.finish(Some(Error::NoServer(why)));
                return;
            }
            let pause = self.retry_pause();
            self.passes_failed = self.passes_failed.saturating_add(1);
            self.link = Link::Idle { at: now + pause };
            return;
        }
        if self.servers == 0 {
            self.failed_in_pass = 1;
            return self.dial_or_give_up(now);
        }
        let server = self.next_server;
        self.next_server = (server + 1) % self.servers;
        self.link = Link::Dialing { server, since: now };
        self.out.push(Output::Dial { server });
    }

    fn attempt_failed(&mut self, now: u64, server: usize, why: &str) {
        self.last_error = format!("server {server}: {why}");
        self.failed_in_pass += 1;
        self.link = Link::Idle { at: now };
        self.dial_or_give_up(now);
    }

    fn handshake_reply(&mut self, now: u64) {
        let Link::Handshaking {
            server,
            buf,
            hello_zxid,
            ..
        } = &mut self.link
        else {
            return;
        };
        let (server, hello_zxid) = (*server, *hello_zxid);
        let body = match zab_proto::decode_frame(buf, FRAME_BYTES_DEFAULT) {
            Ok(Some(body)) => body,
            Ok(None) => return,
            Err(e) => {
                self.out.push(Output::Hangup);
                return self.attempt_failed(now, server, &e.to_string());
            }
        };
        // Frames right behind the reply (a re-attached session's events)
        // belong to the open connection.
        let rest = std::mem::take(buf);
        let accepted = match ConnectReply::decode(body) {
            Ok(ConnectReply::Accepted(r)) => r,
            Ok(ConnectReply::Refused(r)) if r.code == ErrorCode::SessionExpired => {
                self.out.push(Output::Hangup);
                return self.expire(ExpiredBy::Server);
            }
            Ok(ConnectReply::Refused(r)) => {
                self.out.push(Output::Hangup);
                return self.attempt_failed(now, server, &format!("{}: {}", r.code, r.message));
            }
            Err(e) => {
                self.out.push(Output::Hangup);
                return self.attempt_failed(now, server, &e.to_string());
            }
        };
        let fresh = self.session.is_none();
        self.session = Some(Session {
            id: accepted.session_id,
            password: accepted.password,
            timeout_ms: accepted.timeout_ms,
            max_frame_bytes: accepted.max_frame_bytes,
        });
        // A new session exists from the zxid it was accepted at: a server
        // that has not applied it would call it expired, so it must refuse
        // us as behind instead, as it does for any zxid we have seen.
        if !(fresh && self.defects.new_session_zxid_at_zero) {
            self.last_zxid = self.last_zxid.max(accepted.last_zxid);
        }
        if fresh || !self.rearm_outstanding {
            self.rearm_from = if fresh { self.last_zxid } else { hello_zxid };
        }
        self.failed_in_pass = 0;
        self.passes_failed = 0;
        self.next_server = 0;
        self.lost_at = None;
        self.link = Link::Open {
            server,
            buf: rest,
            last_heard: now,
            next_ping: now + self.ping_every_ms(),
        };
        self.out.push(Output::State(if fresh {
            SessionState::Connected
        } else {
            SessionState::Reconnected
        }));
        if !fresh {
            for (scheme, auth) in self.credentials.clone() {
                self.send(None, Request::AddAuth { scheme, auth }, None);
            }
        }
        if let Some(set) = self.watches.rearm(self.rearm_from) {
            // Re-arm on the new server; it reports what changed meanwhile
            // (see `rearm`).
            self.rearm_outstanding = true;
            self.send(None, Request::SetWatches(set), None);
        }
        while let Some(w) = self.waiting.pop_front() {
            if self.closing {
                self.fail(w.call, w.streamed, Error::SessionExpired);
            } else {
                self.send_call(w.call, w.request, w.streamed);
            }
        }
        self.frames(now);
    }

    /// Decodes and handles every whole frame buffered on the open
    /// connection.
    fn frames(&mut self, now: u64) {
        loop {
            let Link::Open { buf, .. } = &mut self.link else {
                return;
            };
            let body = match zab_proto::decode_frame(buf, FRAME_BYTES_DEFAULT) {
                Ok(Some(body)) => body,
                Ok(None) => return,
                Err(e) => return self.violated(now, e.to_string()),
            };
            // Replies come in request order and xids are never reused
            // within a session: a reply meant for another request (or
            // another connection) answers nothing here and fails to decode.
            let front = self.sent.front().map(|s| (s.xid, s.opcode));
            let answers = |xid| front.filter(|(x, _)| *x == xid).map(|(_, op)| op);
            let frame = match ServerFrame::decode(body, answers) {
                Ok(frame) => frame,
                Err(e) => return self.violated(now, e.to_string()),
            };
            match frame {
                ServerFrame::Reply(reply) => {
                    self.last_zxid = self.last_zxid.max(reply.zxid);
                    let sent = self.sent.pop_front().expect("decoded as its reply");
                    self.on_reply(sent, reply.outcome);
                    if self.closing && self.sent.is_empty() {
                        self.out.push(Output::Hangup);
                        self.out.push(Output::State(SessionState::Expired));
                        return self.finish(None);
                    }
                }
                ServerFrame::Ping { zxid } => self.last_zxid = self.last_zxid.max(zxid),
                ServerFrame::Watch { zxid, event } => {
                    self.last_zxid = self.last_zxid.max(zxid);
                    self.on_event(event);
                }
            }
        }
    }

    fn on_reply(&mut self, sent: Sent, outcome: Outcome) {
        if sent.opcode == OpCode::SetWatches {
            self.on_rearmed(&outcome);
        }
        let Some(call) = sent.call else {
            return;
        };
        let streamed = matches!(sent.arms, Some((_, _, Delivery::Stream(_))));
        let result = match outcome {
            Outcome::Ok(response) => {
                if let Some((kind, path, to)) = sent.arms {
                    self.watches.armed(kind, path, &response, to);
                }
                if let Some((kind, path)) = &sent.removes {
                    let ended = self.watches.remove(*kind, path);
                    self.out.extend(ended.into_iter().map(Output::EndStream));
                }
                Ok(response)
            }
            Outcome::Err(ErrorCode::SessionExpired) => Err(Error::SessionExpired),
            Outcome::Err(code) => Err(Error::Server(code)),
            Outcome::MultiErr { err, errors } => Err(Error::MultiFailed { err, errors }),
        };
        let failed = result.is_err();
        self.out.push(Output::Reply { call, result });
        if failed && streamed {
            self.out.push(Output::EndStream(call));
        }
    }

    fn send_call(&mut self, call: CallId, request: Request, streamed: bool) {
        let frame = RequestFrame::Op {
            xid: self.next_xid,
            request,
        };
        let limit = self
            .session
            .map_or(FRAME_BYTES_DEFAULT, |s| s.max_frame_bytes);
        if frame.body_len() > limit as usize {
            // Refused here, typed, rather than by a dropped connection.
            return self.fail(call, streamed, Error::Server(ErrorCode::FrameTooLarge));
        }
        let RequestFrame::Op { request, .. } = frame else {
            unreachable!("built as an op above");
        };
        self.closing |= matches!(request, Request::CloseSession);
        if let Request::AddAuth { scheme, auth } = &request {
            let credential = (scheme.clone(), auth.clone());
            if !self.credentials.contains(&credential) {
                self.credentials.push(credential);
            }
        }
        let to = if streamed {
            Delivery::Stream(call)
        } else {
            Delivery::Session
        };
        let arms = Armed::of(&request).map(|(kind, path)| (kind, path, to));
        self.send(Some(call), request, arms);
    }

    fn send(
        &mut self,
        call: Option<CallId>,
        request: Request,
        arms: Option<(Armed, String, Delivery)>,
    ) {
        let xid = self.next_xid;
        self.next_xid = xid.next();
        let removes = match &request {
            Request::RemoveWatches { path, kind } => Some((*kind, path.clone())),
            _ => None,
        };
        self.sent.push_back(Sent {
            xid,
            opcode: request.opcode(),
            call,
            arms,
            removes,
        });
        let mut bytes = BytesMut::new();
        RequestFrame::Op { xid, request }.encode(&mut bytes);
        self.out.push(Output::Send(bytes.freeze()));
    }

    fn fail(&mut self, call: CallId, streamed: bool, error: Error) {
        self.out.push(Output::Reply {
            call,
            result: Err(error),
        });
        if streamed {
            self.out.push(Output::EndStream(call));
        }
    }

    /// Whatever was in flight has an unknown outcome.
    fn fail_in_flight(&mut self) {
        for sent in std::mem::take(&mut self.sent) {
            if let Some(call) = sent.call {
                let streamed = matches!(sent.arms, Some((_, _, Delivery::Stream(_))));
                self.fail(call, streamed, Error::ConnectionLoss);
            }
        }
    }

    /// The open connection is lost (`hangup`: the machine gave up on it):
    /// whatever was in flight has an unknown outcome; reconnect.
    /// The server broke the protocol: say so, drop the connection and
    /// reconnect.
    fn violated(&mut self, now: u64, why: String) {
        if let Some(server) = self.server() {
            self.out.push(Output::ProtocolViolation { server, why });
        }
        self.lose(now, true);
    }

    fn lose(&mut self, now: u64, hangup: bool) {
        if hangup {
            self.out.push(Output::Hangup);
        }
        // A catch-up cut short is sent again whole (see `rearm`).
        self.caught_up.clear();
        self.fail_in_flight();
        if self.closing {
            return self.finish(None);
        }
        self.lost_at = Some(now);
        self.out.push(Output::State(SessionState::Disconnected));
        self.failed_in_pass = 0;
        self.next_server = 0;
        self.link = Link::Idle { at: now };
        self.dial_or_give_up(now);
    }

    /// The session is gone: every stream ends, every call fails from now
    /// on. The machine stays, answering calls with SessionExpired.
    fn expire(&mut self, by: ExpiredBy) {
        self.expired = Some(by);
        self.link = Link::Done;
        self.lost_at = None;
        self.out.push(Output::State(SessionState::Expired));
        for call in self.watches.clear() {
            self.out.push(Output::EndStream(call));
        }
        self.out.push(Output::EndEvents);
        self.fail_in_flight();
        for w in std::mem::take(&mut self.waiting) {
            self.fail(w.call, w.streamed, Error::SessionExpired);
        }
    }

    fn finish(&mut self, error: Option<Error>) {
        self.fail_in_flight();
        for w in std::mem::take(&mut self.waiting) {
            self.fail(w.call, w.streamed, Error::ConnectionLoss);
        }
        self.link = Link::Done;
        self.out.push(Output::Finished(error));
    }
}

#[cfg(test)]
mod tests;
