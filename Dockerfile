# syntax=docker/dockerfile:1
#
# The mcp-operator image and the e2e workload image, from one Rust build:
#
#   docker build -t mcp-operator:dev .                       # the operator (default target)
#   docker build --target workload -t mcp-workload:dev .     # MCP server + load client (e2e)
#
# Both targets share the `build` stage, so the second build reuses the first's
# compile (BuildKit, podman and buildah cache it). Both images are distroless
# and non-root.
#
# The build context is the repository root: the Cargo workspace has members
# [".", "e2e/workload"] and fails to load unless both manifests (and sources) are
# present, so we copy the whole context; .dockerignore keeps target/ and .git out.

ARG RUST_VERSION=1.95

FROM docker.io/library/rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src
COPY . .
# --locked: Cargo.lock is committed and must be honoured.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked -p mcp-operator -p mcp-workload \
      --bin mcp-operator --bin mcp-workload-server --bin mcp-loadclient \
 && mkdir -p /out \
 && cp target/release/mcp-operator target/release/mcp-workload-server target/release/mcp-loadclient /out/

# distroless/cc: glibc + libgcc, CA certificates, no shell, no package manager.
# rustls throughout (no OpenSSL). Debian 12 matches the builder's glibc.
FROM gcr.io/distroless/cc-debian12:nonroot AS workload
COPY --from=build /out/mcp-workload-server /usr/local/bin/mcp-workload-server
COPY --from=build /out/mcp-loadclient /usr/local/bin/mcp-loadclient
USER 65532:65532
ENV PORT=8080 MCP_PATH=/mcp
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/mcp-workload-server"]

FROM gcr.io/distroless/cc-debian12:nonroot AS operator
LABEL org.opencontainers.image.title="mcp-operator" \
      org.opencontainers.image.description="Kubernetes operator that keeps MCP servers serving through failures" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /out/mcp-operator /usr/local/bin/mcp-operator
# 65532 = distroless "nonroot"; numeric so runAsNonRoot can verify it.
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/mcp-operator"]
