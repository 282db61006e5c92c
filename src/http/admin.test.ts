// The admin API and CLI: auth, listing, deleting and online garbage collection.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { toRequest } from '../cli/admin.ts';
import { FakeHub } from '../testing/fake-registry.ts';
import { image, layer, sha256 } from '../testing/fixtures.ts';
import { errorCode, fetchAll, startRegcache, type Harness } from '../testing/harness.ts';

const run = promisify(execFile);
const TOKEN = 'admin-token-for-tests-0123456789';
const MAIN = new URL('../main.ts', import.meta.url).pathname;

const web = image({ layers: [layer(200_000, 61), layer(100_000, 62)], seed: 61 });
const api = image({ layers: [layer(150_000, 63)], seed: 63 });
const loose = layer(300_000, 64);
const slow = layer(2 * 2 ** 20, 65);

describe('admin API', () => {
  let hub: FakeHub;
  let rc: Harness;
  const admin = (method: 'GET' | 'POST' | 'DELETE', path: string, token = TOKEN) =>
    fetchAll(`${rc.url}/admin/v1/${path}`, { method, headers: token ? { authorization: `Bearer ${token}` } : {} });
  const body = (r: { body: Buffer }) => JSON.parse(r.body.toString('utf8')) as Record<string, unknown>;
  const pull = async (repo: string, tag: string, img: typeof web) => {
    await fetchAll(`${rc.url}/v2/${repo}/manifests/${tag}`);
    for (const b of img.blobs) await fetchAll(`${rc.url}/v2/${repo}/blobs/${b.digest}`);
  };

  before(async () => {
    hub = await FakeHub.start();
    hub.addImage('library/web', '1.0', web);
    hub.addImage('library/web', 'latest', web);
    hub.addImage('team/api', '2.0', api);
    hub.addBlob(loose);
    hub.addBlob(slow);
    rc = await startRegcache({ upstreams: [{ name: 'docker.io', url: hub.registryUrl, mirror: true }], admin: { token: TOKEN } });
    await pull('web', '1.0', web);
    await pull('web', 'latest', web);
    await pull('team/api', '2.0', api);
    await fetchAll(`${rc.url}/v2/web/blobs/${loose.digest}`);
  });
  after(async () => {
    await rc?.stop({ wipe: true });
    await hub.stop();
  });

  it('is disabled (404) unless admin.token is configured', async () => {
    const off = await startRegcache({ upstreams: [{ name: 'docker.io', url: hub.registryUrl, mirror: true }] });
    try {
      const r = await fetchAll(`${off.url}/admin/v1/storage`, { headers: { authorization: `Bearer ${TOKEN}` } });
      assert.equal(r.status, 404);
      assert.equal(errorCode(r), 'NOT_FOUND');
    } finally {
      await off.stop({ wipe: true });
    }
  });

  it('answers 401 without a token and 403 with a wrong one, on every endpoint', async () => {
    const endpoints: Array<['GET' | 'POST' | 'DELETE', string]> = [
      ['GET', 'storage'], ['GET', 'repositories'], ['GET', 'repositories/docker.io/library/web/tags'],
      ['DELETE', 'repositories/docker.io/library/web/tags/1.0'], ['DELETE', 'repositories/docker.io/library/web'],
      ['DELETE', `manifests/${web.manifest.digest}`], ['POST', 'gc'],
    ];
    for (const [method, path] of endpoints) {
      const none = await admin(method, path, '');
      assert.equal(none.status, 401, `${method} ${path}`);
      assert.equal(errorCode(none), 'UNAUTHORIZED');
      assert.match(String(none.headers['www-authenticate']), /^Bearer /);
      const wrong = await admin(method, path, 'not-the-admin-token-000000');
      assert.equal(wrong.status, 403, `${method} ${path}`);
      assert.equal(errorCode(wrong), 'DENIED');
    }
    assert.equal((await fetchAll(`${rc.url}/v2/web/manifests/1.0`)).status, 200, 'nothing was deleted by refused calls');
  });

  it('summarises storage', async () => {
    const s = body(await admin('GET', 'storage'));
    const expected = [...web.blobs, ...api.blobs, loose].reduce((n, b) => n + b.data.length, 0) + web.manifest.data.length + api.manifest.data.length;
    assert.equal(s['bytes'], expected);
    assert.equal(s['manifests'], 2);
    assert.equal(s['blobs'], web.blobs.length + api.blobs.length + 1);
    assert.equal(s['quotaBytes'], null);
  });

  it('lists cached repositories and their tags with digest, size and last access', async () => {
    const repos = body(await admin('GET', 'repositories'))['repositories'];
    assert.deepEqual(repos, [
      { upstream: 'docker.io', name: 'library/web', tags: 2 },
      { upstream: 'docker.io', name: 'team/api', tags: 1 },
    ]);
    const tags = body(await admin('GET', 'repositories/docker.io/library/web/tags'))['tags'] as Array<Record<string, unknown>>;
    assert.deepEqual(tags.map((t) => t['tag']), ['1.0', 'latest']);
    assert.equal(tags[0]?.['digest'], web.manifest.digest);
    assert.equal(tags[0]?.['size'], web.manifest.data.length);
    assert.equal(tags[0]?.['stored'], true);
    assert.ok(!Number.isNaN(Date.parse(String(tags[0]?.['lastAccess']))));
    assert.equal((await admin('GET', 'repositories/docker.io/library/nope/tags')).status, 404);
  });

  it('deletes a cached tag, so the next pull asks the upstream again', async () => {
    const r = await admin('DELETE', 'repositories/docker.io/library/web/tags/latest');
    assert.equal(r.status, 200);
    assert.equal((await admin('DELETE', 'repositories/docker.io/library/web/tags/latest')).status, 404);
    hub.reset();
    await fetchAll(`${rc.url}/v2/web/manifests/latest`);
    assert.equal(hub.requests.filter((q) => q.server === 'registry' && q.method === 'HEAD' && q.authorization).length, 1);
  });

  it('collects blobs no stored manifest references, and keeps referenced and in-flight ones', async () => {
    hub.behave(slow.digest, { pauseAt: 2 ** 20 });
    const inflight = fetchAll(`${rc.url}/v2/web/blobs/${slow.digest}`);
    await new Promise((r) => setTimeout(r, 150));
    const report = body(await admin('POST', 'gc'));
    assert.equal(report['removed'], 1, 'only the loose blob is unreferenced');
    assert.equal(report['freedBytes'], loose.data.length);
    hub.release();
    assert.equal(sha256((await inflight).body), slow.digest);
    const s = body(await admin('GET', 'storage'));
    assert.equal(s['blobs'], web.blobs.length + api.blobs.length + 1, 'web and api blobs kept; the in-flight one committed');
  });

  it('deletes a manifest and the tags pointing at it', async () => {
    const r = body(await admin('DELETE', `manifests/${api.manifest.digest}`));
    assert.deepEqual(r, { removed: true, tags: 1 });
    assert.equal((await admin('DELETE', `manifests/${api.manifest.digest}`)).status, 404);
    const gc = body(await admin('POST', 'gc'));
    assert.equal(gc['removed'], api.blobs.length + 1, 'api blobs and the slow blob are now unreferenced');
  });

  it('deletes a repository: its tags and the manifests only it used', async () => {
    const r = body(await admin('DELETE', 'repositories/docker.io/library/web'));
    assert.deepEqual(r, { tags: 2, manifests: 1 });
    assert.deepEqual(body(await admin('GET', 'repositories'))['repositories'], []);
    const gc = body(await admin('POST', 'gc'));
    assert.equal(gc['removed'], web.blobs.length);
    assert.equal(body(await admin('GET', 'storage'))['bytes'], 0);
    const again = await fetchAll(`${rc.url}/v2/web/blobs/${web.layers[0]?.digest}`);
    assert.equal(sha256(again.body), web.layers[0]?.digest, 'a collected blob is fetched again on demand');
  });

  it('drives the same API from the command line', async () => {
    const ok = await run(process.execPath, [MAIN, 'admin', 'storage', '--url', rc.url, '--token', TOKEN]);
    assert.equal(typeof (JSON.parse(ok.stdout) as { bytes: unknown }).bytes, 'number');
    await assert.rejects(run(process.execPath, [MAIN, 'admin', 'gc', '--url', rc.url, '--token', 'wrong-token-000000000000']), (e: { code?: number; stderr?: string }) => e.code === 1 && /DENIED/.test(e.stderr ?? ''));
    await assert.rejects(run(process.execPath, [MAIN, 'admin', 'bogus']), (e: { code?: number }) => e.code === 2);
    assert.deepEqual(toRequest(['delete-tag', 'docker.io/library/web:1.0']), { method: 'DELETE', path: '/admin/v1/repositories/docker.io/library/web/tags/1.0' });
    assert.deepEqual(toRequest(['gc']), { method: 'POST', path: '/admin/v1/gc' });
    assert.deepEqual(toRequest(['scopes']), { method: 'GET', path: '/admin/v1/scopes' });
    assert.deepEqual(toRequest(['scopes', 'ws1']), { method: 'GET', path: '/admin/v1/scopes/ws1' });
    assert.deepEqual(toRequest(['pin', 'ws1', 'nginx:latest', 'ghcr.io/org/app:main']), { method: 'POST', path: '/admin/v1/scopes/ws1/pins', body: { refs: ['nginx:latest', 'ghcr.io/org/app:main'] } });
    assert.deepEqual(toRequest(['release', 'ws1']), { method: 'DELETE', path: '/admin/v1/scopes/ws1' });
    assert.deepEqual(toRequest(['release', 'ws1', 'docker.io/library/nginx:latest']), { method: 'DELETE', path: '/admin/v1/scopes/ws1/pins/docker.io/library/nginx:latest' });
    assert.throws(() => toRequest(['pin', 'ws1']), /at least one image reference/);
    assert.throws(() => toRequest(['release', 'ws1', 'nginx']), /expected <upstream>\/<repo>:<tag>/);
    assert.throws(() => toRequest(['delete-tag', 'no-tag-here']));
  });
});
