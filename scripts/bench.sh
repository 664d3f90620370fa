#!/usr/bin/env bash
# Benchmarks zab against Apache ZooKeeper and etcd on this machine (issue #7).
#
#   scripts/bench.sh [--secs N] [--warmup N] [--quick] [--trials N]
#                    [--systems zab,zabzk,zk,etcd] [--sessions 1,16,64]
#                    [--workloads LIST] [--no-failover] [--dir DIR]
#                    [--scale N] [--zk-heap-mb M] [--rtt-ms MS]
#
# Each system runs as a 3-server cluster on 127.0.0.1 (or on separate hosts,
# with --rtt-ms) with its data under one
# bench directory (default ./data/bench, wiped first), one system at a time
# (the others are stopped). zab-bench drives the same workloads through each
# one's client; `zabzk` is our ensemble again, driven through ZooKeeper's
# client protocol (its `zookeeper` port) by zab-bench's ZooKeeper client,
# the one it drives ZooKeeper with; then each server's resident memory is read from /proc, and
# for zab and ZooKeeper the leader is killed (-9) --trials times to time the
# failover (kill until the first successful write). Prints a side-by-side
# table with ratios (zab / best of ZooKeeper and etcd), and each system's
# server CPU-seconds per 1,000 operations; raw JSON lines are in
# DIR/results.jsonl and DIR/failover.jsonl.
#
# Installs Debian's zookeeper, etcd-server (and protobuf-compiler, which the
# etcd client crate needs to build) with apt-get if they are missing.
# --quick: write, read-local and read-linearizable at 1 and 16 sessions,
# 3 s each, 5 failover trials. Every wait is bounded; every process this
# script starts is stopped on exit.
# --scale N: instead of the matrix, each system (default zab,zk) loads N
# znodes of 128 B over 64 sessions (RSS read 20 s after: memory at rest),
# then takes --secs of writes at 64
# sessions (snapshots included: zab by its snapshot policy, ZooKeeper by
# its snapCount); it reports the load rate, RSS per
# server and bytes per znode, the data directories' size, the write rate,
# p99/p999 and errors, and the leader changes seen (polled every second);
# for zab, p99/p999 over the seconds in which a server was writing a
# snapshot against the others (snapshots seen on /metrics); then it stops
# every server and times their restart to the first linearizable read.
# The per-second ops and p99 go to DIR/zab-snapshots.seconds, and each
# snapshot's end, duration, server and role to DIR/zab-snapshots.log.
# ZooKeeper gets --zk-heap-mb (default 3000 with --scale, else 1000).
# ZAB_CONFIG_EXTRA (environment): lines added to every zab server's
# configuration, e.g. 'snapshot_write_mib_per_sec = 0' for an A/B (a
# binary that does not know a key refuses the configuration: mind
# bench-compare.sh's older base).
# --rtt-ms MS: every server on a host of its own (a network namespace, named
# zab1..zab3 in per-host hosts files; zab's configs use the names) and the
# load generator on a fourth, all on a switch that delays every frame by
# MS/2 each way (zab_tests::netns, through its `netns` binary). Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"

SECS=10
WARMUP=2
TRIALS=20
SYSTEMS="zab,zabzk,zk,etcd"
SESSIONS="1,16,64"
WORKLOADS="write,write-latency,read-local,read-linearizable,mixed,ephemeral"
FAILOVER=1
DIR="$ROOT/data/bench"
SCALE=""
ZK_HEAP_MB=""
RTT_MS=""
ARGS=("$@")
while [ $# -gt 0 ]; do
    case "$1" in
        --secs) SECS="$2"; shift 2 ;;
        --warmup) WARMUP="$2"; shift 2 ;;
        --trials) TRIALS="$2"; shift 2 ;;
        --systems) SYSTEMS="$2"; SYSTEMS_SET="$2"; shift 2 ;;
        --sessions) SESSIONS="$2"; shift 2 ;;
        --workloads) WORKLOADS="$2"; shift 2 ;;
        --no-failover) FAILOVER=0; shift ;;
        --dir) DIR="$2"; shift 2 ;;
        --scale) SCALE="$2"; SYSTEMS="${SYSTEMS_SET:-zab,zk}"; shift 2 ;;
        --zk-heap-mb) ZK_HEAP_MB="$2"; shift 2 ;;
        --rtt-ms) RTT_MS="$2"; shift 2 ;;
        --quick)
            SECS=3; WARMUP=1; TRIALS=5; SESSIONS="1,16"
            WORKLOADS="write,read-local,read-linearizable"
            shift ;;
        *) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
    esac
done
case "$DIR" in /*) ;; *) DIR="$ROOT/$DIR" ;; esac

TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
BENCH="$TARGET/release/zab-bench"
# ZAB_SERVER_BIN runs another zab-server build (scripts/bench-compare.sh
# points it at a baseline commit's binary); the default is this tree's.
ZAB="${ZAB_SERVER_BIN:-$TARGET/release/zab-server}"
# Not passed on: zab-server reads every ZAB_SERVER_* variable as a setting
# and refuses one it does not know (which broke every baseline run).
unset ZAB_SERVER_BIN
ZK_CP="/usr/share/java/zookeeper.jar:/usr/share/java/slf4j-simple.jar"
N=3
# Ports, clear of scripts/cluster.sh (2181-2183, 2881-2883, 8081-8083).
ZAB_CLIENT=23180 ZAB_PEER=23280 ZAB_ADMIN=23380 ZAB_ZOOKEEPER=23480
ZK_CLIENT=24180 ZK_QUORUM=24280 ZK_ELECTION=24380
ETCD_CLIENT=25180 ETCD_PEER=25280
# Inside a --rtt-ms run, BENCH_NETNS is the namespaces' common prefix.
BENCH_NETNS="${BENCH_NETNS:-}"

addr_of() { # id -> the address server id listens on
    if [ -n "$BENCH_NETNS" ]; then echo "10.77.0.$1"; else echo 127.0.0.1; fi
}
name_of() { # id -> the name zab's configs give server id
    if [ -n "$BENCH_NETNS" ]; then echo "zab$1"; else echo 127.0.0.1; fi
}
where_servers() {
    if [ -n "$BENCH_NETNS" ]; then echo "separate hosts at ${RTT_MS} ms round trip"; else echo 127.0.0.1; fi
}
host_prefix() { # id: sets ON_HOST to the words that run a command on server id's host
    # (`ip netns exec` replaces itself with the command, so $! stays the server's pid)
    ON_HOST=()
    if [ -n "$BENCH_NETNS" ]; then ON_HOST=(ip netns exec "${BENCH_NETNS}s$1"); fi
}

log() { echo "[bench] $*" >&2; }
now_ms() { date +%s%3N; }

# --- set-up ---------------------------------------------------------------

install_missing() {
    local want=()
    [ -f /usr/share/java/zookeeper.jar ] || want+=(zookeeper)
    command -v etcd >/dev/null || want+=(etcd-server)
    command -v protoc >/dev/null || want+=(protobuf-compiler)
    command -v java >/dev/null || want+=(default-jre-headless)
    if [ ${#want[@]} -gt 0 ]; then
        log "installing ${want[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${want[@]}" >/dev/null
    fi
    # Debian's etcd-server may start its own service on 2379: not ours.
    if pgrep -x etcd >/dev/null 2>&1 && ! [ -f "$DIR/etcd/1/pid" ]; then
        log "note: an etcd not started by this script is running (pids: $(pgrep -x etcd | tr '\n' ' '))"
    fi
}

build() {
    log "building zab-server and zab-bench (release) into $TARGET"
    nice -n 15 cargo build --quiet --release -p zab-server -p zab-bench --features zab-bench/etcd
}

# --- process bookkeeping ----------------------------------------------------

PIDS_FILE=""
alive() { kill -0 "$1" 2>/dev/null && ! ps -o stat= -p "$1" 2>/dev/null | grep -q Z; }

stop_pid() { # pid: TERM, then KILL after 5 s
    local pid=$1
    alive "$pid" || return 0
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do alive "$pid" || return 0; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
}

stop_all() {
    for f in "$DIR"/*/*/pid; do
        [ -f "$f" ] || continue
        stop_pid "$(cat "$f")"
        rm -f "$f"
    done
}

cleanup() {
    local rc=$?
    set +e
    [ -n "${BENCH_PID:-}" ] && kill "$BENCH_PID" 2>/dev/null
    # The multi-host net's holder (--rtt-ms): it removes its namespaces.
    if [ -n "${NETNS_PID:-}" ]; then kill "$NETNS_PID" 2>/dev/null; wait "$NETNS_PID" 2>/dev/null; fi
    stop_all
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

wait_until() { # seconds command...: polls every 0.2 s
    local secs=$1; shift
    local tries=$((secs * 5))
    for _ in $(seq 1 "$tries"); do
        if "$@"; then return 0; fi
        sleep 0.2
    done
    return 1
}

# --- zab --------------------------------------------------------------------

zab_config() { # id [system]: zabzk also serves ZooKeeper's protocol
    local id=$1 sys=${2:-zab}
    local d="$DIR/$sys/$1"
    mkdir -p "$d"
    if [ ! -s "$DIR/$sys/peer-secret" ]; then
        (umask 077 && head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$DIR/$sys/peer-secret")
    fi
    {
        echo "id = $id"
        echo "data_dir = \"$d\""
        # Extra top-level settings for every zab server (an A/B of a knob).
        if [ -n "${ZAB_CONFIG_EXTRA:-}" ]; then printf '%s\n' "$ZAB_CONFIG_EXTRA"; fi
        # A binary from before peer authentication (bench-compare.sh's base)
        # refuses the unknown key; its configs go without it.
        if grep -qa peer_secret_file "$ZAB"; then
            echo "peer_secret_file = \"$DIR/$sys/peer-secret\""
        fi
        for j in $(seq 1 $N); do
            echo "[[servers]]"
            echo "id = $j"
            echo "peer = \"$(name_of "$j"):$((ZAB_PEER + j))\""
            echo "client = \"$(name_of "$j"):$((ZAB_CLIENT + j))\""
            echo "admin = \"$(name_of "$j"):$((ZAB_ADMIN + j))\""
            if [ "$sys" = zabzk ]; then
                echo "zookeeper = \"$(name_of "$j"):$((ZAB_ZOOKEEPER + j))\""
            fi
        done
    } > "$d/zab.toml"
}
zab_start() { # id [system]
    local d="$DIR/${2:-zab}/$1"
    host_prefix "$1"
    nohup "${ON_HOST[@]}" "$ZAB" --config "$d/zab.toml" >> "$d/server.log" 2>&1 &
    echo $! > "$d/pid"
}
zab_role() { # id -> leading|following|looking|down
    local st
    st="$(curl -s --max-time 1 "http://$(addr_of "$1"):$((ZAB_ADMIN + $1))/status" 2>/dev/null || true)"
    [ -n "$st" ] || { echo down; return; }
    echo "$st" | sed -n 's/.*"role":"\([a-z]*\)".*/\1/p'
}
zab_healthy() { # id
    [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "http://$(addr_of "$1"):$((ZAB_ADMIN + $1))/health" 2>/dev/null)" = 200 ]
}
zab_client() { echo "$(addr_of "$1"):$((ZAB_CLIENT + $1))"; }

# zabzk: the same servers (one system runs at a time, so the same ports),
# each also serving ZooKeeper's client protocol, where the clients go.
zabzk_config() { zab_config "$1" zabzk; }
zabzk_start() { zab_start "$1" zabzk; }
zabzk_role() { zab_role "$1"; }
zabzk_healthy() { zab_healthy "$1"; }
zabzk_client() { echo "$(addr_of "$1"):$((ZAB_ZOOKEEPER + $1))"; }

# --- ZooKeeper --------------------------------------------------------------

zk_config() { # id
    local id=$1 d="$DIR/zk/$1"
    mkdir -p "$d/data"
    echo "$id" > "$d/data/myid"
    {
        echo "tickTime=2000"
        echo "initLimit=10"
        echo "syncLimit=5"
        echo "dataDir=$d/data"
        echo "clientPort=$((ZK_CLIENT + id))"
        echo "clientPortAddress=$(addr_of "$id")"
        echo "maxClientCnxns=0"
        echo "autopurge.snapRetainCount=3"
        echo "autopurge.purgeInterval=1"
        echo "4lw.commands.whitelist=srvr,ruok,mntr"
        echo "admin.enableServer=false"
        for j in $(seq 1 $N); do
            echo "server.$j=$(addr_of "$j"):$((ZK_QUORUM + j)):$((ZK_ELECTION + j))"
        done
    } > "$d/zoo.cfg"
}
zk_start() { # id
    local d="$DIR/zk/$1"
    # The heap ZooKeeper's own zkServer.sh gives a server (ZK_SERVER_HEAP
    # defaults to 1000 MB in zkEnv.sh), grown on demand rather than fixed, so
    # resident memory reflects what the server actually uses.
    host_prefix "$1"
    nohup "${ON_HOST[@]}" java "-Xmx${ZK_HEAP_MB}m" -XX:+UseG1GC -cp "$ZK_CP" \
        -Dorg.slf4j.simpleLogger.defaultLogLevel=info \
        -Dzookeeper.log.dir="$d" \
        org.apache.zookeeper.server.quorum.QuorumPeerMain "$d/zoo.cfg" >> "$d/server.log" 2>&1 &
    echo $! > "$d/pid"
}
zk_4lw() { # id word
    timeout 2 bash -c "exec 3<>/dev/tcp/$(addr_of "$1")/$((ZK_CLIENT + $1)) && printf '%s' '$2' >&3 && cat <&3" 2>/dev/null || true
}
zk_role() { # id -> leading|following|down
    case "$(zk_4lw "$1" srvr | sed -n 's/^Mode: //p')" in
        leader) echo leading ;;
        follower) echo following ;;
        *) echo down ;;
    esac
}
zk_healthy() { local r; r="$(zk_role "$1")"; [ "$r" = leading ] || [ "$r" = following ]; }
zk_client() { echo "$(addr_of "$1"):$((ZK_CLIENT + $1))"; }

# --- etcd -------------------------------------------------------------------

etcd_config() { mkdir -p "$DIR/etcd/$1"; }
etcd_start() { # id
    local id=$1 d="$DIR/etcd/$1" cluster="" state=new
    for j in $(seq 1 $N); do cluster="${cluster:+$cluster,}e$j=http://$(addr_of "$j"):$((ETCD_PEER + j))"; done
    [ -d "$d/data/member" ] && state=existing
    local a; a="$(addr_of "$id")"
    host_prefix "$id"
    nohup "${ON_HOST[@]}" etcd --name "e$id" --data-dir "$d/data" \
        --listen-client-urls "http://$a:$((ETCD_CLIENT + id))" \
        --advertise-client-urls "http://$a:$((ETCD_CLIENT + id))" \
        --listen-peer-urls "http://$a:$((ETCD_PEER + id))" \
        --initial-advertise-peer-urls "http://$a:$((ETCD_PEER + id))" \
        --initial-cluster "$cluster" --initial-cluster-token zab-bench \
        --initial-cluster-state "$state" \
        --logger zap --log-outputs stderr >> "$d/server.log" 2>&1 &
    echo $! > "$d/pid"
}
etcd_status() { # id -> JSON of maintenance/status (gRPC gateway)
    curl -s --max-time 1 -X POST -d '{}' "http://$(addr_of "$1"):$((ETCD_CLIENT + $1))/v3/maintenance/status" 2>/dev/null || true
}
etcd_role() { # id -> leading|following|down
    local st me leader
    st="$(etcd_status "$1")"
    me="$(echo "$st" | sed -n 's/.*"member_id":"\([0-9]*\)".*/\1/p')"
    leader="$(echo "$st" | sed -n 's/.*"leader":"\([0-9]*\)".*/\1/p')"
    if [ -z "$me" ] || [ -z "$leader" ] || [ "$leader" = 0 ]; then echo down
    elif [ "$me" = "$leader" ]; then echo leading
    else echo following; fi
}
etcd_healthy() {
    curl -s --max-time 1 "http://$(addr_of "$1"):$((ETCD_CLIENT + $1))/health" 2>/dev/null | grep -q '"health":"true"'
}
etcd_client() { echo "$(addr_of "$1"):$((ETCD_CLIENT + $1))"; }

# --- per-system helpers -----------------------------------------------------

pid_of() { cat "$DIR/$1/$2/pid"; } # system id

all_healthy() { # system: every server serving and exactly one leader
    local sys=$1 leaders=0
    for id in $(seq 1 $N); do
        "${sys}_healthy" "$id" || return 1
    done
    for id in $(seq 1 $N); do
        [ "$("${sys}_role" "$id")" = leading ] && leaders=$((leaders + 1))
    done
    [ "$leaders" = 1 ]
}

leader_of() { # system -> id (empty if none)
    for id in $(seq 1 $N); do
        if [ "$("${1}_role" "$id")" = leading ]; then echo "$id"; return; fi
    done
}

start_cluster() { # system
    local sys=$1
    rm -rf "${DIR:?}/$sys"
    for id in $(seq 1 $N); do "${sys}_config" "$id"; done
    for id in $(seq 1 $N); do "${sys}_start" "$id"; done
    if ! wait_until 60 all_healthy "$sys"; then
        log "$sys: cluster did not become healthy within 60 s"
        for id in $(seq 1 $N); do
            log "$sys/$id: $(alive "$(pid_of "$sys" "$id")" && echo running || echo exited); last log lines:"
            tail -5 "$DIR/$sys/$id/server.log" >&2 || true
        done
        return 1
    fi
}

stop_cluster() { # system
    for id in $(seq 1 $N); do
        [ -f "$DIR/$1/$id/pid" ] && stop_pid "$(pid_of "$1" "$id")"
        rm -f "$DIR/$1/$id/pid"
    done
}

rss_kib() { sed -n 's/^VmRSS:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$1/status" 2>/dev/null || echo 0; }

# --- runs -------------------------------------------------------------------

bench_system() { # system -> the client zab-bench drives it with
    case "$1" in zabzk) echo zk ;; *) echo "$1" ;; esac
}
relabel() { # system: names the system in zab-bench's JSON lines on stdin
    sed "s/^{\"system\":\"$(bench_system "$1")\",/{\"system\":\"$1\",/"
}

run_workloads() { # system
    local sys=$1 leader all="" followers=""
    leader="$(leader_of "$sys")"
    for id in $(seq 1 $N); do
        all="${all:+$all,}$("${sys}_client" "$id")"
        [ "$id" = "$leader" ] || followers="${followers:+$followers,}$("${sys}_client" "$id")"
    done
    log "$sys: leader is server $leader; reads go to $followers"
    # Bounded: every run stops itself after warm-up + duration (+ request
    # timeouts); the outer timeout is a backstop.
    local runs budget pids=""
    for id in $(seq 1 $N); do pids="${pids:+$pids,}$(pid_of "$sys" "$id")"; done
    runs=$(( $(echo "$WORKLOADS" | tr ',' '\n' | wc -l) * $(echo "$SESSIONS" | tr ',' '\n' | wc -l) ))
    budget=$(( runs * (SECS + WARMUP + 30) + 60 ))
    timeout "$budget" "$BENCH" --system "$(bench_system "$sys")" --servers "$all" --read-servers "$followers" \
        --workload "$WORKLOADS" --sessions "$SESSIONS" --duration "$SECS" --warmup "$WARMUP" \
        --server-pids "$pids" | relabel "$sys" | tee -a "$DIR/results.jsonl" >&2 || log "$sys: zab-bench failed (exit $?); results so far are kept"
    local total=0
    for id in $(seq 1 $N); do
        local kib
        kib="$(rss_kib "$(pid_of "$sys" "$id")")"
        total=$((total + kib))
        echo "{\"system\":\"$sys\",\"server\":$id,\"rss_kib\":$kib}" >> "$DIR/rss.jsonl"
    done
}

# --- scale mode --------------------------------------------------------------

declare -A SNAP_COUNT SNAP_SUM
snapshot_poll() { # system file: appends `END_UNIX_MS DURATION_MS SERVER ROLE` for each snapshot a zab server finished since the last poll
    local sys=$1 file=$2 id m count sum role
    case "$sys" in zab|zabzk) ;; *) return 0 ;; esac
    for id in $(seq 1 $N); do
        m="$(curl -s --max-time 1 "http://$(addr_of "$id"):$((ZAB_ADMIN + id))/metrics" 2>/dev/null || true)"
        count="$(echo "$m" | sed -n 's/^zab_snapshot_seconds_count \([0-9]*\).*/\1/p')"
        sum="$(echo "$m" | sed -n 's/^zab_snapshot_seconds_sum \([0-9.e+-]*\).*/\1/p')"
        [ -n "$count" ] && [ -n "$sum" ] || continue
        if [ -n "${SNAP_COUNT[$id]:-}" ] && [ "$count" -gt "${SNAP_COUNT[$id]}" ]; then
            # The time the snapshots since the last poll took, ending now.
            role="$(echo "$m" | sed -n 's/^zab_role{role="\([a-z]*\)"} 1$/\1/p')"
            echo "$(now_ms) $(awk "BEGIN{printf \"%d\", ($sum - ${SNAP_SUM[$id]}) * 1000}") $id ${role:-unknown}" >> "$file"
        fi
        SNAP_COUNT[$id]=$count SNAP_SUM[$id]=$sum
    done
}

recovery_run() { # system: stop every server, start them again, time the first linearizable read
    local sys=$1 all="" t0 t1 t2 line
    for id in $(seq 1 $N); do all="${all:+$all,}$("${sys}_client" "$id")"; done
    log "$sys: stopping every server, then timing the first linearizable read after the restart"
    t0="$(now_ms)"
    stop_cluster "$sys"
    t1="$(now_ms)"
    for id in $(seq 1 $N); do "${sys}_start" "$id"; done
    line="$("$BENCH" --system "$(bench_system "$sys")" --servers "$all" --workload first-read \
        --duration 1200 | relabel "$sys" || true)"
    t2="$(now_ms)"
    printf '{"phase":"recovery","system":"%s","stop_ms":%s,"restart_to_read_ms":%s,"bench":%s}\n' \
        "$sys" "$((t1 - t0))" "$((t2 - t1))" "${line:-null}" | tee -a "$DIR/scale.jsonl" >&2
}

scale_run() { # system: load $SCALE znodes, then $SECS of writes at 64 sessions
    local sys=$1 all="" leader changes=0 t0 t1
    for id in $(seq 1 $N); do all="${all:+$all,}$("${sys}_client" "$id")"; done
    log "$sys: loading $SCALE znodes of 128 B over 64 sessions"
    t0="$(now_ms)"
    timeout 3600 "$BENCH" --system "$(bench_system "$sys")" --servers "$all" --workload load --keys "$SCALE" \
        --sessions 64 --duration 3000 --warmup 0 --op-timeout-ms 10000 \
        | relabel "$sys" | sed 's/^{/{"phase":"load",/' | tee -a "$DIR/scale.jsonl" >&2 || log "$sys: load failed"
    t1="$(now_ms)"
    # Memory at rest: freed memory goes back to the system after a delay
    # (jemalloc's decay time is 10 s; a snapshot may still be finishing).
    sleep 20
    local total=0
    for id in $(seq 1 $N); do total=$((total + $(rss_kib "$(pid_of "$sys" "$id")"))); done
    local disk
    disk="$(du -sk "$DIR/$sys" | cut -f1)"
    printf '{"phase":"size","system":"%s","znodes":%s,"load_s":%s,"rss_kib_all":%s,"bytes_per_znode_per_server":%s,"disk_kib_all":%s}\n' \
        "$sys" "$SCALE" "$(( (t1 - t0) / 1000 ))" "$total" "$(( total * 1024 / N / SCALE ))" "$disk" \
        | tee -a "$DIR/scale.jsonl" >&2
    log "$sys: $SECS s of writes at 64 sessions, watching the leader"
    leader="$(leader_of "$sys")"
    # zab's servers' snapshots are polled from /metrics, so the write run
    # can split its latencies into seconds with and without one.
    local snaplog="$DIR/$sys-snapshots.log" split=()
    rm -f "$snaplog"
    case "$sys" in zab|zabzk) split=(--snapshot-log "$snaplog"); snapshot_poll "$sys" "$snaplog" ;; esac
    "$BENCH" --system "$(bench_system "$sys")" --servers "$all" --workload write --sessions 64 \
        --duration "$SECS" --warmup 1 "${split[@]}" | relabel "$sys" | sed 's/^{/{"phase":"write",/' >> "$DIR/scale.jsonl" &
    BENCH_PID=$!
    while alive "$BENCH_PID"; do
        local now
        now="$(leader_of "$sys")"
        if [ "$now" != "$leader" ]; then changes=$((changes + 1)); leader="$now"; fi
        snapshot_poll "$sys" "$snaplog"
        sleep 1
    done
    wait "$BENCH_PID" || log "$sys: write run failed"
    BENCH_PID=""
    tail -1 "$DIR/scale.jsonl" >&2
    local busy=0
    for id in $(seq 1 $N); do busy=$((busy + $(rss_kib "$(pid_of "$sys" "$id")"))); done
    printf '{"phase":"rss-after-writes","system":"%s","rss_kib_all":%s}\n' "$sys" "$busy" | tee -a "$DIR/scale.jsonl" >&2
    printf '{"phase":"leader","system":"%s","leader_changes":%s}\n' "$sys" "$changes" | tee -a "$DIR/scale.jsonl" >&2
    recovery_run "$sys"
}

scale_report() {
    echo
    echo "scale: $SCALE znodes of 128 B, 3 servers on $(where_servers), $(nproc) cores; raw lines in $DIR/scale.jsonl"
    for sys in $(echo "$SYSTEMS" | tr ',' ' '); do
        local load size write lead busy
        load="$(grep "\"phase\":\"load\",\"system\":\"$sys\"" "$DIR/scale.jsonl" | tail -1)"
        size="$(grep "\"phase\":\"size\",\"system\":\"$sys\"" "$DIR/scale.jsonl" | tail -1)"
        write="$(grep "\"phase\":\"write\",\"system\":\"$sys\"" "$DIR/scale.jsonl" | tail -1)"
        lead="$(grep "\"phase\":\"leader\",\"system\":\"$sys\"" "$DIR/scale.jsonl" | tail -1)"
        busy="$(grep "\"phase\":\"rss-after-writes\",\"system\":\"$sys\"" "$DIR/scale.jsonl" | tail -1)"
        printf '%-5s load %8s/s (errors %s)  RSS %6s MiB all  %4s B/znode/server  disk %6s MiB  writes@64 %7s/s p99 %6s us p999 %7s us errors %s  leader changes %s\n' "$sys" \
            "$(echo "$load" | field ops_per_sec | cut -d. -f1)" "$(echo "$load" | field errors)" \
            "$(( $(echo "$size" | field rss_kib_all) / 1024 ))" "$(echo "$size" | field bytes_per_znode_per_server)" \
            "$(( $(echo "$size" | field disk_kib_all) / 1024 ))" \
            "$(echo "$write" | field ops_per_sec | cut -d. -f1)" "$(echo "$write" | field p99_us)" \
            "$(echo "$write" | field p999_us)" "$(echo "$write" | field errors)" "$(echo "$lead" | field leader_changes)"
        local rec snap_p99 quiet_p99
        rec="$(grep "\"phase\":\"recovery\",\"system\":\"$sys\"" "$DIR/scale.jsonl" | tail -1)"
        snap_p99="$(echo "$write" | field snapshot_p99_us)"
        quiet_p99="$(echo "$write" | field quiet_p99_us)"
        if [ -n "$snap_p99" ]; then
            printf '      seconds with a snapshot being written: %s (p99 %s us, p999 %s us); without: %s (p99 %s us, p999 %s us); p99 ratio %s\n' \
                "$(echo "$write" | field snapshot_secs)" "$snap_p99" "$(echo "$write" | field snapshot_p999_us)" \
                "$(echo "$write" | field quiet_secs)" "$quiet_p99" "$(echo "$write" | field quiet_p999_us)" \
                "$(awk "BEGIN{ if ($quiet_p99 > 0) printf \"%.2f\", $snap_p99 / $quiet_p99; else print \"-\" }")"
        fi
        printf '      RSS right after the write run: %s MiB all\n' "$(( $(echo "$busy" | field rss_kib_all) / 1024 ))"
        printf '      recovery: stop %s ms, then start to the first linearizable read %s ms\n' \
            "$(echo "$rec" | field stop_ms)" "$(echo "$rec" | field restart_to_read_ms)"
    done
}

since_kill() { # json prefix kill_ms -> ms from the kill to the first write after the pause, or null
    local end
    echo "$1" | grep -q "\"$2recovered\":true" || { echo null; return; }
    end="$(echo "$1" | sed -n "s/.*\"$2gap_end_unix_ms\":\([0-9]*\).*/\1/p")"
    # The longest pause ended before the kill: the kill caused none longer
    # than that noise.
    if [ -z "$end" ] || [ "$end" -lt "$3" ]; then echo 0; else echo $(($end - $3)); fi
}

failover_trials() { # system
    local sys=$1
    for t in $(seq 1 "$TRIALS"); do
        local leader order="" pid kill_ms line
        if ! wait_until 60 all_healthy "$sys"; then
            log "$sys: not healthy before trial $t; stopping the trials"
            return
        fi
        leader="$(leader_of "$sys")"
        for id in $(seq 1 $N); do [ "$id" = "$leader" ] || order="${order:+$order,}$("${sys}_client" "$id")"; done
        order="$order,$("${sys}_client" "$leader")"
        : > "$DIR/failover.err"
        timeout 60 "$BENCH" --system "$(bench_system "$sys")" --workload failover --servers "$order" \
            --duration 40 --op-timeout-ms 500 > "$DIR/failover.out" 2> "$DIR/failover.err" &
        BENCH_PID=$!
        if ! wait_until 15 grep -q '^ready' "$DIR/failover.err"; then
            log "$sys: failover writer never got ready: $(tail -2 "$DIR/failover.err")"
            kill "$BENCH_PID" 2>/dev/null || true
            wait "$BENCH_PID" 2>/dev/null || true
            BENCH_PID=""
            return
        fi
        pid="$(pid_of "$sys" "$leader")"
        kill_ms="$(now_ms)"
        kill -9 "$pid"
        wait "$BENCH_PID" || true
        BENCH_PID=""
        line="$(grep '^{' "$DIR/failover.out" | tail -1)"
        local cluster session
        cluster="$(since_kill "$line" "" "$kill_ms")"
        session="$(since_kill "$line" session_ "$kill_ms")"
        echo "{\"system\":\"$sys\",\"trial\":$t,\"killed\":$leader,\"recovery_ms\":$cluster,\"session_recovery_ms\":$session,\"bench\":${line:-null}}" >> "$DIR/failover.jsonl"
        log "$sys: trial $t: killed server $leader; first write after $cluster ms (fresh sessions), $session ms (one held session)"
        [ "$cluster" != null ] || log "$sys: trial $t: no recovery seen: $line $(tail -1 "$DIR/failover.err")"
        wait "$pid" 2>/dev/null || true
        "${sys}_start" "$leader"
    done
    wait_until 60 all_healthy "$sys" || log "$sys: not healthy after the last trial"
}

# --- report -----------------------------------------------------------------

pct() { # q: nearest-rank percentile of sorted numbers on stdin
    awk -v q="$1" '{ a[NR] = $1 } END { i = int(NR * q); if (i < NR * q) i++; if (i < 1) i = 1; print a[i] }'
}
field() { sed -n "s/.*\"$1\":\([^,}]*\).*/\1/p" | tr -d '"'; } # name, reads one JSON line

report() {
    echo
    echo "== throughput (ops/s) and latency (us), 3 servers each on $(where_servers), ${SECS}s per run after ${WARMUP}s warm-up"
    echo "   ratio = zab / best of zk and etcd (ops/s: higher is better for zab; p99: lower is better for zab);"
    echo "   zabzk = our ensemble through ZooKeeper's protocol and client; zk-proto = zabzk ops/s / zk ops/s"
    printf '%-18s %4s | %9s %7s %8s | %9s %7s %8s | %9s %7s %8s | %9s %7s %8s | %6s %6s %8s\n' \
        workload sess "zab ops/s" p50 p99 "zabzk o/s" p50 p99 "zk ops/s" p50 p99 "etcd op/s" p50 p99 "x ops" "x p99" "zk-proto"
    local w s
    for w in $(echo "$WORKLOADS" | tr ',' ' '); do
        for s in $(echo "$SESSIONS" | tr ',' ' '); do
            [ "$w" = write-latency ] && [ "$s" != "$(echo "$SESSIONS" | cut -d, -f1)" ] && continue
            [ "$w" = write-latency ] && s=1
            local cells="" zab_ops="" zab_p99="" best_ops="" best_p99="" zabzk_ops="" zk_ops="" sys
            for sys in zab zabzk zk etcd; do
                local line ops p50 p99 errs
                line="$(grep "\"system\":\"$sys\",\"workload\":\"$w\",\"sessions\":$s," "$DIR/results.jsonl" 2>/dev/null | tail -1 || true)"
                if [ -z "$line" ]; then cells="$cells$(printf '| %9s %7s %8s ' - - -)"; continue; fi
                ops="$(echo "$line" | field ops_per_sec)"; p50="$(echo "$line" | field p50_us)"
                p99="$(echo "$line" | field p99_us)"; errs="$(echo "$line" | field errors)"
                [ "$errs" != 0 ] && p99="${p99}!"
                cells="$cells$(printf '| %9.0f %7s %8s ' "$ops" "$p50" "$p99")"
                p99="${p99%!}"
                if [ "$sys" = zab ]; then zab_ops=$ops; zab_p99=$p99
                elif [ "$sys" = zabzk ]; then zabzk_ops=$ops
                else
                    [ "$sys" = zk ] && zk_ops=$ops
                    if [ -z "$best_ops" ] || awk "BEGIN{exit !($ops > $best_ops)}"; then best_ops=$ops; fi
                    if [ -z "$best_p99" ] || [ "$p99" -lt "$best_p99" ]; then best_p99=$p99; fi
                fi
            done
            local rops=- rp99=-
            if [ -n "$zab_ops" ] && [ -n "$best_ops" ]; then
                rops="$(awk "BEGIN{ if ($best_ops > 0) printf \"%.2f\", $zab_ops / $best_ops; else print \"-\" }")"
                rp99="$(awk "BEGIN{ if ($best_p99 > 0) printf \"%.2f\", $zab_p99 / $best_p99; else print \"-\" }")"
            fi
            local rzk=-
            if [ -n "$zabzk_ops" ] && [ -n "$zk_ops" ]; then
                rzk="$(awk "BEGIN{ if ($zk_ops > 0) printf \"%.2f\", $zabzk_ops / $zk_ops; else print \"-\" }")"
            fi
            printf '%-18s %4s %s| %6s %6s %8s\n' "$w" "$s" "$cells" "$rops" "$rp99" "$rzk"
        done
    done
    echo "   (! = the run had errors; see $DIR/results.jsonl)"
    echo
    echo "== server CPU-seconds per 1,000 operations (user + system, all 3 servers, measured part only)"
    echo "   ratio = zab / the lowest of zk and etcd (lower is better for zab)"
    printf '%-18s %4s | %8s %8s %8s %8s | %6s\n' workload sess zab zabzk zk etcd "x cpu"
    for w in $(echo "$WORKLOADS" | tr ',' ' '); do
        for s in $(echo "$SESSIONS" | tr ',' ' '); do
            [ "$w" = write-latency ] && [ "$s" != "$(echo "$SESSIONS" | cut -d, -f1)" ] && continue
            [ "$w" = write-latency ] && s=1
            local row="" zab_cpu="" best_cpu="" sys
            for sys in zab zabzk zk etcd; do
                local cpu
                cpu="$(grep "\"system\":\"$sys\",\"workload\":\"$w\",\"sessions\":$s," "$DIR/results.jsonl" 2>/dev/null | tail -1 | field server_cpu_ms_per_op || true)"
                if [ -z "$cpu" ]; then row="$row$(printf ' %8s' -)"; continue; fi
                row="$row$(printf ' %8.3f' "$cpu")"
                if [ "$sys" = zab ]; then zab_cpu=$cpu
                elif [ "$sys" != zabzk ] && { [ -z "$best_cpu" ] || awk "BEGIN{exit !($cpu < $best_cpu)}"; }; then best_cpu=$cpu; fi
            done
            local rcpu=-
            if [ -n "$zab_cpu" ] && [ -n "$best_cpu" ]; then
                rcpu="$(awk "BEGIN{ if ($best_cpu > 0) printf \"%.2f\", $zab_cpu / $best_cpu; else print \"-\" }")"
            fi
            printf '%-18s %4s |%s | %6s\n' "$w" "$s" "$row" "$rcpu"
        done
    done
    echo
    echo "== resident memory after the runs (VmRSS, MiB)"
    local sys
    for sys in zab zabzk zk etcd; do
        grep -q "\"system\":\"$sys\"" "$DIR/rss.jsonl" 2>/dev/null || continue
        printf '%-5s' "$sys"
        grep "\"system\":\"$sys\"" "$DIR/rss.jsonl" | while read -r line; do
            printf '  server %s: %6.1f' "$(echo "$line" | field server)" "$(awk "BEGIN{print $(echo "$line" | field rss_kib) / 1024}")"
        done
        echo
    done
    if [ "$FAILOVER" = 1 ] && [ -f "$DIR/failover.jsonl" ]; then
        echo
        echo "== leader failover: kill -9 the leader, time until the first successful write (ms)"
        echo "   fresh = a writer that opens a new session after any failure (cluster availability);"
        echo "   held  = a writer that keeps one session (what one application session sees)"
        for sys in zab zabzk zk; do
            local kind key vals n failed
            for kind in fresh held; do
                key=recovery_ms; [ "$kind" = held ] && key=session_recovery_ms
                vals="$(grep "\"system\":\"$sys\"" "$DIR/failover.jsonl" | sed -n "s/.*\"$key\":\([0-9]*\),.*/\1/p" | sort -n || true)"
                failed="$(grep "\"system\":\"$sys\"" "$DIR/failover.jsonl" | grep -c "\"$key\":null" || true)"
                n="$(echo "$vals" | grep -c . || true)"
                [ "$n" -gt 0 ] || { [ "$failed" -gt 0 ] && echo "$sys $kind: no trial recovered ($failed failed)"; continue; }
                printf '%-5s %-5s trials %2s  p50 %6s  p99 %6s  min %6s  max %6s  (no recovery seen: %s)\n' "$sys" "$kind" "$n" \
                    "$(echo "$vals" | pct 0.50)" "$(echo "$vals" | pct 0.99)" \
                    "$(echo "$vals" | head -1)" "$(echo "$vals" | tail -1)" "$failed"
            done
        done
    fi
}

# --- main -------------------------------------------------------------------

mkdir -p "$DIR"
if [ -z "$BENCH_NETNS" ]; then
    install_missing
    build
fi
if [ -n "$RTT_MS" ] && [ -z "$BENCH_NETNS" ]; then
    # Hold the hosts up, then run this script again on the client host.
    nice -n 15 cargo build --quiet --release -p zab-tests --bin netns
    rm -f "$DIR/netns.out"
    mkfifo "$DIR/netns.out"
    "$TARGET/release/netns" up --tag b --servers "$N" --rtt-ms "$RTT_MS" > "$DIR/netns.out" &
    NETNS_PID=$!
    client_ns=""
    while read -r -t 60 word name _ ns; do
        [ "$word" = host ] && [ "$name" = client ] && client_ns="$ns"
        [ "$word" = ready ] && break
    done < "$DIR/netns.out"
    rm -f "$DIR/netns.out"
    [ -n "$client_ns" ] || { log "the multi-host net did not come up"; exit 1; }
    log "$N hosts and a client host at ${RTT_MS} ms round trip (namespaces ${client_ns%c}*)"
    set +e
    BENCH_NETNS="${client_ns%c}" ip netns exec "$client_ns" bash "$0" "${ARGS[@]}"
    exit $? # the cleanup trap stops the holder
fi
stop_all
rm -f "$DIR/results.jsonl" "$DIR/rss.jsonl" "$DIR/failover.jsonl" "$DIR/scale.jsonl"
if [ -z "$ZK_HEAP_MB" ]; then
    if [ -n "$SCALE" ]; then ZK_HEAP_MB=3000; else ZK_HEAP_MB=1000; fi
fi
if [ -n "$SCALE" ]; then
    for sys in $(echo "$SYSTEMS" | tr ',' ' '); do
        case "$sys" in zab|zabzk|zk) ;; *) log "--scale runs zab, zabzk and zk only"; exit 2 ;; esac
        log "$sys: starting a 3-server cluster under $DIR/$sys"
        if start_cluster "$sys"; then scale_run "$sys"; fi
        stop_cluster "$sys"
    done
    scale_report
    exit 0
fi
for sys in $(echo "$SYSTEMS" | tr ',' ' '); do
    case "$sys" in zab|zabzk|zk|etcd) ;; *) log "unknown system $sys"; exit 2 ;; esac
    log "$sys: starting a 3-server cluster under $DIR/$sys"
    if ! start_cluster "$sys"; then
        stop_cluster "$sys"
        continue
    fi
    run_workloads "$sys"
    if [ "$FAILOVER" = 1 ] && [ "$sys" != etcd ]; then
        log "$sys: $TRIALS failover trials"
        failover_trials "$sys"
    fi
    stop_cluster "$sys"
done
report
