#!/usr/bin/env bash
# `make image`: the OneGrid image, built with no network during the build.
#   1. tools: Debian's podman, buildah, debootstrap and runc (installed when missing, as root)
#   2. the base: localhost/python:3.11-bookworm, made once from Debian's packages (no registry
#      is reachable here), cached as a tarball under build/image/ so a fresh podman store
#      re-imports it in seconds
#   3. the wheelhouse: every file of requirements.lock for the base's Python, downloaded on the
#      host into deploy/image/wheels/ (what an air-gapped county copies in)
#   4. buildah bud --network none: the Dockerfile installs from the wheelhouse with --no-index
# Tags onegrid:<version> and onegrid:dev. PYTHON_IMAGE=<image> builds on another base (a county's
# registry mirror of the official python image); it is then pulled, not made.
#   --if-possible: where podman cannot be had (not root, not Debian), say so and succeed, so
#   `make test` runs everywhere and the container test skips with the reason.
set -euo pipefail
cd "$(dirname "$0")/.."
say() { echo "image: $*"; }
if_possible=0
[[ ${1:-} == --if-possible ]] && if_possible=1

ROOT=$PWD
export CONTAINERS_CONF=$ROOT/deploy/image/containers.conf
LOCAL_BASE=localhost/python:3.11-bookworm
BASE=${PYTHON_IMAGE:-$LOCAL_BASE}
WHEELS=deploy/image/wheels
CACHE=build/image
PY=${PY:-.venv/bin/python}
VERSION=$($PY -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')
started=$(date +%s)
elapsed() { echo "$(($(date +%s) - started)) s"; }

# 1. tools ---------------------------------------------------------------------------------
missing=()
for tool in podman buildah debootstrap runc; do
  command -v "$tool" >/dev/null 2>&1 || PATH=$PATH:/usr/sbin:/sbin command -v "$tool" >/dev/null 2>&1 \
    || missing+=("$tool")
done
if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
    msg="${missing[*]} missing and this is not a Debian machine where we are root; install them to build the image"
    if ((if_possible)); then say "$msg (the container test will skip)"; exit 0; fi
    say "$msg" >&2; exit 1
  fi
  say "installing Debian's ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends podman buildah debootstrap runc >/dev/null
fi
export PATH=$PATH:/usr/sbin:/sbin
say "podman $(podman --version | awk '{print $3}'), buildah $(buildah --version | awk '{print $3}')"

# 2. the base image ------------------------------------------------------------------------
debian_mirror() {
  # the host's own Debian mirror (deb822 .sources first, then sources.list); else the default.
  # `debian_mirror -security`: its security mirror
  local want=${1:-} uri
  uri=$(grep -hoE '^URIs:\s*\S+' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}' \
    | grep -E -- "/debian${want}/?\$" | head -1 || true)
  [[ -n $uri ]] || uri=$(grep -hoE '^deb\s+(\[[^]]*\]\s+)?\S+' /etc/apt/sources.list 2>/dev/null \
    | awk '{print $NF}' | grep -E -- "/debian${want}/?\$" | head -1 || true)
  echo "${uri:-http://deb.debian.org/debian${want}}"
}

make_base() {
  local tarball=$CACHE/python-3.11-bookworm.tar
  if [[ ! -s $tarball ]]; then
    local dir mirror
    dir=$(mktemp -d /tmp/onegrid-base.XXXXXX)
    mirror=$(debian_mirror)
    say "debootstrap --variant=minbase bookworm from $mirror (once; cached in $tarball)"
    debootstrap --variant=minbase bookworm "$dir" "$mirror" >"$dir.log" 2>&1 \
      || { tail -20 "$dir.log" >&2; exit 1; }
    # python3 with bookworm's point-release and security fixes, not only the release as it shipped
    printf 'Types: deb\nURIs: %s\nSuites: bookworm bookworm-updates\nComponents: main\n\nTypes: deb\nURIs: %s\nSuites: bookworm-security\nComponents: main\n' \
      "$mirror" "$(debian_mirror -security)" >"$dir/etc/apt/sources.list.d/debian.sources"
    : >"$dir/etc/apt/sources.list"
    cp /etc/resolv.conf "$dir/etc/resolv.conf"
    say "python3, python3-venv, ca-certificates from Debian"
    chroot "$dir" sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        --no-install-recommends python3 python3-venv python-is-python3 ca-certificates >/dev/null \
      && apt-get clean && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/*.log /var/log/apt/*' \
      || { echo "apt-get in the chroot failed" >&2; exit 1; }
    : >"$dir/etc/resolv.conf"
    mkdir -p "$CACHE"
    tar --numeric-owner -C "$dir" -cf "$tarball.part" . && mv "$tarball.part" "$tarball"
    rm -rf "$dir" "$dir.log"
  fi
  say "podman import $tarball as $LOCAL_BASE"
  podman import --quiet \
    --change 'ENV=PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV=LANG=C.UTF-8' --change 'CMD=["python3"]' \
    "$tarball" "$LOCAL_BASE" >/dev/null
}

if [[ $BASE == "$LOCAL_BASE" ]] && ! podman image exists "$LOCAL_BASE"; then
  make_base
fi
say "base $BASE ($(elapsed))"

# 3. the wheelhouse ------------------------------------------------------------------------
# Markers are the base's, not the host's: bookworm's Python 3.11.2 needs async-timeout, which a
# host on 3.11.7 would leave out. The base is asked for its version (no network needed).
if podman image exists "$BASE"; then
  target=$(podman run --rm --network none "$BASE" python3 -c 'import platform; print(platform.python_version())')
else
  target=${PYTHON_VERSION:-3.11.11}  # a base still to be pulled: the Dockerfile's default
fi
$PY scripts/image-wheelhouse.py --python "$target" --lock requirements.lock --dest "$WHEELS"
say "wheelhouse $WHEELS for Python $target ($(elapsed))"

# 4. the build, offline --------------------------------------------------------------------
say "buildah bud --network none onegrid:$VERSION"
# OCI isolation (runc): chroot isolation cannot take --network none. Docker format keeps the
# HEALTHCHECK (OCI images have none); --layers reuses unchanged steps on the next build.
buildah bud --isolation oci --network none --layers --format docker \
  --build-arg "PYTHON_IMAGE=$BASE" \
  -t "onegrid:$VERSION" -t onegrid:dev -f Dockerfile . 2>&1 \
  | { grep -vE '^(Copying |Writing manifest|Storing signatures|--> )' || true; }  # pipefail keeps buildah's status
size=$(podman image inspect onegrid:dev --format '{{.Size}}')
say "onegrid:$VERSION and onegrid:dev, $((size / 1000000)) MB ($(elapsed))"
