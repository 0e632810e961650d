#!/usr/bin/env bash
# Builds the runner (images/runner) as a fully static x86_64 executable, checks that it
# is static, and prints the path of a stripped copy on stdout. Used by build.sh and
# build-full.sh; RUNNER=/path/to/runner skips the build and uses that file instead.
#
# The static build has its own target dir (target/static) so that it does not
# invalidate the workspace's ordinary build cache.
set -euo pipefail

die() { echo "build-runner.sh: $*" >&2; exit 1; }

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
target=x86_64-unknown-linux-gnu

is_static() {
    # ldd fails ("not a dynamic executable") on static binaries; without ldd, trust file(1).
    if command -v ldd >/dev/null 2>&1; then
        ! ldd "$1" >/dev/null 2>&1
    elif command -v file >/dev/null 2>&1; then
        file -L "$1" | grep -q 'statically linked'
    else
        return 0
    fi
}

if [[ -n "${RUNNER:-}" ]]; then
    [[ -x "$RUNNER" ]] || die "RUNNER=$RUNNER is not an executable file"
    is_static "$RUNNER" || die "RUNNER=$RUNNER is not statically linked"
    echo "$RUNNER"
    exit 0
fi

command -v cargo >/dev/null 2>&1 || die "cargo is not installed; install Rust or pass RUNNER=/path/to/static/runner"
(
    cd "$repo"
    # Cargo's progress goes to stderr, keeping stdout for the path.
    RUSTFLAGS='-C target-feature=+crt-static -C relocation-model=static' \
        cargo build --release -p wharf-runner --target "$target" --target-dir target/static >&2
) || die "cargo build of wharf-runner failed"

built="$repo/target/static/$target/release/runner"
[[ -x "$built" ]] || die "cargo finished but $built does not exist"
is_static "$built" || die "$built is not statically linked"

stripped="$repo/target/static/runner"
if command -v strip >/dev/null 2>&1; then
    strip -o "$stripped.tmp" "$built" || die "strip $built failed"
else
    cp "$built" "$stripped.tmp" || die "cannot copy $built"
fi
mv -f "$stripped.tmp" "$stripped"
echo "$stripped"
