//! Backups: written, checked, restored into a data directory that a server
//! recovers from, and refused when damaged or aimed at a used directory.

use bytes::Bytes;
use zab_core::{Epoch, Zxid};
use zab_proto::{CreateMode, CreateRequest, Request};

use super::*;
use crate::replica::{Command, CommandBody};

fn replica_with(nodes: usize) -> (Replica, Zxid) {
    let mut r = Replica::new();
    let session = Command {
        origin: 1,
        session: 5,
        xid: 0,
        request: 0,
        time_ms: 1_000,
        body: CommandBody::CreateSession {
            timeout_ms: 4_000,
            password: [9; 16],
        },
    };
    r.apply(Zxid::new(Epoch(3), 1), &session.encode())
        .expect("applies");
    let mut last = Zxid::ZERO;
    for k in 0..nodes {
        let create = Command {
            origin: 1,
            session: 5,
            xid: k as i32,
            request: 0,
            time_ms: 1_000,
            body: CommandBody::Op(Request::Create(CreateRequest {
                path: format!("/n{k}"),
                data: Bytes::from(format!("value {k}")),
                mode: CreateMode::Persistent,
                ttl_ms: 0,
                acl: None,
            })),
        };
        last = Zxid::new(Epoch(3), k as u32 + 2);
        r.apply(last, &create.encode()).expect("applies");
    }
    // And one ephemeral node of session 5.
    let ephemeral = Command {
        origin: 1,
        session: 5,
        xid: -1,
        request: 0,
        time_ms: 1_000,
        body: CommandBody::Op(Request::Create(CreateRequest {
            path: "/eph".into(),
            data: Bytes::new(),
            mode: CreateMode::Ephemeral,
            ttl_ms: 0,
            acl: None,
        })),
    };
    last = Zxid::new(last.epoch(), last.counter() + 1);
    r.apply(last, &ephemeral.encode()).expect("applies");
    (r, last)
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("zab-backup-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

#[test]
fn a_backup_restores_into_a_directory_a_server_recovers_from() {
    let dir = scratch("restore");
    let (replica, zxid) = replica_with(50);
    let frozen = replica.freeze();
    let file = dir.join("backup.snap");
    std::fs::write(&file, encode(zxid, &frozen)).expect("write backup");
    let (summary, _) = verify(&file).expect("intact");
    assert_eq!(summary.zxid, zxid);
    assert_eq!(summary.znodes, 52, "50 nodes, an ephemeral and the root");
    assert_eq!(summary.digest, frozen.digest());

    let data_dir = dir.join("data");
    let restored = restore(&file, &data_dir).expect("restores");
    // Its sessions ended with the backup: the ephemeral is gone.
    let after = Zxid::new(zxid.epoch(), zxid.counter() + 1);
    assert_eq!((restored.zxid, restored.znodes), (after, 51));
    assert_ne!(restored.digest, summary.digest);
    // What a server starting on it recovers: the state, at the backup's
    // zxid and epoch.
    let (store, recovery) =
        Store::open(RealFs::shared(), &data_dir, StoreConfig::default()).expect("opens");
    assert_eq!(store.epochs(), (Epoch(3), Epoch(3)));
    assert_eq!(recovery.restored.history.last(), after);
    assert!(!recovery.restored.recovering, "it may vote");
    let snapshot = recovery.snapshot.expect("a snapshot");
    assert_eq!(snapshot.meta.zxid, after);
    let mut recovered = Replica::new();
    recovered.restore(&snapshot.content).expect("loads");
    assert_eq!(recovered.freeze().digest(), restored.digest);
    assert!(recovered.tree.sessions().is_empty(), "no session survives");
    assert!(recovered.password(5).is_none());
    assert!(recovered.tree.get("/eph").is_none() && recovered.tree.get("/n7").is_some());
    assert!(recovery.damage.is_none(), "{:?}", recovery.damage);
    drop(store);

    // Never over an existing directory's contents.
    let err = restore(&file, &data_dir).expect_err("not empty");
    assert!(matches!(err, BackupError::NotEmpty(_)), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_damaged_or_foreign_backup_is_refused_before_anything_is_written() {
    let dir = scratch("damaged");
    let (replica, zxid) = replica_with(5);
    let good = encode(zxid, &replica.freeze());
    let file = dir.join("backup.snap");
    for at in [3, 20, good.len() / 2, good.len() - 1] {
        let mut bad = good.clone();
        bad[at] ^= 0x40;
        std::fs::write(&file, &bad).expect("write");
        let err = restore(&file, &dir.join("data")).expect_err("damaged");
        assert!(matches!(err, BackupError::Damaged(_)), "byte {at}: {err}");
    }
    // Intact checksums around bytes that are not a state.
    std::fs::write(&file, snapshot_file::encode(0, zxid, b"not a state")).expect("write");
    let err = restore(&file, &dir.join("data")).expect_err("bad state");
    assert!(matches!(err, BackupError::BadState { .. }), "{err}");
    assert!(!dir.join("data").exists(), "nothing was written");
    let _ = std::fs::remove_dir_all(&dir);
}
