// The OCI route table: request path + query → a typed Route naming the upstream and its repository.
import { isDigest, parseDigest } from '../oci/digest.ts';
import { OciError } from '../oci/errors.ts';
import { assertName, assertTag } from '../oci/reference.ts';

export interface UpstreamRef {
  readonly name: string;
  readonly mirror: boolean;
  readonly aliases: readonly string[];
  readonly implicitLibrary: boolean;
}

interface Target {
  readonly upstream: string;
  /** Repository name at the upstream (with `library/` added where the upstream wants it). */
  readonly repo: string;
  /** Repository name as the client wrote it (for Link headers). */
  readonly clientName: string;
}

export type Route =
  | { readonly kind: 'ping' }
  | { readonly kind: 'health' }
  | { readonly kind: 'ready' }
  | { readonly kind: 'metrics' }
  | { readonly kind: 'admin'; readonly path: string }
  | (Target & { readonly kind: 'manifest'; readonly reference: string })
  | (Target & { readonly kind: 'blob'; readonly digest: string })
  | (Target & { readonly kind: 'tags'; readonly query: string });

export class Router {
  private readonly byName = new Map<string, UpstreamRef>();
  private readonly mirror: UpstreamRef | undefined;

  constructor(upstreams: readonly UpstreamRef[]) {
    for (const u of upstreams) {
      this.byName.set(u.name, u);
      for (const a of u.aliases) this.byName.set(a, u);
    }
    this.mirror = upstreams.find((u) => u.mirror);
  }

  /** Throws OciError for unknown endpoints, invalid names and references, and unknown upstreams. */
  route(method: string, rawUrl: string): Route {
    const q = rawUrl.indexOf('?');
    const path = q < 0 ? rawUrl : rawUrl.slice(0, q);
    const params = new URLSearchParams(q < 0 ? '' : rawUrl.slice(q + 1));
    if (path === '/healthz') return { kind: 'health' };
    if (path === '/readyz') return { kind: 'ready' };
    if (path === '/metrics') return { kind: 'metrics' };
    if (path === '/admin' || path.startsWith('/admin/')) return { kind: 'admin', path };
    if (path !== '/v2' && !path.startsWith('/v2/')) throw new OciError('NOT_FOUND', `no such endpoint: ${clip(path)}`);
    if (method !== 'GET' && method !== 'HEAD') {
      throw new OciError('UNSUPPORTED', `${method} is not supported: regcache is a read-only pull-through cache`, { headers: { allow: 'GET, HEAD' } });
    }
    if (path === '/v2' || path === '/v2/') return { kind: 'ping' };

    // Names, tags and digests never contain '%'; a percent-encoded path is refused, not decoded.
    if (path.includes('%') || path.includes('//') || /\/\.\.?(\/|$)/.test(path)) throw new OciError('NAME_INVALID', 'invalid characters in path');
    const rest = path.slice('/v2/'.length);
    let m = /^(.+)\/manifests\/([^/]+)$/.exec(rest);
    if (m?.[1] && m[2]) {
      const reference = m[2];
      if (isDigest(reference) || reference.includes(':')) parseDigest(reference);
      else assertTag(reference);
      return { kind: 'manifest', ...this.target(m[1], params), reference };
    }
    m = /^(.+)\/blobs\/([^/]+)$/.exec(rest);
    if (m?.[1] && m[2]) {
      const digest = parseDigest(m[2]).value;
      return { kind: 'blob', ...this.target(m[1], params), digest };
    }
    m = /^(.+)\/tags\/list$/.exec(rest);
    if (m?.[1]) {
      return { kind: 'tags', ...this.target(m[1], params), query: tagsQuery(params) };
    }
    if (/\/blobs\/uploads\/?/.test(rest)) {
      throw new OciError('UNSUPPORTED', 'uploads are not supported: regcache is a read-only pull-through cache');
    }
    throw new OciError('NOT_FOUND', `no such endpoint: ${clip(path)}`);
  }

  /**
   * Picks the upstream: containerd's `?ns=<registry>` first, then an explicit prefix
   * (`/v2/<upstream>/<repo>`), then the mirror upstream for bare names (dockerd registry-mirrors).
   */
  private target(name: string, params: URLSearchParams): Target {
    const first = name.split('/', 1)[0] ?? '';
    const prefixed = name.includes('/') ? this.byName.get(first) : undefined;
    const ns = params.get('ns');
    let upstream: UpstreamRef | undefined;
    let repo = name;
    if (ns !== null) {
      upstream = this.byName.get(ns.toLowerCase());
      if (!upstream) throw new OciError('NAME_UNKNOWN', `ns "${clip(ns)}" is not a configured upstream`);
      // containerd with override_path sends the prefix and the ns together.
      if (prefixed === upstream) repo = name.slice(first.length + 1);
    } else if (prefixed) {
      upstream = prefixed;
      repo = name.slice(first.length + 1);
    } else {
      upstream = this.mirror;
      if (!upstream) throw new OciError('NAME_UNKNOWN', `"${clip(first)}" is not a configured upstream, and no upstream is the mirror`);
    }
    assertName(repo);
    const upstreamRepo = upstream.implicitLibrary && !repo.includes('/') ? `library/${repo}` : repo;
    return { upstream: upstream.name, repo: upstreamRepo, clientName: name };
  }
}

/** Only `n` (a bounded integer) and `last` (a tag) are passed to the upstream. */
function tagsQuery(params: URLSearchParams): string {
  const out = new URLSearchParams();
  const n = params.get('n');
  if (n !== null) {
    if (!/^\d{1,6}$/.test(n)) throw new OciError('UNSUPPORTED', `invalid n "${clip(n)}": expected an integer up to 999999`, { status: 400 });
    out.set('n', n);
  }
  const last = params.get('last');
  if (last !== null && last !== '') {
    assertTag(last);
    out.set('last', last);
  }
  return out.toString();
}

function clip(s: string): string {
  return s.length > 100 ? `${s.slice(0, 100)}…` : s;
}
