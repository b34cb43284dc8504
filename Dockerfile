# Build stage: the same system packages the README's set-up installs.
FROM rust:1-bookworm AS build
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends \
      build-essential pkg-config libssl-dev libxml2-dev libxmlsec1-dev libclang-dev libpq-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin tessera

# Runtime: slim Debian with the shared libraries only.
FROM debian:bookworm-slim
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends \
      libxmlsec1-openssl libxml2 libxslt1.1 libssl3 libpq5 ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --home /app tessera
WORKDIR /app
COPY --from=build /src/target/release/tessera /usr/local/bin/tessera
COPY tessera.toml /app/tessera.toml
COPY trust /app/trust
USER tessera
ENV TESSERA_SERVER__LISTEN=0.0.0.0:8080
EXPOSE 8080
ENTRYPOINT ["tessera"]
CMD ["serve"]
