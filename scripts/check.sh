#!/usr/bin/env bash
# The read-only checks CI runs: formatting, lints (warnings denied), tests, docs.
# Usage: scripts/check.sh
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy (warnings denied)"
cargo clippy --workspace --all-targets -- -D warnings

echo "== tests (the README's test command)"
cargo test --workspace

echo "== packaging (entrypoint, Kubernetes manifests, systemd unit, Dockerfile, LICENSE)"
bash scripts/check-packaging.sh

echo "== fuzz corpus replay (every committed fuzz input through its target's checks; stable)"
FUZZ_SECONDS=0 bash scripts/fuzz-smoke.sh

echo "== docs (warnings denied)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --quiet
