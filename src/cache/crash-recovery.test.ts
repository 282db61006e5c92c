// kill -9 in the middle of ten downloads: after a restart no partial blob is ever served, temp files
// are gone, the index matches the files on disk, and pins and tag answers survive.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { readdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import { FakeHub } from '../testing/fake-registry.ts';
import { image, layer, sha256 } from '../testing/fixtures.ts';
import { freePort } from '../testing/registry-process.ts';

const MAIN = new URL('../main.ts', import.meta.url).pathname;
const TOKEN = 'crash-test-admin-token-0123';

async function files(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) if (e.isFile()) out.push(join(e.parentPath, e.name));
  return out;
}

async function get(url: string, headers: Record<string, string> = {}): Promise<{ status: number; body: Buffer; headers: Record<string, unknown> }> {
  const res = await request(url, { headers });
  return { status: res.statusCode, body: Buffer.from(await res.body.arrayBuffer()), headers: res.headers };
}

describe('crash recovery (kill -9 mid-download)', () => {
  let hub: FakeHub;
  let scratch: string;
  let child: ChildProcess | undefined;
  let url: string;
  let root: string;
  let config: string;

  const start = async (): Promise<void> => {
    child = spawn(process.execPath, [MAIN, '--config', config], { stdio: ['ignore', 'ignore', 'inherit'] });
    const deadline = Date.now() + 20_000;
    for (;;) {
      try {
        if ((await get(`${url}/readyz`)).status === 200) return;
      } catch {
        // not up yet
      }
      assert.ok(Date.now() < deadline && child.exitCode === null, 'regcache did not start');
      await new Promise((r) => setTimeout(r, 50));
    }
  };

  before(async () => {
    hub = await FakeHub.start();
    scratch = await mkdtemp(join(tmpdir(), 'regcache-crash-'));
    root = join(scratch, 'data');
    const port = await freePort();
    url = `http://127.0.0.1:${port}`;
    config = join(scratch, 'regcache.yaml');
    await writeFile(config, [
      `listen: 127.0.0.1:${port}`,
      `storage: {root: ${root}}`,
      `upstreams: [{name: docker.io, url: "${hub.registryUrl}", mirror: true}]`,
      `admin: {token: ${TOKEN}}`,
      'log: {level: warn}',
    ].join('\n'));
  });
  after(async () => {
    if (child && child.exitCode === null) child.kill('SIGKILL');
    await hub.stop();
    await rm(scratch, { recursive: true, force: true });
  });

  it('serves only whole, verified blobs after a restart; temp files are gone; index = disk; pins and tags survive', async () => {
    const app = image({ layers: [layer(64 * 1024, 701)], seed: 701 });
    const moved = image({ layers: [layer(64 * 1024, 702)], seed: 702 });
    const fixed = image({ layers: [layer(64 * 1024, 703)], seed: 703 });
    hub.addImage('library/app', 'latest', app);
    hub.addImage('library/app', 'next', moved);
    hub.addImage('library/tool', '2.4.1', fixed);
    const big = Array.from({ length: 10 }, (_, i) => layer(2 * 2 ** 20, 710 + i));
    for (const b of big) {
      hub.addBlob(b);
      hub.behave(b.digest, { pauseAt: 1 * 2 ** 20 }); // half sent, then held
    }
    await start();

    // Before the crash: a pin in ws1 and a fixed tag, pulled completely.
    for (const [path, img] of [['ws/ws1/docker.io/library/app', app], ['tool', fixed]] as const) {
      const ref = path.endsWith('app') ? 'latest' : '2.4.1';
      assert.equal((await get(`${url}/v2/${path}/manifests/${ref}`)).status, 200);
      for (const b of img.blobs) assert.equal(sha256((await get(`${url}/v2/${path}/blobs/${b.digest}`)).body), b.digest);
    }

    // Ten downloads in flight, each half done, when the daemon is killed.
    const clients = big.map((b) => request(`${url}/v2/app/blobs/${b.digest}`).then(async (r) => {
      try {
        await r.body.arrayBuffer();
        return 'complete';
      } catch {
        return 'broken';
      }
    }, () => 'broken'));
    const deadline = Date.now() + 15_000;
    while (hub.requests.filter((r) => r.server === 'cdn').length < big.length + app.blobs.length + fixed.blobs.length) {
      assert.ok(Date.now() < deadline, 'all ten downloads started');
      await new Promise((r) => setTimeout(r, 50));
    }
    await new Promise((r) => setTimeout(r, 300)); // bytes written to the temp files
    assert.ok((await files(join(root, 'tmp'))).length >= 10, 'ten temp files in progress');
    child!.kill('SIGKILL');
    await new Promise((r) => child!.once('exit', r));
    assert.deepEqual(new Set(await Promise.all(clients)), new Set(['broken']), 'no client got a complete response from a killed download');

    // The tag moves upstream while regcache is down; the upstream then serves whole blobs again.
    hub.setTag('library/app', 'latest', moved.manifest.digest);
    for (const b of big) hub.behave(b.digest, {});
    hub.release();
    await start();

    assert.deepEqual(await files(join(root, 'tmp')), [], 'temp files were cleaned at start');
    const onDisk = (await files(join(root, 'blobs'))).map((p) => `sha256:${p.split('/').at(-1)}`).sort();
    for (const b of big) assert.ok(!onDisk.includes(b.digest), 'no partial download became a blob');
    // The index is checked against the disk in the background after a start.
    let storage = '';
    for (const deadline = Date.now() + 10_000; ; ) {
      storage = (await get(`${url}/admin/v1/storage`, { authorization: `Bearer ${TOKEN}` })).body.toString();
      if ((JSON.parse(storage) as { reconciled: boolean }).reconciled) break;
      assert.ok(Date.now() < deadline, `reconciled within 10 s: ${storage}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.equal((JSON.parse(storage) as { entries: number }).entries, onDisk.length, `the index matches the disk: ${storage}`);

    const pinned = await get(`${url}/v2/ws/ws1/docker.io/library/app/manifests/latest`);
    assert.equal(pinned.headers['docker-content-digest'], app.manifest.digest, 'the pin survived the crash');
    const before = hub.requests.length;
    assert.equal((await get(`${url}/v2/tool/manifests/2.4.1`)).headers['docker-content-digest'], fixed.manifest.digest);
    assert.equal(hub.requests.length, before, 'the tag answer survived: served without asking upstream');

    // Every interrupted blob is fetched again, whole and verified.
    for (const b of big) assert.equal(sha256((await get(`${url}/v2/app/blobs/${b.digest}`)).body), b.digest);
    child!.kill('SIGTERM');
    await new Promise((r) => child!.once('exit', r));
  });
});
