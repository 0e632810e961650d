#!/usr/bin/env bash
# Starts a second, throwaway Docker engine for the tests that need two nodes, and prints
# the address the tests should use.
#
#   eval "$(scripts/dockerd2.sh start)"   # exports WHARF_TEST_DOCKER2
#   scripts/dockerd2.sh stop
#
# The engine lives in $WHARF_DOCKERD2_DIR (default /tmp/wharf-dockerd2): its data, exec
# root, pid file, log (dockerd.log) and unix socket (docker.sock). It is independent of the
# machine's engine: its own daemon.json (so /etc/docker/daemon.json does not apply), its own
# engine ID and containerd namespace, no bridge and no iptables rules. When no system
# containerd runs, dockerd starts its own under this directory.
#
# Every fresh start begins with an empty engine (no images, no containers): the service is
# expected to load images onto nodes that lack them. `stop` removes the containers, stops
# the engine and deletes its data; the log stays. It uses the storage driver of the
# machine's engine when that one answers (override with WHARF_DOCKERD2_STORAGE_DRIVER).
# Needs root, like any dockerd.
set -euo pipefail

dir=${WHARF_DOCKERD2_DIR:-/tmp/wharf-dockerd2}
sock="$dir/docker.sock"
pidfile="$dir/dockerd.pid"
logfile="$dir/dockerd.log"
host="unix://$sock"

log() { echo "dockerd2.sh: $*" >&2; }
die() { log "$*"; exit 1; }

# Whether process $1 is gone: not there, or a zombie waiting for PID 1 to reap it.
gone() {
    [ ! -e "/proc/$1/status" ] || grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null
}

# Whether process $1 is alive and named $2 (a recycled pid is not ours).
alive() {
    [ -n "$1" ] && grep -q "^$2" "/proc/$1/comm" 2>/dev/null && ! gone "$1"
}

# The daemon's pid when it is running, else nothing.
running_pid() {
    local pid
    pid=$(cat "$pidfile" 2>/dev/null || true)
    if alive "$pid" dockerd; then
        echo "$pid"
    fi
}

# Sends signal $1 to process $2 and waits up to $3 tenths of a second for it to die.
kill_and_wait() {
    local waited=0
    kill "-$1" "$2" 2>/dev/null || true
    while ! gone "$2" && [ "$waited" -lt "$3" ]; do
        sleep 0.1
        waited=$((waited + 1))
    done
}

# The containerd shims serving this engine's containers: they outlive a killed dockerd.
our_shims() {
    local cmdline f
    for f in /proc/[0-9]*/cmdline; do
        cmdline=$(tr '\0' '\n' 2>/dev/null <"$f") || continue
        if printf '%s\n' "$cmdline" | grep -qxF -- "$dir/exec/containerd/containerd.sock"; then
            f=${f#/proc/}
            echo "${f%/cmdline}"
        fi
    done
}

answers() { docker -H "$host" info >/dev/null 2>&1; }

# Unmounts whatever the engine left mounted under $dir, deepest first.
unmount_leftovers() {
    local mnt
    awk -v d="$dir/" 'index($2, d) == 1 { print $2 }' /proc/mounts | sort -r | while read -r mnt; do
        umount -l "$mnt" 2>/dev/null || true
    done
}

start() {
    [ "$(id -u)" -eq 0 ] || die "dockerd needs root"
    command -v dockerd >/dev/null 2>&1 || die "dockerd is not installed (apt-get install docker.io)"
    command -v docker >/dev/null 2>&1 || die "the docker client is not installed"

    if [ -z "$(running_pid)" ]; then
        # A fresh engine every time: drop what a previous run left behind.
        stop
        mkdir -p "$dir/data" "$dir/exec"

        local driver=${WHARF_DOCKERD2_STORAGE_DRIVER:-}
        if [ -z "$driver" ]; then
            driver=$(docker info --format '{{ .Driver }}' 2>/dev/null || true)
        fi
        {
            echo '{'
            [ -n "$driver" ] && echo "  \"storage-driver\": \"$driver\","
            echo "  \"deprecated-key-path\": \"$dir/key.json\","
            echo '  "log-driver": "json-file"'
            echo '}'
        } > "$dir/daemon.json"

        local started=$SECONDS
        # setsid: the engine must outlive this script and not get the caller's signals; -w keeps
        # $! alive as long as dockerd even if setsid has to fork.
        setsid -w dockerd \
            --config-file "$dir/daemon.json" \
            --data-root "$dir/data" \
            --exec-root "$dir/exec" \
            --pidfile "$pidfile" \
            -H "$host" \
            --containerd-namespace wharf-dockerd2 \
            --containerd-plugins-namespace wharf-dockerd2-plugins \
            --bridge none --iptables=false --ip-masq=false --ip-forward=false \
            --userland-proxy=false \
            </dev/null >"$logfile" 2>&1 &
        local launched=$!

        until answers; do
            if ! kill -0 "$launched" 2>/dev/null; then
                tail -n 20 "$logfile" >&2 || true
                die "dockerd exited while starting; log in $logfile"
            fi
            if [ $((SECONDS - started)) -ge 60 ]; then
                tail -n 20 "$logfile" >&2 || true
                kill "$launched" 2>/dev/null || true
                die "dockerd did not answer within 60s; log in $logfile"
            fi
            sleep 0.2
        done
        log "second Docker engine running at $host (driver ${driver:-default}, log in $logfile)"
    elif ! answers; then
        die "dockerd (pid $(running_pid)) runs but does not answer at $host; see $logfile"
    fi
    echo "export WHARF_TEST_DOCKER2=$host"
}

stop() {
    local pid
    pid=$(running_pid)
    if [ -n "$pid" ]; then
        if answers; then
            local ids
            ids=$(docker -H "$host" ps -aq)
            # shellcheck disable=SC2086 # one argument per container id
            [ -z "$ids" ] || docker -H "$host" rm -f -v $ids >/dev/null 2>&1 || true
        fi
        kill_and_wait TERM "$pid" 300
        if alive "$pid" dockerd; then
            log "dockerd (pid $pid) did not stop within 30s; killing it"
            kill_and_wait KILL "$pid" 50
        fi
    fi
    # What a killed dockerd leaves running: its containerd, the shims and their containers.
    local cpid shim child
    cpid=$(cat "$dir/exec/containerd/containerd.pid" 2>/dev/null || true)
    if alive "$cpid" containerd; then
        kill_and_wait TERM "$cpid" 50
        kill_and_wait KILL "$cpid" 50
    fi
    for shim in $(our_shims); do
        for child in $(cat "/proc/$shim"/task/*/children 2>/dev/null); do
            kill_and_wait KILL "$child" 50
        done
        kill_and_wait KILL "$shim" 50
    done
    unmount_leftovers
    rm -rf "$dir/data" "$dir/exec" "$pidfile" "$sock"
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
