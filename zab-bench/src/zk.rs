//! Apache ZooKeeper through `zookeeper-client` (async, pure Rust).

use zookeeper_client as zk;

use crate::store::{Connect, Read, Result, Store, StoreError};

#[derive(Debug)]
pub struct ZooKeeper {
    client: zk::Client,
}

fn err(e: zk::Error) -> StoreError {
    StoreError(format!("zk: {e}"))
}

fn exists_ok<T>(r: std::result::Result<T, zk::Error>) -> Result<()> {
    match r {
        Ok(_) | Err(zk::Error::NodeExists) => Ok(()),
        Err(e) => Err(err(e)),
    }
}

impl Store for ZooKeeper {
    const NAME: &'static str = "zk";

    async fn connect(to: Connect) -> Result<Self> {
        // The client shuffles its host list; to pin a session to one server
        // the caller passes just that one.
        let cluster = to.servers.join(",");
        let client = zk::Client::connector()
            .with_session_timeout(to.session_timeout)
            .with_connection_timeout(std::time::Duration::from_secs(2))
            .connect(&cluster)
            .await
            .map_err(err)?;
        Ok(ZooKeeper { client })
    }

    async fn ensure(&self, key: &str, value: &[u8]) -> Result<()> {
        let options = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
        exists_ok(self.client.create("/bench", b"", &options).await)?;
        exists_ok(self.client.create(key, value, &options).await)
    }

    async fn write(&self, key: &str, value: &[u8]) -> Result<()> {
        self.client
            .set_data(key, value, None)
            .await
            .map(drop)
            .map_err(err)
    }

    async fn read(&self, key: &str, read: Read) -> Result<()> {
        if read == Read::Linearizable {
            // sync makes this server catch up with the leader first; the
            // read that follows on the same session sees it (FIFO order).
            self.client.sync(key).await.map_err(err)?;
        }
        self.client.get_data(key).await.map(drop).map_err(err)
    }

    async fn create(&self, key: &str, value: &[u8]) -> Result<()> {
        let options = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
        exists_ok(self.client.create(key, value, &options).await)
    }

    async fn create_ephemeral(&self, key: &str, value: &[u8]) -> Result<()> {
        let options = zk::CreateMode::Ephemeral.with_acls(zk::Acls::anyone_all());
        self.client
            .create(key, value, &options)
            .await
            .map(drop)
            .map_err(err)
    }

    async fn delete(&self, key: &str) -> Result<()> {
        self.client.delete(key, None).await.map_err(err)
    }

    async fn close(self) {
        // Dropping the last handle closes the session.
        drop(self.client);
    }
}
