// Every Prometheus metric regcache exports, in one registry; labels are bounded (upstream, kind, result).
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export type RequestKind = 'manifest' | 'blob' | 'tags';
export type RequestResult = 'hit' | 'miss' | 'stale' | 'revalidated' | 'pinned' | 'denied' | 'error';

export class Metrics {
  readonly registry = new Registry();
  readonly requests = new Counter({
    name: 'regcache_requests_total',
    help: 'Client requests for registry content, by upstream, kind, method and cache result.',
    labelNames: ['upstream', 'kind', 'method', 'result'] as const,
    registers: [this.registry],
  });
  readonly servedBytes = new Counter({
    name: 'regcache_served_bytes_total',
    help: 'Blob and manifest bytes sent to clients, by where they came from.',
    labelNames: ['upstream', 'source'] as const,
    registers: [this.registry],
  });
  readonly upstreamRequests = new Counter({
    name: 'regcache_upstream_requests_total',
    help: 'Requests sent to upstream registries, by method and status ("error" when no response).',
    labelNames: ['upstream', 'method', 'status'] as const,
    registers: [this.registry],
  });
  readonly upstreamDuration = new Histogram({
    name: 'regcache_upstream_request_duration_seconds',
    help: 'Time to response headers of upstream requests.',
    labelNames: ['upstream', 'kind'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [this.registry],
  });
  readonly rateLimitLimit = new Gauge({
    name: 'regcache_upstream_ratelimit_limit',
    help: 'Pull budget per window announced by the upstream (ratelimit-limit).',
    labelNames: ['upstream'] as const,
    registers: [this.registry],
  });
  readonly rateLimitRemaining = new Gauge({
    name: 'regcache_upstream_ratelimit_remaining',
    help: 'Pulls left in the current window (ratelimit-remaining).',
    labelNames: ['upstream'] as const,
    registers: [this.registry],
  });
  readonly rateLimitWindow = new Gauge({
    name: 'regcache_upstream_ratelimit_window_seconds',
    help: 'Length of the upstream rate-limit window.',
    labelNames: ['upstream'] as const,
    registers: [this.registry],
  });
  readonly throttled = new Counter({
    name: 'regcache_upstream_throttled_total',
    help: 'Upstream answers with status 429.',
    labelNames: ['upstream'] as const,
    registers: [this.registry],
  });
  readonly inflight = new Gauge({
    name: 'regcache_inflight_fetches',
    help: 'Blob downloads from upstreams in progress.',
    registers: [this.registry],
  });
  readonly dedupJoins = new Counter({
    name: 'regcache_dedup_joins_total',
    help: 'Blob requests that joined a download already in progress instead of fetching again.',
    registers: [this.registry],
  });
  readonly verifyFailures = new Counter({
    name: 'regcache_verify_failures_total',
    help: 'Upstream content rejected because its digest or size did not match.',
    labelNames: ['upstream', 'kind'] as const,
    registers: [this.registry],
  });

  readonly storageBytes = new Gauge({
    name: 'regcache_storage_bytes',
    help: 'Bytes of committed content in the store.',
    registers: [this.registry],
  });
  readonly storageQuota = new Gauge({
    name: 'regcache_storage_quota_bytes',
    help: 'Configured storage quota (0 = unlimited).',
    registers: [this.registry],
  });
  readonly storageEntries = new Gauge({
    name: 'regcache_storage_entries',
    help: 'Blobs and manifests in the store.',
    registers: [this.registry],
  });
  readonly evictions = new Counter({
    name: 'regcache_evictions_total',
    help: 'Files evicted to stay under the quota, by kind.',
    labelNames: ['kind'] as const,
    registers: [this.registry],
  });
  readonly evictedBytes = new Counter({
    name: 'regcache_evicted_bytes_total',
    help: 'Bytes evicted to stay under the quota.',
    registers: [this.registry],
  });
  readonly passThrough = new Counter({
    name: 'regcache_passthrough_total',
    help: 'Verified downloads streamed to clients but not kept (too large for the quota, or disk full).',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });

  readonly authFailures = new Counter({
    name: 'regcache_auth_failures_total',
    help: 'Client requests refused for wrong or malformed credentials (missing ones are the normal first step and not counted).',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });
  readonly pins = new Gauge({
    name: 'regcache_pins',
    help: 'Live pins (floating tags held at one digest in a scope), over all scopes.',
    registers: [this.registry],
  });
  readonly pinScopes = new Gauge({
    name: 'regcache_pin_scopes',
    help: 'Scopes holding at least one live pin.',
    registers: [this.registry],
  });
  readonly floatingTags = new Counter({
    name: 'regcache_floating_tag_requests_total',
    help: 'Manifest requests by a floating tag, by the policy applied (pin, allow, warn, deny).',
    labelNames: ['policy'] as const,
    registers: [this.registry],
  });

  constructor(opts: { upstreams: readonly string[]; defaultMetrics?: boolean }) {
    if (opts.defaultMetrics !== false) {
      collectDefaultMetrics({ register: this.registry });
      // prom-client's gauges with a counter's `_total` suffix fail `promtool check metrics`; the
      // per-type `nodejs_active_handles` / `_requests` / `_resources` gauges carry the same numbers.
      for (const name of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) this.registry.removeSingleMetric(name);
    }
    // Pre-initialise bounded label sets so rates start at 0 instead of appearing on first use.
    for (const upstream of opts.upstreams) {
      for (const kind of ['manifest', 'blob', 'tags'] as const) {
        for (const result of ['hit', 'miss', 'error'] as const) this.requests.labels(upstream, kind, 'GET', result).inc(0);
      }
      for (const source of ['cache', 'upstream'] as const) this.servedBytes.labels(upstream, source).inc(0);
      this.throttled.labels(upstream).inc(0);
      for (const kind of ['blob', 'manifest'] as const) this.verifyFailures.labels(upstream, kind).inc(0);
    }
    for (const kind of ['blob', 'manifest'] as const) this.evictions.labels(kind).inc(0);
    for (const reason of ['quota', 'disk-full'] as const) this.passThrough.labels(reason).inc(0);
    for (const reason of ['bad-credentials', 'malformed'] as const) this.authFailures.labels(reason).inc(0);
    for (const policy of ['pin', 'allow', 'warn', 'deny'] as const) this.floatingTags.labels(policy).inc(0);
  }
}
