// Composition root: config → logger → metrics → stores → upstreams → router → HTTP server.
import { mkdir } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { createServer, type Server } from 'node:http';
import { BlobCache } from './cache/blobs.ts';
import { FsBlobStore } from './cache/blob-store.ts';
import { ManifestCache } from './cache/manifests.ts';
import { Metadata } from './cache/metadata.ts';
import { StorageIndex } from './cache/storage-index.ts';
import type { Config } from './config/schema.ts';
import type { HandlerContext } from './handlers/context.ts';
import { Maintenance } from './cache/maintenance.ts';
import { AdminApi } from './http/admin.ts';
import { ClientAuth } from './http/client-auth.ts';
import { ConfigError } from './config/load.ts';
import { Router } from './http/router.ts';
import { createHttpServer, type ServerState } from './http/server.ts';
import { createLogger, type Logger } from './observability/logger.ts';
import { Metrics } from './observability/metrics.ts';
import { UpstreamRegistry, createOutsideAgent } from './upstream/registry.ts';
import { Pins } from './workshops/pins.ts';
import { Policy } from './workshops/policy.ts';
import { Prefetcher } from './workshops/prefetch.ts';
import { ManifestResolver } from './workshops/resolver.ts';

export interface App {
  readonly config: Config;
  readonly server: Server;
  readonly metrics: Metrics;
  readonly log: Logger;
  readonly upstreams: ReadonlyMap<string, UpstreamRegistry>;
  readonly store: FsBlobStore;
  readonly index: StorageIndex;
  readonly pins: Pins;
  /** The metrics listener's address, when metrics.listen is set and listening. */
  metricsAddress(): AddressInfo | undefined;
  /** Listens on config.listen (or the given port, 0 = any) and returns the bound address. */
  listen(port?: number): Promise<AddressInfo>;
  /** Stops accepting, lets requests and downloads finish within the grace period, then closes. */
  close(): Promise<void>;
}

export async function createApp(config: Config, opts: { logger?: Logger; defaultMetrics?: boolean } = {}): Promise<App> {
  const log = opts.logger ?? createLogger(config.log.level);
  const metrics = new Metrics({ upstreams: config.upstreams.map((u) => u.name), defaultMetrics: opts.defaultMetrics ?? true });
  await mkdir(config.storage.root, { recursive: true });
  const store = new FsBlobStore(config.storage.root);
  await store.init();
  const metadata = Metadata.sqlite(config.storage.root);
  const outside = createOutsideAgent();
  const upstreams = new Map(config.upstreams.map((u) => [u.name, new UpstreamRegistry(u, { outside, metrics, logger: log })]));
  const index = new StorageIndex({ store, metadata, metrics, logger: log, quota: config.storage });
  await index.load();
  const blobs = new BlobCache({ store, index, metrics, logger: log });
  const manifests = new ManifestCache({ store, metadata, index, metrics, logger: log, ttlMs: config.tags.ttlMs, maxBytes: config.limits.maxManifestBytes });
  const pins = new Pins({ metadata, manifests, index, metrics, logger: log, ttlMs: config.scopes.pinTtlMs });
  await pins.load();
  const policy = new Policy(config);
  const resolver = new ManifestResolver({ manifests, pins, policy, metrics, logger: log });
  const ctx: HandlerContext = { blobs, manifests, resolver, policy, upstreams, metrics, log };
  const state: ServerState = { ready: false, check: readinessCheck(store, metadata), metricsElsewhere: config.metrics.listen !== undefined };
  const maintenance = new Maintenance({ metadata, index, store, manifests, logger: log });
  const router = new Router(config.upstreams, config.scopes);
  const prefetcher = new Prefetcher({ router, upstreams, resolver, manifests, blobs, policy, platforms: config.prefetch.platforms, reserve: config.prefetch.reserve, logger: log });
  const admin = new AdminApi(config.admin.token, maintenance, { pins, prefetcher, resolver, upstreams });
  let auth: ClientAuth | undefined;
  if (ClientAuth.enabled(config.auth)) {
    try {
      auth = new ClientAuth({ ...config.auth, metrics, logger: log });
    } catch (err) {
      throw new ConfigError([`auth.htpasswd: ${(err as Error).message}`], config.auth.htpasswd ?? 'auth');
    }
  }
  const server = createHttpServer(ctx, router, state, admin, auth, config.limits);

  for (const u of upstreams.values()) u.startHeadroomProbe();
  let metricsServer: Server | undefined;

  return {
    config,
    server,
    metrics,
    log,
    upstreams,
    store,
    index,
    pins,
    metricsAddress: () => (metricsServer?.address() ?? undefined) as AddressInfo | undefined,
    async listen(port?: number): Promise<AddressInfo> {
      const i = config.listen.lastIndexOf(':');
      const host = config.listen.slice(0, i).replace(/^\[|\]$/g, '') || '0.0.0.0';
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(port ?? Number(config.listen.slice(i + 1)), host, () => {
          server.off('error', reject);
          resolve();
        });
      });
      if (config.metrics.listen !== undefined) {
        // A separate port for scrapes, so /metrics need not be reachable where clients pull.
        const m = config.metrics.listen.lastIndexOf(':');
        metricsServer = createServer((req, res) => {
          if (req.url?.split('?')[0] !== '/metrics') return void res.writeHead(404).end();
          void metrics.registry.metrics().then((text) => res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(text));
        });
        await new Promise<void>((resolve, reject) => {
          metricsServer!.once('error', reject);
          metricsServer!.listen(port === 0 ? 0 : Number(config.metrics.listen!.slice(m + 1)), config.metrics.listen!.slice(0, m).replace(/^\[|\]$/g, '') || '0.0.0.0', () => resolve());
        });
      }
      state.ready = true;
      return server.address() as AddressInfo;
    },
    async close(): Promise<void> {
      state.ready = false;
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      const grace = new Promise<void>((resolve) => setTimeout(resolve, config.shutdownTimeoutMs).unref());
      await Promise.race([Promise.all([closed, blobs.drain()]), grace]);
      server.closeAllConnections();
      metricsServer?.close();
      await Promise.allSettled([...upstreams.values()].map((u) => u.close()));
      await outside.close().catch(() => undefined);
      pins.close();
      await index.close().catch(() => undefined);
      await metadata.close().catch(() => undefined);
    },
  };
}

/** Readiness: the store takes writes and the metadata answers; checked at most every 2 s. */
function readinessCheck(store: FsBlobStore, metadata: Metadata): () => Promise<string | undefined> {
  let last: { at: number; problem: string | undefined } | undefined;
  return async () => {
    if (last && Date.now() - last.at < 2_000) return last.problem;
    let problem: string | undefined;
    try {
      await store.checkWritable();
    } catch (err) {
      problem = `storage not writable: ${(err as Error).message}`;
    }
    if (!problem) {
      try {
        await metadata.ping();
      } catch (err) {
        problem = `metadata store unavailable: ${(err as Error).message}`;
      }
    }
    last = { at: Date.now(), problem };
    return problem;
  };
}
