// A bounded soak: 200 concurrent clients for SOAK_SECONDS (default 45) mixing manifest and blob
// hits and misses, with a quota small enough to evict all the time, against regcache running as
// its own process in front of the fake Docker Hub. Every body is verified; the only errors allowed
// are the intended 404s; the daemon's open files and memory must not grow past a bound.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Agent, request } from 'undici';
import { FakeHub } from '../testing/fake-registry.ts';
import { image, layer, sha256, type Image } from '../testing/fixtures.ts';
import { rssMiB } from '../testing/process-memory.ts';
import { freePort } from '../testing/registry-process.ts';

const SECONDS = Number(process.env['SOAK_SECONDS'] ?? 45);
const CLIENTS = 200;
const MAIN = new URL('../main.ts', import.meta.url).pathname;

async function fds(pid: number): Promise<number> {
  return (await readdir(`/proc/${pid}/fd`)).length;
}

describe('soak', () => {
  let hub: FakeHub;
  let scratch: string;
  let child: ChildProcess;
  let url: string;
  const images: Image[] = [];

  before(async () => {
    hub = await FakeHub.start();
    hub.limit = hub.remaining = 1e9;
    for (let i = 0; i < 30; i++) {
      const img = image({ layers: [layer(64 * 1024 + ((i * 37_000) % (448 * 1024)), 900 + i), layer(32 * 1024, 950 + i)], seed: 900 + i });
      images.push(img);
      hub.addImage(`library/app${i}`, '1.0.0', img);
    }
    scratch = await mkdtemp(join(tmpdir(), 'regcache-soak-'));
    const port = await freePort();
    url = `http://127.0.0.1:${port}`;
    const config = join(scratch, 'regcache.yaml');
    await writeFile(config, [
      `listen: 127.0.0.1:${port}`,
      `storage: {root: ${join(scratch, 'data')}, quota: 4MiB}`,
      `upstreams: [{name: docker.io, url: "${hub.registryUrl}", mirror: true, connections: 32}]`,
      'tags: {ttl: 2s}',
      'log: {level: warn}',
    ].join('\n'));
    child = spawn(process.execPath, [MAIN, '--config', config], { stdio: ['ignore', 'ignore', 'inherit'] });
    const deadline = Date.now() + 20_000;
    for (;;) {
      try {
        if ((await fetch(`${url}/readyz`)).ok) break;
      } catch {
        // not up yet
      }
      assert.ok(Date.now() < deadline, 'regcache started');
      await new Promise((r) => setTimeout(r, 50));
    }
  });
  after(async () => {
    if (child.exitCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    }
    await hub.stop();
    await rm(scratch, { recursive: true, force: true });
  });

  it(`serves ${CLIENTS} concurrent clients for ${SECONDS} s under constant eviction with only intended errors and bounded fds and memory`, { timeout: (SECONDS + 120) * 1000 }, async () => {
    const baselineFds = await fds(child.pid!);
    const agent = new Agent({ connections: CLIENTS, keepAliveTimeout: 5_000 });
    const counts = { manifests: 0, blobs: 0, bytes: 0, notFound: 0, errors: [] as string[] };
    let seed = 7;
    const rand = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
    const end = Date.now() + SECONDS * 1000;
    const samples: Array<{ t: number; fds: number; rss: number }> = [];
    const heap: string[] = [];
    const heapSampler = setInterval(() => {
      void fetch(`${url}/metrics`).then((r) => r.text()).then((t) => {
        const v = (n: string) => (Number(new RegExp(`^${n} (\\S+)`, 'm').exec(t)?.[1] ?? 0) / 2 ** 20).toFixed(0);
        heap.push(`${v('nodejs_heap_size_used_bytes')}/${v('nodejs_heap_size_total_bytes')}/${v('nodejs_external_memory_bytes')}`);
      }).catch(() => undefined);
    }, 10_000);
    const sampler = setInterval(() => {
      void Promise.all([fds(child.pid!), rssMiB(child.pid!)]).then(([f, r]) => samples.push({ t: Date.now(), fds: f, rss: r })).catch(() => undefined);
    }, 1000);

    const client = async (): Promise<void> => {
      while (Date.now() < end) {
        const i = Math.floor(rand() * images.length);
        const img = images[i]!;
        try {
          if (rand() < 0.05) {
            const miss = await request(`${url}/v2/app${i}/manifests/no-such-tag`, { method: 'HEAD', dispatcher: agent });
            await miss.body.dump();
            if (miss.statusCode === 404) counts.notFound++;
            else counts.errors.push(`HEAD missing tag → ${miss.statusCode}`);
            continue;
          }
          const head = await request(`${url}/v2/app${i}/manifests/1.0.0`, { method: 'HEAD', dispatcher: agent });
          await head.body.dump();
          if (head.statusCode !== 200 || head.headers['docker-content-digest'] !== img.manifest.digest) throw new Error(`HEAD tag → ${head.statusCode}`);
          const m = await request(`${url}/v2/app${i}/manifests/${img.manifest.digest}`, { dispatcher: agent });
          const body = Buffer.from(await m.body.arrayBuffer());
          if (m.statusCode !== 200 || sha256(body) !== img.manifest.digest) throw new Error(`GET manifest → ${m.statusCode}`);
          counts.manifests++;
          const b = img.blobs[Math.floor(rand() * img.blobs.length)]!;
          const r = await request(`${url}/v2/app${i}/blobs/${b.digest}`, { dispatcher: agent });
          const data = Buffer.from(await r.body.arrayBuffer());
          if (r.statusCode !== 200 || sha256(data) !== b.digest) throw new Error(`GET blob → ${r.statusCode}, ${data.length} bytes`);
          counts.blobs++;
          counts.bytes += data.length;
        } catch (err) {
          counts.errors.push((err as Error).message);
        }
      }
    };
    await Promise.all(Array.from({ length: CLIENTS }, client));
    clearInterval(sampler);
    clearInterval(heapSampler);

    await agent.close();
    await new Promise((r) => setTimeout(r, 1_500)); // keep-alive sockets close
    const settled = { fds: await fds(child.pid!), rss: await rssMiB(child.pid!) };

    const metrics = await (await fetch(`${url}/metrics`)).text();
    const evictions = [...metrics.matchAll(/^regcache_evictions_total\{[^}]*\} (\d+)/gm)].reduce((n, m) => n + Number(m[1]), 0);
    const peakRss = Math.max(...samples.map((s) => s.rss));
    const peakFds = Math.max(...samples.map((s) => s.fds));
    console.log(`soak: ${counts.manifests} manifests, ${counts.blobs} blobs (${(counts.bytes / 2 ** 20).toFixed(0)} MiB) verified, ${counts.notFound} intended 404s, ${evictions} evictions; ` +
      `fds baseline ${baselineFds}, peak ${peakFds}, after ${settled.fds}; RSS peak ${peakRss.toFixed(0)} MiB, after ${settled.rss.toFixed(0)} MiB; ` +
      `RSS every 10 s: ${samples.filter((_, k) => k % 10 === 0).map((x) => x.rss.toFixed(0)).join(' ')}; ` +
      `JS heap used/total/external MiB every 10 s: ${heap.join(' ')}`);

    assert.deepEqual(counts.errors.slice(0, 5), [], `${counts.errors.length} unintended errors`);
    assert.ok(counts.blobs > 1000 && counts.notFound > 0, 'the load ran');
    assert.ok(evictions > 0, 'the quota forced evictions throughout');
    // Per client at most its socket and one open blob file, plus upstream connections.
    assert.ok(peakFds < baselineFds + 2 * CLIENTS + 100, `open files bounded: peak ${peakFds} (baseline ${baselineFds})`);
    // Upstream keep-alive connections may stay open a while; blob files and client sockets must not.
    assert.ok(settled.fds < baselineFds + 80, `no file descriptor leak: ${settled.fds} open after the clients left (baseline ${baselineFds})`);
    assert.ok(peakRss < 512, `memory bounded: peak RSS ${peakRss.toFixed(0)} MiB`);
    // RSS climbs while allocator arenas and V8's heap size up to the load (measured here: 150 → 310
    // MiB in the first 30 s), then plateaus (+30 MiB over the next 60 s, with the JS heap used
    // oscillating 25–90 MiB). A leak would keep climbing through the second half.
    const mid = samples[Math.floor(samples.length / 2)]!;
    assert.ok(settled.rss - mid.rss < 64, `no memory growth in the second half: ${mid.rss.toFixed(0)} → ${settled.rss.toFixed(0)} MiB`);
  });
});
