//! The `zab-server` binary.
//!
//! ```text
//! zab-server --config FILE [--id N] [--data-dir DIR]   serve
//! zab-server --config FILE --check-config              validate and exit
//! zab-server inspect DIR [--records]                   verify and dump a data directory
//! zab-server verify-backup FILE                        check a backup, print its digest
//! zab-server restore --from FILE --data-dir DIR        seed a new ensemble's server
//! zab-server --version
//! ```
//! Settings come from the file, then `ZAB_SERVER_*` environment variables,
//! then the flags (`zab_server::config::Config::load`).
//! Logs go to stderr through `tracing` (`RUST_LOG` filters, default `info`).
//! SIGTERM or Ctrl-C stops the server cleanly; a storage failure stops it
//! with exit code 1 and a message naming the file. A bad configuration or
//! usage exits with code 2.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use zab_server::config::{Config, Overrides};
use zab_server::run::{serve, Stop};

/// jemalloc, with its background thread returning freed memory to the
/// system: glibc's allocator kept every page of a large tree after the tree
/// was gone (measured with `cargo bench --bench tree`), and jemalloc builds
/// and changes it faster.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// A coordination server on the Zab protocol.
#[derive(Debug, Parser)]
#[command(name = "zab-server", version, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// The configuration file (TOML). Every setting in it can also be set
    /// by an environment variable ZAB_SERVER_<FIELD> (ZAB_SERVER_ID=2),
    /// which the flags below override in turn.
    #[arg(long, value_name = "FILE", env = "ZAB_SERVER_CONFIG")]
    config: Option<PathBuf>,
    /// This server's id (overrides the file and ZAB_SERVER_ID).
    #[arg(long, value_name = "N")]
    id: Option<u64>,
    /// The data directory (overrides the file and ZAB_SERVER_DATA_DIR).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Validate the configuration (and read the files it names), print a
    /// summary, and exit: 0 if it is good, 2 if not.
    #[arg(long)]
    check_config: bool,
    /// How log lines are written to standard error: `text` for people,
    /// `json` (one object per line) for log collectors. The level comes
    /// from RUST_LOG (default `info`).
    #[arg(long, value_enum, env = "ZAB_SERVER_LOG_FORMAT", default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Verify a data directory and print what it holds (read only).
    Inspect {
        dir: PathBuf,
        /// Print every log record.
        #[arg(long)]
        records: bool,
    },
    /// Check a backup (from the admin port's /snapshot) and print its zxid,
    /// node count and tree digest.
    VerifyBackup { file: PathBuf },
    /// Make a new, empty data directory hold a backup, for one server of a
    /// new ensemble (restore the same backup for every server). Prints the
    /// tree digest, which the restored servers' /digest must match.
    Restore {
        /// The backup file.
        #[arg(long, value_name = "FILE")]
        from: PathBuf,
        /// The data directory to create (it must not exist or be empty).
        #[arg(long, value_name = "DIR")]
        data_dir: PathBuf,
    },
}

fn main() -> ExitCode {
    if let Err(e) = tikv_jemalloc_ctl::background_thread::write(true) {
        eprintln!("warning: jemalloc's background thread did not start ({e}); freed memory returns to the system only as the server allocates");
    }
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Inspect { dir, records }) => inspect(&dir, records),
        Some(Command::VerifyBackup { file }) => match zab_server::backup::verify(&file) {
            Ok((summary, _)) => {
                println!("{}: intact; {summary}", file.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("zab-server verify-backup: {e}");
                ExitCode::FAILURE
            }
        },
        Some(Command::Restore { from, data_dir }) => {
            match zab_server::backup::restore(&from, &data_dir) {
                Ok(summary) => {
                    println!(
                        "restored {} into {}: {summary}",
                        from.display(),
                        data_dir.display()
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("zab-server restore: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        None => run(cli.serve),
    }
}

fn inspect(dir: &std::path::Path, records: bool) -> ExitCode {
    let mut out = std::io::stdout().lock();
    match zab_server::inspect::inspect(dir, records, &mut out) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("zab-server inspect: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Reads every file the configuration names, as starting would.
fn check_files(cfg: &Config) -> Result<(), String> {
    cfg.peer_secret().map_err(|e| e.to_string())?;
    for (name, tls) in [
        ("client_tls", &cfg.client_tls),
        ("admin_tls", &cfg.admin_tls),
    ] {
        if let Some(t) = tls {
            t.acceptor().map_err(|e| format!("{name}: {e}"))?;
        }
    }
    Ok(())
}

fn run(args: ServeArgs) -> ExitCode {
    let Some(path) = args.config else {
        eprintln!("zab-server: --config FILE is required (or ZAB_SERVER_CONFIG); see --help");
        return ExitCode::from(2);
    };
    let flags = Overrides {
        id: args.id,
        data_dir: args.data_dir,
    };
    let cfg = match Config::load(&path, &flags) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("zab-server: {}: {e}", path.display());
            return ExitCode::from(2);
        }
    };
    if args.check_config {
        if let Err(e) = check_files(&cfg) {
            eprintln!("zab-server: {}: {e}", path.display());
            return ExitCode::from(2);
        }
        let (peer, client, admin) = cfg.listen_addresses();
        let voters = cfg.servers.iter().filter(|m| !m.observer).count();
        println!(
            "configuration OK: server {} of {} ({voters} voting); listens for peers on {peer}, \
             clients on {client}, admin on {}; data in {}",
            cfg.id,
            cfg.servers.len(),
            admin.as_deref().unwrap_or("(none)"),
            cfg.data_dir.display()
        );
        return ExitCode::SUCCESS;
    }
    let filter = || {
        tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"))
    };
    match args.log_format {
        LogFormat::Text => tracing_subscriber::fmt()
            .with_env_filter(filter())
            .with_writer(std::io::stderr)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
        LogFormat::Json => tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter())
            .with_writer(std::io::stderr)
            .with_current_span(true)
            .init(),
    }
    // The whole server, driver included, runs as tasks on the runtime's
    // workers: one by default, so a request's hand-offs (connection →
    // driver → peers → driver → connection) are queue pushes on one
    // thread, not cross-thread wake-ups, which were most of a busy
    // server's CPU profile. Log syncs, snapshot writing, encoding and
    // checksumming stay on threads of their own, and a snapshot install or
    // a long log replay moves the worker's other tasks to a fresh thread
    // while it runs (`Driver::run`), so they do not stall the links.
    // ZAB_WORKER_THREADS sets more workers.
    let threads = std::env::var("ZAB_WORKER_THREADS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|n| *n > 0)
        .unwrap_or(1);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("zab-server: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Spawned, not run by `block_on`: on the main thread the driver would
    // be a thread apart from every task it talks to.
    let served = runtime.block_on(async {
        tokio::spawn(serve(cfg))
            .await
            .unwrap_or_else(|e| Err(format!("the server task failed: {e}")))
    });
    match served {
        Ok(Stop::Signal) => ExitCode::SUCCESS,
        Ok(Stop::Fatal(e)) | Err(e) => {
            eprintln!("zab-server: {e}");
            ExitCode::FAILURE
        }
    }
}
