#!/usr/bin/env bash
# A property-based run of the OpenAPI document against the real service: installs
# schemathesis into a virtual environment under target/ (from PyPI, once), starts the debug
# build of `wharf serve` on a loopback port with a fresh SQLite database and no nodes (so no
# container runs), and sends at least 5,000 generated requests with every check
# (scripts/schemathesis.toml names the few exceptions and why). Fails on any mismatch.
# Arguments go to `schemathesis run` (e.g. `--max-examples 50`).
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION=4.32.5
venv=target/schemathesis-venv
if [ ! -x "$venv/bin/schemathesis" ] || ! "$venv/bin/schemathesis" --version | grep -q "$VERSION"; then
    echo "schemathesis.sh: installing schemathesis $VERSION into $venv" >&2
    if ! python3 -m venv "$venv" >/dev/null 2>&1; then
        apt-get update -qq >&2
        apt-get install -y -qq python3-venv >&2
        python3 -m venv "$venv"
    fi
    "$venv/bin/pip" install -q "schemathesis==$VERSION" >&2
fi

[ -x target/debug/wharf ] || cargo build
work=$(mktemp -d)
server=""
trap '[ -n "$server" ] && kill "$server" 2>/dev/null; rm -rf "$work"' EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat > "$work/wharf.toml" <<TOML
nodes = []
[server]
bind = "127.0.0.1:$port"
[database]
url = "sqlite://$work/wharf.db"
TOML
target/debug/wharf serve --config "$work/wharf.toml" > "$work/service.log" 2>&1 &
server=$!
for _ in $(seq 100); do
    curl -fs "http://127.0.0.1:$port/healthz" >/dev/null && break
    kill -0 "$server" 2>/dev/null || { cat "$work/service.log" >&2; exit 1; }
    sleep 0.1
done

status=0
"$venv/bin/schemathesis" --config-file scripts/schemathesis.toml run "http://127.0.0.1:$port/api-docs/openapi.json" \
    --max-examples 150 --seed "${SCHEMATHESIS_SEED:-1}" --workers 2 --warnings off "$@" \
    | tee "$work/run.txt" || status=$?
if [ "$status" -ne 0 ]; then
    echo "schemathesis.sh: the service and its document disagree (above); the service's log is $work/service.log" >&2
    trap - EXIT
    kill "$server" 2>/dev/null
    exit "$status"
fi
cases=$(grep -oE '[0-9]+ generated' "$work/run.txt" | grep -oE '^[0-9]+' || echo 0)
if [ "${SCHEMATHESIS_MIN_CASES:-5000}" -gt "$cases" ]; then
    echo "schemathesis.sh: only $cases cases ran, fewer than ${SCHEMATHESIS_MIN_CASES:-5000}" >&2
    exit 1
fi
echo "schemathesis.sh: $cases cases, no mismatch"
