// podman pulling through regcache as a registries.conf mirror (the README's form: the mirror
// location carries the upstream prefix). podman probes the plain-HTTP port with a TLS ClientHello
// first, so this also proves regcache shrugs that off. Skips where podman cannot run.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { image, tarLayer } from '../testing/fixtures.ts';
import { startRegcache, type Harness } from '../testing/harness.ts';
import { RegistryProcess } from '../testing/registry-process.ts';

const run = promisify(execFile);
const usable = process.getuid?.() === 0 && existsSync('/usr/bin/podman');
/** Runtime state podman creates outside its roots; removed afterwards only if we created it. */
const HOST_LEFTOVERS = ['/run/containers'];
const img = image({ layers: [tarLayer([{ name: 'etc/podman', content: Buffer.from('pulled by podman\n') }])], arch: 'amd64', seed: 131 });

describe('podman pulls through regcache as a registry mirror', { skip: usable ? false : 'podman needs root and the podman package (installed by .ci/run)' }, () => {
  let scratch: string;
  let upstream: RegistryProcess;
  let rc: Harness;
  let env: NodeJS.ProcessEnv;
  const preexisting = HOST_LEFTOVERS.filter((p) => existsSync(p));
  const podman = (...args: string[]) =>
    run('podman', ['--root', join(scratch, 'root'), '--runroot', join(scratch, 'run'), '--storage-driver', 'vfs', ...args], { env, timeout: 90_000 });

  before(async () => {
    scratch = await mkdtemp(join(tmpdir(), 'regcache-podman-'));
    upstream = await RegistryProcess.start(join(scratch, 'upstream'));
    await upstream.pushImage('library/busybox', '1.0', img);
    rc = await startRegcache({ upstreams: [{ name: 'docker.io', url: upstream.url, mirror: true, implicitLibrary: true }], log: { level: 'debug' } });
    const host = new URL(rc.url).host;
    await mkdir(join(scratch, 'tmp'), { recursive: true });
    await writeFile(join(scratch, 'registries.conf'), [
      'unqualified-search-registries = ["docker.io"]',
      'short-name-mode = "permissive"',
      '[[registry]]',
      'prefix = "docker.io"',
      'location = "registry-1.docker.io"',
      '[[registry.mirror]]',
      `location = "${host}/docker.io"`,
      'insecure = true',
    ].join('\n'));
    await writeFile(join(scratch, 'containers.conf'), [
      '[engine]',
      'events_logger = "file"',
      `events_logfile_path = "${join(scratch, 'events.log')}"`,
      'cgroup_manager = "cgroupfs"',
      `tmp_dir = "${join(scratch, 'tmp')}"`,
    ].join('\n'));
    env = { ...process.env, CONTAINERS_REGISTRIES_CONF: join(scratch, 'registries.conf'), CONTAINERS_CONF: join(scratch, 'containers.conf') };
    upstream.requests.length = 0;
  });
  after(async () => {
    await rc?.stop({ wipe: true });
    await upstream?.stop();
    await rm(scratch, { recursive: true, force: true });
    for (const p of HOST_LEFTOVERS) if (!preexisting.includes(p)) await rm(p, { recursive: true, force: true });
  });

  it('pulls a short name via the prefix mirror and stores the upstream digest', async () => {
    await podman('pull', 'busybox:1.0');
    const digest = (await podman('image', 'inspect', '--format', '{{.Digest}}', 'docker.io/library/busybox:1.0')).stdout.trim();
    assert.equal(digest, img.manifest.digest);
    const served = rc.logs.filter((l) => l['msg'] === 'request');
    assert.ok(served.some((l) => String(l['url']).startsWith('/v2/docker.io/library/busybox/manifests/1.0')), 'prefix-mode path');
    assert.ok(served.every((l) => Number(l['status']) < 400), 'no request failed');
    assert.ok(rc.logs.some((l) => l['msg'] === 'malformed request dropped'), "podman's TLS probe reached the plain-HTTP port and was dropped");
    await upstream.settle();
    assert.equal(upstream.count('GET', /\/blobs\//), img.blobs.length);
  });

  it("surfaces the mirror's manifest-unknown in its error, and regcache logs why", async () => {
    const failed = await podman('pull', 'busybox:nope').then(() => undefined, (err: Error & { stderr?: string }) => err.stderr ?? err.message);
    assert.ok(failed, 'the pull failed');
    assert.match(failed, /Mirrors also failed/);
    const seen = rc.logs.filter((l) => l['msg'] === 'request' && String(l['url']).endsWith('/manifests/nope'));
    assert.ok(seen.length >= 1 && seen.every((l) => l['status'] === 404 && String(l['error']).startsWith('MANIFEST_UNKNOWN')), JSON.stringify(seen));
  });
});
