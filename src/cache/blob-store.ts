// Content-addressed files on disk. Only verified content is ever visible under blobs/.
//
//   <root>/
//     blobs/sha256/ab/ab12…ef     complete, digest-verified content (blobs and manifests alike)
//     tmp/<random>                downloads in progress; wiped at start, renamed into blobs/ on commit
//     metadata.sqlite             keyv records (see metadata.ts)
import { randomUUID } from 'node:crypto';
import { mkdir, open, readdir, rename, rm, stat, unlink, writeFile, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { Digest } from '../oci/digest.ts';

export interface StoredBlob {
  readonly path: string;
  readonly size: number;
}

export interface TempFile {
  readonly path: string;
  readonly handle: FileHandle;
}

/** Where blob bytes live; a later backend (shared volume, S3) implements the same shape. */
export interface BlobStore {
  /** Where committed content lives (whether or not it is there). */
  pathOf(digest: Digest): string;
  createTemp(): Promise<TempFile>;
  /** Moves a verified temp file into place atomically. */
  commit(tempPath: string, digest: Digest): Promise<StoredBlob>;
  /** Writes small verified content (manifests) in one go. */
  put(digest: Digest, data: Uint8Array): Promise<StoredBlob>;
  read(digest: Digest): Promise<Buffer | undefined>;
  discard(tempPath: string): Promise<void>;
  /** Deletes committed content; false if it was not there. */
  remove(digest: Digest): Promise<boolean>;
  /** The digest of every committed file, a directory at a time (reconciling the index with the disk). */
  list(): AsyncIterable<string[]>;
  /** Size and modification time of committed content, if present. */
  statOf(digest: string): Promise<{ readonly size: number; readonly mtimeMs: number } | undefined>;
}

export class FsBlobStore implements BlobStore {
  readonly root: string;
  private readonly blobsDir: string;
  private readonly tmpDir: string;

  constructor(root: string) {
    this.root = root;
    this.blobsDir = join(root, 'blobs');
    this.tmpDir = join(root, 'tmp');
  }

  /** Creates the layout and removes temp files left by an interrupted run. */
  async init(): Promise<void> {
    await rm(this.tmpDir, { recursive: true, force: true });
    await mkdir(this.tmpDir, { recursive: true });
    await mkdir(this.blobsDir, { recursive: true });
  }

  pathOf(digest: Digest): string {
    return join(this.blobsDir, digest.algorithm, digest.hex.slice(0, 2), digest.hex);
  }

  /** Throws unless a file can be created and removed under tmp/ (readiness: disk present and writable). */
  async checkWritable(): Promise<void> {
    const probe = join(this.tmpDir, `.ready-${randomUUID()}`);
    await writeFile(probe, 'ok');
    await unlink(probe);
  }

  async createTemp(): Promise<TempFile> {
    const path = join(this.tmpDir, randomUUID());
    // w+: the download writes while joined clients read the same bytes back.
    return { path, handle: await open(path, 'w+', 0o644) };
  }

  async commit(tempPath: string, digest: Digest): Promise<StoredBlob> {
    const path = this.pathOf(digest);
    await mkdir(join(this.blobsDir, digest.algorithm, digest.hex.slice(0, 2)), { recursive: true });
    await rename(tempPath, path);
    const s = await stat(path);
    return { path, size: s.size };
  }

  async put(digest: Digest, data: Uint8Array): Promise<StoredBlob> {
    const tmp = join(this.tmpDir, randomUUID());
    await writeFile(tmp, data);
    return this.commit(tmp, digest);
  }

  async read(digest: Digest): Promise<Buffer | undefined> {
    try {
      const handle = await open(this.pathOf(digest), 'r');
      try {
        return await handle.readFile();
      } finally {
        await handle.close();
      }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
  }

  async discard(tempPath: string): Promise<void> {
    await unlink(tempPath).catch(() => undefined);
  }

  async remove(digest: Digest): Promise<boolean> {
    try {
      await unlink(this.pathOf(digest));
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw err;
    }
  }

  async *list(): AsyncIterable<string[]> {
    for (const algorithm of await readdirOrEmpty(this.blobsDir)) {
      // One directory at a time: a million names at once cost ~200 MiB; parallel readdirs measured no faster.
      for (const prefix of await readdirOrEmpty(join(this.blobsDir, algorithm))) {
        yield (await readdirOrEmpty(join(this.blobsDir, algorithm, prefix))).map((hex) => `${algorithm}:${hex}`);
      }
    }
  }

  async statOf(digest: string): Promise<{ size: number; mtimeMs: number } | undefined> {
    const colon = digest.indexOf(':');
    const hex = digest.slice(colon + 1);
    const s = await stat(join(this.blobsDir, digest.slice(0, colon), hex.slice(0, 2), hex)).catch(() => undefined);
    return s?.isFile() ? { size: s.size, mtimeMs: s.mtimeMs } : undefined;
  }
}

async function readdirOrEmpty(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
}
