// One configured upstream registry: its undici pool, name mapping, auth, redirects and rate-limit state.
import { Agent, Pool, type Dispatcher } from 'undici';
import type { UpstreamConfig } from '../config/schema.ts';
import type { Logger } from '../observability/logger.ts';
import type { Metrics } from '../observability/metrics.ts';
import { OciError } from '../oci/errors.ts';
import { UPSTREAM_MANIFEST_ACCEPT } from '../oci/media-types.ts';
import { UpstreamAuth } from './auth.ts';
import { UpstreamError, networkError, statusError } from './errors.ts';
import { isBlockedAddress } from './blocked-addresses.ts';
import { recordRateLimit, type RateLimitState } from './rate-limit.ts';

export type UpstreamKind = 'manifest' | 'blob' | 'tags';
export type UpstreamResponse = Dispatcher.ResponseData;

const USER_AGENT = 'regcache/0.1 (+pull-through cache)';
const MAX_REDIRECTS = 5;
const MAX_ERROR_BODY = 64 * 1024;

export class UpstreamRegistry {
  readonly name: string;
  readonly config: UpstreamConfig;
  readonly rateLimit: RateLimitState = {};
  private readonly pool: Pool;
  /** For hosts other than the upstream itself (CDN redirects); never sent credentials. */
  private readonly outside: Dispatcher;
  private readonly auth: UpstreamAuth;
  private readonly metrics: Metrics;
  private readonly log: Logger;
  private probe: NodeJS.Timeout | undefined;

  constructor(config: UpstreamConfig, deps: { outside: Dispatcher; metrics: Metrics; logger: Logger }) {
    this.name = config.name;
    this.config = config;
    this.outside = deps.outside;
    this.metrics = deps.metrics;
    this.log = deps.logger.child({ module: 'upstream', upstream: config.name });
    this.pool = new Pool(config.url, {
      connections: config.connections,
      connectTimeout: config.timeoutMs,
      headersTimeout: config.timeoutMs,
      bodyTimeout: config.idleTimeoutMs,
      keepAliveTimeout: 30_000,
    });
    const credentials = config.username !== undefined && config.password !== undefined
      ? { username: config.username, password: config.password }
      : undefined;
    this.auth = new UpstreamAuth({ upstream: config.name, credentials, dispatcher: this.outside, logger: this.log, timeoutMs: config.timeoutMs });
  }

  /**
   * Refreshes the rate-limit gauges every `headroomProbe` with a HEAD of the upstream's preview
   * manifest (Docker Hub: ratelimitpreview/test), which reports the budget without spending it.
   */
  startHeadroomProbe(): void {
    const every = this.config.headroomProbeMs;
    if (every === undefined || this.probe) return;
    const probe = async (): Promise<void> => {
      try {
        const res = await this.manifest('HEAD', this.config.headroomProbeRepository, 'latest');
        await res.body.dump();
        this.log.debug({ remaining: this.rateLimit.remaining, limit: this.rateLimit.limit }, 'headroom probe');
      } catch (err) {
        this.log.debug({ err: String(err) }, 'headroom probe failed');
      }
    };
    void probe();
    this.probe = setInterval(() => void probe(), every);
    this.probe.unref();
  }

  /** The repository name at the upstream: Docker Hub's implicit `library/` for one-component names. */
  upstreamRepo(repo: string): string {
    return this.config.implicitLibrary && !repo.includes('/') ? `library/${repo}` : repo;
  }

  /** GET or HEAD of a manifest; resolves only with a 200 response, otherwise throws UpstreamError. */
  async manifest(method: 'GET' | 'HEAD', repo: string, reference: string): Promise<UpstreamResponse> {
    const res = await this.send('manifest', method, `/v2/${repo}/manifests/${reference}`, repo, { accept: UPSTREAM_MANIFEST_ACCEPT });
    return this.expectOk(res, 'MANIFEST_UNKNOWN');
  }

  /** GET or HEAD of a blob, following redirects (a CDN host gets no Authorization). */
  async blob(method: 'GET' | 'HEAD', repo: string, digest: string): Promise<UpstreamResponse> {
    let res = await this.send('blob', method, `/v2/${repo}/blobs/${digest}`, repo, {});
    for (let hops = 0; isRedirect(res.statusCode); hops++) {
      const location = header(res.headers, 'location');
      await res.body.dump();
      if (!location || hops >= MAX_REDIRECTS) throw this.invalid(location ? 'too many redirects' : 'redirect without Location');
      const target = this.redirectTarget(location);
      res = target.origin === new URL(this.config.url).origin
        ? await this.send('blob', method, `${target.pathname}${target.search}`, repo, {})
        : await this.sendOutside(method, target);
    }
    return this.expectOk(res, 'BLOB_UNKNOWN');
  }

  /** GET of tags/list with the client's `n`/`last` passed on. */
  async tags(repo: string, query: string): Promise<UpstreamResponse> {
    const res = await this.send('tags', 'GET', `/v2/${repo}/tags/list${query ? `?${query}` : ''}`, repo, {});
    return this.expectOk(res, 'NAME_UNKNOWN');
  }

  async close(): Promise<void> {
    if (this.probe) clearInterval(this.probe);
    await this.pool.close();
  }

  private async send(kind: UpstreamKind, method: string, path: string, repo: string, extra: Record<string, string>): Promise<UpstreamResponse> {
    let authorization = await this.authorization(repo);
    for (let attempt = 0; ; attempt++) {
      const headers: Record<string, string> = { ...extra, 'user-agent': USER_AGENT };
      if (authorization) headers['authorization'] = authorization;
      const res = await this.timed(kind, method, () => this.pool.request({ path, method, headers }));
      if (res.statusCode !== 401 || attempt > 0) return res;
      const failed = authorization;
      await res.body.dump();
      authorization = await this.challenge(res.headers['www-authenticate'], repo, failed);
      if (!authorization) return this.timed(kind, method, () => this.pool.request({ path, method, headers: { ...extra, 'user-agent': USER_AGENT } }));
    }
  }

  private async sendOutside(method: string, target: URL): Promise<UpstreamResponse> {
    return this.timed('blob', method, () =>
      this.outside.request({
        origin: target.origin,
        path: `${target.pathname}${target.search}`,
        method,
        headers: { 'user-agent': USER_AGENT },
        headersTimeout: this.config.timeoutMs,
        bodyTimeout: this.config.idleTimeoutMs,
      }),
    );
  }

  private async authorization(repo: string): Promise<string | undefined> {
    try {
      return await this.auth.authorization(repo);
    } catch (err) {
      throw networkError(this.name, err);
    }
  }

  private async challenge(www: string | string[] | undefined, repo: string, failed: string | undefined): Promise<string | undefined> {
    try {
      return await this.auth.onUnauthorized(www, repo, failed);
    } catch (err) {
      this.log.warn({ err: describe(err) }, 'token server unreachable');
      throw networkError(this.name, err);
    }
  }

  /** Runs one upstream exchange, recording latency, status and rate-limit headers. */
  private async timed(kind: UpstreamKind, method: string, exchange: () => Promise<UpstreamResponse>): Promise<UpstreamResponse> {
    const started = performance.now();
    let res: UpstreamResponse;
    try {
      res = await exchange();
    } catch (err) {
      this.metrics.upstreamRequests.labels(this.name, method, 'error').inc();
      this.log.warn({ kind, method, err: describe(err) }, 'upstream request failed');
      throw networkError(this.name, err);
    }
    const seconds = (performance.now() - started) / 1000;
    this.metrics.upstreamDuration.labels(this.name, kind).observe(seconds);
    this.log.debug({ kind, method, status: res.statusCode, ms: Math.round(seconds * 10_000) / 10 }, 'upstream request');
    this.metrics.upstreamRequests.labels(this.name, method, String(res.statusCode)).inc();
    if (res.statusCode === 429) this.metrics.throttled.labels(this.name).inc();
    if (recordRateLimit(this.rateLimit, res.headers)) {
      if (this.rateLimit.limit !== undefined) this.metrics.rateLimitLimit.labels(this.name).set(this.rateLimit.limit);
      if (this.rateLimit.remaining !== undefined) this.metrics.rateLimitRemaining.labels(this.name).set(this.rateLimit.remaining);
      if (this.rateLimit.windowSeconds !== undefined) this.metrics.rateLimitWindow.labels(this.name).set(this.rateLimit.windowSeconds);
    }
    return res;
  }

  private async expectOk(res: UpstreamResponse, notFound: 'MANIFEST_UNKNOWN' | 'BLOB_UNKNOWN' | 'NAME_UNKNOWN'): Promise<UpstreamResponse> {
    if (res.statusCode === 200) return res;
    const body = await readCapped(res.body, MAX_ERROR_BODY);
    const err = statusError(this.name, res.statusCode, body, notFound, header(res.headers, 'retry-after'));
    if (err.transient) this.log.warn({ status: res.statusCode }, 'upstream error status');
    throw err;
  }

  /** Redirect targets must be http(s) and not link-local/metadata addresses. */
  private redirectTarget(location: string): URL {
    let target: URL;
    try {
      target = new URL(location, this.config.url);
    } catch {
      throw this.invalid('redirect to an invalid URL');
    }
    if (target.protocol !== 'http:' && target.protocol !== 'https:') throw this.invalid(`redirect to a ${target.protocol} URL`);
    if (isBlockedAddress(target.hostname)) throw this.invalid('redirect to a link-local or metadata address');
    return target;
  }

  private invalid(message: string): UpstreamError {
    return new UpstreamError(this.name, 'invalid', new OciError('UPSTREAM_INVALID', `upstream ${this.name}: ${message}`));
  }
}

/** A shared dispatcher for non-upstream hosts (token realms, CDNs). */
export function createOutsideAgent(): Agent {
  return new Agent({ connections: 32, keepAliveTimeout: 30_000 });
}

export function header(headers: Record<string, string | string[] | undefined>, name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v[0] : v;
}

function isRedirect(status: number): boolean {
  return status === 301 || status === 302 || status === 303 || status === 307 || status === 308;
}

async function readCapped(body: Dispatcher.ResponseData['body'], max: number): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of body) {
      const buf = chunk as Buffer;
      chunks.push(buf);
      size += buf.length;
      if (size >= max) break;
    }
  } catch {
    // an error body that breaks off still tells us the status
  } finally {
    body.destroy();
  }
  return Buffer.concat(chunks).toString('utf8').slice(0, max);
}

function describe(err: unknown): string {
  if (err instanceof Error) return `${(err as { code?: string }).code ?? err.name}: ${err.message}`;
  return String(err);
}
