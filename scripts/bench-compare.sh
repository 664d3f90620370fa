#!/usr/bin/env bash
# Compares this tree's zab-server with a baseline commit's, on this machine,
# in one invocation (the machine is shared and noisy: only ratios between
# runs made side by side mean anything).
#
#   scripts/bench-compare.sh BASE_REV [--rounds N] [--secs N] [--sessions LIST]
#                            [--workloads LIST]
#
# Builds BASE_REV's zab-server (release) in a throw-away worktree with its own
# target directory, then runs scripts/bench.sh --systems zab --no-failover
# alternately against the baseline and this tree's binary (base, head, base,
# head, ...: N rounds each, default 2), with the same load generator. Prints,
# per workload and session count, the median ops/s and p99 of each side and
# the ratios head / base (ops/s: higher is better; p99: lower is better).
# Raw results: data/bench-compare/{base,head}-R/results.jsonl.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"

[ $# -ge 1 ] || { sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
BASE="$1"; shift
ROUNDS=2
ARGS=(--secs 5 --warmup 1 --sessions 1,16,64 --workloads write,read-local,read-linearizable)
while [ $# -gt 0 ]; do
    case "$1" in
        --rounds) ROUNDS="$2"; shift 2 ;;
        --secs|--sessions|--workloads) ARGS+=("$1" "$2"); shift 2 ;;
        *) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
    esac
done

log() { echo "[bench-compare] $*" >&2; }
OUT="$ROOT/data/bench-compare"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/zab-bench-base.XXXXXX")"
cleanup() { git -C "$ROOT" worktree remove --force "$WORK/tree" >/dev/null 2>&1 || true; rm -rf "$WORK"; }
trap cleanup EXIT

rev="$(git rev-parse --verify "$BASE^{commit}")"
log "building the baseline $rev in $WORK"
git worktree add --detach "$WORK/tree" "$rev" >/dev/null
( cd "$WORK/tree" && CARGO_TARGET_DIR="$WORK/target" nice -n 15 cargo build --quiet --release -p zab-server )
BASE_BIN="$WORK/target/release/zab-server"

rm -rf "$OUT"; mkdir -p "$OUT"
for r in $(seq 1 "$ROUNDS"); do
    for side in base head; do
        log "round $r: $side"
        if [ "$side" = base ]; then
            ZAB_SERVER_BIN="$BASE_BIN" scripts/bench.sh --systems zab --no-failover --dir "$OUT/$side-$r" "${ARGS[@]}" >/dev/null
        else
            scripts/bench.sh --systems zab --no-failover --dir "$OUT/$side-$r" "${ARGS[@]}" >/dev/null
        fi
    done
done

python3 - "$OUT" "$ROUNDS" "$rev" <<'PY'
import json, statistics, sys
out, rounds, rev = sys.argv[1], int(sys.argv[2]), sys.argv[3]
runs = {}
for side in ("base", "head"):
    for r in range(1, rounds + 1):
        try:
            lines = open(f"{out}/{side}-{r}/results.jsonl").read().split("\n")
        except OSError:
            continue
        for line in lines:
            if not line.startswith("{"):
                continue
            j = json.loads(line)
            runs.setdefault((j["workload"], j["sessions"]), {}).setdefault(side, []).append(j)
print(f"== head / base ({rev[:10]}), median of {rounds} rounds each, alternating")
print(f"{'workload':<18} {'sess':>4} | {'base ops/s':>10} {'p99':>7} | {'head ops/s':>10} {'p99':>7} | {'x ops':>6} {'x p99':>6}")
for (w, s), sides in runs.items():
    if "base" not in sides or "head" not in sides:
        continue
    med = lambda side, k: statistics.median(x[k] for x in sides[side])
    bo, bp, ho, hp = med("base", "ops_per_sec"), med("base", "p99_us"), med("head", "ops_per_sec"), med("head", "p99_us")
    errs = sum(x["errors"] for side in sides.values() for x in side)
    print(f"{w:<18} {s:>4} | {bo:>10.0f} {bp:>7.0f} | {ho:>10.0f} {hp:>7.0f} | {ho / bo:>6.2f} {hp / bp if bp else 0:>6.2f}" + (f"  ({errs} errors)" if errs else ""))
PY
