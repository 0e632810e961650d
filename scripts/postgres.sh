#!/usr/bin/env bash
# Starts a throwaway PostgreSQL server for the tests, installing it from Debian's packages
# when it is missing, and prints the URL the tests should use.
#
#   eval "$(scripts/postgres.sh start)"   # exports WHARF_TEST_POSTGRES_URL
#   scripts/postgres.sh stop
#
# The cluster lives in $WHARF_PG_DIR (default /tmp/wharf-test-pg), listens on 127.0.0.1
# only, on $WHARF_PG_PORT (default 55432), and trusts local connections: it is for tests.
set -euo pipefail

dir=${WHARF_PG_DIR:-/tmp/wharf-test-pg}
port=${WHARF_PG_PORT:-55432}

log() { echo "postgres.sh: $*" >&2; }

find_bin() {
    local found
    found=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
    if [ -z "$found" ]; then
        if [ "$(id -u)" -ne 0 ]; then
            log "PostgreSQL is not installed and this is not root: install the postgresql package"
            exit 1
        fi
        log "installing PostgreSQL from Debian's packages"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq >&2
        apt-get install -y -qq postgresql >&2
        found=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
    fi
    echo "$found"
}

# Runs a command as the cluster's owner: `postgres` when we are root (initdb refuses root).
as_owner() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

start() {
    local bin
    bin=$(find_bin)
    if [ ! -f "$dir/PG_VERSION" ]; then
        rm -rf "$dir"
        mkdir -p "$dir"
        [ "$(id -u)" -eq 0 ] && chown postgres: "$dir"
        as_owner "$bin/initdb" -D "$dir" -U wharf --auth=trust -E UTF8 >/dev/null
    fi
    if ! as_owner "$bin/pg_ctl" -D "$dir" status >/dev/null 2>&1; then
        as_owner "$bin/pg_ctl" -D "$dir" -l "$dir/server.log" -w -t 60 \
            -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c max_connections=300 -c fsync=off" start >/dev/null
        log "PostgreSQL running on 127.0.0.1:$port (data in $dir)"
    fi
    echo "export WHARF_TEST_POSTGRES_URL=postgres://wharf@127.0.0.1:$port/postgres"
}

stop() {
    local bin
    bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
    if [ -n "$bin" ] && [ -f "$dir/PG_VERSION" ]; then
        as_owner "$bin/pg_ctl" -D "$dir" -m fast stop >/dev/null 2>&1 || true
    fi
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
