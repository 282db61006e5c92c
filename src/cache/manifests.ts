// Manifest pull-through and the freshness policy: digests are immutable and kept; tags are served
// within their TTL, then revalidated with an upstream HEAD (free on Docker Hub) and re-fetched only
// when the digest moved; on upstream trouble (down, timeout, 429, 5xx) a cached answer is served stale.
import { LRUCache } from 'lru-cache';
import type { Logger } from '../observability/logger.ts';
import type { Metrics } from '../observability/metrics.ts';
import { isDigest, newHash, parseDigest, type Digest } from '../oci/digest.ts';
import { manifestMediaType } from '../oci/media-types.ts';
import { UpstreamError, VerificationError } from '../upstream/errors.ts';
import { header, type UpstreamRegistry, type UpstreamResponse } from '../upstream/registry.ts';
import type { BlobStore } from './blob-store.ts';
import type { Metadata, TagRecord } from './metadata.ts';
import { SingleFlight } from './single-flight.ts';
import type { StorageIndex } from './storage-index.ts';

export type ManifestSource = 'hit' | 'miss' | 'revalidated' | 'stale';

export interface ManifestAnswer {
  readonly digest: string;
  readonly mediaType: string;
  readonly size: number;
  /** Absent for HEAD answers that did not need the body. */
  readonly body: Buffer | undefined;
  readonly source: ManifestSource;
}

export interface StoredManifest {
  readonly mediaType: string;
  readonly body: Buffer;
}

export class ManifestCache {
  private readonly store: BlobStore;
  private readonly metadata: Metadata;
  private readonly index: StorageIndex;
  private readonly metrics: Metrics;
  private readonly log: Logger;
  private readonly ttlMs: number;
  private readonly maxBytes: number;
  /** Hot manifest bodies, so warm tag and digest requests never touch the disk. */
  private readonly bodies: LRUCache<string, StoredManifest>;
  /** Hot tag records in front of the durable ones (write-through). */
  private readonly tags = new LRUCache<string, TagRecord>({ max: 100_000 });
  /** One upstream exchange per tag or digest at a time: 50 sessions asking at once cost one pull. */
  private readonly flights = new SingleFlight<ManifestAnswer>();
  private readonly storedListeners: Array<(digest: string) => void> = [];

  constructor(deps: { store: BlobStore; metadata: Metadata; index: StorageIndex; metrics: Metrics; logger: Logger; ttlMs: number; maxBytes: number; memoryBytes?: number }) {
    this.store = deps.store;
    this.metadata = deps.metadata;
    this.index = deps.index;
    this.metrics = deps.metrics;
    this.log = deps.logger.child({ module: 'manifests' });
    this.ttlMs = deps.ttlMs;
    this.maxBytes = deps.maxBytes;
    this.bodies = new LRUCache({ maxSize: deps.memoryBytes ?? 64 * 2 ** 20, sizeCalculation: (m) => Math.max(1, m.body.length) });
    // A manifest evicted or deleted from disk must not live on in memory.
    this.index.onEvicted((entry) => this.bodies.delete(entry.digest));
  }

  /** `revalidate`: ask the upstream about a tag even within its TTL (a scope's first resolution). */
  async get(upstream: UpstreamRegistry, repo: string, reference: string, method: 'GET' | 'HEAD', opts: { revalidate?: boolean } = {}): Promise<ManifestAnswer> {
    return isDigest(reference)
      ? this.byDigest(upstream, repo, parseDigest(reference), method)
      : this.byTag(upstream, repo, reference, method, opts.revalidate ?? false);
  }

  /** A stored manifest, without contacting any upstream. */
  local(digest: string): Promise<StoredManifest | undefined> {
    return isDigest(digest) ? this.load(parseDigest(digest)) : Promise.resolve(undefined);
  }

  /** Called with the digest of every manifest newly stored. */
  onStored(listener: (digest: string) => void): void {
    this.storedListeners.push(listener);
  }

  private async byDigest(upstream: UpstreamRegistry, repo: string, digest: Digest, method: 'GET' | 'HEAD'): Promise<ManifestAnswer> {
    const local = await this.load(digest);
    if (local) return { digest: digest.value, mediaType: local.mediaType, size: local.body.length, body: local.body, source: 'hit' };
    const { promise } = this.flights.run(`${method} ${digest.value}`, async () => {
      if (method === 'HEAD') {
        // Answer from an upstream HEAD: no download, and no pull charged on Docker Hub.
        const res = await upstream.manifest('HEAD', repo, digest.value);
        await res.body.dump();
        const info = headInfo(res);
        if (info.digest && info.digest !== digest.value) throw new VerificationError(upstream.name, `manifest HEAD for ${digest.value} answered ${info.digest}`);
        if (info.size !== undefined && info.mediaType) {
          return { digest: digest.value, mediaType: info.mediaType, size: info.size, body: undefined, source: 'miss' };
        }
      }
      const fetched = await this.fetchManifest(upstream, repo, digest.value, digest);
      return { ...fetched, source: 'miss' };
    });
    return promise;
  }

  private async byTag(upstream: UpstreamRegistry, repo: string, tag: string, method: 'GET' | 'HEAD', revalidate: boolean): Promise<ManifestAnswer> {
    const key = `${upstream.name}/${repo}:${tag}`;
    const record = await this.tagRecord(upstream.name, repo, tag, key);
    if (record && !revalidate && Date.now() - record.checkedAt < this.ttlMs) {
      const answer = await this.fromRecord(record, method, 'hit');
      if (answer) return answer;
    }
    const { promise } = this.flights.run(`${method} ${key}`, () => this.resolveTag(upstream, repo, tag, key, record, method));
    return promise;
  }

  /** The upstream part of a tag lookup: revalidate with HEAD, fetch only what changed. */
  private async resolveTag(upstream: UpstreamRegistry, repo: string, tag: string, key: string, record: TagRecord | undefined, method: 'GET' | 'HEAD'): Promise<ManifestAnswer> {
    let head: ReturnType<typeof headInfo> | undefined;
    try {
      const res = await upstream.manifest('HEAD', repo, tag);
      await res.body.dump();
      head = headInfo(res);
    } catch (err) {
      if (record && err instanceof UpstreamError && err.transient) {
        const stale = await this.fromRecord(record, method, 'stale');
        if (stale) {
          this.log.warn({ upstream: upstream.name, repo, tag, digest: record.digest, failure: err.failure }, 'upstream trouble; serving stale tag');
          return stale;
        }
      }
      if (err instanceof UpstreamError && err.failure === 'not-found') await this.forgetTag(upstream.name, repo, tag, key);
      throw err;
    }

    if (head.digest && isDigest(head.digest)) {
      const now = Date.now();
      if (record && record.digest === head.digest) {
        const confirmed = { ...record, checkedAt: now };
        await this.saveTag(upstream.name, repo, tag, key, confirmed);
        const answer = await this.fromRecord(confirmed, method, 'revalidated');
        if (answer) return answer;
      }
      const digest = parseDigest(head.digest);
      const local = await this.load(digest);
      if (local) {
        await this.saveTag(upstream.name, repo, tag, key, { digest: digest.value, mediaType: local.mediaType, size: local.body.length, checkedAt: now });
        return { digest: digest.value, mediaType: local.mediaType, size: local.body.length, body: local.body, source: 'miss' };
      }
      if (method === 'HEAD' && head.mediaType && head.size !== undefined) {
        await this.saveTag(upstream.name, repo, tag, key, { digest: digest.value, mediaType: head.mediaType, size: head.size, checkedAt: now });
        return { digest: digest.value, mediaType: head.mediaType, size: head.size, body: undefined, source: 'miss' };
      }
      // GET by digest, not by tag: what we store is exactly what the HEAD resolved.
      const fetched = await this.fetchManifest(upstream, repo, digest.value, digest);
      await this.saveTag(upstream.name, repo, tag, key, { digest: fetched.digest, mediaType: fetched.mediaType, size: fetched.size, checkedAt: now });
      return { ...fetched, source: 'miss' };
    }

    // The upstream's HEAD gave no usable digest: fall back to GET by tag and hash the body.
    const fetched = await this.fetchManifest(upstream, repo, tag, undefined);
    await this.saveTag(upstream.name, repo, tag, key, { digest: fetched.digest, mediaType: fetched.mediaType, size: fetched.size, checkedAt: Date.now() });
    return { ...fetched, source: 'miss' };
  }

  /** GETs a manifest, verifies it (size limit, digest, JSON), and stores it by digest. */
  private async fetchManifest(upstream: UpstreamRegistry, repo: string, reference: string, expected: Digest | undefined): Promise<Omit<ManifestAnswer, 'source'> & { body: Buffer }> {
    const res = await upstream.manifest('GET', repo, reference);
    const body = await this.readLimited(upstream.name, res, reference);
    const announced = header(res.headers, 'docker-content-digest');
    const want = expected ?? (announced && isDigest(announced) ? parseDigest(announced) : undefined);
    const algorithm = want?.algorithm ?? 'sha256';
    const actual = `${algorithm}:${newHash(algorithm).update(body).digest('hex')}`;
    if (want && actual !== want.value) {
      this.metrics.verifyFailures.labels(upstream.name, 'manifest').inc();
      throw new VerificationError(upstream.name, `manifest ${reference}: upstream content hashes to ${actual}, expected ${want.value}`, 'DIGEST_INVALID');
    }
    const mediaType = manifestMediaType(header(res.headers, 'content-type'), body);
    if (mediaType.endsWith('+json') || mediaType === 'application/json') {
      try {
        JSON.parse(body.toString('utf8'));
      } catch {
        this.metrics.verifyFailures.labels(upstream.name, 'manifest').inc();
        throw new VerificationError(upstream.name, `manifest ${reference}: ${mediaType} body is not JSON`, 'MANIFEST_INVALID');
      }
    }
    const digest = parseDigest(actual);
    try {
      await this.metadata.setManifest(digest.value, { mediaType, size: body.length });
      await this.store.put(digest, body);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
      // Disk full: the verified manifest still answers this request; it is just not kept.
      this.metrics.passThrough.labels('disk-full').inc();
      this.log.warn({ digest: digest.value }, 'disk full: manifest served but not stored');
      void this.index.freeSpace();
      return { digest: digest.value, mediaType, size: body.length, body };
    }
    this.bodies.set(digest.value, { mediaType, body });
    await this.index.add(digest.value, body.length, 'manifest');
    for (const l of this.storedListeners) l(digest.value);
    this.log.info({ upstream: upstream.name, repo, reference, digest: digest.value, mediaType, bytes: body.length }, 'manifest stored');
    return { digest: digest.value, mediaType, size: body.length, body };
  }

  private async readLimited(upstream: string, res: UpstreamResponse, reference: string): Promise<Buffer> {
    const length = Number(header(res.headers, 'content-length') ?? NaN);
    if (length > this.maxBytes) {
      res.body.destroy();
      throw new VerificationError(upstream, `manifest ${reference} is ${length} bytes, over the ${this.maxBytes}-byte limit`, 'MANIFEST_INVALID');
    }
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of res.body) {
      const buf = chunk as Buffer;
      size += buf.length;
      if (size > this.maxBytes) {
        res.body.destroy();
        throw new VerificationError(upstream, `manifest ${reference} exceeds the ${this.maxBytes}-byte limit`, 'MANIFEST_INVALID');
      }
      chunks.push(buf);
    }
    if (Number.isFinite(length) && size !== length) {
      throw new VerificationError(upstream, `manifest ${reference}: upstream sent ${size} of ${length} bytes`, 'SIZE_INVALID');
    }
    return Buffer.concat(chunks);
  }

  private async load(digest: Digest): Promise<StoredManifest | undefined> {
    const hot = this.bodies.get(digest.value);
    if (hot) {
      this.index.touch(digest.value);
      return hot;
    }
    const record = await this.metadata.getManifest(digest.value);
    if (!record) return undefined;
    const body = await this.store.read(digest);
    if (!body || body.length !== record.size) return undefined;
    const stored = { mediaType: record.mediaType, body };
    this.bodies.set(digest.value, stored);
    this.index.touch(digest.value);
    return stored;
  }

  private async fromRecord(record: TagRecord, method: 'GET' | 'HEAD', source: ManifestSource): Promise<ManifestAnswer | undefined> {
    const local = await this.load(parseDigest(record.digest));
    if (local) return { digest: record.digest, mediaType: local.mediaType, size: local.body.length, body: local.body, source };
    // A tag resolved by HEAD only: enough for another HEAD, not for a GET.
    if (method === 'HEAD') return { digest: record.digest, mediaType: record.mediaType, size: record.size, body: undefined, source };
    return undefined;
  }

  private async tagRecord(upstream: string, repo: string, tag: string, key: string): Promise<TagRecord | undefined> {
    const hot = this.tags.get(key);
    if (hot) return hot;
    const record = await this.metadata.getTag(upstream, repo, tag);
    if (record) this.tags.set(key, record);
    return record;
  }

  private async saveTag(upstream: string, repo: string, tag: string, key: string, record: TagRecord): Promise<void> {
    this.tags.set(key, record);
    await this.metadata.setTag(upstream, repo, tag, record);
  }

  /** Drops a tag answer from memory and the metadata store. */
  async forgetTag(upstream: string, repo: string, tag: string, key = `${upstream}/${repo}:${tag}`): Promise<void> {
    this.tags.delete(key);
    await this.metadata.deleteTag(upstream, repo, tag);
  }
}

function headInfo(res: UpstreamResponse): { digest: string | undefined; mediaType: string | undefined; size: number | undefined } {
  const length = header(res.headers, 'content-length');
  const type = header(res.headers, 'content-type')?.split(';')[0]?.trim().toLowerCase();
  return {
    digest: header(res.headers, 'docker-content-digest'),
    mediaType: type && type !== 'application/json' && type !== 'text/plain' ? type : undefined,
    size: length !== undefined && /^\d+$/.test(length) ? Number(length) : undefined,
  };
}

