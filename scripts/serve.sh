#!/usr/bin/env bash
# Starts wharf with its embedded defaults on a machine that has only the Rust toolchain and
# a Docker engine: builds the actor images the shipped examples run on when they are missing
# (wharf/actor:latest for `hello` and `judge`, wharf/full:latest with the compilers of JoyOI's
# judge; no registry needed, both builds are skipped when up to date), then runs
# `wharf serve` with any arguments given here.
set -euo pipefail
cd "$(dirname "$0")/.."

if docker info >/dev/null 2>&1; then
    bash images/build.sh
    bash images/build-full.sh
else
    echo "serve.sh: no Docker engine answers at the default socket; starting anyway: actors wait until a node is healthy" >&2
fi
exec cargo run --release -- serve "$@"
