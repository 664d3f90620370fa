//! Holds a multi-host net (`zab_tests::netns`) up for scripts: its hosts'
//! namespaces, hosts files and switch, until SIGTERM or SIGINT; then
//! removes them.
//!
//! ```text
//! netns up --tag TAG --servers N [--rtt-ms MS] [--loss FRACTION]
//! ```
//! Prints one line per host, `host NAME IP NAMESPACE` (the servers `zab1`..
//! then `client`), then `ready`. Run a server on host `zab2` with
//! `ip netns exec NAMESPACE ...`. Needs root.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use zab_tests::netns::{LinkRule, Net};

/// The command line.
#[derive(Debug, clap::Parser)]
#[command(
    name = "netns",
    about = "Holds a multi-host net up until SIGTERM or SIGINT."
)]
enum Cli {
    /// Creates the hosts and their switch, prints them, and waits.
    Up {
        /// Names this net's namespaces and devices.
        #[arg(long, default_value = "x")]
        tag: String,
        /// Server hosts (zab1..zabN); a client host is added.
        #[arg(long, default_value_t = 3)]
        servers: usize,
        /// Round-trip time between hosts, in milliseconds (0..=60000).
        #[arg(long, default_value_t = 0.0, value_parser = in_range(0.0, 60_000.0))]
        rtt_ms: f64,
        /// Fraction of packets lost on each link (0..=1).
        #[arg(long, default_value_t = 0.0, value_parser = in_range(0.0, 1.0))]
        loss: f64,
    },
}

fn in_range(low: f64, high: f64) -> impl Fn(&str) -> Result<f64, String> + Clone {
    move |s| match s.parse::<f64>() {
        Ok(v) if (low..=high).contains(&v) => Ok(v),
        _ => Err(format!("needs a number in {low}..={high}")),
    }
}

fn main() -> ExitCode {
    let Cli::Up {
        tag,
        servers,
        rtt_ms,
        loss,
    } = <Cli as clap::Parser>::parse();
    let net = match Net::create(&tag, servers, 0x6e65_7473) {
        Ok(n) => n,
        Err(e) => {
            eprintln!("netns: {e}");
            return ExitCode::FAILURE;
        }
    };
    net.set_baseline(LinkRule {
        delay: Duration::from_secs_f64(rtt_ms / 2_000.0),
        loss,
        cut: false,
    });
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("netns: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Listening before `ready` is printed: a script may stop it right after.
    let term = rt.block_on(async {
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
    });
    let Ok(mut term) = term else {
        eprintln!("netns: cannot watch SIGTERM");
        return ExitCode::FAILURE;
    };
    let mut out = std::io::stdout().lock();
    for i in 0..servers {
        let h = net.server(i);
        let _ = writeln!(out, "host {} {} {}", h.name, h.ip, h.ns);
    }
    let c = net.client();
    let _ = writeln!(out, "host {} {} {}", c.name, c.ip, c.ns);
    let _ = writeln!(out, "ready");
    let _ = out.flush();
    drop(out);
    rt.block_on(async {
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    });
    drop(net);
    ExitCode::SUCCESS
}
