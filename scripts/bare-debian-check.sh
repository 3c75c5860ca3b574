#!/usr/bin/env bash
# The README's setup on a bare Debian 12: a minimal root file system
# (debootstrap --variant=minbase, cached beside the image check's base in
# $LOADGEN_IMAGE_CACHE, default /var/tmp/loadgen-image-cache), with only the
# Rust toolchain and a copy of the checkout mounted into it, runs the
# README's install line and then its first command, both read from README.md
# and run exactly as written. Nothing of this machine's packages is visible
# in there: a package the build or the run needs and the README does not
# name fails this check.
#
# Needs root (chroot and mounts), debootstrap, and the package mirror.
# Usage: scripts/bare-debian-check.sh     (exit 0: both commands passed)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cache=${LOADGEN_IMAGE_CACHE:-/var/tmp/loadgen-image-cache}
release=bookworm
base_tar=$cache/$release-minbase-bare.tar
cargo_home=${CARGO_HOME:-$HOME/.cargo}
rustup_home=${RUSTUP_HOME:-$HOME/.rustup}

say() { printf '== %s\n' "$*"; }
fail() { printf 'bare-debian-check: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || fail "needs root (chroot and mounts)"
command -v debootstrap >/dev/null || fail "debootstrap is not installed (apt-get install debootstrap)"
[ -x "$cargo_home/bin/cargo" ] && [ -d "$rustup_home" ] || fail "no Rust toolchain in $cargo_home and $rustup_home"

# The README's lines: the one in the block after "## Install", the first
# in the block after "## Setting up a new machine".
block_after() {
  awk -v heading="$1" '
    $0 == heading { found = 1; next }
    found && /^```/ { if (inside) exit; inside = 1; next }
    found && inside { print }
  ' "$root/README.md"
}
install_line=$(block_after "## Install" | sed 's/[[:space:]]*#.*$//' | grep -v '^$' | head -n 1)
first_command=$(block_after "## Setting up a new machine" | head -n 1)
[ -n "$install_line" ] || fail "no install line found in README.md under '## Install'"
[ -n "$first_command" ] || fail "no first command found in README.md under '## Setting up a new machine'"

work=$(mktemp -d /tmp/loadgen-bare-XXXXXX)
rootfs=$work/rootfs
mounted=()
cleanup() {
  local i
  for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do
    umount -l "${mounted[$i]}" 2>/dev/null || true
  done
  rm -rf "$work"
}
trap cleanup EXIT
bind() { # bind SOURCE TARGET-inside-rootfs
  mkdir -p "$rootfs$2"
  mount --bind "$1" "$rootfs$2"
  mounted+=("$rootfs$2")
}

mkdir -p "$cache"
if [ ! -s "$base_tar" ]; then
  say "debootstrap --variant=minbase $release into the cache (once)"
  debootstrap --variant=minbase "$release" "$work/base" http://deb.debian.org/debian >"$work/debootstrap.log" 2>&1 ||
    { tail -20 "$work/debootstrap.log" >&2; fail "debootstrap failed"; }
  tar -C "$work/base" -cf "$base_tar.part" . && mv "$base_tar.part" "$base_tar"
  rm -rf "$work/base"
fi

say "a bare $release from $base_tar"
mkdir -p "$rootfs"
tar -C "$rootfs" -xf "$base_tar"
cp /etc/resolv.conf "$rootfs/etc/resolv.conf"
mount -t proc proc "$rootfs/proc" && mounted+=("$rootfs/proc")
bind /dev /dev
bind /dev/pts /dev/pts
bind /dev/shm /dev/shm
bind "$cargo_home" /root/.cargo
bind "$rustup_home" /root/.rustup

say "a copy of the checkout (tracked and new files; no build output)"
mkdir -p "$rootfs/work/loadgen"
(cd "$root" && git ls-files -z --cached --others --exclude-standard | tar --null -T - -cf -) |
  tar -C "$rootfs/work/loadgen" -xf -

in_root() {
  chroot "$rootfs" /usr/bin/env -i HOME=/root TERM=dumb LANG=C.UTF-8 \
    PATH=/root/.cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    bash -euo pipefail -c "cd /work/loadgen && $1" </dev/null
}

say "README install line: $install_line"
start=$(date +%s)
in_root "$install_line" >"$work/install.log" 2>&1 || { tail -30 "$work/install.log" >&2; fail "the README's install line failed on a bare $release"; }
say "installed in $(($(date +%s) - start)) s"

say "README first command: $first_command"
start=$(date +%s)
in_root "$first_command" >"$work/first.log" 2>&1 || { tail -40 "$work/first.log" >&2; fail "the README's first command failed on a bare $release"; }
grep -q "^Gates: PASSED" "$work/first.log" || { tail -40 "$work/first.log" >&2; fail "the first command exited 0 without a passing run"; }
say "built and ran in $(($(date +%s) - start)) s; its last lines:"
tail -n 5 "$work/first.log"
