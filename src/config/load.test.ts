import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ConfigError, buildConfig, loadConfig } from './load.ts';
import { DEFAULTS } from './schema.ts';
import { parseDuration, parseSize } from './units.ts';

describe('configuration', () => {
  it('runs on the embedded defaults: Docker Hub as the mirror upstream, data under ./data', () => {
    const c = loadConfig({ env: {} });
    assert.equal(c.listen, '0.0.0.0:5000');
    assert.equal(c.storage.root, './data');
    assert.equal(c.upstreams[0]?.url, 'https://registry-1.docker.io');
    assert.equal(c.upstreams[0]?.mirror, true);
    assert.equal(c.upstreams[0]?.implicitLibrary, true);
    assert.equal(c.tags.ttlMs, DEFAULTS.tags.ttlMs);
  });

  it('validates the example config shipped in config/', () => {
    const c = loadConfig({ file: fileURLToPath(new URL('../../config/regcache.example.yaml', import.meta.url)), env: {} });
    assert.ok(c.upstreams.length >= 2);
    assert.equal(c.upstreams.filter((u) => u.mirror).length, 1);
  });

  it('names the exact field in every problem, all at once', () => {
    try {
      buildConfig({
        listen: 'nope',
        tags: { ttl: 'soon' },
        upstreams: [{ name: 'ok.io', url: 'ftp://x' }, { name: 'Bad Name', url: 'https://x.io/path' }, { url: 'https://y.io', mirror: 'yes' }],
        extra: 1,
      });
      assert.fail('expected ConfigError');
    } catch (err) {
      assert.ok(err instanceof ConfigError);
      const text = err.problems.join('\n');
      assert.match(text, /listen: expected host:port/);
      assert.match(text, /tags\.ttl: expected a duration/);
      assert.match(text, /upstreams\[0\]\.url: expected an http\(s\) URL.*"ftp:\/\/x"/);
      assert.match(text, /upstreams\[1\]\.name: expected a registry host name/);
      assert.match(text, /upstreams\[1\]\.url: .*"https:\/\/x.io\/path"/);
      assert.match(text, /upstreams\[2\]\.name: required/);
      assert.match(text, /upstreams\[2\]\.mirror: expected true or false/);
      assert.match(text, /extra: unknown key/);
    }
  });

  it('refuses two mirror upstreams and duplicate names', () => {
    assert.throws(() => buildConfig({ upstreams: [{ name: 'a.io', url: 'https://a.io', mirror: true }, { name: 'b.io', url: 'https://b.io', mirror: true }] }), /at most one upstream may have mirror/);
    assert.throws(() => buildConfig({ upstreams: [{ name: 'a.io', url: 'https://a.io' }, { name: 'a.io', url: 'https://b.io' }] }), /used twice/);
  });

  it('takes secrets and overrides from the environment', () => {
    const c = buildConfig(
      { upstreams: [{ name: 'docker.io', url: 'https://registry-1.docker.io', mirror: true, username: 'file-user' }] },
      { REGCACHE_UPSTREAM_DOCKER_IO_USERNAME: 'env-user', REGCACHE_UPSTREAM_DOCKER_IO_PASSWORD: 'pat', REGCACHE_LISTEN: '127.0.0.1:6000', REGCACHE_TAGS_TTL: '30s' },
    );
    assert.equal(c.upstreams[0]?.username, 'env-user');
    assert.equal(c.upstreams[0]?.password, 'pat');
    assert.equal(c.listen, '127.0.0.1:6000');
    assert.equal(c.tags.ttlMs, 30_000);
  });

  it('treats an empty environment variable as unset (empty Secret values), leaving no empty credentials or admin token', () => {
    const c = buildConfig({}, { REGCACHE_UPSTREAM_DOCKER_IO_USERNAME: '', REGCACHE_UPSTREAM_DOCKER_IO_PASSWORD: '', REGCACHE_ADMIN_TOKEN: '', REGCACHE_LISTEN: '' });
    assert.equal(c.upstreams[0]?.username, undefined);
    assert.equal(c.upstreams[0]?.password, undefined);
    assert.equal(c.admin.token, undefined);
    assert.equal(c.listen, '0.0.0.0:5000');
  });

  it('validates workshop settings: floating patterns, tag policy, scopes, prefetch, allow/deny lists', () => {
    const c = buildConfig({
      tags: { floating: ['latest', 'v*', '/^\\d+$/'], policy: 'warn' },
      scopes: { hostSuffix: 'Cache.Example', allowed: ['ws1'], pinTtl: '8h' },
      prefetch: { platforms: ['linux/amd64'], reserve: 20 },
      upstreams: [{ name: 'docker.io', url: 'https://registry-1.docker.io', mirror: true, allow: ['library/*'], deny: ['library/evil'] }],
    });
    assert.deepEqual(c.tags.floating, ['latest', 'v*', '/^\\d+$/']);
    assert.equal(c.tags.policy, 'warn');
    assert.deepEqual(c.scopes, { hostSuffix: 'cache.example', allowed: ['ws1'], pinTtlMs: 8 * 3_600_000 });
    assert.deepEqual(c.prefetch, { platforms: ['linux/amd64'], reserve: 20 });
    assert.deepEqual(c.upstreams[0]?.allow, ['library/*']);
    const d = buildConfig({});
    assert.equal(d.tags.policy, 'pin');
    assert.equal(d.scopes.pinTtlMs, 24 * 3_600_000);
    assert.throws(
      () => buildConfig({ tags: { floating: ['/(/'], policy: 'maybe' }, scopes: { allowed: ['Bad_Name'], pinTtl: 'soon' }, prefetch: { platforms: ['amd64'], reserve: -1 }, upstreams: [{ name: 'x.io', url: 'https://x.io', allow: 'library/*' }] }),
      (err: Error & { problems?: string[] }) => {
        const p = err.problems?.join('\n') ?? '';
        for (const field of ['tags.floating[0]', 'tags.policy', 'scopes.allowed', 'scopes.pinTtl', 'prefetch.platforms', 'prefetch.reserve', 'upstreams[0].allow']) assert.ok(p.includes(field), `${field} in:\n${p}`);
        return true;
      },
    );
  });

  it('floats the branch-like names and versions without a patch level by default', async () => {
    const { Policy } = await import('../workshops/policy.ts');
    const policy = new Policy(buildConfig({}));
    for (const t of ['latest', 'main', 'master', 'develop', '1', '1.27', 'v2', '1.27-alpine', '3-slim']) assert.ok(policy.isFloating(t), `${t} floats`);
    for (const t of ['1.27.3', 'v1.2.3', '1.27.3-alpine', 'sha-abc123', '2024-01-01', 'stable-20240101']) assert.ok(!policy.isFloating(t), `${t} is fixed`);
  });

  it('freezes the result', () => {
    const c = buildConfig({});
    assert.ok(Object.isFrozen(c) && Object.isFrozen(c.upstreams) && Object.isFrozen(c.upstreams[0]));
  });

  it('parses human durations and sizes', () => {
    assert.equal(parseDuration('5m'), 300_000);
    assert.equal(parseDuration('1h30m'), 5_400_000);
    assert.equal(parseDuration('250ms'), 250);
    assert.equal(parseDuration(2), 2000);
    assert.equal(parseDuration('5 minutes'), undefined);
    assert.equal(parseSize('4MiB'), 4 * 2 ** 20);
    assert.equal(parseSize('5GiB'), 5 * 2 ** 30);
    assert.equal(parseSize('1.5GB'), 1.5e9);
    assert.equal(parseSize('lots'), undefined);
  });
});
