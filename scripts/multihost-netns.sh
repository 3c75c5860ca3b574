#!/usr/bin/env bash
# A real multi-host run on one machine: every agent, the coordinator and
# Postgres get a network namespace of their own with their own address, wired
# to one switch namespace (a bridge) by veth pairs. The coordinator finds the
# agents the way it does in a cluster: the name "agents" resolves to every
# agent's address (a hosts file, like a headless Service's DNS answer), and it
# waits for --expect-agents of them. Mid-run one agent's link is cut; the
# coordinator must notice, finish degraded (exit 4) and account for the
# orchestrations that agent started.
#
# Every namespace, link, hosts file, process and temp dir is removed on exit,
# also after a failure or Ctrl-C. Needs root (ip netns). Nothing leaves the
# machine: the addresses live only inside these namespaces.
#
# Usage: sudo scripts/multihost-netns.sh [--agents N] [--profile P] [--duration D]
#          [--cut-after SECONDS] [--no-cut] [--json FILE] [--keep-logs DIR]
# Binaries: target/release/{agent,coordinator} (build them first), or
# AGENT_BIN / COORDINATOR_BIN.
# Exit code: the coordinator's (4 = degraded, expected with the cut; 0 with --no-cut).
set -euo pipefail

agents=3
profile=light
duration=20s
cut_after=6
cut=1
json=""
keep_logs=""
value() {
  [ $# -ge 2 ] && [ -n "$2" ] || { echo "multihost-netns: $1 needs a value (see --help)" >&2; exit 2; }
}
while [ $# -gt 0 ]; do
  case "$1" in
    --agents) value "$@"; agents=$2; shift 2 ;;
    --profile) value "$@"; profile=$2; shift 2 ;;
    --duration) value "$@"; duration=$2; shift 2 ;;
    --cut-after) value "$@"; cut_after=$2; shift 2 ;;
    --no-cut) cut=0; shift ;;
    --json) value "$@"; json=$2; shift 2 ;;
    --keep-logs) value "$@"; keep_logs=$2; shift 2 ;;
    -h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "multihost-netns: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
case "$agents" in ''|*[!0-9]*) echo "multihost-netns: --agents needs a number" >&2; exit 2 ;; esac
case "$cut_after" in ''|*[!0-9]*) echo "multihost-netns: --cut-after needs whole seconds" >&2; exit 2 ;; esac
if [ "$agents" -lt 2 ] || [ "$agents" -gt 20 ]; then
  echo "multihost-netns: --agents must be 2..20 (one is cut mid-run)" >&2; exit 2
fi
if [ "$(id -u)" != 0 ]; then
  echo "multihost-netns: needs root (network namespaces); nothing was changed" >&2; exit 2
fi
root=$(cd "$(dirname "$0")/.." && pwd)
agent_bin=${AGENT_BIN:-$root/target/release/agent}
coordinator_bin=${COORDINATOR_BIN:-$root/target/release/coordinator}
for b in "$agent_bin" "$coordinator_bin"; do
  [ -x "$b" ] || { echo "multihost-netns: $b not found: cargo build --release first" >&2; exit 2; }
done
# Bad profile or duration: say so before building any namespace.
if ! out=$("$coordinator_bin" profiles 2>&1) || ! printf '%s\n' "$out" | grep -qw -- "$profile"; then
  echo "multihost-netns: unknown profile $profile (coordinator profiles lists them)" >&2; exit 2
fi
case "$duration" in *[0-9]s|*[0-9]ms|*[0-9]m|*[0-9]h|*[0-9]min) ;; *) echo "multihost-netns: --duration needs a unit, e.g. 20s" >&2; exit 2 ;; esac
pg_bin=$(dirname "$(command -v initdb 2>/dev/null || ls /usr/lib/postgresql/*/bin/initdb | sort -V | tail -n 1)")

# Names unique to this invocation (interface names stay under 15 characters);
# a /24 in 10.231.0.0/16 that no interface of this machine uses.
tag="lg$(printf '%04x' $(( $$ % 65536 )))"
net=""
for i in $(seq 0 254); do
  k=$(( ($$ + i) % 250 + 1 ))
  if ! ip -o addr show | grep -q " 10\.231\.$k\."; then net="10.231.$k"; break; fi
done
[ -n "$net" ] || { echo "multihost-netns: no free 10.231.x.0/24 subnet" >&2; exit 3; }

work=$(mktemp -d /tmp/loadgen-multihost-XXXXXX)
chmod 755 "$work"
namespaces=()
pids=()
pg_started=0

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  for p in "${pids[@]:-}"; do [ -n "$p" ] && kill -9 "$p" 2>/dev/null || true; done
  if [ "$pg_started" = 1 ]; then
    runuser -u postgres -- "$pg_bin/pg_ctl" -D "$work/pg/data" -m immediate -w stop >/dev/null 2>&1 || true
  fi
  # Any process still inside one of our namespaces goes with it.
  for ns in "${namespaces[@]:-}"; do
    [ -n "$ns" ] || continue
    for p in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$p" 2>/dev/null || true; done
  done
  for ns in "${namespaces[@]:-}"; do
    [ -n "$ns" ] || continue
    ip netns del "$ns" 2>/dev/null || true
    rm -rf "/etc/netns/$ns"
  done
  rmdir /etc/netns 2>/dev/null || true
  if [ -n "$keep_logs" ]; then mkdir -p "$keep_logs" && cp "$work"/*.log "$keep_logs"/ 2>/dev/null || true; fi
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { printf '[multihost %s] %s\n' "$(date +%T)" "$*" >&2; }

# host NAME ADDRESS: a namespace with eth0 = ADDRESS/24 plugged into the switch.
host() {
  local name="$tag-$1" addr=$2
  ip netns add "$name"
  namespaces+=("$name")
  ip link add "$name" type veth peer name "$name-p"
  ip link set "$name" netns "$name"
  ip -n "$name" link set "$name" name eth0
  ip -n "$name" addr add "$addr/24" dev eth0
  ip -n "$name" link set lo up
  ip -n "$name" link set eth0 up
  ip link set "$name-p" netns "$tag-sw"
  ip -n "$tag-sw" link set "$name-p" master br0
  ip -n "$tag-sw" link set "$name-p" up
}

say "namespaces $tag-*, subnet $net.0/24, $agents agents, work dir $work"
ip netns add "$tag-sw"
namespaces+=("$tag-sw")
ip -n "$tag-sw" link add br0 type bridge
ip -n "$tag-sw" link set br0 up
host db "$net.2"
host coord "$net.3"
agent_addrs=()
for i in $(seq 1 "$agents"); do
  host "a$i" "$net.$(( 10 + i ))"
  agent_addrs+=("$net.$(( 10 + i ))")
done

# The coordinator's view of the network: "agents" is every agent, "db" the database.
mkdir -p "/etc/netns/$tag-coord"
{
  echo "127.0.0.1 localhost"
  echo "$net.2 db"
  for a in "${agent_addrs[@]}"; do echo "$a agents"; done
} > "/etc/netns/$tag-coord/hosts"

# Postgres on the db host, reachable only over its veth. Server-side TCP
# keepalives bound how long a cut client's session (and its locks) lingers.
mkdir -p "$work/pg"
chown postgres: "$work/pg"
runuser -u postgres -- "$pg_bin/initdb" -D "$work/pg/data" -U loadgen --auth=trust --no-sync >/dev/null
echo "host all all $net.0/24 trust" >> "$work/pg/data/pg_hba.conf"
pg_port=5432
pg_started=1
ip netns exec "$tag-db" runuser -u postgres -- "$pg_bin/pg_ctl" -D "$work/pg/data" -l "$work/pg/postgres.log" -w start \
  -o "-p $pg_port -k $work/pg -c listen_addresses=$net.2 -c max_connections=200 -c tcp_keepalives_idle=2 -c tcp_keepalives_interval=1 -c tcp_keepalives_count=3" >/dev/null
say "postgres on $net.2:$pg_port (namespace $tag-db)"

token=$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')
# The coordinator first: like a Job scheduled before its agents, it waits for them.
result="$work/result.json"
ip netns exec "$tag-coord" env LOADGEN_TOKEN="$token" TMPDIR="$work" \
  "$coordinator_bin" --agents agents:7000 --expect-agents "$agents" --agents-timeout 60s \
  --database-url "postgres://loadgen@db:$pg_port/postgres" --profile "$profile" --duration "$duration" \
  --json "$result" >"$work/coordinator.out" 2>"$work/coordinator.log" &
coord_pid=$!
pids+=("$coord_pid")

sleep 2
for i in $(seq 1 "$agents"); do
  ip netns exec "$tag-a$i" env DATABASE_URL="postgres://loadgen@$net.2:$pg_port/postgres" LOADGEN_TOKEN="$token" \
    "$agent_bin" --listen 0.0.0.0:7000 --run-once --log info >"$work/agent$i.log" 2>&1 &
  pids+=($!)
  disown $! # killed in cleanup without a job notice
done
say "agents started at ${agent_addrs[*]} (port 7000)"

cut_agent=2
if [ "$cut" = 1 ]; then
  # Wait (bounded) for the run to start, then cut agent 2's link.
  for _ in $(seq 1 600); do
    grep -q "orch/s" "$work/coordinator.log" 2>/dev/null && break
    kill -0 "$coord_pid" 2>/dev/null || break
    sleep 0.1
  done
  if ! grep -q "orch/s" "$work/coordinator.log"; then
    set +e
    wait "$coord_pid"
    rc=$?
    set -e
    say "the run did not start (coordinator exited $rc):"
    cat "$work/coordinator.log" >&2
    exit "$rc"
  fi
  sleep "$cut_after"
  ip -n "$tag-sw" link set "$tag-a$cut_agent-p" down
  say "cut the link of agent $cut_agent (${agent_addrs[$((cut_agent - 1))]})"
fi

set +e
wait "$coord_pid"
rc=$?
set -e
cat "$work/coordinator.out"
# Discovery and loss, as the coordinator logged them; then its last live lines.
grep -E "waiting for agents|agent\(s\) answered|lost|coordinator:" "$work/coordinator.log" >&2 || true
grep -E "orch/s" "$work/coordinator.log" | tail -n 3 >&2 || true
[ -n "$json" ] && [ -f "$result" ] && cp "$result" "$json"
say "coordinator exited $rc"
exit "$rc"
