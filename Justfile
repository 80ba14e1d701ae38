# Sidechain backend services. `just` lists the recipes.

set dotenv-load := true
set shell := ["bash", "-euo", "pipefail", "-c"]

# List the recipes.
default:
    @just --list

# Install what a fresh machine lacks for tests and `just up` (nats-server, redis-server).
setup:
    scripts/ensure-tools.sh

# Run NATS, Redis and the three services locally (PROFILE=release for an optimised build).
up:
    scripts/up.sh

# Stop what `just up` started.
down:
    scripts/down.sh

# Every test of the workspace, against real NATS and Redis servers the tests start themselves.
test: setup
    cargo test --workspace --all-targets

# Formatting and lints, as CI checks them.
lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings
    shellcheck scripts/*.sh .ci/run just

# The real tools (docker compose config, promtool, kubeconform, ...) are installed on first use.
# Validate the deployment files: compose, Prometheus rules, dashboards, Kubernetes.
validate-deploy:
    scripts/validate-deploy.sh

# What CI runs: lint, deployment checks, the tests, then the short load and chaos smoke.
ci: lint validate-deploy test smoke

# The short CI form of the load and fault suites on debug builds (scripts/smoke.sh, ~3 min).
smoke: setup
    scripts/smoke.sh

# Kills -9 and restarts NATS, Redis, the Gorse double and each service under steady writes;
# `just chaos --quick` is the short form (docs/testing.md).
# Fault injection: fails on any lost write, any 500, any service that does not recover.
chaos *ARGS: setup
    cargo build --release --bins -p sidechain-edge -p sidechain-feedback -p sidechain-cache -p sidechain-load -p sidechain-system-tests -p sidechain-test-support
    "${CARGO_TARGET_DIR:-target}/release/sidechain-chaos" {{ARGS}}

# OpenAPI-driven fuzzing of the running edge (`just up` first); fails on any 5xx.
fuzz:
    scripts/fuzz-api.sh

# Flags go to sidechain-bench (`just bench --soak 10m`, `just bench --only feed,like`);
# results land in load-tests/results/bench-<time>/ (see docs/benchmarks.md).
# The benchmark comparison suite (about 12 min): the floors and the services side by side.
bench *ARGS: setup _bench-tools
    cargo build --release --bins -p sidechain-edge -p sidechain-feedback -p sidechain-cache -p sidechain-test-support -p sidechain-load
    "${CARGO_TARGET_DIR:-target}/release/sidechain-bench" {{ARGS}}

# The benchmark suite as a smoke run of about two minutes (short runs, one repetition).
bench-quick *ARGS: (bench "--quick" ARGS)

# The mixed scenario for 60 s at 100 concurrent against `just up-for-load` (127.0.0.1:8787).
load *ARGS:
    cargo build --release -p sidechain-load
    "${CARGO_TARGET_DIR:-target}/release/sidechain-load" run --base-url http://127.0.0.1:8787 --scenario mixed --concurrency 100 --duration 60s {{ARGS}}

# Warn-level logs (access logs at info cost throughput) and rate limits high enough that the
# load generator's set-up is not throttled.
# `just up` for load tests: release build, quiet logs, very high rate limits.
up-for-load:
    PROFILE=release LOG_LEVEL=warn RATE_LIMIT_DEFAULT=60000000/1m RATE_LIMIT_AUTH=60000000/1m RATE_LIMIT_UPLOAD=60000000/1m scripts/up.sh

# wrk and redis-benchmark for the benchmark suite, installed on first use.
_bench-tools:
    #!/usr/bin/env bash
    set -euo pipefail
    missing=()
    command -v wrk >/dev/null || missing+=(wrk)
    command -v redis-benchmark >/dev/null || missing+=(redis-tools)
    [ "${#missing[@]}" -eq 0 ] && exit 0
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    echo "installing ${missing[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
