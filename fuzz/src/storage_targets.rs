//! zab-server's on-disk formats, over an in-memory file system: log records
//! and segments, log recovery, snapshot files, epoch and standing files,
//! file names, and whole data-directory recovery (`Store::open`).
//!
//! Checksums stop a byte-flipping fuzzer at the first check, so most
//! targets take a flag byte that asks for the checksums to be repaired
//! first (see [`crate::dir::fix_checksums`]).

use std::path::Path;

use bytes::Bytes;
use zab_core::{Config, Membership, Node, PeerId, Zxid};
use zab_server::replica::Replica;
use zab_server::server::Application;
use zab_server::storage::epoch_file::{self, ACCEPTED, CURRENT};
use zab_server::storage::record::{self, Decoded, HEADER_BYTES};
use zab_server::storage::snapshot_file::{self, SnapshotMeta};
use zab_server::storage::standing_file::{self, StandingFile, STANDING};
use zab_server::storage::txn_log::{self, LogConfig, TxnLog};
use zab_server::storage::{Store, StoreConfig};

use crate::dir;
use crate::memfs::MemFs;
use crate::Input;

const DIR: &str = "/data";

/// Small segments and preallocation, so a few hundred bytes of input span
/// several segments.
const LOG: LogConfig = LogConfig {
    segment_bytes_max: 512,
    prealloc_bytes: 128,
};

/// A directory holding the files `data` describes (see [`dir`]), with
/// repaired checksums if `fix`. (Always `Some`: the standing-file sequence
/// and generation overflows it once skipped are fixed, and their inputs are
/// in the corpora.)
fn directory(data: &[u8], fix: bool) -> Option<MemFs> {
    let fs = MemFs::new();
    for (name, mut content) in dir::parse(data) {
        if fix {
            dir::fix_checksums(&name, &mut content);
        }
        fs.put(&Path::new(DIR).join(name), &content);
    }
    Some(fs)
}

/// One log segment (`record::decode` through `inspect_segment`, and at odd
/// offsets). First byte: bit 0 repairs the record checksums. Every record
/// re-encodes to its bytes, and decoding stops exactly after the last one.
pub fn server_log_record(data: &[u8]) {
    let mut input = Input::new(data);
    let flags = input.u8();
    let mut seg = input.rest().to_vec();
    if flags & 1 != 0 {
        dir::fix_records(&mut seg);
    }
    let seg = Bytes::from(seg);
    let (txns, stop) = txn_log::inspect_segment(&seg);
    let mut again = Vec::new();
    for t in &txns {
        assert_eq!(record::encoded_len(t), HEADER_BYTES + t.payload.len());
        record::encode(t, &mut again);
    }
    assert_eq!(
        &again[..],
        &seg[..again.len()],
        "log record is not canonical"
    );
    match stop {
        Some((offset, _)) => assert_eq!(offset, again.len()),
        None => {
            let tail = &seg[again.len()..];
            assert!(
                tail.is_empty() || tail.iter().take(HEADER_BYTES).all(|&b| b == 0),
                "the log ended on a non-zero header"
            );
        }
    }
    let odd = [
        seg.len(),
        seg.len() + 1,
        usize::MAX - HEADER_BYTES,
        usize::MAX,
    ];
    for offset in (0..seg.len().min(64)).chain(odd) {
        if let Decoded::Record(t, next) = record::decode(&seg, offset) {
            assert_eq!(next, offset + HEADER_BYTES + t.payload.len());
        }
    }
}

/// Log recovery (`TxnLog::open`) over a directory of segments. Input:
/// flags (bit 0: repair checksums; bit 1: a durable mark follows), the
/// generation, the mark (u64, if flagged), then the directory. Recovery
/// reports damage at most once, returns a gap-free history that reads back
/// the same, and opening again recovers the same records without damage.
pub fn server_txn_log_open(data: &[u8]) {
    let mut input = Input::new(data);
    let flags = input.u8();
    let generation = u32::from(input.u8() % 4);
    let mark = (flags & 2 != 0).then(|| Zxid(input.u64()));
    let Some(fs) = directory(input.rest(), flags & 1 != 0) else {
        return;
    };
    let dir = Path::new(DIR);
    let mut damages = 0;
    let opened = TxnLog::open(fs.shared(), dir, generation, LOG, mark, &mut |_| {
        damages += 1;
        Ok(())
    });
    let Ok((log, recovered)) = opened else {
        return;
    };
    assert!(damages <= 1, "damage reported {damages} times");
    assert_eq!(recovered.damage.is_some(), damages == 1);
    for w in recovered.records.windows(2) {
        assert!(
            w[0].zxid.is_followed_by(w[1].zxid),
            "recovered history has a gap: {} then {}",
            w[0].zxid,
            w[1].zxid
        );
    }
    assert_eq!(
        log.last(),
        recovered.records.last().map_or(Zxid::ZERO, |t| t.zxid)
    );
    let range = log
        .read_range(Zxid::ZERO, Zxid(u64::MAX))
        .expect("a recovered log reads back");
    assert_eq!(range, recovered.records, "read_range differs from recovery");
    drop(log);
    let mut damages = 0;
    let (_, again) = TxnLog::open(fs.shared(), dir, generation, LOG, mark, &mut |_| {
        damages += 1;
        Ok(())
    })
    .expect("a recovered log opens again");
    assert_eq!(
        again.records, recovered.records,
        "recovery is not idempotent"
    );
    assert!(again.damage.is_none(), "damage again: {:?}", again.damage);
}

/// A whole data directory recovered by `Store::open` (snapshots, log,
/// epoch and standing files). Input: flags (bit 0: repair checksums), then
/// the directory. A recovered snapshot is restored into a replica and the
/// recovered state into a protocol node (errors allowed, panics not); what
/// recovered once recovers again, to the same history.
pub fn server_store_open(data: &[u8]) {
    let mut input = Input::new(data);
    let flags = input.u8();
    let Some(fs) = directory(input.rest(), flags & 1 != 0) else {
        return;
    };
    let dir = Path::new(DIR);
    // The update fills a test-only field that zab-server's `defects`
    // feature adds.
    #[allow(clippy::needless_update)]
    let cfg = StoreConfig {
        log: LOG,
        snapshots_kept: 2,
        ..StoreConfig::default()
    };
    let Ok((store, recovery)) = Store::open(fs.shared(), dir, cfg) else {
        return;
    };
    for w in recovery.replay.windows(2) {
        assert!(w[0].zxid.is_followed_by(w[1].zxid), "replay has a gap");
    }
    if let Some(s) = &recovery.snapshot {
        let _ = Replica::new().restore(&s.content);
    }
    let base = recovery.restored.history.base();
    if let Some(first) = recovery.replay.first() {
        assert!(
            base.is_followed_by(first.zxid),
            "replay does not follow the snapshot"
        );
    }
    let range = store
        .read_range(base, Zxid(u64::MAX))
        .expect("a recovered log reads back");
    assert_eq!(range, recovery.replay, "read_range differs from the replay");
    let membership = Membership::new([PeerId(1), PeerId(2), PeerId(3)], []);
    let _ = Node::new(
        Config::new(PeerId(1), membership),
        recovery.restored.clone(),
    );
    drop(store);
    let (_, again) = Store::open(fs.shared(), dir, cfg).expect("a recovered directory opens again");
    assert_eq!(again.replay, recovery.replay, "recovery is not idempotent");
    assert_eq!(
        again.restored.history.last(),
        recovery.restored.history.last()
    );
}

/// A snapshot file (`snapshot_file::read`). First byte: bit 0 repairs the
/// header (content length, content and header checksums); bit 1 names the
/// file after generation and zxid 1 instead of its header's. What reads is
/// canonical, and its content goes to a replica's restore.
pub fn server_snapshot_file(data: &[u8]) {
    let mut input = Input::new(data);
    let flags = input.u8();
    let mut file = input.rest().to_vec();
    if flags & 1 != 0 {
        dir::fix_snapshot(&mut file, true);
    }
    let header = |at: usize, n: usize| file.get(at..at + n).map(<[u8]>::to_vec);
    let (generation, zxid) = if flags & 2 != 0 {
        (1, Zxid(1))
    } else {
        (
            header(8, 4).map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]])),
            Zxid(header(12, 8).map_or(0, |b| {
                u64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
            })),
        )
    };
    let name = snapshot_file::file_name(generation, zxid);
    assert_eq!(snapshot_file::parse_name(&name), Some((generation, zxid)));
    let fs = MemFs::new();
    let path = Path::new(DIR).join(&name);
    fs.put(&path, &file);
    let listed = snapshot_file::list(&fs, Path::new(DIR)).expect("list");
    let meta = SnapshotMeta {
        generation,
        zxid,
        path,
    };
    assert_eq!(listed, vec![meta.clone()]);
    if let Ok(snap) = snapshot_file::read(&fs, &meta) {
        assert_eq!(
            snapshot_file::encode(generation, zxid, &snap.content),
            file,
            "snapshot file is not canonical"
        );
        let _ = Replica::new().restore(&snap.content);
    }
}

/// The small files and the file names. First byte: the low two bits pick
/// acceptedEpoch, currentEpoch, the standing file or a name; bit 2 repairs
/// checksums. An epoch that reads is written and read back; a standing that
/// reads is rewritten (into the other slot) and read back; a name that
/// parses is the name its fields format to.
pub fn server_meta_files(data: &[u8]) {
    let mut input = Input::new(data);
    let sel = input.u8();
    let mut content = input.rest().to_vec();
    let fix = sel & 4 != 0;
    let fs = MemFs::new();
    let dir = Path::new(DIR);
    match sel % 4 {
        which @ (0 | 1) => {
            let name = if which == 0 { ACCEPTED } else { CURRENT };
            if fix {
                dir::fix_epoch_line(&mut content);
            }
            fs.put(&dir.join(name), &content);
            if let Ok(Some(e)) = epoch_file::read(&fs, dir, name) {
                epoch_file::write(&fs, dir, name, e).expect("write");
                let back = epoch_file::read(&fs, dir, name).expect("read back");
                assert_eq!(back, Some(e), "epoch file round trip");
            }
        }
        2 => {
            if fix {
                dir::fix_standing(&mut content);
            }
            fs.put(&dir.join(STANDING), &content);
            if let Ok(standing_file::Read::Valid(s)) = standing_file::read(&fs, dir) {
                let shared = fs.shared();
                // A slot at the last sequence number is refused, not
                // wrapped (it was a panic, found here).
                if let Ok(f) = StandingFile::create(&shared, dir, s) {
                    assert_eq!(f.current(), s);
                    let back = standing_file::read(&fs, dir).expect("read back");
                    assert_eq!(back, standing_file::Read::Valid(s), "standing round trip");
                }
            }
        }
        _ => {
            let name = String::from_utf8_lossy(&content);
            if let Some((g, z)) = snapshot_file::parse_name(&name) {
                let again = snapshot_file::file_name(g, z);
                assert_eq!(snapshot_file::parse_name(&again), Some((g, z)));
            }
            if let Some((g, first)) = txn_log::parse_segment_name(&name) {
                let prev = txn_log::segment_chain(&name).unwrap_or(Zxid::ZERO);
                let again = txn_log::segment_name(g, first, prev);
                assert_eq!(txn_log::parse_segment_name(&again), Some((g, first)));
                assert_eq!(txn_log::segment_chain(&again), Some(prev));
            }
        }
    }
}
