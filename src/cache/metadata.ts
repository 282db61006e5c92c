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

export interface BlobRecord {
  readonly size: number;
  readonly storedAt: number;
}

/** The record store; keyv's Redis/Postgres adapters can replace sqlite for shared replicas later. */
export class Metadata {
  private readonly keyv: Keyv;

  constructor(keyv: Keyv) {
    this.keyv = keyv;
  }

  static sqlite(root: string): Metadata {
    const store = new KeyvSqlite({ uri: `sqlite://${join(root, 'metadata.sqlite')}`, busyTimeout: 10_000 });
    return new Metadata(new Keyv({ store, namespace: 'regcache' }));
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

  async setBlob(digest: string, record: BlobRecord): Promise<void> {
    await this.keyv.set(`blob:${digest}`, record);
  }

  getBlob(digest: string): Promise<BlobRecord | undefined> {
    return this.keyv.get<BlobRecord>(`blob:${digest}`);
  }

  async close(): Promise<void> {
    await this.keyv.disconnect();
  }
}

function tagKey(upstream: string, repo: string, tag: string): string {
  return `tag:${upstream}/${repo}:${tag}`;
}
