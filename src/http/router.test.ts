import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { OciError } from '../oci/errors.ts';
import { Router } from './router.ts';

const router = new Router([
  { name: 'docker.io', mirror: true, aliases: ['index.docker.io'], implicitLibrary: true },
  { name: 'ghcr.io', mirror: false, aliases: [], implicitLibrary: false },
  { name: 'quay.io', mirror: false, aliases: [], implicitLibrary: false },
]);
const D = `sha256:${'a'.repeat(64)}`;

function code(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    return err instanceof OciError ? err.code : 'not-oci';
  }
  return 'no-error';
}

describe('routing names to upstreams', () => {
  it('maps bare names (dockerd mirror mode) to the mirror upstream with library/ added', () => {
    assert.deepEqual(router.route('GET', '/v2/nginx/manifests/1.27'), { kind: 'manifest', upstream: 'docker.io', repo: 'library/nginx', clientName: 'nginx', reference: '1.27' });
    assert.deepEqual(router.route('HEAD', '/v2/library/nginx/manifests/latest'), { kind: 'manifest', upstream: 'docker.io', repo: 'library/nginx', clientName: 'library/nginx', reference: 'latest' });
    assert.equal((router.route('GET', '/v2/bitnami/redis/manifests/7') as { repo: string }).repo, 'bitnami/redis');
  });

  it('selects the upstream by containerd ns=, with or without an explicit prefix', () => {
    assert.deepEqual(router.route('GET', `/v2/org/app/blobs/${D}?ns=ghcr.io`), { kind: 'blob', upstream: 'ghcr.io', repo: 'org/app', clientName: 'org/app', digest: D });
    assert.equal((router.route('GET', '/v2/nginx/manifests/1?ns=docker.io') as { repo: string }).repo, 'library/nginx');
    assert.equal((router.route('GET', '/v2/nginx/manifests/1?ns=index.docker.io') as { upstream: string }).upstream, 'docker.io');
    assert.equal((router.route('GET', '/v2/docker.io/library/nginx/manifests/1?ns=docker.io') as { repo: string }).repo, 'library/nginx');
    assert.equal(code(() => router.route('GET', '/v2/x/manifests/1?ns=evil.example')), 'NAME_UNKNOWN');
  });

  it('takes the first component as the upstream in explicit-prefix mode, adding library/ only for Docker Hub', () => {
    assert.deepEqual(router.route('GET', '/v2/docker.io/nginx/manifests/1.27'), { kind: 'manifest', upstream: 'docker.io', repo: 'library/nginx', clientName: 'docker.io/nginx', reference: '1.27' });
    assert.equal((router.route('GET', '/v2/ghcr.io/org/app/manifests/1.0') as { repo: string }).repo, 'org/app');
    assert.equal((router.route('GET', '/v2/quay.io/single/manifests/1.0') as { repo: string }).repo, 'single');
  });

  it('never routes to a host that is not configured', () => {
    // Not a configured prefix: treated as a Docker Hub name, which is invalid (dots+colon) or stays on Docker Hub.
    const r = router.route('GET', '/v2/evil.example/x/manifests/1') as { upstream: string };
    assert.equal(r.upstream, 'docker.io');
    const noMirror = new Router([{ name: 'ghcr.io', mirror: false, aliases: [], implicitLibrary: false }]);
    assert.equal(code(() => noMirror.route('GET', '/v2/evil.example/x/manifests/1')), 'NAME_UNKNOWN');
  });

  it('takes a workshop scope from /v2/ws/<scope>/ or from <scope>.<hostSuffix>, the path first', () => {
    const scoped = new Router([{ name: 'docker.io', mirror: true, aliases: [], implicitLibrary: true }], { hostSuffix: 'cache.example', allowed: ['ws1', 'ws2'] });
    assert.deepEqual(scoped.route('GET', '/v2/ws/ws1/docker.io/library/nginx/manifests/latest'), { kind: 'manifest', upstream: 'docker.io', repo: 'library/nginx', clientName: 'docker.io/library/nginx', scope: 'ws1', reference: 'latest' });
    assert.equal((scoped.route('GET', '/v2/ws/ws1/nginx/manifests/latest') as { repo: string }).repo, 'library/nginx', 'mirror-style names work under a scope too');
    assert.equal((scoped.route('GET', '/v2/nginx/manifests/latest', 'ws2.cache.example:5000') as { scope?: string }).scope, 'ws2');
    assert.equal((scoped.route('GET', '/v2/ws/ws1/nginx/manifests/latest', 'ws2.cache.example') as { scope?: string }).scope, 'ws1');
    assert.equal((scoped.route('GET', '/v2/nginx/manifests/latest', 'cache.example') as { scope?: string }).scope, undefined, 'the bare suffix is the global scope');
    assert.equal((scoped.route('GET', '/v2/nginx/manifests/latest', 'other.host') as { scope?: string }).scope, undefined);
    assert.equal(code(() => scoped.route('GET', '/v2/ws/ws3/nginx/manifests/latest')), 'DENIED', 'not in scopes.allowed');
    assert.equal(code(() => scoped.route('GET', '/v2/nginx/manifests/latest', 'ws3.cache.example')), 'DENIED');
    assert.equal(code(() => router.route('GET', '/v2/ws/UPPER/nginx/manifests/latest')), 'NAME_INVALID');
    assert.equal(code(() => router.route('GET', `/v2/ws/${'a'.repeat(64)}/nginx/manifests/latest`)), 'NAME_INVALID');
    assert.equal(code(() => router.route('GET', '/v2/ws/-x/nginx/manifests/latest')), 'NAME_INVALID');
    assert.equal((router.route('GET', '/v2/nginx/manifests/latest', 'ws1.cache.example') as { scope?: string }).scope, undefined, 'no hostSuffix configured: Host is ignored');
  });

  it('routes tags/list with only n and last passed on', () => {
    assert.deepEqual(router.route('GET', '/v2/ghcr.io/org/app/tags/list?n=10&last=v1&evil=1'), { kind: 'tags', upstream: 'ghcr.io', repo: 'org/app', clientName: 'ghcr.io/org/app', query: 'n=10&last=v1' });
  });

  it('refuses writes, invalid references and unknown endpoints with the right codes', () => {
    assert.equal(code(() => router.route('PUT', '/v2/x/manifests/1')), 'UNSUPPORTED');
    assert.equal(code(() => router.route('GET', '/v2/x/blobs/uploads/')), 'UNSUPPORTED');
    assert.equal(code(() => router.route('GET', '/v2/x/manifests/sha256:zz')), 'DIGEST_INVALID');
    assert.equal(code(() => router.route('GET', `/v2/x/manifests/${'t'.repeat(129)}`)), 'TAG_INVALID');
    assert.equal(code(() => router.route('GET', '/v2/X/manifests/1')), 'NAME_INVALID');
    assert.equal(code(() => router.route('GET', '/v2/x/referrers/foo')), 'NOT_FOUND');
    assert.equal(code(() => router.route('GET', '/other')), 'NOT_FOUND');
    assert.equal(router.route('GET', '/v2/').kind, 'ping');
  });
});
