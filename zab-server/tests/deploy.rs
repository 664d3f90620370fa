//! Operating an ensemble as an operator would: configuration in layers and
//! `--check-config`, a rolling restart under load, and an online backup
//! restored into a fresh ensemble. Real processes on 127.0.0.1.

mod common;

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::Ensemble;
use zab_client::{Client, Consistency, CreateMode, Error, ErrorCode};

fn server() -> Command {
    Command::new(env!("CARGO_BIN_EXE_zab-server"))
}

/// Runs `cmd`; its exit code, stdout and stderr.
fn run(cmd: &mut Command) -> (i32, String, String) {
    let out = cmd.output().expect("zab-server runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn one_shared_file_is_completed_by_environment_and_flags() {
    let (code, out, _) = run(server().arg("--version"));
    assert_eq!(code, 0);
    assert_eq!(
        out.trim(),
        format!("zab-server {}", env!("CARGO_PKG_VERSION"))
    );

    let dir = std::env::temp_dir().join(format!("zab-layers-proc-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(dir.join("peer-secret"), "a shared secret of enough bytes\n").expect("secret");
    // The file every server of the ensemble shares: no id, host names.
    let shared = "data_dir = \"/var/lib/zab\"\npeer_secret_file = \"peer-secret\"\n\
                  listen_peer = \"0.0.0.0:2888\"\n\
                  [[servers]]\nid = 1\npeer = \"zab-0.zab-peers:2888\"\nclient = \"zab-0.zab-peers:2181\"\n\
                  [[servers]]\nid = 2\npeer = \"zab-1.zab-peers:2888\"\nclient = \"zab-1.zab-peers:2181\"\n\
                  [[servers]]\nid = 3\npeer = \"zab-2.zab-peers:2888\"\nclient = \"zab-2.zab-peers:2181\"\n";
    let file = dir.join("zab.toml");
    std::fs::write(&file, shared).expect("config");
    let check = || {
        let mut c = server();
        c.arg("--config").arg(&file).arg("--check-config");
        for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("ZAB_SERVER_")) {
            c.env_remove(k);
        }
        c
    };

    let (code, _, err) = run(&mut check());
    assert_eq!(code, 2, "no id anywhere: {err}");
    assert!(err.contains("id"), "{err}");

    let (code, out, err) = run(check().env("ZAB_SERVER_ID", "2"));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("server 2 of 3"), "{out}");
    assert!(out.contains("peers on 0.0.0.0:2888"), "{out}");
    assert!(out.contains("clients on zab-1.zab-peers:2181"), "{out}");

    // A flag beats the environment, which beats the file.
    let (code, out, err) = run(check()
        .env("ZAB_SERVER_ID", "2")
        .env("ZAB_SERVER_DATA_DIR", "/srv/zab")
        .args(["--id", "3"]));
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("server 3 of 3") && out.contains("data in /srv/zab"),
        "{out}"
    );

    // A bad value is refused, naming where it came from.
    let (code, _, err) = run(check()
        .env("ZAB_SERVER_ID", "1")
        .env("ZAB_SERVER_TICK_MS", "fast"));
    assert_eq!(code, 2);
    assert!(
        err.contains("TICK_MS") && err.contains("ZAB_SERVER_"),
        "{err}"
    );
    let (code, _, err) = run(check()
        .env("ZAB_SERVER_ID", "1")
        .env("ZAB_SERVER_TICK_MS", "1"));
    assert_eq!(code, 2);
    assert!(err.contains("tick_ms 1 is outside"), "{err}");

    // --check-config reads the files the configuration names.
    std::fs::write(dir.join("peer-secret"), "short").expect("secret");
    let (code, _, err) = run(check().env("ZAB_SERVER_ID", "1"));
    assert_eq!(code, 2);
    assert!(err.contains("peer_secret_file"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Writers that each create their own nodes until told to stop, retrying a
/// create whose outcome was lost (ConnectionLoss) until it is known.
/// Returns, per path, the zxid at which it was acknowledged; any error a
/// client saw that is not ConnectionLoss is recorded in `unexpected`.
struct Load {
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<BTreeMap<String, u64>>>,
    unexpected: Arc<Mutex<Vec<String>>>,
    losses: Arc<std::sync::atomic::AtomicU64>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    async fn start(e: &Ensemble, writers: usize) -> Load {
        let load = Load {
            stop: Arc::default(),
            acked: Arc::default(),
            unexpected: Arc::default(),
            losses: Arc::default(),
            tasks: Vec::new(),
        };
        let mut tasks = Vec::new();
        for w in 0..writers {
            // Each writer starts on a different server and fails over.
            let order: Vec<_> = (0..e.size())
                .map(|k| e.clients[(w + k) % e.size()])
                .collect();
            let client = common::connect_retry(&order, 10_000)
                .await
                .expect("a session");
            let (stop, acked, unexpected, losses) = (
                load.stop.clone(),
                load.acked.clone(),
                load.unexpected.clone(),
                load.losses.clone(),
            );
            tasks.push(tokio::spawn(async move {
                // Bounded: at most 100,000 writes per writer.
                for n in 0..100_000u64 {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let path = format!("/load/w{w}-{n}");
                    match write_until_known(&client, &path, &losses).await {
                        Ok(zxid) => {
                            acked.lock().expect("acked").insert(path, zxid);
                        }
                        Err(e) => {
                            unexpected
                                .lock()
                                .expect("errors")
                                .push(format!("{path}: {e}"));
                            break;
                        }
                    }
                }
            }));
        }
        Load { tasks, ..load }
    }

    async fn finish(self) -> (BTreeMap<String, u64>, Vec<String>, u64) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            let _ = t.await;
        }
        let acked = std::mem::take(&mut *self.acked.lock().expect("acked"));
        let unexpected = std::mem::take(&mut *self.unexpected.lock().expect("errors"));
        (acked, unexpected, self.losses.load(Ordering::Relaxed))
    }
}

/// Creates `path`; after a ConnectionLoss, asks whether it exists (it may
/// have been applied) and creates it again if not, until the outcome is
/// known (bounded: 60 s). Its zxid once acknowledged.
async fn write_until_known(
    client: &Client,
    path: &str,
    losses: &std::sync::atomic::AtomicU64,
) -> Result<u64, Error> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match client
            .create_with_stat(path, path.as_bytes(), CreateMode::Persistent)
            .await
        {
            Ok((_, stat)) => return Ok(stat.czxid),
            Err(Error::ConnectionLoss) if Instant::now() < deadline => {
                losses.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(50)).await;
                // The check's sync can also meet a server just leaving
                // the quorum (NotLeaderNoQuorum: nothing happened).
                match client.exists(path, Consistency::Linearizable, false).await {
                    Ok(Some(stat)) => return Ok(stat.czxid),
                    Ok(None)
                    | Err(Error::ConnectionLoss)
                    | Err(Error::Server(ErrorCode::NotLeaderNoQuorum)) => continue,
                    Err(e) => return Err(e),
                }
            }
            Err(Error::Server(ErrorCode::NodeExists)) => {
                // A retried create that had been applied after all.
                let stat = client
                    .exists(path, Consistency::Linearizable, false)
                    .await?
                    .ok_or(Error::Server(ErrorCode::NoNode))?;
                return Ok(stat.czxid);
            }
            Err(e) => return Err(e),
        }
    }
}

/// Every acknowledged path is present, holding what was written.
async fn assert_all_present(client: &Client, acked: &BTreeMap<String, u64>) {
    for path in acked.keys() {
        let (data, _) = common::retry(|| client.get(path, Consistency::Linearizable))
            .await
            .unwrap_or_else(|e| panic!("acknowledged {path} is missing: {e}"));
        assert_eq!(&data[..], path.as_bytes(), "{path} holds something else");
    }
}

/// Restarts every server in turn under load (followers first, the leader
/// last, each serving again before the next), running `upgrade(i)` on each
/// while it is down; then checks that clients saw nothing but
/// ConnectionLoss, retried, and that every acknowledged write is there.
async fn roll(mut e: Ensemble, what: &str, upgrade: impl Fn(&mut Ensemble, usize)) -> Ensemble {
    e.spawn_all();
    let first = e.wait_for_leader(None).await;
    let setup = e.client(first, 10_000).await;
    common::retry(|| setup.create("/load", b"", CreateMode::Persistent))
        .await
        .expect("/load");
    let load = Load::start(&e, 4).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let leader = e.wait_for_leader(None).await;
    let mut order: Vec<usize> = (0..e.size()).filter(|&i| i != leader).collect();
    order.push(leader);
    let mut restarts = Vec::new();
    for i in order {
        let before = load.acked.lock().expect("acked").len();
        let began = Instant::now();
        e.stop(i);
        upgrade(&mut e, i);
        e.spawn(i);
        e.wait_ready(i).await;
        restarts.push((i + 1, began.elapsed()));
        // Writes went on meanwhile, or resumed once it was back.
        let deadline = Instant::now() + Duration::from_secs(30);
        while load.acked.lock().expect("acked").len() < before + 20 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (acked, unexpected, losses) = load.finish().await;
    println!(
        "{what}: {} writes acknowledged, {losses} ConnectionLoss retried, restarts {restarts:?}",
        acked.len()
    );
    assert!(
        unexpected.is_empty(),
        "clients saw errors other than ConnectionLoss: {unexpected:?}"
    );
    assert!(
        acked.len() > 100,
        "too little load to mean anything: {}",
        acked.len()
    );
    let checker = common::connect_retry(&e.clients, 10_000)
        .await
        .expect("checker");
    assert_all_present(&checker, &acked).await;
    e
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_restart_under_load_loses_nothing_and_clients_only_retry() {
    let e = Ensemble::prepare_with_admin(3, "rolling", "");
    let e = roll(e, "rolling restart", |_, _| {}).await;
    // Backups are off unless configured.
    let (code, _) = e.admin_get(0, "/snapshot").await.expect("admin");
    assert_eq!(code, 403);
}

/// From the previous release's binary (`ZAB_PREVIOUS_SERVER_BIN`) to this
/// one, a server at a time: the two releases' servers run side by side
/// until the last is upgraded. `scripts/rolling-upgrade.sh` builds the
/// previous release and runs this.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the previous release's binary: scripts/rolling-upgrade.sh"]
async fn a_rolling_upgrade_from_the_previous_release_loses_nothing() {
    let previous = std::env::var("ZAB_PREVIOUS_SERVER_BIN")
        .expect("ZAB_PREVIOUS_SERVER_BIN: the previous release's zab-server");
    let mut e = Ensemble::prepare_with_admin(3, "upgrade", "");
    e.bins = vec![Some(previous.into()); 3];
    let e = roll(e, "rolling upgrade", |e, i| e.bins[i] = None).await;
    // Upgraded servers' links speak the new revision (heartbeats).
    let logs: String = (1..=3)
        .map(|i| {
            std::fs::read_to_string(e.dir.join(format!("{i}")).join("server.log"))
                .unwrap_or_default()
        })
        .collect();
    let revision = format!("revision={}", zab_server::peer::REVISION);
    assert!(
        logs.contains(&revision),
        "no link at {revision} after the upgrade"
    );
    assert!(
        logs.contains("revision=3"),
        "no link to an old server during the upgrade"
    );
}

/// The digest line `zab-server verify-backup` or `restore` prints.
fn digest_in(out: &str) -> String {
    out.split("tree digest ")
        .nth(1)
        .map(|d| d.trim().to_owned())
        .unwrap_or_else(|| panic!("no digest in {out:?}"))
}

fn json_field<'a>(json: &'a str, field: &str) -> &'a str {
    let key = format!("\"{field}\":");
    let rest = &json[json
        .find(&key)
        .unwrap_or_else(|| panic!("{field} in {json}"))
        + key.len()..];
    let end = rest.find([',', '}']).expect("field end");
    rest[..end].trim_matches('"')
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_under_load_restores_into_a_fresh_ensemble_with_the_same_digest() {
    let mut source = Ensemble::prepare_with_admin(3, "backup-source", "admin_backups = true");
    source.spawn_all();
    let leader = source.wait_for_leader(None).await;
    let setup = source.client(leader, 10_000).await;
    common::retry(|| setup.create("/load", b"", CreateMode::Persistent))
        .await
        .expect("/load");
    let load = Load::start(&source, 3).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while load.acked.lock().expect("acked").len() < 300 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Taken from a follower, while the writers keep writing.
    let follower = (leader + 1) % 3;
    let (code, backup) = source
        .admin_get(follower, "/snapshot")
        .await
        .expect("backup");
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&backup));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (acked, unexpected, _) = load.finish().await;
    assert!(unexpected.is_empty(), "{unexpected:?}");
    let file = std::env::temp_dir().join(format!("zab-backup-{}.snap", std::process::id()));
    std::fs::write(&file, &backup).expect("backup file");

    let (code, out, err) = run(server().arg("verify-backup").arg(&file));
    assert_eq!(code, 0, "{err}");
    let digest = digest_in(&out);
    let zxid = u64::from_str_radix(
        out.split("zxid 0x")
            .nth(1)
            .and_then(|s| s.split_whitespace().next())
            .expect("zxid"),
        16,
    )
    .expect("hex zxid");
    // Acknowledged before the backup's zxid: in it. After: not.
    let before: BTreeMap<String, u64> = acked
        .iter()
        .filter(|(_, z)| **z <= zxid)
        .map(|(p, z)| (p.clone(), *z))
        .collect();
    assert!(
        before.len() >= 300,
        "{} writes before the backup",
        before.len()
    );
    assert!(
        before.len() < acked.len(),
        "the load went on after the backup"
    );

    // A damaged backup is refused.
    let mut damaged = backup.clone();
    let mid = damaged.len() / 2;
    damaged[mid] ^= 1;
    let bad = source.dir.join("damaged.snap");
    std::fs::write(&bad, &damaged).expect("write");
    let (code, _, err) = run(server().arg("verify-backup").arg(&bad));
    assert_ne!(code, 0);
    assert!(err.contains("checksum"), "{err}");
    drop(source);

    let mut fresh = Ensemble::prepare_with_admin(3, "backup-restored", "admin_backups = true");
    for i in 0..3 {
        let data = fresh.dir.join(format!("{}", i + 1)).join("restored");
        let (code, out, err) = run(server()
            .arg("restore")
            .arg("--from")
            .arg(&file)
            .arg("--data-dir")
            .arg(&data));
        assert_eq!(code, 0, "{err}");
        // The load made no ephemeral nodes: ending its sessions on restore
        // changes no node.
        assert_eq!(digest_in(&out), digest);
        fresh.args[i] = vec!["--data-dir".into(), data.display().to_string()];
    }
    fresh.spawn_all();
    for i in 0..3 {
        fresh.wait_ready(i).await;
        let (code, body) = fresh.admin_get(i, "/digest").await.expect("digest");
        let body = String::from_utf8_lossy(&body).into_owned();
        assert_eq!(code, 200, "{body}");
        assert_eq!(
            json_field(&body, "digest"),
            digest,
            "server {}: {body}",
            i + 1
        );
    }
    let client = common::connect_retry(&fresh.clients, 10_000)
        .await
        .expect("client");
    assert_all_present(&client, &before).await;
    for path in acked.keys().filter(|p| !before.contains_key(*p)) {
        assert!(
            client
                .exists(path, Consistency::Linearizable, false)
                .await
                .expect("exists")
                .is_none(),
            "{path} was written after the backup"
        );
    }
    // The restored ensemble goes on: its writes come after the backup's.
    let (_, stat) = client
        .create_with_stat("/after-restore", b"", CreateMode::Persistent)
        .await
        .expect("a write");
    assert!(
        stat.czxid > zxid && stat.czxid >> 32 > zxid >> 32,
        "{:#x}",
        stat.czxid
    );
    let _ = std::fs::remove_file(&file);
}

/// `--log-format json`: one JSON object per line, for log collectors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_can_be_json_lines() {
    let mut e = Ensemble::prepare_with_admin(3, "json-logs", "");
    e.args[0] = vec!["--log-format".into(), "json".into()];
    e.spawn_all();
    e.wait_for_leader(None).await;
    let log = std::fs::read_to_string(e.dir.join("1").join("server.log")).expect("a log");
    let objects: Vec<serde_json::Value> = log
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|err| panic!("{err}: {l}")))
        .collect();
    assert!(objects.len() >= 3, "{log}");
    assert!(
        objects
            .iter()
            .all(|o| o["level"].is_string() && o["fields"]["message"].is_string()),
        "{log}"
    );
    assert!(
        objects
            .iter()
            .any(|o| o["fields"]["message"] == "server started"),
        "{log}"
    );
    // The other servers kept the default text.
    let text = std::fs::read_to_string(e.dir.join("2").join("server.log")).expect("a log");
    assert!(text.contains(" INFO "), "{text}");
}
