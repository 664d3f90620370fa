//! The one trait every backend implements: a session with a coordination
//! service that can write, read and make short-lived keys. The workloads in
//! `workload.rs` are written once against it, so zab, ZooKeeper and etcd run
//! exactly the same loops.

use std::future::Future;
use std::time::Duration;

/// How fresh a read must be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Read {
    /// Served from the contacted server's own copy (zab `Consistency::Local`,
    /// ZooKeeper plain getData, etcd serializable range).
    Local,
    /// Reflects every write acknowledged before it began (zab
    /// `Consistency::Linearizable`, ZooKeeper sync + getData, etcd default
    /// range).
    Linearizable,
}

/// What a session needs to know when it opens.
#[derive(Clone, Debug)]
pub struct Connect {
    /// `host:port` addresses, in the order this session should prefer them.
    pub servers: Vec<String>,
    /// Session timeout (zab, ZooKeeper) or lease TTL base (etcd).
    pub session_timeout: Duration,
    /// Longest the session lives, for etcd's lease TTL.
    #[cfg_attr(not(feature = "etcd"), allow(dead_code))]
    pub lifetime: Duration,
}

/// A failed request, with the backend's words for it.
#[derive(Clone, Debug)]
pub struct StoreError(pub String);

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// One client session (one connection, one request in flight).
///
/// Keys are absolute slash paths (`/bench/w3`); backends without a tree
/// (etcd) use them as flat keys.
pub trait Store: Sized + Send + Sync + 'static {
    /// The name reported in results (`zab`, `zk`, `etcd`).
    const NAME: &'static str;

    fn connect(to: Connect) -> impl Future<Output = Result<Self>> + Send;

    /// Creates the persistent parent `/bench` and `key` with `value` if they
    /// do not exist yet.
    fn ensure(&self, key: &str, value: &[u8]) -> impl Future<Output = Result<()>> + Send;

    /// Creates a new persistent key under `/bench` (which exists).
    fn create(&self, key: &str, value: &[u8]) -> impl Future<Output = Result<()>> + Send;

    /// Overwrites an existing key.
    fn write(&self, key: &str, value: &[u8]) -> impl Future<Output = Result<()>> + Send;

    fn read(&self, key: &str, read: Read) -> impl Future<Output = Result<()>> + Send;

    /// Creates a key that dies with the session (etcd: bound to a lease).
    fn create_ephemeral(&self, key: &str, value: &[u8]) -> impl Future<Output = Result<()>> + Send;

    fn delete(&self, key: &str) -> impl Future<Output = Result<()>> + Send;

    /// Ends the session politely (ephemerals and leases go at once).
    fn close(self) -> impl Future<Output = ()> + Send;
}
