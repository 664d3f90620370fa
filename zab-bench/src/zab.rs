//! The in-tree client, `zab-client`.

use zab_client::{Client, Consistency, CreateMode, ErrorCode};

use crate::store::{Connect, Read, Result, Store, StoreError};

#[derive(Debug)]
pub struct Zab {
    client: Client,
}

fn err(e: zab_client::Error) -> StoreError {
    StoreError(format!("zab: {e}"))
}

/// Treats "already there" as success: `ensure` is idempotent.
fn exists_ok(r: std::result::Result<String, zab_client::Error>) -> Result<()> {
    match r {
        Ok(_) | Err(zab_client::Error::Server(ErrorCode::NodeExists)) => Ok(()),
        Err(e) => Err(err(e)),
    }
}

impl Store for Zab {
    const NAME: &'static str = "zab";

    async fn connect(to: Connect) -> Result<Self> {
        let timeout_ms = u32::try_from(to.session_timeout.as_millis()).unwrap_or(u32::MAX);
        // In the order given: the caller decides which server each session
        // uses (spread over the ensemble, or followers only).
        let client = Client::connect_in_order(&to.servers, timeout_ms)
            .await
            .map_err(err)?;
        Ok(Zab { client })
    }

    async fn ensure(&self, key: &str, value: &[u8]) -> Result<()> {
        exists_ok(
            self.client
                .create("/bench", b"", CreateMode::Persistent)
                .await,
        )?;
        exists_ok(self.client.create(key, value, CreateMode::Persistent).await)
    }

    async fn write(&self, key: &str, value: &[u8]) -> Result<()> {
        self.client.set(key, value, -1).await.map(drop).map_err(err)
    }

    async fn read(&self, key: &str, read: Read) -> Result<()> {
        let consistency = match read {
            Read::Local => Consistency::Local,
            Read::Linearizable => Consistency::Linearizable,
        };
        self.client
            .get(key, consistency)
            .await
            .map(drop)
            .map_err(err)
    }

    async fn create(&self, key: &str, value: &[u8]) -> Result<()> {
        exists_ok(self.client.create(key, value, CreateMode::Persistent).await)
    }

    async fn create_ephemeral(&self, key: &str, value: &[u8]) -> Result<()> {
        self.client
            .create(key, value, CreateMode::Ephemeral)
            .await
            .map(drop)
            .map_err(err)
    }

    async fn delete(&self, key: &str) -> Result<()> {
        self.client.delete(key, -1).await.map_err(err)
    }

    async fn close(self) {
        let _ = self.client.close().await;
    }
}
