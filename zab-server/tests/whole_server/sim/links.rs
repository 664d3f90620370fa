//! Client connections on the simulated network: connecting, bytes both
//! ways (FIFO per direction, lost when blackholed), and the server side
//! framed and decoded exactly as the listener does.

use bytes::{Bytes, BytesMut};
use zab_core::Role;
use zab_proto::{ConnectReply, ConnectRequest, RequestFrame, HANDSHAKE_FRAME_BYTES_MAX};
use zab_server::core::{ConnId, Entropy, ServerInput};

use super::super::checks::Hearing;
use super::super::client::Action;
use super::{ClientLife, Event, Link, Simulation};

impl Simulation {
    pub(super) fn client_actions(&mut self, c: usize, actions: Vec<Action>) {
        for action in actions {
            if self.trace {
                eprintln!("{:>9} µs client {c}: {}", self.now, describe(&action));
            }
            match action {
                Action::Connect { conn, server } => {
                    let stale = false;
                    let blackholed = matches!(self.client_life[c], ClientLife::Cut(_));
                    self.links.insert(
                        conn,
                        Link {
                            client: c,
                            server,
                            server_life: self.servers[server].life,
                            blackholed,
                            server_open: false,
                            session: None,
                            stale,
                            hello_seen: false,
                            hello_heard: None,
                            server_buf: BytesMut::new(),
                            to_server_at: 0,
                            to_client_at: 0,
                        },
                    );
                    let delay = self.rng.range(50, 800);
                    self.after(delay, Event::Accept { conn });
                    if let Some(old) = self.clients[c].stale_conn() {
                        if let Some(l) = self.links.get_mut(&old) {
                            l.stale = true;
                        }
                    }
                }
                Action::Send { conn, bytes } => {
                    let delay = self.rng.range(50, 800);
                    if let Some(l) = self.links.get_mut(&conn) {
                        if !l.blackholed {
                            let at = l.to_server_at.max(self.now + delay);
                            l.to_server_at = at;
                            self.schedule(at, Event::ToServer { conn, bytes });
                        }
                    }
                }
                Action::Close { conn } => {
                    let delay = self.rng.range(50, 800);
                    if let Some(l) = self.links.get_mut(&conn) {
                        if !l.blackholed {
                            let at = l.to_server_at.max(self.now + delay);
                            l.to_server_at = at;
                            self.schedule(at, Event::ServerSeesClose { conn });
                        }
                    }
                }
            }
        }
    }

    pub(super) fn on_accept(&mut self, conn: ConnId) {
        let Some(l) = self.links.get_mut(&conn) else {
            return;
        };
        let server = l.server;
        if self.servers[server].core.is_none() || l.blackholed {
            // Refused (or never answered, when cut off): the client's own
            // handshake timeout deals with a blackholed one.
            if !l.blackholed {
                let delay = self.rng.range(50, 800);
                self.after(delay, Event::ClientSeesClose { conn });
            }
            return;
        }
        l.server_open = true;
        l.server_life = self.servers[server].life;
        self.input(
            server,
            ServerInput::ClientOpened {
                conn,
                ip: None,
                x509: None,
            },
        );
    }

    /// Bytes reach the server: framed and decoded as the listener does.
    pub(super) fn on_to_server(&mut self, conn: ConnId, bytes: &[u8]) {
        let Some(l) = self.links.get_mut(&conn) else {
            return;
        };
        let server = l.server;
        if !l.server_open || self.servers[server].life != l.server_life {
            return;
        }
        l.server_buf.extend_from_slice(bytes);
        loop {
            let Some(l) = self.links.get_mut(&conn) else {
                return;
            };
            if !l.server_open {
                return;
            }
            let limit = if l.hello_seen {
                zab_proto::FRAME_BYTES_DEFAULT
            } else {
                HANDSHAKE_FRAME_BYTES_MAX
            };
            let body = match zab_proto::decode_frame(&mut l.server_buf, limit) {
                Ok(Some(body)) => body,
                Ok(None) => return,
                Err(e) => {
                    self.report.violation =
                        Some(format!("a client frame the server cannot read: {e}"));
                    return;
                }
            };
            let (session, stale) = (l.session, l.stale);
            let mut heard = None;
            let input = if l.hello_seen {
                let frame = RequestFrame::decode(body).expect("clients send well-formed frames");
                heard = session.map(|session| (session, self.hearing(server, stale)));
                ServerInput::ClientFrame { conn, frame }
            } else {
                l.hello_seen = true;
                let hello = ConnectRequest::decode(body).expect("a well-formed hello");
                if hello.session_id != 0 {
                    // Evidence only if the server takes the resume: a
                    // refused hello (behind, quorum lost) renews nothing.
                    let heard = self.hearing(server, false);
                    if let Some(l) = self.links.get_mut(&conn) {
                        l.hello_heard = Some((hello.session_id, self.now, heard));
                    }
                }
                let mut entropy = [0u8; 24];
                for chunk in entropy.chunks_mut(8) {
                    chunk.copy_from_slice(&self.rng.next_u64().to_be_bytes());
                }
                ServerInput::ClientHello {
                    conn,
                    hello,
                    entropy: Entropy(entropy),
                }
            };
            self.input(server, input);
            // Evidence only if the server took the frame: one it answers by
            // closing the connection (the session moved away through the
            // log, perhaps by a resume the client had given up on) renews
            // nothing.
            if let Some((session, hearing)) = heard {
                if self.links.get(&conn).is_some_and(|l| l.server_open) {
                    self.checker.traffic(session, self.now, hearing);
                }
            }
        }
    }

    /// What server `i` hearing a session now would prove, if anything.
    fn hearing(&self, i: usize, stale: bool) -> Option<Hearing> {
        let core = self.servers[i].core.as_ref()?;
        let leader = match core.status().role {
            Role::Leading {
                phase: zab_core::Phase::Broadcast,
                ..
            } => Some(i),
            Role::Following {
                leader,
                phase: zab_core::Phase::Broadcast,
                ..
            } => Some(leader.0 as usize - 1),
            _ => None,
        };
        leader.filter(|_| !stale).map(|leader| Hearing {
            at: self.now,
            server: i,
            leader,
        })
    }

    /// The server's first bytes on `conn` answer its hello: a resume the
    /// server accepted counts as the session's traffic from the hello on.
    pub(super) fn on_handshake_reply(&mut self, conn: ConnId, bytes: &[u8]) {
        let Some((session, at, heard)) =
            self.links.get_mut(&conn).and_then(|l| l.hello_heard.take())
        else {
            return;
        };
        let mut buf = BytesMut::from(bytes);
        let accepted = match zab_proto::decode_frame(&mut buf, u32::MAX) {
            Ok(Some(body)) => matches!(ConnectReply::decode(body), Ok(ConnectReply::Accepted(_))),
            _ => false,
        };
        self.checker
            .traffic(session, at, heard.filter(|_| accepted));
    }

    pub(super) fn on_to_client(&mut self, conn: ConnId, bytes: Bytes) {
        let Some(l) = self.links.get(&conn) else {
            return;
        };
        let c = l.client;
        if self.trace {
            eprintln!(
                "{:>9} µs client {c}: received {} bytes on {conn}",
                self.now,
                bytes.len()
            );
        }
        if let ClientLife::Paused(_) = self.client_life[c] {
            // A paused process reads nothing; the bytes wait in its socket.
            self.held[c].push_back(Event::ToClient { conn, bytes });
            return;
        }
        let received = self.clients[c].received(self.now, conn, &bytes, &mut self.next_conn);
        if let Some(session) = received.told_expired {
            // A server refuses a session as expired only once it applied
            // the session's expiry, which some leader logged first.
            if !self.checker.has_expired(session) {
                self.report.violation = Some(format!(
                    "client {c} was told its session {session:#x} expired, \
                     but no leader ever expired it"
                ));
            }
        }
        if let Some(session) = received.accepted {
            if let Some(l) = self.links.get_mut(&conn) {
                l.session = Some(session.id);
            }
            self.checker
                .session_accepted(session.id, session.timeout_ms);
        }
        self.client_actions(c, received.actions);
    }
}

/// One client action, for `ZAB_WHOLE_SIM_TRACE`.
fn describe(action: &Action) -> String {
    match action {
        Action::Connect { conn, server } => format!("connect {conn} to server {}", server + 1),
        Action::Close { conn } => format!("close {conn}"),
        Action::Send { conn, bytes } => {
            let mut buf = BytesMut::from(&bytes[..]);
            let mut frames = Vec::new();
            while let Ok(Some(body)) = zab_proto::decode_frame(&mut buf, u32::MAX) {
                frames.push(match RequestFrame::decode(body.clone()) {
                    Ok(RequestFrame::Op { xid, request }) => format!("#{} {request:?}", xid.get()),
                    Ok(RequestFrame::Ping) => "ping".into(),
                    Err(_) => "hello".into(),
                });
            }
            format!("send on {conn}: {}", frames.join(", "))
        }
    }
}
