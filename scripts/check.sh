#!/usr/bin/env bash
# The read-only checks CI runs: formatting, lints (warnings denied), tests, docs.
# Usage: scripts/check.sh
set -euo pipefail
cd "$(dirname "$0")/.."

# Free disk at each stage: a full disk fails a build with an error that
# names no cause in this project, so the log says how much there was.
disk() { df -h . | awk 'NR == 2 { print "   (disk: " $4 " free of " $2 ")" }'; }
disk

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy (warnings denied)"
cargo clippy --workspace --all-targets -- -D warnings

disk
echo "== tests (the README's test command)"
cargo test --workspace

disk
echo "== packaging (entrypoint, Kubernetes manifests, systemd unit, Dockerfile, LICENSE)"
bash scripts/check-packaging.sh

disk
echo "== fuzz corpus replay (every committed fuzz input through its target's checks; stable)"
FUZZ_SECONDS=0 bash scripts/fuzz-smoke.sh

disk
echo "== docs (warnings denied)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --quiet
