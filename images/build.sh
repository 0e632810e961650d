#!/usr/bin/env bash
# Builds the default actor image, wharf/actor:latest, with no registry access: a
# FROM-scratch image holding Debian's static busybox with its applet links, the static
# runner at /usr/bin/runner, /tmp and /workdir (the WORKDIR), both world-writable.
#
# Idempotent: the image carries a `wharf.content` label, a hash of everything that goes
# into it; when an image with that label already exists, nothing is built.
#
# Environment:
#   WHARF_ACTOR_IMAGE  image name (default wharf/actor:latest)
#   FORCE=1            build even when the content label matches
#   RUNNER=path        use this static runner instead of building it with cargo
#   BUSYBOX=path       use this static busybox instead of /bin/busybox
set -euo pipefail

die() { echo "build.sh: $*" >&2; exit 1; }

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
image=${WHARF_ACTOR_IMAGE:-wharf/actor:latest}
dockerfile="$here/actor/Dockerfile"

command -v docker >/dev/null 2>&1 || die "docker is not installed"
docker info >/dev/null 2>&1 || die "cannot reach the Docker engine (is dockerd running, may this user use it?)"

is_static() {
    if command -v ldd >/dev/null 2>&1; then
        ! ldd "$1" >/dev/null 2>&1
    elif command -v file >/dev/null 2>&1; then
        file -L "$1" | grep -q 'statically linked'
    else
        return 0
    fi
}

# --- the static busybox -----------------------------------------------------------
busybox=${BUSYBOX:-/bin/busybox}
if [[ -z "${BUSYBOX:-}" ]] && { [[ ! -x "$busybox" ]] || ! is_static "$busybox"; }; then
    echo "build.sh: no static $busybox; installing Debian's busybox-static" >&2
    command -v apt-get >/dev/null 2>&1 || die "apt-get not found; install a static busybox or pass BUSYBOX=/path"
    sudo=()
    if [[ $(id -u) -ne 0 ]]; then
        command -v sudo >/dev/null 2>&1 || die "installing busybox-static needs root; run: apt-get install busybox-static"
        sudo=(sudo)
    fi
    "${sudo[@]}" apt-get update -qq >&2 || die "apt-get update failed"
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq busybox-static >&2 \
        || die "apt-get install busybox-static failed"
fi
[[ -x "$busybox" ]] || die "$busybox is not an executable file"
is_static "$busybox" || die "$busybox is not statically linked"

# --- the static runner ------------------------------------------------------------
runner=$(bash "$here/build-runner.sh") || die "could not build the static runner"

# --- skip when nothing changed ----------------------------------------------------
# This script is hashed too: it defines the file tree below.
content=$(cat "$runner" "$busybox" "$dockerfile" "${BASH_SOURCE[0]}" | sha256sum | cut -c1-32)
existing=$(docker image inspect "$image" --format '{{ index .Config.Labels "wharf.content" }}' 2>/dev/null || true)
if [[ "$existing" == "$content" && "${FORCE:-0}" != 1 ]]; then
    echo "build.sh: $image is up to date (wharf.content=$content)" >&2
    exit 0
fi

# --- assemble the build context ---------------------------------------------------
ctx=$(mktemp -d "${TMPDIR:-/tmp}/wharf-actor.XXXXXX")
trap 'rm -rf "$ctx"' EXIT
root="$ctx/rootfs"
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,etc,root,actor}

install -m 0755 "$busybox" "$root/bin/busybox"
# Every applet as a symlink to /bin/busybox, at the path busybox itself suggests.
"$busybox" --list-full | while read -r applet; do
    [[ -n "$applet" && "$applet" != bin/busybox ]] || continue
    mkdir -p "$root/$(dirname "$applet")"
    ln -sf /bin/busybox "$root/$applet"
done
[[ -L "$root/bin/sh" ]] || die "$busybox has no sh applet"

install -m 0755 "$runner" "$root/usr/bin/runner"

# Writable by any uid, sticky like /tmp, so the image works under --user.
install -d -m 1777 "$root/tmp" "$root/workdir"
chmod 0700 "$root/root"
cat > "$root/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/bin/sh
actor:x:1000:1000:wharf actor:/workdir:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
PASSWD
cat > "$root/etc/group" <<'GROUP'
root:x:0:
actor:x:1000:
nogroup:x:65534:
GROUP
chmod 0644 "$root/etc/passwd" "$root/etc/group"

cp "$dockerfile" "$ctx/Dockerfile"

# --- build ------------------------------------------------------------------------
previous_id=$(docker image inspect "$image" --format '{{ .Id }}' 2>/dev/null || true)
echo "build.sh: building $image (wharf.content=$content)" >&2
docker build --quiet --label "wharf.content=$content" -t "$image" "$ctx" >/dev/null \
    || die "docker build of $image failed"
# The image this one replaced, now untagged, is only garbage (kept if a container uses it).
new_id=$(docker image inspect "$image" --format '{{ .Id }}')
if [[ -n "$previous_id" && "$previous_id" != "$new_id" ]]; then
    docker rmi "$previous_id" >/dev/null 2>&1 || true
fi
size=$(docker image inspect "$image" --format '{{ .Size }}')
echo "build.sh: built $image, $((size / 1024)) KiB" >&2
