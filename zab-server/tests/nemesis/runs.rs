//! The CI-sized runs: on loopback through proxies, and across hosts (each
//! server in its own network namespace, `zab_tests::netns`) at LAN and WAN
//! latencies with 1% of frames lost. `NEMESIS_SECS` sets the loopback
//! runs' length (default 60 s), `MULTIHOST_NEMESIS_SECS` the multi-host
//! runs' (default 30 s).

use std::time::Duration;

use zab_tests::netns::{LinkRule, Net};

use super::run_once;

fn secs_from_env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn ci_run(nodes: usize, seed: u64, net: Option<std::sync::Arc<Net>>) {
    let secs = match net {
        Some(_) => secs_from_env("MULTIHOST_NEMESIS_SECS", 30),
        None => secs_from_env("NEMESIS_SECS", 60),
    };
    let loopback = net.is_none();
    let r = run_once(nodes, seed, secs, net).await;
    for a in &r.anomalies {
        println!("anomaly: {a}");
    }
    println!(
        "runs=1 ops={} zookeeper_ops={} acked_writes_lost={} anomalies={}",
        r.ops,
        r.zookeeper_ops,
        r.lost,
        r.anomalies.len()
    );
    assert!(
        r.ops > 300,
        "too little load to mean anything: {} ops",
        r.ops
    );
    if loopback {
        // On loopback half the register sessions speak ZooKeeper's protocol.
        assert!(
            r.zookeeper_ops > 100,
            "too little ZooKeeper-protocol load: {} ops",
            r.zookeeper_ops
        );
    }
    assert_eq!(r.lost, 0, "{:#?}", r.anomalies);
    assert!(r.anomalies.is_empty(), "{:#?}", r.anomalies);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_servers_under_faults_stay_linearizable() {
    ci_run(3, 1, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn five_servers_under_faults_stay_linearizable() {
    ci_run(5, 2, None).await;
}

/// `rtt_ms` round trip between any two hosts (half each way), 1% of
/// frames lost on every link.
fn across_hosts(tag: &str, nodes: usize, rtt_ms: u64, seed: u64) {
    let rule = LinkRule {
        delay: Duration::from_micros(rtt_ms * 500),
        loss: 0.01,
        cut: false,
    };
    let Some(net) = Net::for_test(tag, nodes, rule, seed) else {
        return;
    };
    println!("{nodes} servers on separate hosts, {rtt_ms} ms round trip, 1% loss");
    net.clone()
        .block_on_client(move || ci_run(nodes, seed, Some(net)));
}

#[test]
fn three_hosts_at_2ms_with_loss_stay_linearizable() {
    across_hosts("a", 3, 2, 21);
}

#[test]
fn five_hosts_at_2ms_with_loss_stay_linearizable() {
    across_hosts("b", 5, 2, 22);
}

#[test]
fn three_hosts_at_20ms_with_loss_stay_linearizable() {
    across_hosts("c", 3, 20, 23);
}

#[test]
fn five_hosts_at_20ms_with_loss_stay_linearizable() {
    across_hosts("d", 5, 20, 24);
}
