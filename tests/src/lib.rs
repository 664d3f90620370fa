//! Test support for zab-core: a deterministic simulator and the invariants it
//! checks. The tests live in `tests/tests/`; the campaign runner is `src/bin/sim.rs`.

pub mod checkers;
pub mod invariants;
pub mod linearizability;
pub mod netns;
pub mod proxy;
pub mod sim;

use zab_core::Defects;

use sim::{Report, SimConfig, Simulation};

/// The deliberately broken rules the simulator must catch, by name.
pub const DEFECTS: &[&str] = &[
    "ack_newleader_before_durable",
    "commit_without_quorum",
    "vote_with_applied_zxid",
    "sync_without_quorum",
    "skip_trunc",
    "wiped_server_votes",
];

/// The defect switch called `name`, if there is one.
pub fn defect(name: &str) -> Option<Defects> {
    let mut d = Defects::default();
    match name {
        "ack_newleader_before_durable" => d.ack_newleader_before_durable = true,
        "commit_without_quorum" => d.commit_without_quorum = true,
        "vote_with_applied_zxid" => d.vote_with_applied_zxid = true,
        "sync_without_quorum" => d.sync_without_quorum = true,
        "skip_trunc" => d.skip_trunc = true,
        "wiped_server_votes" => d.wiped_server_votes = true,
        _ => return None,
    }
    Some(d)
}

/// Runs one seed with the given cluster sizes, chaos length and defect.
pub fn run_seed(seed: u64, sizes: &[usize], chaos_ms: u64, defects: Defects) -> Report {
    let mut cfg = SimConfig::from_seed(seed, sizes);
    cfg.trace = std::env::var_os("SIM_TRACE").is_some();
    // SIM_CLIENT_GAP_MS=N sets the largest gap between client operations
    // (a heavier load than the seed's own choice, for speed measurements).
    if let Some(max) = std::env::var("SIM_CLIENT_GAP_MS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        cfg.client_gap_ms = (1, max);
    }
    cfg.chaos_ms = chaos_ms;
    cfg.defects = defects;
    Simulation::new(cfg).run()
}

/// Runs `seeds` on all cores; returns the reports in seed order.
pub fn run_seeds(
    seeds: std::ops::Range<u64>,
    sizes: &[usize],
    chaos_ms: u64,
    defects: Defects,
) -> Vec<Report> {
    // SIM_THREADS pins the worker count (1 measures single-core speed).
    let workers = std::env::var("SIM_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n: &usize| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let next = std::sync::atomic::AtomicU64::new(seeds.start);
    let reports = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| loop {
                let seed = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if seed >= seeds.end {
                    break;
                }
                let report = run_seed(seed, sizes, chaos_ms, defects);
                reports
                    .lock()
                    .expect("no worker panics while holding the lock")
                    .push(report);
            });
        }
    });
    let mut reports = reports.into_inner().expect("workers finished");
    reports.sort_by_key(|r| r.seed);
    reports
}
