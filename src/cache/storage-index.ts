// The storage quota: an in-memory LRU index (lru-cache) of every stored file with its size, kept
// in recency order and persisted in the metadata store, so a restart restores the same order and
// byte total. When stored bytes pass high water, least recently used files are evicted down to low
// water, never touching a file that is being read, downloaded (not in the index until committed)
// or protected by a pin.
import { setImmediate as nextTurn } from 'node:timers/promises';
import { LRUCache } from 'lru-cache';
import type { Logger } from '../observability/logger.ts';
import type { Metrics } from '../observability/metrics.ts';
import { parseDigest } from '../oci/digest.ts';
import type { BlobStore } from './blob-store.ts';
import type { IndexRecord, Metadata } from './metadata.ts';

export type EntryKind = IndexRecord['kind'];

export interface IndexEntry {
  readonly digest: string;
  readonly size: number;
  readonly kind: EntryKind;
}

export interface QuotaConfig {
  /** Undefined = unlimited (nothing is ever evicted). */
  readonly quotaBytes: number | undefined;
  readonly highWater: number;
  readonly lowWater: number;
}

export interface LoadReport {
  readonly entries: number;
  readonly bytes: number;
  readonly ms: number;
}

export interface ReconcileReport {
  readonly entries: number;
  readonly files: number;
  readonly adopted: number;
  readonly dropped: number;
  readonly ms: number;
}

/** Entries checked between two turns of the event loop while reconciling in the background. */
const RECONCILE_SLICE = 20_000;

/** Recency updates are written in batches: the hit path never waits for sqlite. */
const FLUSH_INTERVAL_MS = 5_000;

export class StorageIndex {
  // digest → size. Bounded by size, not count: a `max` makes lru-cache preallocate arrays of that
  // length. The quota itself is enforced by evictIfNeeded (which honours protection), never by
  // lru-cache. Values are plain numbers (no object per entry): a million entries load in ~1 s.
  private readonly lru = new LRUCache<string, number>({ maxSize: Number.MAX_SAFE_INTEGER, sizeCalculation: (size) => Math.max(1, size) });
  /** The entries that are manifests (a small share); everything else is a blob. */
  private readonly manifests = new Set<string>();
  private readonly store: BlobStore;
  private readonly metadata: Metadata;
  private readonly log: Logger;
  private readonly metrics: Metrics;
  readonly quota: QuotaConfig;
  private bytes = 0;
  private seq = 0;
  private readonly readers = new Map<string, number>();
  /** Uses not yet written: digest → Unix ms, in recency order (the order seqs are handed out at flush). */
  private readonly dirty = new Map<string, number>();
  private flushTimer: NodeJS.Timeout | undefined;
  private evicting: Promise<void> | undefined;
  private flushing: Promise<void> = Promise.resolve();
  /** Pins (and anything else) can veto eviction of a digest. */
  private readonly protectors: Array<(digest: string) => boolean> = [];
  private readonly evictedListeners: Array<(entry: IndexEntry) => void> = [];
  evictedCount = 0;
  evictedBytes = 0;
  /** Settles when the index matches the disk after load (undefined report: reconciling failed). */
  reconciled: Promise<ReconcileReport | undefined> = Promise.resolve(undefined);
  /** Digests added or removed while the startup reconciliation runs: its listing is stale for them. */
  private changedWhileReconciling: Set<string> | undefined;
  /** Whether the startup reconciliation has finished (admin storage summary). */
  isReconciled = false;

  constructor(deps: { store: BlobStore; metadata: Metadata; logger: Logger; metrics: Metrics; quota: QuotaConfig }) {
    this.store = deps.store;
    this.metadata = deps.metadata;
    this.log = deps.logger.child({ module: 'storage-index' });
    this.metrics = deps.metrics;
    this.quota = deps.quota;
    this.metrics.storageQuota.set(deps.quota.quotaBytes ?? 0);
  }

  get usedBytes(): number {
    return this.bytes;
  }

  get entryCount(): number {
    return this.lru.size;
  }

  /**
   * Restores the index from the metadata store in recency order; the daemon can serve from then
   * on. Reconciling with the disk (see reconcile) runs in the background: a million-entry listing
   * costs seconds, and until it ends the read paths already treat a missing file as a miss.
   */
  async load(): Promise<LoadReport> {
    const started = performance.now();
    this.seq = await this.metadata.loadIndex((digest, size, kind) => {
      this.lru.set(digest, size);
      if (kind === 'manifest') this.manifests.add(digest);
      this.bytes += size;
    });
    this.updateGauges();
    const report = { entries: this.lru.size, bytes: this.bytes, ms: Math.round(performance.now() - started) };
    this.log.info(report, 'storage index loaded');
    this.flushTimer = setInterval(() => void this.flush(), FLUSH_INTERVAL_MS).unref();
    this.changedWhileReconciling = new Set();
    this.reconciled = this.reconcile().then(
      async (r) => {
        await this.evictIfNeeded();
        return r;
      },
      (err: unknown) => {
        this.log.error({ err: String(err) }, 'reconciling the index with the disk failed');
        return undefined;
      },
    );
    return report;
  }

  /**
   * Makes the index match the disk: files without a record are adopted (everything under blobs/
   * was verified before its rename; a crash can leave a commit unrecorded), records without a file
   * are dropped. Commits and removals made meanwhile are left alone.
   */
  private async reconcile(): Promise<ReconcileReport> {
    const started = performance.now();
    const changed = this.changedWhileReconciling ?? new Set<string>();
    // Files under blobs/ only ever appear complete (atomic rename), so for known entries existence
    // is enough; only files without a record need a stat. A directory at a time, yielding between
    // them: the daemon is serving meanwhile, and a million lookups take seconds.
    let files = 0;
    let seen = 0;
    const unknown: string[] = [];
    for await (const digests of this.store.list()) {
      files += digests.length;
      for (const digest of digests) {
        if (this.lru.has(digest)) seen++;
        else unknown.push(digest);
      }
      await nextTurn();
    }
    let dropped = 0;
    // Fewer files matched than there are entries: some records have no file (rare; a crash
    // between unlink and record delete), or were added meanwhile. Find them with a second walk.
    if (seen < this.lru.size) {
      const present = new Set<string>();
      for await (const digests of this.store.list()) for (const d of digests) present.add(d);
      let i = 0;
      for (const digest of [...this.lru.keys()]) {
        if (++i % RECONCILE_SLICE === 0) await nextTurn();
        if (present.has(digest) || changed.has(digest) || this.isProtected(digest)) continue;
        if (await this.store.statOf(digest)) continue; // committed after the listing
        if (changed.has(digest)) continue;
        this.forget(digest);
        await this.metadata.deleteIndex(digest);
        dropped++;
      }
    }
    const orphans: Array<{ digest: string; size: number; mtimeMs: number }> = [];
    for (const digest of unknown) {
      const s = await this.store.statOf(digest);
      if (s) orphans.push({ digest, ...s });
    }
    orphans.sort((a, b) => a.mtimeMs - b.mtimeMs);
    let adopted = 0;
    for (const o of orphans) {
      const kind: EntryKind = (await this.metadata.getManifest(o.digest)) ? 'manifest' : 'blob';
      // Removed (or committed) since the listing: the listing is stale for this file.
      if (changed.has(o.digest) || this.lru.has(o.digest)) continue;
      this.insert(o.digest, o.size, kind, Math.round(o.mtimeMs));
      adopted++;
    }
    this.changedWhileReconciling = undefined;
    this.isReconciled = true;
    this.updateGauges();
    const report = { entries: this.lru.size, files, adopted, dropped, ms: Math.round(performance.now() - started) };
    this.log.info(report, 'storage index reconciled with the disk');
    return report;
  }

  has(digest: string): boolean {
    return this.lru.has(digest);
  }

  /** Records a newly committed file and evicts if the quota is passed. */
  async add(digest: string, size: number, kind: EntryKind): Promise<void> {
    this.forget(digest);
    this.insert(digest, size, kind, Date.now());
    this.updateGauges();
    await this.evictIfNeeded();
  }

  /** Marks a use: moves the entry to the most recent end. */
  touch(digest: string): void {
    if (this.lru.get(digest) === undefined) return;
    this.dirty.delete(digest);
    this.dirty.set(digest, Date.now());
  }

  /** Protects a digest from eviction while it is read; call the returned function when done. */
  acquire(digest: string): () => void {
    this.readers.set(digest, (this.readers.get(digest) ?? 0) + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const n = (this.readers.get(digest) ?? 1) - 1;
      if (n <= 0) this.readers.delete(digest);
      else this.readers.set(digest, n);
    };
  }

  addProtector(protect: (digest: string) => boolean): void {
    this.protectors.push(protect);
  }

  onEvicted(listener: (entry: IndexEntry) => void): void {
    this.evictedListeners.push(listener);
  }

  /** Whether a download of `size` bytes can be kept without breaking the quota. */
  fits(size: number): boolean {
    const { quotaBytes, lowWater } = this.quota;
    return quotaBytes === undefined || size <= quotaBytes * lowWater;
  }

  isProtected(digest: string): boolean {
    return this.readers.has(digest) || this.protectors.some((p) => p(digest));
  }

  /** Least recently used first. */
  *entries(): Generator<IndexEntry> {
    for (const digest of this.lru.rkeys()) {
      const e = this.get(digest);
      if (e) yield e;
    }
  }

  get(digest: string): IndexEntry | undefined {
    const size = this.lru.peek(digest);
    return size === undefined ? undefined : { digest, size, kind: this.manifests.has(digest) ? 'manifest' : 'blob' };
  }

  /** When a stored file was last used (Unix ms), if it is stored. */
  async lastUsed(digest: string): Promise<number | undefined> {
    if (!this.lru.has(digest)) return undefined;
    return this.dirty.get(digest) ?? (await this.metadata.indexRecord(digest))?.at;
  }

  /** Deletes a stored file and its record (admin delete, eviction, GC). False if protected. */
  async remove(digest: string, reason: 'evicted' | 'deleted' | 'collected'): Promise<boolean> {
    const entry = this.get(digest);
    if (!entry) return false;
    if (this.isProtected(digest)) return false;
    this.forget(digest);
    await this.store.remove(parseDigest(digest));
    await this.metadata.deleteIndex(digest);
    if (entry.kind === 'manifest') await this.metadata.deleteManifest(digest);
    if (reason === 'evicted') {
      this.evictedCount++;
      this.evictedBytes += entry.size;
      this.metrics.evictions.labels(entry.kind).inc();
      this.metrics.evictedBytes.inc(entry.size);
    }
    for (const l of this.evictedListeners) l(entry);
    this.updateGauges();
    return true;
  }

  /** Evicts least recently used, unprotected files from high water down to low water. */
  evictIfNeeded(): Promise<void> {
    const { quotaBytes, highWater, lowWater } = this.quota;
    if (quotaBytes === undefined || this.bytes <= quotaBytes * highWater) return Promise.resolve();
    return this.evictDownTo(() => quotaBytes * lowWater, 'quota');
  }

  /**
   * The disk ran out of space below the quota (or with no quota): evict least recently used,
   * unprotected files until usage is down to low water of what it is now.
   */
  freeSpace(): Promise<void> {
    return this.evictDownTo(() => this.bytes * this.quota.lowWater, 'disk-full');
  }

  /**
   * One eviction pass at a time: each runs after the previous one, removing least recently used,
   * unprotected files until usage is at or below the target (computed when the pass starts).
   */
  private evictDownTo(target: () => number, reason: 'quota' | 'disk-full'): Promise<void> {
    const pass = (this.evicting ?? Promise.resolve()).then(async () => {
      const goal = target();
      const before = this.bytes;
      let freed = 0;
      let count = 0;
      for (const entry of [...this.entries()]) {
        if (this.bytes <= goal) break;
        if (await this.remove(entry.digest, 'evicted')) {
          freed += entry.size;
          count++;
        }
      }
      const quota = this.quota.quotaBytes;
      if (reason === 'disk-full') {
        this.log.warn({ before, after: this.bytes, freed, count }, 'disk full: eviction pass');
      } else if (count > 0 || before > goal) {
        this.log.info({ before, after: this.bytes, freed, count, quota }, 'eviction pass');
        if (quota !== undefined && this.bytes > quota * this.quota.highWater) {
          this.log.warn({ bytes: this.bytes, quota }, 'still over high water: the rest is in use or pinned');
        }
      }
    });
    const tail = pass.finally(() => {
      if (this.evicting === tail) this.evicting = undefined;
    });
    this.evicting = tail;
    return tail;
  }

  /** Writes pending recency updates. */
  flush(): Promise<void> {
    // One flush at a time: each is a single sqlite transaction.
    this.flushing = this.flushing.then(() => this.flushNow());
    return this.flushing;
  }

  private async flushNow(): Promise<void> {
    // Every use since the last flush is more recent than every use before it, and the map is in
    // recency order: fresh ascending seqs restore the exact LRU order after a restart.
    const batch: Array<[string, IndexRecord]> = [];
    for (const [digest, at] of this.dirty) {
      const size = this.lru.peek(digest);
      if (size !== undefined) batch.push([digest, { size, kind: this.manifests.has(digest) ? 'manifest' : 'blob', seq: ++this.seq, at }]);
    }
    this.dirty.clear();
    await this.metadata.writeIndex(batch).catch((err: unknown) => this.log.error({ err: String(err), entries: batch.length }, 'writing recency updates failed'));
  }

  async close(): Promise<void> {
    if (this.flushTimer) clearInterval(this.flushTimer);
    await this.reconciled;
    await this.evicting;
    await this.flush();
  }

  /** A new entry, most recent; its record is written with the next flush (until then, a restart adopts the file from disk). */
  private insert(digest: string, size: number, kind: EntryKind, at: number): void {
    this.changedWhileReconciling?.add(digest);
    this.lru.set(digest, size);
    if (kind === 'manifest') this.manifests.add(digest);
    this.bytes += size;
    this.dirty.delete(digest);
    this.dirty.set(digest, at);
  }

  /** Drops an entry from memory (not from disk or the metadata store). */
  private forget(digest: string): void {
    const size = this.lru.peek(digest);
    if (size === undefined) return;
    this.changedWhileReconciling?.add(digest);
    this.lru.delete(digest);
    this.manifests.delete(digest);
    this.dirty.delete(digest);
    this.bytes -= size;
  }

  private updateGauges(): void {
    this.metrics.storageBytes.set(this.bytes);
    this.metrics.storageEntries.set(this.lru.size);
  }
}
