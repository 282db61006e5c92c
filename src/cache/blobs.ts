// Blob pull-through: local content first, otherwise one shared upstream download per digest.
import type { Logger } from '../observability/logger.ts';
import type { Metrics } from '../observability/metrics.ts';
import type { Digest } from '../oci/digest.ts';
import type { UpstreamRegistry } from '../upstream/registry.ts';
import type { BlobStore } from './blob-store.ts';
import { Download, type CommitPolicy } from './download.ts';
import type { StorageIndex } from './storage-index.ts';

export class BlobCache {
  private readonly store: BlobStore;
  private readonly index: StorageIndex;
  private readonly metrics: Metrics;
  private readonly log: Logger;
  /** Downloads in progress by digest; an entry is removed only after its file is committed or discarded. */
  private readonly inflight = new Map<string, Download>();

  constructor(deps: { store: BlobStore; index: StorageIndex; metrics: Metrics; logger: Logger }) {
    this.store = deps.store;
    this.index = deps.index;
    // A blob being downloaded is not in the index yet; one still streamed from its file is protected.
    this.index.addProtector((digest) => this.inflight.has(digest));
    this.metrics = deps.metrics;
    this.log = deps.logger.child({ module: 'blobs' });
  }

  /**
   * Where verified local content is, if the index has it. The index is reconciled with the disk at
   * start and updated on every commit, so hits and misses cost no syscall here; the caller's open()
   * settles the rare race with an eviction.
   */
  local(digest: Digest): string | undefined {
    return this.index.has(digest.value) ? this.store.pathOf(digest) : undefined;
  }

  /** Marks a blob as used and protects it from eviction until the returned function is called. */
  use(digest: Digest): () => void {
    this.index.touch(digest.value);
    return this.index.acquire(digest.value);
  }

  /** A download already in progress for this digest (from any repository: same digest, same bytes). */
  inProgress(digest: Digest): Download | undefined {
    const d = this.inflight.get(digest.value);
    return d && !d.failed ? d : undefined;
  }

  /** Joins the download in progress for `digest`, or starts one from `upstream`. */
  fetch(upstream: UpstreamRegistry, repo: string, digest: Digest): { download: Download; joined: boolean } {
    // A failed download stays in the map until its cleanup runs: a request arriving in between
    // starts a fresh fetch instead of inheriting the failure.
    const existing = this.inProgress(digest);
    if (existing) {
      this.metrics.dedupJoins.inc();
      return { download: existing, joined: true };
    }
    const download = new Download({ digest, upstream: upstream.name, logger: this.log });
    this.inflight.set(digest.value, download);
    this.metrics.inflight.inc();
    const started = Date.now();
    const policy: CommitPolicy = {
      keep: (size) => {
        if (this.index.fits(size)) return true;
        this.metrics.passThrough.labels('quota').inc();
        this.log.warn({ digest: digest.value, bytes: size, quota: this.index.quota.quotaBytes }, 'blob larger than the quota allows: streamed, not kept');
        return false;
      },
      diskFull: () => {
        this.metrics.passThrough.labels('disk-full').inc();
        void this.index.freeSpace();
      },
      committed: async (stored) => {
        // Clients may still read the committed file through the download: protect it until they finish.
        const release = this.index.acquire(digest.value);
        void download.closed.then(release);
        this.log.info({ digest: digest.value, upstream: upstream.name, repo, bytes: stored.size, ms: Date.now() - started }, 'blob committed');
        await this.index.add(digest.value, stored.size, 'blob');
      },
    };
    void download
      .run(() => upstream.blob('GET', repo, digest.value), this.store, policy)
      .then(() => download.done)
      .catch((err: unknown) => {
        if ((err as { failure?: string }).failure === 'invalid') this.metrics.verifyFailures.labels(upstream.name, 'blob').inc();
        this.log.warn({ digest: digest.value, upstream: upstream.name, repo, bytes: download.bytesReceived, err: String(err) }, 'blob download failed; nothing committed');
      })
      .finally(() => {
        // A fresh download may already have replaced a failed one under this digest.
        if (this.inflight.get(digest.value) === download) this.inflight.delete(digest.value);
        this.metrics.inflight.dec();
      });
    return { download, joined: false };
  }

  /** Waits for every download in progress (graceful shutdown). */
  async drain(): Promise<void> {
    await Promise.allSettled([...this.inflight.values()].map((d) => d.done));
  }
}
