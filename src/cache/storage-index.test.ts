// The index is usable as soon as its records are read; the disk check runs behind it and must not
// undo what happens meanwhile: a blob committed after the listing is kept, a blob removed after
// the listing is not adopted back, while real orphans are adopted and lost files dropped.
import assert from 'node:assert/strict';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { parseDigest } from '../oci/digest.ts';
import { createLogger } from '../observability/logger.ts';
import { Metrics } from '../observability/metrics.ts';
import { FsBlobStore } from './blob-store.ts';
import { Metadata } from './metadata.ts';
import { StorageIndex } from './storage-index.ts';

const digest = (i: number): string => `sha256:${i.toString(16).padStart(64, '0')}`;

/** A store whose disk listing waits until the test lets it finish (with the listing it had). */
class GatedStore extends FsBlobStore {
  listed!: () => void;
  private readonly gate = new Promise<void>((r) => (this.listed = r));
  override async *list(): AsyncIterable<string[]> {
    const snapshot: string[][] = [];
    for await (const digests of super.list()) snapshot.push(digests);
    await this.gate;
    yield* snapshot;
  }
}

describe('storage index: load, then reconcile in the background', () => {
  it('serves from the records at once and reconciles without undoing concurrent commits and removals', async () => {
    const root = await mkdtemp(join(tmpdir(), 'regcache-index-'));
    try {
      const store = new GatedStore(root);
      await store.init();
      const put = (i: number, size: number) => store.put(parseDigest(digest(i)), Buffer.alloc(size, i));
      // Recorded and present: 1, 2, 3. Recorded, file lost: 4. On disk without record: 5.
      for (const i of [1, 2, 3, 5]) await put(i, 100 * i);
      const metadata = Metadata.sqlite(root);
      await metadata.writeIndex([1, 2, 3, 4].map((i) => [digest(i), { size: 100 * i, kind: 'blob', seq: i, at: i }] as const));
      const index = new StorageIndex({ store, metadata, logger: createLogger('silent'), metrics: new Metrics({ upstreams: [], defaultMetrics: false }), quota: { quotaBytes: undefined, highWater: 0.95, lowWater: 0.85 } });

      const loaded = await index.load();
      assert.deepEqual(loaded.entries, 4, 'the records are served before the disk check');
      assert.equal(index.isReconciled, false);
      // While the listing is in flight: 6 is committed (not in the listing), 2 is deleted (in it).
      await put(6, 600);
      await index.add(digest(6), 600, 'blob');
      assert.equal(await index.remove(digest(2), 'deleted'), true);
      store.listed();

      const report = await index.reconciled;
      assert.deepEqual({ adopted: report?.adopted, dropped: report?.dropped }, { adopted: 1, dropped: 1 });
      // Adopted orphans join at the most recent end (lru-cache only inserts there).
      assert.deepEqual([...index.entries()].map((e) => e.digest), [digest(1), digest(3), digest(6), digest(5)]);
      assert.ok(index.has(digest(6)), 'the concurrent commit is kept');
      assert.ok(!index.has(digest(2)), 'the concurrent removal is not adopted back');
      assert.ok(!index.has(digest(4)), 'the lost file is dropped');
      assert.equal(index.usedBytes, 100 + 300 + 500 + 600);
      assert.equal(index.isReconciled, true);
      await index.close();

      // Every change was written: a restart sees the same entries in the same order.
      const again = new StorageIndex({ store: new FsBlobStore(root), metadata, logger: createLogger('silent'), metrics: new Metrics({ upstreams: [], defaultMetrics: false }), quota: { quotaBytes: undefined, highWater: 0.95, lowWater: 0.85 } });
      await again.load();
      assert.deepEqual([...again.entries()].map((e) => e.digest), [...index.entries()].map((e) => e.digest));
      assert.equal((await again.reconciled)?.adopted, 0);
      await again.close();
      await metadata.close();
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
});
