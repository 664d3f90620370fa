#!/usr/bin/env bash
# The fuzz smoke (issue #15).
#
# 1. Replays every committed corpus input (fuzz/corpus/<target>/*) through
#    its target's checks, on the stable toolchain: `cargo test` of the fuzz
#    crate (fuzz/tests/replay.rs). This is the part CI needs.
# 2. If cargo-fuzz is installed and FUZZ_SECONDS is not 0, fuzzes every
#    target for FUZZ_SECONDS seconds (default 10), one at a time. New inputs
#    go to a scratch folder, not to the committed corpus; a crash is written
#    to fuzz/artifacts/<target>/ and fails the script.
#
# Usage: scripts/fuzz-smoke.sh            (FUZZ_SECONDS=0 to replay only)
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== fuzz corpus replay (stable)"
cargo test --manifest-path fuzz/Cargo.toml

seconds="${FUZZ_SECONDS:-10}"
if [ "$seconds" = "0" ]; then
    exit 0
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== cargo-fuzz not installed: skipping the timed fuzz runs"
    exit 0
fi

# cargo-fuzz passes nightly-only flags; RUSTC_BOOTSTRAP lets a stable
# toolchain accept them. No sanitizer: the code under test forbids unsafe,
# and the runs look for panics (overflow checks and debug assertions on).
export RUSTC_BOOTSTRAP=1
flags=(--fuzz-dir fuzz --sanitizer none --release --debug-assertions)
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
echo "== building the fuzz targets"
cargo fuzz build "${flags[@]}"
for file in fuzz/fuzz_targets/*.rs; do
    target="$(basename "$file" .rs)"
    mkdir -p "$scratch/$target"
    log="$scratch/$target.log"
    if ! cargo fuzz run "${flags[@]}" "$target" "$scratch/$target" "fuzz/corpus/$target" -- \
        -max_total_time="$seconds" -print_final_stats=1 >"$log" 2>&1; then
        tail -n 60 "$log" >&2
        echo "fuzz target $target failed; the input is in fuzz/artifacts/$target/" >&2
        exit 1
    fi
    runs="$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')"
    echo "== fuzz $target: ${seconds}s, $runs runs, no crash"
done
echo "== fuzz smoke passed"
