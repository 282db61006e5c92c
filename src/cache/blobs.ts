// Blob pull-through: local content first, otherwise one shared upstream download per digest.
import type { Logger } from '../observability/logger.ts';
import type { Metrics } from '../observability/metrics.ts';
import type { Digest } from '../oci/digest.ts';
import type { UpstreamRegistry } from '../upstream/registry.ts';
import type { BlobStore, StoredBlob } from './blob-store.ts';
import { Download } from './download.ts';
import type { Metadata } from './metadata.ts';

export class BlobCache {
  private readonly store: BlobStore;
  private readonly metadata: Metadata;
  private readonly metrics: Metrics;
  private readonly log: Logger;
  /** Downloads in progress by digest; an entry is removed only after its file is committed or discarded. */
  private readonly inflight = new Map<string, Download>();

  constructor(deps: { store: BlobStore; metadata: Metadata; metrics: Metrics; logger: Logger }) {
    this.store = deps.store;
    this.metadata = deps.metadata;
    this.metrics = deps.metrics;
    this.log = deps.logger.child({ module: 'blobs' });
  }

  /** Verified local content, if any. */
  local(digest: Digest): Promise<StoredBlob | undefined> {
    return this.store.stat(digest);
  }

  /** A download already in progress for this digest (from any repository: same digest, same bytes). */
  inProgress(digest: Digest): Download | undefined {
    return this.inflight.get(digest.value);
  }

  /** Joins the download in progress for `digest`, or starts one from `upstream`. */
  fetch(upstream: UpstreamRegistry, repo: string, digest: Digest): { download: Download; joined: boolean } {
    const existing = this.inflight.get(digest.value);
    if (existing) {
      this.metrics.dedupJoins.inc();
      return { download: existing, joined: true };
    }
    const download = new Download({ digest, upstream: upstream.name, logger: this.log });
    this.inflight.set(digest.value, download);
    this.metrics.inflight.inc();
    const started = Date.now();
    void download
      .run(() => upstream.blob('GET', repo, digest.value), this.store)
      .then(() => download.done)
      .then(
        async (stored) => {
          this.log.info({ digest: digest.value, upstream: upstream.name, repo, bytes: stored.size, ms: Date.now() - started }, 'blob committed');
          await this.metadata.setBlob(digest.value, { size: stored.size, storedAt: Date.now() }).catch((err: unknown) => {
            this.log.error({ digest: digest.value, err: String(err) }, 'recording blob metadata failed');
          });
        },
        (err: unknown) => {
          if ((err as { failure?: string }).failure === 'invalid') this.metrics.verifyFailures.labels(upstream.name, 'blob').inc();
          this.log.warn({ digest: digest.value, upstream: upstream.name, repo, bytes: download.bytesReceived, err: String(err) }, 'blob download failed; nothing committed');
        },
      )
      .finally(() => {
        this.inflight.delete(digest.value);
        this.metrics.inflight.dec();
      });
    return { download, joined: false };
  }

  /** Waits for every download in progress (graceful shutdown). */
  async drain(): Promise<void> {
    await Promise.allSettled([...this.inflight.values()].map((d) => d.done));
  }
}
