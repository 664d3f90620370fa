//! The `zab-server` binary.
//!
//! ```text
//! zab-server --config FILE [--id N] [--data-dir DIR]   serve
//! zab-server inspect DIR [--records]                   verify and dump a data directory
//! ```
//! Logs go to stderr through `tracing` (`RUST_LOG` filters, default `info`).
//! SIGTERM or Ctrl-C stops the server cleanly; a storage failure stops it
//! with exit code 1 and a message naming the file.

use std::path::PathBuf;
use std::process::ExitCode;

use zab_server::config::Config;
use zab_server::run::{serve, Stop};

/// jemalloc, with its background thread returning freed memory to the
/// system: glibc's allocator kept every page of a large tree after the tree
/// was gone (measured with `cargo bench --bench tree`), and jemalloc builds
/// and changes it faster.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn usage() -> ExitCode {
    eprintln!("usage: zab-server --config FILE [--id N] [--data-dir DIR]\n       zab-server inspect DIR [--records]");
    ExitCode::from(2)
}

fn main() -> ExitCode {
    if let Err(e) = tikv_jemalloc_ctl::background_thread::write(true) {
        eprintln!("warning: jemalloc's background thread did not start ({e}); freed memory returns to the system only as the server allocates");
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("inspect") => inspect(&args[1..]),
        Some("--config") => run(&args),
        _ => usage(),
    }
}

fn inspect(args: &[String]) -> ExitCode {
    let Some(dir) = args.first() else {
        return usage();
    };
    let records = args.iter().skip(1).any(|a| a == "--records");
    let mut out = std::io::stdout().lock();
    match zab_server::inspect::inspect(&PathBuf::from(dir), records, &mut out) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("zab-server inspect: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &[String]) -> ExitCode {
    let mut config = None;
    let mut id = None;
    let mut data_dir = None;
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let value = it.next();
        match (flag.as_str(), value) {
            ("--config", Some(v)) => config = Some(PathBuf::from(v)),
            ("--id", Some(v)) => match v.parse() {
                Ok(n) => id = Some(n),
                Err(_) => {
                    eprintln!("zab-server: --id {v:?} is not a number");
                    return ExitCode::from(2);
                }
            },
            ("--data-dir", Some(v)) => data_dir = Some(PathBuf::from(v)),
            _ => return usage(),
        }
    }
    let Some(path) = config else { return usage() };
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("zab-server: cannot read {}: {e}", path.display());
            return ExitCode::from(2);
        }
    };
    let mut cfg = match Config::parse(&text) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("zab-server: {}: {e}", path.display());
            return ExitCode::from(2);
        }
    };
    cfg.resolve_paths(path.parent().unwrap_or(std::path::Path::new(".")));
    if let Some(id) = id {
        cfg.id = id;
    }
    if let Some(dir) = data_dir {
        cfg.data_dir = dir;
    }
    if let Err(e) = cfg.validate() {
        eprintln!("zab-server: {e}");
        return ExitCode::from(2);
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    // ZAB_WORKER_THREADS: the async runtime's threads (default: one per
    // core; 1 runs everything but fsync on one thread, which saves the
    // cross-thread wake-ups that dominate a small server's CPU profile).
    let threads = std::env::var("ZAB_WORKER_THREADS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|n| *n > 0);
    let mut builder = match threads {
        Some(1) => tokio::runtime::Builder::new_current_thread(),
        Some(n) => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(n);
            b
        }
        None => tokio::runtime::Builder::new_multi_thread(),
    };
    let runtime = match builder.enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("zab-server: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(cfg)) {
        Ok(Stop::Signal) => ExitCode::SUCCESS,
        Ok(Stop::Fatal(e)) | Err(e) => {
            eprintln!("zab-server: {e}");
            ExitCode::FAILURE
        }
    }
}
