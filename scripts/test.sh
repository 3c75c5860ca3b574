#!/usr/bin/env bash
# The test command: install what the tests need (scripts/test-deps.sh), then
# run the whole suite. Extra arguments go to cargo nextest (e.g. a filter).
# Tests that need root fail without it; LOADGEN_SKIP_ROOT_TESTS=1 skips them
# knowingly (CI never sets it).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/test-deps.sh
exec cargo nextest run --workspace --no-fail-fast "$@"
