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

struct Args {
    start: u64,
    seeds: u64,
    sizes: Vec<usize>,
    chaos_ms: u64,
    defect: Option<String>,
    verbose: bool,
}

fn parse() -> Result<Args, String> {
    let mut a = Args {
        start: 0,
        seeds: 100,
        sizes: vec![3, 5],
        chaos_ms: 120_000,
        defect: None,
        verbose: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--seeds" => a.seeds = value()?.parse().map_err(|e| format!("--seeds: {e}"))?,
            "--start" => a.start = value()?.parse().map_err(|e| format!("--start: {e}"))?,
            "--seed" => {
                a.start = value()?.parse().map_err(|e| format!("--seed: {e}"))?;
                a.seeds = 1;
                a.verbose = true;
            }
            "--sizes" => {
                a.sizes = value()?
                    .split(',')
                    .map(|s| s.parse().map_err(|e| format!("--sizes: {e}")))
                    .collect::<Result<_, _>>()?;
                if a.sizes.iter().any(|&n| !(1..=9).contains(&n)) {
                    return Err("--sizes: cluster sizes must be 1..=9".into());
                }
            }
            "--chaos-ms" => {
                a.chaos_ms = value()?.parse().map_err(|e| format!("--chaos-ms: {e}"))?
            }
            "--defect" => {
                let d = value()?;
                if defect(&d).is_none() {
                    return Err(format!(
                        "unknown defect {d:?}; known: {}",
                        DEFECTS.join(", ")
                    ));
                }
                a.defect = Some(d);
            }
            "-v" | "--verbose" => a.verbose = true,
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(a)
}

fn main() -> ExitCode {
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("sim: {e}");
            return ExitCode::from(2);
        }
    };
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
