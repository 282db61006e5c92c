// The admin API (/admin/v1/, JSON, Bearer token): maintenance of the cache while it serves.
//   GET    /admin/v1/storage                                   storage summary
//   GET    /admin/v1/repositories                              cached repositories per upstream
//   GET    /admin/v1/repositories/<upstream>/<repo>/tags       cached tags with digest, size, last access
//   DELETE /admin/v1/repositories/<upstream>/<repo>/tags/<tag> forget a cached tag
//   DELETE /admin/v1/repositories/<upstream>/<repo>            forget a repository's tags and manifests
//   DELETE /admin/v1/manifests/<digest>                        delete a stored manifest
//   POST   /admin/v1/gc                                        collect blobs no stored manifest references
import { timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Maintenance } from '../cache/maintenance.ts';
import { OciError } from '../oci/errors.ts';
import { assertName, assertTag } from '../oci/reference.ts';

export class AdminApi {
  private readonly token: Buffer | undefined;
  private readonly maintenance: Maintenance;

  constructor(token: string | undefined, maintenance: Maintenance) {
    this.token = token === undefined ? undefined : Buffer.from(token);
    this.maintenance = maintenance;
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
    throw new OciError('NOT_FOUND', `no such admin endpoint: ${method} ${path.slice(0, 100)}`);
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
