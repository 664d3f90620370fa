#!/usr/bin/env bash
# ZooKeeper's own command-line client, zkCli.sh (Debian's `zookeeper`
# package), against a local zab ensemble's ZooKeeper port: a scripted
# session, printed as a transcript; then multi-operations and the removal
# of one of two watchers (which zkCli.sh has no command for) through
# ZooKeeper's Java client library, the one zkCli.sh is built on
# (scripts/zk-java/JavaClient.java, run as a single source file: needs a
# JDK). Needs Java and the package (apt-get install
# zookeeper); ZKCLI names another zkCli.sh.
#
#   scripts/zkcli-tour.sh            (release build, a fresh ensemble)
#   ZAB_BIN=target/debug/zab-server scripts/zkcli-tour.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ZKCLI="${ZKCLI:-/usr/share/zookeeper/bin/zkCli.sh}"
[ -x "$ZKCLI" ] || { echo "no zkCli.sh at $ZKCLI (apt-get install zookeeper)" >&2; exit 2; }
export ZAB_DATA="${ZAB_DATA:-$(mktemp -d)}"
trap 'scripts/cluster.sh down >/dev/null 2>&1 || true; rm -rf "$ZAB_DATA"' EXIT
scripts/cluster.sh up 3 >/dev/null
# The ensemble serves once a ZooKeeper client's handshake is answered.
for _ in $(seq 1 100); do
    if "$ZKCLI" -server 127.0.0.1:2191 ls / 2>/dev/null | grep -q '^\['; then break; fi
    sleep 0.2
done
commands=(
    'create /app "v1"'
    'create -e /app/eph "e"'
    'create -s /app/seq- "s"'
    'create -s -e /app/eseq- ""'
    'create -c /box ""'
    'create -t 60000 /ttl ""'
    'ls -R /app'
    'get -s /app'
    'set -v 0 /app "v2"'
    'set -v 0 /app "v3"'
    'stat /app'
    'addWatch -m PERSISTENT_RECURSIVE /app'
    'create /app/child "c"'
    'sync /app'
    'getEphemerals /app'
    'getAllChildrenNumber /app'
    'addauth digest alice:secret'
    'whoami'
    'setAcl /app/child auth:alice:cdrwa'
    'getAcl /app/child'
    'removewatches /app -a'
    'delete /app'
    'deleteall /app'
    'ls /'
)
printf '%s\n' "${commands[@]}" quit > "$ZAB_DATA/commands"
echo "# zkCli.sh ($ZKCLI) on 127.0.0.1:2191, commands:"
printf '#   %s\n' "${commands[@]}"
"$ZKCLI" -server 127.0.0.1:2191 < "$ZAB_DATA/commands" 2>&1 \
    | grep -v -e '^SLF4J' -e '^\s*$' -e 'JLine support' -e '^Welcome'
if command -v javac >/dev/null; then
    echo "# ZooKeeper's Java client (/usr/share/java/zookeeper.jar) on 127.0.0.1:2192: multi, watch removal"
    java -cp /usr/share/java/zookeeper.jar scripts/zk-java/JavaClient.java 127.0.0.1:2192 2>&1 \
        | grep -v -e '^SLF4J' -e '^\s*$'
else
    echo "# no JDK (javac): the Java client's multi was not run" >&2
fi
