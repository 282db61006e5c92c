// containerd (ctr with a hosts.toml mirror) pulling through regcache: it sends `?ns=<registry>` on
// every request, which regcache uses to pick the upstream. Skips where containerd cannot run.
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { image, multiArch, tarLayer } from '../testing/fixtures.ts';
import { startRegcache, type Harness } from '../testing/harness.ts';
import { RegistryProcess } from '../testing/registry-process.ts';

const run = promisify(execFile);
const usable = process.getuid?.() === 0 && existsSync('/usr/bin/containerd') && existsSync('/usr/bin/ctr');

const hubImage = image({ layers: [tarLayer([{ name: 'etc/hub', content: Buffer.from('docker hub image\n') }])], arch: 'amd64', seed: 121 });
const hubArm = image({ layers: [tarLayer([{ name: 'etc/hub', content: Buffer.from('arm\n') }])], arch: 'arm64', seed: 122 });
const hubList = multiArch([hubImage, hubArm], true);
const ghcrImage = image({ layers: [tarLayer([{ name: 'etc/ghcr', content: Buffer.from('ghcr image\n') }])], arch: 'amd64', seed: 123 });

describe('containerd pulls through regcache with ?ns=', { skip: usable ? false : 'containerd needs root and the containerd package (installed with docker.io by .ci/run)' }, () => {
  let scratch: string;
  let upstream: RegistryProcess;
  let rc: Harness;
  let containerd: ChildProcess | undefined;
  let sock: string;
  let hostsDir: string;
  const ctr = (...args: string[]) => run('ctr', ['-a', sock, ...args], { timeout: 90_000 });

  before(async () => {
    scratch = await mkdtemp(join(tmpdir(), 'regcache-containerd-'));
    upstream = await RegistryProcess.start(join(scratch, 'upstream'));
    await upstream.pushMultiArch('library/busybox', 'multi', hubList);
    await upstream.pushImage('org/app', '1.0', ghcrImage);
    // Two upstream names on one real registry: what differs is how containerd addresses them.
    rc = await startRegcache({
      upstreams: [
        { name: 'docker.io', url: upstream.url, mirror: true, implicitLibrary: true },
        { name: 'ghcr.io', url: upstream.url },
      ],
      log: { level: 'info' },
    });
    const mirror = `http://${new URL(rc.url).host}`;
    hostsDir = join(scratch, 'certs.d');
    for (const registry of ['docker.io', 'ghcr.io']) {
      await mkdir(join(hostsDir, registry), { recursive: true });
      // server = the mirror too, so a failure surfaces as an error instead of a silent trip upstream.
      await writeFile(join(hostsDir, registry, 'hosts.toml'), `server = "${mirror}"\n[host."${mirror}"]\n  capabilities = ["pull", "resolve"]\n`);
    }
    const c = join(scratch, 'containerd');
    sock = join(c, 'containerd.sock');
    await mkdir(c, { recursive: true });
    await writeFile(join(scratch, 'containerd.toml'), [
      'version = 2',
      `root = "${c}/root"`,
      `state = "${c}/state"`,
      'disabled_plugins = ["io.containerd.grpc.v1.cri"]',
      '[grpc]',
      `  address = "${sock}"`,
      '[ttrpc]',
      `  address = "${sock}.ttrpc"`,
      '[plugins."io.containerd.internal.v1.opt"]',
      `  path = "${c}/opt"`,
    ].join('\n'));
    containerd = spawn('containerd', ['--config', join(scratch, 'containerd.toml')], { stdio: 'ignore' });
    const deadline = Date.now() + 20_000;
    for (;;) {
      try {
        await ctr('version');
        break;
      } catch {
        if (Date.now() > deadline || containerd.exitCode !== null) throw new Error('containerd did not start');
        await new Promise((r) => setTimeout(r, 200));
      }
    }
    upstream.requests.length = 0;
  });
  after(async () => {
    if (containerd && containerd.exitCode === null) {
      const exited = new Promise((r) => containerd?.once('exit', r));
      containerd.kill('SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
      if (containerd.exitCode === null) containerd.kill('SIGKILL');
    }
    await rc?.stop({ wipe: true });
    await upstream?.stop();
    await rm(scratch, { recursive: true, force: true });
  });

  it('pulls a Docker Hub multi-arch index and a second upstream image, routed by ns', async () => {
    await ctr('images', 'pull', '--hosts-dir', hostsDir, 'docker.io/library/busybox:multi');
    await ctr('images', 'pull', '--hosts-dir', hostsDir, 'ghcr.io/org/app:1.0');
    const images = (await ctr('images', 'ls')).stdout;
    assert.match(images, new RegExp(`docker.io/library/busybox:multi\\s+\\S+\\s+${hubList.index.digest}`));
    assert.match(images, new RegExp(`ghcr.io/org/app:1.0\\s+\\S+\\s+${ghcrImage.manifest.digest}`));
    const served = rc.logs.filter((l) => l['msg'] === 'request');
    assert.ok(served.length > 0 && served.every((l) => String(l['url']).includes('?ns=')), 'every request carried ns=');
    assert.ok(served.some((l) => l['upstream'] === 'ghcr.io') && served.some((l) => l['upstream'] === 'docker.io'), 'ns selected each upstream');
    assert.ok(served.every((l) => Number(l['status']) < 400), 'no request failed');
    await upstream.settle();
    assert.equal(upstream.count('GET', /\/blobs\//), hubImage.blobs.length + ghcrImage.blobs.length, 'each blob fetched once (amd64 only)');
  });

  it("reports a missing tag as not found, and regcache's log names the upstream's answer", async () => {
    const failed = await ctr('images', 'pull', '--hosts-dir', hostsDir, 'docker.io/library/busybox:nope').then(() => undefined, (err: Error & { stderr?: string }) => err.stderr ?? err.message);
    assert.ok(failed, 'the pull failed');
    assert.match(failed, /not found/);
    const seen = rc.logs.filter((l) => l['msg'] === 'request' && String(l['url']).includes('/manifests/nope?ns=docker.io'));
    assert.ok(seen.length >= 1 && seen.every((l) => l['status'] === 404 && String(l['error']).startsWith('MANIFEST_UNKNOWN')), JSON.stringify(seen));
  });

  it('refuses an ns that names no configured upstream without contacting anything', async () => {
    const mirror = `http://${new URL(rc.url).host}`;
    await mkdir(join(hostsDir, 'quay.io'), { recursive: true });
    await writeFile(join(hostsDir, 'quay.io', 'hosts.toml'), `server = "${mirror}"\n[host."${mirror}"]\n  capabilities = ["pull", "resolve"]\n`);
    upstream.requests.length = 0;
    const failed = await ctr('images', 'pull', '--hosts-dir', hostsDir, 'quay.io/org/app:1.0').then(() => undefined, (err: Error & { stderr?: string }) => err.stderr ?? err.message);
    assert.ok(failed, 'the pull failed');
    const seen = rc.logs.filter((l) => l['msg'] === 'request' && String(l['url']).includes('ns=quay.io'));
    assert.ok(seen.length >= 1 && seen.every((l) => Number(l['status']) >= 400 && l['error'] !== undefined), JSON.stringify(seen));
    await upstream.settle();
    assert.equal(upstream.requests.length, 0, 'no upstream was contacted for an unknown ns');
  });
});
