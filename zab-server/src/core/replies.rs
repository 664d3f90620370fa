//! Per-connection reply queues: what the log, the leader and the local tree
//! answer is filled into each connection's queue in request order, and sent
//! from its head as soon as everything before it is ready.

use std::collections::BTreeSet;

use zab_core::{RequestId, Zxid};
use zab_proto::{ErrorCode, Outcome as WireOutcome, Reply, Request, Response, ServerFrame, Xid};

use super::catch_up::catch_up;
use super::frontend::{Conn, Frontend, Item};
use super::reads::{read, wire_outcome};
use super::ConnId;
use crate::replica::{Completion, Replica};
use crate::tree::Outcome;

impl Frontend {
    /// The core rejected a write or sync: it did not and will not happen.
    pub fn on_reject(&mut self, id: RequestId, replica: &Replica, applied: Zxid) {
        self.submitted.remove(&id);
        let Some((conn, xid)) = self.requests.remove(&id) else {
            return;
        };
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        if c.connecting.take().is_some() {
            let message = "no leader with a quorum right now; try again or another server";
            self.refuse(conn, ErrorCode::NotLeaderNoQuorum, message.into());
            return;
        }
        let multi = c
            .queue
            .iter()
            .any(|i| matches!(i, Item::Write { id: x, multi: true } if *x == id));
        let refused = super::limits::refused(multi, ErrorCode::NotLeaderNoQuorum);
        fill(c, id, reply(xid, applied, refused));
        self.flush(conn, replica);
    }

    pub fn on_sync_done(&mut self, id: RequestId, zxid: Zxid, replica: &Replica, applied: Zxid) {
        if let Some(at) = self.submitted.remove(&id) {
            let us = self.clock.mono_us.saturating_sub(at);
            self.metrics.sync.observe(seconds(us));
        }
        let Some((conn, xid)) = self.requests.remove(&id) else {
            return;
        };
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let outcome = WireOutcome::Ok(Response::Sync { zxid: zxid.0 });
        fill(c, id, reply(xid, applied, outcome));
        self.flush(conn, replica);
    }

    /// Everything applied since the last call: fire watches first, then fill
    /// in the replies of this server's clients.
    pub fn on_applied(&mut self, completions: Vec<Completion>, replica: &Replica) {
        let mut dirty = BTreeSet::new();
        for mut done in completions {
            self.fire_watches(&done);
            // Kept for watchers that reconnect (resumable watches).
            let changes = std::mem::take(&mut done.changes);
            self.watches.recent.record(done.zxid.0, changes);
            if matches!(done.outcome, Outcome::SessionClosed) {
                self.watches.forget(done.session);
                self.last_heard.remove(&done.session);
                self.expiring.remove(&done.session);
                // A session closed by expiry (or elsewhere) ends its
                // connection here too, after what is already queued; the
                // client then learns SessionExpired when it reconnects.
                if let Some(&conn) = self.by_session.get(&done.session) {
                    if let Some(c) = self.conns.get_mut(&conn) {
                        c.queue.push_back(Item::Close);
                        dirty.insert(conn);
                    }
                }
            }
            if done.moved && done.origin != self.me {
                // The session is another server's now; its connection here
                // is stale.
                if let Some(&conn) = self.by_session.get(&done.session) {
                    self.mark_moved(conn);
                }
            }
            if done.origin != self.me {
                continue;
            }
            if let Some(conn) = self.answer(&done) {
                dirty.insert(conn);
            }
        }
        for conn in dirty {
            self.flush(conn, replica);
        }
    }

    /// Sends the events `done` fires to the connections of their sessions.
    /// A recursive watch reports a change below its own path only to a
    /// watcher that may READ the changed node (CVE-2024-23944).
    fn fire_watches(&mut self, done: &Completion) {
        for change in &done.changes {
            for fired in self.watches.fire(change) {
                let Some(&conn) = self.by_session.get(&fired.watcher) else {
                    continue;
                };
                if fired.below
                    && !self
                        .conns
                        .get(&conn)
                        .is_some_and(|c| c.caller.permits(&change.acl, zab_proto::Perms::READ))
                {
                    continue;
                }
                let (kind, path) = (fired.kind, fired.path);
                let zxid = done.zxid.0;
                let event = zab_proto::WatchEvent { kind, path, zxid };
                self.send_frame(conn, ServerFrame::Watch { zxid, event });
            }
        }
    }

    /// Fills in the reply (or handshake) `done` answers, if its connection
    /// is still here: a request whose connection was closed is no longer in
    /// `requests`, and its reply goes nowhere (the client saw
    /// ConnectionLoss). Returns the connection to flush.
    fn answer(&mut self, done: &Completion) -> Option<ConnId> {
        let id = if self.defects.replies_by_session_xid {
            self.by_session_xid(done)?
        } else {
            RequestId(done.request)
        };
        let (conn, _) = self.requests.remove(&id)?;
        let submitted = self.submitted.remove(&id);
        let c = self.conns.get_mut(&conn)?;
        if let Some((hello, _)) = c.connecting.take_if(|(_, cid)| *cid == id) {
            let (session, timeout) = (hello.session_id, hello.timeout_ms);
            match &done.outcome {
                Outcome::SessionCreated => self.attach(conn, &hello, session, timeout, done.zxid),
                _ if done.moved => self.attach(conn, &hello, session, timeout, done.zxid),
                _ => {
                    let message = "the session has expired".into();
                    self.refuse(conn, ErrorCode::SessionExpired, message);
                }
            }
            return None;
        }
        let filled = fill(
            c,
            id,
            reply(done.xid, done.zxid, wire_outcome(&done.outcome)),
        );
        if !filled {
            return None;
        }
        if let Some(at) = submitted {
            let us = self.clock.mono_us.saturating_sub(at);
            self.metrics.commit.observe(seconds(us));
        }
        Some(conn)
    }

    /// The `replies_by_session_xid` defect: the request the session's
    /// current connection here has under `done`'s xid.
    fn by_session_xid(&self, done: &Completion) -> Option<RequestId> {
        let token = RequestId(done.request);
        let Some(&conn) = self.by_session.get(&done.session) else {
            return Some(token); // a handshake: by its token still
        };
        let found = self
            .requests
            .iter()
            .find(|(_, &(c, xid))| c == conn && xid == done.xid);
        Some(found.map_or(token, |(id, _)| *id))
    }

    /// Sends whatever is ready at the head of `conn`'s queue, running reads
    /// whose earlier writes have been applied.
    pub(super) fn flush(&mut self, conn: ConnId, replica: &Replica) {
        let applied = replica.tree.last_applied_zxid();
        loop {
            let Some(c) = self.conns.get_mut(&conn) else {
                return;
            };
            let session = c.session.unwrap_or(0);
            match c.queue.front() {
                Some(Item::Ready(_)) => {
                    if let Some(Item::Ready(frame)) = c.queue.pop_front() {
                        self.send_frame(conn, restamped(frame, applied));
                    }
                }
                Some(Item::Read { .. }) => {
                    let Some(Item::Read {
                        xid,
                        request,
                        arrived_us,
                    }) = c.queue.pop_front()
                    else {
                        continue;
                    };
                    let waited_us = self.clock.mono_us.saturating_sub(arrived_us);
                    self.metrics.read.observe(seconds(waited_us));
                    let limit = c.frame_bytes_max;
                    let outcome = match &request {
                        Request::SetWatches(set) => {
                            let who = (session, &c.caller);
                            match catch_up(set, replica, &mut self.watches, who, applied.0) {
                                Ok(events) => {
                                    for event in events {
                                        let zxid = applied.0;
                                        self.send_frame(conn, ServerFrame::Watch { zxid, event });
                                    }
                                    WireOutcome::Ok(Response::SetWatches)
                                }
                                Err(code) => WireOutcome::Err(code),
                            }
                        }
                        request => {
                            let who = (session, &c.caller);
                            read(request, replica, &mut self.watches, who, limit)
                        }
                    };
                    let frame = ServerFrame::Reply(Reply {
                        xid,
                        zxid: applied.0,
                        outcome,
                    });
                    self.send_frame(conn, frame);
                }
                Some(Item::Close) => {
                    // What was queued behind the close is dropped with it.
                    self.forget(conn);
                    return;
                }
                Some(Item::Write { .. } | Item::Sync { .. }) | None => return,
            }
        }
    }
}

pub(super) fn reply(xid: i32, zxid: Zxid, outcome: WireOutcome) -> Item {
    match Xid::new(xid) {
        Some(xid) => Item::Ready(ServerFrame::Reply(Reply {
            xid,
            zxid: zxid.0,
            outcome,
        })),
        None => Item::Ready(ServerFrame::Ping { zxid: zxid.0 }),
    }
}

/// Replaces the queued write or sync `id` with its reply. Matched by id,
/// not xid: xids repeat across a session's connections.
fn fill(c: &mut Conn, id: RequestId, item: Item) -> bool {
    let Some(pos) = c.queue.iter().position(
        |i| matches!(i, Item::Write { id: x, .. } | Item::Sync { id: x, .. } if *x == id),
    ) else {
        return false;
    };
    c.queue[pos] = item;
    true
}

/// A queued frame leaves stamped with what this server has applied now:
/// header zxids never decrease on a connection (wire-spec lifecycle rule 5),
/// and every event up to `applied` has already been sent. (A write's reply
/// filled at its zxid can wait behind an earlier request while events for
/// later changes go out.)
fn restamped(frame: ServerFrame, applied: Zxid) -> ServerFrame {
    match frame {
        ServerFrame::Reply(mut r) => {
            r.zxid = r.zxid.max(applied.0);
            ServerFrame::Reply(r)
        }
        ServerFrame::Ping { zxid } => ServerFrame::Ping {
            zxid: zxid.max(applied.0),
        },
        other => other,
    }
}

/// Microseconds as the seconds a histogram observes.
fn seconds(us: u64) -> f64 {
    us as f64 / 1e6
}
