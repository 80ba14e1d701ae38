#!/usr/bin/env bash
# `just up`: runs NATS (JetStream), Redis and the three services on this machine.
#
# NATS and Redis are started only if nothing answers on NATS_URL / REDIS_URL; their data lives
# under .data/ (git-ignored). Services log to .logs/<service>.log and stdout of each goes to
# .logs/<service>.out. `just down` stops what this script started.
#
# NATS runs with authorization: one NKey identity per service plus an admin, seeds kept in
# NATS_KEYS_DIR (default .data/nats-keys, made once by `sidechain-nats-admin keys`), the
# server's allow-lists in NATS_KEYS_DIR/auth.conf. The admin provisions the EVENTS stream and the
# KV buckets; each service connects with its own seed (NATS_NKEY_FILE).
set -euo pipefail
cd "$(dirname "$0")/.."

PROFILE="${PROFILE:-debug}"
DATA=.data
LOGS=.logs
mkdir -p "$DATA/pids" "$LOGS"

NATS_URL="${NATS_URL:-nats://127.0.0.1:4222}"
REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379}"
export NATS_URL REDIS_URL

host_port() { # nats://host:port or redis://[:pw@]host:port[/db] -> "host port"
  local rest="${1#*://}"; rest="${rest##*@}"; rest="${rest%%/*}"
  echo "${rest%:*} ${rest##*:}"
}
listening() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }
wait_port() {
  for _ in $(seq 1 100); do listening "$1" "$2" && return 0; sleep 0.1; done
  echo "nothing listening on $1:$2" >&2; return 1
}

scripts/ensure-tools.sh

echo "building the services ($PROFILE)"
services=(-p sidechain-edge -p sidechain-feedback -p sidechain-cache -p sidechain-media -p sidechain-infra)
if [ "$PROFILE" = release ]; then cargo build --release --bins "${services[@]}"; else cargo build --bins "${services[@]}"; fi
BIN="${CARGO_TARGET_DIR:-target}/$PROFILE"

NATS_KEYS_DIR="${NATS_KEYS_DIR:-$DATA/nats-keys}"
"$BIN/sidechain-nats-admin" keys "$NATS_KEYS_DIR"

read -r nats_host nats_port <<<"$(host_port "$NATS_URL")"
if listening "$nats_host" "$nats_port"; then
  echo "NATS already running on $nats_host:$nats_port (not started by us): its configuration must"
  echo "  include $NATS_KEYS_DIR/auth.conf, or the services' credentials will be refused"
else
  echo "starting NATS with JetStream and authorization on $nats_host:$nats_port (data in $DATA/nats)"
  nohup nats-server -c "$NATS_KEYS_DIR/auth.conf" -js -a "$nats_host" -p "$nats_port" \
    -sd "$DATA/nats" -m "${NATS_MONITOR_PORT:-8222}" >"$LOGS/nats-server.log" 2>&1 &
  echo $! >"$DATA/pids/nats-server"
  wait_port "$nats_host" "$nats_port"
fi
echo "provisioning the EVENTS stream, the KV buckets and the audio bucket (as the admin identity)"
NATS_NKEY_FILE="$NATS_KEYS_DIR/admin.nk" "$BIN/sidechain-nats-admin" provision

# Redis users: one per service plus an admin, the default user off (REDIS_ACL_DIR/users.acl).
REDIS_ACL_DIR="${REDIS_ACL_DIR:-$DATA/redis-acl}"
"$BIN/sidechain-nats-admin" redis-acl "$REDIS_ACL_DIR"
read -r redis_host redis_port <<<"$(host_port "$REDIS_URL")"
redis_ours=""
if [ -s "$DATA/pids/redis-server" ] && kill -0 "$(cat "$DATA/pids/redis-server")" 2>/dev/null; then
  echo "Redis already running on $redis_host:$redis_port (started by an earlier just up)"
  redis_ours=yes
elif listening "$redis_host" "$redis_port"; then
  echo "Redis already running on $redis_host:$redis_port (not started by us): every service uses REDIS_URL"
else
  echo "starting Redis with ACL users on $redis_host:$redis_port (data in $DATA/redis)"
  mkdir -p "$DATA/redis"
  nohup redis-server --bind "$redis_host" --port "$redis_port" --dir "$DATA/redis" \
    --appendonly yes --save "" --aclfile "$(cd "$REDIS_ACL_DIR" && pwd)/users.acl" \
    >"$LOGS/redis-server.log" 2>&1 &
  echo $! >"$DATA/pids/redis-server"
  wait_port "$redis_host" "$redis_port"
  redis_ours=yes
fi
redis_url_for() { # service -> its REDIS_URL
  if [ -n "$redis_ours" ]; then
    echo "redis://$1:$(cat "$REDIS_ACL_DIR/$1.redis-password")@$redis_host:$redis_port"
  else
    echo "$REDIS_URL"
  fi
}

# The edge needs a signing key. Keep a generated development key across runs.
if [ -z "${JWT_SECRET:-}" ]; then
  [ -s "$DATA/dev-jwt-secret" ] || head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$DATA/dev-jwt-secret"
  JWT_SECRET="$(cat "$DATA/dev-jwt-secret")"
  export JWT_SECRET
  echo "JWT_SECRET not set: using the development key in $DATA/dev-jwt-secret"
fi

# Development: the web app's dev server (Vite) may call the API from the browser.
export CORS_ALLOWED_ORIGINS="${CORS_ALLOWED_ORIGINS-http://localhost:5173}"

start_service() { # name metrics_port
  local name="$1" port="$2"
  if [ -s "$DATA/pids/$name" ] && kill -0 "$(cat "$DATA/pids/$name")" 2>/dev/null; then
    echo "$name already running (pid $(cat "$DATA/pids/$name"))"; return
  fi
  METRICS_PORT="$port" LOG_FILE="${LOG_DIR:-$LOGS}/$name.log" \
    NATS_NKEY_FILE="$NATS_KEYS_DIR/$name.nk" REDIS_URL="$(redis_url_for "$name")" \
    nohup "$BIN/sidechain-$name" >"$LOGS/$name.out" 2>&1 &
  echo $! >"$DATA/pids/$name"
}

start_service edge "${EDGE_METRICS_PORT:-9090}"
start_service feedback "${FEEDBACK_METRICS_PORT:-9091}"
start_service cache "${CACHE_METRICS_PORT:-9092}"
start_service media "${MEDIA_METRICS_PORT:-9093}"

for port in "${EDGE_METRICS_PORT:-9090}" "${FEEDBACK_METRICS_PORT:-9091}" "${CACHE_METRICS_PORT:-9092}" "${MEDIA_METRICS_PORT:-9093}"; do
  ready=""
  for _ in $(seq 1 150); do
    if curl -fsS "http://127.0.0.1:$port/health/ready" >/dev/null 2>&1; then ready=yes; break; fi
    sleep 0.2
  done
  [ -n "$ready" ] || { echo "service on metrics port $port is not ready; see $LOGS/" >&2; exit 1; }
done

cat <<INFO

Sidechain is up.
  API            http://127.0.0.1:${PORT:-8787}        (OpenAPI: /openapi.json)
  edge           metrics/health http://127.0.0.1:${EDGE_METRICS_PORT:-9090}/metrics  /health/ready
  feedback       metrics/health http://127.0.0.1:${FEEDBACK_METRICS_PORT:-9091}/metrics
  cache          metrics/health http://127.0.0.1:${CACHE_METRICS_PORT:-9092}/metrics
  media          metrics/health http://127.0.0.1:${MEDIA_METRICS_PORT:-9093}/metrics
  NATS           $NATS_URL  (seeds and allow-lists in $NATS_KEYS_DIR)
  Redis          $REDIS_URL  (users and passwords in $REDIS_ACL_DIR)
  Gorse          ${GORSE_URL:-not configured (feeds fall back to trending, feedback waits in the dead-letter list)}
  logs           $LOGS/<service>.log (JSON, rotated), stdout in $LOGS/<service>.out
Stop with: just down
INFO
