// Behaviour of the read path against the fake Docker Hub: auth, redirects, dedup, verification, faults.
import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, beforeEach, describe, it } from 'node:test';
import { request } from 'undici';
import { FakeHub } from '../testing/fake-registry.ts';
import { image, layer, multiArch, sha256 } from '../testing/fixtures.ts';
import { errorCode, fetchAll, startRegcache, type Harness } from '../testing/harness.ts';

const REPO = 'library/app';
const big = layer(6 * 2 ** 20, 11);
const small = layer(40_000, 12);
const img = image({ layers: [big, small] });
const arm = image({ layers: [layer(30_000, 13)], arch: 'arm64' });
const multi = multiArch([img, arm], true);

describe('pull-through against a Docker-Hub-like upstream', () => {
  let hub: FakeHub;
  let rc: Harness;

  before(async () => {
    hub = await FakeHub.start();
    hub.addImage(REPO, '1.0', img);
    hub.addMultiArch(REPO, 'multi', multi);
  });
  after(async () => {
    await rc?.stop({ wipe: true });
    await hub.stop();
  });
  beforeEach(async () => {
    await rc?.stop({ wipe: true });
    hub.clearFaults();
    hub.remaining = hub.limit;
    hub.tokenServerDown = false;
    rc = await startRegcache({
      upstreams: [{ name: 'docker.io', url: hub.registryUrl, mirror: true, implicitLibrary: true, idleTimeout: '1s', timeout: '2s' }],
      tags: { ttl: '1h' },
    });
    hub.reset();
  });

  it('resolves a tag with one upstream HEAD and serves it with digest, type and length', async () => {
    const head = await fetchAll(`${rc.url}/v2/app/manifests/1.0`, { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(head.headers['docker-content-digest'], img.manifest.digest);
    assert.equal(head.headers['content-type'], img.manifest.mediaType);
    assert.equal(Number(head.headers['content-length']), img.manifest.data.length);
    assert.equal(hub.count('registry', 'GET', /manifests/), 0, 'a HEAD must not spend a pull');
    const get = await fetchAll(`${rc.url}/v2/app/manifests/${img.manifest.digest}`);
    assert.equal(get.status, 200);
    assert.deepEqual(get.body, img.manifest.data);
    assert.equal(hub.count('registry', 'GET', /manifests/), 1);
  });

  it('answers the token challenge once and reuses the token', async () => {
    await fetchAll(`${rc.url}/v2/app/manifests/1.0`);
    await fetchAll(`${rc.url}/v2/app/blobs/${small.digest}`);
    assert.equal(hub.count('token', 'GET', /scope=repository%3Alibrary%2Fapp%3Apull/), 1);
    assert.equal(hub.requests.filter((r) => r.server === 'registry' && r.authorization === undefined).length, 1, 'only the first request goes without a token');
  });

  it('records the upstream rate-limit headers', async () => {
    await fetchAll(`${rc.url}/v2/app/manifests/1.0`);
    const state = rc.app.upstreams.get('docker.io')?.rateLimit;
    assert.equal(state?.limit, 100);
    assert.equal(state?.remaining, 99);
    assert.equal(state?.windowSeconds, 21600);
    const metrics = await rc.app.metrics.registry.metrics();
    assert.match(metrics, /regcache_upstream_ratelimit_remaining\{upstream="docker.io"\} 99/);
  });

  it('follows the blob redirect to the CDN without sending credentials, then serves the second pull from disk', async () => {
    const first = await fetchAll(`${rc.url}/v2/app/blobs/${small.digest}`);
    assert.equal(first.status, 200);
    assert.equal(sha256(first.body), small.digest);
    const cdn = hub.requests.filter((r) => r.server === 'cdn');
    assert.equal(cdn.length, 1);
    assert.equal(cdn[0]?.authorization, undefined);
    hub.reset();
    const second = await fetchAll(`${rc.url}/v2/app/blobs/${small.digest}`);
    assert.deepEqual(second.body, small.data);
    assert.equal(second.headers['docker-content-digest'], small.digest);
    assert.equal(hub.requests.length, 0, 'a cached blob is served without contacting upstream');
  });

  it('shares one upstream fetch among 20 concurrent cold requests', async () => {
    const results = await Promise.all(Array.from({ length: 20 }, () => fetchAll(`${rc.url}/v2/app/blobs/${big.digest}`)));
    for (const r of results) {
      assert.equal(r.status, 200);
      assert.equal(r.body.length, big.data.length);
      assert.equal(sha256(r.body), big.digest);
    }
    assert.equal(hub.count('cdn', 'GET', new RegExp(big.digest)), 1);
    const authorized = hub.requests.filter((r) => r.server === 'registry' && r.path.includes(big.digest) && r.authorization);
    assert.equal(authorized.length, 1, 'one authorized upstream GET (plus the 401 that fetched the token)');
  });

  it('lets a late joiner read what is on disk and follow the download to the end', async () => {
    hub.behave(big.digest, { pauseAt: 3 * 2 ** 20 });
    const first = fetchAll(`${rc.url}/v2/app/blobs/${big.digest}`);
    await waitFor(() => hub.count('cdn', 'GET', /blobs/) === 1);
    await new Promise((r) => setTimeout(r, 200));
    const late = fetchAll(`${rc.url}/v2/app/blobs/${big.digest}`);
    const ranged = fetchAll(`${rc.url}/v2/app/blobs/${big.digest}`, { headers: { range: 'bytes=1000-2999' } });
    await new Promise((r) => setTimeout(r, 100));
    hub.release();
    const [a, b, c] = await Promise.all([first, late, ranged]);
    assert.equal(sha256(a.body), big.digest);
    assert.equal(sha256(b.body), big.digest);
    assert.equal(c.status, 206);
    assert.equal(c.headers['content-range'], `bytes 1000-2999/${big.data.length}`);
    assert.deepEqual(c.body, big.data.subarray(1000, 3000));
    assert.equal(hub.count('cdn', 'GET', /blobs/), 1);
  });

  it('aborts the client and commits nothing when the upstream dies mid-blob, then refetches', async () => {
    hub.behave(big.digest, { truncateAt: 2 * 2 ** 20 });
    await assert.rejects(fetchAll(`${rc.url}/v2/app/blobs/${big.digest}`), 'a truncated upstream must break the client transfer');
    await waitFor(async () => (await storedFiles(rc.root, 'tmp')).length === 0);
    assert.deepEqual(await storedFiles(rc.root, 'blobs'), []);
    hub.clearFaults();
    const again = await fetchAll(`${rc.url}/v2/app/blobs/${big.digest}`);
    assert.equal(sha256(again.body), big.digest);
    assert.equal(hub.count('cdn', 'GET', /blobs/), 2);
  });

  it('never completes a response with bytes that do not match the digest', async () => {
    hub.behave(small.digest, { corrupt: true });
    await assert.rejects(fetchAll(`${rc.url}/v2/app/blobs/${small.digest}`));
    await waitFor(async () => (await storedFiles(rc.root, 'tmp')).length === 0);
    assert.deepEqual(await storedFiles(rc.root, 'blobs'), []);
    assert.ok(rc.logs.some((l) => l['msg'] === 'blob download failed; nothing committed' && String(l['err']).includes('hashes to')));
  });

  it('aborts on an upstream that stalls longer than the idle timeout', async () => {
    hub.behave(small.digest, { stallAt: 1000 });
    await assert.rejects(fetchAll(`${rc.url}/v2/app/blobs/${small.digest}`));
    assert.deepEqual(await storedFiles(rc.root, 'blobs'), []);
  });

  it('answers a blob HEAD miss from an upstream HEAD without downloading', async () => {
    const head = await fetchAll(`${rc.url}/v2/app/blobs/${big.digest}`, { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(Number(head.headers['content-length']), big.data.length);
    assert.equal(head.headers['docker-content-digest'], big.digest);
    assert.equal(hub.count('cdn', 'GET', /./), 0);
    assert.equal(hub.count('registry', 'GET', /blobs/), 0);
  });

  it('serves ranges of cached blobs and refuses unsatisfiable ones with 416', async () => {
    await fetchAll(`${rc.url}/v2/app/blobs/${small.digest}`);
    const tail = await fetchAll(`${rc.url}/v2/app/blobs/${small.digest}`, { headers: { range: 'bytes=-500' } });
    assert.equal(tail.status, 206);
    assert.deepEqual(tail.body, small.data.subarray(small.data.length - 500));
    const from = await fetchAll(`${rc.url}/v2/app/blobs/${small.digest}`, { headers: { range: 'bytes=100-' } });
    assert.equal(from.headers['content-range'], `bytes 100-${small.data.length - 1}/${small.data.length}`);
    const bad = await fetchAll(`${rc.url}/v2/app/blobs/${small.digest}`, { headers: { range: `bytes=${small.data.length}-` } });
    assert.equal(bad.status, 416);
    assert.equal(errorCode(bad), 'RANGE_INVALID');
    assert.equal(bad.headers['content-range'], `bytes */${small.data.length}`);
  });

  it('serves a cached tag within its TTL without asking upstream', async () => {
    await fetchAll(`${rc.url}/v2/app/manifests/1.0`);
    hub.reset();
    for (let i = 0; i < 5; i++) {
      const r = await fetchAll(`${rc.url}/v2/app/manifests/1.0`);
      assert.equal(r.headers['docker-content-digest'], img.manifest.digest);
    }
    assert.equal(hub.requests.length, 0);
  });

  it('passes an upstream 429 on as TOOMANYREQUESTS with Retry-After when nothing is cached', async () => {
    hub.remaining = 0;
    const r = await fetchAll(`${rc.url}/v2/app/manifests/${img.manifest.digest}`);
    assert.equal(r.status, 429);
    assert.equal(errorCode(r), 'TOOMANYREQUESTS');
    assert.equal(r.headers['retry-after'], '60');
  });

  it('passes an upstream 404 on as MANIFEST_UNKNOWN', async () => {
    const r = await fetchAll(`${rc.url}/v2/app/manifests/nope`);
    assert.equal(r.status, 404);
    assert.equal(errorCode(r), 'MANIFEST_UNKNOWN');
  });

  it('re-authenticates once when a token expires mid-pull', async () => {
    await fetchAll(`${rc.url}/v2/app/manifests/1.0`);
    hub.expireTokens();
    const r = await fetchAll(`${rc.url}/v2/app/blobs/${small.digest}`);
    assert.equal(r.status, 200);
    assert.equal(hub.count('token', 'GET', /./), 2);
  });

  it('reports a failing token server as 503 UPSTREAM_UNAVAILABLE', async () => {
    hub.tokenServerDown = true;
    const r = await fetchAll(`${rc.url}/v2/app/manifests/1.0`);
    assert.equal(r.status, 503);
    assert.equal(errorCode(r), 'UPSTREAM_UNAVAILABLE');
  });

  it('rejects a manifest whose bytes do not match the digest asked for', async () => {
    const wrong = image({ layers: [small], seed: 99 });
    hub.addManifest(REPO, undefined, { ...wrong.manifest, digest: img.manifest.digest });
    try {
      const r = await fetchAll(`${rc.url}/v2/app/manifests/${img.manifest.digest}`);
      assert.equal(r.status, 502);
      assert.equal(errorCode(r), 'DIGEST_INVALID');
      assert.deepEqual(await storedFiles(rc.root, 'blobs'), []);
    } finally {
      hub.addManifest(REPO, undefined, img.manifest);
    }
  });

  it('never writes upstream credentials or tokens to the log', async () => {
    await rc.stop({ wipe: true });
    hub.credentials = { username: 'alice', password: 's3cret-pat' };
    try {
      rc = await startRegcache({ upstreams: [{ name: 'docker.io', url: hub.registryUrl, mirror: true, username: 'alice', password: 's3cret-pat' }] });
      const r = await fetchAll(`${rc.url}/v2/app/manifests/1.0`);
      assert.equal(r.status, 200);
      const basic = Buffer.from('alice:s3cret-pat').toString('base64');
      assert.ok(hub.requests.some((q) => q.server === 'token' && q.authorization === `Basic ${basic}`));
      const log = rc.logText();
      assert.ok(!log.includes('s3cret-pat') && !log.includes(basic), 'credentials leaked into the log');
      const tokens = hub.requests.map((q) => q.authorization?.replace(/^Bearer /, '')).filter((t) => t && !t.startsWith('Basic'));
      for (const t of tokens) assert.ok(t && !log.includes(t), 'a bearer token leaked into the log');
    } finally {
      hub.credentials = undefined;
    }
  });

  it('serves an OCI index and its platform manifests by digest', async () => {
    const r = await fetchAll(`${rc.url}/v2/app/manifests/multi`, { headers: { accept: 'application/vnd.oci.image.index.v1+json' } });
    assert.equal(r.headers['content-type'], 'application/vnd.oci.image.index.v1+json');
    assert.equal(sha256(r.body), multi.index.digest);
    const child = await fetchAll(`${rc.url}/v2/app/manifests/${arm.manifest.digest}`);
    assert.deepEqual(child.body, arm.manifest.data);
  });

  it('streams a cold blob to the client before the upstream has finished sending it', async () => {
    hub.behave(big.digest, { pauseAt: 2 * 2 ** 20 });
    const res = await request(`${rc.url}/v2/app/blobs/${big.digest}`);
    assert.equal(res.statusCode, 200);
    let received = 0;
    for await (const chunk of res.body) {
      received += (chunk as Buffer).length;
      if (received >= 2 * 2 ** 20 - 1) break;
    }
    assert.ok(received >= 2 * 2 ** 20 - 1, 'bytes arrive while the upstream is still paused');
    res.body.destroy();
    hub.release();
    await waitFor(async () => (await storedFiles(rc.root, 'blobs')).length === 1);
    const done = await fetchAll(`${rc.url}/v2/app/blobs/${big.digest}`);
    assert.equal(sha256(done.body), big.digest, 'the download finished for the cache after its client left');
  });
});

async function storedFiles(root: string, sub: 'blobs' | 'tmp'): Promise<string[]> {
  try {
    const entries = await readdir(join(root, sub), { recursive: true, withFileTypes: true });
    return entries.filter((e) => e.isFile()).map((e) => e.name);
  } catch {
    return [];
  }
}

async function waitFor(check: () => boolean | Promise<boolean>, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}
