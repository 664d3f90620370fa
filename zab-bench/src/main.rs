//! `zab-bench`: a load generator that runs the same workloads against zab,
//! Apache ZooKeeper and etcd, through one small trait ([`store::Store`]).
//!
//! ```text
//! zab-bench --system zab|zk|etcd --servers HOST:PORT,... [options]
//!   --workload W[,W...]   write, write-latency, read-local, read-linearizable,
//!                         mixed, ephemeral, all; or failover or
//!                         first-read (alone)
//!   --sessions N[,N...]   sessions (one connection, one request in flight
//!                         each); default 1,16,64
//!   --read-servers LIST   where read and mixed sessions go (followers)
//!   --duration SECS       measured time per run (default 10); for failover
//!                         the longest the run may take (default 30)
//!   --warmup SECS         unmeasured time before it (default 2)
//!   --session-timeout-ms N  (default 10000)
//!   --op-timeout-ms N     per request (default 5000; failover 500)
//!   --spread-all          give each session every server (rotated), not one
//!   --table               also print a human table after the JSON lines
//!   --keys N              load: keys to create in all (default 1000000)
//!   --snapshot-log FILE   also split latencies by the snapshots logged
//!                         there during the run (`windows.rs`), and write
//!                         each second's ops and p99 to FILE.seconds
//!   --server-pids LIST    also report the servers' CPU time per operation
//!                         (`cpu.rs`)
//! ```
//!
//! Prints one JSON object per run on stdout. Sessions are placed
//! round-robin: session i uses server i mod n of its list (write and
//! ephemeral: `--servers`; reads and mixed: `--read-servers` if given).

use std::process::ExitCode;
use std::time::Duration;

mod cpu;
#[cfg(feature = "etcd")]
mod etcd;
mod failover;
mod recovery;
mod report;
mod store;
mod windows;
mod workload;
mod zab;
mod zk;

use store::Store;
use workload::{Plan, Workload};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum System {
    Zab,
    ZooKeeper,
    Etcd,
}

#[derive(Debug)]
struct Opts {
    system: System,
    servers: Vec<String>,
    read_servers: Vec<String>,
    workloads: Vec<Workload>,
    failover: bool,
    first_read: bool,
    sessions: Vec<usize>,
    duration: Option<Duration>,
    warmup: Duration,
    session_timeout: Duration,
    op_timeout: Option<Duration>,
    spread_all: bool,
    table: bool,
    keys: u64,
    snapshot_log: Option<std::path::PathBuf>,
    server_pids: Vec<u32>,
}

fn list(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|x| !x.is_empty())
        .map(String::from)
        .collect()
}

/// The command line, as clap reads it; [`Cli::opts`] checks and expands it.
#[derive(Debug, clap::Parser)]
#[command(
    name = "zab-bench",
    version,
    about = "Runs the same workloads against zab, Apache ZooKeeper and etcd; one JSON line per run."
)]
struct Cli {
    /// zab, zk (zookeeper) or etcd.
    #[arg(long, default_value = "zab", value_parser = system)]
    system: System,
    /// Client addresses, comma-separated; session i uses server i mod n.
    #[arg(long, default_value = "127.0.0.1:2181,127.0.0.1:2182,127.0.0.1:2183")]
    servers: String,
    /// Where read and mixed sessions go (followers), comma-separated.
    #[arg(long)]
    read_servers: Option<String>,
    /// write, write-latency, read-local, read-linearizable, mixed,
    /// ephemeral, all (comma-separated); or failover or first-read (alone).
    #[arg(long, default_value = "write")]
    workload: String,
    /// Session counts, comma-separated, each 1..=1024.
    #[arg(long, default_value = "1,16,64")]
    sessions: String,
    /// Measured seconds per run (default 10); for failover the longest the
    /// run may take (default 30).
    #[arg(long, value_parser = seconds)]
    duration: Option<Duration>,
    /// Unmeasured seconds before each run.
    #[arg(long, default_value = "2", value_parser = seconds)]
    warmup: Duration,
    #[arg(long, default_value_t = 10_000)]
    session_timeout_ms: u64,
    /// Per request (default 5000; failover 500).
    #[arg(long)]
    op_timeout_ms: Option<u64>,
    /// Give each session every server (rotated), not one.
    #[arg(long)]
    spread_all: bool,
    /// Also print a human table after the JSON lines.
    #[arg(long)]
    table: bool,
    /// Load: keys to create in all.
    #[arg(long, default_value_t = 1_000_000)]
    keys: u64,
    /// A file of `END_UNIX_MS DURATION_MS` lines, one per snapshot written
    /// during the run (scripts/bench.sh writes it): latencies are also
    /// reported split into seconds with and without a snapshot.
    #[arg(long)]
    snapshot_log: Option<std::path::PathBuf>,
    /// The servers' process ids, comma-separated: each run also reports
    /// their CPU time per operation (`server_cpu_ms_per_op`, read from
    /// /proc over the measured part).
    #[arg(long, default_value = "")]
    server_pids: String,
}

fn system(s: &str) -> Result<System, String> {
    match s {
        "zab" => Ok(System::Zab),
        "zk" | "zookeeper" => Ok(System::ZooKeeper),
        "etcd" => Ok(System::Etcd),
        other => Err(format!("unknown system {other:?} (zab, zk, etcd)")),
    }
}

fn seconds(s: &str) -> Result<Duration, String> {
    s.parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v >= 0.0)
        .map(Duration::from_secs_f64)
        .ok_or(format!("needs seconds, got {s:?}"))
}

impl Cli {
    fn opts(self) -> Result<Opts, String> {
        let mut workloads = Vec::new();
        let (mut failover, mut first_read) = (false, false);
        for w in list(&self.workload) {
            match w.as_str() {
                "all" => workloads.extend(Workload::ALL),
                "failover" => failover = true,
                "first-read" => first_read = true,
                name => workloads
                    .push(Workload::parse(name).ok_or(format!("unknown workload {name:?}"))?),
            }
        }
        let sessions = list(&self.sessions)
            .iter()
            .map(|s| s.parse::<usize>().ok().filter(|n| (1..=1024).contains(n)))
            .collect::<Option<Vec<usize>>>()
            .ok_or("--sessions needs counts in 1..=1024")?;
        let server_pids = list(&self.server_pids)
            .iter()
            .map(|p| p.parse::<u32>().ok())
            .collect::<Option<Vec<u32>>>()
            .ok_or("--server-pids needs process ids")?;
        let servers = list(&self.servers);
        if servers.is_empty() {
            return Err("--servers lists no server".into());
        }
        if failover && !workloads.is_empty() {
            return Err("failover runs alone: give --workload failover by itself".into());
        }
        if first_read && (failover || !workloads.is_empty()) {
            return Err("first-read runs alone: give --workload first-read by itself".into());
        }
        Ok(Opts {
            system: self.system,
            servers,
            read_servers: self.read_servers.as_deref().map(list).unwrap_or_default(),
            workloads,
            failover,
            first_read,
            sessions,
            duration: self.duration,
            warmup: self.warmup,
            session_timeout: Duration::from_millis(self.session_timeout_ms),
            op_timeout: self.op_timeout_ms.map(Duration::from_millis),
            spread_all: self.spread_all,
            table: self.table,
            keys: self.keys,
            snapshot_log: self.snapshot_log,
            server_pids,
        })
    }
}

/// `args` without the program name: the options, or a usage error.
fn parse(args: impl Iterator<Item = String>) -> Result<Opts, clap::Error> {
    use clap::{CommandFactory, Parser};
    let cli = Cli::try_parse_from(std::iter::once("zab-bench".to_string()).chain(args))?;
    cli.opts()
        .map_err(|why| Cli::command().error(clap::error::ErrorKind::ValueValidation, why))
}

fn main() -> ExitCode {
    let opts = match parse(std::env::args().skip(1)) {
        Ok(o) => o,
        // Help and version to stdout (exit 0), usage errors to stderr (2).
        Err(e) => e.exit(),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("zab-bench: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(async {
        match opts.system {
            System::Zab => drive::<zab::Zab>(&opts).await,
            System::ZooKeeper => drive::<zk::ZooKeeper>(&opts).await,
            #[cfg(feature = "etcd")]
            System::Etcd => drive::<etcd::Etcd>(&opts).await,
            #[cfg(not(feature = "etcd"))]
            System::Etcd => Err(store::StoreError(
                "this zab-bench was built without the etcd backend \
                 (cargo build --release -p zab-bench --features etcd)"
                    .to_string(),
            )),
        }
    });
    // Client tasks (reconnect loops, keep-alives) may still be parked.
    runtime.shutdown_timeout(Duration::from_secs(1));
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("zab-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs every (workload, sessions) pair of `opts`, or the failover timing.
async fn drive<S: Store>(opts: &Opts) -> Result<(), store::StoreError> {
    if opts.failover {
        let plan = failover::FailoverPlan {
            servers: opts.servers.clone(),
            session_timeout: opts.session_timeout,
            op_timeout: opts.op_timeout.unwrap_or(Duration::from_millis(500)),
            limit: opts.duration.unwrap_or(Duration::from_secs(30)),
        };
        println!("{}", failover::run::<S>(&plan).await?);
        return Ok(());
    }
    if opts.first_read {
        let plan = recovery::FirstReadPlan {
            servers: opts.servers.clone(),
            session_timeout: opts.session_timeout,
            op_timeout: opts.op_timeout.unwrap_or(Duration::from_secs(2)),
            limit: opts.duration.unwrap_or(Duration::from_secs(600)),
        };
        println!("{}", recovery::run::<S>(&plan).await?);
        return Ok(());
    }
    let mut results = Vec::new();
    for &workload in &opts.workloads {
        let mut counts: Vec<usize> = opts
            .sessions
            .iter()
            .map(|&n| workload.sessions(n))
            .collect();
        counts.dedup();
        for sessions in counts {
            let plan = Plan {
                workload,
                sessions,
                servers: opts.servers.clone(),
                read_servers: opts.read_servers.clone(),
                warmup: opts.warmup,
                duration: opts.duration.unwrap_or(Duration::from_secs(10)),
                session_timeout: opts.session_timeout,
                op_timeout: opts.op_timeout,
                all_servers_per_session: opts.spread_all,
                keys: opts.keys,
                snapshot_log: opts.snapshot_log.clone(),
                server_pids: opts.server_pids.clone(),
            };
            let result = workload::run::<S>(&plan).await?;
            println!("{}", result.json());
            results.push(result);
        }
    }
    if opts.table {
        print!("{}", report::table(&results));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> impl Iterator<Item = String> + '_ {
        s.split_whitespace().map(String::from)
    }

    #[test]
    fn write_latency_runs_once_with_one_session() {
        let o = parse(args("--workload write-latency --sessions 1,16,64")).expect("valid");
        let mut counts: Vec<usize> = o
            .sessions
            .iter()
            .map(|&n| o.workloads[0].sessions(n))
            .collect();
        counts.dedup();
        assert_eq!(counts, vec![1]);
    }

    #[test]
    fn failover_must_run_alone() {
        assert!(parse(args("--workload write,failover")).is_err());
        let o = parse(args("--system zk --workload failover")).expect("valid");
        assert!(o.failover && o.workloads.is_empty());
        assert_eq!(o.system, System::ZooKeeper);
        assert!(parse(args("--workload first-read,write")).is_err());
        assert!(
            parse(args("--workload first-read"))
                .expect("valid")
                .first_read
        );
    }

    #[test]
    fn all_expands_to_every_workload() {
        let o = parse(args("--workload all")).expect("valid");
        assert_eq!(o.workloads, Workload::ALL.to_vec());
    }
}
