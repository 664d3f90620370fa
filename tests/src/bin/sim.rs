//! Simulation campaign runner (see `scripts/sim.sh`).
//!
//! ```text
//! sim --seeds N [--start S] [--sizes 3,5] [--chaos-ms MS] [--defect NAME]
//! sim --seed S  [--sizes 3,5] [--chaos-ms MS] [--defect NAME]   # replay one seed
//! ```
//! Ends with one line: `seeds=N failures=F sim_seconds=… commits=… elections=… syncs=…`.
//! With `--defect`, it reports the first seed that catches the broken rule.

use std::process::ExitCode;
use std::time::Instant;

use zab_tests::sim::replay_command;
use zab_tests::{defect, run_seeds, DEFECTS};

/// The command line.
#[derive(Debug, clap::Parser)]
#[command(
    name = "sim",
    about = "Runs the deterministic simulator over a range of seeds."
)]
struct Args {
    /// The first seed.
    #[arg(long, default_value_t = 0)]
    start: u64,
    /// How many seeds, from --start.
    #[arg(long, default_value_t = 100)]
    seeds: u64,
    /// Replays one seed, verbosely (sets --start S --seeds 1 -v).
    #[arg(long, conflicts_with_all = ["start", "seeds"])]
    seed: Option<u64>,
    /// Cluster sizes, comma-separated, each 1..=9.
    #[arg(long, value_delimiter = ',', default_value = "3,5",
          value_parser = cluster_size)]
    sizes: Vec<usize>,
    /// Simulated milliseconds of faults per seed.
    #[arg(long, default_value_t = 120_000)]
    chaos_ms: u64,
    /// Runs with one deliberately broken rule; reports the first seed
    /// that catches it.
    #[arg(long, value_parser = known_defect)]
    defect: Option<String>,
    /// Prints every seed's report.
    #[arg(short, long)]
    verbose: bool,
}

fn cluster_size(s: &str) -> Result<usize, String> {
    match s.parse() {
        Ok(n) if (1..=9).contains(&n) => Ok(n),
        _ => Err("cluster sizes must be 1..=9".into()),
    }
}

fn known_defect(name: &str) -> Result<String, String> {
    match defect(name) {
        Some(_) => Ok(name.to_owned()),
        None => Err(format!(
            "unknown defect {name:?}; known: {}",
            DEFECTS.join(", ")
        )),
    }
}

/// The arguments, with --seed expanded.
fn parse() -> Args {
    let mut a = <Args as clap::Parser>::parse();
    if let Some(seed) = a.seed {
        (a.start, a.seeds, a.verbose) = (seed, 1, true);
    }
    a
}

fn main() -> ExitCode {
    let args = parse();
    let defects = args.defect.as_deref().and_then(defect).unwrap_or_default();
    let began = Instant::now();
    let reports = run_seeds(
        args.start..args.start + args.seeds,
        &args.sizes,
        args.chaos_ms,
        defects,
    );
    let wall = began.elapsed().as_secs_f64();
    let mut failures = 0;
    let (mut sim_ms, mut commits, mut elections, mut syncs) = (0u64, 0u64, 0u64, 0u64);
    let mut disk_faults = 0u64;
    for r in &reports {
        sim_ms += r.sim_ms;
        commits += r.commits;
        elections += r.elections;
        syncs += r.syncs;
        disk_faults += r.disk_faults;
        if args.verbose {
            println!("{r:?}");
        }
        if let Some(v) = &r.violation {
            failures += 1;
            if failures <= 10 {
                println!("seed {} FAILED: {v}", r.seed);
                println!(
                    "  replay: {}",
                    replay_command(r.seed, &args.sizes, args.defect.as_deref(), args.chaos_ms)
                );
            }
        }
    }
    let sim_seconds = sim_ms / 1000;
    println!(
        "# wall {wall:.1}s, {:.0} simulated s per wall s",
        sim_ms as f64 / 1000.0 / wall.max(1e-9)
    );
    if let Some(d) = &args.defect {
        let first = reports.iter().find(|r| r.violation.is_some());
        match first {
            Some(r) => println!(
                "defect={d} caught_at_seed={} seeds_needed={} invariant={}",
                r.seed,
                r.seed - args.start + 1,
                r.violation.as_ref().map_or("", |v| v.invariant)
            ),
            None => println!("defect={d} NOT CAUGHT in {} seeds", args.seeds),
        }
    }
    println!(
        "seeds={} failures={failures} sim_seconds={sim_seconds} commits={commits} elections={elections} syncs={syncs} disk_faults={disk_faults}",
        args.seeds
    );
    match (&args.defect, failures) {
        (None, 0) => ExitCode::SUCCESS,
        (Some(_), f) if f > 0 => ExitCode::SUCCESS,
        _ => ExitCode::FAILURE,
    }
}
