// A workshop day, replayed against the fake Docker Hub (token realm, ratelimit headers, 429 when the
// budget is spent, 307 to a CDN) through regcache with workshop scopes, through regcache without
// scopes, and through distribution's proxy (what Educates deploys today), all on 127.0.0.1:
//   - workshops with sessions arriving in bursts of 10, each session pulling the workshop's images
//     the way dockerd does (HEAD the tag, GET the manifest by digest, GET config and layers);
//   - mid-day two floating tags move upstream; later the upstream is unreachable for a burst, and
//     later still the pull budget runs low for a burst.
// Reports, side by side: pulls charged by the upstream, HEADs, upstream blob GETs and bytes against
// the floor (distinct manifests and distinct blob bytes), client-visible failures, sessions of a
// workshop that ran a different digest for the same tag, versions stored, pull time per session.
// Writes bench/results/workshop-day.json and a table into bench/README.md. --quick: a small day
// (CI smoke test of the harness; asserts nothing about the figures).
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { FakeHub } from '../src/testing/fake-registry.ts';
import { image, layer, sha256, type Image } from '../src/testing/fixtures.ts';
import { DAEMON_NODE_FLAGS } from '../src/testing/daemon-flags.ts';
import { RegistryProcess, freePort } from '../src/testing/registry-process.ts';

const quick = process.argv.includes('--quick');
const WORKSHOPS = quick ? 2 : 3;
const SESSIONS = quick ? 20 : 40;
const BURST = 10;
const GAP_MS = quick ? 50 : 200;
const LAYER_KIB: [number, number] = quick ? [16, 64] : [128, 1024];
const BUDGET = 100; // Docker Hub's anonymous limit per 6 h
const ACCEPT = [
  'application/vnd.docker.distribution.manifest.v2+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.oci.image.manifest.v1+json',
].join(', ');

/** Deterministic pseudo-random numbers, so every run replays the same day. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

interface Ref {
  readonly repo: string;
  readonly tag: string;
  readonly floating: boolean;
}

interface Catalog {
  /** Every image the hub serves, by repo:tag, with the replacement for the two tags that move. */
  readonly images: Map<string, Image>;
  readonly moved: Map<string, Image>;
  readonly workshops: Ref[][];
}

function catalog(): Catalog {
  const rand = rng(42);
  const repos = ['library/nginx', 'library/python', 'library/postgres', 'library/redis', 'library/node', 'library/busybox', 'library/alpine', 'library/golang', 'bitnami/kafka', 'grafana/grafana', 'library/httpd', 'library/mariadb'];
  const tags: Array<[string, boolean]> = [['latest', true], ['1.27', true], ['1.27.3', false], ['3.12.4', false], ['16.2', false]];
  const images = new Map<string, Image>();
  let seed = 1000;
  const make = (): Image => {
    const n = 1 + Math.floor(rand() * 3);
    const layers = Array.from({ length: n }, () => layer(Math.round((LAYER_KIB[0] + rand() * (LAYER_KIB[1] - LAYER_KIB[0])) * 1024), seed++));
    return image({ layers, seed: seed++ });
  };
  // Shared base layers across images, as real images share them.
  const refsByRepo = repos.map((repo, i) => {
    const [tag, floating] = tags[i % tags.length]!;
    images.set(`${repo}:${tag}`, make());
    return { repo, tag, floating } satisfies Ref;
  });
  const workshops: Ref[][] = [];
  for (let w = 0; w < WORKSHOPS; w++) {
    const count = 6 + Math.floor(rand() * 5); // 6–10 images
    const start = Math.floor(rand() * repos.length);
    workshops.push(Array.from({ length: count }, (_, k) => refsByRepo[(start + k * 5) % repos.length]!).filter((r, k, a) => a.findIndex((x) => x.repo === r.repo) === k));
  }
  // The two floating tags that move mid-day: the ones used by the most workshops.
  const floating = refsByRepo.filter((r) => r.floating).sort((a, b) => usage(b) - usage(a)).slice(0, 2);
  function usage(r: Ref): number {
    return workshops.filter((w) => w.includes(r)).length;
  }
  const moved = new Map(floating.map((r) => [`${r.repo}:${r.tag}`, make()]));
  return { images, moved, workshops };
}

interface Target {
  readonly name: string;
  readonly url: string;
  /** Path prefix for a workshop's pulls. */
  prefix(workshop: number): string;
  /** Whether a manifest or blob is stored (for "versions stored"). */
  stored(digest: string): boolean;
  stop(): Promise<void>;
}

async function startRegcache(work: string, hub: FakeHub, scoped: boolean): Promise<Target> {
  const port = await freePort();
  const root = join(work, scoped ? 'regcache-scoped' : 'regcache-global');
  await mkdir(root, { recursive: true });
  const config = join(root, 'regcache.yaml');
  // A day of 8 hours compressed into the replay: tags.ttl 5m scales to about 1/100 of it.
  await writeFile(config, [
    `listen: 127.0.0.1:${port}`,
    `storage: {root: ${join(root, 'data')}}`,
    `upstreams: [{name: docker.io, url: "${hub.registryUrl}", mirror: true}]`,
    `tags: {ttl: ${quick ? '200ms' : '500ms'}}`,
    'log: {level: warn}',
  ].join('\n'));
  const child = spawn(process.execPath, [...DAEMON_NODE_FLAGS, 'dist/main.js', '--config', config], { stdio: ['ignore', 'ignore', 'inherit'] });
  const url = `http://127.0.0.1:${port}`;
  await waitReady(`${url}/readyz`, child);
  return {
    name: scoped ? 'regcache (workshop scopes)' : 'regcache (no scopes)',
    url,
    prefix: (w) => (scoped ? `ws/workshop-${w}/docker.io/` : ''),
    stored: (d) => existsSync(join(root, 'data', 'blobs', 'sha256', d.slice(7, 9), d.slice(7))),
    stop: async () => {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    },
  };
}

async function startProxy(work: string, hub: FakeHub): Promise<Target> {
  const dir = join(work, 'distribution-proxy');
  const proxy = await RegistryProcess.start(dir, { proxyRemote: hub.registryUrl });
  return {
    name: "distribution's proxy",
    url: proxy.url,
    prefix: () => '',
    stored: (d) => existsSync(join(dir, 'storage', 'docker', 'registry', 'v2', 'blobs', 'sha256', d.slice(7, 9), d.slice(7), 'data')),
    stop: () => proxy.stop(),
  };
}

async function waitReady(url: string, child: ChildProcess): Promise<void> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`${url}: process exited`);
    try {
      if ((await fetch(url)).ok) return;
    } catch {
      // not yet
    }
    if (Date.now() > deadline) throw new Error(`${url} not ready`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

interface Pulled {
  readonly manifest: string;
  readonly blobs: ReadonlyArray<{ digest: string; size: number }>;
}

const agent = new Agent({ connections: 64, keepAliveTimeout: 10_000 });

/** One image pull the way dockerd does it; throws on anything a client would see as a failure. */
async function pullImage(base: string, prefix: string, ref: Ref): Promise<Pulled> {
  const name = `${prefix}${ref.repo}`;
  const head = await request(`${base}/v2/${name}/manifests/${ref.tag}`, { method: 'HEAD', headers: { accept: ACCEPT }, dispatcher: agent });
  await head.body.dump();
  if (head.statusCode !== 200) throw new Error(`HEAD ${ref.repo}:${ref.tag} → ${head.statusCode}`);
  const digest = String(head.headers['docker-content-digest']);
  const m = await request(`${base}/v2/${name}/manifests/${digest}`, { headers: { accept: ACCEPT }, dispatcher: agent });
  const body = Buffer.from(await m.body.arrayBuffer());
  if (m.statusCode !== 200 || sha256(body) !== digest) throw new Error(`GET manifest ${digest} → ${m.statusCode}`);
  const doc = JSON.parse(body.toString()) as { config: { digest: string; size: number }; layers: Array<{ digest: string; size: number }> };
  const blobs = [doc.config, ...doc.layers];
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < blobs.length) {
      const b = blobs[next++]!;
      const r = await request(`${base}/v2/${name}/blobs/${b.digest}`, { dispatcher: agent });
      const data = Buffer.from(await r.body.arrayBuffer());
      if (r.statusCode !== 200 || sha256(data) !== b.digest) throw new Error(`GET blob ${b.digest} → ${r.statusCode}`);
    }
  };
  await Promise.all([worker(), worker(), worker()]); // dockerd's max-concurrent-downloads: 3
  return { manifest: digest, blobs };
}

interface Result {
  readonly target: string;
  readonly chargedPulls: number;
  readonly heads: number;
  readonly blobGets: number;
  readonly blobBytes: number;
  readonly distinctManifests: number;
  readonly distinctBlobBytes: number;
  readonly failedSessions: number;
  readonly failedDuringOutage: number;
  readonly failedDuringLowBudget: number;
  readonly inconsistentSessions: number;
  readonly versionsStored: number;
  readonly sessionP50Ms: number;
  readonly sessionP99Ms: number;
  readonly failures: readonly string[];
}

async function replay(cat: Catalog, hub: FakeHub, target: Target): Promise<Result> {
  const bursts: Array<{ workshop: number; sessions: number }> = [];
  for (let i = 0; i < SESSIONS / BURST; i++) for (let w = 0; w < WORKSHOPS; w++) bursts.push({ workshop: w, sessions: BURST });
  // Every workshop has had a burst before the trouble starts (what is cached can be served).
  const midday = Math.max(WORKSHOPS, Math.floor(bursts.length / 2));
  const outage = Math.max(midday + 1, Math.floor(bursts.length * 0.65));
  const lowBudget = Math.min(bursts.length - 1, Math.max(outage + 1, Math.floor(bursts.length * 0.85)));
  const sessionMs: number[] = [];
  const failures: string[] = [];
  let failedDuringOutage = 0;
  let failedDuringLowBudget = 0;
  /** workshop → "repo:tag" → digests its sessions ran. */
  const ran = Array.from({ length: WORKSHOPS }, () => new Map<string, string[]>());
  const manifests = new Set<string>();
  const blobs = new Map<string, number>();
  for (const [i, burst] of bursts.entries()) {
    if (i === midday) for (const [key, img] of cat.moved) hub.setTag(key.split(':')[0]!, key.split(':')[1]!, img.manifest.digest);
    if (i === outage) hub.unreachable = true;
    if (i === lowBudget) hub.remaining = Math.min(hub.remaining, 2);
    const refs = cat.workshops[burst.workshop]!;
    await Promise.all(Array.from({ length: burst.sessions }, async (_, s) => {
      const started = performance.now();
      let failed = false;
      for (const ref of refs) {
        try {
          const p = await pullImage(target.url, target.prefix(burst.workshop), ref);
          manifests.add(p.manifest);
          for (const b of p.blobs) blobs.set(b.digest, b.size);
          const key = `${ref.repo}:${ref.tag}`;
          const list = ran[burst.workshop]!.get(key) ?? [];
          list.push(p.manifest);
          ran[burst.workshop]!.set(key, list);
        } catch (err) {
          failed = true;
          failures.push(`workshop ${burst.workshop} burst ${i} session ${s}: ${(err as Error).message}`);
        }
      }
      sessionMs.push(performance.now() - started);
      if (failed && i === outage) failedDuringOutage++;
      if (failed && i === lowBudget) failedDuringLowBudget++;
    }));
    if (i === outage) hub.unreachable = false;
    if (i === lowBudget) hub.remaining = BUDGET; // the window resets
    await new Promise((r) => setTimeout(r, GAP_MS));
  }
  // Sessions whose digest for a tag differs from the one the workshop's first session ran.
  let inconsistent = 0;
  for (const byTag of ran) {
    const odd = new Set<number>();
    for (const digests of byTag.values()) digests.forEach((d, k) => d !== digests[0] && odd.add(k));
    inconsistent += odd.size;
  }
  const all = [...cat.images.values(), ...cat.moved.values()];
  const sorted = [...sessionMs].sort((a, b) => a - b);
  return {
    target: target.name,
    chargedPulls: hub.pullsCharged,
    heads: hub.requests.filter((r) => r.server === 'registry' && r.method === 'HEAD' && r.path.includes('/manifests/') && r.authorization).length,
    blobGets: hub.requests.filter((r) => r.server === 'cdn' && r.method === 'GET').length,
    blobBytes: hub.blobBytesSent,
    distinctManifests: manifests.size,
    distinctBlobBytes: [...blobs.values()].reduce((a, b) => a + b, 0),
    failedSessions: new Set(failures.map((f) => f.split(':')[0])).size,
    failedDuringOutage,
    failedDuringLowBudget,
    inconsistentSessions: inconsistent,
    versionsStored: all.filter((img) => target.stored(img.manifest.digest)).length,
    sessionP50Ms: Math.round(sorted[Math.floor(sorted.length * 0.5)] ?? NaN),
    sessionP99Ms: Math.round(sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * 0.99))] ?? NaN),
    failures: failures.slice(0, 5),
  };
}

async function freshHub(cat: Catalog): Promise<FakeHub> {
  const hub = await FakeHub.start();
  hub.limit = BUDGET;
  hub.remaining = BUDGET;
  for (const [key, img] of cat.images) hub.addImage(key.split(':')[0]!, key.split(':')[1]!, img);
  for (const [key, img] of cat.moved) hub.addImage(key.split(':')[0]!, `${key.split(':')[1]}-next`, img);
  return hub;
}

async function main(): Promise<void> {
  const work = await mkdtemp(join(tmpdir(), 'regcache-workshop-day-'));
  const cat = catalog();
  const results: Result[] = [];
  console.log(`workshop day: ${WORKSHOPS} workshops × ${SESSIONS} sessions in bursts of ${BURST}, ${cat.workshops.map((w) => w.length).join('/')} images each; budget ${BUDGET} pulls`);
  try {
    for (const start of [(h: FakeHub) => startRegcache(work, h, true), (h: FakeHub) => startRegcache(work, h, false), (h: FakeHub) => startProxy(work, h)]) {
      const hub = await freshHub(cat);
      const target = await start(hub);
      try {
        const t0 = performance.now();
        const r = await replay(cat, hub, target);
        results.push(r);
        console.log(`  ${r.target}: ${((performance.now() - t0) / 1000).toFixed(1)} s, ${r.chargedPulls} pulls charged, ${r.failedSessions} failed sessions, ${r.inconsistentSessions} inconsistent`);
        for (const f of r.failures) console.log(`    e.g. ${f}`);
      } finally {
        await target.stop();
        await hub.stop();
      }
    }
  } finally {
    await rm(work, { recursive: true, force: true });
    await agent.close();
  }
  await report(results);
}

async function report(results: Result[]): Promise<void> {
  const [scoped, , proxy] = results as [Result, Result, Result];
  const MiB = (n: number) => (n / 2 ** 20).toFixed(1);
  const rows: Array<[string, (r: Result) => string]> = [
    ['pulls charged by the upstream (manifest GETs)', (r) => `${r.chargedPulls} (floor ${r.distinctManifests}: ${(r.chargedPulls / r.distinctManifests).toFixed(2)}×)`],
    ['upstream manifest HEADs (free)', (r) => String(r.heads)],
    ['upstream blob GETs', (r) => String(r.blobGets)],
    ['upstream blob bytes', (r) => `${MiB(r.blobBytes)} MiB (floor ${MiB(r.distinctBlobBytes)}: ${(r.blobBytes / r.distinctBlobBytes).toFixed(2)}×)`],
    ['sessions with a client-visible failure', (r) => String(r.failedSessions)],
    ['… during the upstream outage', (r) => String(r.failedDuringOutage)],
    ['… during the low-budget stretch', (r) => String(r.failedDuringLowBudget)],
    ['sessions that ran a different digest than their workshop for a tag', (r) => String(r.inconsistentSessions)],
    ['image versions stored at the end', (r) => String(r.versionsStored)],
    ['pull time per session, p50 / p99', (r) => `${r.sessionP50Ms} / ${r.sessionP99Ms} ms`],
  ];
  const lines = [
    `| figure | ${results.map((r) => r.target).join(' | ')} |`,
    `|---|${results.map(() => '---').join('|')}|`,
    ...rows.map(([label, f]) => `| ${label} | ${results.map(f).join(' | ')} |`),
  ];
  const pullRatio = proxy.chargedPulls / Math.max(1, scoped.chargedPulls);
  const headline = `${pullRatio.toFixed(1)}× fewer charged pulls than distribution's proxy, ${(proxy.blobBytes / Math.max(1, scoped.blobBytes)).toFixed(1)}× fewer upstream blob bytes, ${scoped.failedSessions} failed and ${scoped.inconsistentSessions} inconsistent sessions (proxy: ${proxy.failedSessions} and ${proxy.inconsistentSessions})`;
  console.log(`\n${lines.join('\n')}\n\n${headline}`);
  const targets = {
    chargedPullsAtFloor: scoped.chargedPulls === scoped.distinctManifests,
    blobBytesAtFloor: scoped.blobBytes === scoped.distinctBlobBytes,
    noFailuresInOutageOrLowBudget: scoped.failedDuringOutage === 0 && scoped.failedDuringLowBudget === 0,
    noInconsistentSessions: scoped.inconsistentSessions === 0,
  };
  console.log('targets:', targets);
  const meta = { date: new Date().toISOString(), node: process.version, cpu: cpus()[0]?.model, quick, workshops: WORKSHOPS, sessionsPerWorkshop: SESSIONS, budget: BUDGET };
  await mkdir('bench/results', { recursive: true });
  await writeFile(quick ? 'bench/results/workshop-day.quick.json' : 'bench/results/workshop-day.json', `${JSON.stringify({ ...meta, headline, targets, results }, null, 2)}\n`);
  if (quick) return;
  const readme = await readFile('bench/README.md', 'utf8');
  const start = '<!-- workshop-day:start -->';
  const end = '<!-- workshop-day:end -->';
  const block = `${start}\n_${meta.date.slice(0, 10)}, Node ${meta.node}, ${meta.cpu}; ${WORKSHOPS} workshops × ${SESSIONS} sessions, budget ${BUDGET}._\n\n${lines.join('\n')}\n\n**${headline}.**\n${end}`;
  const next = readme.includes(start) ? readme.replace(new RegExp(`${start}[\\s\\S]*?${end}`), block) : `${readme.trimEnd()}\n\n## Workshop day\n\n\`npm run bench:workshop-day\`: see bench/workshop-day.ts for the scenario.\n\n${block}\n`;
  await writeFile('bench/README.md', next);
}

await main();
