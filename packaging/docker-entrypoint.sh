#!/bin/sh
# Entrypoint of the zab container image (packaging/Dockerfile).
#
# Serves by default:  zab-server --config "${ZAB_CONFIG:-/etc/zab/zab.toml}" ARGS...
# where ARGS are the container's arguments (flags such as --id 2 or
# --check-config). A first argument that is not a flag runs instead of the
# server: `inspect DIR` and `restore ...` go to zab-server, anything else
# (e.g. `zabctl ...`, `sh`) runs as given.
#
# Server id: when ZAB_SERVER_ID is not set and the host name ends in
# -<number>, as a StatefulSet's pods do (zab-0, zab-1, ...), the id is that
# number plus one (zab-0 -> 1), because server ids start at 1. An explicit
# ZAB_SERVER_ID is kept, and so is a top-level `id` in the configuration
# file (the environment would override it, so none is derived then).
set -eu

config="${ZAB_CONFIG:-/etc/zab/zab.toml}"

# Whether the configuration file sets `id` before its first table.
file_sets_id() {
    [ -r "$config" ] || return 1
    awk 'BEGIN { f = 0 }
         /^[[:space:]]*\[/ { exit }
         /^[[:space:]]*id[[:space:]]*=/ { f = 1; exit }
         END { exit f ? 0 : 1 }' "$config"
}

if [ -z "${ZAB_SERVER_ID:-}" ] && ! file_sets_id; then
    # Docker and Kubernetes set HOSTNAME in the environment (the pod name).
    # shellcheck disable=SC3028
    host="${HOSTNAME:-}"
    if [ -z "$host" ]; then
        host="$(hostname 2>/dev/null || true)"
    fi
    case "$host" in
        *-*)
            ordinal="${host##*-}"
            case "$ordinal" in
                '' | *[!0-9]*) ;;
                *)
                    # Drop leading zeros: some shells read 08 as octal.
                    while [ "${#ordinal}" -gt 1 ] && [ "${ordinal#0}" != "$ordinal" ]; do
                        ordinal="${ordinal#0}"
                    done
                    ZAB_SERVER_ID=$((ordinal + 1))
                    export ZAB_SERVER_ID
                    echo "docker-entrypoint: ZAB_SERVER_ID=$ZAB_SERVER_ID (host name $host)" >&2
                    ;;
            esac
            ;;
    esac
fi

case "${1:-}" in
    '' | -*) exec zab-server --config "$config" "$@" ;;
    inspect | restore | verify-backup) exec zab-server "$@" ;;
    *) exec "$@" ;;
esac
