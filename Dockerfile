# syntax=docker/dockerfile:1

# Build: compile TypeScript, then drop dev dependencies.
FROM node:24-bookworm-slim AS build
# node-llama-cpp (in-process GGUF models, an optional dependency) ships prebuilt llama.cpp
# binaries for every platform and GPU (~700 MB). cpu (default): keep the CPU build for this
# image's architecture only; gpu: keep every build (CUDA/Vulkan hosts); none: leave it out.
ARG LLAMA_CPP=cpu
WORKDIR /app
COPY package.json package-lock.json ./
# No install scripts: the image has its Node already (the `node` dev dependency would fetch
# another), and `prepare` would build before the sources are here.
RUN npm ci --no-audit --no-fund --ignore-scripts
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
# A plain dist/ folder (scripts/build.mjs's switchable builds are for checkouts).
# tsc emits only .js: the store's Lua scripts are read at run time from beside their module.
RUN node node_modules/typescript/bin/tsc -p tsconfig.build.json && cp -r src/store/lua dist/store/lua \
    && npm prune --omit=dev --ignore-scripts \
    && case "$LLAMA_CPP" in \
         none) npm prune --omit=dev --omit=optional --ignore-scripts ;; \
         cpu) find node_modules/@node-llama-cpp -mindepth 1 -maxdepth 1 \
                \( -name '*cuda*' -o -name '*vulkan*' -o ! -name "linux-$(uname -m | sed 's/x86_64/x64/;s/aarch64/arm64/')" \) \
                -exec rm -rf {} + ;; \
         gpu) ;; \
         *) echo "LLAMA_CPP must be cpu, gpu or none" >&2; exit 1 ;; \
       esac

# Runtime: only what runs, as the unprivileged `node` user.
FROM node:24-bookworm-slim AS runtime
ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    PORT=8080 \
    TOLLGATE_DATA_DIR=/data
WORKDIR /app
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json tollgate.example.yaml ./
RUN mkdir -p /data && chown node:node /data
# Without Redis, teams, keys and the admin key's hash persist here: mount a volume.
VOLUME ["/data"]
USER node
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PORT||8080)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
# Node receives SIGTERM directly (exec form), so `docker stop` drains in-flight streams, for as long
# as Docker waits before SIGKILL: 10 s unless `docker run --stop-timeout` (or compose's
# stop_grace_period) says more; give it shutdownGraceMs (30 s by default) plus 5 s.
# Semi-spaces of 16 MB: ~60 MB less RSS under load than Node's default at the same throughput
# (BENCHMARKS.md, memory). A fixed malloc trim threshold: glibc otherwise raises it after V8's
# compiler threads free their large work areas and keeps ~12 MB of freed memory per process.
ENV MALLOC_TRIM_THRESHOLD_=131072
ENTRYPOINT ["node", "--max-semi-space-size=16", "dist/cli/main.js"]
CMD ["serve"]
