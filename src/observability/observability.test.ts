// What operators watch: the rate-limit headroom probe, a separate metrics port, readiness that
// reflects the store, and the access log's fields.
import assert from 'node:assert/strict';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { FakeHub } from '../testing/fake-registry.ts';
import { image, layer } from '../testing/fixtures.ts';
import { fetchAll, startRegcache } from '../testing/harness.ts';

const metricValue = (text: string, series: string): number | undefined => {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
};

describe('observability', () => {
  it('refreshes the pull-budget gauges with a free HEAD of the rate-limit preview manifest', async () => {
    const hub = await FakeHub.start();
    hub.addImage('ratelimitpreview/test', 'latest', image({ layers: [layer(100, 1)], seed: 1 }));
    hub.limit = 200;
    hub.remaining = 137;
    const rc = await startRegcache({ upstreams: [{ name: 'docker.io', url: hub.registryUrl, mirror: true, headroomProbe: '200ms' }] });
    try {
      const series = 'regcache_upstream_ratelimit_remaining{upstream="docker.io"}';
      const deadline = Date.now() + 5_000;
      let text = '';
      while (metricValue(text, series) === undefined && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 100));
        text = await (await fetch(`${rc.url}/metrics`)).text();
      }
      assert.equal(metricValue(text, series), 137);
      assert.equal(metricValue(text, 'regcache_upstream_ratelimit_limit{upstream="docker.io"}'), 200);
      assert.equal(metricValue(text, 'regcache_upstream_ratelimit_window_seconds{upstream="docker.io"}'), 21_600);
      await new Promise((r) => setTimeout(r, 500));
      assert.ok(hub.count('registry', 'HEAD', /ratelimitpreview\/test\/manifests\/latest/) >= 2, 'probed repeatedly');
      assert.equal(hub.count('registry', 'GET', /\/manifests\//), 0, 'never a manifest GET');
      assert.equal(hub.remaining, 137, 'no pull spent');
    } finally {
      await rc.stop({ wipe: true });
      await hub.stop();
    }
  });

  it('leaves the rate-limit gauges unset (not zero) while the upstream sends no headers', async () => {
    const hub = await FakeHub.start();
    hub.rateLimitHeaders = false;
    hub.addImage('library/app', '1.0.0', image({ layers: [layer(100, 2)], seed: 2 }));
    const rc = await startRegcache({ upstreams: [{ name: 'docker.io', url: hub.registryUrl, mirror: true }] });
    try {
      assert.equal((await fetchAll(`${rc.url}/v2/app/manifests/1.0.0`)).status, 200);
      const text = await (await fetch(`${rc.url}/metrics`)).text();
      assert.doesNotMatch(text, /^regcache_upstream_ratelimit_remaining\{/m);
      assert.match(text, /^# TYPE regcache_upstream_ratelimit_remaining gauge/m);
    } finally {
      await rc.stop({ wipe: true });
      await hub.stop();
    }
  });

  it('serves /metrics on metrics.listen only, when set', async () => {
    const rc = await startRegcache({ metrics: { listen: '127.0.0.1:0' } });
    try {
      const address = rc.app.metricsAddress();
      assert.ok(address);
      const res = await fetch(`http://127.0.0.1:${address.port}/metrics`);
      assert.equal(res.status, 200);
      assert.match(await res.text(), /regcache_requests_total/);
      assert.equal((await fetch(`http://127.0.0.1:${address.port}/v2/`)).status, 404, 'only metrics there');
      assert.equal((await fetchAll(`${rc.url}/metrics`)).status, 404, 'not on the main port');
    } finally {
      await rc.stop({ wipe: true });
    }
  });

  it('reports not ready while the store cannot take writes, and ready again once it can', async () => {
    const rc = await startRegcache({});
    try {
      assert.equal((await fetchAll(`${rc.url}/readyz`)).status, 200);
      await rm(join(rc.root, 'tmp'), { recursive: true, force: true });
      await new Promise((r) => setTimeout(r, 2_100)); // past the readiness cache
      const down = await fetchAll(`${rc.url}/readyz`);
      assert.equal(down.status, 503);
      assert.match(down.body.toString(), /storage not writable/);
      assert.equal((await fetchAll(`${rc.url}/healthz`)).status, 200, 'alive all the same');
      await mkdir(join(rc.root, 'tmp'));
      await new Promise((r) => setTimeout(r, 2_100));
      assert.equal((await fetchAll(`${rc.url}/readyz`)).status, 200);
    } finally {
      await rc.stop({ wipe: true });
    }
  });

  it('logs one line per request with method, path, status, bytes, duration, result, upstream and scope; upstream calls at debug', async () => {
    const hub = await FakeHub.start();
    const img = image({ layers: [layer(50_000, 3)], seed: 3 });
    hub.addImage('library/app', 'latest', img);
    const rc = await startRegcache({ upstreams: [{ name: 'docker.io', url: hub.registryUrl, mirror: true }], log: { level: 'debug' } });
    try {
      await fetchAll(`${rc.url}/v2/ws/ws1/docker.io/library/app/manifests/latest`);
      await fetchAll(`${rc.url}/v2/app/blobs/${img.layers[0]!.digest}`);
      const lines = rc.logs.filter((l) => l['msg'] === 'request');
      const manifest = lines.find((l) => String(l['url']).includes('/manifests/latest'))!;
      assert.equal(manifest['scope'], 'ws1');
      assert.equal(manifest['upstream'], 'docker.io');
      assert.equal(manifest['status'], 200);
      assert.equal(manifest['method'], 'GET');
      assert.equal(manifest['result'], 'miss');
      assert.equal(typeof manifest['ms'], 'number');
      const blob = lines.find((l) => String(l['url']).includes('/blobs/'))!;
      assert.ok(Number(blob['bytes']) >= 50_000, `bytes on the wire: ${blob['bytes']}`);
      assert.equal(blob['digest'], img.layers[0]!.digest);
      const upstreamCalls = rc.logs.filter((l) => l['msg'] === 'upstream request');
      assert.ok(upstreamCalls.length >= 2 && upstreamCalls.every((l) => l['level'] === 'debug' && typeof l['status'] === 'number'));
      assert.doesNotMatch(rc.logText(), /Bearer [A-Za-z0-9]/, 'no tokens in logs');
    } finally {
      await rc.stop({ wipe: true });
      await hub.stop();
    }
  });
});
