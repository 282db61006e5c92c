// The Dockerfile, checked without a Docker engine (none runs here): lint rules of the kind
// hadolint applies (no npm or Debian package provides hadolint), then its steps replayed in a
// scratch root — the build stage (`npm ci --ignore-scripts`, `npm run build`), the production
// `npm ci --omit=dev`, the COPYs filtered by .dockerignore, the CMD started with the image's
// default config and the HEALTHCHECK command run against it.
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { cp, mkdir, mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { dockerIgnore, keyValues, parseDockerfile, splitOptions, type Instruction, type Stage } from '../testing/dockerfile.ts';
import { freePort } from '../testing/registry-process.ts';

const run = promisify(execFile);
const repo = join(import.meta.dirname, '..', '..');

const text = await readFile(join(repo, 'Dockerfile'), 'utf8');
const stages = parseDockerfile(text);
const final = stages.at(-1)!;
const all = (stage: Stage, cmd: string) => stage.instructions.filter((i) => i.cmd === cmd);

describe('Dockerfile lint (hadolint-style rules)', () => {
  it('builds from a pinned Node 24 base in more than one stage', () => {
    assert.ok(stages.length >= 2, 'multi-stage: build tools stay out of the final image');
    for (const s of stages) {
      assert.match(s.from, /^(node:24[-.\w]*|gcr\.io\/distroless\/nodejs24[-\w]*(:[\w.-]+)?)$/, `FROM ${s.from}: a Node 24 base with an explicit tag`);
      assert.doesNotMatch(s.from, /:latest$/, 'DL3007: no :latest');
    }
  });

  it('keeps apt and npm installs lean and reproducible', () => {
    const runs = stages.flatMap((s) => all(s, 'RUN'));
    for (const r of runs.filter((r) => /apt-get install/.test(r.args))) {
      assert.match(r.args, /--no-install-recommends/, `DL3015 line ${r.line}`);
      assert.match(r.args, /-y\b/, `DL3014 line ${r.line}`);
      assert.match(r.args, /rm -rf \/var\/lib\/apt\/lists/, `DL3009 line ${r.line}`);
      assert.match(r.args, /apt-get update &&/, `DL3008-style: update and install in one layer, line ${r.line}`);
    }
    assert.ok(runs.some((r) => /\bnpm ci\b.*--omit=dev/.test(r.args)), 'production dependencies only, from the lockfile');
    assert.ok(!runs.some((r) => /\bnpm install\b/.test(r.args)), 'npm ci, never npm install');
    for (const r of runs) assert.doesNotMatch(r.args, /\bsudo\b/, `DL3004 line ${r.line}`);
  });

  it('runs as a non-root user with its state on a volume and config at /etc/regcache', () => {
    const users = all(final, 'USER');
    assert.ok(users.length > 0 && !/^(root|0)(:|$)/.test(users.at(-1)!.args), 'DL3002: the last USER is not root');
    const env = Object.assign({}, ...all(final, 'ENV').map((e) => keyValues(e.args))) as Record<string, string>;
    assert.equal(env['REGCACHE_CONFIG'], '/etc/regcache/config.yaml');
    assert.equal(env['REGCACHE_STORAGE_ROOT'], '/var/lib/regcache');
    assert.ok(all(final, 'VOLUME').some((v) => v.args.includes('/var/lib/regcache')), 'VOLUME /var/lib/regcache');
    const port = /:(\d+)$/.exec(env['REGCACHE_LISTEN'] ?? '')?.[1];
    assert.ok(port && all(final, 'EXPOSE').some((e) => e.args.split(/\s+/).includes(port)), 'EXPOSE matches the listen port');
    assert.ok(all(final, 'COPY').some((c) => c.args.trim().endsWith(' /etc/regcache/config.yaml')), 'a default config is baked in');
  });

  it('starts node directly in exec form, so it gets SIGTERM, and health-checks /healthz', () => {
    const cmd = all(final, 'CMD').at(-1);
    assert.ok(cmd?.exec, 'DL3025: CMD in JSON form (node is PID 1 and receives SIGTERM)');
    assert.equal(cmd.exec[0], 'node');
    const hc = all(final, 'HEALTHCHECK').at(-1);
    assert.ok(hc, 'HEALTHCHECK present');
    const { rest } = splitOptions(hc.args);
    assert.ok(rest.startsWith('CMD '), 'HEALTHCHECK CMD');
    const probe = JSON.parse(rest.slice(4)) as string[];
    assert.ok(probe.join(' ').includes('/healthz'), 'probes /healthz');
    const stop = all(final, 'STOPSIGNAL').at(-1);
    assert.ok(!stop || stop.args === 'SIGTERM');
  });

  it('copies only files the build context holds after .dockerignore', async () => {
    const ignored = dockerIgnore(await readFile(join(repo, '.dockerignore'), 'utf8'));
    for (const c of stages.flatMap((s) => all(s, 'COPY'))) {
      const { options, rest } = splitOptions(c.args);
      if (options['from']) continue;
      const parts = rest.split(/\s+/);
      for (const src of parts.slice(0, -1)) {
        assert.ok(existsSync(join(repo, src)), `line ${c.line}: ${src} exists`);
        assert.ok(!ignored(src), `line ${c.line}: ${src} is not excluded by .dockerignore`);
      }
    }
    assert.ok(ignored('src/cache/blobs.test.ts') && ignored('src/testing/harness.ts') && ignored('src/e2e/dockerd.e2e.ts'), 'tests stay out of the image');
    assert.ok(!ignored('src/main.ts') && !ignored('package-lock.json'));
  });
});

describe('Dockerfile steps replayed in a scratch root', () => {
  let scratch: string;
  const rootfs = () => join(scratch, 'rootfs');
  /** An absolute image path inside the scratch root. */
  const inRoot = (p: string) => join(rootfs(), p);

  before(async () => {
    scratch = await mkdtemp(join(tmpdir(), 'regcache-dockerfile-'));
  });
  after(async () => {
    await rm(scratch, { recursive: true, force: true });
  });

  it('installs production dependencies, starts on the default config, passes its HEALTHCHECK and stops on SIGTERM', async () => {
    const ignored = dockerIgnore(await readFile(join(repo, '.dockerignore'), 'utf8'));
    const stageRoots = new Map<string, string>();
    const env: Record<string, string> = {};
    let skipped: string[] = [];
    for (const [n, stage] of stages.entries()) {
      // Each stage gets its own root; COPY --from reads another stage's.
      const root = join(scratch, n === stages.length - 1 ? 'rootfs' : `stage-${stage.name ?? n}`);
      if (stage.name) stageRoots.set(stage.name, root);
      let workdir = '/';
      for (const ins of stage.instructions) {
        switch (ins.cmd) {
          case 'WORKDIR':
            workdir = ins.args;
            await mkdir(join(root, workdir), { recursive: true });
            break;
          case 'ENV':
            if (n === stages.length - 1) Object.assign(env, keyValues(ins.args));
            break;
          case 'COPY':
            await replayCopy(ins, root, workdir, stageRoots, ignored);
            break;
          case 'RUN':
            skipped = skipped.concat(await replayRun(ins, root, workdir));
            break;
        }
      }
    }
    // Only system-level steps are left out: apt packages (the host has build tools), user/owner
    // changes (no `node` user here) and the npm cache cleanup (it would wipe the host's cache).
    for (const s of skipped) assert.match(s, /^(apt-get |rm -rf \/var\/lib\/apt|chown |npm cache clean)/, `unexpected skipped step: ${s}`);

    const app = inRoot('app');
    for (const dev of ['typescript', 'node', '@types/node', 'kubernetes-models']) {
      assert.ok(!existsSync(join(app, 'node_modules', dev)), `dev dependency ${dev} is not in the image`);
    }
    assert.ok(existsSync(join(app, 'dist', 'main.js')), 'the compiled build is in the image');
    assert.ok(!existsSync(join(app, 'src')), 'sources stay in the build stage');
    assert.ok(!existsSync(join(app, 'dist', 'testing')) && !existsSync(join(app, 'dist', 'e2e')), 'test helpers are not built');
    assert.ok((await stat(inRoot('etc/regcache/config.yaml'))).isFile());

    const port = await freePort();
    const cmd = all(final, 'CMD').at(-1)!.exec!;
    const childEnv: NodeJS.ProcessEnv = {
      PATH: process.env['PATH'],
      ...env,
      REGCACHE_CONFIG: inRoot(env['REGCACHE_CONFIG']!),
      REGCACHE_STORAGE_ROOT: inRoot(env['REGCACHE_STORAGE_ROOT']!),
      REGCACHE_LISTEN: `127.0.0.1:${port}`, // the image listens on 0.0.0.0; tests stay on loopback
    };
    // The image's node is Node 24: so is the one running this test (the node devDependency).
    const child = spawn(process.execPath, cmd.slice(1), { cwd: app, env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((res) => child.once('exit', (code) => res(code)));
    try {
      const deadline = Date.now() + 30_000;
      while (!out.includes('regcache listening')) {
        assert.ok(Date.now() < deadline && child.exitCode === null, `regcache did not start:\n${out}`);
        await new Promise((r) => setTimeout(r, 100));
      }
      const hc = all(final, 'HEALTHCHECK').at(-1)!;
      const probe = (JSON.parse(splitOptions(hc.args).rest.slice(4)) as string[]).map((a) => a.replace(/127\.0\.0\.1:\d+/, `127.0.0.1:${port}`));
      assert.equal(probe[0], 'node');
      await run(process.execPath, probe.slice(1), { timeout: 10_000 }); // rejects on a non-zero exit
      const ping = await fetch(`http://127.0.0.1:${port}/v2/`);
      assert.equal(ping.status, 200);
      assert.equal((await fetch(`http://127.0.0.1:${port}/readyz`)).status, 200);
      assert.ok(existsSync(join(inRoot('var/lib/regcache'), 'metadata.sqlite')), 'state goes to the volume');
    } finally {
      child.kill('SIGTERM');
    }
    const code = await Promise.race([exited, new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 30_000))]);
    if (code === 'timeout') child.kill('SIGKILL');
    assert.equal(code, 0, `graceful exit on SIGTERM:\n${out.slice(-2000)}`);
  });
});

async function replayCopy(ins: Instruction, root: string, workdir: string, stageRoots: Map<string, string>, ignored: (p: string) => boolean): Promise<void> {
  const { options, rest } = splitOptions(ins.args);
  const parts = rest.split(/\s+/);
  const dest = parts.at(-1)!;
  const to = dest.startsWith('/') ? join(root, dest) : join(root, workdir, dest);
  for (const src of parts.slice(0, -1)) {
    const fromRoot = options['from'] ? stageRoots.get(options['from']) : undefined;
    if (options['from'] && !fromRoot) throw new Error(`line ${ins.line}: unknown stage ${options['from']}`);
    const from = fromRoot ? join(fromRoot, src) : join(repo, src);
    const target = dest.endsWith('/') ? join(to, src.split('/').at(-1)!) : to;
    await mkdir(dirname(target), { recursive: true });
    await cp(from, (await stat(from)).isDirectory() ? target : target, {
      recursive: true,
      filter: (p) => fromRoot !== undefined || !ignored(relative(repo, p)),
    });
  }
}

/** Runs a RUN step's `&&` parts in the stage root; returns the system-level parts it skipped. */
async function replayRun(ins: Instruction, root: string, workdir: string): Promise<string[]> {
  const skipped: string[] = [];
  for (const part of ins.args.split('&&').map((p) => p.trim())) {
    if (/^(apt-get |rm -rf \/var\/lib\/apt|chown |npm cache clean)/.test(part)) {
      skipped.push(part);
      continue;
    }
    // Absolute image paths land in the stage root.
    const cmd = part.replace(/(^|\s)\/(?!dev\/null)/g, `$1${root}/`);
    await run('sh', ['-c', cmd], { cwd: join(root, workdir), timeout: 600_000, maxBuffer: 64 << 20 });
  }
  return skipped;
}
