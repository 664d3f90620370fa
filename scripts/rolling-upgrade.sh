#!/usr/bin/env bash
# A rolling upgrade under load, from the previous release's binary to this
# checkout's (zab-server/tests/deploy.rs,
# a_rolling_upgrade_from_the_previous_release_loses_nothing).
#
#   scripts/rolling-upgrade.sh [REV]
#
# REV is the previous release (default: the tag v0.1.0, or the commit it
# names if the tag is missing). It is built from a git worktree outside the
# repository, with its own target directory; nothing of it is committed.
set -euo pipefail
cd "$(dirname "$0")/.."
PREVIOUS_RELEASE_COMMIT=7e454f2
rev="${1:-v0.1.0}"
if ! git rev-parse --verify -q "$rev^{commit}" >/dev/null; then
    rev=$PREVIOUS_RELEASE_COMMIT
fi
work="${TMPDIR:-/tmp}/zab-previous-release"
rm -rf "$work"
git worktree prune
git worktree add --detach "$work/src" "$rev" >/dev/null
trap 'git worktree remove --force "$work/src" >/dev/null 2>&1 || true' EXIT
echo "== building the previous release ($rev: $(git log -1 --format='%h %s' "$rev" | cut -c1-60))"
(cd "$work/src" && CARGO_TARGET_DIR="$work/target" cargo build --quiet -p zab-server --bin zab-server)
echo "== rolling upgrade under load"
ZAB_PREVIOUS_SERVER_BIN="$work/target/debug/zab-server" \
    cargo test -p zab-server --test deploy -- --ignored --nocapture \
    a_rolling_upgrade_from_the_previous_release_loses_nothing
