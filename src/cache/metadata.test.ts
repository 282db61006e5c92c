// The storage index table: recency order across load chunks, replacement by digest, deletion, and
// the one-time move of index records that older versions stored as keyv rows.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import Keyv from 'keyv';
import KeyvSqlite from '@keyv/sqlite';
import { Metadata, type IndexRecord } from './metadata.ts';

const digest = (i: number): string => `sha256:${i.toString(16).padStart(64, '0')}`;
const record = (seq: number, kind: IndexRecord['kind'] = 'blob'): IndexRecord => ({ size: seq * 10, kind, seq, at: 1_700_000_000_000 + seq });

async function loaded(meta: Metadata): Promise<{ rows: Array<[string, number, string]>; last: number }> {
  const rows: Array<[string, number, string]> = [];
  const last = await meta.loadIndex((d, size, kind) => rows.push([d, size, kind]));
  return { rows, last };
}

describe('metadata: storage index table', () => {
  let root: string;
  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'regcache-meta-'));
  });
  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it('loads in recency order across chunks, a use replaces the row of its digest, deletes stick', async () => {
    const meta = Metadata.sqlite(await mkdtemp(join(root, 'order-')), { loadChunk: 7 });
    // Written out of order and in two transactions; seq decides.
    await meta.writeIndex([25, 3, 11, 1, 19].map((s) => [digest(s), record(s, s % 2 ? 'manifest' : 'blob')] as const));
    await meta.writeIndex(Array.from({ length: 20 }, (_, i) => [digest(100 + i), record(100 + i)] as const));
    // digest(3) used again: moves to the most recent end, same single row.
    await meta.writeIndex([[digest(3), record(500, 'manifest')]]);
    await meta.deleteIndex(digest(11));
    const { rows, last } = await loaded(meta);
    assert.equal(last, 500);
    assert.deepEqual(rows.map((r) => r[0]), [digest(1), digest(19), digest(25), ...Array.from({ length: 20 }, (_, i) => digest(100 + i)), digest(3)]);
    assert.deepEqual(rows.at(-1), [digest(3), 5000, 'manifest']);
    assert.deepEqual(rows[0], [digest(1), 10, 'manifest']);
    assert.equal((await meta.indexRecord(digest(3)))?.at, 1_700_000_000_500);
    assert.equal(await meta.indexRecord(digest(11)), undefined);
    await meta.close();
  });

  it('moves index records kept as keyv rows by older versions into the table, once, in order', async () => {
    const dir = await mkdtemp(join(root, 'legacy-'));
    const store = new KeyvSqlite({ uri: `sqlite://${join(dir, 'metadata.sqlite')}` });
    const old = new Keyv({ store, namespace: 'regcache' });
    await old.set(`idx:${digest(2)}`, record(2, 'manifest'));
    await old.set(`idx:${digest(1)}`, record(9));
    await old.set(`tag:docker.io/library/nginx:1`, { digest: digest(2), mediaType: 'x', size: 1, checkedAt: 1 });
    await old.disconnect();

    const meta = Metadata.sqlite(dir);
    const { rows, last } = await loaded(meta);
    assert.deepEqual(rows, [[digest(2), 20, 'manifest'], [digest(1), 90, 'blob']]);
    assert.equal(last, 9);
    assert.equal((await meta.getTag('docker.io', 'library/nginx', '1'))?.digest, digest(2), 'other records untouched');
    const keys: string[] = [];
    for await (const [k] of meta.scan('idx:')) keys.push(k);
    assert.deepEqual(keys, [], 'the keyv rows are gone');
    await meta.close();

    const again = Metadata.sqlite(dir);
    assert.equal((await loaded(again)).rows.length, 2, 'reopening moves nothing twice');
    await again.close();
  });

  it('keeps the same contract in memory (tests without sqlite)', async () => {
    const meta = Metadata.memory();
    await meta.writeIndex([[digest(2), record(2)], [digest(1), record(1, 'manifest')]]);
    await meta.writeIndex([[digest(1), record(3, 'manifest')]]);
    const { rows, last } = await loaded(meta);
    assert.deepEqual(rows.map((r) => r[0]), [digest(2), digest(1)]);
    assert.equal(last, 3);
  });
});
