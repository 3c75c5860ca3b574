#!/usr/bin/env bash
# Build the agent against any published duroxide-pg release that shares this
# workspace's duroxide API (0.1.36, 0.1.37 and 0.1.38 today) or against a local
# checkout, and print the binary's path:
#
#   scripts/build-agent.sh 0.1.37            # -> target/builds/agent-0.1.37
#   scripts/build-agent.sh ../duroxide-pg    # -> target/builds/agent-local-<name>-<hash>
#
# This checkout's Cargo.toml and Cargo.lock are never edited: the workspace's
# tracked files (as they are in the working tree) are copied to
# target/builds/src-<label>, the copy is pinned to the release (or pointed at
# the checkout), and it is built with target/builds/target, a target directory
# every such build shares (the dependencies compile once; the first build takes
# several minutes on 2 cores, later ones seconds). The binary says which
# duroxide-pg it carries: `agent --version` prints `... (duroxide-pg 0.1.37)`,
# and its Hello tells the coordinator the same.
#
# Use it with `coordinator run --agent-bin target/builds/agent-0.1.37 ...` or
# `coordinator ab --baseline-agent ... --candidate-agent ...`.
#
# Exit codes: 0 built, 2 bad input (no such release, not a duroxide-pg
# checkout), 3 the build failed (its log is kept and named). Nothing else is
# left on failure but the shared target directory (the cache).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
die() { echo "build-agent: $2" >&2; exit "$1"; }

[ $# -eq 1 ] || die 2 "usage: scripts/build-agent.sh VERSION|PATH (a duroxide-pg release such as 0.1.37, or a checkout)"
want=$1
builds=$root/target/builds

if [[ $want =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]]; then
  label=$want
  dependency="duroxide-pg = \"=$want\""
elif [ -d "$want" ]; then
  checkout=$(cd "$want" && pwd)
  grep -qs '^name = "duroxide-pg"' "$checkout/Cargo.toml" ||
    die 2 "$want is not a duroxide-pg checkout (its Cargo.toml does not name the package duroxide-pg)"
  label=local-$(basename "$checkout")-$(printf '%s' "$checkout" | sha256sum | cut -c1-8)
  dependency="duroxide-pg = { path = \"$checkout\" }"
else
  die 2 "$want is neither a duroxide-pg version (like 0.1.37) nor a directory"
fi

command -v git >/dev/null || die 3 "git is needed to list the workspace's files"
src=$builds/src-$label
bin=$builds/agent-$label
log=$builds/build-$label.log
mkdir -p "$builds"
# Whatever fails below leaves only the shared target directory.
cleanup() { rm -rf "$src"; [ "${ok:-}" = 1 ] || rm -f "$bin"; }
trap cleanup EXIT

# The workspace as it is now (tracked files with their changes, and new files
# git does not ignore), with
# the files' times kept so cargo rebuilds only what changed since last time.
rm -rf "$src" && mkdir -p "$src"
git -C "$root" ls-files -z --cached --others --exclude-standard | (cd "$root" && tar --null --ignore-failed-read -T - -cf - 2>/dev/null) | tar -xf - -C "$src"
pin=$(grep -c '^duroxide-pg = "=' "$src/Cargo.toml" || true)
[ "$pin" = 1 ] || die 3 "the workspace's Cargo.toml has no single 'duroxide-pg = \"=...\"' pin to replace"
sed -i "s|^duroxide-pg = \"=.*|$dependency|" "$src/Cargo.toml"

echo "build-agent: building the agent against duroxide-pg $want (log: $log)" >&2
if [ -n "${checkout:-}" ]; then
  # A path dependency: cargo writes it into the copy's lock file itself.
  :
elif ! (cd "$src" && cargo update -p duroxide-pg --precise "$want") >"$log" 2>&1; then
  reason=$(grep -m1 -E '^error' "$log" || tail -1 "$log")
  rm -f "$log"
  die 2 "duroxide-pg $want cannot be used: ${reason#error: }"
fi
# The agent's build script reads the lock file: a lock that came out as last
# time keeps last time's file time, so a cached build is not redone.
kept=$builds/Cargo.lock-$label
if [ -f "$kept" ] && cmp -s "$kept" "$src/Cargo.lock"; then
  touch -r "$kept" "$src/Cargo.lock"
else
  cp -p "$src/Cargo.lock" "$kept"
fi
if ! LOADGEN_BUILD_LABEL=$label cargo build --release -p loadgen-agent --manifest-path "$src/Cargo.toml" --target-dir "$builds/target" \
  >>"$log" 2>&1; then
  reason=$(grep -m1 -E '^error' "$log" || tail -1 "$log")
  die 3 "the agent does not build against duroxide-pg $want: $reason (see $log)"
fi
cp "$builds/target/release/agent" "$bin.tmp" && mv "$bin.tmp" "$bin"
said=$("$bin" --version)
case $said in
  *"duroxide-pg $want)"* | *"(local checkout))"*) ;;
  *) die 3 "the built agent reports '$said', not duroxide-pg $want" ;;
esac
ok=1
echo "build-agent: $said" >&2
echo "$bin"
