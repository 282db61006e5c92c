// Faults on the client side and the upstream side that the pull-through tests do not cover:
// clients leaving mid-download, slow and fast clients on one blob, 5xx on blobs with recovery,
// and a 429 without Retry-After (Docker Hub's abuse limit answers text, not JSON).
import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import { request } from 'undici';
import { FakeHub } from '../testing/fake-registry.ts';
import { image, layer, sha256 } from '../testing/fixtures.ts';
import { errorCode, fetchAll, startRegcache, type Harness } from '../testing/harness.ts';

const MiB = 2 ** 20;

describe('faults', () => {
  let hub: FakeHub;
  let rc: Harness;

  before(async () => {
    hub = await FakeHub.start();
  });
  after(async () => {
    await rc?.stop({ wipe: true });
    await hub.stop();
  });
  beforeEach(async () => {
    await rc?.stop({ wipe: true });
    hub.clearFaults();
    rc = await startRegcache({ upstreams: [{ name: 'docker.io', url: hub.registryUrl, mirror: true, idleTimeout: '2s', timeout: '2s' }] });
  });

  it("keeps the shared download going when a client leaves: the other client gets every byte, and it is committed", async () => {
    const blob = layer(4 * MiB, 801);
    hub.addBlob(blob);
    hub.behave(blob.digest, { pauseAt: MiB });
    const leaving = await request(`${rc.url}/v2/library/app/blobs/${blob.digest}`);
    const staying = fetchAll(`${rc.url}/v2/library/app/blobs/${blob.digest}`);
    for await (const _ of leaving.body) break; // read a little, then hang up
    leaving.body.destroy();
    await new Promise((r) => setTimeout(r, 200));
    hub.behave(blob.digest, {});
    hub.release();
    assert.equal(sha256((await staying).body), blob.digest);
    assert.equal(hub.requests.filter((r) => r.server === 'cdn').length, 1, 'one upstream fetch for both');
    assert.ok(rc.app.index.has(blob.digest), 'committed');
  });

  it('finishes and keeps a download whose only client left (documented rule: the next session will want it)', async () => {
    const blob = layer(3 * MiB, 802);
    hub.addBlob(blob);
    hub.behave(blob.digest, { pauseAt: MiB });
    const only = await request(`${rc.url}/v2/library/app/blobs/${blob.digest}`);
    for await (const _ of only.body) break;
    only.body.destroy();
    hub.behave(blob.digest, {});
    hub.release();
    const deadline = Date.now() + 10_000;
    while (!rc.app.index.has(blob.digest)) {
      assert.ok(Date.now() < deadline, 'the abandoned download was committed');
      await new Promise((r) => setTimeout(r, 50));
    }
    const before = hub.requests.length;
    assert.equal(sha256((await fetchAll(`${rc.url}/v2/library/app/blobs/${blob.digest}`)).body), blob.digest);
    assert.equal(hub.requests.length, before, 'served from disk');
  });

  it('does not hold a fast client back behind a slow one on the same cold blob', async () => {
    const blob = layer(8 * MiB, 803);
    hub.addBlob(blob);
    // The slow client reads 64 KiB every 20 ms (about 3 MiB/s).
    const slowRes = await request(`${rc.url}/v2/library/app/blobs/${blob.digest}`, { highWaterMark: 64 * 1024 } as Parameters<typeof request>[1]);
    const slowChunks: Buffer[] = [];
    let slowBytes = 0;
    const slow = (async () => {
      for await (const chunk of slowRes.body) {
        slowChunks.push(chunk as Buffer);
        slowBytes += (chunk as Buffer).length;
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    await new Promise((r) => setTimeout(r, 50));
    const fast = await fetchAll(`${rc.url}/v2/library/app/blobs/${blob.digest}`);
    assert.equal(sha256(fast.body), blob.digest);
    assert.ok(slowBytes < blob.data.length / 2, `the fast client finished while the slow one had read ${slowBytes} of ${blob.data.length} bytes`);
    await slow;
    assert.equal(sha256(Buffer.concat(slowChunks)), blob.digest, 'the slow client got every byte too');
  });

  for (const status of [500, 502, 503]) {
    it(`answers an upstream ${status} on a blob with 503 UPSTREAM_UNAVAILABLE, stores nothing, and succeeds once the upstream recovers`, async () => {
      const blob = layer(100_000, 810 + status);
      hub.addBlob(blob);
      hub.fail({ match: (r) => r.path.includes(blob.digest), status, times: 1 });
      const failed = await fetchAll(`${rc.url}/v2/library/app/blobs/${blob.digest}`);
      assert.equal(failed.status, 503);
      assert.equal(errorCode(failed), 'UPSTREAM_UNAVAILABLE');
      assert.ok(!rc.app.index.has(blob.digest));
      assert.equal(sha256((await fetchAll(`${rc.url}/v2/library/app/blobs/${blob.digest}`)).body), blob.digest);
    });
  }

  it("passes on a 429 without Retry-After and with a text body (Docker Hub's abuse limit), then recovers", async () => {
    const img = image({ layers: [layer(1000, 820)], seed: 820 });
    hub.addImage('library/app', '9.9.9', img);
    hub.fail({ match: (r) => r.path.endsWith('/manifests/9.9.9'), status: 429, headers: { 'content-type': 'text/plain' }, body: 'Too Many Requests (HAP429).', times: 2 });
    const r = await fetchAll(`${rc.url}/v2/library/app/manifests/9.9.9`);
    assert.equal(r.status, 429);
    assert.equal(errorCode(r), 'TOOMANYREQUESTS');
    assert.equal(r.headers['retry-after'], undefined, 'no Retry-After invented');
    hub.clearFaults();
    assert.equal((await fetchAll(`${rc.url}/v2/library/app/manifests/9.9.9`)).status, 200);
  });
});
