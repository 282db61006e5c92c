// The OCI route table: request path + query → a typed Route naming the upstream and its repository.
import { isDigest, parseDigest } from '../oci/digest.ts';
import { OciError } from '../oci/errors.ts';
import { SCOPE_RE } from '../oci/name-patterns.ts';
import { assertName, assertTag } from '../oci/reference.ts';

export interface ScopeOptions {
  /** `<scope>.<hostSuffix>` in the Host header selects a scope. */
  readonly hostSuffix?: string | undefined;
  /** If set, only these scopes exist. */
  readonly allowed?: readonly string[] | undefined;
}

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
  /** The workshop (tenant) scope; undefined = the global scope. */
  readonly scope?: string;
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
  private readonly scopes: ScopeOptions;

  constructor(upstreams: readonly UpstreamRef[], scopes: ScopeOptions = {}) {
    this.scopes = scopes;
    for (const u of upstreams) {
      this.byName.set(u.name, u);
      for (const a of u.aliases) this.byName.set(a, u);
    }
    this.mirror = upstreams.find((u) => u.mirror);
  }

  /** Throws OciError for unknown endpoints, invalid names and references, and unknown upstreams. */
  route(method: string, rawUrl: string, host?: string): Route {
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
    let rest = path.slice('/v2/'.length);
    // A scope from the path (`/v2/ws/<scope>/<upstream>/<repo>/...`) or else from the Host header.
    let scope: string | undefined;
    const ws = /^ws\/([^/]+)\/(.+)$/.exec(rest);
    if (ws?.[1] && ws[2]) {
      scope = this.checkScope(ws[1]);
      rest = ws[2];
    } else if (host !== undefined && this.scopes.hostSuffix) {
      const h = host.toLowerCase().replace(/:\d+$/, '');
      const suffix = `.${this.scopes.hostSuffix}`;
      if (h.endsWith(suffix)) scope = this.checkScope(h.slice(0, -suffix.length));
    }
    let m = /^(.+)\/manifests\/([^/]+)$/.exec(rest);
    if (m?.[1] && m[2]) {
      const reference = m[2];
      if (isDigest(reference) || reference.includes(':')) parseDigest(reference);
      else assertTag(reference);
      return { kind: 'manifest', ...this.target(m[1], params), ...inScope(scope), reference };
    }
    m = /^(.+)\/blobs\/([^/]+)$/.exec(rest);
    if (m?.[1] && m[2]) {
      const digest = parseDigest(m[2]).value;
      return { kind: 'blob', ...this.target(m[1], params), ...inScope(scope), digest };
    }
    m = /^(.+)\/tags\/list$/.exec(rest);
    if (m?.[1]) {
      return { kind: 'tags', ...this.target(m[1], params), ...inScope(scope), query: tagsQuery(params) };
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
  private checkScope(name: string): string {
    if (!SCOPE_RE.test(name)) throw new OciError('NAME_INVALID', `invalid scope "${clip(name)}": a scope is a DNS label (a-z, 0-9 and "-", at most 63)`);
    if (this.scopes.allowed && !this.scopes.allowed.includes(name)) throw new OciError('DENIED', `scope "${name}" is not one of this cache's scopes (scopes.allowed)`);
    return name;
  }

  private target(name: string, params: URLSearchParams): Omit<Target, 'scope'> {
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

function inScope(scope: string | undefined): { scope?: string } {
  return scope === undefined ? {} : { scope };
}

function clip(s: string): string {
  return s.length > 100 ? `${s.slice(0, 100)}…` : s;
}
