#!/usr/bin/env bash
# Requests per second of the API, release build on SQLite, measured with wrk from a second
# process on loopback. The baseline, measured in the same run, is a route that touches no
# database (an unknown path answered 404 by the router): the ratio shows what the database
# read and the JSON shaping of an instance cost on top of bare HTTP.
#
#   bench/api.sh [seconds] [connections]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
conns=${2:-32}
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
cargo build --release -q -p wharf
dir=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
(cd "$dir" && RUST_LOG=warn exec "$OLDPWD/target/release/wharf" serve --bind "127.0.0.1:$port") &
pid=$!
trap 'kill $pid 2>/dev/null; rm -rf "$dir"' EXIT
api="http://127.0.0.1:$port/api/v1"
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
curl -sf -X PUT "$api/StateMachine" -H 'content-type: application/json' -d '{"name":"judge","body":"1"}' >/dev/null
blob=$(curl -sf -X PUT "$api/Blob/raw?name=Main.c" --data-binary 'int main(){}' | sed 's/.*"id":"\([^"]*\)".*/\1/')
body=$(printf '{"name":"judge","initialBlobs":[{"id":"%s","name":"Main.c"}],"parameters":{"Host":"http://127.0.0.1:9/x"},"priority":1}' "$blob")
id=$(curl -sf -X PUT "$api/StateMachineInstance" -H 'content-type: application/json' -d "$body" | sed 's/.*"id":"\([^"]*\)".*/\1/')
for i in $(seq 1000); do curl -sf -X PUT "$api/StateMachineInstance" -H 'content-type: application/json' -d "$body" >/dev/null; done

measure() {
    wrk -t2 -c"$conns" -d"${secs}s" --latency "$1" | awk '/Requests\/sec/ {rps=$2} /^ +50%/ {p50=$2} /^ +99%/ {p99=$2} END {printf "%s %s %s\n", rps, p50, p99}'
}
read -r base_rps base_p50 base_p99 < <(measure "http://127.0.0.1:$port/nothing")
read -r get_rps get_p50 get_p99 < <(measure "$api/StateMachineInstance/$id")
read -r list_rps list_p50 list_p99 < <(measure "$api/StateMachineInstance/All?page=1&pageSize=20")
printf '%-44s %10s %8s %8s %7s\n' route req/s p50 p99 ratio
printf '%-44s %10s %8s %8s %7s\n' "baseline: unknown path (404, no database)" "$base_rps" "$base_p50" "$base_p99" 1.00
printf '%-44s %10s %8s %8s %7.2f\n' "GET /StateMachineInstance/{id}" "$get_rps" "$get_p50" "$get_p99" "$(echo "$get_rps / $base_rps" | bc -l)"
printf '%-44s %10s %8s %8s %7.2f\n' "GET /StateMachineInstance/All (20 of 1001)" "$list_rps" "$list_p50" "$list_p99" "$(echo "$list_rps / $base_rps" | bc -l)"
echo "peak RSS of the service: $(awk '/VmHWM/ {print $2/1024 " MiB"}' /proc/$pid/status)"
