#!/usr/bin/env bash
# A new user's first minutes with zabctl, as a transcript: help, every
# command, JSON read back with jq and Python, binary data round-tripped,
# the shell, completions. Starts its own 3-server ensemble on 127.0.0.1
# (scripts/cluster.sh, data in a temporary directory) and stops it after.
#
#   scripts/zabctl-tour.sh > tour.txt
#
# Every command is printed after "$ ", then what it printed and its exit
# code when not 0. The script fails if a step does not do what it shows.
set -euo pipefail
cd "$(dirname "$0")/.."
export ZAB_DATA
ZAB_DATA=$(mktemp -d)
work=$(mktemp -d)
trap 'scripts/cluster.sh down >/dev/null 2>&1 || true; rm -rf "$ZAB_DATA" "$work"' EXIT
scripts/cluster.sh up >/dev/null
export PATH="$PWD/target/release:$PATH"

step() { # prints and runs a shell command line; shows a failure's code
    echo "\$ $1"
    set +e
    bash -c "$1" 2>&1
    local code=$?
    set -e
    [ "$code" -eq 0 ] || echo "[exit $code]"
    echo
    return 0
}
must() { # like step, but the tour stops if it fails
    echo "\$ $1"
    bash -c "$1" 2>&1
    echo
}

# The ensemble may still be electing; wait until it serves.
for _ in $(seq 1 100); do
    zabctl sync / >/dev/null 2>&1 && break
    sleep 0.1
done

must "zabctl --version"
must "zabctl --help | head -32"
must "zabctl create --help | sed -n '1,12p'"
step "zabctl get"
step "zabctl create -c -s /conflicting"
must "zabctl create -p /app/config/db 'host=db1 port=5432'"
must "zabctl get /app/config/db"
must "zabctl get -s /app/config/db | tail -4"
must "zabctl -o json get /app/config/db | jq -r .data | base64 -d; echo"
must "zabctl -o table stat /app/config/db"
must "zabctl set -v 0 /app/config/db 'host=db2 port=5432'"
step "zabctl set -v 0 /app/config/db 'host=db3'"
must "zabctl --servers 127.0.0.1:2183 get /app/config/db"
must "head -c 64 /dev/urandom > $work/blob.bin && zabctl create /app/blob --file $work/blob.bin"
must "zabctl get /app/blob | head -c 64 | cmp - $work/blob.bin && echo 'raw bytes: identical'"
must "zabctl -o json get /app/blob | python3 -c 'import sys,json,base64; d=base64.b64decode(json.load(sys.stdin)[\"data\"]); print(\"json base64:\", \"identical\" if d == open(\"$work/blob.bin\",\"rb\").read() else \"DIFFERENT\")'"
must "printf 'from stdin' | zabctl set /app/blob --file - && zabctl get /app/blob"
must "printf '%s\n' '# all or nothing' \"create /app/flags 'dark mode=on'\" 'create -s /app/jobs/job-' 'check /app/config/db 1' > $work/ops && zabctl create /app/jobs '' && zabctl multi $work/ops"
step "printf '%s\n' 'create /app/never x' 'check /app/config/db 7' > $work/bad && zabctl multi $work/bad"
step "zabctl stat /app/never"
must "zabctl ls /app"
must "zabctl -o json ls -R /app | jq -c .paths"
must "zabctl -o table ls -s /app/config | tail -6"
must "zabctl count /app"
must "zabctl setacl /app/flags world:anyone:r && zabctl -o json getacl /app/flags | jq -c .acl"
step "zabctl set /app/flags nope"
must "zabctl digest bob:secret"
must "zabctl sync /"
must "(sleep 0.5; zabctl set /app/config/db v3; zabctl create /app/config/cache x) >/dev/null & zabctl -o json watch -n 2 /app | jq -c ."
step "printf '%s\n' 'create -e /app/worker-1 host-a' 'create -e -s /app/lock-' 'ephemerals /app/' 'get /nope' 'help' 'quit' | zabctl shell"
step "zabctl stat /app/worker-1"
must "zabctl deleteall /app"
must "zabctl -o table cluster status"
must "zabctl -o json version | jq -c ."
step "zabctl backup $work/backup.snap"
must "zabctl completion bash | head -3"
must "zabctl man | head -4"
step "zabctl --servers 127.0.0.1:1 --connect-timeout-ms 500 get /app"
