#!/usr/bin/env bash
# `just smoke`: the short CI form of the load and fault-injection suites, on debug builds.
#
# 1. The README quick start under load, with the Gorse test double standing in for Gorse
#    (configured as compose/gorse/config.toml: `auto_insert_item = false`): `just up`
#    (scripts/up.sh, which waits until every service is ready), the mixed scenario of
#    sidechain-load at 20 concurrent users for 15 s, failing on any error; then
#    `sidechain-gorse-smoke`, the end-to-end Gorse check of docs/operations.md (a post and a like
#    through the API, read back with Gorse's GET /api/item and GET /api/feedback), then
#    `just down`.
# 2. `sidechain-chaos --quick`: kill -9 and restart NATS, Redis, the Gorse double and each
#    service under steady writes; fail on any lost write, any 500 or a service that does not
#    recover.
#
# Results go to load-tests/results/smoke-* (git-ignored). About three minutes after the build.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN="${CARGO_TARGET_DIR:-target}/debug"
PORT="${PORT:-8787}"
RESULTS=load-tests/results

cargo build --bins -p sidechain-edge -p sidechain-feedback -p sidechain-cache \
  -p sidechain-load -p sidechain-system-tests -p sidechain-test-support

echo "== smoke: quick start under load"
mkdir -p "$RESULTS"
GORSE_PORT="${GORSE_PORT:-18088}"
"$BIN/sidechain-gorse-double" --port "$GORSE_PORT" >"$RESULTS/smoke-gorse-double.log" 2>&1 &
gorse_pid=$!
trap 'scripts/down.sh; kill "$gorse_pid" 2>/dev/null || true' EXIT
GORSE_URL="http://127.0.0.1:$GORSE_PORT"
export GORSE_URL
for _ in $(seq 1 100); do curl -fsS "$GORSE_URL/api/health/live" >/dev/null 2>&1 && break; sleep 0.1; done
curl -fsS -X POST "$GORSE_URL/__double/control?auto_insert_item=false" >/dev/null
# The set-up registers users and posts quickly; the default per-IP limits would throttle it.
RATE_LIMIT_DEFAULT=1000000/1m RATE_LIMIT_AUTH=1000000/1m RATE_LIMIT_UPLOAD=1000000/1m \
  LOG_LEVEL=warn PORT="$PORT" scripts/up.sh >/dev/null
"$BIN/sidechain-load" run --base-url "http://127.0.0.1:$PORT" --scenario mixed \
  --concurrency 20 --duration 15s --warmup 2s --users 30 --seed 7 --quiet \
  --max-errors 0 --out "$RESULTS/smoke-load"
echo "== smoke: Gorse end to end (sidechain-gorse-smoke)"
"$BIN/sidechain-gorse-smoke" --base-url "http://127.0.0.1:$PORT" --gorse-url "$GORSE_URL" --timeout 30s
scripts/down.sh
kill "$gorse_pid" 2>/dev/null || true
trap - EXIT

echo "== smoke: fault injection (short form)"
"$BIN/sidechain-chaos" --quick --bin-dir "$BIN" --out "$RESULTS/smoke-chaos"
