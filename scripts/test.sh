#!/usr/bin/env bash
# Runs every test: starts PostgreSQL (installing it if needed), builds the actor image when
# a Docker engine is here, then runs the workspace's tests against both databases.
# Extra arguments go to `cargo test` (e.g. `scripts/test.sh -- blobs`).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -z "${WHARF_TEST_POSTGRES_URL:-}" ]; then
    eval "$(scripts/postgres.sh start)"
    trap 'scripts/postgres.sh stop' EXIT
fi
export WHARF_TEST_POSTGRES_URL

if docker info >/dev/null 2>&1; then
    bash images/build.sh
elif [ "${CI:-}" = "true" ]; then
    echo "test.sh: no Docker engine answers, and CI needs one" >&2
    exit 1
fi

cargo test --workspace "$@"
