//! A register session on either client protocol: ours, or ZooKeeper's
//! (issue #18) through a ZooKeeper client written by others (the
//! `zookeeper-client` crate). Both record into the one history, so the
//! checker judges reads on one protocol against writes on the other; a
//! ZooKeeper-protocol read is ZooKeeper's own idiom, `sync` then
//! `getData` on the same session, which this server makes linearizable.

use std::net::SocketAddr;
use std::time::Duration;

use zab_client::{Client, Consistency, Error, ErrorCode};
use zab_tests::linearizability::{Op, Outcome, Reply};
use zookeeper_client as zk;

use super::{value_of, Shared};

/// Which client protocol a worker's session speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    Zab,
    ZooKeeper,
}

/// One session, on the protocol it was opened with.
pub enum Session {
    Zab(Client),
    ZooKeeper(zk::Client),
}

/// What a finished register operation saw: its outcome for the history,
/// and the zxid of the value read or written, when the reply names one.
pub type Seen = (Outcome, Option<u64>);

/// Whether a ZooKeeper-protocol error means the operation certainly did not
/// happen (`Some`), or might have (`None`). Only the server's own refusals
/// are definite; a lost connection, an expiry learnt afterwards or the
/// client's own timeout leave the outcome open.
fn zk_definite(e: &zk::Error) -> Option<String> {
    match e {
        zk::Error::NoNode
        | zk::Error::BadVersion
        | zk::Error::NodeExists
        | zk::Error::NoAuth
        | zk::Error::BadArguments(_)
        | zk::Error::InvalidAcl => Some(e.to_string()),
        _ => None,
    }
}

/// The register outcome of a ZooKeeper-protocol write: `version >= 0` is a
/// compare-and-set.
fn zk_write_seen(r: Result<zk::Stat, zk::Error>, version: i32) -> Seen {
    match r {
        Ok(st) => (Outcome::Ok(Reply::Ok), Some(st.mzxid as u64)),
        Err(zk::Error::BadVersion) if version >= 0 => (Outcome::Ok(Reply::BadVersion), None),
        Err(e) => match zk_definite(&e) {
            Some(why) => (Outcome::Fail(why), None),
            None => (Outcome::Unknown, None),
        },
    }
}

/// Whether an error of our own client means the operation certainly did
/// not happen (`Some`), or might have (`None`: the connection broke with it
/// in flight).
pub fn definite<T>(r: &Result<T, Error>) -> Option<String> {
    match r {
        Ok(_) | Err(Error::ConnectionLoss) => None,
        // Never sent, or refused by the server: not applied.
        Err(e) => Some(e.to_string()),
    }
}

impl Session {
    /// A session on `servers` (rotated by `salt`), on `protocol`; `None` if
    /// none could be opened within 20 s.
    pub async fn open(protocol: Protocol, shared: &Shared, salt: usize) -> Option<Session> {
        match protocol {
            Protocol::Zab => shared
                .session(salt, super::SESSION_MS)
                .await
                .map(Session::Zab),
            Protocol::ZooKeeper => {
                let servers = &shared.zookeeper_servers;
                let n = servers.len();
                let order: Vec<SocketAddr> = (0..n).map(|i| servers[(i + salt) % n]).collect();
                zk_connect(&order, super::SESSION_MS)
                    .await
                    .map(Session::ZooKeeper)
            }
        }
    }

    pub fn expired(&self) -> bool {
        match self {
            Session::Zab(c) => c.session_state() == zab_client::SessionState::Expired,
            Session::ZooKeeper(c) => c.state().is_terminated(),
        }
    }

    pub fn session_id(&self) -> u64 {
        match self {
            Session::Zab(c) => c.session_id(),
            Session::ZooKeeper(c) => c.session_id().0 as u64,
        }
    }

    /// The version a local read of `key` sees, for a compare-and-set.
    pub async fn version(&self, key: &str) -> Option<i32> {
        match self {
            Session::Zab(c) => match c.exists(key, Consistency::Local, false).await {
                Ok(Some(st)) => Some(st.version),
                _ => None,
            },
            Session::ZooKeeper(c) => match c.check_stat(key).await {
                Ok(Some(st)) => Some(st.version),
                _ => None,
            },
        }
    }

    /// Carries out `op` on `key`, bounded by [`Shared::bounded`]'s 30 s.
    pub async fn run(&self, key: &str, op: Op, shared: &Shared) -> Seen {
        let what = |verb: &str| format!("{verb} of {key} by session {:#x}", self.session_id());
        let (new, version) = match op {
            Op::Read => (None, -1),
            Op::Write(new) => (Some(new), -1),
            Op::Cas {
                expected_version,
                new,
            } => (Some(new), expected_version),
            Op::Create(_) | Op::Delete => return (Outcome::Unknown, None),
        };
        match (self, new) {
            (Session::Zab(c), None) => {
                let r = shared
                    .bounded(what("read"), c.get(key, Consistency::Linearizable))
                    .await;
                match (&r, definite(&r)) {
                    (Ok((data, st)), _) => {
                        (Outcome::Ok(Reply::Read(value_of(data))), Some(st.mzxid))
                    }
                    (Err(Error::Server(ErrorCode::NoNode)), _) => {
                        (Outcome::Ok(Reply::Read(None)), None)
                    }
                    (_, Some(why)) => (Outcome::Fail(why), None),
                    (_, None) => (Outcome::Unknown, None),
                }
            }
            (Session::Zab(c), Some(new)) => {
                let r = shared
                    .bounded(
                        what("write"),
                        c.set(key, new.to_string().as_bytes(), version),
                    )
                    .await;
                match (&r, definite(&r)) {
                    (Ok(st), _) => (Outcome::Ok(Reply::Ok), Some(st.mzxid)),
                    (Err(Error::Server(ErrorCode::BadVersion)), _) if version >= 0 => {
                        (Outcome::Ok(Reply::BadVersion), None)
                    }
                    (_, Some(why)) => (Outcome::Fail(why), None),
                    (_, None) => (Outcome::Unknown, None),
                }
            }
            (Session::ZooKeeper(c), None) => {
                let read = async {
                    c.sync(key).await?;
                    c.get_data(key).await
                };
                match zk_bounded(shared, what("sync+read"), read).await {
                    Ok((data, st)) => (
                        Outcome::Ok(Reply::Read(value_of(&data))),
                        Some(st.mzxid as u64),
                    ),
                    Err(zk::Error::NoNode) => (Outcome::Ok(Reply::Read(None)), None),
                    Err(e) => match zk_definite(&e) {
                        Some(why) => (Outcome::Fail(why), None),
                        None => (Outcome::Unknown, None),
                    },
                }
            }
            (Session::ZooKeeper(c), Some(new)) => {
                let expected = (version >= 0).then_some(version);
                let value = new.to_string();
                let r = zk_bounded(
                    shared,
                    what("write"),
                    c.set_data(key, value.as_bytes(), expected),
                )
                .await;
                zk_write_seen(r, version)
            }
        }
    }
}

/// [`Shared::bounded`] for the ZooKeeper client's results.
async fn zk_bounded<T>(
    shared: &Shared,
    what: String,
    op: impl std::future::Future<Output = Result<T, zk::Error>>,
) -> Result<T, zk::Error> {
    match tokio::time::timeout(Duration::from_secs(30), op).await {
        Ok(r) => r,
        Err(_) => {
            shared.hung.lock().expect("hung").push(what);
            Err(zk::Error::Timeout)
        }
    }
}

/// A ZooKeeper-protocol session on `servers`, retried for up to 20 s.
async fn zk_connect(servers: &[SocketAddr], timeout_ms: u32) -> Option<zk::Client> {
    let cluster: Vec<String> = servers.iter().map(ToString::to_string).collect();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let connected = zk::Client::connector()
            .with_session_timeout(Duration::from_millis(timeout_ms.into()))
            .with_connection_timeout(Duration::from_secs(2))
            .connect(&cluster.join(","))
            .await;
        match connected {
            Ok(c) => return Some(c),
            Err(_) if std::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(_) => return None,
        }
    }
}

/// The protocol of worker `worker`: with ZooKeeper's port served, the
/// even-numbered ones speak it.
pub fn protocol_of(worker: u64, zookeeper_served: bool) -> Protocol {
    if zookeeper_served && worker % 2 == 0 {
        Protocol::ZooKeeper
    } else {
        Protocol::Zab
    }
}
