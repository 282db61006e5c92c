// Durable records (keyv + sqlite by default): tag → digest answers and manifest media types.
import Keyv from 'keyv';
import KeyvSqlite from '@keyv/sqlite';
import { join } from 'node:path';

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

type SqlQuery = (sql: string, ...params: unknown[]) => Promise<Array<{ key: string; value: string }>>;

/** The record store; keyv's Redis/Postgres adapters can replace sqlite for shared replicas later. */
export class Metadata {
  private readonly keyv: Keyv;
  /** Direct SQL on the sqlite store, for bulk scans (keyv's iterator pages with OFFSET: quadratic). */
  private readonly sql: SqlQuery | undefined;

  constructor(keyv: Keyv, sql?: SqlQuery) {
    this.keyv = keyv;
    this.sql = sql;
  }

  static sqlite(root: string): Metadata {
    const store = new KeyvSqlite({ uri: `sqlite://${join(root, 'metadata.sqlite')}`, busyTimeout: 10_000 });
    const sql: SqlQuery = (q, ...params) => store.query(q, ...params) as Promise<Array<{ key: string; value: string }>>;
    // WAL + NORMAL: a commit is one sequential append, not an fsync'd rewrite (slow disks here).
    void sql('PRAGMA journal_mode=WAL').then(() => sql('PRAGMA synchronous=NORMAL')).catch(() => undefined);
    return new Metadata(new Keyv({ store, namespace: NAMESPACE }), sql);
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

  async setIndex(digest: string, record: IndexRecord): Promise<void> {
    await this.keyv.set(`idx:${digest}`, record);
  }

  /** Writes many index records in one transaction (recency flushes, bulk loads). */
  async setIndexMany(records: ReadonlyArray<readonly [string, IndexRecord]>): Promise<void> {
    if (records.length === 0) return;
    if (!this.sql) {
      for (const [digest, r] of records) await this.setIndex(digest, r);
      return;
    }
    await this.sql('BEGIN');
    try {
      for (const [digest, r] of records) {
        await this.sql('INSERT OR REPLACE INTO keyv (key, value) VALUES (?, ?)', `${NAMESPACE}:idx:${digest}`, JSON.stringify({ value: r }));
      }
      await this.sql('COMMIT');
    } catch (err) {
      await this.sql('ROLLBACK').catch(() => undefined);
      throw err;
    }
  }

  async deleteIndex(digest: string): Promise<void> {
    await this.keyv.delete(`idx:${digest}`);
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

  scanIndex(): AsyncIterable<[string, IndexRecord]> {
    return this.scan<IndexRecord>('idx:');
  }

  scanTags(): AsyncIterable<[string, TagRecord]> {
    return this.scan<TagRecord>('tag:');
  }

  /** Every record under a key prefix, as [key without prefix, value]. */
  async *scan<T>(prefix: string): AsyncIterable<[string, T]> {
    const full = `${NAMESPACE}:${prefix}`;
    if (this.sql) {
      const rows = await this.sql('SELECT key, value FROM keyv WHERE key LIKE ?', `${full.replace(/[%_]/g, '')}%`);
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

function tagKey(upstream: string, repo: string, tag: string): string {
  return `tag:${upstream}/${repo}:${tag}`;
}

function pinKey(p: Pick<PinRecord, 'scope' | 'upstream' | 'repo' | 'tag'>): string {
  return `pin:${p.scope}/${p.upstream}/${p.repo}:${p.tag}`;
}
