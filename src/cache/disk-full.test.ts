// Disk full (ENOSPC) mid-download, on a real small filesystem (a tmpfs mounted for the test).
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { FakeHub } from '../testing/fake-registry.ts';
import { layer, sha256 } from '../testing/fixtures.ts';
import { fetchAll, startRegcache, type Harness } from '../testing/harness.ts';

const run = promisify(execFile);
const MiB = 2 ** 20;

describe('disk full while writing', () => {
  let mountPoint = '';
  let mounted = false;
  let hub: FakeHub;
  let rc: Harness | undefined;
  const first = layer(5 * MiB, 101);
  const second = layer(9 * MiB, 102);

  before(async () => {
    mountPoint = await mkdtemp(join(tmpdir(), 'regcache-tmpfs-'));
    try {
      await run('mount', ['-t', 'tmpfs', '-o', 'size=12m', 'tmpfs', mountPoint]);
      mounted = true;
    } catch {
      mounted = false;
    }
    hub = await FakeHub.start();
    hub.addBlob(first);
    hub.addBlob(second);
  });
  after(async () => {
    await rc?.stop();
    await hub.stop();
    if (mounted) await run('umount', [mountPoint]).catch(() => undefined);
    await rm(mountPoint, { recursive: true, force: true });
  });

  it('passes the download through to its client, removes the partial file, evicts, and keeps serving', async (t) => {
    if (!mounted) {
      t.skip('cannot mount a tmpfs here (needs root): ENOSPC path not exercised');
      return;
    }
    rc = await startRegcache({ upstreams: [{ name: 'docker.io', url: hub.registryUrl, mirror: true }] }, { root: mountPoint });
    const a = await fetchAll(`${rc.url}/v2/library/x/blobs/${first.digest}`);
    assert.equal(sha256(a.body), first.digest);
    assert.equal(rc.app.index.usedBytes, first.data.length);

    // 12 MiB filesystem, 5 MiB used: the 9 MiB download runs out of space part way.
    // Three clients at once: some read what reached the disk from the file, the rest from memory.
    const all = await Promise.all([1, 2, 3].map(() => fetchAll(`${rc?.url}/v2/library/x/blobs/${second.digest}`)));
    for (const b of all) {
      assert.equal(b.status, 200);
      assert.equal(sha256(b.body), second.digest, 'every client still got every verified byte');
    }
    await waitFor(async () => (await readdir(join(mountPoint, 'tmp'))).length === 0);
    assert.ok(!rc.app.index.has(second.digest), 'nothing partial was committed');
    assert.ok(rc.logs.some((l) => l['msg'] === 'disk full: passing the download through without keeping it'));
    await waitFor(() => !rc?.app.index.has(first.digest));
    assert.match(await rc.app.metrics.registry.metrics(), /regcache_passthrough_total\{reason="disk-full"\} 1/);

    // The eviction pass made room: the same blob is now kept, and other requests are served.
    const again = await fetchAll(`${rc.url}/v2/library/x/blobs/${second.digest}`);
    assert.equal(sha256(again.body), second.digest);
    await waitFor(() => rc?.app.index.has(second.digest) ?? false);
    assert.equal((await fetchAll(`${rc.url}/v2/`)).status, 200);
  });
});

async function waitFor(check: () => boolean | Promise<boolean>, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}
