//! The simulation suite: many seeds of mixed 3- and 5-node ensembles (with an
//! observer in a quarter of them), 120 simulated seconds of faults each, every
//! invariant checked at every step, then a liveness phase.
//!
//! `SIM_SEEDS` and `SIM_START` change the range (e.g. for a longer local run).

use zab_core::Defects;
use zab_tests::sim::replay_command;
use zab_tests::{defect, run_seed, run_seeds, DEFECTS};

const CHAOS_MS: u64 = 120_000;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn assert_all_pass(start: u64, seeds: u64, sizes: &[usize]) {
    let reports = run_seeds(start..start + seeds, sizes, CHAOS_MS, Defects::default());
    assert_eq!(reports.len() as u64, seeds);
    let failures: Vec<String> = reports
        .iter()
        .filter_map(|r| {
            r.violation.as_ref().map(|v| {
                format!(
                    "seed {}: {v}\n  replay: {}",
                    r.seed,
                    replay_command(r.seed, sizes, None, CHAOS_MS)
                )
            })
        })
        .collect();
    let commits: u64 = reports.iter().map(|r| r.commits).sum();
    let syncs: u64 = reports.iter().map(|r| r.syncs).sum();
    let crashes: u64 = reports.iter().map(|r| r.crashes).sum();
    let disk_faults: u64 = reports.iter().map(|r| r.disk_faults).sum();
    let sim_s: u64 = reports.iter().map(|r| r.sim_ms).sum::<u64>() / 1000;
    println!("seeds={seeds} sizes={sizes:?} sim_seconds={sim_s} commits={commits} syncs={syncs} crashes={crashes} disk_faults={disk_faults}");
    // A run that did nothing would pass every safety check vacuously.
    assert!(
        commits > seeds * 100,
        "workload too thin: {commits} commits"
    );
    assert!(syncs > seeds * 10, "too few syncs completed: {syncs}");
    assert!(
        disk_faults > seeds / 2,
        "too few disk faults injected: {disk_faults}"
    );
    assert!(reports.iter().all(|r| r.sim_ms >= CHAOS_MS));
    assert!(
        failures.is_empty(),
        "{} seeds failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn mixed_three_and_five_node_ensembles_hold_every_invariant() {
    let seeds = env_u64("SIM_SEEDS", 500);
    assert_all_pass(env_u64("SIM_START", 0), seeds, &[3, 5]);
}

#[test]
fn seven_node_and_even_sized_ensembles_hold_every_invariant() {
    assert_all_pass(1_000_000, 60, &[4, 6, 7]);
}

#[test]
fn a_seed_replays_bit_for_bit() {
    let a = run_seed(42, &[3, 5], 30_000, Defects::default());
    let b = run_seed(42, &[3, 5], 30_000, Defects::default());
    assert_eq!(format!("{a:?}"), format!("{b:?}"));
    assert!(a.commits > 0);
}

/// Each deliberately broken rule must be caught within 200 seeds; a switch no
/// seed catches means the simulator is too weak.
#[test]
fn every_defect_is_caught_within_200_seeds() {
    let mut lines = Vec::new();
    for name in DEFECTS {
        let defects = defect(name).expect("listed defects exist");
        let caught = (0..200u64).find_map(|seed| {
            let r = run_seed(seed, &[3, 5], CHAOS_MS, defects);
            r.violation.map(|v| (seed, v))
        });
        match caught {
            Some((seed, v)) => {
                lines.push(format!("{name}: caught at seed {seed} by {}", v.invariant))
            }
            None => panic!("defect {name} was not caught in 200 seeds"),
        }
    }
    println!("{}", lines.join("\n"));
}
