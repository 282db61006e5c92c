// Upstream authentication: answers Bearer/Basic challenges and caches tokens per (realm, service, scope).
import type { Dispatcher } from 'undici';
import { isBlockedAddress } from './blocked-addresses.ts';
import type { Logger } from '../observability/logger.ts';
import { OciError } from '../oci/errors.ts';
import { UpstreamError } from './errors.ts';

export interface Credentials {
  readonly username: string;
  readonly password: string;
}

export interface Challenge {
  readonly scheme: 'bearer' | 'basic';
  readonly params: Readonly<Record<string, string>>;
}

/** Parses `Bearer realm="…",service="…",scope="…"` (quoted or bare values). */
export function parseChallenge(header: string | string[] | undefined): Challenge | undefined {
  const raw = Array.isArray(header) ? header.find((h) => /^\s*bearer\s/i.test(h)) ?? header[0] : header;
  if (!raw) return undefined;
  const m = /^\s*(\w+)\s*(.*)$/s.exec(raw);
  const scheme = m?.[1]?.toLowerCase();
  if (scheme !== 'bearer' && scheme !== 'basic') return undefined;
  const params: Record<string, string> = {};
  const re = /([a-zA-Z_]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))\s*,?\s*/g;
  for (let p = re.exec(m?.[2] ?? ''); p; p = re.exec(m?.[2] ?? '')) {
    if (p[1]) params[p[1].toLowerCase()] = (p[2] ?? p[3] ?? '').replace(/\\(.)/g, '$1');
  }
  return { scheme, params };
}

interface CachedToken {
  readonly header: string;
  readonly expiresAt: number;
}

/** Tokens live at least 60 s (spec), and are dropped 10 s early so a request never carries a dying one. */
const MIN_TOKEN_SECONDS = 60;
const EXPIRY_MARGIN_MS = 10_000;

export class UpstreamAuth {
  private readonly upstream: string;
  private readonly credentials: Credentials | undefined;
  private readonly dispatcher: Dispatcher;
  private readonly log: Logger;
  /** The last challenge seen: lets later requests fetch a token first instead of eating a 401. */
  private challenge: Challenge | undefined;
  private readonly tokens = new Map<string, CachedToken>();
  private readonly pending = new Map<string, Promise<CachedToken | undefined>>();
  private readonly timeoutMs: number;

  constructor(opts: { upstream: string; credentials?: Credentials | undefined; dispatcher: Dispatcher; logger: Logger; timeoutMs: number }) {
    this.upstream = opts.upstream;
    this.credentials = opts.credentials;
    this.dispatcher = opts.dispatcher;
    this.log = opts.logger;
    this.timeoutMs = opts.timeoutMs;
  }

  /** The Authorization header for a pull of `repo`, if this upstream is known to want one. */
  async authorization(repo: string): Promise<string | undefined> {
    if (!this.challenge) return undefined;
    return this.answer(this.challenge, `repository:${repo}:pull`);
  }

  /**
   * Handles a 401: remembers the challenge, drops the token that failed, and returns the header
   * to retry with (undefined when the challenge cannot be answered).
   */
  async onUnauthorized(wwwAuthenticate: string | string[] | undefined, repo: string, failed: string | undefined): Promise<string | undefined> {
    const challenge = parseChallenge(wwwAuthenticate);
    if (!challenge) return undefined;
    this.challenge = { scheme: challenge.scheme, params: { ...challenge.params, scope: '' } };
    const scope = challenge.params['scope'] || `repository:${repo}:pull`;
    for (const [key, token] of this.tokens) if (token.header === failed) this.tokens.delete(key);
    const header = await this.answer(challenge, scope);
    return header === failed ? undefined : header;
  }

  private async answer(challenge: Challenge, scope: string): Promise<string | undefined> {
    if (challenge.scheme === 'basic') {
      if (!this.credentials) return undefined;
      return `Basic ${Buffer.from(`${this.credentials.username}:${this.credentials.password}`).toString('base64')}`;
    }
    const realm = challenge.params['realm'];
    if (!realm) return undefined;
    const service = challenge.params['service'] ?? '';
    const key = `${realm}\n${service}\n${scope}`;
    const cached = this.tokens.get(key);
    if (cached && cached.expiresAt > Date.now()) return cached.header;
    let pending = this.pending.get(key);
    if (!pending) {
      pending = this.fetchToken(realm, service, scope).finally(() => this.pending.delete(key));
      this.pending.set(key, pending);
    }
    const token = await pending;
    if (token) this.tokens.set(key, token);
    return token?.header;
  }

  private async fetchToken(realm: string, service: string, scope: string): Promise<CachedToken | undefined> {
    let url: URL;
    try {
      url = new URL(realm);
    } catch {
      this.log.warn({ upstream: this.upstream }, 'token realm is not a URL');
      return undefined;
    }
    if (url.protocol !== 'https:' && url.protocol !== 'http:') return undefined;
    if (isBlockedAddress(url.hostname)) {
      this.log.warn({ upstream: this.upstream, realm: url.hostname }, 'token realm points at a link-local or metadata address: refused');
      return undefined;
    }
    if (service) url.searchParams.set('service', service);
    if (scope) url.searchParams.set('scope', scope);
    const headers: Record<string, string> = { 'user-agent': 'regcache' };
    if (this.credentials) {
      headers['authorization'] = `Basic ${Buffer.from(`${this.credentials.username}:${this.credentials.password}`).toString('base64')}`;
    }
    const started = Date.now();
    const res = await this.dispatcher.request({
      origin: url.origin,
      path: `${url.pathname}${url.search}`,
      method: 'GET',
      headers,
      headersTimeout: this.timeoutMs,
      bodyTimeout: this.timeoutMs,
    });
    const text = await res.body.text();
    if (res.statusCode >= 500 || res.statusCode === 429) {
      // The token server is down or throttling: upstream trouble, not missing access.
      throw new UpstreamError(this.upstream, res.statusCode === 429 ? 'throttled' : 'server',
        new OciError(res.statusCode === 429 ? 'TOOMANYREQUESTS' : 'UPSTREAM_UNAVAILABLE', `token server of ${this.upstream} answered ${res.statusCode}`), { status: res.statusCode });
    }
    if (res.statusCode !== 200) {
      this.log.warn({ upstream: this.upstream, realm: url.origin, status: res.statusCode }, 'token request refused');
      return undefined;
    }
    let body: { token?: unknown; access_token?: unknown; expires_in?: unknown; issued_at?: unknown };
    try {
      body = JSON.parse(text) as typeof body;
    } catch {
      this.log.warn({ upstream: this.upstream, realm: url.origin }, 'token response is not JSON');
      return undefined;
    }
    const token = typeof body.token === 'string' && body.token ? body.token : typeof body.access_token === 'string' ? body.access_token : '';
    if (!token) return undefined;
    const seconds = Math.max(MIN_TOKEN_SECONDS, typeof body.expires_in === 'number' ? body.expires_in : MIN_TOKEN_SECONDS);
    const issued = typeof body.issued_at === 'string' ? Date.parse(body.issued_at) : NaN;
    // Trust issued_at only when clocks roughly agree; otherwise count from the exchange.
    const base = Number.isFinite(issued) && Math.abs(issued - started) < 60_000 ? issued : started;
    return { header: `Bearer ${token}`, expiresAt: base + seconds * 1000 - EXPIRY_MARGIN_MS };
  }
}
