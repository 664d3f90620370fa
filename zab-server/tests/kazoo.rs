//! Python kazoo, ZooKeeper's Python client from PyPI, against a real
//! ensemble's ZooKeeper port (issue #18): plain operations, a transaction,
//! a data watch, and its lock, election, queue, counter and tree-cache
//! recipes (`kazoo_recipes.py`).
//!
//! Needs `python3` with kazoo (`pip install kazoo==2.11.0`). CI installs it
//! and sets `ZAB_REQUIRE_KAZOO=1`, which turns a missing kazoo into a
//! failure; elsewhere the test says it skipped.

mod common;

use std::process::Command;

use common::Ensemble;

fn kazoo_installed() -> bool {
    Command::new("python3")
        .args(["-c", "import kazoo"])
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn kazoo_and_its_recipes_work_against_the_zookeeper_port() {
    if !kazoo_installed() {
        assert!(
            std::env::var_os("ZAB_REQUIRE_KAZOO").is_none(),
            "kazoo is required here (ZAB_REQUIRE_KAZOO) but python3 cannot import it"
        );
        eprintln!("SKIPPED: python3 cannot import kazoo (pip install kazoo==2.11.0)");
        return;
    }
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let (e, zks) = Ensemble::start_with_zookeeper(3, "kazoo", "");
    runtime.block_on(e.wait_for_leader(None));
    let hosts: Vec<String> = zks.iter().map(ToString::to_string).collect();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/kazoo_recipes.py");
    let out = Command::new("python3")
        .args([script, &hosts.join(",")])
        .output()
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "kazoo failed:\n{stdout}\n{stderr}");
    println!("{stdout}");
    for check in [
        "plain operations",
        "lock:",
        "election:",
        "queue:",
        "counter:",
        "tree cache:",
    ] {
        assert!(stdout.contains(check), "{check} did not run:\n{stdout}");
    }
    drop(e);
}
