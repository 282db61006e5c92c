import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { OciError } from '../oci/errors.ts';
import { parseRange } from './respond.ts';

describe('Range parsing (single ranges, RFC 9110)', () => {
  it('answers the distribution-spec conformance cases', () => {
    assert.deepEqual(parseRange('bytes=500-1499', 3000), { start: 500, end: 1499 });
    assert.deepEqual(parseRange('bytes=500-', 3000), { start: 500, end: 2999 });
    assert.deepEqual(parseRange('bytes=-500', 3000), { start: 2500, end: 2999 });
    assert.deepEqual(parseRange('bytes=2000-5000', 3000), { start: 2000, end: 2999 }, 'clamped to the length');
    assert.equal(parseRange(undefined, 3000), undefined);
  });

  it('refuses reversed, out-of-range, multi-range and malformed ranges with RANGE_INVALID/416', () => {
    for (const h of ['bytes=500-0', 'bytes=3000-', 'bytes=0-1,5-6', 'bytes=abc', 'items=0-1', 'bytes=-0', 'bytes=-']) {
      assert.throws(() => parseRange(h, 3000), (e: unknown) => e instanceof OciError && e.code === 'RANGE_INVALID' && e.status === 416, h);
    }
  });
});
