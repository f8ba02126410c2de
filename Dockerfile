# syntax=docker/dockerfile:1
# formbridge's container image. The build stage runs `cargo build --release --locked` (the release
# profile CI builds, .ci/run) with `--no-default-features`: the production image is the server
# alone — no GHL sandbox, no `demo`, no `sandbox-ghl`, no unauthenticated /_sandbox routes. The
# runtime stage is debian-slim with the stripped binary, a non-root user (10001) and the SQLite
# store on the /data volume.
# Build: `docker build -t formbridge .`
#        `docker build --build-arg FEATURES=sandbox -t formbridge:full .` (with the sandbox and demo)
# Run:   `docker run -p 8080:8080 -p 127.0.0.1:9090:9090 -v formbridge-data:/data \
#           -v "$PWD/config:/config:ro" -e FORMBRIDGE__SOURCES__JOTFORM__SECRET=… formbridge`
# Ports: 8080 webhooks and health checks (public); 9090 /metrics and /admin (ops: publish it to
# the loopback or your monitoring network only). Mapping: the folder mounted at /config
# (FORMBRIDGE_CONFIG_DIR) may hold production.toml (and default.toml); both optional.
# CI builds and runs this file unchanged with podman: deploy/test-image.sh.

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=bookworm
# Cargo features of the binary: empty = the lean production server; "sandbox" adds the GHL
# sandbox (`formbridge demo`, `formbridge sandbox-ghl`).
ARG FEATURES=""

# ---- build -----------------------------------------------------------------------------------
FROM rust:${RUST_VERSION}-slim-${DEBIAN_RELEASE} AS build
ARG FEATURES
WORKDIR /src

# Dependencies first, in a layer of their own: only the manifests and stub targets, so a change
# to formbridge's code rebuilds formbridge, not its ~300 dependencies (the same features as below).
# Every `[[bench]]` of Cargo.toml needs its stub here, or cargo refuses the manifest: their names
# are read from it (the line after each `[[bench]]`).
COPY Cargo.toml Cargo.lock ./
COPY crates/ghl-sandbox/Cargo.toml crates/ghl-sandbox/Cargo.toml
RUN mkdir -p src benches crates/ghl-sandbox/src \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs crates/ghl-sandbox/src/lib.rs \
    && sed -n '/^\[\[bench\]\]$/{n;s/^name = "\(.*\)"$/benches\/\1.rs/p;}' Cargo.toml > bench-stubs \
    && while read -r stub; do echo 'fn main() {}' > "${stub}"; done < bench-stubs \
    && cargo build --release --locked --no-default-features --features "${FEATURES}" --bin formbridge \
    && rm -rf src crates/ghl-sandbox/src bench-stubs

# The sources, and what the binary embeds at build time: the default configuration, the
# migrations and (with the sandbox feature) the demo's fixtures.
COPY src src
COPY crates crates
COPY config config
COPY migrations migrations
COPY tests/fixtures tests/fixtures
# COPY keeps the files' times, which may be older than the stub build: make cargo see them.
RUN touch src/main.rs src/lib.rs crates/ghl-sandbox/src/lib.rs \
    && cargo build --release --locked --no-default-features --features "${FEATURES}" --bin formbridge \
    && cp target/release/formbridge /usr/local/bin/formbridge

# ---- runtime ---------------------------------------------------------------------------------
FROM debian:${DEBIAN_RELEASE}-slim
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="formbridge" \
      org.opencontainers.image.description="Durable webhook server that turns form and chat submissions into GoHighLevel contacts, tags, tasks and notes" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="https://github.com/formbridge/formbridge" \
      org.opencontainers.image.documentation="https://github.com/formbridge/formbridge#deploy"

# A fixed, unprivileged user owning only the data folder, private to it (0700: the store holds
# personal data and OAuth tokens; a new named volume takes this mode).
RUN groupadd --system --gid 10001 formbridge \
    && useradd --system --uid 10001 --gid formbridge --home-dir /data --no-create-home \
       --shell /usr/sbin/nologin formbridge \
    && mkdir -p /data \
    && chown formbridge:formbridge /data \
    && chmod 0700 /data

COPY --from=build /usr/local/bin/formbridge /usr/local/bin/formbridge

# The defaults are built into the binary. /config (FORMBRIDGE_CONFIG_DIR) is where you mount your
# mapping read-only: /config/production.toml (and /config/default.toml) are layered over the
# defaults when present; the image holds none, so without a mount the defaults run. Secrets come
# from the environment (FORMBRIDGE__SECTION__KEY); FORMBRIDGE_ENV=production refuses development
# secrets and placeholders. /metrics and /admin are served on the ops address only (9090), never
# on the public 8080.
ENV FORMBRIDGE_ENV=production \
    FORMBRIDGE_CONFIG_DIR=/config \
    FORMBRIDGE__SERVER__ADDR=0.0.0.0:8080 \
    FORMBRIDGE__SERVER__OPS_ADDR=0.0.0.0:9090 \
    FORMBRIDGE__STORE__URL=sqlite:///data/formbridge.db \
    FORMBRIDGE__TELEMETRY__LOG_FORMAT=json

USER 10001:10001
WORKDIR /data
VOLUME ["/data"]
# 8080: webhooks and health checks. 9090: /metrics and /admin (and health checks).
EXPOSE 8080 9090

# The binary asks its own /readyz: no curl in the image.
HEALTHCHECK --interval=15s --timeout=6s --start-period=10s --retries=3 \
    CMD ["formbridge", "healthcheck"]

# SIGTERM: stop accepting and claiming, finish in-flight work within server.shutdown_grace (30s
# by default; give `docker stop -t`/`stop_grace_period` a little more), exit 0.
STOPSIGNAL SIGTERM
ENTRYPOINT ["formbridge"]
CMD ["serve"]
