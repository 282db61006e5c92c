// FileSender's memory bound: chunks shrink while many responses send at once, and grow back to
// 1 MiB once they have closed (the count of live senders must not leak); and its shared reads:
// concurrent responses of the same content read each chunk once, different contents never share.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, open, rm, writeFile, type FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Writable } from 'node:stream';
import { describe, it } from 'node:test';
import { FileSender, SEND_CHUNK, sharedReads } from './file-sender.ts';

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

describe('FileSender shared reads', () => {
  async function withFile(size: number, fn: (handle: FileHandle, data: Buffer) => Promise<void>): Promise<void> {
    const dir = await mkdtemp(join(tmpdir(), 'regcache-shared-'));
    const path = join(dir, 'blob');
    const data = randomBytes(size);
    await writeFile(path, data);
    const handle = await open(path, 'r');
    try {
      await fn(handle, data);
    } finally {
      await handle.close();
      await rm(dir, { recursive: true, force: true });
    }
  }

  /** Sends [0, size) to a fresh output that, like a socket, copies each chunk before calling back. */
  async function fetchAll(handle: FileHandle, source: string | undefined, size: number): Promise<Buffer> {
    const parts: Buffer[] = [];
    const out = new Writable({
      write(chunk: Buffer, _enc, done) {
        parts.push(Buffer.from(chunk));
        setImmediate(done);
      },
    });
    await new FileSender(handle, out, source).sendRange(0, size - 1);
    await new Promise((r) => out.end(r));
    return Buffer.concat(parts);
  }

  it('reads each chunk once for eight concurrent responses of the same content, and each gets the exact bytes', async () => {
    const size = 8 * SEND_CHUNK + 12345;
    await withFile(size, async (handle, data) => {
      const before = { ...sharedReads };
      const got = await Promise.all(Array.from({ length: 8 }, () => fetchAll(handle, 'blob:sha256:test', size)));
      for (const g of got) assert.ok(g.equals(data), 'every response carries the file, byte for byte');
      const issued = sharedReads.issued - before.issued;
      const joined = sharedReads.joined - before.joined;
      // 9 chunks per response; unshared that is 72 reads.
      assert.ok(issued < 8 * 9 / 2, `reads issued: ${issued}, joined: ${joined}`);
      assert.equal(issued + joined, 8 * 9, 'every chunk was either read or joined');
      assert.equal(sharedReads.held, 0, 'no chunk is held once the responses are done');
    });
  });

  it('never shares between different sources or without one (a failed download is not the next one)', async () => {
    const size = 2 * SEND_CHUNK;
    await withFile(size, async (handle, data) => {
      const before = sharedReads.issued;
      const got = await Promise.all([fetchAll(handle, 'download:1', size), fetchAll(handle, 'download:2', size), fetchAll(handle, undefined, size)]);
      for (const g of got) assert.ok(g.equals(data));
      assert.equal(sharedReads.issued - before, 3 * 2, 'three responses, two chunks each, all read separately');
    });
  });

  it('releases the chunks of a response whose output closes mid-way, and the others finish', async () => {
    const size = 6 * SEND_CHUNK;
    await withFile(size, async (handle, data) => {
      const quitter = new Writable({ write: () => undefined }); // never calls back: its writes stay pending
      const sender = new FileSender(handle, quitter, 'blob:sha256:quit');
      const sent = sender.sendRange(0, size - 1);
      const other = fetchAll(handle, 'blob:sha256:quit', size);
      await new Promise((r) => setTimeout(r, 20));
      quitter.destroy();
      assert.ok((await sent) < size, 'the closed response stops');
      assert.ok((await other).equals(data), 'the response sharing its chunks completes intact');
      await new Promise((r) => setImmediate(r));
      assert.equal(sharedReads.held, 0, 'nothing stays held by the closed response');
    });
  });

  it('makes room in a full pool for the chunk size in use by dropping idle buffers of other sizes', async () => {
    const size = 3 * SEND_CHUNK;
    await withFile(size, async (handle) => {
      // 8 responses at once hold 3 chunks of 1 MiB each; once the outputs take them all, the pool is full.
      const pending: Array<() => void> = [];
      const outs = Array.from({ length: 8 }, () => new Writable({ write: (_c, _e, done) => void pending.push(done) }));
      // sendRange resolves once its last chunk is handed to the output, all 3 still unwritten.
      await Promise.all(outs.map((o) => new FileSender(handle, o).sendRange(0, size - 1)));
      while (pending.length > 0) {
        for (const done of pending.splice(0)) done();
        await new Promise((r) => setImmediate(r));
      }
      for (const o of outs) o.destroy();
      assert.deepEqual(sharedReads.pooled, Array(24).fill(SEND_CHUNK), 'the 1 MiB chunks just used fill the pool, displacing idle buffers of other sizes');
      // 40 at once read 128 KiB chunks; their buffers must displace the idle 1 MiB ones.
      await Promise.all(Array.from({ length: 40 }, () => fetchAll(handle, undefined, SEND_CHUNK)));
      const pooled = sharedReads.pooled;
      assert.ok(pooled.includes(128 * 1024), `128 KiB buffers are pooled: ${[...new Set(pooled)].join(', ')}`);
      assert.ok(pooled.reduce((a, b) => a + b, 0) <= 24 * SEND_CHUNK, 'and the pool stays within its 24 MiB cap');
    });
  });
});
