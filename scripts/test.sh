#!/usr/bin/env bash
# Runs every test: starts PostgreSQL (installing it if needed), installs headless Chromium
# for the web console's test when it is missing, builds the actor images and starts a second
# Docker engine (scripts/dockerd2.sh) when a Docker engine is here, then runs the
# workspace's tests against both databases, then a property-based run of the OpenAPI document
# (scripts/schemathesis.sh). On exit it stops what it started.
# Extra arguments go to `cargo test` (e.g. `scripts/test.sh -- blobs`).
set -euo pipefail
cd "$(dirname "$0")/.."

# The scripts/<name>.sh servers this run started, stopped on exit.
started=()
trap 'for s in ${started[@]+"${started[@]}"}; do scripts/$s.sh stop; done' EXIT

if [ -z "${WHARF_TEST_POSTGRES_URL:-}" ]; then
    eval "$(scripts/postgres.sh start)"
    started+=(postgres)
fi
export WHARF_TEST_POSTGRES_URL

# The console's test (functional-tests/tests/console.rs) drives Chromium through chromedriver.
if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
    if [ "$(id -u)" -eq 0 ]; then
        echo "test.sh: installing Chromium and chromedriver from Debian's packages" >&2
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq >&2
        apt-get install -y -qq chromium chromium-driver >&2
    elif [ "${CI:-}" = "true" ]; then
        echo "test.sh: Chromium is not installed and this is not root, and CI needs it" >&2
        exit 1
    else
        echo "test.sh: Chromium is not installed (apt-get install chromium chromium-driver); the console test will skip" >&2
    fi
fi

if docker info >/dev/null 2>&1; then
    bash images/build.sh
    # The compilers of the JoyOI judge; a minute or two the first time, instant after that.
    if ! bash images/build-full.sh; then
        if [ "${CI:-}" = "true" ]; then
            echo "test.sh: the full image (images/build-full.sh) did not build, and CI needs it" >&2
            exit 1
        fi
        echo "test.sh: the full image did not build; the tests that need it will skip" >&2
    fi
    if [ -z "${WHARF_TEST_DOCKER2:-}" ]; then
        started+=(dockerd2)
        if docker2=$(scripts/dockerd2.sh start); then
            eval "$docker2"
        elif [ "${CI:-}" = "true" ]; then
            echo "test.sh: the second Docker engine did not start, and CI needs it" >&2
            exit 1
        else
            echo "test.sh: the second Docker engine did not start; its tests will skip" >&2
        fi
    fi
    export WHARF_TEST_DOCKER2
elif [ "${CI:-}" = "true" ]; then
    echo "test.sh: no Docker engine answers, and CI needs one" >&2
    exit 1
fi

cargo test --workspace "$@"

# The OpenAPI document against the service it describes: a property-based run (PyPI's
# schemathesis), after the tests so that the debug build is there. Not when only some tests
# were asked for.
if [ "$#" -eq 0 ]; then
    if ! command -v python3 >/dev/null 2>&1 && [ "$(id -u)" -eq 0 ]; then
        apt-get install -y -qq python3 python3-venv >&2
    fi
    bash scripts/schemathesis.sh
fi
