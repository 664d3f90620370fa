//! etcd (v3 API over gRPC) through `etcd-client`.

use std::time::Duration;

use etcd_client::{Client, ConnectOptions, GetOptions, PutOptions};

use crate::store::{Connect, Read, Result, Store, StoreError};

pub struct Etcd {
    client: Client,
    /// The lease this session's "ephemeral" keys are bound to.
    lease: i64,
}

impl std::fmt::Debug for Etcd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Etcd").field("lease", &self.lease).finish()
    }
}

fn err(e: etcd_client::Error) -> StoreError {
    StoreError(format!("etcd: {e}"))
}

impl Store for Etcd {
    const NAME: &'static str = "etcd";

    async fn connect(to: Connect) -> Result<Self> {
        // One endpoint per session unless the caller gives more: the client
        // balances requests over every endpoint it has.
        let endpoints: Vec<String> = to.servers.iter().map(|s| format!("http://{s}")).collect();
        let options = ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(2))
            .with_keep_alive(Duration::from_secs(5), to.session_timeout);
        let mut client = Client::connect(endpoints, Some(options))
            .await
            .map_err(err)?;
        let ttl_s = i64::try_from(to.lifetime.as_secs()).unwrap_or(i64::MAX) + 60;
        let lease = client.lease_grant(ttl_s, None).await.map_err(err)?.id();
        Ok(Etcd { client, lease })
    }

    async fn ensure(&self, key: &str, value: &[u8]) -> Result<()> {
        // A plain put is idempotent enough: the key exists afterwards.
        self.write(key, value).await
    }

    async fn write(&self, key: &str, value: &[u8]) -> Result<()> {
        let mut kv = self.client.kv_client();
        kv.put(key, value, None).await.map(drop).map_err(err)
    }

    async fn read(&self, key: &str, read: Read) -> Result<()> {
        let options = match read {
            Read::Local => Some(GetOptions::new().with_serializable()),
            Read::Linearizable => None,
        };
        let mut kv = self.client.kv_client();
        let got = kv.get(key, options).await.map_err(err)?;
        if got.kvs().is_empty() {
            return Err(StoreError(format!("etcd: key {key} not found")));
        }
        Ok(())
    }

    async fn create(&self, key: &str, value: &[u8]) -> Result<()> {
        self.write(key, value).await
    }

    async fn create_ephemeral(&self, key: &str, value: &[u8]) -> Result<()> {
        let mut kv = self.client.kv_client();
        let options = PutOptions::new().with_lease(self.lease);
        kv.put(key, value, Some(options))
            .await
            .map(drop)
            .map_err(err)
    }

    async fn delete(&self, key: &str) -> Result<()> {
        let mut kv = self.client.kv_client();
        kv.delete(key, None).await.map(drop).map_err(err)
    }

    async fn close(self) {
        let mut lease = self.client.lease_client();
        let _ = lease.revoke(self.lease).await;
    }
}
