//! The `zab-server` binary.
//!
//! `zab-server inspect DIR [--records]` verifies and dumps a data directory.
//! Serving (the znode tree, sessions, transports) arrives with the server
//! issue; until then `zab-server` without a subcommand says so and exits 2.

use std::path::PathBuf;
use std::process::ExitCode;

fn usage() -> ExitCode {
    eprintln!("usage: zab-server inspect DIR [--records]");
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("inspect") => {
            let Some(dir) = args.get(1) else {
                return usage();
            };
            let records = args.iter().skip(2).any(|a| a == "--records");
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
        Some("-h" | "--help") => usage(),
        _ => {
            eprintln!(
                "zab-server {}: serving is not implemented yet (storage and the protocol core are); \
                 try `zab-server inspect DIR`",
                env!("CARGO_PKG_VERSION")
            );
            ExitCode::from(2)
        }
    }
}
