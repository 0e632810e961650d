#!/usr/bin/env bash
# Builds the full actor image, wharf/full:latest (gcc, g++, python3, fpc, a headless JDK and
# the runner, as listed in images/full/packages), from
# Debian packages with no registry access: bootstraps a minbase rootfs with mmdebstrap
# (or debootstrap), imports it as wharf/full-base:<suite> with `docker import`, then
# builds images/full/Dockerfile on it (with --network none: the build needs no network, and
# an engine with no default bridge can run no other) to add the runner and the wharf layout.
#
# The Debian mirror is the machine's own: read from /etc/apt/sources.list and
# /etc/apt/sources.list.d/*.list / *.sources; no host is written down here.
#
# Idempotent: the base carries a `wharf.base` label (hash of suite, mirror entries and
# package list) and the image a `wharf.content` label; matching images are not rebuilt.
#
# Environment:
#   WHARF_FULL_IMAGE   image name (default wharf/full:latest)
#   SUITE              Debian suite (default: the machine's VERSION_CODENAME)
#   MIRROR             a mirror URL to use instead of the machine's apt sources
#   FORCE=1            rebuild both the base and the image
#   RUNNER=path        use this static runner instead of building it with cargo
set -euo pipefail

die() { echo "build-full.sh: $*" >&2; exit 1; }
say() { echo "build-full.sh: $*" >&2; }

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
image=${WHARF_FULL_IMAGE:-wharf/full:latest}
packages_file="$here/full/packages"
dockerfile="$here/full/Dockerfile"

command -v docker >/dev/null 2>&1 || die "docker is not installed"
docker info >/dev/null 2>&1 || die "cannot reach the Docker engine"
[[ $(id -u) -eq 0 ]] || die "bootstrapping a Debian rootfs needs root"

# --- suite and mirror -------------------------------------------------------------
suite=${SUITE:-}
if [[ -z "$suite" && -r /etc/os-release ]]; then
    suite=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
fi
[[ -n "$suite" ]] || die "cannot tell the Debian suite; set SUITE (e.g. SUITE=bookworm)"

# Prints the machine's apt entries of type deb, one per line: "URI SUITE SIGNED_BY COMPONENTS..."
# (SIGNED_BY is "-" when there is none or it is an inline key).
host_apt_entries() {
    local files=()
    [[ -r /etc/apt/sources.list ]] && files+=(/etc/apt/sources.list)
    for f in /etc/apt/sources.list.d/*.list; do [[ -r "$f" ]] && files+=("$f"); done
    ((${#files[@]})) && awk '
        /^[ \t]*deb[ \t]/ {
            line = $0; sub(/#.*/, "", line)
            signed = "-"
            if (match(line, /\[[^]]*\]/)) {
                opts = substr(line, RSTART + 1, RLENGTH - 2)
                line = substr(line, 1, RSTART - 1) substr(line, RSTART + RLENGTH)
                n = split(opts, o, /[ \t]+/)
                for (i = 1; i <= n; i++) if (o[i] ~ /^signed-by=/) { signed = substr(o[i], 11) }
            }
            n = split(line, w, /[ \t]+/)
            comps = ""; for (i = 4; i <= n; i++) comps = comps " " w[i]
            if (n >= 4) print w[2], w[3], signed comps
        }' "${files[@]}"
    for f in /etc/apt/sources.list.d/*.sources; do
        [[ -r "$f" ]] || continue
        awk '
            function flush(   nu, ns, i, j, u, s) {
                if (types ~ /(^|[ \t])deb([ \t]|$)/ && tolower(enabled) != "no") {
                    nu = split(uris, u, /[ \t]+/); ns = split(suites, s, /[ \t]+/)
                    for (i = 1; i <= nu; i++) for (j = 1; j <= ns; j++)
                        if (u[i] != "" && s[j] != "") print u[i], s[j], (signed == "" ? "-" : signed), comps
                }
                types = uris = suites = comps = signed = enabled = ""
            }
            /^[ \t]*#/ { next }
            /^[ \t]*$/ { flush(); next }
            /^[^ \t][^:]*:/ {
                key = tolower(substr($0, 1, index($0, ":") - 1))
                val = substr($0, index($0, ":") + 1); gsub(/^[ \t]+|[ \t]+$/, "", val)
                if (key == "types") types = val
                else if (key == "uris") uris = val
                else if (key == "suites") suites = val
                else if (key == "components") comps = val
                else if (key == "enabled") enabled = val
                else if (key == "signed-by" && val ~ /^\//) signed = val
            }
            END { flush() }' "$f"
    done
}

# mirror_lines: sources.list lines for the suite and its -updates/-security companions.
mirror_lines=()
if [[ -n "${MIRROR:-}" ]]; then
    mirror_lines=("deb $MIRROR $suite main")
else
    while read -r uri entry_suite signed comps; do
        [[ "$entry_suite" == "$suite" || "$entry_suite" == "$suite"-* ]] || continue
        opts=""
        [[ "$signed" != - ]] && opts="[signed-by=$signed] "
        mirror_lines+=("deb $opts$uri $entry_suite ${comps:-main}")
    done < <(host_apt_entries)
fi
((${#mirror_lines[@]})) || die "no apt source for suite $suite on this machine; set MIRROR=<url> or SUITE"
main_mirror=$(printf '%s\n' "${mirror_lines[@]}" | awk -v s="$suite" '{ sub(/\[[^]]*\] /, "") } $3 == s { print $2; exit }')
[[ -n "$main_mirror" ]] || die "no apt source for suite $suite itself (only its companions)"

packages=$(grep -v '^[[:space:]]*#' "$packages_file" | tr -s '[:space:]' '\n' | grep -v '^$' | paste -sd, -)
[[ -n "$packages" ]] || die "$packages_file lists no packages"

# --- the static runner ------------------------------------------------------------
runner=$(bash "$here/build-runner.sh") || die "could not build the static runner"

# --- skip when nothing changed ----------------------------------------------------
base_recipe=2  # bump when the bootstrap options below change
base_hash=$( { echo "$base_recipe $suite $packages"; printf '%s\n' "${mirror_lines[@]}"; } | sha256sum | cut -c1-32)
base="wharf/full-base:$suite"
content=$( { echo "$base_hash"; cat "$runner" "$dockerfile" "${BASH_SOURCE[0]}"; } | sha256sum | cut -c1-32)
label_of() { docker image inspect "$1" --format "{{ index .Config.Labels \"$2\" }}" 2>/dev/null || true; }

if [[ "$(label_of "$image" wharf.content)" == "$content" && "${FORCE:-0}" != 1 ]]; then
    say "$image is up to date (wharf.content=$content)"
    exit 0
fi

work=$(mktemp -d "${TMPDIR:-/var/tmp}/wharf-full.XXXXXX")
trap 'rm -rf "$work"' EXIT

# --- the base: bootstrap and import -----------------------------------------------
if [[ "$(label_of "$base" wharf.base)" == "$base_hash" && "${FORCE:-0}" != 1 ]]; then
    say "$base is up to date (wharf.base=$base_hash)"
else
    if ! command -v mmdebstrap >/dev/null 2>&1 && ! command -v debootstrap >/dev/null 2>&1; then
        say "installing mmdebstrap"
        apt-get update -qq >&2 || die "apt-get update failed"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mmdebstrap >&2 \
            || die "apt-get install mmdebstrap failed"
    fi
    rootfs_tar="$work/rootfs.tar"
    if command -v mmdebstrap >/dev/null 2>&1; then
        say "bootstrapping $suite with mmdebstrap ($packages)"
        # man1 must exist although man pages are left out: the JDK's update-alternatives
        # links its man pages there and fails without it.
        mmdebstrap --variant=minbase --include="$packages" \
            --aptopt='APT::Install-Recommends "false"' \
            --setup-hook='mkdir -p "$1/usr/share/man/man1"' \
            --dpkgopt='path-exclude=/usr/share/man/*' \
            --dpkgopt='path-exclude=/usr/share/doc/*' \
            --dpkgopt='path-include=/usr/share/doc/*/copyright' \
            --dpkgopt='path-exclude=/usr/share/locale/*' \
            --dpkgopt='path-exclude=/usr/share/info/*' \
            "$suite" "$rootfs_tar" "${mirror_lines[@]}" >&2 \
            || die "mmdebstrap failed"
    else
        say "bootstrapping $suite from $main_mirror with debootstrap ($packages)"
        debootstrap --variant=minbase --include="$packages" "$suite" "$work/rootfs" "$main_mirror" >&2 \
            || die "debootstrap failed"
        rm -rf "$work/rootfs/var/cache/apt/archives/"*.deb "$work/rootfs/var/lib/apt/lists/"*
        tar -C "$work/rootfs" --numeric-owner -cf "$rootfs_tar" . || die "cannot pack the rootfs"
    fi
    say "importing $base"
    previous_base=$(docker image inspect "$base" --format '{{ .Id }}' 2>/dev/null || true)
    docker import --change "LABEL wharf.base=$base_hash" --change 'CMD ["/bin/sh"]' \
        "$rootfs_tar" "$base" >/dev/null || die "docker import of $base failed"
    # The replaced base goes once nothing builds on it (wharf/full is rebuilt just below).
    base_to_remove=$previous_base
fi

# --- the image: runner and layout on the base -------------------------------------
previous_id=$(docker image inspect "$image" --format '{{ .Id }}' 2>/dev/null || true)
mkdir -p "$work/ctx"
install -m 0755 "$runner" "$work/ctx/runner"
cp "$dockerfile" "$work/ctx/Dockerfile"
say "building $image on $base (wharf.content=$content)"
docker build --quiet --network none --build-arg "BASE=$base" --label "wharf.content=$content" -t "$image" "$work/ctx" >/dev/null \
    || die "docker build of $image failed"
# The image this one replaced, now untagged, is only garbage (kept if a container uses it).
new_id=$(docker image inspect "$image" --format '{{ .Id }}')
if [[ -n "$previous_id" && "$previous_id" != "$new_id" ]]; then
    docker rmi "$previous_id" >/dev/null 2>&1 || true
fi
if [[ -n "${base_to_remove:-}" && "$base_to_remove" != "$(docker image inspect "$base" --format '{{ .Id }}')" ]]; then
    docker rmi "$base_to_remove" >/dev/null 2>&1 || true
fi
size=$(docker image inspect "$image" --format '{{ .Size }}')
say "built $image, $((size / 1024 / 1024)) MiB"
