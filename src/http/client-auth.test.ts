// Client access control: an htpasswd file (bcrypt) and read-only tokens, with skopeo as the client.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import bcrypt from 'bcryptjs';
import { image, layer, sha256 } from '../testing/fixtures.ts';
import { errorCode, fetchAll, startRegcache, type Harness } from '../testing/harness.ts';
import { RegistryProcess } from '../testing/registry-process.ts';
import { parseHtpasswd } from './client-auth.ts';

const run = promisify(execFile);
const CI_TOKEN = 'ci-read-only-token-0123456789';
const basic = (user: string, pass: string) => `Basic ${Buffer.from(`${user}:${pass}`).toString('base64')}`;

describe('client authentication', () => {
  let scratch: string;
  let upstream: RegistryProcess;
  let rc: Harness;
  const img = image({ layers: [layer(80_000, 501)], seed: 501 });

  before(async () => {
    scratch = await mkdtemp(join(tmpdir(), 'regcache-auth-'));
    upstream = await RegistryProcess.start(join(scratch, 'upstream'));
    await upstream.pushImage('team/app', '1.0.0', img);
    const htpasswd = join(scratch, 'htpasswd');
    await writeFile(htpasswd, `# workshop users\nalice:${bcrypt.hashSync('wonderland', 5)}\nbob:${bcrypt.hashSync('builder', 5).replace(/^\$2b\$/, '$2y$')}\n`);
    rc = await startRegcache({ upstreams: [{ name: 'registry.test', url: upstream.url }], auth: { htpasswd, tokens: [CI_TOKEN], realm: 'workshop cache' } }, {});
  });
  after(async () => {
    await rc?.stop({ wipe: true });
    await upstream?.stop();
    await rm(scratch, { recursive: true, force: true });
  });

  it('challenges anonymous clients with Basic (what docker login and skopeo expect), on every registry path', async () => {
    for (const path of ['/v2/', '/v2/registry.test/team/app/manifests/1.0.0', `/v2/registry.test/team/app/blobs/${img.config.digest}`, '/v2/registry.test/team/app/tags/list', '/v2/nope/x/manifests/1']) {
      const r = await fetchAll(`${rc.url}${path}`);
      assert.equal(r.status, 401, path);
      assert.equal(r.headers['www-authenticate'], 'Basic realm="workshop cache"');
      assert.equal(errorCode(r), 'UNAUTHORIZED');
    }
    await upstream.settle();
    assert.equal(upstream.count('GET', /\/(manifests|blobs)\//), 0, 'nothing fetched for anonymous clients');
  });

  it('accepts htpasswd users ($2y$ and $2b$ bcrypt) and tokens (as Bearer, or as a Basic password)', async () => {
    for (const authorization of [basic('alice', 'wonderland'), basic('bob', 'builder'), `Bearer ${CI_TOKEN}`, basic('ci', CI_TOKEN)]) {
      const r = await fetchAll(`${rc.url}/v2/registry.test/team/app/manifests/1.0.0`, { headers: { authorization } });
      assert.equal(r.status, 200, authorization.slice(0, 12));
    }
    assert.equal((await fetchAll(`${rc.url}/v2/`, { headers: { authorization: basic('alice', 'wonderland') } })).status, 200, 'docker login pings /v2/');
  });

  it('refuses wrong credentials, logs the user but never the secret, and counts the failure', async () => {
    for (const authorization of [basic('alice', 'wrong-password'), basic('mallory', 'wonderland'), `Bearer ${CI_TOKEN}x`, 'Digest abc', basic('alice', '')]) {
      const r = await fetchAll(`${rc.url}/v2/registry.test/team/app/manifests/1.0.0`, { headers: { authorization } });
      assert.equal(r.status, 401, authorization);
    }
    const failures = rc.logs.filter((l) => l['msg'] === 'client authentication failed');
    assert.ok(failures.some((l) => l['user'] === 'mallory'));
    assert.doesNotMatch(rc.logText(), /wrong-password|wonderland|ci-read-only-token/);
    const metrics = await (await fetch(`${rc.url}/metrics`)).text();
    assert.match(metrics, /regcache_auth_failures_total\{reason="bad-credentials"\} 4/);
    assert.match(metrics, /regcache_auth_failures_total\{reason="malformed"\} 1/);
  });

  it('keeps health, readiness and metrics open (probes and scrapers carry no credentials)', async () => {
    for (const path of ['/healthz', '/readyz', '/metrics']) assert.equal((await fetchAll(`${rc.url}${path}`)).status, 200, path);
  });

  it('lets skopeo copy with --src-creds, and refuses it without', async () => {
    const host = new URL(rc.url).host;
    const dest = join(scratch, 'copy');
    const denied = await run('skopeo', ['copy', '--src-tls-verify=false', `docker://${host}/registry.test/team/app:1.0.0`, `dir:${join(scratch, 'nope')}`], { timeout: 60_000 }).then(() => undefined, (e: Error & { stderr?: string }) => e.stderr ?? e.message);
    assert.ok(denied && /unauthorized|authentication required/i.test(denied), denied);
    await run('skopeo', ['copy', '--src-tls-verify=false', '--src-creds', 'alice:wonderland', `docker://${host}/registry.test/team/app:1.0.0`, `dir:${dest}`], { timeout: 60_000 });
    await run('skopeo', ['inspect', '--tls-verify=false', '--creds', `ci:${CI_TOKEN}`, `docker://${host}/registry.test/team/app:1.0.0`], { timeout: 60_000 });
    const { readFile } = await import('node:fs/promises');
    assert.equal(sha256(await readFile(join(dest, img.layers[0]!.digest.slice(7)))), img.layers[0]!.digest);
  });

  it('refuses htpasswd entries that are not bcrypt, naming the line', () => {
    assert.throws(() => parseHtpasswd('alice:$apr1$abc$def\n', 'users.htpasswd'), /users\.htpasswd:1: expected "user:<bcrypt hash>"/);
    assert.throws(() => parseHtpasswd('# ok\nbob:{SHA}abc=\n', 'f'), /f:2:/);
    assert.equal(parseHtpasswd(`\n# c\ncarol:${bcrypt.hashSync('x', 4)}\n`, 'f').size, 1);
  });
});
