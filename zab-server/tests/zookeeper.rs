//! ZooKeeper's own client protocol (issue #18), spoken to a real ensemble
//! by a ZooKeeper client written by others (the `zookeeper-client` crate):
//! every operation it has, the same tree and watches as our own client
//! sees, and a session that survives a leader kill.

mod common;

use std::time::Duration;

use common::{retry, Ensemble};
use zab_client::{Consistency, CreateMode as ZabMode};
use zookeeper_client as zk;

async fn zk_connect(addrs: &[std::net::SocketAddr]) -> zk::Client {
    let cluster: Vec<String> = addrs.iter().map(ToString::to_string).collect();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let connected = zk::Client::connector()
            .with_session_timeout(Duration::from_secs(20))
            .with_connection_timeout(Duration::from_secs(2))
            .connect(&cluster.join(","))
            .await;
        match connected {
            Ok(c) => return c,
            Err(e) if std::time::Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("no ZooKeeper session: {e}"),
        }
    }
}

fn open(mode: zk::CreateMode) -> zk::CreateOptions<'static> {
    mode.with_acls(zk::Acls::anyone_all())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zookeeper_client_creates_reads_and_writes_on_the_same_tree() {
    let (e, zks) = Ensemble::start_with_zookeeper(3, "zookeeper-basic", "");
    e.wait_for_leader(None).await;
    let zkc = zk_connect(&zks[..1]).await;
    let (stat, _) = zkc
        .create("/zk", b"hello", &open(zk::CreateMode::Persistent))
        .await
        .expect("create");
    assert_eq!(stat.data_length, 5);
    let (data, stat) = zkc.get_data("/zk").await.expect("get");
    assert_eq!((data.as_slice(), stat.version), (&b"hello"[..], 0));
    let stat = zkc.set_data("/zk", b"again", Some(0)).await.expect("set");
    assert_eq!(stat.version, 1);
    assert!(matches!(
        zkc.set_data("/zk", b"x", Some(0)).await,
        Err(zk::Error::BadVersion)
    ));
    assert_eq!(zkc.check_stat("/none").await.expect("exists"), None);
    let (_, seq) = zkc
        .create("/zk/s-", b"", &open(zk::CreateMode::PersistentSequential))
        .await
        .expect("sequential");
    assert_eq!(seq.into_i64(), 0);
    zkc.create("/zk/e", b"", &open(zk::CreateMode::Ephemeral))
        .await
        .expect("ephemeral");
    let mut names = zkc.list_children("/zk").await.expect("children");
    names.sort();
    assert_eq!(names, ["e", "s-0000000000"]);
    assert_eq!(zkc.count_descendants_number("/zk").await.expect("count"), 2);
    assert_eq!(
        zkc.list_ephemerals("/").await.expect("ephemerals"),
        ["/zk/e"]
    );
    zkc.sync("/zk").await.expect("sync");

    // Our own client sees the same tree.
    let ours = common::connect_retry(&e.clients, 10_000)
        .await
        .expect("ours");
    let (data, _) = retry(|| ours.get("/zk", Consistency::Linearizable))
        .await
        .expect("our read");
    assert_eq!(&data[..], b"again");
    assert!(ours
        .exists("/zk/e", Consistency::Linearizable, false)
        .await
        .expect("exists")
        .is_some());

    // A watch set by the ZooKeeper client fires on our client's write.
    let (_, _, watcher) = zkc.get_and_watch_data("/zk").await.expect("watch");
    retry(|| ours.set("/zk", b"third", -1))
        .await
        .expect("our set");
    let event = tokio::time::timeout(Duration::from_secs(10), watcher.changed())
        .await
        .expect("an event");
    assert_eq!(event.event_type, zk::EventType::NodeDataChanged);
    assert_eq!(event.path, "/zk");
    retry(|| ours.create("/zk/ours", b"", ZabMode::Persistent))
        .await
        .expect("our create");
    assert!(zkc.check_stat("/zk/ours").await.expect("exists").is_some());
    zkc.delete("/zk/ours", None).await.expect("delete");
    assert!(matches!(
        zkc.delete("/zk", None).await,
        Err(zk::Error::NotEmpty)
    ));
}
