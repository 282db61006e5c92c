import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseChallenge } from './auth.ts';
import { statusError } from './errors.ts';
import { parseRateLimitHeader, recordRateLimit, type RateLimitState } from './rate-limit.ts';

describe('upstream protocol details', () => {
  it('parses Docker Hub rate-limit headers and leaves state alone when they are absent', () => {
    assert.deepEqual(parseRateLimitHeader('100;w=21600'), { value: 100, windowSeconds: 21600 });
    assert.deepEqual(parseRateLimitHeader('76;w=21600;comment="x"'), { value: 76, windowSeconds: 21600 });
    assert.equal(parseRateLimitHeader('abc'), undefined);
    assert.equal(parseRateLimitHeader(undefined), undefined);
    const state: RateLimitState = {};
    assert.equal(recordRateLimit(state, {}), false);
    assert.deepEqual(state, {});
    assert.equal(recordRateLimit(state, { 'ratelimit-limit': '100;w=21600', 'ratelimit-remaining': '0;w=21600' }, 5), true);
    assert.deepEqual(state, { limit: 100, remaining: 0, windowSeconds: 21600, updatedAt: 5 });
  });

  it('parses Bearer and Basic challenges', () => {
    const c = parseChallenge('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull"');
    assert.deepEqual(c, { scheme: 'bearer', params: { realm: 'https://auth.docker.io/token', service: 'registry.docker.io', scope: 'repository:library/alpine:pull' } });
    assert.deepEqual(parseChallenge('Basic realm="Registry Realm"'), { scheme: 'basic', params: { realm: 'Registry Realm' } });
    assert.equal(parseChallenge('Negotiate abc'), undefined);
  });

  it('maps upstream statuses to client errors, tolerating non-JSON bodies', () => {
    const throttled = statusError('docker.io', 429, 'Too Many Requests (HAP429).', 'MANIFEST_UNKNOWN', '60');
    assert.equal(throttled.oci.code, 'TOOMANYREQUESTS');
    assert.equal(throttled.oci.headers['retry-after'], '60');
    assert.ok(throttled.transient);
    const missing = statusError('docker.io', 404, '{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}', 'MANIFEST_UNKNOWN');
    assert.equal(missing.oci.status, 404);
    assert.equal(missing.transient, false);
    assert.equal(statusError('docker.io', 502, '', 'BLOB_UNKNOWN').oci.code, 'UPSTREAM_UNAVAILABLE');
    assert.equal(statusError('docker.io', 401, '', 'BLOB_UNKNOWN').oci.code, 'DENIED');
  });
});
