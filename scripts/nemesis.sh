#!/usr/bin/env bash
# Fault-injection campaign on real processes (see zab-server/tests/nemesis.rs).
#
#   scripts/nemesis.sh --runs N --secs S
#
# Each run starts a 3-server ensemble on 127.0.0.1, drives reads, writes and
# compare-and-set from 4 sessions while killing, pausing and restarting
# servers, then checks the recorded history for linearizability and for lost
# acknowledged writes. Ends with one line:
#   runs=N ops=… acked_writes_lost=… anomalies=…
set -euo pipefail
cd "$(dirname "$0")/.."
runs=3
secs=60
while [ $# -gt 0 ]; do
    case "$1" in
        --runs) runs="$2"; shift 2 ;;
        --secs) secs="$2"; shift 2 ;;
        *) echo "usage: scripts/nemesis.sh --runs N --secs S" >&2; exit 2 ;;
    esac
done
NEMESIS_RUNS="$runs" NEMESIS_SECS="$secs" \
    cargo test --quiet --release -p zab-server --test nemesis campaign -- --ignored --nocapture 2>&1 \
    | grep -E '^(run [0-9]+:|runs=)' || { echo "campaign failed to run" >&2; exit 1; }
