#!/usr/bin/env bash
# Simulation campaign for zab-core.
#
#   scripts/sim.sh --seeds N [--start S] [--sizes 3,5] [--chaos-ms MS]
#   scripts/sim.sh --seed S [--sizes 3,5]            # replay one seed, with its report
#   scripts/sim.sh --seeds 200 --defect skip_trunc   # prove a broken rule is caught
#   SIM_TRACE=1 scripts/sim.sh --seed S              # print every input and action
#
# Ends with: seeds=N failures=F sim_seconds=… commits=… elections=… syncs=…
# On failure it prints each failing seed and the command that replays it.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --quiet --release -p zab-tests --bin sim
exec ./target/release/sim "$@"
