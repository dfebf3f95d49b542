# backup-gateway: build with the Rust toolchain, run on a slim Debian.
#   docker build -t backup-gateway .
#   docker compose -f docker/compose.yaml up
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin backup-gateway

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/backup-gateway --create-home gateway \
    && install -d -o gateway -g gateway /var/lib/backup-gateway/data
COPY --from=build /src/target/release/backup-gateway /usr/local/bin/backup-gateway
USER gateway
WORKDIR /var/lib/backup-gateway
ENV BACKUP_GATEWAY_LISTEN=0.0.0.0:8080 \
    BACKUP_GATEWAY_DATABASE_URL=sqlite:///var/lib/backup-gateway/data/backup-gateway.db \
    BACKUP_GATEWAY_LOG_FORMAT=json \
    OS_CLIENT_CONFIG_FILE=/etc/openstack/clouds.yaml
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/backup-gateway"]
CMD ["serve"]
