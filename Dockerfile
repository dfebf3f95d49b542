# backup-gateway: build with the Rust toolchain, run on a slim Debian as a
# user of its own. The image holds the gateway and the OpenStack simulator
# (for the compose demo, docker/compose.yaml).
#   docker build -t backup-gateway .
#   docker compose -f docker/compose.yaml up          # the demo (compose.cloud.yaml: a real cloud)
FROM rust:1.95-bookworm AS build
WORKDIR /src
# Dependencies first, in a layer of their own: built from the manifests and
# empty targets, so that a change to the sources reuses it.
COPY Cargo.toml Cargo.lock ./
COPY sim/Cargo.toml sim/Cargo.toml
# Every member of the workspace needs its manifest here, or cargo stops.
COPY bench/driver/Cargo.toml bench/driver/Cargo.toml
RUN mkdir -p src sim/src tests/api sim/tests/sim bench/driver/src \
    && echo 'fn main() {}' > src/main.rs && touch src/lib.rs \
    && echo 'fn main() {}' > sim/src/main.rs && touch sim/src/lib.rs \
    && echo 'fn main() {}' > bench/driver/src/main.rs \
    && touch tests/api/main.rs sim/tests/sim/main.rs \
    && cargo build --release --locked -p backup-gateway -p openstack-sim \
    && rm -rf src sim/src tests sim/tests bench/driver/src
COPY . .
# The sources are newer than the empty targets: cargo builds them again.
RUN touch src/main.rs src/lib.rs sim/src/main.rs sim/src/lib.rs \
    && cargo build --release --locked -p backup-gateway -p openstack-sim

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/backup-gateway --create-home gateway \
    && install -d -o gateway -g gateway /var/lib/backup-gateway/data /var/lib/backup-gateway/shared
COPY --from=build /src/target/release/backup-gateway /usr/local/bin/backup-gateway
COPY --from=build /src/target/release/openstack-sim /usr/local/bin/openstack-sim
USER gateway
WORKDIR /var/lib/backup-gateway
# The image's settings are a file, not environment variables: the
# environment outranks a --config file, so an operator's file replaces
# these, and their environment or flags still win over both.
COPY docker/gateway.toml /etc/backup-gateway/gateway.toml
ENV BACKUP_GATEWAY_CONFIG=/etc/backup-gateway/gateway.toml
EXPOSE 8080
# The image has no curl: the gateway probes its own /healthz (on
# BACKUP_GATEWAY_LISTEN, loopback when that is all interfaces).
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 \
    CMD ["/usr/local/bin/backup-gateway", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/backup-gateway"]
CMD ["serve"]
