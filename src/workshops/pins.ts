// Pins: a floating tag held at one digest per scope (a workshop), so every session of that
// workshop gets the same image however the tag moves upstream. Pins live in memory (they are few),
// are written through to the metadata store (they survive restarts), expire `pinTtl` after their
// last use (sliding: a workshop in use keeps its images), and protect what they pin — the
// manifest, an index's children and every blob they reference — from eviction.
import type { ManifestCache } from '../cache/manifests.ts';
import type { Metadata, PinRecord } from '../cache/metadata.ts';
import type { StorageIndex } from '../cache/storage-index.ts';
import type { Logger } from '../observability/logger.ts';
import type { Metrics } from '../observability/metrics.ts';

export type { PinRecord };

/** Extending a pin's expiry is written to the store at most this often per pin. */
const PERSIST_EVERY_MS = 60_000;

export class Pins {
  private readonly metadata: Metadata;
  private readonly manifests: ManifestCache;
  private readonly metrics: Metrics;
  private readonly log: Logger;
  private readonly ttlMs: number;
  /** scope → "upstream/repo:tag" → pin. */
  private readonly scopes = new Map<string, Map<string, PinRecord>>();
  /** When each pin's expiry was last written (key: scope + ref). */
  private readonly persistedAt = new Map<string, number>();
  /** Digests reachable from live pins, with how many pins reach each. */
  private protectedDigests = new Map<string, number>();
  private walking: Promise<void> = Promise.resolve();
  private sweeper: NodeJS.Timeout | undefined;

  constructor(deps: { metadata: Metadata; manifests: ManifestCache; index: StorageIndex; metrics: Metrics; logger: Logger; ttlMs: number }) {
    this.metadata = deps.metadata;
    this.manifests = deps.manifests;
    this.metrics = deps.metrics;
    this.log = deps.logger.child({ module: 'pins' });
    this.ttlMs = deps.ttlMs;
    deps.index.addProtector((digest) => this.protectedDigests.has(digest));
    // A child manifest of a pinned index fetched after the pin was made: protect its blobs too.
    deps.manifests.onStored((digest) => {
      if (this.protectedDigests.has(digest)) void this.reprotect();
    });
  }

  /** Loads pins from the store, dropping expired ones, and starts the expiry sweep. */
  async load(): Promise<number> {
    const now = Date.now();
    let count = 0;
    for await (const [, pin] of this.metadata.scanPins()) {
      if (pin.expiresAt <= now) {
        await this.metadata.deletePin(pin);
        continue;
      }
      this.put(pin);
      count++;
    }
    await this.reprotect();
    this.sweeper = setInterval(() => void this.sweep(), Math.min(60_000, this.ttlMs)).unref();
    return count;
  }

  /** The live pin for a tag in a scope; using it slides its expiry. */
  use(scope: string, upstream: string, repo: string, tag: string): PinRecord | undefined {
    const key = refKey(upstream, repo, tag);
    const pin = this.scopes.get(scope)?.get(key);
    if (!pin) return undefined;
    const now = Date.now();
    if (pin.expiresAt <= now) {
      void this.release(scope, key);
      return undefined;
    }
    const renewed = { ...pin, expiresAt: now + this.ttlMs };
    this.scopes.get(scope)?.set(key, renewed);
    const id = `${scope}\n${key}`;
    if (now - (this.persistedAt.get(id) ?? 0) >= PERSIST_EVERY_MS) {
      this.persistedAt.set(id, now);
      void this.metadata.setPin(renewed).catch((err: unknown) => this.log.warn({ err: String(err), scope, ref: key }, 'pin expiry not persisted'));
    }
    return renewed;
  }

  /**
   * Pins `tag` to `digest` in `scope` unless it is already pinned; returns the pin that holds
   * (the existing one wins: the first resolution in a scope decides).
   */
  async pin(scope: string, upstream: string, repo: string, tag: string, digest: string): Promise<PinRecord> {
    const existing = this.use(scope, upstream, repo, tag);
    if (existing) return existing;
    const now = Date.now();
    const pin: PinRecord = { scope, upstream, repo, tag, digest, pinnedAt: now, expiresAt: now + this.ttlMs };
    this.put(pin);
    this.persistedAt.set(`${scope}\n${refKey(upstream, repo, tag)}`, now);
    this.log.info({ scope, upstream, repo, tag, digest }, 'tag pinned');
    await this.metadata.setPin(pin);
    await this.reprotect();
    return pin;
  }

  /** Scopes with their live pins, sorted. */
  list(scope?: string): Array<{ scope: string; pins: PinRecord[] }> {
    const now = Date.now();
    const names = scope === undefined ? [...this.scopes.keys()].sort() : this.scopes.has(scope) ? [scope] : [];
    return names.map((s) => ({
      scope: s,
      pins: [...(this.scopes.get(s)?.values() ?? [])].filter((p) => p.expiresAt > now).sort((a, b) => refKey(a.upstream, a.repo, a.tag).localeCompare(refKey(b.upstream, b.repo, b.tag))),
    }));
  }

  /** Releases one pin (`upstream/repo:tag`); false if there was none. */
  async release(scope: string, ref: string): Promise<boolean> {
    const pins = this.scopes.get(scope);
    const pin = pins?.get(ref);
    if (!pins || !pin) return false;
    pins.delete(ref);
    if (pins.size === 0) this.scopes.delete(scope);
    this.persistedAt.delete(`${scope}\n${ref}`);
    this.updateGauges();
    await this.metadata.deletePin(pin);
    this.log.info({ scope, upstream: pin.upstream, repo: pin.repo, tag: pin.tag, digest: pin.digest }, 'pin released');
    await this.reprotect();
    return true;
  }

  /** Releases every pin of a scope; returns how many there were. */
  async releaseScope(scope: string): Promise<number> {
    const refs = [...(this.scopes.get(scope)?.keys() ?? [])];
    for (const ref of refs) await this.release(scope, ref);
    return refs.length;
  }

  /** Whether a digest is held by a live pin (directly or as part of a pinned image). */
  protects(digest: string): boolean {
    return this.protectedDigests.has(digest);
  }

  get size(): number {
    let n = 0;
    for (const pins of this.scopes.values()) n += pins.size;
    return n;
  }

  close(): void {
    if (this.sweeper) clearInterval(this.sweeper);
  }

  private put(pin: PinRecord): void {
    let pins = this.scopes.get(pin.scope);
    if (!pins) this.scopes.set(pin.scope, (pins = new Map()));
    pins.set(refKey(pin.upstream, pin.repo, pin.tag), pin);
    this.updateGauges();
  }

  private async sweep(): Promise<void> {
    const now = Date.now();
    for (const [scope, pins] of this.scopes) {
      for (const [ref, pin] of pins) if (pin.expiresAt <= now) await this.release(scope, ref);
    }
  }

  /**
   * Recomputes the protected set: each pinned manifest, and for what is cached of it, an index's
   * children and every config and layer. Walks run one at a time, the newest result wins.
   */
  private reprotect(): Promise<void> {
    this.walking = this.walking.then(async () => {
      const out = new Map<string, number>();
      const now = Date.now();
      for (const pins of this.scopes.values()) {
        for (const pin of pins.values()) {
          if (pin.expiresAt <= now) continue;
          for (const d of await this.reachable(pin.digest)) out.set(d, (out.get(d) ?? 0) + 1);
        }
      }
      this.protectedDigests = out;
    }).catch((err: unknown) => this.log.warn({ err: String(err) }, 'pin protection walk failed'));
    return this.walking;
  }

  private async reachable(root: string): Promise<Set<string>> {
    const seen = new Set<string>();
    const queue = [root];
    while (queue.length > 0) {
      const digest = queue.pop()!;
      if (seen.has(digest)) continue;
      seen.add(digest);
      const stored = await this.manifests.local(digest);
      if (!stored) continue; // not cached (yet): its digest alone is protected
      for (const d of referencedDigests(stored.body)) {
        if (!seen.has(d)) queue.push(d);
      }
    }
    return seen;
  }

  private updateGauges(): void {
    this.metrics.pins.set(this.size);
    this.metrics.pinScopes.set(this.scopes.size);
  }
}

export function refKey(upstream: string, repo: string, tag: string): string {
  return `${upstream}/${repo}:${tag}`;
}

/** Digests a manifest or index names: children, config, layers (subject and foreign URLs aside). */
export function referencedDigests(body: Buffer): string[] {
  let doc: { manifests?: Array<{ digest?: unknown }>; config?: { digest?: unknown }; layers?: Array<{ digest?: unknown }> };
  try {
    doc = JSON.parse(body.toString('utf8')) as typeof doc;
  } catch {
    return [];
  }
  const out: string[] = [];
  for (const d of [...(doc.manifests ?? []), doc.config ?? {}, ...(doc.layers ?? [])]) {
    if (typeof d.digest === 'string') out.push(d.digest);
  }
  return out;
}
