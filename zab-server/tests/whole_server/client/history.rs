//! What a real client records for the history checkers the nemesis runs on
//! real processes (`zab_tests::linearizability`, `zab_tests::checkers`):
//! operations on shared registers, and what each of its watch streams saw.
//!
//! Registers are znodes `/k{epoch}-{j}` at the root, three per 2 simulated
//! seconds, so every key's sub-history stays small enough to check
//! exhaustively. A client has at most one register operation in flight and
//! runs them in bursts, each starting the moment the last one's reply
//! arrives: a read that follows another client's acknowledged write by
//! well under a millisecond is what exposes a stale server.
//! Reads are linearizable reads as the async client does them: a sync and
//! the read sent together, the read counted only if the sync succeeded.
//! Times are the simulation's own clock, in nanoseconds.

use bytes::Bytes;
use zab_client::machine::{CallId, Machine};
use zab_proto::{CreateMode, CreateRequest, DeleteRequest, ErrorCode, Request, Response};
use zab_proto::{SetDataRequest, WatchEvent, WatchEventKind};
use zab_tests::checkers::{WatchLog, WatchRecord};
use zab_tests::linearizability::{Event, Op, Outcome, Reply};
use zab_tests::sim::rng::Rng;

/// How long one set of keys is written before the next set takes over.
const EPOCH_US: u64 = 2_000_000;
const KEYS_PER_EPOCH: u64 = 3;
/// The longest burst of back-to-back operations.
const BURST_MAX: u64 = 12;

/// A register operation waiting for its reply.
#[derive(Debug)]
struct Pending {
    /// The sync sent ahead of a read.
    sync: Option<CallId>,
    sync_failed: bool,
    call: CallId,
    /// Index into `RegisterLog::events`.
    event: usize,
}

/// One client's register operations.
#[derive(Debug)]
pub struct RegisterLog {
    pub events: Vec<Event>,
    client: usize,
    pending: Option<Pending>,
    values: u64,
    /// Operations left in the current burst.
    burst: u64,
    /// Its own stream, drawn from the simulation's: replies arrive where
    /// the simulation's generator is not at hand.
    rng: Rng,
}

impl RegisterLog {
    pub fn new(client: usize, seed: u64) -> RegisterLog {
        RegisterLog {
            events: Vec::new(),
            client,
            pending: None,
            values: 0,
            burst: 0,
            rng: Rng::new(seed),
        }
    }

    /// Starts a burst of register operations unless one is running.
    pub fn start_burst(&mut self, m: &mut Machine, now_us: u64) {
        if self.pending.is_some() {
            return;
        }
        self.burst = self.rng.range(1, BURST_MAX + 1);
        self.start(m, now_us);
    }

    fn start(&mut self, m: &mut Machine, now_us: u64) {
        self.burst = self.burst.saturating_sub(1);
        let (client, rng) = (self.client, &mut self.rng);
        let key = format!("/k{}-{}", now_us / EPOCH_US, rng.below(KEYS_PER_EPOCH));
        self.values += 1;
        let value = ((client as u64 + 1) << 40) | self.values;
        let data = Bytes::copy_from_slice(&value.to_be_bytes());
        let roll = rng.below(100);
        let (op, request) = match roll {
            0..=39 => (
                Op::Read,
                Request::GetData {
                    path: key.clone(),
                    watch: false,
                },
            ),
            40..=59 => (
                Op::Create(value),
                Request::Create(CreateRequest {
                    path: key.clone(),
                    data,
                    mode: CreateMode::Persistent,
                    ttl_ms: 0,
                    acl: None,
                }),
            ),
            60..=89 => {
                // Mostly any version; sometimes one that may not match.
                let version = if roll < 80 { -1 } else { rng.below(3) as i32 };
                let op = Op::Cas {
                    expected_version: version,
                    new: value,
                };
                let request = Request::SetData(SetDataRequest {
                    path: key.clone(),
                    data,
                    version,
                });
                (op, request)
            }
            _ => (
                Op::Delete,
                Request::Delete(DeleteRequest {
                    path: key.clone(),
                    version: -1,
                }),
            ),
        };
        let sync = (op == Op::Read).then(|| m.call(Request::Sync { path: key.clone() }, false));
        let call = m.call(request, false);
        self.events.push(Event {
            client: client as u64,
            key,
            op,
            invoke_time: now_us * 1000,
            complete_time: None,
            outcome: Outcome::Unknown,
            zxid: None,
        });
        self.pending = Some(Pending {
            sync,
            sync_failed: false,
            call,
            event: self.events.len() - 1,
        });
    }

    /// Takes `call`'s reply if it is a register operation's (or its
    /// sync's), and starts the burst's next operation.
    pub fn on_reply(
        &mut self,
        m: Option<&mut Machine>,
        call: CallId,
        result: &Result<Response, zab_client::Error>,
        now_us: u64,
    ) -> bool {
        let Some(p) = self.pending.as_mut() else {
            return false;
        };
        if p.sync == Some(call) {
            p.sync_failed = result.is_err();
            return true;
        }
        if p.call != call {
            return false;
        }
        let p = self.pending.take().expect("matched above");
        let e = &mut self.events[p.event];
        e.complete_time = Some(now_us * 1000);
        e.outcome = outcome(e.op, result, p.sync_failed);
        if let Some(m) = m.filter(|m| m.is_open() && self.burst > 0) {
            self.start(m, now_us);
        }
        true
    }

    /// The session is gone with the operation in flight: its outcome stays
    /// unknown.
    pub fn abandon(&mut self) {
        self.pending = None;
    }
}

/// What the checker is told of a reply. Only replies the register model
/// reproduces count as carried out; any other error leaves a write's
/// outcome unknown (it may have applied before the error) and a read
/// ignored (it observed nothing).
fn outcome(op: Op, result: &Result<Response, zab_client::Error>, sync_failed: bool) -> Outcome {
    use zab_client::Error::Server;
    let ignored = || Outcome::Fail(format!("{result:?}"));
    match (op, result) {
        (Op::Read, _) if sync_failed => Outcome::Fail("the sync before it failed".into()),
        (Op::Read, Ok(Response::GetData { data, .. })) => match <[u8; 8]>::try_from(&data[..]) {
            Ok(bytes) => Outcome::Ok(Reply::Read(Some(u64::from_be_bytes(bytes)))),
            // Not a register value: the checker will find no write of it.
            Err(_) => Outcome::Ok(Reply::Read(Some(u64::MAX))),
        },
        (Op::Read, Err(Server(ErrorCode::NoNode))) => Outcome::Ok(Reply::Read(None)),
        (Op::Read, _) => ignored(),
        (Op::Create(_), Ok(Response::Create(_))) => Outcome::Ok(Reply::Ok),
        (Op::Create(_), Err(Server(ErrorCode::NodeExists))) => Outcome::Ok(Reply::NodeExists),
        (Op::Cas { .. }, Ok(Response::SetData(_))) => Outcome::Ok(Reply::Ok),
        (Op::Cas { .. }, Err(Server(ErrorCode::BadVersion))) => Outcome::Ok(Reply::BadVersion),
        (Op::Cas { .. } | Op::Delete, Err(Server(ErrorCode::NoNode))) => Outcome::Ok(Reply::NoNode),
        (Op::Delete, Ok(Response::Delete)) => Outcome::Ok(Reply::Ok),
        _ => Outcome::Unknown,
    }
}

/// What one watch stream of a real client saw.
#[derive(Debug)]
pub struct StreamLog {
    pub call: CallId,
    pub log: WatchLog,
    pub open: bool,
}

impl StreamLog {
    /// A stream whose watch was armed; `zxid` is at or after the reply's
    /// (the checker only requires events for writes after it).
    pub fn armed(call: CallId, zxid: u64) -> StreamLog {
        StreamLog {
            call,
            log: WatchLog {
                registered_at: zxid,
                events: Vec::new(),
            },
            open: true,
        }
    }

    pub fn record(&mut self, event: &WatchEvent) {
        self.log.events.push(WatchRecord {
            continuity_lost: event.kind == WatchEventKind::ContinuityLost,
            path: event.path.clone(),
            zxid: event.zxid,
        });
    }
}
