#!/usr/bin/env bash
# `just down`: stops what `just up` started (services first, then Redis and NATS).
set -euo pipefail
cd "$(dirname "$0")/.."
PIDS=.data/pids
[ -d "$PIDS" ] || { echo "nothing to stop"; exit 0; }
for name in edge feedback cache media redis-server nats-server; do
  file="$PIDS/$name"
  [ -s "$file" ] || continue
  pid="$(cat "$file")"
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    for _ in $(seq 1 350); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then echo "$name did not stop in 35 s; killing"; kill -KILL "$pid"; fi
    echo "stopped $name"
  fi
  rm -f "$file"
done
