//! Configuring a client before it connects: servers, session, connect and
//! request timeouts, a chroot, TLS.

use std::time::Duration;

use crate::chroot::Chroot;
use crate::{Client, Error};

/// A client being configured: see [`Client::builder`].
#[derive(Debug, Clone)]
pub struct Builder {
    pub(crate) servers: Vec<String>,
    pub(crate) timeout_ms: u32,
    pub(crate) in_order: bool,
    pub(crate) tls: Option<crate::Tls>,
    pub(crate) connect_timeout: Option<Duration>,
    pub(crate) request_timeout: Option<Duration>,
    pub(crate) chroot: Option<String>,
}

impl Builder {
    pub(crate) fn new(servers: Vec<String>) -> Builder {
        Builder {
            servers,
            timeout_ms: 10_000,
            in_order: false,
            tls: None,
            connect_timeout: None,
            request_timeout: None,
            chroot: None,
        }
    }

    /// The session timeout asked for (the server clamps it); 10 s unless
    /// set.
    pub fn session_timeout_ms(mut self, timeout_ms: u32) -> Builder {
        self.timeout_ms = timeout_ms;
        self
    }

    /// How long [`Builder::connect`] may take in all, every server tried
    /// included: past it, it fails with [`Error::NoServer`]. Unbounded
    /// unless set (each server is tried once, each dial bounded).
    pub fn connect_timeout(mut self, bound: Duration) -> Builder {
        self.connect_timeout = Some(bound);
        self
    }

    /// How long each call may wait for its reply: past it, the call fails
    /// with [`Error::Timeout`] (its outcome unknown, as after
    /// ConnectionLoss) and the session goes on. Unbounded unless set: a
    /// call then waits through reconnects until the session ends.
    pub fn request_timeout(mut self, bound: Duration) -> Builder {
        self.request_timeout = Some(bound);
        self
    }

    /// Roots the client at `root` (ZooKeeper's chroot): `/x` means
    /// `root/x` on the servers, and paths come back relative to `root`.
    /// `/` is no chroot. The root itself must exist for anything to be
    /// created under it.
    pub fn chroot(mut self, root: &str) -> Builder {
        self.chroot = Some(root.to_string());
        self
    }

    /// Tries the servers in the order given, at the first connection and
    /// at every reconnect (locality, tests), instead of from a varying
    /// start that spreads clients over the ensemble.
    pub fn in_order(mut self) -> Builder {
        self.in_order = true;
        self
    }

    /// Connects over TLS (the servers must have `[client_tls]`).
    pub fn tls(mut self, tls: crate::Tls) -> Builder {
        self.tls = Some(tls);
        self
    }

    /// Opens the session.
    pub async fn connect(self) -> Result<Client, Error> {
        let chroot = match &self.chroot {
            Some(root) => Chroot::new(root).map_err(Error::BadConfig)?,
            None => None,
        };
        let mut order = self.servers.clone();
        if !self.in_order && !order.is_empty() {
            let start = (std::process::id() as usize + timestamp() as usize) % order.len();
            order.rotate_left(start);
        }
        let open = Client::open(order, self.timeout_ms, self.tls.clone());
        let client = match self.connect_timeout {
            None => open.await?,
            // Dropping the unfinished open ends its session task.
            Some(bound) => tokio::time::timeout(bound, open).await.map_err(|_| {
                Error::NoServer(format!("none accepted a session within {bound:?}"))
            })??,
        };
        Ok(client.configured(chroot, self.request_timeout))
    }
}

fn timestamp() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}
