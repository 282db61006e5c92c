// Startup cost of the storage index: seeds a store with N cached entries (files under blobs/ and
// their index records), then times regcache's index load (records in recency order + a walk of the
// disk to reconcile) and reports memory. `npm run bench:startup [-- --entries N]`.
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { FsBlobStore } from '../src/cache/blob-store.ts';
import { Metadata, type IndexRecord } from '../src/cache/metadata.ts';
import { StorageIndex } from '../src/cache/storage-index.ts';
import { createLogger } from '../src/observability/logger.ts';
import { Metrics } from '../src/observability/metrics.ts';

const { values } = parseArgs({ options: { entries: { type: 'string', default: '100000' } } });
const N = Number(values.entries);
const root = await mkdtemp(join(tmpdir(), 'regcache-startup-'));
try {
  console.log(`seeding ${N} entries under ${root}`);
  let t = performance.now();
  const records: Array<[string, IndexRecord]> = [];
  const dirs = new Set<string>();
  for (let i = 0; i < N; i++) {
    const hex = randomBytes(32).toString('hex');
    const dir = join(root, 'blobs', 'sha256', hex.slice(0, 2));
    if (!dirs.has(dir)) {
      await mkdir(dir, { recursive: true });
      dirs.add(dir);
    }
    const size = 1 + (i % 64);
    await writeFile(join(dir, hex), Buffer.alloc(size));
    records.push([`sha256:${hex}`, { size, kind: i % 10 === 0 ? 'manifest' : 'blob', seq: i + 1, at: Date.now() }]);
  }
  const seedMeta = Metadata.sqlite(root);
  for (let i = 0; i < records.length; i += 10_000) await seedMeta.setIndexMany(records.slice(i, i + 10_000));
  await seedMeta.close();
  console.log(`seeded in ${((performance.now() - t) / 1000).toFixed(1)} s`);

  global.gc?.();
  const rssBefore = process.memoryUsage().rss;
  t = performance.now();
  const store = new FsBlobStore(root);
  await store.init();
  const metadata = Metadata.sqlite(root);
  const index = new StorageIndex({ store, metadata, logger: createLogger('warn'), metrics: new Metrics({ upstreams: [], defaultMetrics: false }), quota: { quotaBytes: undefined, highWater: 0.95, lowWater: 0.85 } });
  const report = await index.load();
  const ms = performance.now() - t;
  global.gc?.();
  const rssAfter = process.memoryUsage().rss;
  const first = index.entries().next().value;
  const result = {
    entries: N,
    loadedEntries: report.entries,
    loadSeconds: Math.round(ms) / 1000,
    target: '< 5 s',
    pass: ms < 5000 && report.entries === N && first?.digest === records[0]?.[0],
    lruOrderRestored: first?.digest === records[0]?.[0],
    rssDeltaMiB: Math.round((rssAfter - rssBefore) / 2 ** 20),
    node: process.version,
    date: new Date().toISOString(),
  };
  console.log(JSON.stringify(result, null, 2));
  await mkdir(new URL('./results/', import.meta.url), { recursive: true });
  await writeFile(new URL(`./results/startup-${N}.json`, import.meta.url), `${JSON.stringify(result, null, 2)}\n`);
  await index.close();
  await metadata.close();
  if (!result.pass) process.exitCode = 1;
} finally {
  await rm(root, { recursive: true, force: true });
}
