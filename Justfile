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
    shellcheck scripts/*.sh .ci/run

# Validate the deployment files (compose, Prometheus rules, dashboards, Kubernetes) with the
# real tools, installing them on first use.
validate-deploy:
    scripts/validate-deploy.sh

# What CI runs: lint, deployment checks, then the tests.
ci: lint validate-deploy test
