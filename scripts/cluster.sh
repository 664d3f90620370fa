#!/usr/bin/env bash
# A local ensemble on 127.0.0.1, from release binaries.
#
#   scripts/cluster.sh up [N]       start N servers (default 3); prints the connection string
#   scripts/cluster.sh down         stop them all (SIGTERM, then SIGKILL after 5 s)
#   scripts/cluster.sh status       which servers run, and their pids
#   scripts/cluster.sh kill ID      kill -9 one server
#   scripts/cluster.sh restart ID   start one server again (after kill)
#
# Data, configs, logs and pid files live under $ZAB_DATA (default ./data).
# Ports: server i listens for clients on 2180+i, peers on 2880+i, ZooKeeper
# clients (ZooKeeper's own protocol, docs/zookeeper.md) on 2190+i, and
# serves /health, /status and /metrics on 127.0.0.1:8080+i.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA="${ZAB_DATA:-./data}"
BIN="${ZAB_BIN:-target/release/zab-server}"

build() {
    # Always: a no-op when nothing changed, and never a stale binary
    # (unless ZAB_BIN names a binary of the caller's).
    if [ -z "${ZAB_BIN:-}" ]; then
        cargo build --quiet --release -p zab-server -p zabctl
    fi
}

# The ensemble's shared peer secret, made once: servers prove their ids to
# each other with it (docs/security.md).
secret() {
    if [ ! -s "$DATA/peer-secret" ]; then
        mkdir -p "$DATA"
        (umask 077 && head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$DATA/peer-secret")
    fi
}

config() { # id n
    local id=$1 n=$2
    mkdir -p "$DATA/$id"
    secret
    {
        echo "id = $id"
        echo "data_dir = \"$DATA/$id\""
        # Absolute: a relative path is read relative to the config file.
        echo "peer_secret_file = \"$(cd "$DATA" && pwd)/peer-secret\""
        for j in $(seq 1 "$n"); do
            echo "[[servers]]"
            echo "id = $j"
            echo "peer = \"127.0.0.1:$((2880 + j))\""
            echo "client = \"127.0.0.1:$((2180 + j))\""
            echo "admin = \"127.0.0.1:$((8080 + j))\""
            echo "zookeeper = \"127.0.0.1:$((2190 + j))\""
        done
    } > "$DATA/$id/zab.toml"
}

start() { # id
    local id=$1
    if running "$id"; then
        echo "server $id already runs (pid $(cat "$DATA/$id/pid"))"
        return
    fi
    nohup "$BIN" --config "$DATA/$id/zab.toml" >> "$DATA/$id/server.log" 2>&1 &
    echo $! > "$DATA/$id/pid"
}

running() { # id (a killed process nobody has reaped yet is a zombie: not running)
    [ -f "$DATA/$1/pid" ] || return 1
    local pid
    pid="$(cat "$DATA/$1/pid")"
    kill -0 "$pid" 2>/dev/null || return 1
    ! ps -o stat= -p "$pid" 2>/dev/null | grep -q Z
}

members() {
    ls -d "$DATA"/*/ 2>/dev/null | xargs -n1 basename 2>/dev/null | grep -E '^[0-9]+$' | sort -n || true
}

connection_string() {
    local out=""
    for id in $(members); do out="${out:+$out,}127.0.0.1:$((2180 + id))"; done
    echo "$out"
}

case "${1:-}" in
    up)
        n="${2:-3}"
        build
        for id in $(seq 1 "$n"); do config "$id" "$n"; start "$id"; done
        sleep 1
        for id in $(seq 1 "$n"); do
            running "$id" || { echo "server $id failed to start; see $DATA/$id/server.log" >&2; tail -5 "$DATA/$id/server.log" >&2; exit 1; }
        done
        echo "ensemble of $n up; logs in $DATA/<id>/server.log"
        connection_string
        ;;
    down)
        for id in $(members); do
            if running "$id"; then kill "$(cat "$DATA/$id/pid")" 2>/dev/null || true; fi
        done
        for _ in $(seq 1 50); do
            alive=0
            for id in $(members); do running "$id" && alive=1; done
            [ "$alive" = 0 ] && break
            sleep 0.1
        done
        for id in $(members); do
            if running "$id"; then kill -9 "$(cat "$DATA/$id/pid")" 2>/dev/null || true; fi
            rm -f "$DATA/$id/pid"
        done
        echo "ensemble down"
        ;;
    status)
        for id in $(members); do
            if running "$id"; then
                st="$(curl -s --max-time 1 "http://127.0.0.1:$((8080 + id))/status" 2>/dev/null || true)"
                echo "server $id: running (pid $(cat "$DATA/$id/pid")), client 127.0.0.1:$((2180 + id)) ${st}"
            else echo "server $id: stopped"; fi
        done
        ;;
    kill)
        id="${2:?usage: cluster.sh kill ID}"
        running "$id" && kill -9 "$(cat "$DATA/$id/pid")" && echo "server $id killed" || echo "server $id was not running"
        ;;
    restart)
        id="${2:?usage: cluster.sh restart ID}"
        build
        start "$id"
        echo "server $id started (pid $(cat "$DATA/$id/pid"))"
        ;;
    *)
        sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'
        exit 2
        ;;
esac
