# regcache container image: Node 24 slim, compiled JavaScript, production dependencies only, non-root.
# Build: docker build -t regcache .   Run: docker run -p 5000:5000 -v regcache-data:/var/lib/regcache regcache

# The JavaScript build: type annotations stripped by tsc into dist/. Install scripts are skipped:
# tsc needs no native addon and no Node binary from the node devDependency.
FROM node:24-slim AS build
WORKDIR /app
COPY package.json package-lock.json tsconfig.json tsconfig.build.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY src ./src
RUN npm run build

FROM node:24-slim AS deps
WORKDIR /app
# sqlite3 builds its native addon when no prebuilt binary is reachable.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force

FROM node:24-slim
ENV NODE_ENV=production \
    REGCACHE_CONFIG=/etc/regcache/config.yaml \
    REGCACHE_STORAGE_ROOT=/var/lib/regcache \
    REGCACHE_LISTEN=0.0.0.0:5000
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY package.json ./
COPY --from=build /app/dist ./dist
COPY config/regcache.example.yaml /etc/regcache/config.yaml
RUN mkdir -p /var/lib/regcache && chown node:node /var/lib/regcache
USER node
VOLUME ["/var/lib/regcache"]
EXPOSE 5000
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:5000/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
# node is PID 1 and handles SIGTERM itself: stop accepting, drain requests and downloads, exit.
STOPSIGNAL SIGTERM
CMD ["node", "--max-semi-space-size=4", "dist/main.js"]
