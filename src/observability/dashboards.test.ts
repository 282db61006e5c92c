// The Grafana dashboards work against a real Prometheus: Debian's prometheus scrapes a regcache that
// served pulls through the fake Docker Hub (hits, misses, dedup joins, a 429, a 503, evictions,
// pins), then every panel query and template variable is evaluated through Prometheus's HTTP API
// and must succeed with at least one series. A scrape must also pass `promtool check metrics`.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { FakeHub } from '../testing/fake-registry.ts';
import { image, layer, sha256 } from '../testing/fixtures.ts';
import { fetchAll, startRegcache, type Harness } from '../testing/harness.ts';
import { freePort } from '../testing/registry-process.ts';

const dir = join(import.meta.dirname, '..', '..', 'dashboards');
const installed = existsSync('/usr/bin/prometheus') && existsSync('/usr/bin/promtool');
// CI installs Prometheus (.ci/run): there, a missing binary is a failure, not a skip.
const skip = installed || process.env['CI'] ? false : 'needs Debian\'s prometheus package (installed by .ci/run)';

interface Panel {
  id: number;
  type: string;
  title: string;
  datasource?: { uid?: string };
  gridPos: { x: number; y: number; w: number; h: number };
  targets?: Array<{ expr: string; refId: string; datasource?: { uid?: string } }>;
}
interface Dashboard {
  title: string;
  uid: string;
  panels: Panel[];
  templating: { list: Array<{ name: string; type: string; query: unknown }> };
}

const dashboards = async (): Promise<Array<{ file: string; dash: Dashboard }>> => {
  const files = (await readdir(dir)).filter((f) => f.endsWith('.json'));
  return Promise.all(files.map(async (file) => ({ file, dash: JSON.parse(await readFile(join(dir, file), 'utf8')) as Dashboard })));
};

/** Grafana's macros and this dashboard's variables, as Grafana would expand them for "All". */
function expand(expr: string): string {
  return expr
    .replaceAll('$__rate_interval', '1m')
    .replaceAll('$__interval', '15s')
    .replaceAll('$__range', '5m')
    .replace(/\$\{?(upstream|job)\}?/g, '.*');
}

describe('Grafana dashboards', () => {
  it('are Grafana JSON models with the data source as a variable, unique ids and a 24-column grid', async () => {
    const all = await dashboards();
    assert.ok(all.length >= 1);
    for (const { file, dash } of all) {
      assert.ok(dash.uid && dash.title, file);
      assert.ok(dash.templating.list.some((v) => v.type === 'datasource' && v.name === 'datasource'), `${file}: a datasource variable`);
      const ids = dash.panels.map((p) => p.id);
      assert.equal(new Set(ids).size, ids.length, `${file}: unique panel ids`);
      for (const p of dash.panels) {
        assert.ok(p.gridPos.x + p.gridPos.w <= 24, `${file}: ${p.title} fits the grid`);
        if (p.type === 'row') continue;
        assert.equal(p.datasource?.uid, '${datasource}', `${file}: ${p.title} uses the datasource variable`);
        assert.ok(p.targets && p.targets.length > 0, `${file}: ${p.title} has queries`);
        for (const t of p.targets) assert.doesNotMatch(t.expr, /\{[^}]*\b(repo|repository|tag|digest|scope)=/, `${file}: ${p.title} uses no unbounded labels`);
      }
    }
  });
});

describe('dashboards against a real Prometheus', { skip }, () => {
  let scratch: string;
  let hub: FakeHub;
  let rc: Harness;
  let prometheus: ChildProcess | undefined;
  let promUrl: string;

  before(async () => {
    scratch = await mkdtemp(join(tmpdir(), 'regcache-prometheus-'));
    hub = await FakeHub.start();
    rc = await startRegcache(
      { upstreams: [{ name: 'docker.io', url: hub.registryUrl, mirror: true }], storage: { quota: '1MiB' }, log: { level: 'warn' } },
      { defaultMetrics: true },
    );
    await traffic(hub, rc);

    const port = await freePort();
    promUrl = `http://127.0.0.1:${port}`;
    await writeFile(join(scratch, 'prometheus.yml'), [
      'global:',
      '  scrape_interval: 1s',
      '  evaluation_interval: 1s',
      'scrape_configs:',
      '  - job_name: regcache',
      '    static_configs:',
      `      - targets: ['${new URL(rc.url).host}']`,
    ].join('\n'));
    prometheus = spawn('prometheus', [
      `--config.file=${join(scratch, 'prometheus.yml')}`,
      `--storage.tsdb.path=${join(scratch, 'tsdb')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--web.enable-lifecycle',
    ], { stdio: 'ignore' });
    // Ready, and at least three scrapes in: enough samples for rate() and increase().
    const deadline = Date.now() + 60_000;
    for (;;) {
      assert.ok(Date.now() < deadline && prometheus.exitCode === null, 'Prometheus did not scrape regcache in time');
      const r = await query('count_over_time(up{job="regcache"}[1m])').catch(() => undefined);
      if (r && r.length > 0 && Number(r[0]!.value[1]) >= 3) break;
      await new Promise((res) => setTimeout(res, 500));
    }
    // A little traffic between scrapes, so rates have something to show.
    await traffic(hub, rc);
    await new Promise((res) => setTimeout(res, 2_500));
  });
  after(async () => {
    if (prometheus && prometheus.exitCode === null) {
      const exited = new Promise((r) => prometheus?.once('exit', r));
      prometheus.kill('SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
      if (prometheus.exitCode === null) prometheus.kill('SIGKILL');
    }
    await rc?.stop({ wipe: true });
    await hub?.stop();
    await rm(scratch, { recursive: true, force: true });
  });

  async function query(expr: string): Promise<Array<{ metric: Record<string, string>; value: [number, string] }>> {
    const res = await fetch(`${promUrl}/api/v1/query?query=${encodeURIComponent(expr)}`);
    const body = (await res.json()) as { status: string; error?: string; data?: { result: Array<{ metric: Record<string, string>; value: [number, string] }> } };
    if (body.status !== 'success') throw new Error(`${expr}: ${body.error}`);
    return body.data!.result;
  }

  it('answers every panel query with at least one series', async () => {
    let checked = 0;
    for (const { file, dash } of await dashboards()) {
      for (const p of dash.panels) {
        for (const t of p.targets ?? []) {
          const expr = expand(t.expr);
          const result = await query(expr);
          assert.ok(result.length > 0, `${file}: panel "${p.title}" (${t.refId}) returned no series: ${expr}`);
          checked++;
        }
      }
    }
    assert.ok(checked >= 25, `${checked} queries checked`);
  });

  it('shows what the traffic did: hits and misses, a dedup join, the 429, evictions, the pin, the pull budget', async () => {
    const value = async (expr: string) => Number((await query(expr))[0]?.value[1] ?? NaN);
    assert.ok((await value('sum(regcache_requests_total{result="hit"})')) > 0);
    assert.ok((await value('sum(regcache_requests_total{result="miss"})')) > 0);
    assert.ok((await value('regcache_dedup_joins_total')) >= 1);
    assert.ok((await value('sum(regcache_upstream_throttled_total)')) >= 1);
    assert.ok((await value('sum(regcache_upstream_requests_total{status="503"})')) >= 1);
    assert.ok((await value('sum(regcache_evictions_total)')) >= 1);
    assert.equal(await value('regcache_pins'), 1);
    assert.equal(await value('regcache_upstream_ratelimit_remaining{upstream="docker.io"}'), hub.remaining);
    assert.equal(await value('regcache_upstream_ratelimit_limit{upstream="docker.io"}'), hub.limit);
  });

  it('resolves every template variable query', async () => {
    for (const { file, dash } of await dashboards()) {
      for (const v of dash.templating.list.filter((x) => x.type === 'query')) {
        const q = typeof v.query === 'string' ? v.query : (v.query as { query: string }).query;
        const m = /^label_values\((\w+),\s*(\w+)\)$/.exec(q);
        assert.ok(m, `${file}: variable ${v.name} is a label_values() query`);
        const res = await fetch(`${promUrl}/api/v1/label/${m[2]}/values?match[]=${encodeURIComponent(m[1]!)}`);
        const body = (await res.json()) as { data: string[] };
        assert.ok(body.data.length > 0, `${file}: variable ${v.name} has values`);
      }
    }
  });

  it('exports metrics that pass promtool check metrics', async () => {
    const text = await (await fetch(`${rc.url}/metrics`)).text();
    const child = spawn('promtool', ['check', 'metrics'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    child.stdin.end(text);
    const code = await new Promise<number | null>((res) => child.once('exit', res));
    assert.equal(code, 0, out);
    assert.equal(out.trim(), '', `promtool found problems:\n${out}`);
  });
});

/** Pulls through regcache that exercise every panel: misses, hits, a dedup join, a 429, a 503, evictions, a pin. */
async function traffic(hub: FakeHub, rc: Harness): Promise<void> {
  const seed = Math.floor(Math.random() * 1e6);
  const big = image({ layers: [layer(400 * 1024, seed), layer(400 * 1024, seed + 1)], seed });
  hub.addImage('library/web', `1.0.${seed}`, big);
  hub.addImage('library/web', 'latest', big);
  assert.equal((await fetchAll(`${rc.url}/v2/ws/ws1/library/web/manifests/latest`)).status, 200); // pinned in ws1
  // Two clients asking for one blob while the upstream is mid-transfer: one fetch, one join.
  const layer0 = big.layers[0]!;
  hub.behave(layer0.digest, { pauseAt: 1024 });
  const first = fetchAll(`${rc.url}/v2/web/blobs/${layer0.digest}`);
  const deadline = Date.now() + 10_000;
  while (!hub.requests.some((r) => r.server === 'cdn' && r.path.includes(layer0.digest))) {
    assert.ok(Date.now() < deadline, 'the upstream blob transfer started');
    await new Promise((r) => setTimeout(r, 20));
  }
  await new Promise((r) => setTimeout(r, 100)); // the transfer is now held at 1 KiB
  const second = fetchAll(`${rc.url}/v2/web/blobs/${layer0.digest}`);
  await new Promise((r) => setTimeout(r, 200));
  hub.behave(layer0.digest, {});
  hub.release();
  for (const r of await Promise.all([first, second])) assert.equal(sha256(r.body), layer0.digest);
  for (const b of big.blobs) assert.equal(sha256((await fetchAll(`${rc.url}/v2/web/blobs/${b.digest}`)).body), b.digest); // hits (and one miss)
  assert.equal((await fetchAll(`${rc.url}/v2/web/manifests/1.0.${seed}`)).status, 200);
  assert.equal((await fetchAll(`${rc.url}/v2/web/manifests/1.0.${seed}`)).status, 200);
  // The upstream throttles once and fails once.
  hub.fail({ match: (r) => r.path.includes('/manifests/throttled'), status: 429, body: '{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}', headers: { 'retry-after': '60' }, times: 2 });
  hub.fail({ match: (r) => r.path.includes('/manifests/broken'), status: 503, times: 2 });
  await fetchAll(`${rc.url}/v2/web/manifests/throttled`);
  await fetchAll(`${rc.url}/v2/web/manifests/broken`);
  await rc.app.index.evictIfNeeded();
}
