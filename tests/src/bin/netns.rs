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

fn usage() -> ExitCode {
    eprintln!("usage: netns up --tag TAG --servers N [--rtt-ms MS] [--loss FRACTION]");
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) != Some("up") {
        return usage();
    }
    let (mut tag, mut servers, mut rtt_ms, mut loss) = (String::from("x"), 3usize, 0f64, 0f64);
    let mut it = args[1..].iter();
    while let Some(flag) = it.next() {
        let Some(value) = it.next() else {
            return usage();
        };
        let ok = match flag.as_str() {
            "--tag" => {
                tag = value.clone();
                true
            }
            "--servers" => value.parse().map(|v| servers = v).is_ok(),
            "--rtt-ms" => value
                .parse()
                .ok()
                .filter(|v: &f64| (0.0..=60_000.0).contains(v))
                .map(|v| rtt_ms = v)
                .is_some(),
            "--loss" => value
                .parse()
                .ok()
                .filter(|v: &f64| (0.0..=1.0).contains(v))
                .map(|v| loss = v)
                .is_some(),
            _ => false,
        };
        if !ok {
            return usage();
        }
    }
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
