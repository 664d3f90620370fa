#!/usr/bin/env bash
# Fault-injection campaign on real processes (see zab-server/tests/nemesis/).
#
#   scripts/nemesis.sh --runs N --secs S [--seed K] [--jobs J] [--power-loss]
#
# Each run starts an ensemble on 127.0.0.1 (3 servers for even run numbers,
# 5 for odd ones) with every peer link through an in-process proxy, drives
# registers (linearizable reads, writes, compare-and-set), sequential creates,
# ephemerals and a recursive watch while killing, pausing, partitioning (one
# way too) and delaying servers, then checks everything recorded. Runs use
# seeds K, K+1, ... (default 1000). --jobs J splits the runs over J campaigns
# running side by side (each with its own ensembles). --power-loss builds the
# servers with the test-only power-loss disk (unsynced writes die with kill -9).
# Ends with one line:
#   runs=N ops=… zookeeper_ops=… acked_writes_lost=… anomalies=…
# (zookeeper_ops: the register operations made on ZooKeeper's protocol)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=3
secs=60
seed=1000
jobs=1
features=()
power_loss=0
while [ $# -gt 0 ]; do
    case "$1" in
        --runs) runs="$2"; shift 2 ;;
        --secs) secs="$2"; shift 2 ;;
        --seed) seed="$2"; shift 2 ;;
        --jobs) jobs="$2"; shift 2 ;;
        --power-loss) power_loss=1; features=(--features defects); shift ;;
        *) echo "usage: scripts/nemesis.sh --runs N --secs S [--seed K] [--jobs J] [--power-loss]" >&2; exit 2 ;;
    esac
done
cargo build --quiet --release -p zab-server "${features[@]}" --tests
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
pids=()
per=$(( (runs + jobs - 1) / jobs ))
first=$seed
left=$runs
for j in $(seq 1 "$jobs"); do
    n=$(( left < per ? left : per ))
    [ "$n" -gt 0 ] || break
    ZAB_TEST_POWER_LOSS=$power_loss NEMESIS_RUNS="$n" NEMESIS_SECS="$secs" NEMESIS_SEED="$first" \
        cargo test --quiet --release -p zab-server "${features[@]}" --test nemesis campaign \
        -- --ignored --nocapture >"$out/$j.log" 2>&1 &
    pids+=($!)
    first=$(( first + n ))
    left=$(( left - n ))
done
for p in "${pids[@]}"; do wait "$p" || true; done
total_runs=0 total_ops=0 total_zk_ops=0 total_lost=0 total_anomalies=0
for f in "$out"/*.log; do
    grep -E '^(run [0-9]+:|run nodes=)' "$f" || true
    line=$(grep -E '^runs=' "$f" || true)
    if [ -z "$line" ]; then
        echo "a campaign job failed to finish; its output:" >&2
        tail -40 "$f" >&2
        total_anomalies=$(( total_anomalies + 1 ))
        continue
    fi
    for kv in $line; do
        case "$kv" in
            runs=*) total_runs=$(( total_runs + ${kv#runs=} )) ;;
            ops=*) total_ops=$(( total_ops + ${kv#ops=} )) ;;
            zookeeper_ops=*) total_zk_ops=$(( total_zk_ops + ${kv#zookeeper_ops=} )) ;;
            acked_writes_lost=*) total_lost=$(( total_lost + ${kv#acked_writes_lost=} )) ;;
            anomalies=*) total_anomalies=$(( total_anomalies + ${kv#anomalies=} )) ;;
        esac
    done
done
echo "runs=$total_runs ops=$total_ops zookeeper_ops=$total_zk_ops acked_writes_lost=$total_lost anomalies=$total_anomalies"
[ "$total_lost" -eq 0 ] && [ "$total_anomalies" -eq 0 ]
