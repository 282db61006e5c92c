// The admin API (/admin/v1/, JSON, Bearer token): maintenance of the cache while it serves.
//   GET    /admin/v1/storage                                   storage summary
//   GET    /admin/v1/repositories                              cached repositories per upstream
//   GET    /admin/v1/repositories/<upstream>/<repo>/tags       cached tags with digest, size, last access
//   DELETE /admin/v1/repositories/<upstream>/<repo>/tags/<tag> forget a cached tag
//   DELETE /admin/v1/repositories/<upstream>/<repo>            forget a repository's tags and manifests
//   DELETE /admin/v1/manifests/<digest>                        delete a stored manifest
//   POST   /admin/v1/gc                                        collect blobs no stored manifest references
//   GET    /admin/v1/scopes                                    scopes with their pins
//   GET    /admin/v1/scopes/<scope>                            one scope's pins
//   DELETE /admin/v1/scopes/<scope>                            release every pin of a scope
//   DELETE /admin/v1/scopes/<scope>/pins/<upstream>/<repo>:<tag>  release one pin
//   POST   /admin/v1/scopes/<scope>/pins  {"refs": [...]}      pre-pin floating tags (upstream HEADs only)
//   POST   /admin/v1/prefetch  {"scope", "refs", "platforms"}  fetch images into the cache; NDJSON progress
import { timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Maintenance } from '../cache/maintenance.ts';
import { OciError, toOciError } from '../oci/errors.ts';
import { SCOPE_RE } from '../oci/name-patterns.ts';
import { assertName, assertTag } from '../oci/reference.ts';
import type { UpstreamRegistry } from '../upstream/registry.ts';
import type { Pins } from '../workshops/pins.ts';
import type { Prefetcher } from '../workshops/prefetch.ts';
import type { ManifestResolver } from '../workshops/resolver.ts';

/** What the workshop endpoints need. */
export interface WorkshopAdmin {
  readonly pins: Pins;
  readonly prefetcher: Prefetcher;
  readonly resolver: ManifestResolver;
  readonly upstreams: ReadonlyMap<string, UpstreamRegistry>;
}

/** Largest JSON request body accepted (a list of refs). */
const MAX_BODY = 1 << 20;
/** Most refs in one request. */
const MAX_REFS = 1000;

export class AdminApi {
  private readonly token: Buffer | undefined;
  private readonly maintenance: Maintenance;
  private readonly workshops: WorkshopAdmin | undefined;

  constructor(token: string | undefined, maintenance: Maintenance, workshops?: WorkshopAdmin) {
    this.token = token === undefined ? undefined : Buffer.from(token);
    this.maintenance = maintenance;
    this.workshops = workshops;
  }

  async handle(path: string, req: IncomingMessage, res: ServerResponse): Promise<void> {
    // Disabled unless a token is configured: indistinguishable from an unknown endpoint.
    if (!this.token) throw new OciError('NOT_FOUND', 'no such endpoint (the admin API is disabled: set admin.token)');
    this.authorize(req.headers.authorization);
    const method = req.method ?? 'GET';
    const rest = path.replace(/^\/admin\/v1\/?/, '');
    if (rest === path) throw new OciError('NOT_FOUND', `no such admin endpoint: ${path.slice(0, 100)}`);

    if (rest === 'storage' && method === 'GET') return json(res, 200, this.maintenance.summary());
    if (rest === 'repositories' && method === 'GET') return json(res, 200, { repositories: await this.maintenance.repositories() });
    if (rest === 'gc' && method === 'POST') return json(res, 200, await this.maintenance.collectGarbage());

    let m = /^manifests\/([^/]+)$/.exec(rest);
    if (m?.[1] && method === 'DELETE') {
      const result = await this.maintenance.deleteManifest(m[1]);
      if (!result.removed && result.tags === 0) throw new OciError('MANIFEST_UNKNOWN', `manifest ${m[1]} is not cached`);
      return json(res, 200, result);
    }
    m = /^repositories\/([^/]+)\/(.+)\/tags\/([^/]+)$/.exec(rest);
    if (m?.[1] && m[2] && m[3] && method === 'DELETE') {
      assertName(m[2]);
      assertTag(m[3]);
      if (!(await this.maintenance.deleteTag(m[1], m[2], m[3]))) throw new OciError('MANIFEST_UNKNOWN', `tag ${m[3]} is not cached`);
      return json(res, 200, { deleted: `${m[1]}/${m[2]}:${m[3]}` });
    }
    m = /^repositories\/([^/]+)\/(.+)\/tags$/.exec(rest);
    if (m?.[1] && m[2] && method === 'GET') {
      assertName(m[2]);
      const tags = await this.maintenance.repositoryTags(m[1], m[2]);
      if (tags.length === 0) throw new OciError('NAME_UNKNOWN', `no cached tags for ${m[1]}/${m[2]}`);
      return json(res, 200, { upstream: m[1], name: m[2], tags });
    }
    m = /^repositories\/([^/]+)\/(.+)$/.exec(rest);
    if (m?.[1] && m[2] && method === 'DELETE') {
      assertName(m[2]);
      const result = await this.maintenance.deleteRepository(m[1], m[2]);
      if (result.tags === 0) throw new OciError('NAME_UNKNOWN', `no cached tags for ${m[1]}/${m[2]}`);
      return json(res, 200, result);
    }
    if (this.workshops && (rest === 'prefetch' || rest === 'scopes' || rest.startsWith('scopes/'))) return this.workshop(this.workshops, rest, method, req, res);
    throw new OciError('NOT_FOUND', `no such admin endpoint: ${method} ${path.slice(0, 100)}`);
  }

  private async workshop(w: WorkshopAdmin, rest: string, method: string, req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (rest === 'scopes' && method === 'GET') return json(res, 200, { scopes: w.pins.list() });
    if (rest === 'prefetch' && method === 'POST') {
      const body = await readJson(req);
      const scope = body['scope'] === undefined || body['scope'] === null ? undefined : scopeName(body['scope']);
      const refs = refList(body['refs']);
      let platforms: string[] | undefined;
      if (body['platforms'] !== undefined) {
        const p = body['platforms'];
        if (!Array.isArray(p) || p.length === 0 || !p.every((x) => typeof x === 'string' && /^[a-z0-9]+\/[a-z0-9_]+(\/[a-z0-9]+)?$/.test(x))) {
          throw new OciError('UNSUPPORTED', 'platforms: expected a list like ["linux/amd64", "linux/arm64"]', { status: 400 });
        }
        platforms = p as string[];
      }
      // One JSON object per line as it happens, so a CLI can draw progress.
      res.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store' });
      for await (const event of w.prefetcher.run({ scope, refs, platforms })) {
        if (res.destroyed) break;
        res.write(`${JSON.stringify(event)}\n`);
      }
      res.end();
      return;
    }
    let m = /^scopes\/([^/]+)$/.exec(rest);
    if (m?.[1]) {
      const scope = scopeName(m[1]);
      if (method === 'GET') return json(res, 200, w.pins.list(scope)[0] ?? { scope, pins: [] });
      if (method === 'DELETE') return json(res, 200, { scope, released: await w.pins.releaseScope(scope) });
    }
    m = /^scopes\/([^/]+)\/pins$/.exec(rest);
    if (m?.[1] && method === 'POST') {
      const scope = scopeName(m[1]);
      const refs = refList((await readJson(req))['refs']);
      const results: unknown[] = [];
      for (const ref of refs) {
        try {
          const t = w.prefetcher.target(ref, scope);
          const upstream = w.upstreams.get(t.upstream);
          if (!upstream) throw new OciError('NAME_UNKNOWN', `upstream "${t.upstream}" is not configured`);
          // HEAD: resolving and pinning costs no pull on Docker Hub.
          const r = await w.resolver.resolve(scope, upstream, t.repo, t.reference, 'HEAD');
          results.push({ ref, upstream: t.upstream, repo: t.repo, tag: t.reference, digest: r.answer.digest, pinned: r.pinned, ...(r.pinned ? {} : { reason: 'not a floating tag, or tags.policy does not pin' }) });
        } catch (err) {
          const oci = toOciError(err);
          results.push({ ref, error: { code: oci.code, message: oci.message } });
        }
      }
      return json(res, 200, { scope, results });
    }
    m = /^scopes\/([^/]+)\/pins\/([^/]+)\/(.+):([^:/]+)$/.exec(rest);
    if (m?.[1] && m[2] && m[3] && m[4] && method === 'DELETE') {
      const scope = scopeName(m[1]);
      assertName(m[3]);
      assertTag(m[4]);
      const ref = `${m[2]}/${m[3]}:${m[4]}`;
      if (!(await w.pins.release(scope, ref))) throw new OciError('MANIFEST_UNKNOWN', `no pin for ${ref} in scope ${scope}`);
      return json(res, 200, { scope, released: ref });
    }
    throw new OciError('NOT_FOUND', `no such admin endpoint: ${method} /admin/v1/${rest.slice(0, 100)}`);
  }

  private authorize(header: string | undefined): void {
    if (!header?.startsWith('Bearer ')) {
      throw new OciError('UNAUTHORIZED', 'admin API: send Authorization: Bearer <admin.token>', { headers: { 'www-authenticate': 'Bearer realm="regcache-admin"' } });
    }
    const given = Buffer.from(header.slice('Bearer '.length));
    if (!this.token || given.length !== this.token.length || !timingSafeEqual(given, this.token)) {
      throw new OciError('DENIED', 'admin API: wrong token');
    }
  }
}

function json(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function scopeName(v: unknown): string {
  if (typeof v !== 'string' || !SCOPE_RE.test(v)) throw new OciError('NAME_INVALID', `invalid scope ${JSON.stringify(v).slice(0, 80)}: a DNS label (a-z, 0-9, "-")`);
  return v;
}

function refList(v: unknown): string[] {
  if (!Array.isArray(v) || v.length === 0 || v.length > MAX_REFS || !v.every((r) => typeof r === 'string' && r.length > 0 && r.length < 512)) {
    throw new OciError('UNSUPPORTED', `refs: expected a list of 1 to ${MAX_REFS} image references`, { status: 400 });
  }
  return v as string[];
}

async function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY) throw new OciError('UNSUPPORTED', `request body over ${MAX_BODY} bytes`, { status: 413 });
    chunks.push(chunk as Buffer);
  }
  try {
    const v: unknown = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    if (v && typeof v === 'object' && !Array.isArray(v)) return v as Record<string, unknown>;
  } catch {
    // reported below
  }
  throw new OciError('UNSUPPORTED', 'expected a JSON object body', { status: 400 });
}
