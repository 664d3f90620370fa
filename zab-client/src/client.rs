//! The application's handle on a session: typed calls, queued in call
//! order to the [`Driver`] task that runs the session's [`Machine`].
//!
//! [`Machine`]: crate::machine::Machine

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot, Mutex};
use zab_proto::{
    Acl, CreateMode, CreateRequest, DeleteRequest, ErrorCode, MultiOp, MultiResult, ReadOp,
    ReadResult, Request, Response, SetDataRequest, Stat, WatchEvent, WatcherKind,
};

use crate::builder::Builder;
use crate::chroot::Chroot;
use crate::driver::{Call, Driver, EventTx};
use crate::{Error, SessionState};

/// How fresh a read must be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Consistency {
    /// This server's view: sequentially consistent (this session's own
    /// writes and everything it has seen are there, and it never goes back
    /// in time), but it may lag writes other sessions had acknowledged. One
    /// round trip to this server; no leader involved. The cheapest read.
    Local,
    /// Sync, then read on the same server: reflects every write acknowledged
    /// (to anyone) before the read began. The sync and the read are sent
    /// together (one client round trip); the server holds the read until the
    /// leader has confirmed, with a quorum round, that it still leads and
    /// this server has applied everything committed before the sync. Costs
    /// that round (follower → leader → quorum → back) on top of a local read.
    Linearizable,
}

/// The events of one watch, in the order the server sent them.
///
/// A one-shot watch (from [`Client::get_and_watch`],
/// [`Client::exists_and_watch`], [`Client::children_and_watch`]) yields one
/// event and then ends; a persistent one ([`Client::add_watch`]) goes on
/// until the session ends or the watch is removed. Across a reconnect the watch is re-armed: a
/// one-shot watch fires at once if its node changed meanwhile, and a
/// persistent one yields [`WatchEventKind::ContinuityLost`](zab_proto::WatchEventKind::ContinuityLost) (events after
/// its zxid are complete again) instead of silently skipping changes. The
/// stream ends (`None`) when the session expires or is closed, or when
/// [`Client::remove_watches`] removes its watch.
///
/// An event delivered to a watch's own stream is not repeated on
/// [`Client::next_event`], which carries the events of watches armed
/// without a stream (`watch: true` reads).
#[derive(Debug)]
pub struct WatchStream {
    events: mpsc::UnboundedReceiver<WatchEvent>,
    chroot: Option<Arc<Chroot>>,
}

impl WatchStream {
    /// The next event; `None` once the watch can fire no more. Cancel safe.
    pub async fn next(&mut self) -> Option<WatchEvent> {
        let event = self.events.recv().await?;
        Some(match &self.chroot {
            Some(root) => root.event(event),
            None => event,
        })
    }
}

/// A session with the ensemble.
///
/// Cloning a `Client` gives another handle on the same session (one
/// connection, one session id, calls from every handle in one order), so
/// recipes and tasks can share it. [`Client::close`] through any handle
/// closes the session for all: the others' calls then fail with
/// `SessionExpired`. Events of watches armed without a stream
/// ([`Client::next_event`]) go to whichever handle asks first.
///
/// When the last handle is dropped, the session's task closes the session
/// if a connection is open (its ephemeral nodes go at once rather than at
/// its expiry), provided the runtime goes on running it: a handle dropped
/// as the runtime shuts down (the end of `main`) closes nothing, so call
/// [`Client::close`] where the close must happen. Without a connection at
/// that moment the session is left to expire.
#[derive(Clone)]
pub struct Client {
    /// Set by [`Client::abandon`]: the last handle's drop leaves the
    /// session to expire instead of closing it.
    abandoned: Arc<std::sync::atomic::AtomicBool>,
    requests: mpsc::UnboundedSender<Call>,
    events: Arc<Mutex<mpsc::UnboundedReceiver<WatchEvent>>>,
    last_zxid: Arc<AtomicU64>,
    session_id: u64,
    states: tokio::sync::watch::Receiver<SessionState>,
    /// The root paths live under ([`Builder::chroot`]).
    chroot: Option<Arc<Chroot>>,
    /// How long a call waits for its reply ([`Builder::request_timeout`]).
    request_timeout: Option<std::time::Duration>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("session", &format_args!("{:#x}", self.session_id))
            .finish()
    }
}

impl Client {
    /// Opens a session on one of `servers` (tried in turn from a varying
    /// start, so clients spread over the ensemble).
    ///
    /// Servers are `host:port` names or socket addresses; names are resolved
    /// again at every reconnect, so a server that moved is found where it is
    /// now.
    pub async fn connect<A: ToString>(servers: &[A], timeout_ms: u32) -> Result<Client, Error> {
        Client::builder(servers)
            .session_timeout_ms(timeout_ms)
            .connect()
            .await
    }

    /// A client to configure before it connects: session, connect and
    /// request timeouts, a chroot, TLS, server order.
    pub fn builder<A: ToString>(servers: &[A]) -> Builder {
        Builder::new(servers.iter().map(ToString::to_string).collect())
    }

    /// Like [`Client::connect`], but tries `servers` in the order given, at
    /// the first connection and at every reconnect (locality, tests).
    pub async fn connect_in_order<A: ToString>(
        servers: &[A],
        timeout_ms: u32,
    ) -> Result<Client, Error> {
        Client::builder(servers)
            .session_timeout_ms(timeout_ms)
            .in_order()
            .connect()
            .await
    }

    pub(crate) async fn open(
        order: Vec<String>,
        timeout_ms: u32,
        tls: Option<crate::Tls>,
    ) -> Result<Client, Error> {
        let last_zxid = Arc::new(AtomicU64::new(0));
        let (requests, calls) = mpsc::unbounded_channel();
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let (states_tx, states) = tokio::sync::watch::channel(SessionState::Disconnected);
        let (ready_tx, ready) = oneshot::channel();
        let driver = Driver::new(
            (order, tls),
            timeout_ms,
            events_tx,
            states_tx,
            last_zxid.clone(),
            ready_tx,
        );
        let abandoned = Arc::new(std::sync::atomic::AtomicBool::new(false));
        // Every event of the session's task carries its id, once known.
        let span = tracing::info_span!("zab_session", session = tracing::field::Empty);
        tokio::spawn(tracing::Instrument::instrument(
            driver.run(calls, abandoned.clone()),
            span,
        ));
        let session = ready.await.unwrap_or(Err(Error::ConnectionLoss))?;
        Ok(Client {
            abandoned,
            requests,
            events: Arc::new(Mutex::new(events_rx)),
            last_zxid,
            session_id: session.id,
            states,
            chroot: None,
            request_timeout: None,
        })
    }

    /// The client with a builder's per-handle settings.
    pub(crate) fn configured(
        mut self,
        chroot: Option<Chroot>,
        request_timeout: Option<std::time::Duration>,
    ) -> Client {
        self.chroot = chroot.map(Arc::new);
        self.request_timeout = request_timeout;
        self
    }

    /// A stream of a watch's events, relative to the chroot.
    fn stream(&self, events: mpsc::UnboundedReceiver<WatchEvent>) -> WatchStream {
        WatchStream {
            events,
            chroot: self.chroot.clone(),
        }
    }

    pub fn session_id(&self) -> u64 {
        self.session_id
    }

    /// The newest zxid this client has seen.
    pub fn last_zxid(&self) -> u64 {
        self.last_zxid.load(Ordering::SeqCst)
    }

    /// Queues `request` now; the returned future waits for its reply.
    fn call(&self, request: Request) -> impl std::future::Future<Output = Result<Response, Error>> {
        self.call_streaming(request, None)
    }

    /// Like `call`, delivering the watch the request arms to `stream`.
    fn call_streaming(
        &self,
        request: Request,
        stream: Option<EventTx>,
    ) -> impl std::future::Future<Output = Result<Response, Error>> {
        let (reply, rx) = oneshot::channel();
        let request = match &self.chroot {
            Some(root) => root.request(request),
            None => request,
        };
        let sent = self
            .requests
            .send(Call {
                request,
                reply,
                stream,
            })
            .is_ok();
        let (chroot, bound) = (self.chroot.clone(), self.request_timeout);
        // The driver ends only with the session (closed through some
        // handle, or expired): a call it cannot take is a call on a session
        // that is over.
        async move {
            if !sent {
                return Err(Error::SessionExpired);
            }
            let answer = async { rx.await.unwrap_or(Err(Error::SessionExpired)) };
            let response = match bound {
                None => answer.await?,
                Some(bound) => tokio::time::timeout(bound, answer)
                    .await
                    .map_err(|_| Error::Timeout)??,
            };
            Ok(match chroot {
                Some(root) => root.response(response),
                None => response,
            })
        }
    }

    /// Creates a node; returns its actual path (with a sequence suffix for
    /// sequential modes).
    pub async fn create(&self, path: &str, data: &[u8], mode: CreateMode) -> Result<String, Error> {
        self.create_ttl(path, data, mode, 0).await
    }

    /// Creates a TTL node (`PersistentWithTtl` or
    /// `PersistentSequentialWithTtl`; `ttl_ms` is ignored for other modes).
    pub async fn create_ttl(
        &self,
        path: &str,
        data: &[u8],
        mode: CreateMode,
        ttl_ms: u64,
    ) -> Result<String, Error> {
        self.create_full(path, data, mode, ttl_ms, None)
            .await
            .map(|(path, _)| path)
    }

    /// Creates a node with `acl` (ZooKeeper's model: see [`Acl`]); a plain
    /// [`Client::create`] gives the node [`Acl::open_unsafe`]. Use
    /// [`Acl::creator_all`] for a node only this connection's identities
    /// (after [`Client::add_auth`]) may touch.
    pub async fn create_with_acl(
        &self,
        path: &str,
        data: &[u8],
        mode: CreateMode,
        acl: Vec<Acl>,
    ) -> Result<String, Error> {
        self.create_full(path, data, mode, 0, Some(acl))
            .await
            .map(|(path, _)| path)
    }

    /// The node's ACL and stat. Needs READ or ADMIN on it; without ADMIN,
    /// digest entries come back as `user:x`.
    pub async fn get_acl(&self, path: &str) -> Result<(Vec<Acl>, Stat), Error> {
        match self.call(Request::GetAcl { path: path.into() }).await? {
            Response::GetAcl { acl, stat } => Ok((acl, stat)),
            other => Err(unexpected(other)),
        }
    }

    /// Replaces the node's ACL if its `aversion` is `version` (-1: any).
    /// Needs ADMIN on the node.
    pub async fn set_acl(&self, path: &str, acl: Vec<Acl>, version: i32) -> Result<Stat, Error> {
        let request = Request::SetAcl {
            path: path.into(),
            acl,
            version,
        };
        match self.call(request).await? {
            Response::SetAcl(stat) => Ok(stat),
            other => Err(unexpected(other)),
        }
    }

    /// Proves an identity on this session's connections: scheme `digest`
    /// with `user:password`. The client sends it again on every reconnect,
    /// before anything else. Fails with `AuthFailed` for other schemes.
    pub async fn add_auth(&self, scheme: &str, auth: &[u8]) -> Result<(), Error> {
        let request = Request::AddAuth {
            scheme: scheme.into(),
            auth: Bytes::copy_from_slice(auth),
        };
        self.call(request).await.map(drop)
    }

    /// Like [`Client::create`], also returning the new node's stat (its
    /// `czxid` is the create's zxid).
    pub async fn create_with_stat(
        &self,
        path: &str,
        data: &[u8],
        mode: CreateMode,
    ) -> Result<(String, Stat), Error> {
        self.create_full(path, data, mode, 0, None).await
    }

    async fn create_full(
        &self,
        path: &str,
        data: &[u8],
        mode: CreateMode,
        ttl_ms: u64,
        acl: Option<Vec<Acl>>,
    ) -> Result<(String, Stat), Error> {
        let request = Request::Create(CreateRequest {
            path: path.into(),
            data: Bytes::copy_from_slice(data),
            mode,
            ttl_ms,
            acl,
        });
        match self.call(request).await? {
            Response::Create(r) => Ok((r.path, r.stat)),
            other => Err(unexpected(other)),
        }
    }

    pub async fn delete(&self, path: &str, version: i32) -> Result<(), Error> {
        let request = Request::Delete(DeleteRequest {
            path: path.into(),
            version,
        });
        self.call(request).await.map(drop)
    }

    pub async fn set(&self, path: &str, data: &[u8], version: i32) -> Result<Stat, Error> {
        let request = Request::SetData(SetDataRequest {
            path: path.into(),
            data: Bytes::copy_from_slice(data),
            version,
        });
        match self.call(request).await? {
            Response::SetData(stat) => Ok(stat),
            other => Err(unexpected(other)),
        }
    }

    /// Waits until this client's server has applied every write the leader
    /// committed before the sync; returns the zxid it reached.
    pub async fn sync(&self, path: &str) -> Result<u64, Error> {
        match self.call(Request::Sync { path: path.into() }).await? {
            Response::Sync { zxid } => Ok(zxid),
            other => Err(unexpected(other)),
        }
    }

    /// Sends a read, preceded by a sync for `Linearizable`. Both are queued
    /// at once: the server answers a session's requests in order and
    /// evaluates the read only once the sync before it is done, so the read
    /// needs no round trip of its own. If the sync fails, its error is the
    /// answer and the read's reply is dropped.
    async fn read_call(
        &self,
        consistency: Consistency,
        path: &str,
        request: Request,
        stream: Option<EventTx>,
    ) -> Result<Response, Error> {
        let sync = (consistency == Consistency::Linearizable)
            .then(|| self.call(Request::Sync { path: path.into() }));
        let read = self.call_streaming(request, stream);
        if let Some(sync) = sync {
            match sync.await? {
                Response::Sync { .. } => {}
                other => return Err(unexpected(other)),
            }
        }
        read.await
    }

    pub async fn get(&self, path: &str, consistency: Consistency) -> Result<(Bytes, Stat), Error> {
        self.get_watch(path, consistency, false).await
    }

    /// Reads `path`; with `watch`, arms a one-shot data watch whose event
    /// arrives on [`Client::next_event`] (see also [`Client::get_and_watch`]).
    pub async fn get_watch(
        &self,
        path: &str,
        consistency: Consistency,
        watch: bool,
    ) -> Result<(Bytes, Stat), Error> {
        self.get_inner(path, consistency, watch, None).await
    }

    /// Reads `path` and arms a one-shot watch on its data, returned as its
    /// own stream: it fires once, when the node's data changes or the node
    /// is deleted.
    pub async fn get_and_watch(
        &self,
        path: &str,
        consistency: Consistency,
    ) -> Result<(Bytes, Stat, WatchStream), Error> {
        let (tx, events) = mpsc::unbounded_channel();
        let (data, stat) = self.get_inner(path, consistency, true, Some(tx)).await?;
        Ok((data, stat, self.stream(events)))
    }

    async fn get_inner(
        &self,
        path: &str,
        consistency: Consistency,
        watch: bool,
        stream: Option<EventTx>,
    ) -> Result<(Bytes, Stat), Error> {
        let request = Request::GetData {
            path: path.into(),
            watch,
        };
        match self.read_call(consistency, path, request, stream).await? {
            Response::GetData { data, stat } => Ok((data, stat)),
            other => Err(unexpected(other)),
        }
    }

    /// The node's stat, `None` if absent; with `watch`, arms a one-shot
    /// watch (created, changed or deleted) whose event arrives on
    /// [`Client::next_event`] (see also [`Client::exists_and_watch`]).
    pub async fn exists(
        &self,
        path: &str,
        consistency: Consistency,
        watch: bool,
    ) -> Result<Option<Stat>, Error> {
        self.exists_inner(path, consistency, watch, None).await
    }

    /// Like [`Client::exists`] with a one-shot watch returned as its own
    /// stream: it fires once, when the node is created, changed or deleted.
    pub async fn exists_and_watch(
        &self,
        path: &str,
        consistency: Consistency,
    ) -> Result<(Option<Stat>, WatchStream), Error> {
        let (tx, events) = mpsc::unbounded_channel();
        let stat = self.exists_inner(path, consistency, true, Some(tx)).await?;
        Ok((stat, self.stream(events)))
    }

    async fn exists_inner(
        &self,
        path: &str,
        consistency: Consistency,
        watch: bool,
        stream: Option<EventTx>,
    ) -> Result<Option<Stat>, Error> {
        let request = Request::Exists {
            path: path.into(),
            watch,
        };
        match self.read_call(consistency, path, request, stream).await? {
            Response::Exists(stat) => Ok(stat),
            other => Err(unexpected(other)),
        }
    }

    /// The node's children (names, unordered) and stat; with `watch`, arms a
    /// one-shot child watch whose event arrives on [`Client::next_event`]
    /// (see also [`Client::children_and_watch`]).
    pub async fn children(
        &self,
        path: &str,
        consistency: Consistency,
        watch: bool,
    ) -> Result<(Vec<String>, Stat), Error> {
        self.children_inner(path, consistency, watch, None).await
    }

    /// Like [`Client::children`] with a one-shot watch returned as its own
    /// stream: it fires once, when a child is added or removed or the node
    /// is deleted.
    pub async fn children_and_watch(
        &self,
        path: &str,
        consistency: Consistency,
    ) -> Result<(Vec<String>, Stat, WatchStream), Error> {
        let (tx, events) = mpsc::unbounded_channel();
        let (children, stat) = self
            .children_inner(path, consistency, true, Some(tx))
            .await?;
        Ok((children, stat, self.stream(events)))
    }

    async fn children_inner(
        &self,
        path: &str,
        consistency: Consistency,
        watch: bool,
        stream: Option<EventTx>,
    ) -> Result<(Vec<String>, Stat), Error> {
        let request = Request::GetChildren {
            path: path.into(),
            watch,
        };
        match self.read_call(consistency, path, request, stream).await? {
            Response::GetChildren { children, stat } => Ok((children, stat)),
            other => Err(unexpected(other)),
        }
    }

    /// One page of the node's children, in ascending bytewise order, after
    /// the name `after` ("" for the first page): at most `max` names (0: as
    /// many as fit one reply), the node's stat, and whether more follow
    /// (pass the last name as the next `after`). Lists a node of any size,
    /// where [`Client::children`] fails with `FrameTooLarge`.
    pub async fn children_page(
        &self,
        path: &str,
        after: &str,
        max: u32,
        consistency: Consistency,
    ) -> Result<(Vec<String>, Stat, bool), Error> {
        let request = Request::GetChildrenPage {
            path: path.into(),
            after: after.into(),
            max,
            watch: false,
        };
        match self.read_call(consistency, path, request, None).await? {
            Response::GetChildrenPage {
                children,
                stat,
                more,
            } => Ok((children, stat, more)),
            other => Err(unexpected(other)),
        }
    }

    /// Every child of the node, in ascending order, page by page (the first
    /// page read with `consistency`, the rest locally after it: the listing
    /// is not one snapshot if children change meanwhile, but names it sees
    /// come once each, in order).
    pub async fn all_children(
        &self,
        path: &str,
        consistency: Consistency,
    ) -> Result<Vec<String>, Error> {
        let (mut names, _, mut more) = self.children_page(path, "", 0, consistency).await?;
        while more {
            let after = names.last().cloned().unwrap_or_default();
            let (page, _, next) = self
                .children_page(path, &after, 0, Consistency::Local)
                .await?;
            if page.is_empty() {
                break;
            }
            names.extend(page);
            more = next;
        }
        Ok(names)
    }

    /// All of `ops` or none, at one zxid; later ops see earlier ones' effects.
    pub async fn multi(&self, ops: Vec<MultiOp>) -> Result<Vec<MultiResult>, Error> {
        match self.call(Request::Multi(ops)).await? {
            Response::Multi(results) => Ok(results),
            other => Err(unexpected(other)),
        }
    }

    /// The paths of this session's ephemeral nodes that start with
    /// `prefix` (a string prefix: `/` for all, `/app/` for those under
    /// `/app`), sorted.
    pub async fn ephemerals(
        &self,
        prefix: &str,
        consistency: Consistency,
    ) -> Result<Vec<String>, Error> {
        let request = Request::GetEphemerals {
            prefix: prefix.into(),
        };
        match self.read_call(consistency, "/", request, None).await? {
            Response::GetEphemerals { paths } => Ok(paths),
            other => Err(unexpected(other)),
        }
    }

    /// How many nodes lie below `path`, at any depth, not counting `path`
    /// itself. The server walks the subtree to count.
    pub async fn descendant_count(
        &self,
        path: &str,
        consistency: Consistency,
    ) -> Result<u64, Error> {
        let request = Request::GetAllChildrenNumber { path: path.into() };
        match self.read_call(consistency, path, request, None).await? {
            Response::GetAllChildrenNumber { count } => Ok(count),
            other => Err(unexpected(other)),
        }
    }

    /// Several reads answered from one state of the tree, a result each
    /// (its data or children, or its own error), in order.
    pub async fn multi_read(
        &self,
        ops: Vec<ReadOp>,
        consistency: Consistency,
    ) -> Result<Vec<ReadResult>, Error> {
        match self
            .read_call(consistency, "/", Request::MultiRead(ops), None)
            .await?
        {
            Response::MultiRead(results) => Ok(results),
            other => Err(unexpected(other)),
        }
    }

    /// Arms a persistent watch on `path` (and its whole subtree if
    /// `recursive`); its events arrive on the returned stream. Dropping the
    /// stream discards its later events; the watch stays armed on the
    /// server until [`Client::remove_watches`] removes it or the session
    /// ends.
    pub async fn add_watch(&self, path: &str, recursive: bool) -> Result<WatchStream, Error> {
        let mode = if recursive {
            zab_proto::AddWatchMode::PersistentRecursive
        } else {
            zab_proto::AddWatchMode::Persistent
        };
        let (tx, events) = mpsc::unbounded_channel();
        let request = Request::AddWatch {
            path: path.into(),
            mode,
        };
        self.call_streaming(request, Some(tx)).await?;
        Ok(self.stream(events))
    }

    /// The current session state.
    pub fn session_state(&self) -> SessionState {
        *self.states.borrow()
    }

    /// A stream of session state changes (connected, disconnected,
    /// reconnected, expired): `changed().await`, then `borrow()`.
    pub fn session_states(&self) -> tokio::sync::watch::Receiver<SessionState> {
        self.states.clone()
    }

    /// The next watch event (one-shot or persistent) for this session.
    pub async fn next_event(&self) -> Option<WatchEvent> {
        let event = self.events.lock().await.recv().await?;
        Some(match &self.chroot {
            Some(root) => root.event(event),
            None => event,
        })
    }

    /// Ends the session: its ephemeral nodes are deleted at once.
    pub async fn close(self) -> Result<(), Error> {
        self.call(Request::CloseSession).await.map(drop)
    }

    /// Removes this session's watches of `kind` on `path` (ZooKeeper's
    /// removeWatches): the server stops reporting to them, a reconnect no
    /// longer re-arms them, and their [`WatchStream`]s end. `Data` covers
    /// the watches of `get_and_watch` and `exists_and_watch`, `Children`
    /// those of `children_and_watch`, `Persistent` and
    /// `PersistentRecursive` those of [`Client::add_watch`], `Any` all.
    /// `Error::Server(NoWatcher)` if there was none.
    pub async fn remove_watches(&self, path: &str, kind: WatcherKind) -> Result<(), Error> {
        let request = Request::RemoveWatches {
            path: path.into(),
            kind,
        };
        match self.call(request).await? {
            Response::RemoveWatches => Ok(()),
            r => Err(unexpected(r)),
        }
    }

    /// Walks away from the session without closing it, as a crashed
    /// process would: once every handle is gone (this one now, the clones
    /// when they drop) the connection is dropped and the servers expire the
    /// session, deleting its ephemeral nodes, after its timeout. For tests
    /// of expiry and for owners that must not end their ephemerals early.
    pub fn abandon(self) {
        self.abandoned.store(true, Ordering::SeqCst);
    }
}

fn unexpected(r: Response) -> Error {
    let _ = r;
    Error::Server(ErrorCode::MarshallingError)
}
