//! `zab-bench`: a load generator that runs the same workloads against zab,
//! Apache ZooKeeper and etcd, through one small trait ([`store::Store`]).
//!
//! ```text
//! zab-bench --system zab|zk|etcd --servers HOST:PORT,... [options]
//!   --workload W[,W...]   write, write-latency, read-local, read-linearizable,
//!                         mixed, ephemeral, all; or failover (alone)
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
//! ```
//!
//! Prints one JSON object per run on stdout. Sessions are placed
//! round-robin: session i uses server i mod n of its list (write and
//! ephemeral: `--servers`; reads and mixed: `--read-servers` if given).

use std::process::ExitCode;
use std::time::Duration;

#[cfg(feature = "etcd")]
mod etcd;
mod failover;
mod report;
mod store;
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
    sessions: Vec<usize>,
    duration: Option<Duration>,
    warmup: Duration,
    session_timeout: Duration,
    op_timeout: Option<Duration>,
    spread_all: bool,
    table: bool,
    keys: u64,
}

fn list(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|x| !x.is_empty())
        .map(String::from)
        .collect()
}

fn secs(s: &str, flag: &str) -> Result<Duration, String> {
    s.parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v >= 0.0)
        .map(Duration::from_secs_f64)
        .ok_or(format!("{flag} needs seconds, got {s:?}"))
}

fn millis(s: &str, flag: &str) -> Result<Duration, String> {
    s.parse::<u64>()
        .map(Duration::from_millis)
        .map_err(|_| format!("{flag} needs milliseconds, got {s:?}"))
}

fn parse(args: impl Iterator<Item = String>) -> Result<Opts, String> {
    let mut opts = Opts {
        system: System::Zab,
        servers: list("127.0.0.1:2181,127.0.0.1:2182,127.0.0.1:2183"),
        read_servers: Vec::new(),
        workloads: vec![Workload::Write],
        failover: false,
        sessions: vec![1, 16, 64],
        duration: None,
        warmup: Duration::from_secs(2),
        session_timeout: Duration::from_secs(10),
        op_timeout: None,
        spread_all: false,
        table: false,
        keys: 1_000_000,
    };
    let mut it = args;
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--system" => {
                opts.system = match value()?.as_str() {
                    "zab" => System::Zab,
                    "zk" | "zookeeper" => System::ZooKeeper,
                    "etcd" => System::Etcd,
                    other => return Err(format!("unknown system {other:?} (zab, zk, etcd)")),
                }
            }
            "--servers" => opts.servers = list(&value()?),
            "--read-servers" => opts.read_servers = list(&value()?),
            "--workload" => {
                opts.workloads.clear();
                for w in list(&value()?) {
                    match w.as_str() {
                        "all" => opts.workloads.extend(Workload::ALL),
                        "failover" => opts.failover = true,
                        name => opts.workloads.push(
                            Workload::parse(name).ok_or(format!("unknown workload {name:?}"))?,
                        ),
                    }
                }
            }
            "--sessions" => {
                opts.sessions = list(&value()?)
                    .iter()
                    .map(|s| s.parse::<usize>().ok().filter(|n| (1..=1024).contains(n)))
                    .collect::<Option<Vec<usize>>>()
                    .ok_or("--sessions needs counts in 1..=1024")?;
            }
            "--duration" => opts.duration = Some(secs(&value()?, "--duration")?),
            "--warmup" => opts.warmup = secs(&value()?, "--warmup")?,
            "--session-timeout-ms" => {
                opts.session_timeout = millis(&value()?, "--session-timeout-ms")?;
            }
            "--op-timeout-ms" => opts.op_timeout = Some(millis(&value()?, "--op-timeout-ms")?),
            "--spread-all" => opts.spread_all = true,
            "--table" => opts.table = true,
            "--keys" => {
                opts.keys = value()?
                    .parse()
                    .map_err(|_| "--keys needs a count".to_string())?;
            }
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if opts.servers.is_empty() {
        return Err("--servers lists no server".into());
    }
    if opts.failover && !opts.workloads.is_empty() {
        return Err("failover runs alone: give --workload failover by itself".into());
    }
    Ok(opts)
}

fn usage() -> &'static str {
    "usage: zab-bench --system zab|zk|etcd --servers HOST:PORT,... [--read-servers LIST]\n\
     \x20      [--workload write,write-latency,read-local,read-linearizable,mixed,ephemeral|all|failover]\n\
     \x20      [--sessions 1,16,64] [--duration SECS] [--warmup SECS] [--table]\n\
     \x20      [--session-timeout-ms N] [--op-timeout-ms N] [--spread-all]"
}

fn main() -> ExitCode {
    let opts = match parse(std::env::args().skip(1)) {
        Ok(o) => o,
        Err(why) => {
            if !why.is_empty() {
                eprintln!("zab-bench: {why}");
            }
            eprintln!("{}", usage());
            return ExitCode::from(2);
        }
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
    }

    #[test]
    fn all_expands_to_every_workload() {
        let o = parse(args("--workload all")).expect("valid");
        assert_eq!(o.workloads, Workload::ALL.to_vec());
    }
}
