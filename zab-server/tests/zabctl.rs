//! zabctl against a real ensemble, run in-process through its library (the
//! binary is a thin `main` around `zabctl::run`): every command, the exit
//! codes, JSON parsed back, binary data round-tripped, the shell fed from
//! a script, and what needs no server working without one.

mod common;

use std::io::Cursor;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use common::{retry, Ensemble};
use serde_json::Value;
use zab_client::{Client, Consistency, CreateMode};

/// What one zabctl run printed and returned.
#[derive(Debug)]
struct Run {
    code: u8,
    out: Vec<u8>,
    err: String,
}

impl Run {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.out).into_owned()
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.out)
            .unwrap_or_else(|e| panic!("not one JSON document ({e}): {}", self.text()))
    }

    fn ok(self) -> Run {
        assert_eq!(self.code, 0, "failed: {}{}", self.text(), self.err);
        self
    }
}

/// Runs zabctl with `args`; the shell reads `input`.
async fn zabctl_with(args: &[&str], input: &str) -> Run {
    let mut argv = vec!["zabctl"];
    argv.extend_from_slice(args);
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let lines = zabctl::shell::Input::Lines(Box::new(Cursor::new(input.as_bytes().to_vec())));
    let code = zabctl::run(argv, lines, &mut out, &mut err).await;
    Run {
        code,
        out,
        err: String::from_utf8_lossy(&err).into_owned(),
    }
}

/// The ensemble's client and admin addresses as zabctl options.
struct Ctl {
    servers: String,
    admins: String,
}

impl Ctl {
    async fn run(&self, args: &[&str]) -> Run {
        self.shell(args, "").await
    }

    async fn shell(&self, args: &[&str], input: &str) -> Run {
        let mut all = vec!["--servers", &self.servers, "--admin", &self.admins];
        all.extend_from_slice(args);
        zabctl_with(&all, input).await
    }
}

fn join(addrs: &[std::net::SocketAddr]) -> String {
    addrs
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn help_completion_man_and_usage_errors_need_no_server() {
    // Nothing listens on port 1.
    let offline = ["--servers", "127.0.0.1:1", "--connect-timeout-ms", "500"];
    let help = zabctl_with(&["--help"], "").await.ok();
    assert!(help.text().contains("Commands:") && help.text().contains("Exit codes:"));
    let sub = zabctl_with(&["create", "--help"], "").await.ok();
    assert!(sub.text().contains("--ephemeral"), "{}", sub.text());
    let version = zabctl_with(&["--version"], "").await.ok();
    assert!(version.text().contains(env!("CARGO_PKG_VERSION")));
    for shell in ["bash", "zsh", "fish"] {
        let script = zabctl_with(&["completion", shell], "").await.ok();
        assert!(script.text().contains("deleteall"), "{shell} completion");
    }
    let man = zabctl_with(&["man"], "").await.ok();
    assert!(man.text().contains(".TH"), "not roff");
    let digest = zabctl_with(&["-o", "json", "digest", "bob:secret"], "")
        .await
        .ok();
    assert_eq!(
        digest.json()["id"],
        zab_client::digest_id("bob", "secret").as_str()
    );

    // Usage errors: exit 2, before any connection.
    for args in [
        &["get"][..],
        &["create", "-c", "-s", "/a"],
        &["create", "a"],
        &["frob"],
        &["set", "/a", "x", "--file", "f"],
    ] {
        let mut all = offline.to_vec();
        all.extend_from_slice(args);
        let run = zabctl_with(&all, "").await;
        assert_eq!(run.code, 2, "{args:?}: {}", run.err);
        assert!(run.err.contains("error:"), "{args:?}: {}", run.err);
    }
    // A session command with no server: exit 3, said on stderr.
    let mut all = offline.to_vec();
    all.extend_from_slice(&["get", "/a"]);
    let run = zabctl_with(&all, "").await;
    assert_eq!(run.code, 3, "{run:?}");
    assert!(run.err.contains("no server accepted"), "{}", run.err);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_against_an_ensemble() {
    let mut e = Ensemble::prepare_with_admin(3, "zabctl", "admin_backups = true");
    e.spawn_all();
    e.wait_for_leader(None).await;
    let ctl = Ctl {
        servers: join(&e.clients),
        admins: join(&e.admins),
    };

    // create -p makes the parents; data with spaces as one argument.
    let created = ctl
        .run(&["create", "-p", "/app/config/db", "host=a port=1"])
        .await;
    assert_eq!(created.ok().text(), "/app/config/db\n");
    let got = ctl.run(&["get", "/app/config/db"]).await.ok();
    assert_eq!(got.text(), "host=a port=1\n");
    let exists = ctl.run(&["create", "/app/config/db"]).await;
    assert_eq!(exists.code, 1, "NodeExists is a refusal");
    assert!(exists.err.contains("NodeExists"), "{}", exists.err);

    // Binary data in through a file, out as bytes and as base64 JSON.
    let bytes: Vec<u8> = (0..=255u8).collect();
    let file = e.dir.join("binary.bin");
    std::fs::write(&file, &bytes).expect("writes");
    let file = file.to_str().expect("utf-8 path");
    ctl.run(&["create", "/bin", "--file", file]).await.ok();
    let raw = ctl.run(&["get", "/bin"]).await.ok();
    assert_eq!(raw.out, [&bytes[..], b"\n"].concat());
    let json = ctl.run(&["-o", "json", "get", "/bin"]).await.ok().json();
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(json["data"].as_str().expect("data"))
        .expect("base64");
    assert_eq!(decoded, bytes);
    assert_eq!(json["stat"]["dataLength"], 256);

    // set with a version: the right one works, a wrong one is BadVersion.
    let set = ctl
        .run(&["-o", "json", "set", "-v", "0", "/app/config/db", "v2"])
        .await;
    assert_eq!(set.ok().json()["stat"]["version"], 1);
    let stale = ctl.run(&["set", "-v", "0", "/app/config/db", "v3"]).await;
    assert_eq!(stale.code, 1);
    assert!(stale.err.contains("BadVersion"), "{}", stale.err);

    // stat, and a missing node.
    let stat = ctl.run(&["stat", "/app/config/db"]).await.ok();
    assert!(stat.text().contains("version = 1"), "{}", stat.text());
    let table = ctl.run(&["-o", "table", "stat", "/app"]).await.ok();
    assert!(table.text().contains("numChildren"), "{}", table.text());
    let missing = ctl.run(&["stat", "/nope"]).await;
    assert_eq!(missing.code, 1);
    assert!(missing.err.contains("NoNode"), "{}", missing.err);

    // ls, ls -s, ls -R, count.
    let ls = ctl.run(&["-o", "json", "ls", "/app"]).await.ok().json();
    assert_eq!(ls["children"], serde_json::json!(["config"]));
    let ls_s = ctl.run(&["ls", "-s", "/app/config"]).await.ok();
    assert!(ls_s.text().starts_with("db\n") && ls_s.text().contains("numChildren = 1"));
    let tree = ctl
        .run(&["-o", "json", "ls", "-R", "/app"])
        .await
        .ok()
        .json();
    assert_eq!(
        tree["paths"],
        serde_json::json!(["/app", "/app/config", "/app/config/db"])
    );
    let rooted = ctl.run(&["--chroot", "/app", "get", "/config/db"]).await;
    assert_eq!(rooted.ok().text(), "v2\n", "--chroot reads under /app");
    let unrooted = ctl.run(&["--chroot", "app", "ls", "/"]).await;
    assert_eq!(unrooted.code, 2, "a bad chroot is a usage error");
    let count = ctl.run(&["-o", "json", "count", "/app"]).await.ok().json();
    assert_eq!(count["count"], 2);

    // multi: quoted data with spaces, all or nothing.
    let ops = e.dir.join("ops.txt");
    std::fs::write(
        &ops,
        "# two changes at one zxid\ncreate /app/flag 'on and off'\nset /app/config/db \"x y\" 1\n",
    )
    .expect("writes");
    let multi = ctl
        .run(&["-o", "json", "multi", ops.to_str().expect("utf-8")])
        .await;
    let results = multi.ok().json();
    assert_eq!(results["results"][0]["result"], "/app/flag");
    let flag = ctl.run(&["get", "/app/flag"]).await.ok();
    assert_eq!(flag.text(), "on and off\n");
    std::fs::write(&ops, "create /app/never x\ncheck /app/flag 7\n").expect("writes");
    let failed = ctl.run(&["multi", ops.to_str().expect("utf-8")]).await;
    assert_eq!(failed.code, 1, "{failed:?}");
    assert_eq!(
        ctl.run(&["stat", "/app/never"]).await.code,
        1,
        "half a multi"
    );

    // ACLs.
    ctl.run(&["setacl", "/app/flag", "world:anyone:r"])
        .await
        .ok();
    let acl = ctl
        .run(&["-o", "json", "getacl", "/app/flag"])
        .await
        .ok()
        .json();
    assert_eq!(acl["acl"][0]["perms"], "r");
    let denied = ctl.run(&["set", "/app/flag", "x"]).await;
    assert_eq!(denied.code, 1);
    assert!(denied.err.contains("NoAuth"), "{}", denied.err);

    // sync, and watches nobody armed.
    let synced = ctl.run(&["-o", "json", "sync", "/"]).await.ok().json();
    let zxid = synced["zxid"].as_str().expect("a hex zxid");
    assert!(u64::from_str_radix(zxid.trim_start_matches("0x"), 16).expect("hex") > 0);
    let none = ctl.run(&["removewatches", "/app"]).await;
    assert_eq!(none.code, 1);
    assert!(none.err.contains("NoWatcher"), "{}", none.err);

    // watch -n: every change under the path, as they happen.
    let writer = Client::connect(&e.clients, 10_000).await.expect("writer");
    let done = Arc::new(AtomicBool::new(false));
    let writes = {
        let (writer, done) = (writer.clone(), done.clone());
        async move {
            for i in 0..200 {
                if done.load(Ordering::SeqCst) {
                    break;
                }
                let _ = writer
                    .set("/app/config/db", i.to_string().as_bytes(), -1)
                    .await;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    let watch = async {
        let run = ctl.run(&["-o", "json", "watch", "-n", "2", "/app"]).await;
        done.store(true, Ordering::SeqCst);
        run
    };
    let (watched, ()) = tokio::join!(watch, writes);
    let watched = watched.ok();
    let events: Vec<Value> = watched
        .text()
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON document per event"))
        .collect();
    assert_eq!(events.len(), 2, "{}", watched.text());
    for ev in &events {
        assert_eq!(ev["type"], "NodeDataChanged");
        assert_eq!(ev["path"], "/app/config/db");
    }

    // deleteall, then it is gone.
    let gone = ctl
        .run(&["-o", "json", "deleteall", "/app"])
        .await
        .ok()
        .json();
    assert_eq!(gone["deleted"], 4);
    assert_eq!(ctl.run(&["stat", "/app"]).await.code, 1);

    // Admin-port commands.
    let status = ctl
        .run(&["-o", "json", "cluster", "status"])
        .await
        .ok()
        .json();
    let rows = status.as_array().expect("one row per server");
    assert_eq!(rows.len(), 3);
    let leaders = rows.iter().filter(|r| r["role"] == "leading").count();
    assert_eq!(leaders, 1, "{status}");
    // ZooKeeper's four-letter words, as JSON from every server.
    let dump = ctl
        .run(&["-o", "json", "cluster", "dump", "--limit", "5"])
        .await
        .ok();
    let docs: Vec<serde_json::Value> = dump
        .text()
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(docs.len(), 3, "{}", dump.text());
    assert!(docs
        .iter()
        .all(|d| d["sessions"].is_array() && d["admin"].is_string()));
    let conf = ctl.run(&["cluster", "conf"]).await.ok();
    assert!(conf.text().contains("\"cluster_id\""), "{}", conf.text());
    for word in ["cons", "wchs"] {
        assert_eq!(ctl.run(&["cluster", word]).await.code, 0, "{word}");
    }
    let version = ctl.run(&["-o", "json", "version"]).await.ok().json();
    assert_eq!(version["servers"][0]["version"], env!("CARGO_PKG_VERSION"));
    let backup = e.dir.join("backup.snap");
    let taken = ctl
        .run(&["-o", "json", "backup", backup.to_str().expect("utf-8")])
        .await;
    assert!(taken.ok().json()["bytes"].as_u64().expect("bytes") > 0);
    assert!(backup.exists());
    let _ = writer.close().await;
}

/// The shell: one session for every line; a failed line does not end it;
/// its ephemerals end with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shell_runs_a_script_on_one_session() {
    let e = Ensemble::start(3, "zabctl-shell");
    e.wait_for_leader(None).await;
    let ctl = Ctl {
        servers: join(&e.clients),
        admins: "127.0.0.1:1".into(),
    };
    let script = "\
create -e /owned 'a b'
create -e -s /q-
get /nope
ephemerals
count /
help
help ls
set /owned --file -
quit
create /after-quit never
";
    let run = ctl.shell(&["-o", "json", "shell"], script).await;
    // Failed lines do not end the shell; the last failure (the refused
    // `--file -`, a usage error) is its exit code.
    assert_eq!(run.code, 2, "{}", run.err);
    assert!(run.err.contains("NoNode"), "{}", run.err);
    let text = run.text();
    let docs: Vec<Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let created: Vec<&str> = docs.iter().filter_map(|d| d["created"].as_str()).collect();
    assert_eq!(created.len(), 2, "{text}");
    let listed = docs
        .iter()
        .find_map(|d| d["paths"].as_array())
        .expect("the ephemerals listing");
    assert_eq!(listed.len(), 2, "{text}");
    assert!(listed.iter().any(|p| p == "/owned"));
    assert!(text.contains("Usage: ls"), "help ls: {text}");
    assert!(
        run.err.contains("standard input is the shell's"),
        "{}",
        run.err
    );

    // The session closed at the end: its ephemerals are gone at once, and
    // nothing after `quit` ran.
    let check = Client::connect(&e.clients, 10_000)
        .await
        .expect("a session");
    for path in ["/owned", "/after-quit"] {
        let found = retry(|| check.exists(path, Consistency::Linearizable, false))
            .await
            .expect("exists");
        assert!(found.is_none(), "{path} is still there");
    }
    check
        .create("/still-works", b"", CreateMode::Persistent)
        .await
        .expect("the ensemble is fine");
}
