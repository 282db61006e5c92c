// Sends byte ranges of a file to a writable through a few reused buffers. A buffer goes back to
// the free list only when the socket has taken it (write callback), so memory per client is
// bounded (BUFFERS × chunk). Buffers are borrowed lazily, sized to what is sent (a 30 KiB config
// blob does not take 3 MiB), and 1 MiB ones return to a shared pool when the response closes, so
// 200 concurrent clients reuse memory instead of churning through fresh allocations.
// The chunk shrinks as responses multiply: all senders together stay near SEND_BUDGET, so 50
// clients of one blob read 128 KiB chunks instead of holding 150 MiB of 1 MiB buffers.
import type { FileHandle } from 'node:fs/promises';
import type { Writable } from 'node:stream';

/** 1 MiB reads: Node moves files about twice as fast as with its 64 KiB default here. */
export const SEND_CHUNK = 1 << 20;
/** In flight per response: one being read while up to two are written. */
const BUFFERS = 3;
/** 1 MiB buffers kept for the next responses (16 MiB). */
const POOL_MAX = 16;
/** What all responses' buffers together aim to stay under (a single client still gets 1 MiB chunks). */
const SEND_BUDGET = 24 << 20;
/** The smallest chunk, however many responses run. */
const MIN_CHUNK = 64 * 1024;
/** Below this, a response gets an exact-size buffer of its own instead of a pooled 1 MiB one. */
const SMALL = 256 * 1024;

const pool: Buffer[] = [];
/** Responses currently sending from a file. */
let active = 0;

/** The chunk size a response uses now: a power of two between MIN_CHUNK and SEND_CHUNK. */
function chunkSize(): number {
  let chunk = SEND_CHUNK;
  while (chunk > MIN_CHUNK && chunk * BUFFERS * active > SEND_BUDGET) chunk >>= 1;
  return chunk;
}

function borrow(): Buffer {
  return pool.pop() ?? Buffer.allocUnsafeSlow(SEND_CHUNK);
}

function giveBack(buf: Buffer): void {
  if (buf.length === SEND_CHUNK && pool.length < POOL_MAX) pool.push(buf);
}

export class FileSender {
  private readonly handle: FileHandle;
  private readonly out: Writable;
  private readonly free: Buffer[] = [];
  private owned = 0;
  private waiter: (() => void) | undefined;
  private closed = false;

  constructor(handle: FileHandle, out: Writable) {
    this.handle = handle;
    this.out = out;
    if (out.closed) {
      this.closed = true;
      return;
    }
    active++;
    out.once('close', () => {
      active--;
      this.closed = true;
      for (const b of this.free.splice(0)) giveBack(b);
      this.wake();
    });
  }

  /**
   * Reads up to `max` bytes at `position` and writes them to the output. Resolves with the number
   * of bytes sent: 0 at end of file, -1 once the output is closed.
   */
  async sendChunk(position: number, max: number): Promise<number> {
    const want = Math.min(max, chunkSize());
    let buf = this.take(want);
    while (!buf) {
      if (this.closed) return -1;
      await new Promise<void>((resolve) => (this.waiter = resolve));
      buf = this.take(want);
    }
    if (this.closed) {
      this.release(buf);
      return -1;
    }
    const { bytesRead } = await this.handle.read(buf, 0, Math.min(max, buf.length), position);
    if (bytesRead === 0 || this.closed) {
      this.release(buf);
      return this.closed ? -1 : 0;
    }
    const chunk = buf;
    this.out.write(bytesRead === chunk.length ? chunk : chunk.subarray(0, bytesRead), () => {
      this.release(chunk);
      this.wake();
    });
    return bytesRead;
  }

  /** A free buffer that can hold `want` bytes (replacing a too-small one), or a new one while under BUFFERS. */
  private take(want: number): Buffer | undefined {
    let buf = this.free.pop();
    if (buf && buf.length < want) {
      this.owned--; // outgrown: a late joiner that started small now reads big chunks
      buf = undefined;
    }
    if (buf) return buf;
    if (this.owned >= BUFFERS) return undefined;
    this.owned++;
    if (want === SEND_CHUNK) return borrow();
    return want < SMALL ? Buffer.allocUnsafe(want) : Buffer.allocUnsafeSlow(want);
  }

  private release(buf: Buffer): void {
    if (this.closed) giveBack(buf);
    else this.free.push(buf);
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

  private wake(): void {
    const w = this.waiter;
    this.waiter = undefined;
    w?.();
  }
}
