// dockerd (Debian's docker.io) pulling through regcache as its registry mirror, and by explicit
// prefix, from a real upstream registry. Skips with a message where dockerd cannot run (not root,
// or not installed: .ci/run installs it).
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { FakeHub } from '../testing/fake-registry.ts';
import { image, multiArch, tarLayer } from '../testing/fixtures.ts';
import { startRegcache, type Harness } from '../testing/harness.ts';
import { RegistryProcess } from '../testing/registry-process.ts';

const run = promisify(execFile);
const DOCKER = '/usr/bin/docker'; // /usr/local/bin/docker may be a newer, unowned CLI: be explicit
const BLOB_GET = /\/blobs\/sha256:/;
/** Host paths dockerd 20.10 creates outside its roots; removed afterwards only if we created them. */
const HOST_LEFTOVERS = ['/etc/docker/key.json', '/opt/containerd'];

const amd = image({ layers: [tarLayer([{ name: 'etc/motd', content: Buffer.from('pulled through regcache\n') }])], arch: 'amd64', seed: 111 });
const arm = image({ layers: [tarLayer([{ name: 'etc/motd', content: Buffer.from('arm64\n') }])], arch: 'arm64', seed: 112 });
const list = multiArch([amd, arm]);

class Dockerd {
  private child: ChildProcess | undefined;
  readonly root: string;
  constructor(root: string) {
    this.root = root;
  }

  async start(mirror: string): Promise<void> {
    const r = this.root;
    this.child = spawn('dockerd', [
      '--data-root', `${r}/data`, '--exec-root', `${r}/exec`, '--pidfile', `${r}/docker.pid`,
      '--host', `unix://${r}/docker.sock`, '--storage-driver', 'vfs',
      '--iptables=false', '--ip6tables=false', '--ip-masq=false', '--bridge=none',
      '--registry-mirror', `http://${mirror}`, '--insecure-registry', mirror,
    ], { stdio: 'ignore' });
    const deadline = Date.now() + 30_000;
    for (;;) {
      try {
        await this.docker('version');
        return;
      } catch {
        if (Date.now() > deadline || this.child.exitCode !== null) throw new Error('dockerd did not start');
        await new Promise((res) => setTimeout(res, 200));
      }
    }
  }

  docker(...args: string[]): Promise<{ stdout: string; stderr: string }> {
    return run(DOCKER, ['-H', `unix://${this.root}/docker.sock`, ...args], { timeout: 90_000 });
  }

  async stop(): Promise<void> {
    const c = this.child;
    if (!c || c.exitCode !== null) return;
    const exited = new Promise((res) => c.once('exit', res));
    c.kill('SIGTERM');
    await Promise.race([exited, new Promise((res) => setTimeout(res, 15_000))]);
    if (c.exitCode === null) c.kill('SIGKILL');
  }
}

const usable = process.getuid?.() === 0 && existsSync('/usr/sbin/dockerd') && existsSync(DOCKER);

describe('dockerd pulls through regcache', { skip: usable ? false : 'dockerd needs root and the docker.io package (installed by .ci/run)' }, () => {
  let scratch: string;
  let upstream: RegistryProcess;
  let rc: Harness;
  let mirror: string;
  const preexisting = HOST_LEFTOVERS.filter((p) => existsSync(p));
  const engines: Dockerd[] = [];

  before(async () => {
    scratch = await mkdtemp(join(tmpdir(), 'regcache-dockerd-'));
    upstream = await RegistryProcess.start(join(scratch, 'upstream'));
    await upstream.pushImage('library/busybox', '1.0', amd);
    await upstream.pushMultiArch('library/busybox', 'multi', list);
    rc = await startRegcache({ upstreams: [{ name: 'docker.io', url: upstream.url, mirror: true, implicitLibrary: true }], log: { level: 'info' } });
    mirror = new URL(rc.url).host;
    upstream.requests.length = 0;
  });
  after(async () => {
    for (const e of engines) await e.stop();
    await rc?.stop({ wipe: true });
    await upstream?.stop();
    await rm(scratch, { recursive: true, force: true });
    for (const p of HOST_LEFTOVERS) if (!preexisting.includes(p)) await rm(p, { recursive: true, force: true });
  });

  it('pulls a tag and a multi-arch list through the mirror, storing the upstream digests', async () => {
    const engine = new Dockerd(join(scratch, 'engine1'));
    engines.push(engine);
    await engine.start(mirror);
    await engine.docker('pull', 'busybox:1.0');
    await engine.docker('pull', 'busybox:multi');
    const digests = (await engine.docker('image', 'inspect', '--format', '{{json .RepoDigests}}', 'busybox:1.0')).stdout;
    assert.ok(digests.includes(`busybox@${amd.manifest.digest}`), digests);
    const multi = (await engine.docker('image', 'inspect', '--format', '{{json .RepoDigests}}', 'busybox:multi')).stdout;
    assert.ok(multi.includes(`busybox@${list.index.digest}`), multi);
    const served = rc.logs.filter((l) => l['msg'] === 'request');
    assert.ok(served.some((l) => l['method'] === 'HEAD' && String(l['url']).endsWith('/manifests/1.0')), 'dockerd resolved the tag with HEAD through regcache');
    assert.ok(served.every((l) => Number(l['status']) < 400), 'regcache answered every request without error');
    await upstream.settle();
    assert.equal(upstream.count('GET', BLOB_GET), amd.blobs.length, 'each blob fetched from upstream once');
  });

  it('serves a second engine entirely from cache, and explicit-prefix pulls too', async () => {
    const engine = new Dockerd(join(scratch, 'engine2'));
    engines.push(engine);
    await engine.start(mirror);
    upstream.requests.length = 0;
    await engine.docker('pull', 'busybox:1.0');
    await engine.docker('pull', `${mirror}/docker.io/library/busybox:1.0`);
    await upstream.settle();
    assert.equal(upstream.count('GET', BLOB_GET), 0, 'no upstream blob GETs for a warm cache');
    const digests = (await engine.docker('image', 'inspect', '--format', '{{json .RepoDigests}}', `${mirror}/docker.io/library/busybox:1.0`)).stdout;
    assert.ok(digests.includes(amd.manifest.digest), digests);
  });

  it("hides a mirror 404 behind its Docker Hub fallback; regcache's log names the real error", async () => {
    const engine = engines[0]!;
    const failed = await engine.docker('pull', 'busybox:nope').then(() => undefined, (err: Error & { stderr?: string }) => err.stderr ?? err.message);
    assert.ok(failed, 'the pull failed');
    assert.match(failed, /registry-1\.docker\.io/, 'dockerd reports the Docker Hub fallback, not the mirror');
    const seen = rc.logs.filter((l) => l['msg'] === 'request' && String(l['url']).endsWith('/manifests/nope'));
    assert.ok(seen.length >= 1, 'the mirror was asked first');
    assert.ok(seen.every((l) => l['status'] === 404 && String(l['error']).startsWith('MANIFEST_UNKNOWN')), JSON.stringify(seen));
  });

  it('pulls from a Docker-Hub-like upstream (token realm, 307 to a CDN that refuses credentials)', async () => {
    const hub = await FakeHub.start();
    const hubRc = await startRegcache({ upstreams: [{ name: 'docker.io', url: hub.registryUrl, mirror: true }], log: { level: 'info' } });
    try {
      hub.addImage('library/busybox', 'hub', amd);
      const engine = new Dockerd(join(scratch, 'engine3'));
      engines.push(engine);
      await engine.start(new URL(hubRc.url).host);
      await engine.docker('pull', 'busybox:hub');
      const digests = (await engine.docker('image', 'inspect', '--format', '{{json .RepoDigests}}', 'busybox:hub')).stdout;
      assert.ok(digests.includes(`busybox@${amd.manifest.digest}`), digests);
      assert.ok(hub.count('token', 'GET', /scope=repository%3Alibrary%2Fbusybox%3Apull/) >= 1, 'regcache fetched a token from the realm');
      const cdn = hub.requests.filter((r) => r.server === 'cdn');
      assert.equal(cdn.length, amd.blobs.length, 'every blob came through the CDN redirect');
      assert.ok(cdn.every((r) => r.authorization === undefined), 'no credentials went to the CDN host');
      assert.equal(hub.remaining, hub.limit - 1, 'one pull charged: the tag was resolved with a free HEAD');
    } finally {
      await hubRc.stop({ wipe: true });
      await hub.stop();
    }
  });
});
