// The HTTP edge: endpoints, OCI error JSON for everything that goes wrong, hostile bytes.
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { OCI_ERRORS } from '../oci/errors.ts';
import { errorCode, fetchAll, startRegcache, type Harness } from '../testing/harness.ts';

function rawRequest(port: number, text: string): Promise<string> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    s.on('data', (c) => chunks.push(c));
    s.on('close', () => resolve(Buffer.concat(chunks).toString('latin1')));
    s.on('error', () => undefined);
    s.write(text);
  });
}

describe('HTTP edge', () => {
  let rc: Harness;
  before(async () => {
    // The upstream is never contacted by these tests: a closed port proves it.
    rc = await startRegcache({ upstreams: [{ name: 'docker.io', url: 'http://127.0.0.1:9', mirror: true }, { name: 'ghcr.io', url: 'http://127.0.0.1:9' }] });
  });
  after(async () => rc.stop({ wipe: true }));

  it('answers the /v2/ ping with the API version header', async () => {
    const r = await fetchAll(`${rc.url}/v2/`);
    assert.equal(r.status, 200);
    assert.equal(r.headers['docker-distribution-api-version'], 'registry/2.0');
  });

  it('refuses pushes with UNSUPPORTED/405 and OCI error JSON', async () => {
    for (const [method, path] of [['POST', '/v2/library/x/blobs/uploads/'], ['PUT', '/v2/library/x/manifests/1'], ['DELETE', '/v2/library/x/manifests/1']] as const) {
      const r = await fetchAll(`${rc.url}${path}`, { method });
      assert.equal(r.status, 405);
      assert.equal(errorCode(r), 'UNSUPPORTED');
    }
  });

  it('answers NAME_UNKNOWN for an ns that is not a configured upstream, without contacting anything', async () => {
    const r = await fetchAll(`${rc.url}/v2/library/x/manifests/1?ns=evil.example.com`);
    assert.equal(r.status, 404);
    assert.equal(errorCode(r), 'NAME_UNKNOWN');
  });

  it('rejects malformed names, digests and references with 400 and the matching code', async () => {
    const cases: Array<[string, string]> = [
      ['/v2/Library/X/manifests/1', 'NAME_INVALID'],
      ['/v2/library/x/blobs/sha256:abc', 'DIGEST_INVALID'],
      ['/v2/library/x/blobs/md5:d41d8cd98f00b204e9800998ecf8427e', 'DIGEST_INVALID'],
      ['/v2/library/x/manifests/-bad', 'TAG_INVALID'],
      [`/v2/${'a'.repeat(256)}/manifests/1`, 'NAME_INVALID'],
      ['/v2/library/x/tags/list?n=abc', 'UNSUPPORTED'],
    ];
    for (const [path, code] of cases) {
      const r = await fetchAll(`${rc.url}${path}`);
      assert.equal(r.status, 400, path);
      assert.equal(errorCode(r), code, path);
    }
    // HTTP clients normalise dot segments; send the raw bytes to see what the server does with them.
    for (const path of ['/v2/library/../etc/manifests/1', '/v2/library/%2e%2e/manifests/1', '/v2/library/..%2fetc/manifests/1', '/v2/library/x/blobs/sha256:../../../etc/passwd', '/v2/a\x00b/manifests/1']) {
      const raw = await rawRequest(Number(new URL(rc.url).port), `GET ${path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
      assert.match(raw, /^HTTP\/1\.1 400 /, path);
      assert.match(raw, /\{"errors":\[\{"code":"(NAME_INVALID|DIGEST_INVALID|UNSUPPORTED)"/, path);
    }
  });

  it('answers unknown endpoints with 404 OCI error JSON', async () => {
    const r = await fetchAll(`${rc.url}/nope`);
    assert.equal(r.status, 404);
    assert.equal(errorCode(r), 'NOT_FOUND');
  });

  it('passes upstream unavailability on as 503 UPSTREAM_UNAVAILABLE', async () => {
    const r = await fetchAll(`${rc.url}/v2/ghcr.io/org/app/manifests/1.0`);
    assert.equal(r.status, 503);
    assert.equal(errorCode(r), 'UPSTREAM_UNAVAILABLE');
  });

  it('shrugs off a TLS ClientHello on the plain-HTTP port and keeps serving', async () => {
    const hello = Buffer.from('16030100a5010000a10303' + '00'.repeat(64), 'hex');
    const reply = await new Promise<Buffer>((resolve) => {
      const s = connect(Number(new URL(rc.url).port), '127.0.0.1');
      const chunks: Buffer[] = [];
      s.on('data', (c) => chunks.push(c));
      s.on('close', () => resolve(Buffer.concat(chunks)));
      s.on('error', () => undefined);
      s.write(hello);
    });
    assert.ok(!reply.toString('latin1').startsWith('HTTP/1.1 200'), 'no HTTP success to a TLS probe');
    const ping = await fetchAll(`${rc.url}/v2/`);
    assert.equal(ping.status, 200);
  });

  it('answers oversized request headers with 431 and keeps serving', async () => {
    const raw = await rawRequest(Number(new URL(rc.url).port), `GET /v2/ HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(64 * 1024)}\r\n\r\n`);
    assert.match(raw, /^HTTP\/1\.1 431 /);
    assert.equal((await fetchAll(`${rc.url}/v2/`)).status, 200);
  });

  it('serves health, readiness and metrics', async () => {
    assert.equal((await fetchAll(`${rc.url}/healthz`)).status, 200);
    assert.equal((await fetchAll(`${rc.url}/readyz`)).status, 200);
    const m = await fetchAll(`${rc.url}/metrics`);
    assert.match(m.body.toString(), /regcache_requests_total/);
  });

  it('documents every OCI error code it can send in the README', async () => {
    const { readFile } = await import('node:fs/promises');
    const readme = await readFile(new URL('../../README.md', import.meta.url), 'utf8');
    for (const code of Object.keys(OCI_ERRORS)) assert.ok(readme.includes(`\`${code}\``), `README lacks ${code}`);
  });
});
