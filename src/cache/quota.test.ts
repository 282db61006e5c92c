// Storage quota and LRU eviction, through a real upstream registry and the fake Docker Hub.
import assert from 'node:assert/strict';
import { mkdtemp, mkdir, rm, writeFile, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import { FakeHub } from '../testing/fake-registry.ts';
import { image, layer, sha256, type Image } from '../testing/fixtures.ts';
import { fetchAll, startRegcache, type Harness } from '../testing/harness.ts';
import { RegistryProcess } from '../testing/registry-process.ts';

const MiB = 2 ** 20;
const QUOTA = 20 * MiB;

/** Pulls an image the way a client does: manifest by tag, then every blob. */
async function pull(rc: Harness, repo: string, img: Image): Promise<void> {
  const m = await fetchAll(`${rc.url}/v2/${repo}/manifests/1.0`);
  assert.equal(m.status, 200);
  for (const b of img.blobs) {
    const r = await fetchAll(`${rc.url}/v2/${repo}/blobs/${b.digest}`);
    assert.equal(sha256(r.body), b.digest);
  }
}

const stored = (rc: Harness) => new Set([...rc.app.index.entries()].map((e) => e.digest));

describe('storage quota with LRU eviction (real upstream)', () => {
  let scratch: string;
  let upstream: RegistryProcess;
  let rc: Harness;
  const imgs = ['a', 'b', 'c', 'd'].map((name, i) => ({ name, img: image({ layers: [layer(5 * MiB, 50 + i)], seed: 50 + i }) }));

  before(async () => {
    scratch = await mkdtemp(join(tmpdir(), 'regcache-quota-'));
    upstream = await RegistryProcess.start(join(scratch, 'upstream'));
    for (const { name, img } of imgs) await upstream.pushImage(`library/${name}`, '1.0', img);
    rc = await startRegcache({
      upstreams: [{ name: 'registry.local', url: upstream.url, mirror: true, implicitLibrary: true }],
      storage: { quota: '20MiB', highWater: 0.95, lowWater: 0.85 },
    });
  });
  after(async () => {
    await rc?.stop({ wipe: true });
    await upstream?.stop();
    await rm(scratch, { recursive: true, force: true });
  });

  it('keeps the byte total under the quota after every pull and evicts the least recently used image', async () => {
    const [a, b, c, d] = imgs;
    assert.ok(a && b && c && d);
    for (const { name, img } of [a, b, c]) {
      await pull(rc, name, img);
      assert.ok(rc.app.index.usedBytes <= QUOTA, `${rc.app.index.usedBytes} bytes after ${name}`);
    }
    await pull(rc, 'a', a.img); // a is now more recent than b
    await pull(rc, 'd', d.img);
    assert.ok(rc.app.index.usedBytes <= QUOTA * 0.95, `${rc.app.index.usedBytes} bytes after d`);
    const has = stored(rc);
    assert.ok(!has.has(b.img.layers[0]?.digest ?? ''), 'b, the least recently used, was evicted');
    for (const { img } of [a, c, d]) assert.ok(has.has(img.layers[0]?.digest ?? ''), 'more recent images stay');
    const metrics = await rc.app.metrics.registry.metrics();
    assert.match(metrics, /regcache_evictions_total\{kind="blob"\} [1-9]/);
    assert.match(metrics, /regcache_storage_quota_bytes 20971520/);
  });

  it('refetches an evicted image transparently on the next pull', async () => {
    const b = imgs[1];
    assert.ok(b);
    await upstream.settle();
    upstream.requests.length = 0;
    await pull(rc, 'b', b.img);
    await upstream.settle();
    assert.equal(upstream.count('GET', new RegExp(`blobs/${b.img.layers[0]?.digest}`)), 1);
    assert.ok(rc.app.index.usedBytes <= QUOTA);
  });

  it('restores the same index after a restart: same bytes, same LRU order', async () => {
    const order = [...rc.app.index.entries()].map((e) => e.digest);
    const bytes = rc.app.index.usedBytes;
    await rc.stop();
    rc = await startRegcache({
      upstreams: [{ name: 'registry.local', url: upstream.url, mirror: true, implicitLibrary: true }],
      storage: { quota: '20MiB' },
    }, { root: rc.root });
    assert.deepEqual([...rc.app.index.entries()].map((e) => e.digest), order);
    assert.equal(rc.app.index.usedBytes, bytes);
  });
});

describe('eviction never touches what is in use', () => {
  let hub: FakeHub;
  let rc: Harness;
  const big = layer(6 * MiB, 70);
  const fillers = [71, 72, 73, 74].map((s) => layer(4 * MiB, s));
  const huge = layer(12 * MiB, 75);

  before(async () => {
    hub = await FakeHub.start();
    for (const b of [big, huge, ...fillers]) hub.addBlob(b);
    rc = await startRegcache({
      upstreams: [{ name: 'docker.io', url: hub.registryUrl, mirror: true }],
      storage: { quota: '14MiB', highWater: 0.9, lowWater: 0.6 },
    });
  });
  after(async () => {
    await rc?.stop({ wipe: true });
    await hub.stop();
  });

  const get = (digest: string) => fetchAll(`${rc.url}/v2/library/x/blobs/${digest}`);

  it('lets an in-flight download survive an eviction pass, then commits it', async () => {
    hub.behave(big.digest, { pauseAt: 2 * MiB });
    const pending = get(big.digest);
    await new Promise((r) => setTimeout(r, 200));
    for (const f of fillers) await get(f.digest);
    hub.release();
    const r = await pending;
    assert.equal(sha256(r.body), big.digest);
    await new Promise((r) => setTimeout(r, 100));
    assert.ok(stored(rc).has(big.digest), 'committed after the eviction pass');
    assert.ok(rc.app.index.usedBytes <= 14 * MiB * 0.9 + 1);
  });

  it('streams a blob larger than the quota allows without keeping it', async () => {
    const r = await get(huge.digest);
    assert.equal(sha256(r.body), huge.digest);
    assert.ok(!stored(rc).has(huge.digest));
    assert.ok(rc.logs.some((l) => l['msg'] === 'blob larger than the quota allows: streamed, not kept'));
    assert.deepEqual(await readdir(join(rc.root, 'tmp')), []);
  });
});

describe('a blob being read survives eviction', () => {
  it('keeps a blob that a slow client is still reading through an eviction pass', async () => {
    const hub = await FakeHub.start();
    const slow = layer(24 * MiB, 90);
    const fillers = [91, 92, 93].map((s) => layer(12 * MiB, s));
    for (const b of [slow, ...fillers]) hub.addBlob(b);
    const rc = await startRegcache({
      upstreams: [{ name: 'docker.io', url: hub.registryUrl, mirror: true }],
      storage: { quota: '64MiB', highWater: 0.9, lowWater: 0.5 },
    });
    try {
      const get = (digest: string) => fetchAll(`${rc.url}/v2/library/x/blobs/${digest}`);
      await get(slow.digest);
      // Larger than what socket buffers absorb: the server is still reading the file while we wait.
      const res = await request(`${rc.url}/v2/library/x/blobs/${slow.digest}`);
      const reader = res.body[Symbol.asyncIterator]();
      const first = await reader.next();
      for (const f of fillers) await get(f.digest); // 60 MiB > 57.6 MiB high water: eviction runs
      assert.ok(rc.app.index.evictedCount > 0, 'an eviction pass ran');
      assert.ok(stored(rc).has(slow.digest), 'the least recently used blob was kept: it is being read');
      const chunks: Buffer[] = [first.value as Buffer];
      for (let r = await reader.next(); !r.done; r = await reader.next()) chunks.push(r.value as Buffer);
      assert.equal(sha256(Buffer.concat(chunks)), slow.digest, 'the slow client got the whole blob');
    } finally {
      await rc.stop({ wipe: true });
      await hub.stop();
    }
  });
});

describe('index reconciliation at start', () => {
  it('adopts verified files that have no record and drops records whose file is gone', async () => {
    const root = await mkdtemp(join(tmpdir(), 'regcache-reconcile-'));
    const rc1 = await startRegcache({ upstreams: [{ name: 'docker.io', url: 'http://127.0.0.1:9', mirror: true }] }, { root });
    await rc1.stop();
    // A file under blobs/ with no record (e.g. the record write was lost in a crash).
    const orphan = layer(10_000, 80);
    const hex = orphan.digest.slice('sha256:'.length);
    await mkdir(join(root, 'blobs', 'sha256', hex.slice(0, 2)), { recursive: true });
    await writeFile(join(root, 'blobs', 'sha256', hex.slice(0, 2), hex), orphan.data);
    const rc2 = await startRegcache({ upstreams: [{ name: 'docker.io', url: 'http://127.0.0.1:9', mirror: true }] }, { root });
    try {
      assert.equal((await rc2.app.index.reconciled)?.adopted, 1);
      assert.ok(stored(rc2).has(orphan.digest));
      assert.equal(rc2.app.index.usedBytes, orphan.data.length);
      const served = await fetchAll(`${rc2.url}/v2/library/x/blobs/${orphan.digest}`);
      assert.deepEqual(served.body, orphan.data);
    } finally {
      await rc2.stop();
    }
    await rm(join(root, 'blobs', 'sha256', hex.slice(0, 2), hex));
    const rc3 = await startRegcache({ upstreams: [{ name: 'docker.io', url: 'http://127.0.0.1:9', mirror: true }] }, { root });
    try {
      assert.equal((await rc3.app.index.reconciled)?.dropped, 1);
      assert.equal(rc3.app.index.entryCount, 0);
      assert.equal(rc3.app.index.usedBytes, 0);
    } finally {
      await rc3.stop({ wipe: true });
    }
  });
});
