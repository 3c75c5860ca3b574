#!/usr/bin/env bash
# Scale-out figures: the same per-agent configuration (standard workload, 20
# in flight per agent, 2:2 dispatchers, 1 runtime) with 1, 2 and 4 local
# agents on one throwaway Postgres, then pgbench on the same server as the
# reference ceiling of its commit rate.
#
#   scripts/scale-out.sh [agents...]        # default: 1 2 4
#
# Prints, per run: orch/s, p99, commits/s, rollbacks (deadlocks are rolled
# back), and the machine's CPU busy share during the run. Needs the release
# binaries (cargo build --release) and the PostgreSQL server binaries.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-target/release}
[ -x "$BIN/coordinator" ] || { echo "build first: cargo build --release" >&2; exit 2; }
agents=("$@"); [ ${#agents[@]} -gt 0 ] || agents=(1 2 4)

. scripts/throwaway-pg.sh
url=$pg_url
port=$pg_port
dir=$pg_dir

cpu() { awk '/^cpu /{print $2+$3+$4+$7+$8, $2+$3+$4+$5+$6+$7+$8}' /proc/stat; }
printf '%-7s %9s %9s %10s %10s %9s %8s\n' agents completed orch/s p99_ms commits/s rollbacks cpu_busy
for n in "${agents[@]}"; do
  read -r b0 t0 < <(cpu)
  "$BIN/coordinator" --database-url "$url" --local "$n" --profile standard \
    --max-concurrent $((20 * n)) --json "$dir/run-$n.json" >/dev/null 2>"$dir/run-$n.err" || true
  read -r b1 t1 < <(cpu)
  python3 - "$dir/run-$n.json" "$n" "$b0" "$t0" "$b1" "$t1" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); n = sys.argv[2]
b0, t0, b1, t1 = map(float, sys.argv[3:7])
m = r["merged"]; d = r["db_load"]
print(f'{n:<7} {m["counts"]["completed"]:>9} {m["orch_per_sec"]:>9.1f} {m["e2e_latency"]["p99_us"]/1000:>10.0f} '
      f'{d["commits"]/m["elapsed_s"]:>10.0f} {d["rollbacks"]:>9} {100*(b1-b0)/(t1-t0):>7.0f}%')
PY
done
echo
echo "pgbench ceiling (TPC-B-like, 8 clients, 2 threads, 15 s) on the same server:"
PGHOST=127.0.0.1 PGPORT=$port PGUSER=loadgen pgbench -i -q -s 8 postgres >/dev/null 2>&1
PGHOST=127.0.0.1 PGPORT=$port PGUSER=loadgen pgbench -c 8 -j 2 -T 15 postgres 2>/dev/null | grep -E "^tps|latency average"
