# syntax=docker/dockerfile:1
#
# One image with the three Sidechain services: sidechain-edge (the default command),
# sidechain-feedback and sidechain-cache. Pick one with the container's command, e.g.
#   docker run --rm -e JWT_SECRET=... sidechain:dev                       # edge
#   docker run --rm sidechain:dev sidechain-feedback
#
# Build (BuildKit, the default builder of Docker Engine >= 23 and of `docker compose` v2):
#   docker build -t sidechain:dev .
#
# Dependency caching: the cargo registry and the target directory live in BuildKit cache
# mounts, so a rebuild after a source change recompiles only the workspace crates. (A separate
# "dependencies only" layer would need a stub for every workspace member and build script,
# which breaks whenever a member is added; cache mounts give the same effect without that.)
#
# No secrets are baked in: JWT_SECRET, GORSE_API_KEY, NATS and Redis credentials come from
# the environment at run time (docker compose `environment:`, Kubernetes Secrets).

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=bookworm

############################ build ############################
FROM rust:${RUST_VERSION}-${DEBIAN_RELEASE} AS builder
WORKDIR /src

# protoc is vendored by the build (protoc-bin-vendored); nothing else to install.
COPY . .

RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked --bins \
        -p sidechain-edge -p sidechain-feedback -p sidechain-cache -p sidechain-media \
        -p sidechain-infra \
    && mkdir -p /out \
    && cp target/release/sidechain-edge target/release/sidechain-feedback \
          target/release/sidechain-cache target/release/sidechain-media \
          target/release/sidechain-nats-admin /out/

############################ runtime ############################
# Debian slim (same glibc as the builder) rather than distroless: the services link glibc
# dynamically, and `curl` is needed for container health checks (`docker compose`).
FROM debian:${DEBIAN_RELEASE}-slim AS runtime

# ca-certificates: TLS to Gorse, NATS (tls://) and Redis (rediss://). curl: health checks.
# Unpinned apt versions on purpose (DL3008): the base image tag fixes the Debian release and
# security updates should land on rebuild.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 sidechain \
    && useradd --system --uid 10001 --gid sidechain --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin sidechain \
    && mkdir -p /var/log/sidechain \
    && chown sidechain:sidechain /var/log/sidechain

COPY --from=builder /out/ /usr/local/bin/

# Defaults only; every setting can be overridden at run time (see .env.example).
ENV BIND_ADDRESS=0.0.0.0 \
    LOG_LEVEL=info

# 8787 edge API; 9090 / 9091 / 9092 / 9093 metrics and health of edge / feedback / cache / media.
EXPOSE 8787 9090 9091 9092

USER 10001:10001

# SIGTERM drains in-flight work (SHUTDOWN_TIMEOUT, 30 s); give the container more than that.
STOPSIGNAL SIGTERM

CMD ["sidechain-edge"]
