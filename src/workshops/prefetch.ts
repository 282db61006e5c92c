// Prefetch: warm the cache for a workshop before it starts. Each ref is resolved the way a pull in
// that scope would resolve it (floating tags get pinned), its manifest fetched (for an index, the
// children of the configured platforms) and every blob downloaded into the cache. Progress is a
// stream of events. It stops early, with a reason, when an upstream announces its pull budget is
// down to the reserve: a warm-up must not burn the limit the workshop itself will need.
import type { BlobCache } from '../cache/blobs.ts';
import type { ManifestCache } from '../cache/manifests.ts';
import type { Router } from '../http/router.ts';
import type { Logger } from '../observability/logger.ts';
import { parseDigest } from '../oci/digest.ts';
import { OciError, toOciError } from '../oci/errors.ts';
import type { UpstreamRegistry } from '../upstream/registry.ts';
import type { Policy } from './policy.ts';
import type { ManifestResolver } from './resolver.ts';

export type PrefetchEvent =
  | { readonly event: 'start'; readonly scope: string | undefined; readonly refs: number; readonly platforms: readonly string[] }
  | { readonly event: 'image'; readonly ref: string; readonly upstream: string; readonly repo: string; readonly digest: string; readonly pinned: boolean; readonly manifests: number; readonly blobs: number; readonly bytes: number }
  | { readonly event: 'blob'; readonly ref: string; readonly digest: string; readonly bytes: number; readonly source: 'cache' | 'upstream' }
  | { readonly event: 'error'; readonly ref: string; readonly code: string; readonly message: string }
  | { readonly event: 'stopped'; readonly ref: string; readonly reason: string }
  | { readonly event: 'done'; readonly summary: PrefetchSummary };

export interface PrefetchSummary {
  readonly images: number;
  readonly failed: number;
  readonly skipped: number;
  readonly manifests: number;
  readonly blobs: number;
  readonly blobsFetched: number;
  /** Bytes of all blobs of the prefetched images. */
  readonly bytes: number;
  /** Of which fetched from upstream now. */
  readonly bytesFetched: number;
  readonly ms: number;
  readonly stopped: string | undefined;
}

interface Descriptor {
  readonly digest: string;
  readonly size: number;
  readonly platform?: { readonly os?: string; readonly architecture?: string; readonly variant?: string };
}

/** Blobs of one image downloaded at once. */
const BLOB_CONCURRENCY = 3;

export class Prefetcher {
  private readonly router: Router;
  private readonly upstreams: ReadonlyMap<string, UpstreamRegistry>;
  private readonly resolver: ManifestResolver;
  private readonly manifests: ManifestCache;
  private readonly blobs: BlobCache;
  private readonly policy: Policy;
  private readonly platforms: readonly string[];
  private readonly reserve: number;
  private readonly log: Logger;

  constructor(deps: {
    router: Router;
    upstreams: ReadonlyMap<string, UpstreamRegistry>;
    resolver: ManifestResolver;
    manifests: ManifestCache;
    blobs: BlobCache;
    policy: Policy;
    platforms: readonly string[];
    reserve: number;
    logger: Logger;
  }) {
    this.router = deps.router;
    this.upstreams = deps.upstreams;
    this.resolver = deps.resolver;
    this.manifests = deps.manifests;
    this.blobs = deps.blobs;
    this.policy = deps.policy;
    this.platforms = deps.platforms;
    this.reserve = deps.reserve;
    this.log = deps.logger.child({ module: 'prefetch' });
  }

  async *run(opts: { scope?: string | undefined; refs: readonly string[]; platforms?: readonly string[] | undefined }): AsyncGenerator<PrefetchEvent> {
    const started = Date.now();
    const platforms = opts.platforms ?? this.platforms;
    yield { event: 'start', scope: opts.scope, refs: opts.refs.length, platforms };
    let images = 0;
    let failed = 0;
    let manifests = 0;
    let blobs = 0;
    let blobsFetched = 0;
    let bytes = 0;
    let bytesFetched = 0;
    let stopped: string | undefined;
    let done = 0;
    for (const ref of opts.refs) {
      try {
        const target = this.target(ref, opts.scope);
        const upstream = this.upstreams.get(target.upstream);
        if (!upstream) throw new OciError('NAME_UNKNOWN', `upstream "${target.upstream}" is not configured`);
        const low = this.lowBudget(upstream);
        if (low) {
          stopped = low;
          yield { event: 'stopped', ref, reason: low };
          break;
        }
        const resolution = await this.resolver.resolve(target.scope, upstream, target.repo, target.reference, 'GET');
        const images2 = await this.imageManifests(upstream, target.repo, resolution.answer.body, platforms);
        manifests += 1 + images2.children;
        const layers = uniqueBlobs(images2.manifests);
        const size = layers.reduce((n, d) => n + d.size, 0);
        yield { event: 'image', ref, upstream: upstream.name, repo: target.repo, digest: resolution.answer.digest, pinned: resolution.pinned, manifests: 1 + images2.children, blobs: layers.length, bytes: size };
        const results = await this.fetchBlobs(upstream, target.repo, layers);
        for (const r of results) {
          blobs++;
          bytes += r.bytes;
          if (r.source === 'upstream') {
            blobsFetched++;
            bytesFetched += r.bytes;
          }
          yield { event: 'blob', ref, ...r };
        }
        images++;
      } catch (err) {
        failed++;
        const oci = toOciError(err);
        this.log.warn({ ref, code: oci.code, err: oci.message }, 'prefetch failed');
        yield { event: 'error', ref, code: oci.code, message: oci.message };
      }
      done++;
    }
    const summary: PrefetchSummary = { images, failed, skipped: opts.refs.length - done, manifests, blobs, blobsFetched, bytes, bytesFetched, ms: Date.now() - started, stopped };
    this.log.info({ scope: opts.scope, ...summary }, 'prefetch done');
    yield { event: 'done', summary };
  }

  /** A ref as a pull would route it: `nginx:1.27`, `docker.io/library/nginx:1.27`, `ghcr.io/org/app@sha256:…`. */
  target(ref: string, scope: string | undefined): { upstream: string; repo: string; reference: string; scope: string | undefined } {
    const at = ref.indexOf('@');
    let name = at >= 0 ? ref.slice(0, at) : ref;
    let reference = at >= 0 ? ref.slice(at + 1) : 'latest';
    const colon = name.lastIndexOf(':');
    if (at < 0 && colon > name.lastIndexOf('/')) {
      reference = name.slice(colon + 1);
      name = name.slice(0, colon);
    }
    if (name === '' || reference === '') throw new OciError('NAME_INVALID', `invalid image reference "${ref.slice(0, 200)}"`);
    const route = this.router.route('GET', `/v2/${scope === undefined ? '' : `ws/${scope}/`}${name}/manifests/${reference}`);
    if (route.kind !== 'manifest') throw new OciError('NAME_INVALID', `invalid image reference "${ref.slice(0, 200)}"`);
    this.policy.checkRepository(route.upstream, route.repo);
    return { upstream: route.upstream, repo: route.repo, reference: route.reference, scope: route.scope };
  }

  private lowBudget(upstream: UpstreamRegistry): string | undefined {
    const left = upstream.rateLimit.remaining;
    if (left === undefined || left > this.reserve) return undefined;
    return `upstream ${upstream.name} announced ${left} pulls left (ratelimit-remaining), at or below the reserve of ${this.reserve} (prefetch.reserve): stopped to keep the budget for the workshop itself`;
  }

  /** The image manifests to fetch blobs for: the manifest itself, or an index's children for `platforms`. */
  private async imageManifests(upstream: UpstreamRegistry, repo: string, body: Buffer | undefined, platforms: readonly string[]): Promise<{ manifests: Buffer[]; children: number }> {
    if (!body) throw new OciError('UNKNOWN', 'manifest body unavailable');
    const doc = parseJson(body);
    if (!Array.isArray(doc['manifests'])) return { manifests: [body], children: 0 };
    const wanted = (doc['manifests'] as Descriptor[]).filter((d) => platforms.some((p) => matchesPlatform(d, p)));
    if (wanted.length === 0) throw new OciError('MANIFEST_UNKNOWN', `the index has no manifest for ${platforms.join(', ')}`);
    const out: Buffer[] = [];
    for (const child of wanted) {
      const low = this.lowBudget(upstream);
      if (low) throw new OciError('TOOMANYREQUESTS', low);
      const answer = await this.manifests.get(upstream, repo, parseDigest(child.digest).value, 'GET');
      if (answer.body) out.push(answer.body);
    }
    return { manifests: out, children: wanted.length };
  }

  private async fetchBlobs(upstream: UpstreamRegistry, repo: string, layers: readonly Descriptor[]): Promise<Array<{ digest: string; bytes: number; source: 'cache' | 'upstream' }>> {
    const results: Array<{ digest: string; bytes: number; source: 'cache' | 'upstream' }> = [];
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < layers.length) {
        const d = layers[next++]!;
        const digest = parseDigest(d.digest);
        if (this.blobs.local(digest)) {
          this.blobs.use(digest)(); // counts as a use for LRU order
          results.push({ digest: d.digest, bytes: d.size, source: 'cache' });
          continue;
        }
        const { download } = this.blobs.fetch(upstream, repo, digest);
        const stored = await download.done;
        results.push({ digest: d.digest, bytes: stored?.size ?? download.bytesReceived, source: 'upstream' });
      }
    };
    await Promise.all(Array.from({ length: Math.min(BLOB_CONCURRENCY, layers.length) }, worker));
    return results;
  }
}

function parseJson(body: Buffer): Record<string, unknown> {
  try {
    return JSON.parse(body.toString('utf8')) as Record<string, unknown>;
  } catch {
    throw new OciError('MANIFEST_INVALID', 'manifest is not JSON');
  }
}

function matchesPlatform(d: Descriptor, platform: string): boolean {
  const [os, arch, variant] = platform.split('/');
  if (d.platform?.os !== os || d.platform?.architecture !== arch) return false;
  return variant === undefined || d.platform?.variant === undefined || d.platform.variant === variant;
}

/** Config and layers of every image, each digest once. */
function uniqueBlobs(manifests: readonly Buffer[]): Descriptor[] {
  const out = new Map<string, Descriptor>();
  for (const body of manifests) {
    const doc = parseJson(body) as { config?: Descriptor; layers?: Descriptor[] };
    for (const d of [...(doc.config ? [doc.config] : []), ...(doc.layers ?? [])]) {
      if (typeof d.digest === 'string' && typeof d.size === 'number') out.set(d.digest, { digest: d.digest, size: d.size });
    }
  }
  return [...out.values()];
}
