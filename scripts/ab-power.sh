#!/usr/bin/env bash
# How much `coordinator ab` can see on this machine: TRIALS comparisons of
# one release build against itself (every "slower" or "faster" is a false
# alarm) and against itself with every activity made SLOW_MS slower
# (LOADGEN_TEST_SLOW_ACTIVITY_MS, a known slowdown), each with `--repeat
# REPEAT` on the light profile. Prints, per setting, the slowdown of
# throughput the knob really caused (the median of every run of each build,
# pooled over the trials) and how often the verdict on orch/s was "slower".
# A benchmark, not a test: it takes minutes per setting, and its figures are
# this machine's. Results go to docs/ab.md by hand.
#
# Usage: scripts/ab-power.sh [TRIALS] [REPEAT] [DURATION] [SLOW_MS ...]
#        (default: 10 trials, --repeat 3, 3s of load, 0 2 5 10 ms)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
trials=${1:-10}
repeat=${2:-3}
duration=${3:-3s}
shift $(($# < 3 ? $# : 3))
slows=("$@")
[ ${#slows[@]} -gt 0 ] || slows=(0 2 5 10)
bin=$root/target/release
[ -x "$bin/coordinator" ] && [ -x "$bin/agent" ] || { echo "ab-power: run cargo build --release first" >&2; exit 2; }
out=$(mktemp -d /tmp/loadgen-ab-power-XXXXXX)
trap 'rm -rf "$out"' EXIT

printf '%-8s %-7s %-10s %-10s %-8s %-8s %-8s %s\n' slow_ms trials base_orch cand_orch effect slower faster time
for slow in "${slows[@]}"; do
  start=$(date +%s)
  env_args=()
  [ "$slow" = 0 ] || env_args=(--candidate-env "LOADGEN_TEST_SLOW_ACTIVITY_MS=$slow")
  for t in $(seq 1 "$trials"); do
    "$bin/coordinator" ab --baseline-agent "$bin/agent" --candidate-agent "$bin/agent" "${env_args[@]}" \
      --profile light --duration "$duration" --repeat "$repeat" --json "$out/$slow-$t.json" >"$out/$slow-$t.log" 2>&1 ||
      { tail -5 "$out/$slow-$t.log" >&2; echo "ab-power: trial $t at $slow ms failed" >&2; exit 1; }
  done
  python3 - "$out" "$slow" "$trials" "$(($(date +%s) - start))" <<'EOF'
import json, statistics, sys
out, slow, trials, secs = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
base, cand, verdicts = [], [], []
for t in range(1, trials + 1):
    doc = json.load(open(f"{out}/{slow}-{t}.json"))["ab"]
    m = next(m for m in doc["metrics"] if m["name"] == "orch/s")
    base += m["baseline"]; cand += m["candidate"]; verdicts.append(m["verdict"])
b, c = statistics.median(base), statistics.median(cand)
print(f"{slow:<8} {trials:<7} {b:<10.2f} {c:<10.2f} {100 * (1 - c / b):<7.1f}% "
      f"{verdicts.count('slower'):<8} {verdicts.count('faster'):<8} {secs}s")
EOF
done
