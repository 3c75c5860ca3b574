#!/usr/bin/env bash
# Measure how much of the database's work the load generator itself causes.
#
# Starts a throwaway Postgres with pg_stat_statements, runs the coordinator
# against it with the arguments given (e.g. --local 3 --profile standard),
# then prints the top-level statements executed during the run by kind:
# the agents' batched completion queries, the start calls, and everything
# else (the duroxide runtimes' own work). Removes the cluster on exit.
#
#   scripts/generator-share.sh --local 1 --profile standard
#
# Needs the release binaries (cargo build --release) and the PostgreSQL server
# binaries; run as root it runs Postgres as the `postgres` user.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-target/release}
[ -x "$BIN/coordinator" ] || { echo "build first: cargo build --release" >&2; exit 2; }

PG_EXTRA_OPTS="-c shared_preload_libraries=pg_stat_statements" . scripts/throwaway-pg.sh
url=$pg_url
psql -q "$url" -c "CREATE EXTENSION pg_stat_statements" -c "SELECT pg_stat_statements_reset()" >/dev/null

status=0
"$BIN/coordinator" --database-url "$url" "$@" || status=$?

psql "$url" -P pager=off -c "
  WITH s AS (
    SELECT calls,
           CASE WHEN query LIKE '%CASE WHEN e.status = %' THEN 'generator: completion query'
                WHEN query LIKE '%enqueue_orchestrator_work%' THEN 'generator: start call'
                WHEN query LIKE '%pg_stat%' OR query LIKE '%_duroxide_migrations%' OR query ~* '^(create|drop|alter|set|begin|commit)' THEN 'setup / bookkeeping'
                ELSE 'runtimes (provider)' END AS kind
    FROM pg_stat_statements
    WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()))
  SELECT kind, sum(calls) AS calls, round(100.0 * sum(calls) / (SELECT sum(calls) FROM s), 1) AS pct
  FROM s GROUP BY kind ORDER BY calls DESC"
exit $status
