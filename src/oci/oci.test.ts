import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isDigest, parseDigest } from './digest.ts';
import { OCI_ERRORS, OciError, toOciError } from './errors.ts';
import { DOCKER_MANIFEST, OCI_INDEX, manifestMediaType, parseAccept } from './media-types.ts';
import { assertName, isTag } from './reference.ts';

describe('OCI grammar', () => {
  it('accepts only registered digest algorithms with exact-length lowercase hex', () => {
    assert.equal(parseDigest(`sha256:${'0'.repeat(64)}`).hex.length, 64);
    assert.equal(parseDigest(`sha512:${'f'.repeat(128)}`).algorithm, 'sha512');
    for (const bad of ['sha256:abc', `sha256:${'A'.repeat(64)}`, `md5:${'0'.repeat(32)}`, `sha256:${'0'.repeat(63)}/`, 'sha256', ':']) {
      assert.throws(() => parseDigest(bad), (e: unknown) => e instanceof OciError && e.code === 'DIGEST_INVALID', bad);
      assert.equal(isDigest(bad), false);
    }
  });

  it('follows the distribution name and tag grammar', () => {
    for (const ok of ['nginx', 'library/nginx', 'a/b-c/d__e/f.g', 'docker.io/library/nginx']) assert.doesNotThrow(() => assertName(ok));
    for (const bad of ['', 'Nginx', 'a//b', '-a', 'a-', 'a/../b', 'a'.repeat(256), 'a:b']) assert.throws(() => assertName(bad), bad);
    assert.ok(isTag('1.27.3') && isTag('latest') && isTag('_x') && isTag('A'.repeat(128)));
    assert.ok(!isTag('.x') && !isTag('-x') && !isTag('A'.repeat(129)) && !isTag('a/b'));
  });

  it('reads Accept as a set of bare media types across repeated headers', () => {
    const set = parseAccept(['application/vnd.oci.image.index.v1+json;q=0.5, application/json', 'APPLICATION/VND.DOCKER.DISTRIBUTION.MANIFEST.V2+JSON']);
    assert.deepEqual([...set].sort(), ['application/json', DOCKER_MANIFEST, OCI_INDEX].sort());
  });

  it('takes the media type from Content-Type, else from the body', () => {
    assert.equal(manifestMediaType(`${OCI_INDEX}; charset=utf-8`, Buffer.from('{}')), OCI_INDEX);
    assert.equal(manifestMediaType('application/json', Buffer.from(JSON.stringify({ mediaType: DOCKER_MANIFEST }))), DOCKER_MANIFEST);
    assert.equal(manifestMediaType(undefined, Buffer.from(JSON.stringify({ schemaVersion: 2, manifests: [] }))), OCI_INDEX);
  });

  it('gives every error code a status and message, and hides unknown errors behind 500 UNKNOWN', () => {
    for (const [code, e] of Object.entries(OCI_ERRORS)) {
      assert.ok(e.status >= 400 && e.status < 600 && e.message.length > 0, code);
    }
    const hidden = toOciError(new Error('secret internal detail'));
    assert.equal(hidden.code, 'UNKNOWN');
    assert.equal(hidden.status, 500);
    assert.ok(!JSON.stringify(hidden.toJSON()).includes('secret internal detail'));
  });
});
