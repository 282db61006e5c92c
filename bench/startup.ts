// Daemon startup with N cached entries: seeds a store with N files under blobs/ and their index
// records, then times the real daemon (`node dist/main.js`, built by the npm pre-script) from
// spawn to its first `/readyz` 200, and reports its resident memory against the same daemon on an
// empty store, started in the same run. `npm run bench:startup [-- --entries N]` (several sizes: --entries 100000,1000000).
// `--seeded DIR` times a store seeded earlier (kept): seeding a million files takes minutes.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Metadata, type IndexRecord } from '../src/cache/metadata.ts';
import { DAEMON_NODE_FLAGS } from '../src/testing/daemon-flags.ts';
import { rssMiB } from '../src/testing/process-memory.ts';
import { freePort } from '../src/testing/registry-process.ts';

const { values } = parseArgs({ options: { entries: { type: 'string', default: '100000' }, seeded: { type: 'string' } } });
const sizes = values.entries.split(',').map(Number);
const TARGET_MS = 5_000;
const MAIN = new URL('../dist/main.js', import.meta.url).pathname;

interface Started {
  readonly child: ChildProcess;
  readonly readyMs: number;
  readonly rssMiB: number;
  readonly loaded: Record<string, unknown> | undefined;
  /** The background disk check's report, once logged. */
  readonly reconciled: Promise<Record<string, unknown>>;
}

/** The least recently used digest in a store's index: first in line for eviction. */
async function leastRecentOf(root: string): Promise<string | undefined> {
  const meta = Metadata.sqlite(root);
  let first: string | undefined;
  await meta.loadIndex((digest) => (first ??= digest));
  await meta.close();
  return first;
}

/** Spawns the daemon on `root` and resolves when /readyz answers 200 (or fails after 120 s). */
async function startDaemon(root: string): Promise<Started> {
  const port = await freePort();
  const started = performance.now();
  const child = spawn(process.execPath, [...DAEMON_NODE_FLAGS, MAIN], {
    env: { ...process.env, REGCACHE_STORAGE_ROOT: root, REGCACHE_LISTEN: `127.0.0.1:${port}`, REGCACHE_LOG_LEVEL: 'info' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let loaded: Record<string, unknown> | undefined;
  let reconciledNow!: (r: Record<string, unknown>) => void;
  const reconciled = new Promise<Record<string, unknown>>((r) => (reconciledNow = r));
  let buffered = '';
  child.stdout!.on('data', (d: Buffer) => {
    buffered += d.toString();
    for (let nl = buffered.indexOf('\n'); nl >= 0; nl = buffered.indexOf('\n')) {
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      if (line.includes('storage index loaded')) loaded = JSON.parse(line) as Record<string, unknown>;
      if (line.includes('storage index reconciled')) reconciledNow(JSON.parse(line) as Record<string, unknown>);
    }
  });
  const deadline = Date.now() + 120_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`daemon exited with ${child.exitCode}`);
    const ok = await fetch(`http://127.0.0.1:${port}/readyz`).then((r) => r.status === 200, () => false);
    if (ok) break;
    if (Date.now() > deadline) throw new Error('daemon not ready within 120 s');
    await new Promise((r) => setTimeout(r, 20));
  }
  const readyMs = performance.now() - started;
  return { child, readyMs, rssMiB: await rssMiB(child.pid!), loaded, reconciled };
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  await exited;
}

/** N files (1–64 bytes; only the count matters here) under blobs/, with index records in that recency order. */
async function seed(root: string, n: number): Promise<string> {
  const records: Array<[string, IndexRecord]> = [];
  const dirs = new Set<string>();
  for (let i = 0; i < n; i++) {
    const hex = randomBytes(32).toString('hex');
    const dir = join(root, 'blobs', 'sha256', hex.slice(0, 2));
    if (!dirs.has(dir)) {
      mkdirSync(dir, { recursive: true });
      dirs.add(dir);
    }
    const size = 1 + (i % 64);
    writeFileSync(join(dir, hex), Buffer.alloc(size));
    records.push([`sha256:${hex}`, { size, kind: i % 10 === 0 ? 'manifest' : 'blob', seq: i + 1, at: Date.now() }]);
  }
  const meta = Metadata.sqlite(root);
  for (let i = 0; i < records.length; i += 50_000) await meta.writeIndex(records.slice(i, i + 50_000));
  await meta.close();
  return records[0]![0];
}

const emptyRoot = await mkdtemp(join(tmpdir(), 'regcache-startup-empty-'));
try {
  const empty = await startDaemon(emptyRoot);
  await stop(empty.child);
  console.log(`empty store: ready in ${Math.round(empty.readyMs)} ms, RSS ${empty.rssMiB.toFixed(0)} MiB`);
  for (const n of sizes) {
    const root = values.seeded ?? (await mkdtemp(join(tmpdir(), 'regcache-startup-')));
    try {
      let leastRecent: string | undefined;
      if (values.seeded) {
        leastRecent = await leastRecentOf(root);
      } else {
        console.log(`seeding ${n} entries under ${root}`);
        const t = performance.now();
        leastRecent = await seed(root, n);
        console.log(`seeded in ${((performance.now() - t) / 1000).toFixed(1)} s`);
      }
      const run = await startDaemon(root);
      const reconcile = await run.reconciled;
      const rssReconciled = await rssMiB(run.child.pid!);
      await stop(run.child);
      // The least recently used entry must still be first in line for eviction: order restored exactly.
      const orderOk = (await leastRecentOf(root)) === leastRecent;
      const result = {
        entries: n,
        loadedEntries: Number(run.loaded?.['entries'] ?? 0),
        readySeconds: Math.round(run.readyMs) / 1000,
        indexLoadSeconds: Number(run.loaded?.['ms'] ?? 0) / 1000,
        emptyStoreReadySeconds: Math.round(empty.readyMs) / 1000,
        target: '< 5 s',
        pass: run.readyMs < TARGET_MS && Number(run.loaded?.['entries']) === n && orderOk,
        lruOrderRestored: orderOk,
        rssMiB: Math.round(run.rssMiB),
        reconcileSeconds: Number(reconcile['ms'] ?? 0) / 1000,
        rssAfterReconcileMiB: Math.round(rssReconciled),
        emptyStoreRssMiB: Math.round(empty.rssMiB),
        rssPerEntryBytes: Math.round(((run.rssMiB - empty.rssMiB) * 2 ** 20) / n),
        node: process.version,
        date: new Date().toISOString(),
      };
      console.log(JSON.stringify(result, null, 2));
      await mkdir(new URL('./results/', import.meta.url), { recursive: true });
      await writeFile(new URL(`./results/startup-${n}.json`, import.meta.url), `${JSON.stringify(result, null, 2)}\n`);
      if (!result.pass) process.exitCode = 1;
    } finally {
      if (!values.seeded) await rm(root, { recursive: true, force: true });
    }
  }
} finally {
  await rm(emptyRoot, { recursive: true, force: true });
}
