//! Sessions on real processes, the way clients fail in the world: a client
//! process paused by SIGSTOP, a client whose traffic vanishes while its
//! connection stays open (through the test proxy on the client path), the
//! leader's wall clock stepped by an hour, a session moved to another server
//! while its old connection still works, and ZooKeeper-sized timeouts.
//!
//! The bound for expiry is the one the server promises: a silent client's
//! session ends within its timeout + 2 ticks + 1 s (relay, tick and commit
//! slack) of its last traffic.

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use common::{connect_retry, retry, Ensemble};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use zab_client::{Client, Consistency, CreateMode, SessionState};
use zab_proto::{
    ConnectReply, ConnectRequest, CreateRequest, ErrorCode, OpCode, Outcome, Request, RequestFrame,
    ServerFrame, WatchEventKind, Xid, PASSWORD_BYTES, PROTOCOL_VERSION,
};
use zab_tests::proxy::{Direction, Proxy, Rule};

/// One ensemble at a time: the expiry bounds are tight, and five 3-server
/// ensembles at once on a 2-core machine would measure the scheduler.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The servers' tick (the harness's config keeps the default).
const TICK: Duration = Duration::from_millis(100);

/// How late a silent client's session may end after its timeout: two
/// ticks, the expiry's commit and the watch event's way to another server,
/// with room for a loaded 2-core machine (before this was enforced,
/// sessions never expired at all).
fn slack() -> Duration {
    2 * TICK + Duration::from_millis(2_500)
}

/// Waits (bounded by `within`) for `path`'s deletion on `watch`, returning
/// when it came.
async fn deleted_within(
    mut watch: zab_client::WatchStream,
    path: &str,
    within: Duration,
) -> Instant {
    let event = tokio::time::timeout(within, watch.next())
        .await
        .unwrap_or_else(|_| panic!("{path} was not deleted within {within:?}"))
        .expect("the watch stream ended");
    assert_eq!(event.kind, WatchEventKind::NodeDeleted, "{event:?}");
    assert_eq!(event.path, path);
    Instant::now()
}

/// A watch on `path` (which must exist) from a client of server `i`.
async fn watch_deletion(e: &Ensemble, i: usize, path: &str) -> (Client, zab_client::WatchStream) {
    let watcher = e.client(i, 10_000).await;
    let (stat, watch) = watcher
        .exists_and_watch(path, Consistency::Linearizable)
        .await
        .expect("exists");
    assert!(stat.is_some(), "{path} should exist");
    (watcher, watch)
}

/// Not a test: the client process the SIGSTOP test pauses. It opens a
/// session on `ZAB_HELPER_SERVER`, creates the ephemeral
/// `ZAB_HELPER_PATH`, says READY, and holds the session for at most a
/// minute.
#[tokio::test]
#[ignore = "run as a child process by a_paused_clients_ephemeral_goes_and_its_watchers_hear_of_it"]
async fn helper_holds_an_ephemeral() {
    let (Ok(server), Ok(path)) = (
        std::env::var("ZAB_HELPER_SERVER"),
        std::env::var("ZAB_HELPER_PATH"),
    ) else {
        return; // run by hand: nothing to do
    };
    let server: SocketAddr = server.parse().expect("an address");
    let client = connect_retry(&[server], 3_000).await.expect("a session");
    retry(|| client.create(&path, b"held", CreateMode::Ephemeral))
        .await
        .expect("the ephemeral");
    println!("READY {:#x}", client.session_id());
    tokio::time::sleep(Duration::from_secs(60)).await;
}

/// A client process stopped with SIGSTOP sends nothing, though its socket
/// stays open: its ephemeral goes within the timeout and the slack, and a
/// watcher on another server gets NodeDeleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_clients_ephemeral_goes_and_its_watchers_hear_of_it() {
    let _one = ONE_AT_A_TIME.lock().await;
    let e = Ensemble::start(3, "sessions-sigstop");
    let setup = connect_retry(&e.clients, 10_000).await.expect("a session");
    drop(setup);
    let mut helper = Command::new(std::env::current_exe().expect("this test binary"))
        .args([
            "helper_holds_an_ephemeral",
            "--exact",
            "--ignored",
            "--nocapture",
        ])
        .env("ZAB_HELPER_SERVER", e.clients[0].to_string())
        .env("ZAB_HELPER_PATH", "/held")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the helper client");
    let stdout = helper.stdout.take().expect("piped");
    let ready = tokio::task::spawn_blocking(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .any(|l| l.starts_with("READY"))
    });
    let ready = tokio::time::timeout(Duration::from_secs(30), ready)
        .await
        .expect("the helper is ready within 30 s")
        .expect("joined");
    assert!(ready, "the helper client did not get its ephemeral");
    let (_watcher, watch) = watch_deletion(&e, 1, "/held").await;

    let pause = |sig: &str| {
        let ok = Command::new("kill")
            .args([format!("-{sig}"), helper.id().to_string()])
            .status()
            .expect("kill(1)")
            .success();
        assert!(ok, "kill -{sig}");
    };
    pause("STOP");
    let stopped = Instant::now();
    let timeout = Duration::from_millis(3_000);
    let at = deleted_within(watch, "/held", timeout + slack()).await;
    // Its last ping was a third of the timeout before the pause, or a
    // little more on a loaded machine: expiry comes after half of it.
    assert!(
        at - stopped >= timeout / 2,
        "expired {:?} after the pause: too early",
        at - stopped
    );
    pause("CONT");
    let _ = helper.kill();
    let _ = helper.wait();
}

/// Waits (bounded) for the client to report `state`.
async fn wait_for_state(client: &Client, state: SessionState, within: Duration) {
    let mut states = client.session_states();
    let deadline = Instant::now() + within;
    while *states.borrow_and_update() != state {
        let left = deadline.saturating_duration_since(Instant::now());
        if tokio::time::timeout(left, states.changed()).await.is_err() {
            panic!("the client did not reach {state:?} within {within:?}");
        }
    }
}

/// A client whose traffic is dropped with its connection left open (a
/// partition that sends no FIN or RST) expires like a closed one, also when
/// the leader dies meanwhile; when it comes back, its resume is refused and
/// the client learns that its session expired.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_cut_off_with_its_connection_open_expires() {
    let _one = ONE_AT_A_TIME.lock().await;
    let mut e = Ensemble::start(3, "sessions-cut");
    connect_retry(&e.clients, 10_000).await.expect("a session");
    let leader = e.wait_for_leader(None).await;
    for kill_leader in [false, true] {
        // The client's server is never the leader, so the leader can die.
        let served_by = (leader + 1) % 3;
        let watched_on = (leader + 2) % 3;
        let proxy = Proxy::start(e.clients[served_by]).await.expect("a proxy");
        let timeout = Duration::from_millis(3_000);
        let client = connect_retry(&[proxy.addr()], timeout.as_millis() as u32)
            .await
            .expect("a session");
        let path = format!("/cut-{kill_leader}");
        retry(|| client.create(&path, b"", CreateMode::Ephemeral))
            .await
            .expect("the ephemeral");
        let (_watcher, watch) = watch_deletion(&e, watched_on, &path).await;
        proxy.set(Direction::ToTarget, Rule::DROP);
        proxy.set(Direction::FromTarget, Rule::DROP);
        let cut = Instant::now();
        let start = if kill_leader {
            e.kill(leader);
            e.wait_for_leader(Some(leader)).await;
            // A new leader restarts every session's clock.
            Instant::now()
        } else {
            cut
        };
        deleted_within(watch, &path, timeout + slack() + (start - cut)).await;
        proxy.heal();
        wait_for_state(&client, SessionState::Expired, Duration::from_secs(20)).await;
        let refused = client.exists("/", Consistency::Local, false).await;
        assert!(
            matches!(refused, Err(zab_client::Error::SessionExpired)),
            "{refused:?}"
        );
        if kill_leader {
            return;
        }
    }
}

/// What a client resumes a session with: its credentials and the last zxid
/// it saw, so that a server that has not applied the session's creation yet
/// answers ServerBehind rather than SessionExpired (REFERENCE §4).
#[derive(Clone, Copy)]
struct Resume {
    id: u64,
    password: [u8; PASSWORD_BYTES],
    last_zxid: u64,
}

impl Resume {
    const NEW: Resume = Resume {
        id: 0,
        password: [0; PASSWORD_BYTES],
        last_zxid: 0,
    };

    fn of(accepted: &zab_proto::ConnectResponse) -> Resume {
        Resume {
            id: accepted.session_id,
            password: accepted.password,
            last_zxid: accepted.last_zxid,
        }
    }
}

/// One connection spoken to by hand, through the real codecs.
struct Raw {
    stream: TcpStream,
    buf: BytesMut,
}

impl Raw {
    /// Connects and sends a handshake for `session` (0: a new one). The
    /// reply is None when the server closed the connection first, as it
    /// does to every connection when it leaves the broadcast phase.
    async fn connect(
        addr: SocketAddr,
        session: Resume,
        timeout_ms: u32,
    ) -> (Raw, Option<ConnectReply>) {
        let deadline = Instant::now() + Duration::from_secs(20);
        let stream = loop {
            match TcpStream::connect(addr).await {
                Ok(stream) => break stream,
                // The server may still be starting.
                Err(_) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("cannot connect to {addr}: {e}"),
            }
        };
        let mut raw = Raw {
            stream,
            buf: BytesMut::new(),
        };
        let mut out = BytesMut::new();
        ConnectRequest {
            protocol_version: PROTOCOL_VERSION,
            last_zxid_seen: session.last_zxid,
            timeout_ms,
            session_id: session.id,
            password: session.password,
            max_frame_bytes: zab_proto::FRAME_BYTES_DEFAULT,
        }
        .encode(&mut out);
        raw.stream.write_all(&out).await.expect("sends");
        let reply = raw
            .next_body()
            .await
            .map(|body| ConnectReply::decode(body).expect("decodes"));
        (raw, reply)
    }

    /// The next frame's body; None once the server closed the connection.
    async fn next_body(&mut self) -> Option<bytes::Bytes> {
        let deadline = Duration::from_secs(10);
        loop {
            if let Some(body) = zab_proto::decode_frame(&mut self.buf, u32::MAX).expect("framed") {
                return Some(body);
            }
            let read = tokio::time::timeout(deadline, self.stream.read_buf(&mut self.buf))
                .await
                .expect("the server answers within 10 s");
            if read.expect("reads") == 0 {
                return None;
            }
        }
    }

    async fn send(&mut self, xid: i32, request: Request) {
        let mut out = BytesMut::new();
        let xid = Xid::new(xid).expect("an xid");
        RequestFrame::Op { xid, request }.encode(&mut out);
        self.stream.write_all(&out).await.expect("sends");
    }

    /// The next reply, skipping pings and events.
    async fn reply(&mut self, opcode: OpCode) -> Option<Outcome> {
        loop {
            let body = self.next_body().await?;
            match ServerFrame::decode(body, |_| Some(opcode)).expect("a server frame") {
                ServerFrame::Reply(r) => return Some(r.outcome),
                ServerFrame::Ping { .. } | ServerFrame::Watch { .. } => {}
            }
        }
    }
}

/// Connects a new session to `addr`, retrying while the ensemble elects.
async fn new_session(addr: SocketAddr, timeout_ms: u32) -> (Raw, zab_proto::ConnectResponse) {
    open_session(addr, Resume::NEW, timeout_ms).await
}

/// Opens or resumes `session` on `addr`, retrying while the server is not
/// in a working quorum yet, has not caught up with the session, or closes
/// the connection unanswered, as a client would (bounded).
async fn open_session(
    addr: SocketAddr,
    session: Resume,
    timeout_ms: u32,
) -> (Raw, zab_proto::ConnectResponse) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (raw, reply) = Raw::connect(addr, session, timeout_ms).await;
        match reply {
            Some(ConnectReply::Accepted(r)) => return (raw, r),
            Some(ConnectReply::Refused(r))
                if matches!(
                    r.code,
                    ErrorCode::NotLeaderNoQuorum | ErrorCode::ServerBehind
                ) && Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            None if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Some(ConnectReply::Refused(r)) => panic!("refused: {r:?}"),
            None => panic!("{addr} closed every connection for 20 s without a reply"),
        }
    }
}

fn create(path: &str) -> Request {
    Request::Create(CreateRequest {
        path: path.into(),
        data: bytes::Bytes::new(),
        mode: zab_proto::CreateMode::Persistent,
        ttl_ms: 0,
        acl: None,
    })
}

/// After a session moves to another server, a request on its old
/// connection gets SessionMoved, has no effect, and the connection closes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_on_a_moved_sessions_old_connection_gets_session_moved() {
    let _one = ONE_AT_A_TIME.lock().await;
    let e = Ensemble::start(3, "sessions-moved");
    e.wait_for_leader(None).await;
    let (mut old, session) = new_session(e.clients[0], 10_000).await;
    let (mut new, _) = open_session(e.clients[1], Resume::of(&session), 10_000).await;
    // The new connection works ...
    new.send(1, create("/fresh")).await;
    assert!(
        matches!(new.reply(OpCode::Create).await, Some(Outcome::Ok(_))),
        "the moved session's new connection cannot write"
    );
    // ... the old one is stale, whether it writes or reads.
    old.send(1, create("/stale")).await;
    assert_eq!(
        old.reply(OpCode::Create).await,
        Some(Outcome::Err(ErrorCode::SessionMoved))
    );
    old.send(
        2,
        Request::Exists {
            path: "/".into(),
            watch: false,
        },
    )
    .await;
    let after = old.reply(OpCode::Exists).await;
    assert!(
        matches!(after, None | Some(Outcome::Err(ErrorCode::SessionMoved))),
        "{after:?}"
    );
    assert_eq!(
        old.next_body().await,
        None,
        "the stale connection stays open"
    );
    let check = connect_retry(&e.clients, 10_000).await.expect("a session");
    let stale = check
        .exists("/stale", Consistency::Linearizable, false)
        .await;
    assert!(
        matches!(stale, Ok(None)),
        "the stale write applied: {stale:?}"
    );
}

/// With the default configuration a client asking ZooKeeper's usual 30 s
/// gets 30 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thirty_second_timeout_is_granted_by_default() {
    let _one = ONE_AT_A_TIME.lock().await;
    let e = Ensemble::start(3, "sessions-30s");
    let (_raw, session) = new_session(e.clients[2], 30_000).await;
    assert_eq!(session.timeout_ms, 30_000);
}

/// The leader's wall clock stepped an hour either way changes no expiry:
/// a client that leaves its server for less than its timeout resumes on
/// another, and a silent client still expires on time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wall_clock_step_on_the_leader_expires_nothing_early_or_late() {
    let _one = ONE_AT_A_TIME.lock().await;
    let e = Ensemble::start(3, "sessions-wall-clock");
    connect_retry(&e.clients, 10_000).await.expect("a session");
    let leader = e.wait_for_leader(None).await;
    let (a, b) = ((leader + 1) % 3, (leader + 2) % 3);
    let timeout = Duration::from_millis(6_000);
    let timeout_ms = timeout.as_millis() as u32;

    // +1 h while a client is silent for a third of its timeout: its
    // session lives on, and its traffic resumes when the cut heals.
    let proxy = Proxy::start(e.clients[a]).await.expect("a proxy");
    let client = connect_retry(&[proxy.addr()], timeout_ms)
        .await
        .expect("a session");
    retry(|| client.create("/early", b"", CreateMode::Ephemeral))
        .await
        .expect("the ephemeral");
    proxy.set(Direction::ToTarget, Rule::DROP);
    proxy.set(Direction::FromTarget, Rule::DROP);
    tokio::time::sleep(timeout / 6).await;
    e.step_wall_clock(leader, 3_600_000);
    tokio::time::sleep(timeout / 6).await;
    // The proxy never forwards past bytes it dropped, so the client
    // reconnects (through it) and resumes its session.
    proxy.heal();
    let still = retry(|| client.exists("/early", Consistency::Linearizable, false)).await;
    assert!(
        matches!(still, Ok(Some(_))),
        "the session expired early: {still:?}"
    );
    let observer = connect_retry(&[e.clients[b]], 10_000)
        .await
        .expect("a session");
    let seen = observer
        .exists("/early", Consistency::Linearizable, false)
        .await;
    assert!(
        matches!(seen, Ok(Some(_))),
        "the ephemeral went early: {seen:?}"
    );

    // -1 h: a silent session does not live on for the hour.
    e.step_wall_clock(leader, -3_600_000);
    tokio::time::sleep(4 * TICK).await;
    let late = Proxy::start(e.clients[a]).await.expect("a proxy");
    let silent = connect_retry(&[late.addr()], timeout_ms)
        .await
        .expect("a session");
    retry(|| silent.create("/late", b"", CreateMode::Ephemeral))
        .await
        .expect("the ephemeral");
    let (_watcher, watch) = watch_deletion(&e, b, "/late").await;
    late.set(Direction::ToTarget, Rule::DROP);
    late.set(Direction::FromTarget, Rule::DROP);
    deleted_within(watch, "/late", timeout + slack()).await;
}
