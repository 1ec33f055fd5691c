# syntax=docker/dockerfile:1
#
# mcp-operator image: multi-stage, static-ish Rust binary on distroless, non-root.
#
#   docker build -t mcp-operator:dev .
#   (podman/buildah work too; BuildKit cache mounts only speed up rebuilds)
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
    cargo build --release --locked --bin mcp-operator \
 && install -D -m 0755 target/release/mcp-operator /out/mcp-operator

# distroless/cc: glibc + libgcc, CA certificates, no shell, no package manager.
# The operator uses rustls (no OpenSSL needed). Debian 12 matches the builder's glibc.
FROM gcr.io/distroless/cc-debian12:nonroot
LABEL org.opencontainers.image.title="mcp-operator" \
      org.opencontainers.image.description="Kubernetes operator that keeps MCP servers serving through failures" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /out/mcp-operator /usr/local/bin/mcp-operator
# 65532 = distroless "nonroot"; numeric so runAsNonRoot can verify it.
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/mcp-operator"]
