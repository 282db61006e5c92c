// End to end with real parts: Debian's docker-registry as the upstream and skopeo as the client,
// copying through regcache in mirror mode and explicit-prefix mode.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, readdir, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { image, layer, multiArch, sha256, type Image } from './testing/fixtures.ts';
import { startRegcache, type Harness } from './testing/harness.ts';
import { RegistryProcess } from './testing/registry-process.ts';

const run = promisify(execFile);
const BLOB_GET = /\/blobs\/sha256:/;

const app = image({ layers: [layer(5 * 2 ** 20, 31), layer(200_000, 32)] });
const amd = image({ layers: [layer(300_000, 33)], arch: 'amd64', seed: 3 });
const arm = image({ layers: [layer(300_000, 34)], arch: 'arm64', seed: 4 });
const index = multiArch([amd, arm], true);

async function skopeoCopy(ref: string, dest: string, all = false): Promise<void> {
  await run('skopeo', ['copy', '--quiet', '--src-tls-verify=false', ...(all ? ['--all'] : []), `docker://${ref}`, `dir:${dest}`], { timeout: 60_000 });
}

/** Checks a skopeo dir: copy holds the image's exact manifest and blob bytes. */
async function assertCopied(dest: string, img: Image): Promise<void> {
  assert.deepEqual(await readFile(join(dest, 'manifest.json')), img.manifest.data, 'manifest bytes identical to upstream');
  for (const blob of img.blobs) {
    const bytes = await readFile(join(dest, blob.digest.slice('sha256:'.length)));
    assert.equal(sha256(bytes), blob.digest);
    assert.ok(bytes.equals(blob.data), `blob ${blob.digest} byte-identical`);
  }
}

describe('skopeo through regcache in front of a real registry', () => {
  let scratch: string;
  let upstream: RegistryProcess;
  let rc: Harness;
  let host: string;

  before(async () => {
    scratch = await mkdtemp(join(tmpdir(), 'regcache-e2e-'));
    upstream = await RegistryProcess.start(join(scratch, 'upstream'));
    await upstream.pushWithSkopeo('library/app', '1.0', app, join(scratch, 'push'));
    await upstream.pushMultiArch('library/multi', 'latest', index);
    rc = await startRegcache({
      upstreams: [{ name: 'registry.local', url: upstream.url, mirror: true, implicitLibrary: true }],
      log: { level: 'info' },
    });
    host = new URL(rc.url).host;
    upstream.requests.length = 0;
  });
  after(async () => {
    await rc?.stop({ wipe: true });
    await upstream?.stop();
    await rm(scratch, { recursive: true, force: true });
  });

  it('copies an image in mirror mode with byte-identical blobs, one upstream GET per blob', async () => {
    await skopeoCopy(`${host}/app:1.0`, join(scratch, 'c1'));
    await assertCopied(join(scratch, 'c1'), app);
    await upstream.settle();
    assert.equal(upstream.count('GET', BLOB_GET), app.blobs.length);
  });

  it('serves the second copy, in explicit-prefix mode, with zero upstream blob GETs', async () => {
    upstream.requests.length = 0;
    await skopeoCopy(`${host}/registry.local/library/app:1.0`, join(scratch, 'c2'));
    await assertCopied(join(scratch, 'c2'), app);
    await upstream.settle();
    assert.equal(upstream.count('GET', BLOB_GET), 0);
    assert.equal(upstream.count('GET', /\/manifests\//), 0, 'the tag is within its TTL and the manifest is cached');
  });

  it('copies a multi-arch OCI index with --all and then serves it entirely from cache', async () => {
    upstream.requests.length = 0;
    await skopeoCopy(`${host}/multi:latest`, join(scratch, 'm1'), true);
    const list = await readFile(join(scratch, 'm1', 'manifest.json'));
    assert.equal(sha256(list), index.index.digest);
    for (const img of index.images) {
      assert.deepEqual(await readFile(join(scratch, 'm1', `${img.manifest.digest.slice(7)}.manifest.json`)), img.manifest.data);
    }
    await upstream.settle();
    assert.equal(upstream.count('GET', BLOB_GET), amd.blobs.length + arm.blobs.length);
    upstream.requests.length = 0;
    await skopeoCopy(`${host}/registry.local/library/multi:latest`, join(scratch, 'm2'), true);
    await upstream.settle();
    assert.equal(upstream.requests.length, 0, 'nothing reaches the upstream for a warm multi-arch copy');
  });

  it('lists tags through the cache', async () => {
    const res = await fetch(`${rc.url}/v2/registry.local/library/app/tags/list`);
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { name: 'registry.local/library/app', tags: ['1.0'] });
  });

  it('keeps serving cached images after a restart, and removes temp files of interrupted downloads', async () => {
    await rc.stop();
    await mkdir(join(rc.root, 'tmp'), { recursive: true });
    await writeFile(join(rc.root, 'tmp', 'interrupted-download'), 'partial bytes');
    await upstream.stop();
    rc = await startRegcache({ upstreams: [{ name: 'registry.local', url: upstream.url, mirror: true, implicitLibrary: true }] }, { root: rc.root });
    host = new URL(rc.url).host;
    assert.deepEqual(await readdir(join(rc.root, 'tmp')), []);
    await skopeoCopy(`${host}/app@${app.manifest.digest}`, join(scratch, 'c3'));
    await assertCopied(join(scratch, 'c3'), app);
    // The upstream is gone: the tag answer survived in sqlite and covers the outage.
    await skopeoCopy(`${host}/app:1.0`, join(scratch, 'c4'));
    await assertCopied(join(scratch, 'c4'), app);
  });
});
