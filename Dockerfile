# syntax=docker/dockerfile:1
# Mayfly image: mayfly-server and mayfly-agent (issue 13, item 4). Used by deploy/k8s
# (image ghcr.io/mayfly/mayfly:<version>; the manifests pass `args` such as
# ["mayfly-server", "run", ...], so both bins are on PATH and there is no ENTRYPOINT).
#   docker build -t ghcr.io/mayfly/mayfly:0.1.0 .
# Runs as 65532:65532 (the server StatefulSet's runAsUser); the agent DaemonSet overrides
# it where it needs root (the hostPath socket directory).

# 1. Build: full dependencies, compile, then drop dev dependencies and test-only output.
FROM node:20-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY bench ./bench
COPY proto ./proto
COPY bin ./bin
RUN npm run build \
 && npm prune --omit=dev --no-audit --no-fund \
 && rm -rf dist/bench \
 && find dist -type d -name testdata -prune -exec rm -rf {} + \
 && mkdir -p /out \
 && cp -a package.json bin proto node_modules /out/ \
 && mkdir -p /out/dist && cp -a dist/src /out/dist/src

# 2. Runtime: the same Node, only what the package ships, not root.
FROM node:20-bookworm-slim
ENV NODE_ENV=production
WORKDIR /opt/mayfly
COPY --from=build /out/ /opt/mayfly/
RUN ln -s /opt/mayfly/bin/mayfly-server.js /usr/local/bin/mayfly-server \
 && ln -s /opt/mayfly/bin/mayfly-agent.js /usr/local/bin/mayfly-agent \
 && chmod 0755 /opt/mayfly/bin/*.js
USER 65532:65532
CMD ["mayfly-server", "--version"]
