//! `zabctl`: a command-line client for the zab coordination service.
//!
//! ```text
//! zabctl [--servers HOST:PORT,...] [--auth digest:USER:PASSWORD]
//!        [--tls-ca FILE [--tls-cert FILE --tls-key FILE]] [--json] COMMAND
//!   create [-e] [-s] [-c] [--ttl MS] [--acl ACL] PATH [DATA]
//!   getacl PATH         setacl [-v AVERSION] PATH ACL
//!   digest USER:PASSWORD  (offline: the digest id for ACLs and super_digest)
//!   get PATH            set [-v VERSION] PATH DATA      delete [-v VERSION] PATH
//!   ls [-R] PATH        stat PATH                        sync PATH
//!   watch PATH          (streams events under PATH until Ctrl-C)
//!   multi FILE          all-or-nothing; FILE has one op per line:
//!                       create PATH DATA | set PATH DATA [VERSION] |
//!                       delete PATH [VERSION] | check PATH VERSION
//!   cluster status      each server's /status (admin ports from ZAB_ADMIN,
//!                       default 127.0.0.1:8081-8083))
//!   backup FILE         an online backup from the first admin port of
//!                       ZAB_ADMIN (plain HTTP), written to FILE
//!   --version
//! ```
//! ACLs are written as ZooKeeper's zkCli.sh writes them, comma-separated:
//! `world:anyone:r,digest:bob:HASH:cdrwa,ip:10.0.0.0/8:rw,auth::cdrwa`.
//! `--auth` (repeatable; also `ZAB_AUTH`, `;`-separated) proves identities
//! on the session before the command runs. `--tls-ca` (also `ZAB_TLS_CA`)
//! connects over TLS trusting that CA; `--tls-cert`/`--tls-key` (also
//! `ZAB_TLS_CERT`, `ZAB_TLS_KEY`) present a client certificate, the
//! session's `x509` identity.
//! Servers come from `--servers`, else `ZAB_SERVERS`, else the ensemble that
//! `scripts/cluster.sh up` starts (127.0.0.1:2181-2183). Reads are
//! linearizable (sync, then read). Exit codes: 0 ok, 1 the server said no
//! (e.g. NoNode), 2 usage, 3 connection trouble.

use std::process::ExitCode;

use zab_client::{Acl, Client, Consistency, CreateMode, Error, Stat};

struct Opts {
    /// `host:port`, names allowed (resolved at each connection attempt).
    servers: Vec<String>,
    json: bool,
    /// `(scheme, credentials)` for AddAuth.
    auth: Vec<(String, String)>,
    /// CA, then client certificate and key files, for TLS.
    tls: (Option<String>, Option<String>, Option<String>),
    args: Vec<String>,
}

fn parse() -> Result<Opts, String> {
    let mut servers = std::env::var("ZAB_SERVERS")
        .unwrap_or_else(|_| "127.0.0.1:2181,127.0.0.1:2182,127.0.0.1:2183".into());
    let mut json = false;
    let mut args = Vec::new();
    let mut auth_specs: Vec<String> = std::env::var("ZAB_AUTH")
        .map(|v| v.split(';').map(String::from).collect())
        .unwrap_or_default();
    let env = |name: &str| std::env::var(name).ok();
    let mut tls = (env("ZAB_TLS_CA"), env("ZAB_TLS_CERT"), env("ZAB_TLS_KEY"));
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--servers" => servers = it.next().ok_or("--servers needs a list")?,
            "--tls-ca" => tls.0 = Some(it.next().ok_or("--tls-ca needs a file")?),
            "--tls-cert" => tls.1 = Some(it.next().ok_or("--tls-cert needs a file")?),
            "--tls-key" => tls.2 = Some(it.next().ok_or("--tls-key needs a file")?),
            "--auth" => auth_specs.push(it.next().ok_or("--auth needs scheme:credentials")?),
            "--json" => json = true,
            _ => args.push(a),
        }
    }
    let auth = auth_specs
        .iter()
        .filter(|s| !s.is_empty())
        .map(|s| match s.split_once(':') {
            Some((scheme, cred)) if !scheme.is_empty() => {
                Ok((scheme.to_string(), cred.to_string()))
            }
            _ => Err(format!(
                "bad --auth {s:?} (want scheme:credentials, e.g. digest:bob:pw)"
            )),
        })
        .collect::<Result<Vec<_>, String>>()?;
    let servers = servers
        .split(',')
        .map(|s| {
            let s = s.trim();
            match s.rsplit_once(':') {
                Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {
                    Ok(s.to_string())
                }
                _ => Err(format!("bad server address {s:?} (want host:port)")),
            }
        })
        .collect::<Result<Vec<String>, String>>()?;
    Ok(Opts {
        servers,
        json,
        auth,
        tls,
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
            let mut acl = None;
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
                    "--acl" => {
                        i += 1;
                        let text = rest.get(i).ok_or_else(usage)?;
                        acl = Some(Acl::parse_list(text).ok_or_else(usage)?);
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
            let created = match acl {
                Some(acl) if ttl == 0 => {
                    c.create_with_acl(path, data.as_bytes(), mode, acl).await?
                }
                Some(_) => return Err(usage()),
                None => c.create_ttl(path, data.as_bytes(), mode, ttl).await?,
            };
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
        ["getacl", path] => {
            c.sync(path).await?;
            let (acl, stat) = c.get_acl(path).await?;
            if o.json {
                let entries: Vec<String> = acl
                    .iter()
                    .map(|a| {
                        format!(
                            "{{\"scheme\":{},\"id\":{},\"perms\":{}}}",
                            quote(&a.scheme),
                            quote(&a.id),
                            quote(&a.perms.letters())
                        )
                    })
                    .collect();
                println!(
                    "{{\"acl\":[{}],\"aversion\":{}}}",
                    entries.join(","),
                    stat.aversion
                );
            } else {
                for a in acl {
                    println!("{a}");
                }
            }
        }
        ["setacl", rest @ ..] if rest.len() >= 2 => {
            let n = rest.len();
            let acl = Acl::parse_list(rest[n - 1]).ok_or_else(usage)?;
            let stat = c.set_acl(rest[n - 2], acl, version(rest)).await?;
            if o.json {
                println!("{}", stat_json(&stat))
            } else {
                println!("aversion = {}", stat.aversion)
            }
        }
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
                // Paged: a node with more children than one reply holds
                // is listed whole (names come sorted).
                let kids = c.all_children(&p, Consistency::Local).await?;
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
            let kids = c.all_children(path, Consistency::Linearizable).await?;
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
            let mut events = c.add_watch(path, true).await?;
            while let Some(ev) = events.next().await {
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
        ["multi", file] => {
            let text = std::fs::read_to_string(file).map_err(|_| usage())?;
            let ops = parse_multi(&text).ok_or_else(usage)?;
            for r in c.multi(ops).await? {
                match r {
                    zab_client::MultiResult::Create(cr) => println!("created {}", cr.path),
                    zab_client::MultiResult::SetData(st) => {
                        println!("set, version = {}", st.version)
                    }
                    zab_client::MultiResult::Delete => println!("deleted"),
                    zab_client::MultiResult::Check => println!("checked"),
                }
            }
        }
        _ => return Err(usage()),
    }
    Ok(())
}

/// One op per non-empty line: `create PATH DATA`, `set PATH DATA [VERSION]`,
/// `delete PATH [VERSION]`, `check PATH VERSION`.
fn parse_multi(text: &str) -> Option<Vec<zab_client::MultiOp>> {
    use zab_client::{CheckRequest, CreateRequest, DeleteRequest, MultiOp, SetDataRequest};
    let data = |s: &str| bytes::Bytes::copy_from_slice(s.as_bytes());
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|line| {
            let w: Vec<&str> = line.split_whitespace().collect();
            Some(match w.as_slice() {
                ["create", path, rest @ ..] => MultiOp::Create(CreateRequest {
                    path: path.to_string(),
                    data: data(rest.first().copied().unwrap_or("")),
                    mode: CreateMode::Persistent,
                    ttl_ms: 0,
                    acl: None,
                }),
                ["set", path, value, rest @ ..] => MultiOp::SetData(SetDataRequest {
                    path: path.to_string(),
                    data: data(value),
                    version: rest.first().map_or(Some(-1), |v| v.parse().ok())?,
                }),
                ["delete", path, rest @ ..] => MultiOp::Delete(DeleteRequest {
                    path: path.to_string(),
                    version: rest.first().map_or(Some(-1), |v| v.parse().ok())?,
                }),
                ["check", path, version] => MultiOp::Check(CheckRequest {
                    path: path.to_string(),
                    version: version.parse().ok()?,
                }),
                _ => return None,
            })
        })
        .collect()
}

/// The TLS settings the flags name, if any.
fn tls_config(
    (ca, cert, key): &(Option<String>, Option<String>, Option<String>),
) -> Result<Option<zab_client::Tls>, String> {
    use std::path::Path;
    let identity = match (cert, key) {
        (Some(c), Some(k)) => Some((Path::new(c), Path::new(k))),
        (None, None) => None,
        _ => return Err("--tls-cert and --tls-key go together".into()),
    };
    match ca {
        Some(ca) => zab_client::Tls::from_files(Path::new(ca), identity).map(Some),
        None if identity.is_some() => Err("--tls-cert needs --tls-ca".into()),
        None => Ok(None),
    }
}

/// The admin ports, from ZAB_ADMIN.
fn admins() -> Vec<String> {
    std::env::var("ZAB_ADMIN")
        .unwrap_or_else(|_| "127.0.0.1:8081,127.0.0.1:8082,127.0.0.1:8083".into())
        .split(',')
        .map(|a| a.trim().to_string())
        .collect()
}

/// `GET path` on an admin port: the status line's code, the head and the body.
async fn admin_get(addr: &str, path: &str) -> Option<(u16, String, Vec<u8>)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
    s.write_all(format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes())
        .await
        .ok()?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.ok()?;
    let split = out.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&out[..split]).into_owned();
    let code = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((code, head, out[split + 4..].to_vec()))
}

/// `zabctl backup FILE`: an online backup from the first admin port,
/// written to FILE whole or not at all.
async fn backup(file: &str) -> ExitCode {
    let admin = &admins()[0];
    let Some((code, head, body)) = admin_get(admin, "/snapshot").await else {
        eprintln!("zabctl: no answer from the admin port {admin}");
        return ExitCode::from(3);
    };
    if code != 200 {
        eprintln!(
            "zabctl: {admin} refused the backup: {}",
            String::from_utf8_lossy(&body).trim()
        );
        return ExitCode::from(1);
    }
    let zxid = head
        .lines()
        .find_map(|l| l.strip_prefix("X-Zab-Zxid: "))
        .unwrap_or("unknown");
    let partial = format!("{file}.partial");
    let written = std::fs::write(&partial, &body).and_then(|()| std::fs::rename(&partial, file));
    match written {
        Ok(()) => {
            println!(
                "backup at zxid {zxid} ({} bytes) written to {file}",
                body.len()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("zabctl: cannot write {file}: {e}");
            ExitCode::from(1)
        }
    }
}

/// `zabctl cluster status`: every server's admin /status, without a session.
async fn cluster_status(json: bool) -> ExitCode {
    let mut all_ok = true;
    for addr in admins() {
        let addr = addr.as_str();
        let answer = async {
            let (_, _, body) = admin_get(addr, "/status").await?;
            Some(String::from_utf8_lossy(&body).trim().to_string())
        };
        match tokio::time::timeout(std::time::Duration::from_secs(2), answer).await {
            Ok(Some(body)) if json => println!("{body}"),
            Ok(Some(body)) => println!("{addr}: {body}"),
            _ => {
                all_ok = false;
                if json {
                    println!("{{\"admin\":{},\"error\":\"unreachable\"}}", quote(addr));
                } else {
                    println!("{addr}: unreachable");
                }
            }
        }
    }
    if all_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(3)
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    if std::env::args().nth(1).as_deref() == Some("--version") {
        println!("zabctl {}", env!("CARGO_PKG_VERSION"));
        return ExitCode::SUCCESS;
    }
    let opts = match parse() {
        Ok(o) if !o.args.is_empty() => o,
        Ok(_) => {
            eprintln!("usage: zabctl [--servers LIST] [--auth digest:USER:PW] [--json] create|get|set|delete|ls|stat|sync|watch|getacl|setacl|digest ...");
            return ExitCode::from(2);
        }
        Err(e) => {
            eprintln!("zabctl: {e}");
            return ExitCode::from(2);
        }
    };
    if opts.args.len() == 2 && opts.args[0] == "cluster" && opts.args[1] == "status" {
        return cluster_status(opts.json).await;
    }
    if let [cmd, file] = opts.args.as_slice() {
        if cmd == "backup" {
            return backup(file).await;
        }
    }
    if let [cmd, credentials] = opts.args.as_slice() {
        if cmd == "digest" {
            return match credentials.split_once(':') {
                Some((user, password)) if !user.is_empty() => {
                    println!("{}", zab_client::digest_id(user, password));
                    ExitCode::SUCCESS
                }
                _ => {
                    eprintln!("zabctl: digest wants USER:PASSWORD");
                    ExitCode::from(2)
                }
            };
        }
    }
    let mut builder = Client::builder(&opts.servers);
    match tls_config(&opts.tls) {
        Ok(Some(tls)) => builder = builder.tls(tls),
        Ok(None) => {}
        Err(e) => {
            eprintln!("zabctl: {e}");
            return ExitCode::from(2);
        }
    }
    let client = match builder.connect().await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("zabctl: {e}");
            return ExitCode::from(3);
        }
    };
    let mut result = Ok(());
    for (scheme, credentials) in &opts.auth {
        result = result.and(client.add_auth(scheme, credentials.as_bytes()).await);
    }
    let result = match result {
        Ok(()) => run(&opts, &client).await,
        Err(e) => Err(e),
    };
    let _ = client.close().await;
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Error::Server(zab_client::ErrorCode::BadArguments)) => {
            eprintln!("zabctl: bad arguments (see `zabctl` with no arguments for usage)");
            ExitCode::from(2)
        }
        Err(e @ (Error::Server(_) | Error::MultiFailed { .. })) => {
            eprintln!("zabctl: {e}");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("zabctl: {e}");
            ExitCode::from(3)
        }
    }
}
