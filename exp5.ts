import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { FsBlobStore } from './src/cache/blob-store.ts';
import { Metadata, type IndexRecord } from './src/cache/metadata.ts';
import { StorageIndex } from './src/cache/storage-index.ts';
import { createLogger } from './src/observability/logger.ts';
import { Metrics } from './src/observability/metrics.ts';
const n = Number(process.argv[2]);
const root = `/var/tmp/rc-seed-${n}`;
if (!existsSync(root)) {
  const records: Array<[string, IndexRecord]> = [];
  for (let i = 0; i < n; i++) {
    const hex = randomBytes(32).toString('hex');
    const dir = join(root, 'blobs', 'sha256', hex.slice(0, 2));
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, hex), Buffer.alloc(1 + (i % 64)));
    records.push([`sha256:${hex}`, { size: 1 + (i % 64), kind: i % 10 === 0 ? 'manifest' : 'blob', seq: i + 1, at: Date.now() }]);
  }
  const meta = Metadata.sqlite(root);
  for (let i = 0; i < records.length; i += 50_000) await meta.writeIndex(records.slice(i, i + 50_000));
  await meta.close();
  console.log('seeded');
}
let t = performance.now();
const m = Metadata.sqlite(root);
let c = 0;
await m.loadIndex(() => c++);
console.log('loadIndex only', c, (performance.now() - t).toFixed(0));
t = performance.now();
const store = new FsBlobStore(root);
const l = await store.listAll();
console.log('listAll', l.length, (performance.now() - t).toFixed(0));
t = performance.now();
const index = new StorageIndex({ store, metadata: m, logger: createLogger('warn'), metrics: new Metrics({ upstreams: [], defaultMetrics: false }), quota: { quotaBytes: undefined, highWater: 0.95, lowWater: 0.85 } });
const r = await index.load();
console.log('index.load', r, (performance.now() - t).toFixed(0));
await index.close(); await m.close();
