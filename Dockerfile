# aimate: the AI Mate API server and its harness (load, drill, report, chaos proxy) in
# one image. `docker run aimate` serves on 0.0.0.0:8080 (SQLite in the /data volume);
# `docker run aimate load --target …` and the rest use the same image.
#
#   docker build -t aimate .                      full build: official Rust, distroless cc
#   docker build --target prebuilt \
#     --build-arg PREBUILT=dist/aimate -t aimate .  package a release binary built elsewhere
#
# The bases are build arguments, so a machine that cannot pull (scripts/deploy-check.sh)
# builds the same file on local ones. BuildKit is needed for the cache mounts
# (DOCKER_BUILDKIT=1 on Docker 20.10; the default since 23.0).

ARG RUST_IMAGE=rust:1.95-slim-bookworm
# glibc, libgcc and CA certificates, no shell, a nonroot user 65532: what the binary needs.
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot

# ---- builder: a release build; the registry and target dir are cache mounts, so a
# change to the sources recompiles the workspace crates only.
FROM ${RUST_IMAGE} AS builder
WORKDIR /src
# Only what the build reads: a change to docs, dashboards or deploy/ keeps the cache.
COPY Cargo.toml Cargo.lock slo.toml ./
COPY src src
COPY conventions conventions
COPY server server
COPY loadgen loadgen
COPY chaos chaos
COPY reports reports
COPY monitoring monitoring
COPY live live
COPY tests tests
# Symbols stripped: the image carries the program, not its symbol table. The binary
# leaves the cache-mounted target dir in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    CARGO_PROFILE_RELEASE_STRIP=symbols cargo build --release --locked --bin aimate \
    && cp target/release/aimate /usr/local/bin/aimate

# ---- the runtime both final stages share.
FROM ${RUNTIME_IMAGE} AS runtime-base
# The platform's PORT wins over this default; logs go to stdout only (the platform
# collects them); SQLite lives in the volume, as do reports written to relative paths.
ENV PORT=8080 \
    AIMATE_DATA_DIR=/data \
    AIMATE_LOG_DIR=-
# USER first: BuildKit then makes the working directory (the volume) the user's own, so
# a fresh named volume is writable by it.
USER 65532:65532
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8080
# Readiness, by the binary itself: no curl, no shell.
HEALTHCHECK --interval=5s --timeout=3s --start-period=10s --retries=3 \
    CMD ["aimate", "probe", "/api/health"]
ENTRYPOINT ["aimate"]
CMD ["serve"]

# ---- prebuilt: packages a release binary from the build context (strip it first:
# `strip -o dist/aimate target/release/aimate`).
FROM runtime-base AS prebuilt
ARG PREBUILT=dist/aimate
COPY ${PREBUILT} /usr/local/bin/aimate

# ---- the default target: the full build.
FROM runtime-base AS runtime
COPY --from=builder /usr/local/bin/aimate /usr/local/bin/aimate
