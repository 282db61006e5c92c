// Sends byte ranges of a file to a writable in chunks read into pooled buffers. A chunk is
// released only when the socket has taken it (write callback), so memory per client is bounded
// (IN_FLIGHT chunks).
//
// Responses that read the same bytes of the same content at the same time share one read and one
// buffer: 50 clients of a blob that is downloading, or 8 of a popular layer, move through the
// file together, and each chunk is read once and written to every socket from the same memory.
// Sharing needs an identity for immutable content (`source`): the digest for a stored blob, the
// download for its temp file (never the digest there: a failed download's unverified bytes must
// not reach the next attempt's clients). Reads are aligned to the chunk size so clients line up.
//
// The chunk shrinks as responses multiply: all senders together stay near SEND_BUDGET, so 50
// clients of different blobs read 128 KiB chunks instead of holding 150 MiB of 1 MiB buffers.
import type { FileHandle } from 'node:fs/promises';
import type { Writable } from 'node:stream';

/** 1 MiB reads: Node moves files about twice as fast as with its 64 KiB default here. */
export const SEND_CHUNK = 1 << 20;
/** Chunks held per response: one being read while up to two are written. */
const IN_FLIGHT = 3;
/** Idle buffers kept for the next reads, all sizes together: as much as the responses use at once, so steady sending does not allocate. */
const POOL_BYTES = 24 << 20;
/** What all responses' chunks together aim to stay under (a single client still gets 1 MiB chunks). */
const SEND_BUDGET = 24 << 20;
/** The smallest chunk, however many responses run. */
const MIN_CHUNK = 64 * 1024;

/** Responses currently sending from a file. */
let active = 0;

/** The chunk size a response uses now: a power of two between MIN_CHUNK and SEND_CHUNK. */
function chunkSize(): number {
  let chunk = SEND_CHUNK;
  while (chunk > MIN_CHUNK && chunk * IN_FLIGHT * active > SEND_BUDGET) chunk >>= 1;
  return chunk;
}

/** Idle buffers by size (powers of two from MIN_CHUNK to SEND_CHUNK). */
const pool = new Map<number, Buffer[]>();
let pooledBytes = 0;

function allocate(length: number): Buffer {
  // Small reads (a config blob, a range) get an exact buffer; chunk-sized ones come from the pool.
  if (length < MIN_CHUNK) return Buffer.allocUnsafe(length);
  let size = MIN_CHUNK;
  while (size < length) size <<= 1;
  const buf = pool.get(size)?.pop();
  if (buf) {
    pooledBytes -= size;
    return buf;
  }
  return Buffer.allocUnsafeSlow(size);
}

function recycle(buf: Buffer): void {
  if (buf.length < MIN_CHUNK) return;
  // Room is made by dropping buffers of other sizes, largest first: when the chunk size shrinks
  // under load, the 1 MiB buffers of quieter times must not sit in the pool.
  if (pooledBytes + buf.length > POOL_BYTES) {
    for (const [size, list] of [...pool].sort((a, b) => b[0] - a[0])) {
      while (size !== buf.length && list.length > 0 && pooledBytes + buf.length > POOL_BYTES) {
        list.pop();
        pooledBytes -= size;
      }
    }
    if (pooledBytes + buf.length > POOL_BYTES) return;
  }
  let list = pool.get(buf.length);
  if (!list) pool.set(buf.length, (list = []));
  list.push(buf);
  pooledBytes += buf.length;
}

/** One read of `length` bytes at `position`, shared by every response that holds a reference. */
interface Chunk {
  readonly key: string | undefined;
  readonly buf: Buffer;
  readonly read: Promise<number>;
  refs: number;
}

/** Reads in progress or still being written to some socket, by source, position and length. */
const shared = new Map<string, Chunk>();

/** Reads issued and reads joined so far, the chunks held now, and the idle buffers' sizes (for tests). */
export const sharedReads = {
  issued: 0,
  joined: 0,
  get held(): number {
    return shared.size;
  },
  get pooled(): number[] {
    return [...pool].flatMap(([size, list]) => list.map(() => size));
  },
};

function acquire(handle: FileHandle, source: string | undefined, position: number, length: number): Chunk {
  const key = source === undefined ? undefined : `${source}\0${position}\0${length}`;
  const existing = key === undefined ? undefined : shared.get(key);
  if (existing) {
    existing.refs++;
    sharedReads.joined++;
    return existing;
  }
  const buf = allocate(length);
  sharedReads.issued++;
  const chunk: Chunk = { key, buf, refs: 1, read: handle.read(buf, 0, length, position).then((r) => r.bytesRead) };
  if (key !== undefined) {
    shared.set(key, chunk);
    // A failed read is not shared with later readers: they try again.
    chunk.read.catch(() => {
      if (shared.get(key) === chunk) shared.delete(key);
    });
  }
  return chunk;
}

function release(chunk: Chunk): void {
  if (--chunk.refs > 0) return;
  if (chunk.key !== undefined && shared.get(chunk.key) === chunk) shared.delete(chunk.key);
  recycle(chunk.buf);
}

export class FileSender {
  private readonly handle: FileHandle;
  private readonly out: Writable;
  private readonly source: string | undefined;
  /** Chunks this response holds: being read, or written and not yet taken by the socket. */
  private held = 0;
  /** Releases of chunks handed to the output whose write callback has not come yet. */
  private readonly unwritten = new Set<() => void>();
  private waiter: (() => void) | undefined;
  private closed = false;

  /** `source` names the file's content for sharing reads (see the top of this file); none: no sharing. */
  constructor(handle: FileHandle, out: Writable, source?: string) {
    this.handle = handle;
    this.out = out;
    this.source = source;
    if (out.closed) {
      this.closed = true;
      return;
    }
    active++;
    out.once('close', () => {
      active--;
      this.closed = true;
      // An HTTP response drops writes made after its socket died without calling back. By 'close'
      // the socket is gone and will not touch these buffers again, so they can be released.
      for (const release of [...this.unwritten]) release();
      this.wake();
    });
  }

  /**
   * Reads up to `max` bytes at `position` and writes them to the output. Resolves with the number
   * of bytes sent: 0 at end of file, -1 once the output is closed.
   */
  async sendChunk(position: number, max: number): Promise<number> {
    while (this.held >= IN_FLIGHT) {
      if (this.closed) return -1;
      await new Promise<void>((resolve) => (this.waiter = resolve));
    }
    if (this.closed) return -1;
    // Up to the next chunk boundary, so that responses reading the same content line up.
    const size = chunkSize();
    const length = Math.min(max, size - (position % size));
    const chunk = acquire(this.handle, this.source, position, length);
    this.held++;
    let bytesRead: number;
    try {
      bytesRead = await chunk.read;
    } catch (err) {
      this.done(chunk);
      throw err;
    }
    if (bytesRead === 0 || this.closed) {
      this.done(chunk);
      return this.closed ? -1 : 0;
    }
    const written = (): void => {
      if (!this.unwritten.delete(written)) return;
      this.done(chunk);
    };
    this.unwritten.add(written);
    this.out.write(chunk.buf.subarray(0, bytesRead), written);
    return bytesRead;
  }

  /** Sends [start, end] (inclusive); resolves with the bytes sent (less if the output closed). */
  async sendRange(start: number, end: number): Promise<number> {
    let pos = start;
    while (pos <= end) {
      const n = await this.sendChunk(pos, end + 1 - pos);
      if (n < 0) break;
      if (n === 0) throw new Error(`file ended at ${pos}, before byte ${end}`);
      pos += n;
    }
    return pos - start;
  }

  private done(chunk: Chunk): void {
    release(chunk);
    this.held--;
    this.wake();
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = undefined;
    w?.();
  }
}
