// The tag freshness policy: TTL, HEAD revalidation, re-fetch on move, stale-if-error, persistence.
import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import { FakeHub } from '../testing/fake-registry.ts';
import { image, layer } from '../testing/fixtures.ts';
import { errorCode, fetchAll, startRegcache, type Harness } from '../testing/harness.ts';

const REPO = 'library/web';
const v1 = image({ layers: [layer(10_000, 21)], seed: 1 });
const v2 = image({ layers: [layer(10_000, 22)], seed: 2 });
const TTL_MS = 150;

describe('tag freshness', () => {
  let hub: FakeHub;
  let rc: Harness;
  const config = () => ({
    upstreams: [{ name: 'docker.io', url: hub.registryUrl, mirror: true, timeout: '1s' }],
    tags: { ttl: `${TTL_MS}ms` },
  });

  before(async () => {
    hub = await FakeHub.start();
    hub.addImage(REPO, undefined, v1);
    hub.addImage(REPO, undefined, v2);
  });
  after(async () => {
    await rc?.stop({ wipe: true });
    await hub.stop();
  });
  beforeEach(async () => {
    await rc?.stop({ wipe: true });
    hub.clearFaults();
    hub.remaining = hub.limit;
    hub.setTag(REPO, 'latest', v1.manifest.digest);
    rc = await startRegcache(config());
    await fetchAll(`${rc.url}/v2/web/manifests/latest`);
    hub.reset();
  });

  const expire = () => new Promise((r) => setTimeout(r, TTL_MS + 50));
  const manifestGets = () => hub.requests.filter((r) => r.server === 'registry' && r.method === 'GET' && r.path.includes('/manifests/') && r.authorization).length;
  const manifestHeads = () => hub.requests.filter((r) => r.server === 'registry' && r.method === 'HEAD' && r.path.includes('/manifests/') && r.authorization).length;

  it('revalidates an expired tag with one HEAD and no GET when the digest is unchanged', async () => {
    await expire();
    const before = hub.remaining;
    const r = await fetchAll(`${rc.url}/v2/web/manifests/latest`);
    assert.equal(r.headers['docker-content-digest'], v1.manifest.digest);
    assert.equal(manifestHeads(), 1);
    assert.equal(manifestGets(), 0);
    assert.equal(hub.remaining, before, 'revalidation spends no pull');
    assert.ok(rc.logs.some((l) => l['result'] === 'revalidated'));
  });

  it('fetches the new manifest by digest when the tag moved upstream', async () => {
    hub.setTag(REPO, 'latest', v2.manifest.digest);
    await expire();
    const r = await fetchAll(`${rc.url}/v2/web/manifests/latest`);
    assert.equal(r.headers['docker-content-digest'], v2.manifest.digest);
    assert.deepEqual(r.body, v2.manifest.data);
    assert.equal(manifestGets(), 1);
    assert.ok(hub.requests.some((q) => q.method === 'GET' && q.path.endsWith(`/manifests/${v2.manifest.digest}`)), 'fetched by digest, not by tag');
  });

  for (const [what, fault] of [
    ['429', { status: 429, headers: { 'retry-after': '30' }, body: 'Too Many Requests (HAP429).' }],
    ['503', { status: 503 }],
  ] as const) {
    it(`serves the cached answer stale when the upstream answers ${what}`, async () => {
      hub.fail({ match: (q) => q.path.includes('/manifests/'), ...fault });
      await expire();
      const r = await fetchAll(`${rc.url}/v2/web/manifests/latest`);
      assert.equal(r.status, 200);
      assert.deepEqual(r.body, v1.manifest.data);
      assert.ok(rc.logs.some((l) => l['msg'] === 'upstream trouble; serving stale tag'));
      const head = await fetchAll(`${rc.url}/v2/web/manifests/latest`, { method: 'HEAD' });
      assert.equal(head.headers['docker-content-digest'], v1.manifest.digest);
    });
  }

  it('serves stale when the upstream is unreachable, and the error when nothing is cached', async () => {
    await rc.stop();
    const dead = await startRegcache({ ...config(), upstreams: [{ name: 'docker.io', url: 'http://127.0.0.1:9', mirror: true, timeout: '1s' }] }, { root: rc.root });
    try {
      await expire();
      const r = await fetchAll(`${dead.url}/v2/web/manifests/latest`);
      assert.equal(r.status, 200, 'the tag record and manifest survived the restart and cover the outage');
      assert.equal(r.headers['docker-content-digest'], v1.manifest.digest);
      const miss = await fetchAll(`${dead.url}/v2/web/manifests/other`);
      assert.equal(miss.status, 503);
      assert.equal(errorCode(miss), 'UPSTREAM_UNAVAILABLE');
    } finally {
      await dead.stop();
    }
    rc = await startRegcache(config(), { root: rc.root });
  });

  it('forgets a tag that was deleted upstream', async () => {
    hub.setTag(REPO, 'gone', v1.manifest.digest);
    await fetchAll(`${rc.url}/v2/web/manifests/gone`);
    hub.fail({ match: (q) => q.path.endsWith('/manifests/gone'), status: 404, body: '{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}' });
    await expire();
    const r = await fetchAll(`${rc.url}/v2/web/manifests/gone`);
    assert.equal(r.status, 404);
    assert.equal(errorCode(r), 'MANIFEST_UNKNOWN');
  });

  it('makes one upstream exchange for 30 concurrent requests of an expired tag', async () => {
    hub.setTag(REPO, 'latest', v2.manifest.digest);
    await expire();
    const all = await Promise.all(Array.from({ length: 30 }, () => fetchAll(`${rc.url}/v2/web/manifests/latest`)));
    for (const r of all) assert.equal(r.headers['docker-content-digest'], v2.manifest.digest);
    assert.equal(manifestHeads(), 1);
    assert.equal(manifestGets(), 1);
  });

  it('treats Accept as a set: any order or split across headers gets the same answer', async () => {
    const a = await fetchAll(`${rc.url}/v2/web/manifests/latest`, { headers: { accept: 'application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json' } });
    const b = await fetchAll(`${rc.url}/v2/web/manifests/latest`, { headers: { accept: 'application/vnd.docker.distribution.manifest.v2+json;q=0.9, */*' } });
    assert.equal(a.headers['docker-content-digest'], b.headers['docker-content-digest']);
    assert.equal(a.headers['content-type'], 'application/vnd.docker.distribution.manifest.v2+json');
    assert.equal(hub.requests.length, 0);
  });
});
