// FileSender's memory bound: chunks shrink while many responses send at once, and grow back to
// 1 MiB once they have closed (the count of live senders must not leak).
import assert from 'node:assert/strict';
import { mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { describe, it } from 'node:test';
import { FileSender, SEND_CHUNK } from './file-sender.ts';

describe('FileSender', () => {
  it('shrinks chunks under many concurrent responses and restores 1 MiB chunks when they close', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'regcache-sender-'));
    const path = join(dir, 'blob');
    await writeFile(path, Buffer.alloc(4 * SEND_CHUNK, 7));
    const handle = await open(path, 'r');
    try {
      const first = new PassThrough();
      assert.equal(await new FileSender(handle, first).sendChunk(0, 4 * SEND_CHUNK), SEND_CHUNK, 'alone: 1 MiB chunks');
      first.destroy();
      await new Promise((r) => setImmediate(r));

      const outs = Array.from({ length: 40 }, () => new PassThrough());
      const senders = outs.map((o) => new FileSender(handle, o));
      const sent = await Promise.all(senders.map((s) => s.sendChunk(0, 4 * SEND_CHUNK)));
      for (const n of sent) assert.ok(n > 0 && n <= 256 * 1024, `40 at once: small chunks (${n} bytes)`);
      const bytes = await new Promise<Buffer>((resolve) => outs[0]!.once('data', resolve));
      assert.deepEqual(bytes, Buffer.alloc(sent[0]!, 7), 'the bytes of the file');

      for (const o of outs) o.destroy();
      await new Promise((r) => setImmediate(r));
      const last = new PassThrough();
      assert.equal(await new FileSender(handle, last).sendChunk(0, 4 * SEND_CHUNK), SEND_CHUNK, 'all closed: 1 MiB chunks again');
      last.destroy();
      const closed = new PassThrough();
      closed.destroy();
      await new Promise((r) => setImmediate(r));
      assert.equal(await new FileSender(handle, closed).sendChunk(0, SEND_CHUNK), -1, 'an output already closed gets nothing');
    } finally {
      await handle.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
