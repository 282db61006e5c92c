// The real entry point as an operator runs it: env config, config errors, SIGTERM draining.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import { FakeHub } from './testing/fake-registry.ts';
import { layer, sha256 } from './testing/fixtures.ts';
import { freePort } from './testing/registry-process.ts';

const MAIN = new URL('./main.ts', import.meta.url).pathname;

function start(args: string[], env: Record<string, string>): { child: ChildProcess; output: () => string; exited: Promise<number | null> } {
  const child = spawn(process.execPath, [MAIN, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, output: () => out, exited };
}

async function waitReady(url: string): Promise<void> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    try {
      const res = await request(`${url}/readyz`);
      await res.body.dump();
      if (res.statusCode === 200) return;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error('regcache did not become ready');
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('regcache as a process', () => {
  let hub: FakeHub;
  let scratch: string;
  const blob = layer(3 * 2 ** 20, 41);

  before(async () => {
    hub = await FakeHub.start();
    hub.addBlob(blob);
    scratch = await mkdtemp(join(tmpdir(), 'regcache-main-'));
  });
  after(async () => {
    await hub.stop();
    await rm(scratch, { recursive: true, force: true });
  });

  it('refuses an invalid config file with a message naming the field, exit code 2', async () => {
    const file = join(scratch, 'bad.yaml');
    await writeFile(file, 'listen: 127.0.0.1:1\nupstreams:\n  - name: docker.io\n    url: ftp://nope\n');
    const p = start(['--config', file], {});
    assert.equal(await p.exited, 2);
    assert.match(p.output(), /upstreams\[0\]\.url: expected an http\(s\) URL/);
  });

  it('starts from env overrides, serves, and on SIGTERM finishes a download in progress before exiting 0', async () => {
    const port = await freePort();
    const file = join(scratch, 'ok.yaml');
    await writeFile(file, `upstreams:\n  - name: docker.io\n    url: ${hub.registryUrl}\n    mirror: true\n`);
    const p = start([], {
      REGCACHE_CONFIG: file,
      REGCACHE_LISTEN: `127.0.0.1:${port}`,
      REGCACHE_STORAGE_ROOT: join(scratch, 'data'),
      REGCACHE_LOG_LEVEL: 'info',
    });
    const url = `http://127.0.0.1:${port}`;
    try {
      await waitReady(url);
      hub.behave(blob.digest, { pauseAt: 2 ** 20 });
      const res = await request(`${url}/v2/library/x/blobs/${blob.digest}`);
      assert.equal(res.statusCode, 200);
      const body = res.body.arrayBuffer();
      p.child.kill('SIGTERM');
      await new Promise((r) => setTimeout(r, 200));
      const ready = await request(`${url}/readyz`).then(async (r) => { await r.body.dump(); return r.statusCode; }, () => 'closed');
      assert.notEqual(ready, 200, 'not ready while draining');
      hub.release();
      assert.equal(sha256(Buffer.from(await body)), blob.digest, 'the download in progress completed');
      assert.equal(await p.exited, 0);
      assert.match(p.output(), /"msg":"regcache listening"/);
      assert.match(p.output(), /"msg":"stopped"/);
    } finally {
      p.child.kill('SIGKILL');
    }
  });
});
