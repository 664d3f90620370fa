//! Starting corpora of the storage and handshake targets.

use super::*;

pub(super) fn log_txns(n: u32) -> Vec<CoreTxn> {
    let (_, payloads) = built_tree();
    (1..=n)
        .map(|c| CoreTxn {
            zxid: Zxid::new(Epoch(1), c),
            payload: Bytes::from(payloads[(c as usize - 1) % payloads.len()].clone()),
        })
        .collect()
}

pub(super) fn log_record() -> Vec<Vec<u8>> {
    let mut seg = Vec::new();
    for t in log_txns(6) {
        record::encode(&t, &mut seg);
    }
    let mut padded = seg.clone();
    padded.extend_from_slice(&[0; 64]);
    let mut torn = seg.clone();
    torn.truncate(seg.len() - 5);
    vec![
        [vec![0u8], seg.clone()].concat(),
        [vec![1u8], padded].concat(),
        [vec![1u8], torn].concat(),
    ]
}

pub(super) const DIR: &str = "/data";
pub(super) const LOG: LogConfig = LogConfig {
    segment_bytes_max: 512,
    prealloc_bytes: 128,
};

/// The files of `fs` in `/data`, as `dir::encode` input.
pub(super) fn dump(fs: &MemFs) -> Vec<u8> {
    let entries: Vec<(String, Vec<u8>)> = fs
        .snapshot()
        .into_iter()
        .filter(|(p, _)| p.parent() == Some(Path::new(DIR)))
        .map(|(p, c)| {
            (
                p.file_name()
                    .expect("file name")
                    .to_string_lossy()
                    .into_owned(),
                c,
            )
        })
        .collect();
    dir::encode(&entries)
}

pub(super) fn txn_log_open() -> Vec<Vec<u8>> {
    let fs = MemFs::new();
    let (mut log, _) =
        TxnLog::open(fs.shared(), Path::new(DIR), 0, LOG, None, &mut |_| Ok(())).expect("open");
    for t in log_txns(20) {
        log.append(&t).expect("append");
        log.sync().expect("sync");
    }
    drop(log);
    let files = dump(&fs);
    let mark = Zxid::new(Epoch(1), 20).0.to_be_bytes();
    vec![
        [vec![0u8, 0], files.clone()].concat(),
        [vec![2u8, 0], mark.to_vec(), files.clone()].concat(),
        [
            vec![3u8, 0],
            Zxid::new(Epoch(1), 25).0.to_be_bytes().to_vec(),
            files,
        ]
        .concat(),
    ]
}

pub(super) fn store_open() -> Vec<Vec<u8>> {
    let fs = MemFs::new();
    // The update fills a test-only field that zab-server's `defects`
    // feature adds.
    #[allow(clippy::needless_update)]
    let cfg = StoreConfig {
        log: LOG,
        snapshots_kept: 2,
        ..StoreConfig::default()
    };
    let (mut store, _) = Store::open(fs.shared(), Path::new(DIR), cfg).expect("open");
    store
        .apply(&PersistOp::AcceptedEpoch(Epoch(1)))
        .expect("epoch");
    store
        .apply(&PersistOp::CurrentEpoch(Epoch(1)))
        .expect("epoch");
    let cmds = commands();
    let mut replica = Replica::new();
    let mut seeds = Vec::new();
    for (i, cmd) in cmds.iter().enumerate() {
        let zxid = Zxid::new(Epoch(1), i as u32 + 1);
        store
            .apply(&PersistOp::Append(CoreTxn {
                zxid,
                payload: cmd.clone(),
            }))
            .expect("append");
        store.sync().expect("sync");
        replica.apply(zxid, cmd).expect("applies");
        if i == 5 || i == 11 {
            store
                .write_snapshot(zxid, &replica.snapshot())
                .expect("snapshot");
        }
        if i == 3 || i == 8 || i + 1 == cmds.len() {
            seeds.push([vec![0u8], dump(&fs)].concat());
        }
    }
    store
        .apply(&PersistOp::Intact {
            ensemble: EnsembleId(9),
        })
        .expect("intact");
    seeds.push([vec![0u8], dump(&fs)].concat());
    seeds
}

pub(super) fn snapshot_file_seeds() -> Vec<Vec<u8>> {
    let content = applied_replica(12).snapshot();
    vec![
        [
            vec![0u8],
            snapshot_file::encode(0, Zxid::new(Epoch(1), 12), &content),
        ]
        .concat(),
        [vec![1u8], snapshot_file::encode(3, Zxid(1), b"state")].concat(),
    ]
}

pub(super) fn meta_files() -> Vec<Vec<u8>> {
    let fs = MemFs::new();
    let dir = Path::new(DIR);
    epoch_file::write(&fs, dir, epoch_file::ACCEPTED, Epoch(42)).expect("write");
    let shared = fs.shared();
    let standing = standing_file::Standing {
        generation: 1,
        mark: Zxid::new(Epoch(3), 4),
        ensemble: EnsembleId(9),
        recovering: true,
    };
    let mut f = standing_file::StandingFile::create(&shared, dir, standing).expect("standing");
    f.mark(1, Zxid::new(Epoch(3), 5)).expect("mark");
    let file = |name: &str| {
        fs.snapshot()
            .into_iter()
            .find(|(p, _)| p == &dir.join(name))
            .map(|(_, c)| c)
            .expect("written")
    };
    vec![
        [vec![0u8], file(epoch_file::ACCEPTED)].concat(),
        [vec![1u8], b"7 00000000\n".to_vec()].concat(),
        [vec![2u8], file(standing_file::STANDING)].concat(),
        [
            vec![3u8],
            snapshot_file::file_name(2, Zxid(0x3_0000_0009)).into_bytes(),
        ]
        .concat(),
        [
            vec![3u8],
            zab_server::storage::txn_log::segment_name(1, Zxid(0x3_0000_0001), Zxid(0x2_0000_0009))
                .into_bytes(),
        ]
        .concat(),
        [vec![3u8], b"log.00000001.0000000300000001".to_vec()].concat(),
    ]
}

pub(super) fn hello(id: u64, auth: bool) -> Vec<u8> {
    let mut b = Vec::new();
    b.put_slice(b"ZABP");
    b.put_u16(zab_server::peer::VERSION);
    b.put_u64(crate::handshake::CLUSTER_ID);
    b.put_u64(id);
    b.put_u8(u8::from(auth));
    b.put_slice(&[0x5a; 32]);
    b
}

pub(super) fn peer_handshake() -> Vec<Vec<u8>> {
    let after: Vec<u8> = messages()
        .iter()
        .take(6)
        .map(|m| codec::encode_to_bytes(m).to_vec())
        .collect::<Vec<_>>()
        .concat();
    vec![
        [vec![0u8], hello(2, false)].concat(),
        [vec![0u8], hello(3, false), after].concat(),
        [vec![1u8], hello(2, true), vec![0; 32]].concat(),
        [vec![0u8], hello(1, false)].concat(),
    ]
}
