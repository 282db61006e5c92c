// Workshops: floating tags pinned per scope, tag policy, repository allow lists, prefetch, through
// a real upstream registry (distribution) and skopeo, and the fake Docker Hub for the pull budget.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Writable } from 'node:stream';
import { promisify } from 'node:util';
import { request } from 'undici';
import { runPrefetch } from '../cli/prefetch.ts';
import { FakeHub } from '../testing/fake-registry.ts';
import { image, layer, multiArch, sha256, type Image } from '../testing/fixtures.ts';
import { errorCode, fetchAll, startRegcache, type Harness } from '../testing/harness.ts';
import { RegistryProcess } from '../testing/registry-process.ts';

const run = promisify(execFile);
const TOKEN = 'workshop-admin-token-0123456789';
const UP = 'registry.test';
const MiB = 2 ** 20;

const img = (seed: number, size = 64 * 1024) => image({ layers: [layer(size, seed)], seed });

async function manifestDigest(rc: Harness, path: string, method: 'GET' | 'HEAD' = 'GET', headers: Record<string, string> = {}): Promise<string> {
  const r = await fetchAll(`${rc.url}/v2/${path}`, { method, headers });
  assert.equal(r.status, 200, `${method} ${path}: ${r.body.toString()}`);
  return String(r.headers['docker-content-digest']);
}

async function admin(rc: Harness, method: 'GET' | 'POST' | 'DELETE', path: string, body?: unknown): Promise<{ status: number; json: any; text: string }> {
  const res = await request(`${rc.url}/admin/v1/${path}`, {
    method,
    headers: { authorization: `Bearer ${TOKEN}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.body.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.statusCode, json, text };
}

const lastRequest = (rc: Harness, urlPart: string) => [...rc.logs].reverse().find((l) => l['msg'] === 'request' && String(l['url']).includes(urlPart));

describe('floating tags pinned per workshop scope (real upstream)', () => {
  let scratch: string;
  let upstream: RegistryProcess;
  let rc: Harness;
  const A = img(401);
  const B = img(402);
  const config = () => ({ upstreams: [{ name: UP, url: upstream.url }], tags: { ttl: '1s' }, admin: { token: TOKEN }, log: { level: 'info' } });

  before(async () => {
    scratch = await mkdtemp(join(tmpdir(), 'regcache-workshops-'));
    upstream = await RegistryProcess.start(join(scratch, 'upstream'));
    rc = await startRegcache(config(), { root: join(scratch, 'cache') });
  });
  after(async () => {
    await rc?.stop();
    await upstream?.stop();
    await rm(scratch, { recursive: true, force: true });
  });

  it('keeps a scope on its first digest while the tag moves; new scopes get the new one; global follows its TTL; pins survive restarts and release', async () => {
    await upstream.pushImage('team/app', 'latest', A);
    assert.equal(await manifestDigest(rc, `ws/ws1/${UP}/team/app/manifests/latest`), A.manifest.digest);
    assert.equal(await manifestDigest(rc, `${UP}/team/app/manifests/latest`), A.manifest.digest, 'global sees A');

    await upstream.pushImage('team/app', 'latest', B); // the tag moves upstream
    assert.equal(await manifestDigest(rc, `ws/ws1/${UP}/team/app/manifests/latest`), A.manifest.digest, 'ws1 keeps A');
    assert.equal(lastRequest(rc, 'ws/ws1/')?.['result'], 'pinned');
    assert.equal(await manifestDigest(rc, `ws/ws1/${UP}/team/app/manifests/latest`, 'HEAD'), A.manifest.digest, 'HEAD (how dockerd resolves) answers the pin too');
    assert.equal(await manifestDigest(rc, `${UP}/team/app/manifests/latest`), A.manifest.digest, 'global: A within the 1 s TTL');
    assert.equal(await manifestDigest(rc, `ws/ws2/${UP}/team/app/manifests/latest`), B.manifest.digest, 'a new scope starts on what the upstream has now');
    await new Promise((r) => setTimeout(r, 1_100));
    assert.equal(await manifestDigest(rc, `${UP}/team/app/manifests/latest`), B.manifest.digest, 'global: B after its TTL');
    assert.equal(await manifestDigest(rc, `ws/ws1/${UP}/team/app/manifests/latest`), A.manifest.digest, 'ws1 still A');
    // Blobs of the pinned image still come through the scope path.
    for (const b of A.blobs) assert.equal(sha256((await fetchAll(`${rc.url}/v2/ws/ws1/${UP}/team/app/blobs/${b.digest}`)).body), b.digest);

    // Restart: pins come back from the metadata store.
    await rc.stop();
    rc = await startRegcache(config(), { root: join(scratch, 'cache') });
    assert.equal(await manifestDigest(rc, `ws/ws1/${UP}/team/app/manifests/latest`), A.manifest.digest, 'ws1 keeps A across a restart');
    assert.equal(await manifestDigest(rc, `ws/ws2/${UP}/team/app/manifests/latest`), B.manifest.digest);

    const listed = await admin(rc, 'GET', 'scopes');
    assert.equal(listed.status, 200);
    const ws1 = listed.json.scopes.find((s: { scope: string }) => s.scope === 'ws1');
    assert.equal(ws1.pins.length, 1);
    assert.deepEqual({ upstream: ws1.pins[0].upstream, repo: ws1.pins[0].repo, tag: ws1.pins[0].tag, digest: ws1.pins[0].digest }, { upstream: UP, repo: 'team/app', tag: 'latest', digest: A.manifest.digest });
    assert.ok(ws1.pins[0].expiresAt > Date.now() + 23 * 3_600_000, 'default pinTtl 24h, refreshed by use');

    const released = await admin(rc, 'DELETE', `scopes/ws1/pins/${UP}/team/app:latest`);
    assert.equal(released.status, 200, released.text);
    assert.equal(await manifestDigest(rc, `ws/ws1/${UP}/team/app/manifests/latest`), B.manifest.digest, 'released: ws1 moves to B (and pins it)');
    assert.equal((await admin(rc, 'GET', 'scopes/ws1')).json.pins[0].digest, B.manifest.digest);
    assert.equal((await admin(rc, 'DELETE', `scopes/ws1/pins/${UP}/team/app:nope`)).status, 404);
    assert.equal((await admin(rc, 'DELETE', 'scopes/ws2')).json.released, 1);
    assert.deepEqual((await admin(rc, 'GET', 'scopes/ws2')).json.pins, []);
  });

  it('never pins fixed version tags or digests', async () => {
    const V1 = img(403);
    const V2 = img(404);
    await upstream.pushImage('team/fixed', '1.27.3', V1);
    assert.equal(await manifestDigest(rc, `ws/ws5/${UP}/team/fixed/manifests/1.27.3`), V1.manifest.digest);
    assert.equal(await manifestDigest(rc, `ws/ws5/${UP}/team/fixed/manifests/${V1.manifest.digest}`), V1.manifest.digest);
    await upstream.pushImage('team/fixed', '1.27.3', V2); // a re-pushed "fixed" tag: the scope follows the TTL
    await new Promise((r) => setTimeout(r, 1_100));
    assert.equal(await manifestDigest(rc, `ws/ws5/${UP}/team/fixed/manifests/1.27.3`), V2.manifest.digest);
    assert.equal((await admin(rc, 'GET', 'scopes/ws5')).json.pins.length, 0);
  });

  it('pins what skopeo copies through a scope path, with byte-identical blobs', async () => {
    const C = img(405, 300 * 1024);
    await upstream.pushImage('team/tool', '2', C); // "2": a version without patch level floats
    const dest = join(scratch, 'skopeo-copy');
    const host = new URL(rc.url).host;
    await run('skopeo', ['copy', '--src-tls-verify=false', `docker://${host}/ws/ws6/${UP}/team/tool:2`, `dir:${dest}`], { timeout: 60_000 });
    const manifest = await readFile(join(dest, 'manifest.json'));
    assert.equal(`sha256:${createHash('sha256').update(manifest).digest('hex')}`, C.manifest.digest);
    for (const b of C.blobs) assert.equal(sha256(await readFile(join(dest, b.digest.slice('sha256:'.length)))), b.digest);
    const pins = (await admin(rc, 'GET', 'scopes/ws6')).json.pins;
    assert.deepEqual(pins.map((p: { tag: string; digest: string }) => [p.tag, p.digest]), [['2', C.manifest.digest]]);
  });

  it('pre-pins refs for a scope with HEADs only, and reports tags it does not pin', async () => {
    const D = img(406);
    await upstream.pushImage('team/pre', 'main', D);
    await upstream.pushImage('team/pre', '3.1.4', D);
    await upstream.settle();
    upstream.requests.length = 0;
    const r = await admin(rc, 'POST', 'scopes/ws7/pins', { refs: [`${UP}/team/pre:main`, `${UP}/team/pre:3.1.4`, `${UP}/team/missing:latest`] });
    assert.equal(r.status, 200, r.text);
    const [main, fixed, missing] = r.json.results;
    assert.deepEqual([main.digest, main.pinned], [D.manifest.digest, true]);
    assert.equal(fixed.pinned, false);
    assert.equal(missing.error.code, 'MANIFEST_UNKNOWN');
    await upstream.settle();
    assert.equal(upstream.count('GET', /\/manifests\//), 0, 'pre-pinning sent no manifest GET (no pull charged)');
    assert.equal(await manifestDigest(rc, `ws/ws7/${UP}/team/pre/manifests/main`), D.manifest.digest);
    assert.equal(lastRequest(rc, 'ws/ws7/')?.['result'], 'pinned');
  });

  it('refuses invalid scope names with NAME_INVALID', async () => {
    const r = await fetchAll(`${rc.url}/v2/ws/Bad_Scope/${UP}/team/app/manifests/latest`);
    assert.equal(r.status, 400);
    assert.equal(errorCode(r), 'NAME_INVALID');
  });
});

describe('pins against the fake Docker Hub', () => {
  it('20 sessions starting a scope at once share one upstream HEAD and one pin; an unused pin expires after pinTtl', async () => {
    const hub = await FakeHub.start();
    const rc = await startRegcache({ upstreams: [{ name: 'docker.io', url: hub.registryUrl, mirror: true }], scopes: { pinTtl: '1s' }, admin: { token: TOKEN } });
    try {
      const A = img(450);
      const B = img(451);
      hub.addImage('library/app', 'latest', A);
      hub.addImage('library/app', 'next', B);
      const digests = await Promise.all(Array.from({ length: 20 }, () => manifestDigest(rc, 'ws/ws1/docker.io/library/app/manifests/latest')));
      assert.deepEqual(new Set(digests), new Set([A.manifest.digest]));
      const heads = hub.requests.filter((r) => r.server === 'registry' && r.method === 'HEAD' && /\/manifests\/latest$/.test(r.path) && r.authorization !== undefined);
      assert.equal(heads.length, 1, 'one revalidation for 20 sessions (not counting the 401 that starts the token dance)');
      assert.equal(hub.limit - hub.remaining, 1, 'one pull charged (the GET by digest)');
      assert.equal((await admin(rc, 'GET', 'scopes/ws1')).json.pins.length, 1);

      hub.setTag('library/app', 'latest', B.manifest.digest);
      for (let i = 0; i < 3; i++) {
        // Used every 400 ms: the sliding expiry keeps the pin alive past its 1 s TTL.
        await new Promise((r) => setTimeout(r, 400));
        assert.equal(await manifestDigest(rc, 'ws/ws1/docker.io/library/app/manifests/latest'), A.manifest.digest);
      }
      await new Promise((r) => setTimeout(r, 1_200)); // unused for longer than pinTtl
      assert.equal(await manifestDigest(rc, 'ws/ws1/docker.io/library/app/manifests/latest'), B.manifest.digest, 'expired: the scope moves on');
    } finally {
      await rc.stop({ wipe: true });
      await hub.stop();
    }
  });
});

describe('pinned images are protected from eviction', () => {
  let scratch: string;
  let upstream: RegistryProcess;
  let rc: Harness;

  before(async () => {
    scratch = await mkdtemp(join(tmpdir(), 'regcache-pin-evict-'));
    upstream = await RegistryProcess.start(join(scratch, 'upstream'));
    rc = await startRegcache({ upstreams: [{ name: UP, url: upstream.url }], storage: { quota: '12MiB' }, admin: { token: TOKEN } });
  });
  after(async () => {
    await rc?.stop({ wipe: true });
    await upstream?.stop();
    await rm(scratch, { recursive: true, force: true });
  });

  const pull = async (path: string, i: Image) => {
    assert.equal(await manifestDigest(rc, `${path}/manifests/${path.includes('/ws/') || path.startsWith('ws/') ? 'latest' : '1.0.0'}`), i.manifest.digest);
    for (const b of i.blobs) assert.equal(sha256((await fetchAll(`${rc.url}/v2/${path}/blobs/${b.digest}`)).body), b.digest);
  };
  const cached = (i: Image) => i.blobs.every((b) => rc.app.index.has(b.digest)) && rc.app.index.has(i.manifest.digest);

  it('evicts around a live pin, and evicts the image once the pin is released', async () => {
    const pinned = img(410, 3 * MiB);
    await upstream.pushImage('team/pinned', 'latest', pinned);
    await pull(`ws/ws1/${UP}/team/pinned`, pinned);
    const others = [411, 412, 413, 414, 415].map((seed) => img(seed, 3 * MiB));
    for (const [i, o] of others.entries()) {
      await upstream.pushImage(`team/other${i}`, '1.0.0', o);
      await pull(`${UP}/team/other${i}`, o);
    }
    await rc.app.index.evictIfNeeded();
    assert.ok(cached(pinned), 'the pinned image is still cached though it is the least recently used');
    assert.ok(!cached(others[0]!), 'older unpinned images were evicted');
    assert.ok(rc.app.index.usedBytes <= 12 * MiB);

    assert.equal((await admin(rc, 'DELETE', 'scopes/ws1')).json.released, 1);
    for (const [i, o] of others.slice(0, 3).entries()) await pull(`${UP}/team/other${i}`, o);
    await rc.app.index.evictIfNeeded();
    assert.ok(!cached(pinned), 'released: the image is evicted like any other');
  });
});

describe('tag policy and repository allow lists', () => {
  let scratch: string;
  let upstream: RegistryProcess;
  const started: Harness[] = [];
  const E = img(420);

  before(async () => {
    scratch = await mkdtemp(join(tmpdir(), 'regcache-policy-'));
    upstream = await RegistryProcess.start(join(scratch, 'upstream'));
    await upstream.pushImage('library/nginx', 'latest', E);
    await upstream.pushImage('library/nginx', '1.27.3', E);
    await upstream.pushImage('bitnami/postgresql', '16', E);
    await upstream.pushImage('bitnami/redis', '7.2.4', E);
    await upstream.pushImage('random/miner', '1.0.0', E);
  });
  after(async () => {
    for (const h of started) await h.stop({ wipe: true });
    await upstream?.stop();
    await rm(scratch, { recursive: true, force: true });
  });
  const start = async (extra: Record<string, unknown>, upstreamExtra: Record<string, unknown> = {}) => {
    const h = await startRegcache({ upstreams: [{ name: 'docker.io', url: upstream.url, mirror: true, implicitLibrary: true, ...upstreamExtra }], admin: { token: TOKEN }, ...extra });
    started.push(h);
    return h;
  };

  it('deny: refuses floating tags with DENIED naming the tag, serves fixed tags and digests', async () => {
    const rc = await start({ tags: { policy: 'deny' } });
    const r = await fetchAll(`${rc.url}/v2/nginx/manifests/latest`);
    assert.equal(r.status, 403);
    assert.equal(errorCode(r), 'DENIED');
    assert.match(r.body.toString(), /tag \\"latest\\" of docker.io\/library\/nginx is a floating tag/);
    assert.equal((await fetchAll(`${rc.url}/v2/nginx/manifests/1.27.3`)).status, 200);
    assert.equal((await fetchAll(`${rc.url}/v2/nginx/manifests/${E.manifest.digest}`)).status, 200);
    assert.equal((await fetchAll(`${rc.url}/v2/ws/ws1/docker.io/bitnami/postgresql/manifests/16`)).status, 403, 'in scopes too: "16" floats');
    assert.equal(lastRequest(rc, '/manifests/16')?.['result'], 'denied');
    assert.match(await (await fetch(`${rc.url}/metrics`)).text(), /regcache_floating_tag_requests_total\{policy="deny"\} 2/);
  });

  it('warn: serves floating tags, logs and counts them, pins nothing', async () => {
    const rc = await start({ tags: { policy: 'warn' } });
    assert.equal(await manifestDigest(rc, 'ws/ws1/docker.io/library/nginx/manifests/latest'), E.manifest.digest);
    assert.ok(rc.logs.some((l) => l['msg'] === 'floating tag pulled (tags.policy: warn)' && l['tag'] === 'latest' && l['scope'] === 'ws1'));
    assert.match(await (await fetch(`${rc.url}/metrics`)).text(), /regcache_floating_tag_requests_total\{policy="warn"\} 1/);
    assert.deepEqual((await admin(rc, 'GET', 'scopes')).json.scopes, []);
  });

  it('allow: floating tags behave like any tag, no pins', async () => {
    const rc = await start({ tags: { policy: 'allow' } });
    assert.equal(await manifestDigest(rc, 'ws/ws1/docker.io/library/nginx/manifests/latest'), E.manifest.digest);
    assert.deepEqual((await admin(rc, 'GET', 'scopes')).json.scopes, []);
  });

  it('custom floating patterns replace the defaults', async () => {
    const rc = await start({ tags: { floating: ['*.3'] } });
    await manifestDigest(rc, 'ws/ws1/docker.io/library/nginx/manifests/1.27.3');
    await manifestDigest(rc, 'ws/ws1/docker.io/library/nginx/manifests/latest');
    const pins = (await admin(rc, 'GET', 'scopes/ws1')).json.pins;
    assert.deepEqual(pins.map((p: { tag: string }) => p.tag), ['1.27.3']);
  });

  it('allow/deny lists refuse repositories before any upstream contact, cached or not', async () => {
    const rc = await start({}, { allow: ['library/*', 'bitnami/**'], deny: ['bitnami/redis'] });
    await upstream.settle();
    upstream.requests.length = 0;
    const miner = await fetchAll(`${rc.url}/v2/random/miner/manifests/1.0.0`);
    assert.equal(miner.status, 403);
    assert.equal(errorCode(miner), 'DENIED');
    assert.match(miner.body.toString(), /docker.io\/random\/miner is not in this cache's allow list/);
    const redis = await fetchAll(`${rc.url}/v2/bitnami/redis/manifests/7.2.4`);
    assert.equal(errorCode(redis), 'DENIED');
    assert.match(redis.body.toString(), /denied by this cache's policy/);
    assert.equal((await fetchAll(`${rc.url}/v2/random/miner/blobs/${E.config.digest}`)).status, 403, 'blobs too');
    assert.equal((await fetchAll(`${rc.url}/v2/random/miner/tags/list`)).status, 403, 'tag lists too');
    await upstream.settle();
    assert.equal(upstream.requests.length, 0, 'nothing was sent upstream for denied repositories');
    assert.equal((await fetchAll(`${rc.url}/v2/nginx/manifests/1.27.3`)).status, 200);
    assert.equal((await fetchAll(`${rc.url}/v2/bitnami/postgresql/manifests/16`)).status, 200);
    // The blob is cached now (via nginx), yet still refused through a denied repository.
    assert.equal((await fetchAll(`${rc.url}/v2/nginx/blobs/${E.config.digest}`)).status, 200);
    assert.equal((await fetchAll(`${rc.url}/v2/random/miner/blobs/${E.config.digest}`)).status, 403);
  });

  it('takes the scope from the Host header under scopes.hostSuffix, and enforces scopes.allowed', async () => {
    const rc = await start({ scopes: { hostSuffix: 'cache.test', allowed: ['ws1', 'ws2'] } });
    const port = new URL(rc.url).port;
    assert.equal(await manifestDigest(rc, 'nginx/manifests/latest', 'HEAD', { host: `ws2.cache.test:${port}` }), E.manifest.digest);
    assert.deepEqual((await admin(rc, 'GET', 'scopes/ws2')).json.pins.map((p: { repo: string }) => p.repo), ['library/nginx']);
    const denied = await fetchAll(`${rc.url}/v2/nginx/manifests/latest`, { headers: { host: `ws9.cache.test:${port}` } });
    assert.equal(denied.status, 403);
    assert.match(denied.body.toString(), /scope \\"ws9\\" is not one of this cache's scopes/);
    assert.equal((await fetchAll(`${rc.url}/v2/ws/ws9/docker.io/library/nginx/manifests/latest`)).status, 403);
    // The bare suffix is the global scope.
    assert.equal((await fetchAll(`${rc.url}/v2/nginx/manifests/latest`, { headers: { host: `cache.test:${port}` } })).status, 200);
  });
});

describe('prefetch', () => {
  let scratch: string;

  before(async () => {
    scratch = await mkdtemp(join(tmpdir(), 'regcache-prefetch-'));
  });
  after(async () => {
    await rm(scratch, { recursive: true, force: true });
  });

  it('warms a scope (index platforms, pins) through the CLI; then everything is served with the upstream stopped', async () => {
    const upstream = await RegistryProcess.start(join(scratch, 'upstream'));
    const amd = image({ layers: [layer(200 * 1024, 431)], arch: 'amd64', seed: 431 });
    const arm = image({ layers: [layer(200 * 1024, 432)], arch: 'arm64', seed: 432 });
    const ppc = image({ layers: [layer(200 * 1024, 433)], arch: 'ppc64le', seed: 433 });
    const list = multiArch([amd, arm, ppc], true);
    const fixed = img(434, 100 * 1024);
    await upstream.pushMultiArch('team/multi', 'latest', list);
    await upstream.pushImage('team/fixed', '1.2.3', fixed);
    const rc = await startRegcache({ upstreams: [{ name: UP, url: upstream.url }], admin: { token: TOKEN } });
    try {
      const refsFile = join(scratch, 'refs.txt');
      await writeFile(refsFile, `# workshop images\n${UP}/team/multi:latest\n${UP}/team/fixed:1.2.3\n`);
      const main = join(import.meta.dirname, '..', 'main.ts');
      const { stdout } = await promisify(execFile)(process.execPath, [main, 'prefetch', '--scope', 'ws1', '--file', refsFile, '--url', rc.url, '--token', TOKEN], { timeout: 60_000 });
      const events = stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, any>);
      const done = events.at(-1)!;
      assert.equal(done['event'], 'done', 'JSON lines when not on a terminal, ending with the summary');
      assert.equal(done['summary'].images, 2);
      assert.equal(done['summary'].failed, 0);
      assert.equal(done['summary'].manifests, 1 + 2 + 1, 'the index, its amd64 and arm64 children, the fixed image');
      const expectBlobs = [...amd.blobs, ...arm.blobs, ...fixed.blobs];
      assert.equal(done['summary'].blobs, expectBlobs.length);
      assert.equal(done['summary'].bytes, expectBlobs.reduce((n, b) => n + b.data.length, 0));
      assert.ok(events.some((e) => e['event'] === 'image' && e['ref'] === `${UP}/team/multi:latest` && e['pinned'] === true));
      for (const b of expectBlobs) assert.ok(rc.app.index.has(b.digest), `blob ${b.digest} cached`);
      for (const b of ppc.blobs) assert.ok(!rc.app.index.has(b.digest), 'platforms not asked for are not fetched');

      await upstream.stop();
      const host = new URL(rc.url).host;
      await run('skopeo', ['copy', '--src-tls-verify=false', '--override-arch', 'arm64', `docker://${host}/ws/ws1/${UP}/team/multi:latest`, `dir:${join(scratch, 'arm')}`], { timeout: 60_000 });
      await run('skopeo', ['copy', '--src-tls-verify=false', `docker://${host}/ws/ws1/${UP}/team/fixed:1.2.3`, `dir:${join(scratch, 'fixed')}`], { timeout: 60_000 });
      assert.equal(sha256(await readFile(join(scratch, 'arm', arm.layers[0]!.digest.slice(7)))), arm.layers[0]!.digest);
    } finally {
      await rc.stop({ wipe: true });
      await upstream.stop();
    }
  });

  it('draws a progress bar and a one-line summary on a terminal', async () => {
    const hub = await FakeHub.start();
    const rc = await startRegcache({ upstreams: [{ name: 'docker.io', url: hub.registryUrl, mirror: true }], admin: { token: TOKEN } });
    try {
      hub.addImage('library/web', 'latest', img(460, 300 * 1024));
      hub.addImage('library/db', '16.4.1', img(461, 200 * 1024));
      let text = '';
      const tty = Object.assign(new Writable({ write: (c: Buffer, _e, cb) => ((text += c.toString()), cb()) }), { isTTY: true }) as unknown as NodeJS.WriteStream;
      const code = await runPrefetch(['--scope', 'ws1', '--url', rc.url, '--token', TOKEN, 'web:latest', 'db:16.4.1'], {}, tty);
      assert.equal(code, 0);
      assert.match(text, /web:latest → sha256:[0-9a-f]{12} \(pinned\)/);
      assert.match(text, /\[#{30}\] 100% /);
      assert.match(text, /2 image\(s\) ready, 0 failed: 0\.5 MiB in 4 blobs, 0\.5 MiB fetched from upstream/);
      assert.doesNotMatch(text, /^\{/m, 'no JSON lines on a terminal');
    } finally {
      await rc.stop({ wipe: true });
      await hub.stop();
    }
  });

  it("stops before burning the upstream's pull budget, with a message that says so", async () => {
    const hub = await FakeHub.start();
    const rc = await startRegcache({ upstreams: [{ name: 'docker.io', url: hub.registryUrl, mirror: true }], admin: { token: TOKEN }, prefetch: { reserve: 10 } });
    try {
      const images = [441, 442, 443, 444].map((seed) => img(seed));
      for (const [i, im] of images.entries()) hub.addImage(`library/app${i}`, 'latest', im);
      hub.limit = 100;
      hub.remaining = 12;
      const r = await admin(rc, 'POST', 'prefetch', { scope: 'ws1', refs: images.map((_, i) => `app${i}:latest`) });
      assert.equal(r.status, 200);
      const events = r.text.trim().split('\n').map((l) => JSON.parse(l) as Record<string, any>);
      const stopped = events.find((e) => e['event'] === 'stopped');
      assert.ok(stopped, r.text);
      assert.match(stopped['reason'], /announced 10 pulls left .* reserve of 10/);
      const summary = events.at(-1)!['summary'];
      assert.equal(summary.images, 2, 'two images fetched (one pull each) before the reserve was reached');
      assert.equal(summary.skipped, 2);
      assert.equal(hub.remaining, 10, 'the reserve was kept');
    } finally {
      await rc.stop({ wipe: true });
      await hub.stop();
    }
  });
});
