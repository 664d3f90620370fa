//! The replicated tree at scale (`cargo bench -p zab-server --bench tree`):
//! `ZAB_BENCH_ZNODES` znodes of 128 B (default 1,000,000) under 1,000
//! parents, built through the real command path. Reports the build rate,
//! memory per znode (RSS growth), lookups/s, and what a snapshot costs the
//! driver: the stall is `freeze()` (the point-in-time view) plus the extra
//! copying that changes pay while a view is alive, set against encoding the
//! whole snapshot, which the shell does on another thread; and how much
//! memory comes back once every znode is deleted. It runs on the server
//! binary's allocator (jemalloc with its background thread).

use std::time::Instant;

use bytes::Bytes;
use zab_core::{Epoch, Zxid};
use zab_proto::{CreateMode, CreateRequest, Request, SetDataRequest, PASSWORD_BYTES};
use zab_server::replica::{Command, CommandBody, Replica};
use zab_server::server::Application;

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn command(xid: i32, body: CommandBody) -> Bytes {
    Command {
        origin: 1,
        session: 7,
        xid,
        request: 0,
        time_ms: 1_700_000_000_000,
        body,
    }
    .encode()
}

fn create(path: String, data: &Bytes) -> Bytes {
    command(
        1,
        CommandBody::Op(Request::Create(CreateRequest {
            path,
            data: data.clone(),
            mode: CreateMode::Persistent,
            ttl_ms: 0,
            acl: None,
        })),
    )
}

fn set(path: String, data: &Bytes) -> Bytes {
    command(
        1,
        CommandBody::Op(Request::SetData(SetDataRequest {
            path,
            data: data.clone(),
            version: -1,
        })),
    )
}

fn main() {
    let znodes: u32 = std::env::var("ZAB_BENCH_ZNODES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    tikv_jemalloc_ctl::background_thread::write(true).expect("jemalloc background thread");
    let parents = 1_000u32;
    let data = Bytes::from(vec![b'x'; 128]);
    let mut r = Replica::new();
    let mut counter = 0u32;
    let mut next = || {
        counter += 1;
        Zxid::new(Epoch(1), counter)
    };
    let session = CommandBody::CreateSession {
        timeout_ms: 10_000,
        password: [1; PASSWORD_BYTES],
    };
    r.apply(next(), &command(0, session)).expect("session");
    let rss_before = rss_bytes();
    let started = Instant::now();
    for p in 0..parents {
        r.apply(next(), &create(format!("/p{p}"), &Bytes::new()))
            .expect("parent");
    }
    for k in 0..znodes {
        let path = format!("/p{}/n{k}", k % parents);
        r.apply(next(), &create(path, &data)).expect("create");
        r.completed.clear();
    }
    let build = started.elapsed().as_secs_f64();
    let rss = rss_bytes().saturating_sub(rss_before);
    println!(
        "{znodes} znodes of 128 B: built at {:.0} creates/s; RSS +{} MiB, {:.0} B per znode",
        f64::from(znodes) / build,
        rss >> 20,
        rss as f64 / f64::from(znodes)
    );

    let lookups = 1_000_000u32;
    let started = Instant::now();
    let mut found = 0usize;
    for k in 0..lookups {
        let k = k.wrapping_mul(2_654_435_761) % znodes;
        found += usize::from(r.tree.get(&format!("/p{}/n{k}", k % parents)).is_some());
    }
    let secs = started.elapsed().as_secs_f64();
    assert_eq!(found, lookups as usize);
    println!("lookups: {:.0}/s", f64::from(lookups) / secs);

    // A snapshot: the driver's stall is freeze(); encoding runs elsewhere.
    let started = Instant::now();
    let frozen = r.freeze();
    let freeze_s = started.elapsed().as_secs_f64();
    // 100,000 changes while the view is alive pay for copy-on-write...
    let changes = 100_000u32;
    let mut set_many = |r: &mut Replica| {
        let started = Instant::now();
        for k in 0..changes {
            let k = k.wrapping_mul(2_654_435_761) % znodes;
            r.apply(next(), &set(format!("/p{}/n{k}", k % parents), &data))
                .expect("set");
            r.completed.clear();
        }
        started.elapsed().as_secs_f64()
    };
    let shared_s = set_many(&mut r);
    let started = Instant::now();
    let bytes = frozen.encode();
    let encode_s = started.elapsed().as_secs_f64();
    drop(frozen);
    // ...and the same changes again without one, as the baseline.
    let alone_s = set_many(&mut r);
    println!(
        "snapshot of {} MB: encode {:.3} s (off the driver; the stall before this change), \
         freeze {:.6} s on the driver = {:.5}x of it",
        bytes.len() >> 20,
        encode_s,
        freeze_s,
        freeze_s / encode_s
    );
    println!(
        "{changes} setData while a frozen view is alive: {:.3} s vs {:.3} s without = {:.2}x \
         (copy-on-write)",
        shared_s,
        alone_s,
        shared_s / alone_s
    );
    let started = Instant::now();
    let encoded_again = r.snapshot();
    println!(
        "encode after the view is gone: {:.3} s ({} MB)",
        started.elapsed().as_secs_f64(),
        encoded_again.len() >> 20
    );
    // What a restart pays before it can take part: the snapshot decoded
    // into a tree.
    let started = Instant::now();
    let mut restored = Replica::new();
    restored.restore(&encoded_again).expect("restore");
    println!(
        "restore from the snapshot: {:.3} s ({} znodes)",
        started.elapsed().as_secs_f64(),
        restored.tree.node_count()
    );
    drop((encoded_again, restored));

    // Memory comes back once the nodes are gone (as after an ephemeral-heavy
    // run whose sessions closed).
    let full = rss_bytes();
    for k in 0..znodes {
        let path = format!("/p{}/n{k}", k % parents);
        let delete = CommandBody::Op(Request::Delete(zab_proto::DeleteRequest {
            path,
            version: -1,
        }));
        r.apply(next(), &command(1, delete)).expect("delete");
        r.completed.clear();
    }
    // jemalloc's background thread returns freed pages over its decay time
    // (10 s by default).
    std::thread::sleep(std::time::Duration::from_secs(15));
    let after = rss_bytes();
    println!(
        "after deleting every znode: RSS {} MiB of {} MiB at full size ({} MiB before the tree)",
        after >> 20,
        full >> 20,
        rss_before >> 20
    );

    // One parent with every znode as its child: the first create under it
    // after a freeze copies the parent, which must not mean copying the
    // names of all its children.
    r.apply(next(), &create("/wide".into(), &Bytes::new()))
        .expect("parent");
    for k in 0..znodes {
        r.apply(next(), &create(format!("/wide/n{k:09}"), &data))
            .expect("create");
        r.completed.clear();
    }
    let mut first_create = |r: &mut Replica, name: &str| {
        let started = Instant::now();
        r.apply(next(), &create(format!("/wide/{name}"), &data))
            .expect("create");
        r.completed.clear();
        started.elapsed().as_secs_f64()
    };
    let frozen = r.freeze();
    let under_view_s = first_create(&mut r, "after-freeze");
    drop(frozen);
    let alone_s = first_create(&mut r, "no-view");
    println!(
        "first create under a parent of {znodes} children while a view is alive: {:.1} us \
         vs {:.1} us without = {:.0}x",
        under_view_s * 1e6,
        alone_s * 1e6,
        under_view_s / alone_s
    );
}
