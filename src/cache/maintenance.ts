// Online maintenance over the cache: list repositories and tags, delete a tag, a manifest or a
// repository, collect unreferenced blobs, summarise storage. Backs the admin API and CLI.
import { parseDigest } from '../oci/digest.ts';
import type { Logger } from '../observability/logger.ts';
import type { BlobStore } from './blob-store.ts';
import type { ManifestCache } from './manifests.ts';
import type { Metadata, TagRecord } from './metadata.ts';
import type { StorageIndex } from './storage-index.ts';

export interface TagInfo {
  readonly tag: string;
  readonly digest: string;
  readonly mediaType: string;
  readonly size: number;
  /** ISO time the upstream last confirmed the tag. */
  readonly checkedAt: string;
  /** ISO time the manifest was last served, if it is still stored. */
  readonly lastAccess: string | undefined;
  readonly stored: boolean;
}

export interface GcReport {
  readonly manifests: number;
  readonly referencedBlobs: number;
  readonly removed: number;
  readonly freedBytes: number;
  /** Unreferenced but in use right now (being read or pinned): left for the next run. */
  readonly skipped: number;
  readonly ms: number;
}

interface TagKey {
  readonly upstream: string;
  readonly repo: string;
  readonly tag: string;
}

export class Maintenance {
  private readonly metadata: Metadata;
  private readonly index: StorageIndex;
  private readonly store: BlobStore;
  private readonly manifests: ManifestCache;
  private readonly log: Logger;

  constructor(deps: { metadata: Metadata; index: StorageIndex; store: BlobStore; manifests: ManifestCache; logger: Logger }) {
    this.metadata = deps.metadata;
    this.index = deps.index;
    this.store = deps.store;
    this.manifests = deps.manifests;
    this.log = deps.logger.child({ module: 'maintenance' });
  }

  async repositories(): Promise<Array<{ upstream: string; name: string; tags: number }>> {
    const repos = new Map<string, { upstream: string; name: string; tags: number }>();
    for (const { key } of await this.tags()) {
      const id = `${key.upstream}/${key.repo}`;
      const r = repos.get(id) ?? { upstream: key.upstream, name: key.repo, tags: 0 };
      r.tags++;
      repos.set(id, r);
    }
    return [...repos.values()].sort((a, b) => `${a.upstream}/${a.name}`.localeCompare(`${b.upstream}/${b.name}`));
  }

  async repositoryTags(upstream: string, repo: string): Promise<TagInfo[]> {
    const out: TagInfo[] = [];
    for (const { key, record } of await this.tags()) {
      if (key.upstream !== upstream || key.repo !== repo) continue;
      const lastUsed = await this.index.lastUsed(record.digest);
      out.push({
        tag: key.tag,
        digest: record.digest,
        mediaType: record.mediaType,
        size: record.size,
        checkedAt: new Date(record.checkedAt).toISOString(),
        lastAccess: lastUsed === undefined ? undefined : new Date(lastUsed).toISOString(),
        stored: this.index.has(record.digest),
      });
    }
    return out.sort((a, b) => a.tag.localeCompare(b.tag));
  }

  /** Forgets a cached tag; the next pull of it asks the upstream again. */
  async deleteTag(upstream: string, repo: string, tag: string): Promise<boolean> {
    const existed = (await this.metadata.getTag(upstream, repo, tag)) !== undefined;
    await this.manifests.forgetTag(upstream, repo, tag);
    return existed;
  }

  /** Deletes a stored manifest and every cached tag that points at it. */
  async deleteManifest(digest: string): Promise<{ removed: boolean; tags: number }> {
    parseDigest(digest);
    let tags = 0;
    for (const { key, record } of await this.tags()) {
      if (record.digest !== digest) continue;
      await this.manifests.forgetTag(key.upstream, key.repo, key.tag);
      tags++;
    }
    const removed = await this.index.remove(digest, 'deleted');
    return { removed, tags };
  }

  /** Deletes a repository's tags and the manifests no other cached tag points at. */
  async deleteRepository(upstream: string, repo: string): Promise<{ tags: number; manifests: number }> {
    const all = await this.tags();
    const mine = all.filter(({ key }) => key.upstream === upstream && key.repo === repo);
    const elsewhere = new Set(all.filter(({ key }) => key.upstream !== upstream || key.repo !== repo).map(({ record }) => record.digest));
    let manifests = 0;
    for (const { key, record } of mine) {
      await this.manifests.forgetTag(key.upstream, key.repo, key.tag);
      if (!elsewhere.has(record.digest) && (await this.index.remove(record.digest, 'deleted'))) manifests++;
    }
    return { tags: mine.length, manifests };
  }

  /**
   * Mark and sweep: every blob referenced by a stored manifest (config, layers, index children,
   * subject) is kept; other blobs are removed unless in use. Downloads in progress are not in the
   * index yet, so they are never collected. Manifests themselves are roots and are never collected.
   */
  async collectGarbage(): Promise<GcReport> {
    const started = performance.now();
    const referenced = new Set<string>();
    let manifests = 0;
    for (const entry of [...this.index.entries()]) {
      if (entry.kind !== 'manifest') continue;
      manifests++;
      const body = await this.store.read(parseDigest(entry.digest));
      if (body) for (const d of referencedDigests(body)) referenced.add(d);
    }
    let removed = 0;
    let freedBytes = 0;
    let skipped = 0;
    for (const entry of [...this.index.entries()]) {
      if (entry.kind !== 'blob' || referenced.has(entry.digest)) continue;
      if (await this.index.remove(entry.digest, 'collected')) {
        removed++;
        freedBytes += entry.size;
      } else {
        skipped++;
      }
    }
    const report = { manifests, referencedBlobs: referenced.size, removed, freedBytes, skipped, ms: Math.round(performance.now() - started) };
    this.log.info(report, 'garbage collection');
    return report;
  }

  summary(): Record<string, number | boolean | null> {
    let blobs = 0;
    let manifests = 0;
    for (const e of this.index.entries()) {
      if (e.kind === 'blob') blobs++;
      else manifests++;
    }
    const { quotaBytes, highWater, lowWater } = this.index.quota;
    return {
      bytes: this.index.usedBytes,
      quotaBytes: quotaBytes ?? null,
      highWater,
      lowWater,
      entries: this.index.entryCount,
      blobs,
      manifests,
      evictions: this.index.evictedCount,
      evictedBytes: this.index.evictedBytes,
      /** False while the index is still being checked against the disk after a start. */
      reconciled: this.index.isReconciled,
    };
  }

  private async tags(): Promise<Array<{ key: TagKey; record: TagRecord }>> {
    const out: Array<{ key: TagKey; record: TagRecord }> = [];
    for await (const [raw, record] of this.metadata.scanTags()) {
      const key = parseTagKey(raw);
      if (key) out.push({ key, record });
    }
    return out;
  }
}

/** "<upstream>/<repo>:<tag>": upstream has no '/', tags have no ':' or '/'. */
function parseTagKey(raw: string): TagKey | undefined {
  const slash = raw.indexOf('/');
  const colon = raw.lastIndexOf(':');
  if (slash <= 0 || colon <= slash) return undefined;
  return { upstream: raw.slice(0, slash), repo: raw.slice(slash + 1, colon), tag: raw.slice(colon + 1) };
}

/** Digests a manifest or index points at. */
export function referencedDigests(body: Buffer): string[] {
  let doc: unknown;
  try {
    doc = JSON.parse(body.toString('utf8'));
  } catch {
    return [];
  }
  const out: string[] = [];
  const take = (d: unknown) => {
    if (d && typeof d === 'object' && typeof (d as { digest?: unknown }).digest === 'string') out.push((d as { digest: string }).digest);
  };
  if (doc && typeof doc === 'object') {
    const m = doc as { config?: unknown; layers?: unknown; manifests?: unknown; subject?: unknown; blobs?: unknown; fsLayers?: unknown };
    take(m.config);
    take(m.subject);
    for (const list of [m.layers, m.manifests, m.blobs]) if (Array.isArray(list)) list.forEach(take);
    // Docker schema 1: fsLayers[].blobSum
    if (Array.isArray(m.fsLayers)) for (const l of m.fsLayers) if (typeof (l as { blobSum?: unknown }).blobSum === 'string') out.push((l as { blobSum: string }).blobSum);
  }
  return out;
}
