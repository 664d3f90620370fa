//! Storage benchmark (`cargo bench -p zab-server --bench storage`). Not a test:
//! it measures, it asserts nothing. Numbers are reported as ratios against a
//! baseline measured in the same run on the same disk, because this machine
//! is shared and noisy.
//!
//! 1. Appends of 128-byte records: one fdatasync per record (baseline) versus
//!    group commit with 1, 16 and 256 concurrent writers.
//! 2. Recovery: a snapshot standing for 1,000,000 znodes plus 100,000 log
//!    records, timed through `Store::open` (checksums verified) and a parse of
//!    the snapshot's entries.
//!
//! `ZAB_BENCH_DIR` chooses the directory (default: target/bench-data, on the
//! same disk as the repository); `ZAB_BENCH_SECS` the time per append case.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes};
use zab_core::{Epoch, PersistOp, Txn, Zxid};
use zab_server::storage::group_commit::GroupCommit;
use zab_server::storage::{RealFs, Store, StoreConfig};

fn fresh_dir(root: &Path, name: &str) -> PathBuf {
    let dir = root.join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("bench directory");
    dir
}

fn open(dir: &Path) -> Store {
    Store::open(RealFs::shared(), dir, StoreConfig::default())
        .expect("open store")
        .0
}

fn txn(counter: u64, payload: &Bytes) -> Txn {
    Txn {
        zxid: Zxid::new(Epoch(1), counter as u32),
        payload: payload.clone(),
    }
}

/// One fdatasync per record, one writer: the cost group commit removes.
fn per_record_sync(dir: &Path, secs: f64) -> f64 {
    let mut store = open(dir);
    let payload = Bytes::from(vec![7u8; 128]);
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed().as_secs_f64() < secs {
        n += 1;
        store
            .apply(&PersistOp::Append(txn(n, &payload)))
            .expect("append");
        store.sync().expect("fdatasync");
    }
    n as f64 / start.elapsed().as_secs_f64()
}

/// `writers` threads, each submitting a record and waiting until it is durable.
fn group_commit(dir: &Path, writers: usize, secs: f64) -> (f64, f64) {
    let gc = Arc::new(GroupCommit::start(open(dir), Box::new(|_| {})));
    let payload = Bytes::from(vec![7u8; 128]);
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let handles: Vec<_> = (0..writers)
        .map(|_| {
            let (gc, done, stop, payload) =
                (gc.clone(), done.clone(), stop.clone(), payload.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let seq = gc.submit_next(|seq| PersistOp::Append(txn(seq.0, &payload)));
                    gc.wait_durable(seq).expect("durable");
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs_f64(secs));
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        h.join().expect("writer thread");
    }
    let elapsed = start.elapsed().as_secs_f64();
    let records = done.load(Ordering::Relaxed) as f64;
    let batches = gc.batches() as f64;
    (records / elapsed, records / batches.max(1.0))
}

/// A synthetic snapshot body: `count` entries shaped like znodes (path, data,
/// the 11 stat fields), each length-prefixed.
fn synthetic_snapshot(count: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(count as usize * 110);
    for i in 0..count {
        let path = format!("/app/config/service-{:07}", i);
        out.put_u32(path.len() as u32);
        out.extend_from_slice(path.as_bytes());
        out.put_u32(32);
        out.extend_from_slice(&[0xab; 32]);
        for f in 0..11u64 {
            out.put_u64(i ^ f);
        }
    }
    out
}

/// Walks the entries, as deserializing the tree would (without building it).
fn parse_entries(mut data: &[u8]) -> u64 {
    use bytes::Buf;
    let mut n = 0;
    while data.remaining() >= 4 {
        let plen = data.get_u32() as usize;
        data.advance(plen);
        let dlen = data.get_u32() as usize;
        data.advance(dlen + 88);
        n += 1;
    }
    n
}

fn recovery(dir: &Path) -> (f64, u64, usize) {
    {
        let mut store = open(dir);
        for op in [
            PersistOp::AcceptedEpoch(Epoch(1)),
            PersistOp::CurrentEpoch(Epoch(1)),
        ] {
            store.apply(&op).expect("epoch");
        }
        let payload = Bytes::from(vec![3u8; 128]);
        // The snapshot covers 1.1 ..= 1.1000000; 100,000 records follow it.
        let base = 1_000_000u64;
        store
            .apply(&PersistOp::Append(txn(base, &payload)))
            .expect("append");
        store.sync().expect("sync");
        store
            .write_snapshot(
                Zxid::new(Epoch(1), base as u32),
                &synthetic_snapshot(1_000_000),
            )
            .expect("snapshot");
        for c in base + 1..=base + 100_000 {
            store
                .apply(&PersistOp::Append(txn(c, &payload)))
                .expect("append");
        }
        store.sync().expect("sync");
    }
    let start = Instant::now();
    let (_store, rec) =
        Store::open(RealFs::shared(), dir, StoreConfig::default()).expect("recover");
    let snapshot = rec.snapshot.expect("snapshot present");
    let entries = parse_entries(&snapshot.content);
    let secs = start.elapsed().as_secs_f64();
    (secs, entries, rec.replay.len())
}

fn main() {
    // `cargo bench` passes harness flags such as --bench; ignore them.
    let root = std::env::var_os("ZAB_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/bench-data"));
    let secs: f64 = std::env::var("ZAB_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3.0);
    println!(
        "storage benchmark in {} ({secs} s per append case)",
        root.display()
    );
    let baseline = per_record_sync(&fresh_dir(&root, "baseline"), secs);
    println!(
        "{:<34} {:>12.0} records/s   1.00x",
        "fdatasync per record (baseline)", baseline
    );
    for writers in [1, 16, 256] {
        let (rate, per_batch) =
            group_commit(&fresh_dir(&root, &format!("gc{writers}")), writers, secs);
        println!(
            "{:<34} {:>12.0} records/s {:>6.2}x   ({per_batch:.1} records per fdatasync)",
            format!("group commit, {writers} writers"),
            rate,
            rate / baseline
        );
    }
    let (secs, entries, replayed) = recovery(&fresh_dir(&root, "recovery"));
    println!(
        "recovery: snapshot of {entries} znode entries + {replayed} log records in {secs:.3} s \
         (Store::open with checksums + entry walk; building the tree is not included)"
    );
    let _ = std::fs::remove_dir_all(&root);
}
