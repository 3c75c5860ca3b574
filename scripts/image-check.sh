#!/usr/bin/env bash
# Build the runtime image for real and run what is in it.
#
# A Debian base is made offline-from-a-mirror with debootstrap (cached in
# $LOADGEN_IMAGE_CACHE, default /var/tmp/loadgen-image-cache), turned into a
# base image with buildah, and deploy/docker/Containerfile.prebuilt adds the
# host-built release binaries (chroot isolation: no container daemon needed).
# Then one agent and the coordinator run from the image's filesystem, as uid
# 10001 like in a pod, against a throwaway Postgres, and the run must pass.
#
# Needs root, buildah and debootstrap (Debian: apt-get install buildah
# debootstrap), the PostgreSQL server binaries, and `cargo build --release`.
# Usage: scripts/image-check.sh            (exit 0: image built, run passed)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
bin=${LOADGEN_BIN_DIR:-$root/target/release}
cache=${LOADGEN_IMAGE_CACHE:-/var/tmp/loadgen-image-cache}
release=bookworm
base_image=localhost/loadgen-base:$release
image=localhost/loadgen:image-check

say() { printf '== %s\n' "$*"; }
fail() { printf 'image-check: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || fail "needs root (buildah and chroot)"
for tool in buildah debootstrap chroot; do
  command -v "$tool" >/dev/null || fail "$tool is not installed (apt-get install buildah debootstrap)"
done
[ -x "$bin/agent" ] && [ -x "$bin/coordinator" ] || fail "no release binaries in $bin: run cargo build --release"

work=$(mktemp -d /tmp/loadgen-image-XXXXXX)
ctr=""
agent_pid=""
cleanup() {
  [ -n "$agent_pid" ] && kill "$agent_pid" 2>/dev/null && wait "$agent_pid" 2>/dev/null || true
  if [ -n "$ctr" ]; then
    buildah umount "$ctr" >/dev/null 2>&1 || true
    buildah rm "$ctr" >/dev/null 2>&1 || true
  fi
  buildah rmi -f "$image" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

# 1. The base: Debian from its own packages, with what the binaries link.
mkdir -p "$cache"
base_tar=$cache/$release-minbase.tar
if [ ! -s "$base_tar" ]; then
  say "debootstrap $release (minbase + libssl3, ca-certificates) into the cache"
  debootstrap --variant=minbase --include=libssl3,ca-certificates "$release" "$work/rootfs" \
    http://deb.debian.org/debian >"$work/debootstrap.log" 2>&1 || { tail -20 "$work/debootstrap.log" >&2; fail "debootstrap failed"; }
  tar -C "$work/rootfs" -cf "$base_tar.part" . && mv "$base_tar.part" "$base_tar"
  rm -rf "$work/rootfs"
fi
if ! buildah inspect --type image "$base_image" >/dev/null 2>&1; then
  say "base image $base_image from $base_tar"
  ctr=$(buildah from scratch)
  mnt=$(buildah mount "$ctr")
  tar -C "$mnt" -xf "$base_tar"
  buildah umount "$ctr" >/dev/null
  buildah commit --quiet "$ctr" "$base_image" >/dev/null
  buildah rm "$ctr" >/dev/null
  ctr=""
fi

# 2. The runtime image: the Containerfile's steps over the host-built binaries.
say "runtime image $image (deploy/docker/Containerfile.prebuilt)"
mkdir -p "$work/ctx"
cp "$bin/agent" "$bin/coordinator" "$work/ctx/"
# Debug info is not needed in an image (a test build carries hundreds of MB).
if command -v strip >/dev/null; then strip --strip-debug "$work/ctx/agent" "$work/ctx/coordinator"; fi
buildah bud --quiet --isolation chroot -f "$root/deploy/docker/Containerfile.prebuilt" \
  --build-arg BASE="$base_image" -t "$image" "$work/ctx" >/dev/null
user=$(buildah inspect --type image --format '{{.OCIv1.Config.User}}' "$image")
cmd=$(buildah inspect --type image --format '{{.OCIv1.Config.Cmd}}' "$image")
[ "$user" = "10001:10001" ] || fail "image user is '$user', not 10001:10001"
[ "$cmd" = "[agent]" ] || fail "image command is '$cmd', not [agent]"
say "image user $user, command $cmd"

# 3. Run it: an agent and the coordinator from the image's filesystem, as uid 10001.
ctr=$(buildah from "$image")
mnt=$(buildah mount "$ctr")
in_image() { chroot --userspec=10001:10001 "$mnt" /usr/bin/env -i HOME=/home/loadgen PATH=/usr/local/bin:/usr/bin:/bin "$@"; }
in_image /usr/local/bin/agent --version
in_image /usr/local/bin/coordinator --version
# shellcheck source=scripts/throwaway-pg.sh
source "$root/scripts/throwaway-pg.sh"
# (it set its own EXIT trap; both must run)
trap 'cleanup; stop_throwaway_pg' EXIT
token=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
in_image AGENT_LOG=warn LOADGEN_TOKEN="$token" DATABASE_URL="$pg_url" \
  /usr/local/bin/agent --listen 127.0.0.1:0 --run-once >"$work/agent.out" 2>"$work/agent.err" &
agent_pid=$!
for _ in $(seq 1 100); do
  grep -q '^listening on ' "$work/agent.out" 2>/dev/null && break
  sleep 0.2
done
address=$(sed -n 's/^listening on //p' "$work/agent.out")
[ -n "$address" ] || { cat "$work/agent.err" >&2; fail "the agent from the image did not start"; }
say "agent from the image listening on $address"
set +e
in_image LOADGEN_TOKEN="$token" DATABASE_URL="$pg_url" /usr/local/bin/coordinator \
  --agents "$address" --profile light --duration 3s --live line --json /results/run.json
code=$?
set -e
[ "$code" = 0 ] || fail "the coordinator from the image exited $code"
grep -q '"passed": true' "$mnt/results/run.json" || fail "the run's JSON does not say passed"
owner=$(stat -c %u "$mnt/results/run.json")
[ "$owner" = 10001 ] || fail "the result was written by uid $owner, not 10001"
wait "$agent_pid" 2>/dev/null || true
agent_pid=""
say "image check passed: built from $release with debootstrap, agent and coordinator ran as uid 10001, the run passed"
