// Durable records (keyv + sqlite by default): tag → digest answers, manifest media types, pins,
// and the storage index. The index has its own table: a million keyv JSON rows took 13 s to load.
import Keyv from 'keyv';
import KeyvSqlite from '@keyv/sqlite';
import { join } from 'node:path';
import { setImmediate as nextTurn } from 'node:timers/promises';

export interface TagRecord {
  readonly digest: string;
  readonly mediaType: string;
  readonly size: number;
  /** Unix ms when the upstream last confirmed this answer. */
  readonly checkedAt: number;
}

export interface ManifestRecord {
  readonly mediaType: string;
  readonly size: number;
}

/** One stored file in the LRU index: size, kind, and its place in recency order. */
export interface IndexRecord {
  readonly size: number;
  readonly kind: 'blob' | 'manifest';
  /** Recency sequence (higher = used more recently); restores LRU order exactly after restart. */
  readonly seq: number;
  /** Unix ms of the last use (for people; order comes from seq). */
  readonly at: number;
}

/** Called once per index record, least recently used first. */
export type IndexVisitor = (digest: string, size: number, kind: IndexRecord['kind']) => void;

/** A floating tag held at one digest for a scope (a workshop). */
export interface PinRecord {
  readonly scope: string;
  readonly upstream: string;
  readonly repo: string;
  readonly tag: string;
  readonly digest: string;
  /** Unix ms. */
  readonly pinnedAt: number;
  /** Unix ms; slides forward with use. */
  readonly expiresAt: number;
}

type SqlQuery = (sql: string, ...params: unknown[]) => Promise<Array<Record<string, unknown>>>;

/** Rows read per query while loading the index (one joined string each: no row objects). */
const LOAD_CHUNK = 200_000;
/** Rows per multi-row INSERT (SQLite's default limit is 32 766 bound parameters). */
const INSERT_CHUNK = 500;

/** The record store; keyv's Redis/Postgres adapters can replace sqlite for shared replicas later. */
export class Metadata {
  private readonly keyv: Keyv;
  /** Direct SQL on the sqlite store, for bulk scans (keyv's iterator pages with OFFSET: quadratic). */
  private readonly sql: SqlQuery | undefined;
  /** Schema set up (sqlite), awaited before any direct SQL. */
  private readonly ready: Promise<void>;
  /** The index when there is no sqlite (tests): digest → record. */
  private readonly memoryIndex = new Map<string, IndexRecord>();

  private readonly loadChunk: number;

  constructor(keyv: Keyv, sql?: SqlQuery, opts: { loadChunk?: number } = {}) {
    this.keyv = keyv;
    this.sql = sql;
    this.loadChunk = opts.loadChunk ?? LOAD_CHUNK;
    this.ready = sql ? prepareSchema(sql) : Promise.resolve();
  }

  static sqlite(root: string, opts: { loadChunk?: number } = {}): Metadata {
    const store = new KeyvSqlite({ uri: `sqlite://${join(root, 'metadata.sqlite')}`, busyTimeout: 10_000 });
    const sql: SqlQuery = (q, ...params) => store.query(q, ...params) as Promise<Array<Record<string, unknown>>>;
    return new Metadata(new Keyv({ store, namespace: NAMESPACE }), sql, opts);
  }

  static memory(): Metadata {
    return new Metadata(new Keyv({ namespace: 'regcache' }));
  }

  getTag(upstream: string, repo: string, tag: string): Promise<TagRecord | undefined> {
    return this.keyv.get<TagRecord>(tagKey(upstream, repo, tag));
  }

  async setTag(upstream: string, repo: string, tag: string, record: TagRecord): Promise<void> {
    await this.keyv.set(tagKey(upstream, repo, tag), record);
  }

  async deleteTag(upstream: string, repo: string, tag: string): Promise<void> {
    await this.keyv.delete(tagKey(upstream, repo, tag));
  }

  getManifest(digest: string): Promise<ManifestRecord | undefined> {
    return this.keyv.get<ManifestRecord>(`manifest:${digest}`);
  }

  async setManifest(digest: string, record: ManifestRecord): Promise<void> {
    await this.keyv.set(`manifest:${digest}`, record);
  }

  async deleteManifest(digest: string): Promise<void> {
    await this.keyv.delete(`manifest:${digest}`);
  }

  /**
   * Visits every index record in recency order (least recent first) and returns the highest seq.
   * Rows come as one joined string per chunk, split here: sqlite3 building a million row objects
   * took 4–5 s; this takes about a second, and the digests stay slices of the chunk strings.
   */
  async loadIndex(visit: IndexVisitor): Promise<number> {
    await this.ready;
    if (!this.sql) {
      const rows = [...this.memoryIndex].sort((a, b) => a[1].seq - b[1].seq);
      for (const [digest, r] of rows) visit(digest, r.size, r.kind);
      return rows.at(-1)?.[1].seq ?? 0;
    }
    const sql = this.sql;
    const chunk = (after: number) =>
      sql(
        `SELECT max(seq) AS last, group_concat(digest || ' ' || size || ' ' || kind, ' ') AS rows
           FROM (SELECT seq, digest, size, kind FROM storage_index WHERE seq > ? ORDER BY seq LIMIT ${this.loadChunk})`,
        after,
      ).then(([row]) => ({ rows: typeof row?.['rows'] === 'string' ? row['rows'] : '', last: Number(row?.['last'] ?? after) }));
    let after = 0;
    let next = chunk(after);
    for (;;) {
      const { rows, last } = await next;
      if (rows.length === 0) return after;
      // sqlite reads the next chunk on the thread pool while this one is parsed.
      next = chunk(last);
      let at = 0;
      let n = 0;
      while (at < rows.length) {
        // Turns of the event loop let sqlite3 move the next query from prepare to execution
        // (each step completes on the main thread); without them the two never overlap.
        if (++n % 16_384 === 0) await nextTurn();
        const a = rows.indexOf(' ', at);
        const b = rows.indexOf(' ', a + 1);
        let c = rows.indexOf(' ', b + 1);
        if (c < 0) c = rows.length;
        visit(rows.slice(at, a), Number(rows.slice(a + 1, b)), rows.charCodeAt(b + 1) === 49 /* '1' */ ? 'manifest' : 'blob');
        at = c + 1;
      }
      after = last;
    }
  }

  /** Writes index records in one transaction (a record replaces the one for the same digest). */
  async writeIndex(records: ReadonlyArray<readonly [string, IndexRecord]>): Promise<void> {
    if (records.length === 0) return;
    await this.ready;
    if (!this.sql) {
      for (const [digest, r] of records) this.memoryIndex.set(digest, r);
      return;
    }
    await this.sql('BEGIN');
    try {
      for (let i = 0; i < records.length; i += INSERT_CHUNK) {
        const chunk = records.slice(i, i + INSERT_CHUNK);
        const params = chunk.flatMap(([digest, r]) => [r.seq, digest, r.size, r.kind === 'manifest' ? 1 : 0, r.at]);
        await this.sql(`INSERT OR REPLACE INTO storage_index (seq, digest, size, kind, at) VALUES ${chunk.map(() => '(?,?,?,?,?)').join(',')}`, ...params);
      }
      await this.sql('COMMIT');
    } catch (err) {
      await this.sql('ROLLBACK').catch(() => undefined);
      throw err;
    }
  }

  async deleteIndex(digest: string): Promise<void> {
    await this.ready;
    if (!this.sql) {
      this.memoryIndex.delete(digest);
      return;
    }
    await this.sql('DELETE FROM storage_index WHERE digest = ?', digest);
  }

  /** One index record (admin listings: when a file was last used). */
  async indexRecord(digest: string): Promise<IndexRecord | undefined> {
    await this.ready;
    if (!this.sql) return this.memoryIndex.get(digest);
    const [row] = await this.sql('SELECT size, kind, seq, at FROM storage_index WHERE digest = ?', digest);
    if (!row) return undefined;
    return { size: Number(row['size']), kind: row['kind'] === 1 ? 'manifest' : 'blob', seq: Number(row['seq']), at: Number(row['at']) };
  }

  async setPin(record: PinRecord): Promise<void> {
    await this.keyv.set(pinKey(record), record);
  }

  async deletePin(record: PinRecord): Promise<void> {
    await this.keyv.delete(pinKey(record));
  }

  scanPins(): AsyncIterable<[string, PinRecord]> {
    return this.scan<PinRecord>('pin:');
  }

  scanTags(): AsyncIterable<[string, TagRecord]> {
    return this.scan<TagRecord>('tag:');
  }

  /** Every record under a key prefix, as [key without prefix, value]. */
  async *scan<T>(prefix: string): AsyncIterable<[string, T]> {
    const full = `${NAMESPACE}:${prefix}`;
    if (this.sql) {
      const rows = (await this.sql('SELECT key, value FROM keyv WHERE key LIKE ?', `${full.replace(/[%_]/g, '')}%`)) as Array<{ key: string; value: string }>;
      for (const row of rows) {
        if (!row.key.startsWith(full)) continue;
        const parsed = JSON.parse(row.value) as { value: T };
        yield [row.key.slice(full.length), parsed.value];
      }
      return;
    }
    if (!this.keyv.iterator) return;
    for await (const [key, value] of this.keyv.iterator(NAMESPACE)) {
      if (typeof key === 'string' && key.startsWith(prefix)) yield [key.slice(prefix.length), value as T];
    }
  }

  /** Throws when the store cannot answer (closed, locked, disk gone): readiness. */
  async ping(): Promise<void> {
    await this.keyv.get('ping');
  }

  async close(): Promise<void> {
    await this.keyv.disconnect();
  }
}

const NAMESPACE = 'regcache';

/**
 * The index table: seq is the rowid, so reading in recency order is a plain rowid scan; digest is
 * unique, so recording a use replaces the digest's row. Index records that older versions kept as
 * keyv rows (`regcache:idx:<digest>`) move into it once.
 */
async function prepareSchema(sql: SqlQuery): Promise<void> {
  // WAL + NORMAL: a commit is one sequential append, not an fsync'd rewrite (slow disks here).
  await sql('PRAGMA journal_mode=WAL');
  await sql('PRAGMA synchronous=NORMAL');
  await sql(`CREATE TABLE IF NOT EXISTS storage_index (
    seq INTEGER PRIMARY KEY, digest TEXT NOT NULL UNIQUE, size INTEGER NOT NULL, kind INTEGER NOT NULL, at INTEGER NOT NULL)`);
  const legacy = `${NAMESPACE}:idx:`;
  const [old] = await sql('SELECT count(*) AS n FROM keyv WHERE key LIKE ?', `${legacy}%`);
  if (Number(old?.['n'] ?? 0) === 0) return;
  await sql('BEGIN');
  try {
    await sql(
      `INSERT OR REPLACE INTO storage_index (seq, digest, size, kind, at)
         SELECT json_extract(value, '$.value.seq'), substr(key, ?), json_extract(value, '$.value.size'),
                json_extract(value, '$.value.kind') = 'manifest', json_extract(value, '$.value.at')
           FROM keyv WHERE key LIKE ? ORDER BY json_extract(value, '$.value.seq')`,
      legacy.length + 1,
      `${legacy}%`,
    );
    await sql('DELETE FROM keyv WHERE key LIKE ?', `${legacy}%`);
    await sql('COMMIT');
  } catch (err) {
    await sql('ROLLBACK').catch(() => undefined);
    throw err;
  }
}

function tagKey(upstream: string, repo: string, tag: string): string {
  return `tag:${upstream}/${repo}:${tag}`;
}

function pinKey(p: Pick<PinRecord, 'scope' | 'upstream' | 'repo' | 'tag'>): string {
  return `pin:${p.scope}/${p.upstream}/${p.repo}:${p.tag}`;
}
