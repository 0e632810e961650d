#!/usr/bin/env bash
# Starts a second, throwaway Docker engine for the tests that need two nodes, and prints
# the addresses the tests should use.
#
#   eval "$(scripts/dockerd2.sh start)"   # exports WHARF_TEST_DOCKER2, WHARF_TEST_DOCKER2_TLS
#   scripts/dockerd2.sh stop              #   and WHARF_TEST_DOCKER2_TLS_DIR
#
# The engine lives in $WHARF_DOCKERD2_DIR (default /tmp/wharf-dockerd2): its data, exec
# root, pid file, log (dockerd.log) and unix socket (docker.sock). It is independent of the
# machine's engine: its own daemon.json (so /etc/docker/daemon.json does not apply), its own
# engine ID and containerd namespace, no bridge and no iptables rules. When no system
# containerd runs, dockerd starts its own under this directory.
#
# The engine also listens on tcp://127.0.0.1:$WHARF_DOCKERD2_TLS_PORT (default 23760) with
# TLS, and only answers clients whose certificate its CA signed. The certificates are made
# with openssl in $dir/tls, once, and kept across restarts: the CA (ca.pem, ca-key.pem, to
# sign more clients), the engine's (server-cert.pem, server-key.pem, for 127.0.0.1 and
# localhost) and a client's (cert.pem, key.pem). Keys are ECDSA P-256 in PKCS#8.
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
tls_dir="$dir/tls"
tls_port=${WHARF_DOCKERD2_TLS_PORT:-23760}
tls_host="tcp://127.0.0.1:$tls_port"

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

answers_tls() {
    docker --tlsverify --tlscacert "$tls_dir/ca.pem" --tlscert "$tls_dir/cert.pem" \
        --tlskey "$tls_dir/key.pem" -H "$tls_host" info >/dev/null 2>&1
}

# Makes a new ECDSA P-256 key in PKCS#8 at $1.
new_key() {
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1"
}

# Issues the certificate $1 for key $2, subject CN $3, with the X.509 v3 extensions $4,
# signed by the CA. Only the extensions given here go in, whatever the system's openssl.cnf.
issue() {
    openssl req -new -key "$2" -subj "/CN=$3" |
        openssl x509 -req -CA "$tls_dir/ca.pem" -CAkey "$tls_dir/ca-key.pem" \
            -set_serial "0x$(openssl rand -hex 8)" -days 3650 -sha256 \
            -extfile <(printf '%s\n' "$4") -out "$1"
}

# Makes the CA, the engine's certificate and a client's in $tls_dir, unless all are there.
make_certificates() {
    local f missing=
    for f in ca.pem ca-key.pem server-cert.pem server-key.pem cert.pem key.pem; do
        [ -s "$tls_dir/$f" ] || missing=1
    done
    [ -n "$missing" ] || return 0
    if ! command -v openssl >/dev/null 2>&1; then
        log "installing openssl"
        { apt-get update && apt-get install -y openssl; } >&2 || die "cannot install openssl"
    fi
    rm -rf "$tls_dir"
    mkdir -p "$tls_dir"
    # openssl's chatter goes to a file; set -e stops at the first step that fails.
    exec 3>&2 2>"$dir/openssl.log"
    trap 'exec 2>&3; log "making certificates in $tls_dir failed; see $dir/openssl.log"' EXIT
    new_key "$tls_dir/ca-key.pem"
    openssl req -new -key "$tls_dir/ca-key.pem" -subj "/CN=wharf-dockerd2 test CA" |
        openssl x509 -req -signkey "$tls_dir/ca-key.pem" \
            -set_serial "0x$(openssl rand -hex 8)" -days 3650 -sha256 \
            -extfile <(printf '%s\n' 'basicConstraints=critical,CA:TRUE' \
                'keyUsage=critical,keyCertSign,cRLSign' 'subjectKeyIdentifier=hash') \
            -out "$tls_dir/ca.pem"
    new_key "$tls_dir/server-key.pem"
    issue "$tls_dir/server-cert.pem" "$tls_dir/server-key.pem" "wharf-dockerd2" \
        "basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,DNS:localhost"
    new_key "$tls_dir/key.pem"
    issue "$tls_dir/cert.pem" "$tls_dir/key.pem" "wharf-dockerd2 client" \
        "basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth"
    openssl verify -CAfile "$tls_dir/ca.pem" "$tls_dir/server-cert.pem" "$tls_dir/cert.pem" >/dev/null
    trap - EXIT
    exec 2>&3 3>&-
    log "certificates made in $tls_dir"
}

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

    local tls=

    if [ -z "$(running_pid)" ]; then
        # A fresh engine every time: drop what a previous run left behind.
        stop
        mkdir -p "$dir/data" "$dir/exec"
        make_certificates

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
            -H "$tls_host" \
            --tlsverify \
            --tlscacert "$tls_dir/ca.pem" \
            --tlscert "$tls_dir/server-cert.pem" \
            --tlskey "$tls_dir/server-key.pem" \
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
        answers_tls || die "dockerd answers at $host but not at $tls_host with TLS; see $logfile"
        log "second Docker engine running at $host and $tls_host (driver ${driver:-default}, log in $logfile)"
        tls=1
    elif ! answers; then
        die "dockerd (pid $(running_pid)) runs but does not answer at $host; see $logfile"
    elif answers_tls; then
        tls=1
    else
        # An engine started by an older version of this script: no TLS until it restarts.
        log "dockerd (pid $(running_pid)) does not answer at $tls_host with TLS; its TLS tests" \
            "will skip (scripts/dockerd2.sh stop, then start, to get it)"
    fi
    echo "export WHARF_TEST_DOCKER2=$host"
    if [ -n "$tls" ]; then
        echo "export WHARF_TEST_DOCKER2_TLS=https://127.0.0.1:$tls_port"
        echo "export WHARF_TEST_DOCKER2_TLS_DIR=$tls_dir"
    fi
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
