//! `zabctl`: a command-line client for the zab coordination service.
//!
//! ```text
//! zabctl [--servers HOST:PORT,...] [--json] COMMAND
//!   create [-e] [-s] [-c] [--ttl MS] PATH [DATA]
//!   get PATH            set [-v VERSION] PATH DATA      delete [-v VERSION] PATH
//!   ls [-R] PATH        stat PATH                        sync PATH
//!   watch PATH          (streams events under PATH until Ctrl-C)
//! ```
//! Servers come from `--servers`, else `ZAB_SERVERS`, else the ensemble that
//! `scripts/cluster.sh up` starts (127.0.0.1:2181-2183). Reads are
//! linearizable (sync, then read). Exit codes: 0 ok, 1 the server said no
//! (e.g. NoNode), 2 usage, 3 connection trouble.

use std::net::SocketAddr;
use std::process::ExitCode;

use zab_client::{Client, Consistency, CreateMode, Error, Stat};

struct Opts {
    servers: Vec<SocketAddr>,
    json: bool,
    args: Vec<String>,
}

fn parse() -> Result<Opts, String> {
    let mut servers = std::env::var("ZAB_SERVERS")
        .unwrap_or_else(|_| "127.0.0.1:2181,127.0.0.1:2182,127.0.0.1:2183".into());
    let mut json = false;
    let mut args = Vec::new();
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--servers" => servers = it.next().ok_or("--servers needs a list")?,
            "--json" => json = true,
            _ => args.push(a),
        }
    }
    let servers = servers
        .split(',')
        .map(|s| {
            s.trim()
                .parse()
                .map_err(|_| format!("bad server address {s:?}"))
        })
        .collect::<Result<Vec<SocketAddr>, String>>()?;
    Ok(Opts {
        servers,
        json,
        args,
    })
}

fn stat_json(s: &Stat) -> String {
    format!(
        "{{\"czxid\":{},\"mzxid\":{},\"pzxid\":{},\"ctime\":{},\"mtime\":{},\"version\":{},\"cversion\":{},\"aversion\":{},\"ephemeralOwner\":{},\"dataLength\":{},\"numChildren\":{}}}",
        s.czxid, s.mzxid, s.pzxid, s.ctime, s.mtime, s.version, s.cversion, s.aversion, s.ephemeral_owner, s.data_length, s.num_children
    )
}

fn stat_text(s: &Stat) -> String {
    format!(
        "czxid = {:#x}\nmzxid = {:#x}\npzxid = {:#x}\nctime = {}\nmtime = {}\nversion = {}\ncversion = {}\naversion = {}\nephemeralOwner = {:#x}\ndataLength = {}\nnumChildren = {}",
        s.czxid, s.mzxid, s.pzxid, s.ctime, s.mtime, s.version, s.cversion, s.aversion, s.ephemeral_owner, s.data_length, s.num_children
    )
}

fn quote(s: &str) -> String {
    format!("{s:?}")
}

async fn run(o: &Opts, c: &Client) -> Result<(), Error> {
    let a: Vec<&str> = o.args.iter().map(String::as_str).collect();
    let usage = || Error::Server(zab_client::ErrorCode::BadArguments);
    let version = |flags: &[&str]| -> i32 {
        flags
            .windows(2)
            .find(|w| w[0] == "-v")
            .and_then(|w| w[1].parse().ok())
            .unwrap_or(-1)
    };
    match a.as_slice() {
        ["create", rest @ ..] => {
            let (mut e, mut s, mut cont, mut ttl, mut pos) =
                (false, false, false, 0u64, Vec::new());
            let mut i = 0;
            while i < rest.len() {
                match rest[i] {
                    "-e" => e = true,
                    "-s" => s = true,
                    "-c" => cont = true,
                    "--ttl" => {
                        i += 1;
                        ttl = rest.get(i).and_then(|v| v.parse().ok()).ok_or_else(usage)?;
                    }
                    p => pos.push(p),
                }
                i += 1;
            }
            let path = pos.first().ok_or_else(usage)?;
            let data = pos.get(1).copied().unwrap_or("");
            let mode = match (e, s, cont, ttl > 0) {
                (true, true, _, _) => CreateMode::EphemeralSequential,
                (true, false, _, _) => CreateMode::Ephemeral,
                (_, _, true, _) => CreateMode::Container,
                (_, true, _, true) => CreateMode::PersistentSequentialWithTtl,
                (_, false, _, true) => CreateMode::PersistentWithTtl,
                (_, true, _, false) => CreateMode::PersistentSequential,
                _ => CreateMode::Persistent,
            };
            let created = c.create_ttl(path, data.as_bytes(), mode, ttl).await?;
            if o.json {
                println!("{{\"path\":{}}}", quote(&created))
            } else {
                println!("{created}")
            }
        }
        ["get", path] => {
            let (data, stat) = c.get(path, Consistency::Linearizable).await?;
            let text = String::from_utf8_lossy(&data);
            if o.json {
                println!(
                    "{{\"data\":{},\"stat\":{}}}",
                    quote(&text),
                    stat_json(&stat)
                )
            } else {
                println!("{text}")
            }
        }
        ["set", rest @ ..] if rest.len() >= 2 => {
            let n = rest.len();
            let stat = c
                .set(rest[n - 2], rest[n - 1].as_bytes(), version(rest))
                .await?;
            if o.json {
                println!("{}", stat_json(&stat))
            } else {
                println!("version = {}", stat.version)
            }
        }
        ["delete", rest @ ..] if !rest.is_empty() => {
            c.delete(rest[rest.len() - 1], version(rest)).await?
        }
        ["stat", path] => match c.exists(path, Consistency::Linearizable, false).await? {
            Some(s) => {
                if o.json {
                    println!("{}", stat_json(&s))
                } else {
                    println!("{}", stat_text(&s))
                }
            }
            None => return Err(Error::Server(zab_client::ErrorCode::NoNode)),
        },
        ["sync", path] => {
            let zxid = c.sync(path).await?;
            if o.json {
                println!("{{\"zxid\":{zxid}}}")
            } else {
                println!("synced at {zxid:#x}")
            }
        }
        ["ls", "-R", path] | ["ls", path, "-R"] => {
            let mut stack = vec![path.to_string()];
            c.sync(path).await?;
            while let Some(p) = stack.pop() {
                println!("{p}");
                let (mut kids, _) = c.children(&p, Consistency::Local, false).await?;
                kids.sort();
                for k in kids.into_iter().rev() {
                    stack.push(if p == "/" {
                        format!("/{k}")
                    } else {
                        format!("{p}/{k}")
                    });
                }
            }
        }
        ["ls", path] => {
            let (kids, _) = c.children(path, Consistency::Linearizable, false).await?;
            if o.json {
                println!(
                    "[{}]",
                    kids.iter().map(|k| quote(k)).collect::<Vec<_>>().join(",")
                );
            } else {
                for k in kids {
                    println!("{k}")
                }
            }
        }
        ["watch", path] => {
            c.add_watch(path, true).await?;
            while let Some(ev) = c.next_event().await {
                if o.json {
                    println!(
                        "{{\"event\":\"{:?}\",\"path\":{},\"zxid\":{}}}",
                        ev.kind,
                        quote(&ev.path),
                        ev.zxid
                    );
                } else {
                    println!("{:?} {} at {:#x}", ev.kind, ev.path, ev.zxid);
                }
            }
        }
        _ => return Err(usage()),
    }
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let opts = match parse() {
        Ok(o) if !o.args.is_empty() => o,
        Ok(_) => {
            eprintln!("usage: zabctl [--servers LIST] [--json] create|get|set|delete|ls|stat|sync|watch ...");
            return ExitCode::from(2);
        }
        Err(e) => {
            eprintln!("zabctl: {e}");
            return ExitCode::from(2);
        }
    };
    let client = match Client::connect(&opts.servers, 10_000).await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("zabctl: {e}");
            return ExitCode::from(3);
        }
    };
    let result = run(&opts, &client).await;
    let _ = client.close().await;
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Error::Server(zab_client::ErrorCode::BadArguments)) => {
            eprintln!("zabctl: bad arguments (see `zabctl` with no arguments for usage)");
            ExitCode::from(2)
        }
        Err(e @ Error::Server(_)) => {
            eprintln!("zabctl: {e}");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("zabctl: {e}");
            ExitCode::from(3)
        }
    }
}
