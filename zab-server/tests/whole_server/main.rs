//! Whole-server simulation: full server cores and simulated clients in one
//! thread, faults on both sides, session expiry and client-visible
//! promises checked (see `sim.rs`).
//!
//! ```sh
//! cargo test --release -p zab-server --test whole_server -- --nocapture
//! ZAB_WHOLE_SIM_SEEDS=20000 ZAB_WHOLE_SIM_START=100000 \
//!     cargo test --release -p zab-server --test whole_server campaign -- --nocapture
//! ZAB_WHOLE_SIM_SEED=1234 cargo test -p zab-server --test whole_server campaign -- --nocapture
//! ```
//!
//! Also `ZAB_WHOLE_SIM_DEFECT=name` (a broken server rule),
//! `ZAB_WHOLE_SIM_TRACE=1` (client frames, server roles),
//! `ZAB_WHOLE_SIM_SERVERS=3|5` and `ZAB_WHOLE_SIM_THREADS=N` (measuring).

mod checks;
mod client;
mod histories;
mod sim;

use std::time::Instant;

use sim::{Broken, Report, SimConfig, Simulation};

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

fn run(seed: u64, defects: Broken) -> Report {
    let mut cfg = SimConfig::from_seed(seed, defects);
    // For measuring one size: ZAB_WHOLE_SIM_SERVERS=3 (or 5).
    if let Some(n) = env_u64("ZAB_WHOLE_SIM_SERVERS") {
        cfg.servers = n as usize;
    }
    Simulation::new(cfg).run()
}

/// Runs `seeds` on both cores; returns the reports in seed order.
fn run_all(seeds: Vec<u64>, defects: Broken) -> Vec<Report> {
    // For measuring one core: ZAB_WHOLE_SIM_THREADS=1.
    let threads = env_u64("ZAB_WHOLE_SIM_THREADS").map_or_else(
        || {
            std::thread::available_parallelism()
                .map_or(2, |n| n.get())
                .min(8)
        },
        |n| n.max(1) as usize,
    );
    let chunks: Vec<Vec<u64>> = (0..threads)
        .map(|t| seeds.iter().copied().skip(t).step_by(threads).collect())
        .collect();
    let handles: Vec<_> = chunks
        .into_iter()
        .map(|chunk| {
            std::thread::spawn(move || {
                chunk
                    .into_iter()
                    .map(|s| run(s, defects))
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut reports: Vec<Report> = handles
        .into_iter()
        .flat_map(|h| h.join().expect("a simulation thread"))
        .collect();
    reports.sort_by_key(|r| r.seed);
    reports
}

/// The CI-sized campaign (200 seeds), or a longer one or a replay by
/// environment: every run is clean.
#[test]
fn campaign() {
    if std::env::var_os("ZAB_WHOLE_SIM_TRACE").is_some() {
        // The servers' own log lines, interleaved with the trace.
        let _ = tracing_subscriber::fmt()
            .with_writer(std::io::stderr)
            .without_time()
            .try_init();
    }
    let seeds: Vec<u64> = match env_u64("ZAB_WHOLE_SIM_SEED") {
        Some(seed) => vec![seed],
        None => {
            let start = env_u64("ZAB_WHOLE_SIM_START").unwrap_or(1);
            let n = env_u64("ZAB_WHOLE_SIM_SEEDS").unwrap_or(200);
            (start..start + n).collect()
        }
    };
    let defects = match std::env::var("ZAB_WHOLE_SIM_DEFECT") {
        Ok(name) => Broken::named(&name).expect("a known defect"),
        Err(_) => Broken::default(),
    };
    let began = Instant::now();
    let reports = run_all(seeds, defects);
    let wall = began.elapsed().as_secs_f64();
    let sim_s: f64 = reports.iter().map(|r| r.sim_ms as f64 / 1000.0).sum();
    let mut faults = std::collections::BTreeMap::new();
    for r in &reports {
        for (k, v) in &r.faults {
            *faults.entry(*k).or_insert(0u64) += v;
        }
    }
    let failed: Vec<&Report> = reports.iter().filter(|r| r.violation.is_some()).collect();
    println!(
        "whole-server campaign: runs={} servers3={} servers5={} with_disk_faults={} sessions={} expiries={} \
         acked_writes={} register_ops={} watch_events={} sequential={} events={} sim_s={sim_s:.0} wall_s={wall:.1} sim_s_per_wall_s={:.0} failures={}",
        reports.len(),
        reports.iter().filter(|r| r.servers == 3).count(),
        reports.iter().filter(|r| r.servers == 5).count(),
        reports.iter().filter(|r| r.disk_faults).count(),
        reports.iter().map(|r| r.sessions).sum::<u64>(),
        reports.iter().map(|r| r.expiries).sum::<u64>(),
        reports.iter().map(|r| r.acked_writes).sum::<u64>(),
        reports.iter().map(|r| r.checked.register_ops).sum::<u64>(),
        reports.iter().map(|r| r.checked.watch_events).sum::<u64>(),
        reports.iter().map(|r| r.checked.sequential).sum::<u64>(),
        reports.iter().map(|r| r.events).sum::<u64>(),
        sim_s / wall,
        failed.len()
    );
    println!("faults: {faults:?}");
    for r in &failed {
        println!(
            "seed {} ({} servers) FAILED: {}\n  replay: ZAB_WHOLE_SIM_SEED={} [ZAB_WHOLE_SIM_DEFECT=name] cargo test -p zab-server --test whole_server campaign -- --nocapture",
            r.seed,
            r.servers,
            r.violation.as_deref().unwrap_or(""),
            r.seed
        );
    }
    assert!(
        failed.is_empty(),
        "{} of {} runs failed",
        failed.len(),
        reports.len()
    );
}

/// A seed replays exactly: same events, same outcome (the printed replay
/// command must reproduce a failure).
#[test]
fn a_seed_replays_exactly() {
    for seed in [3, 4] {
        let first = run(seed, Broken::default());
        assert_eq!(
            first,
            run(seed, Broken::default()),
            "seed {seed} did not replay"
        );
    }
}

/// Each deliberately broken server or client rule is caught within 200
/// seeds.
#[test]
fn every_defect_is_caught() {
    for name in Broken::names() {
        let defects = Broken::named(name).expect("a known defect");
        let mut caught = None;
        for batch in (1..=200u64).collect::<Vec<_>>().chunks(20) {
            let reports = run_all(batch.to_vec(), defects);
            if let Some(r) = reports.iter().find(|r| r.violation.is_some()) {
                caught = Some((r.seed, r.violation.clone().unwrap_or_default()));
                break;
            }
        }
        match caught {
            Some((seed, why)) => println!("defect {name}: caught by seed {seed}: {why}"),
            None => panic!("defect {name} was not caught by seeds 1..=200"),
        }
    }
}
