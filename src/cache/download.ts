// One upstream blob fetch shared by every client that wants it. Bytes are hashed and written to a
// temp file as they arrive; clients that are caught up get each chunk straight from memory, late
// or slow ones read it back from the file, so a slow client never holds memory or the upstream.
//
// Invariant: no response ever completes with unverified bytes. Each client's final byte is held
// back until the whole blob has matched its digest and length and was renamed into the store; on
// any failure every client still receiving is aborted, so it sees a broken transfer, never a 200.
//
// Rule for departures: the fetch belongs to the cache, not to a client. It runs to completion
// (bounded by the upstream idle timeout) even if every client disconnects, so the bytes already
// paid for upstream are kept.
import type { Writable } from 'node:stream';
import type { Logger } from '../observability/logger.ts';
import { newHash, type Digest } from '../oci/digest.ts';
import { VerificationError } from '../upstream/errors.ts';
import { header, type UpstreamResponse } from '../upstream/registry.ts';
import type { BlobStore, StoredBlob, TempFile } from './blob-store.ts';
import { noteDownloaded } from './buffer-reclaim.ts';
import { FileSender } from './file-sender.ts';

/**
 * Bytes received but not yet on disk before the upstream is paused, and when it resumes. Small, so
 * that queued chunks die young (see buffer-reclaim.ts): with 16 MiB, peak RSS was ~40 MiB higher
 * and the throughput no better.
 */
const DISK_QUEUE_HIGH = 2 << 20;
const DISK_QUEUE_LOW = 1 << 20;

interface Subscriber {
  readonly res: Writable;
  pos: number;
  /** Last byte position wanted (inclusive); Infinity while the length is unknown. */
  readonly end: number;
  busy: boolean;
  finished: boolean;
  /** Created when this client first falls behind the live stream and reads from the file. */
  sender?: FileSender;
  readonly start: number;
  readonly settle: (bytes: number) => void;
}

/** Whether a verified blob is kept, and what to record once it is. */
export interface CommitPolicy {
  keep(size: number): boolean;
  committed(stored: StoredBlob): Promise<void>;
  /** The disk filled up mid-download: the blob is passed through, not kept. */
  diskFull(): void;
}

const KEEP_ALL: CommitPolicy = { keep: () => true, committed: async () => undefined, diskFull: () => undefined };

/** A client more than this far behind in pass-through mode (nothing on disk to fall back on) is dropped. */
const PASS_THROUGH_LAG = 16 << 20;

type State = 'connecting' | 'streaming' | 'committed' | 'failed';

let downloads = 0;

export class Download {
  readonly digest: Digest;
  readonly upstream: string;
  /** Names this download's temp file for shared reads: unverified bytes are never shared with another download. */
  private readonly id = `download:${++downloads}`;
  /** Length announced by the upstream (Content-Length); undefined when it sent none. */
  size: number | undefined;
  readonly ready: Promise<number | undefined>;
  /** The stored blob, or undefined when it was verified but not kept (pass-through). */
  readonly done: Promise<StoredBlob | undefined>;
  /** Settles when the temp file is closed: no client reads from this download any more. */
  readonly closed: Promise<void>;
  private state: State = 'connecting';
  private received = 0;
  private written = 0;
  private temp: TempFile | undefined;
  private hash: ReturnType<typeof newHash>;
  /** Set when a temp-file write failed for lack of space: clients are served from memory only. */
  private diskFull = false;
  /** Pass-through mode: the chunks from `written` on, which never reached the disk. */
  private spill: Array<{ readonly offset: number; readonly buf: Buffer }> = [];
  private spillBytes = 0;
  private fileClosed = false;
  private readonly subscribers = new Set<Subscriber>();
  private resolveReady!: (size: number | undefined) => void;
  private rejectReady!: (err: unknown) => void;
  private resolveDone!: (blob: StoredBlob | undefined) => void;
  private resolveClosed!: () => void;
  private rejectDone!: (err: unknown) => void;
  private readonly log: Logger;

  constructor(opts: { digest: Digest; upstream: string; logger: Logger }) {
    this.digest = opts.digest;
    this.upstream = opts.upstream;
    this.log = opts.logger;
    this.hash = newHash(opts.digest.algorithm);
    this.ready = new Promise((resolve, reject) => {
      this.resolveReady = resolve;
      this.rejectReady = reject;
    });
    this.done = new Promise((resolve, reject) => {
      this.resolveDone = resolve;
      this.rejectDone = reject;
    });
    this.closed = new Promise((resolve) => (this.resolveClosed = resolve));
    // Failures are delivered to whoever awaits; these keep unobserved ones from crashing the process.
    this.ready.catch(() => undefined);
    this.done.catch(() => undefined);
  }

  /** The download broke off (upstream error, bad bytes, stall): nobody may join it any more. */
  get failed(): boolean {
    return this.state === 'failed';
  }

  get bytesReceived(): number {
    return this.received;
  }

  /** False once the download failed or closed its file after commit (serve from the store then). */
  get canStream(): boolean {
    return !this.fileClosed && this.state !== 'failed';
  }

  /** Fetches, tees, verifies and commits; never throws (outcome is in `ready`/`done`). */
  async run(fetch: () => Promise<UpstreamResponse>, store: BlobStore, policy: CommitPolicy = KEEP_ALL): Promise<void> {
    let res: UpstreamResponse | undefined;
    // The temp file is created while the upstream answers: its open() is off the first byte's path.
    const temp = store.createTemp();
    temp.catch(() => undefined); // awaited below, or after a failed fetch
    try {
      res = await fetch();
      this.temp = await temp;
      const length = header(res.headers, 'content-length');
      this.size = length !== undefined && /^\d+$/.test(length) ? Number(length) : undefined;
      this.state = 'streaming';
      this.resolveReady(this.size);
      await this.tee(res, this.temp.handle, policy);
      if (this.size !== undefined && this.received !== this.size) {
        throw new VerificationError(this.upstream, `blob ${this.digest.value}: upstream sent ${this.received} of ${this.size} bytes`, 'SIZE_INVALID');
      }
      const actual = this.hash.digest('hex');
      if (actual !== this.digest.hex) {
        throw new VerificationError(this.upstream, `blob ${this.digest.value}: upstream content hashes to ${this.digest.algorithm}:${actual}`, 'DIGEST_INVALID');
      }
      // Pass-through: verified bytes still reach every client, but the file is not kept.
      // Unlinking is safe while clients read: they hold the open file.
      let stored: StoredBlob | undefined;
      if (!this.diskFull && policy.keep(this.received)) {
        stored = await store.commit(this.temp.path, this.digest);
        // Recorded (and evicted around) before any client gets its final byte.
        await policy.committed(stored);
      } else {
        await store.discard(this.temp.path);
      }
      this.state = 'committed';
      this.resolveDone(stored);
      this.wakeAll();
    } catch (err) {
      res?.body.destroy();
      this.fail(err);
      this.temp ??= await temp.catch(() => undefined);
      if (this.temp) await store.discard(this.temp.path);
    } finally {
      await this.closeIfIdle();
    }
  }

  /**
   * Hashes each upstream chunk, hands it to caught-up clients, and queues it for the temp file.
   * Disk writes run behind the network (coalesced into one writev per batch) instead of
   * alternating with it; the upstream is paused only when more than DISK_QUEUE_HIGH bytes wait.
   */
  private tee(res: UpstreamResponse, handle: TempFile['handle'], policy: CommitPolicy): Promise<void> {
    const body = res.body;
    return new Promise<void>((resolve, reject) => {
      let queue: Buffer[] = [];
      let queued = 0;
      let writing = false;
      let ended = false;
      let failed = false;
      const fail = (err: unknown) => {
        if (failed) return;
        failed = true;
        body.destroy();
        reject(err);
      };
      /** Disk full: what reached the disk stays readable there; the rest is kept in memory. */
      const spillAndPassThrough = (batch: Buffer[], position: number, onDisk: number): void => {
        this.written = position + onDisk;
        let at = position;
        for (const b of [...batch, ...queue]) {
          const skip = Math.max(0, Math.min(b.length, position + onDisk - at));
          if (skip < b.length) this.addSpill(at + skip, skip === 0 ? b : b.subarray(skip));
          at += b.length;
        }
        queue = [];
        queued = 0;
        this.enterPassThrough(policy);
        if (body.isPaused()) body.resume();
        flush();
      };
      const flush = (): void => {
        if (writing || failed) return;
        if (this.diskFull) queue = [];
        if (queue.length === 0) {
          if (ended) resolve();
          return;
        }
        const batch = queue;
        const bytes = queued;
        const position = this.written;
        queue = [];
        queued = 0;
        writing = true;
        handle.writev(batch, position).then(
          ({ bytesWritten }) => {
            writing = false;
            if (this.diskFull) return flush();
            // A short write to a regular file means the disk filled up part way.
            if (bytesWritten < bytes) return spillAndPassThrough(batch, position, bytesWritten);
            this.written = position + bytes;
            this.wakeAll();
            if (body.isPaused() && queued < DISK_QUEUE_LOW) body.resume();
            flush();
          },
          (err: unknown) => {
            writing = false;
            if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') return fail(err);
            spillAndPassThrough(batch, position, 0);
          },
        );
      };
      body.on('data', (buf: Buffer) => {
        if (failed) return;
        const offset = this.received;
        if (this.size !== undefined && offset + buf.length > this.size) {
          fail(new VerificationError(this.upstream, `blob ${this.digest.value}: upstream sent more than its Content-Length ${this.size}`));
          return;
        }
        this.received += buf.length;
        this.hash.update(buf);
        noteDownloaded(buf.length);
        this.deliverLive(buf, offset);
        if (this.diskFull) {
          this.addSpill(offset, buf);
          this.wakeAll();
          return;
        }
        queue.push(buf);
        queued += buf.length;
        if (queued >= DISK_QUEUE_HIGH) body.pause();
        flush();
      });
      body.once('end', () => {
        ended = true;
        flush();
      });
      body.once('error', fail);
    });
  }

  /**
   * The disk is full: stop writing and keep serving every client, from the file for what reached
   * the disk and from memory (the spill) for the rest. The blob is not kept.
   */
  private enterPassThrough(policy: CommitPolicy): void {
    if (this.diskFull) return;
    this.diskFull = true;
    this.log.warn({ digest: this.digest.value, written: this.written, received: this.received }, 'disk full: passing the download through without keeping it');
    policy.diskFull();
    this.wakeAll();
  }

  private addSpill(offset: number, buf: Buffer): void {
    this.spill.push({ offset, buf });
    this.spillBytes += buf.length;
    this.trimSpill();
  }

  /** Drops spilled chunks every client has passed; drops clients that lag too far behind. */
  private trimSpill(): void {
    for (;;) {
      let slowest: Subscriber | undefined;
      for (const sub of this.subscribers) if (!sub.finished && (!slowest || sub.pos < slowest.pos)) slowest = sub;
      const floor = slowest?.pos ?? this.received;
      while (this.spill.length > 1 && (this.spill[0]?.offset ?? 0) + (this.spill[0]?.buf.length ?? 0) <= floor) {
        this.spillBytes -= this.spill.shift()?.buf.length ?? 0;
      }
      if (this.spillBytes <= PASS_THROUGH_LAG || !slowest) return;
      slowest.res.destroy(new Error('client too slow for a pass-through download'));
      this.finish(slowest);
    }
  }

  /**
   * Streams bytes [start, end] (inclusive; end Infinity = to the end, for unknown lengths) into `res`,
   * whose headers the caller has written. Returns undefined if this download can no longer serve
   * new clients (check `canStream` first). The promise settles with the bytes written when the
   * response ended, was aborted, or the client left.
   */
  tryStream(res: Writable, start: number, end: number): Promise<number> | undefined {
    if (!this.canStream) return undefined;
    return new Promise<number>((resolve) => {
      const sub: Subscriber = { res, pos: start, start, end, busy: false, finished: false, settle: resolve };
      this.subscribers.add(sub);
      res.once('close', () => this.finish(sub));
      res.once('error', () => this.finish(sub));
      this.pump(sub);
    });
  }

  /** Hands a chunk that just arrived to every client waiting exactly at its offset. */
  private deliverLive(buf: Buffer, offset: number): void {
    for (const sub of this.subscribers) {
      if (sub.busy || sub.finished || sub.pos !== offset) continue;
      // Hold back the response's final byte until the blob is verified.
      const take = Math.min(offset + buf.length, sub.end) - sub.pos;
      if (take <= 0) continue;
      sub.pos += take;
      if (!sub.res.write(take === buf.length ? buf : buf.subarray(0, take))) this.awaitDrain(sub);
    }
  }

  private wakeAll(): void {
    for (const sub of this.subscribers) this.pump(sub);
  }

  /** Moves one client forward from the file as far as verified-safe bytes allow. */
  private pump(sub: Subscriber): void {
    if (sub.busy || sub.finished || !this.temp) return;
    const committed = this.state === 'committed';
    const wantEnd = Math.min(sub.end + 1, committed ? this.received : Infinity);
    // Before commit: only what is on disk (or spilled), never the final byte of a known-length response.
    const available = this.diskFull ? this.received : this.written;
    const limit = committed ? wantEnd : Math.min(available, this.size === undefined ? wantEnd : sub.end);
    if (sub.pos >= limit) {
      if (committed && sub.pos >= wantEnd) {
        sub.res.end();
        this.finish(sub);
      }
      return;
    }
    if (this.diskFull && sub.pos >= this.written) {
      this.sendSpilled(sub, limit);
      return;
    }
    sub.busy = true;
    sub.sender ??= new FileSender(this.temp.handle, sub.res, this.id);
    // Only what reached the disk is read from the file (in pass-through, the rest is spilled).
    sub.sender.sendChunk(sub.pos, Math.min(limit, this.written) - sub.pos).then(
      (sent) => {
        sub.busy = false;
        if (sub.finished) return;
        if (sent <= 0) {
          if (sent === 0) sub.res.destroy(new Error('blob file ended early'));
          this.finish(sub);
          return;
        }
        sub.pos += sent;
        this.pump(sub);
      },
      (err: unknown) => {
        sub.busy = false;
        this.log.warn({ digest: this.digest.value, err: String(err) }, 'reading download file failed');
        sub.res.destroy(err instanceof Error ? err : new Error(String(err)));
        this.finish(sub);
      },
    );
  }

  /** Pass-through mode: sends spilled chunks from memory up to `limit`. */
  private sendSpilled(sub: Subscriber, limit: number): void {
    while (sub.pos < limit) {
      const chunk = this.spill.find((c) => c.offset <= sub.pos && sub.pos < c.offset + c.buf.length);
      if (!chunk) {
        sub.res.destroy(new Error('pass-through bytes no longer in memory'));
        this.finish(sub);
        return;
      }
      const end = Math.min(limit, chunk.offset + chunk.buf.length);
      const ok = sub.res.write(chunk.buf.subarray(sub.pos - chunk.offset, end - chunk.offset));
      sub.pos = end;
      if (!ok) {
        this.awaitDrain(sub);
        break;
      }
    }
    this.trimSpill();
    if (!sub.busy) this.pump(sub);
  }

  private awaitDrain(sub: Subscriber): void {
    sub.busy = true;
    sub.res.once('drain', () => {
      sub.busy = false;
      this.pump(sub);
    });
  }

  private finish(sub: Subscriber): void {
    if (sub.finished) return;
    sub.finished = true;
    this.subscribers.delete(sub);
    sub.settle(sub.pos - sub.start);
    void this.closeIfIdle();
  }

  private fail(err: unknown): void {
    this.state = 'failed';
    this.rejectReady(err);
    this.rejectDone(err);
    for (const sub of this.subscribers) {
      // Abort, never end: the client must see a broken transfer, not a complete one.
      sub.res.destroy(err instanceof Error ? err : new Error(String(err)));
      this.finish(sub);
    }
  }

  private async closeIfIdle(): Promise<void> {
    if (this.fileClosed || this.subscribers.size > 0 || (this.state !== 'committed' && this.state !== 'failed')) return;
    this.fileClosed = true;
    await this.temp?.handle.close().catch(() => undefined);
    this.resolveClosed();
  }
}
