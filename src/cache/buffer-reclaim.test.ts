import assert from 'node:assert/strict';
import { PerformanceObserver, constants, type PerformanceEntry } from 'node:perf_hooks';
import { test } from 'node:test';
import { RECLAIM_EVERY, canReclaim, noteDownloaded } from './buffer-reclaim.ts';

/** Young-generation collections V8 reports while `work` runs. */
async function minorGcsDuring(work: () => void): Promise<number> {
  let minor = 0;
  const obs = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) if ((e as PerformanceEntry & { detail?: { kind?: number } }).detail?.kind === constants.NODE_PERFORMANCE_GC_MINOR) minor++;
  });
  obs.observe({ entryTypes: ['gc'] });
  work();
  // gc entries are delivered asynchronously
  await new Promise((r) => setTimeout(r, 50));
  obs.disconnect();
  return minor;
}

test('the young-generation hook is available on the supported runtime', () => {
  assert.equal(canReclaim, true);
});

test('collects the young generation once per RECLAIM_EVERY downloaded bytes, counted across calls', async () => {
  noteDownloaded(RECLAIM_EVERY); // starts the count from a collection
  const chunk = 64 * 1024;
  const none = await minorGcsDuring(() => {
    for (let n = 0; n < RECLAIM_EVERY - chunk; n += chunk) noteDownloaded(chunk);
  });
  const four = await minorGcsDuring(() => {
    for (let n = 0; n < 4 * RECLAIM_EVERY; n += chunk) noteDownloaded(chunk);
  });
  // V8 may add collections of its own, never fewer than the ones asked for.
  assert.ok(none <= 1, `expected no forced collection before RECLAIM_EVERY bytes, saw ${none}`);
  assert.ok(four >= 4, `expected at least 4 collections for 4 × RECLAIM_EVERY bytes, saw ${four}`);
});
