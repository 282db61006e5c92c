// Who may pull: Basic credentials checked against an htpasswd file (bcrypt entries, as distribution
// uses them, so `docker login` and `skopeo --creds` work), and read-only tokens for CI clients
// (`Authorization: Bearer <token>`, or Basic with the token as the password). Only bcrypt is
// accepted: other htpasswd hash formats are refused at start. A verified credential is remembered
// for a few minutes, so bcrypt's deliberate cost is not paid on every request of a pull.
import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import bcrypt from 'bcryptjs';
import { OciError } from '../oci/errors.ts';
import type { Logger } from '../observability/logger.ts';
import type { Metrics } from '../observability/metrics.ts';

/** How long a verified credential is trusted without re-running bcrypt. */
const VERIFIED_TTL_MS = 5 * 60_000;
const MAX_VERIFIED = 10_000;

export class HtpasswdError extends Error {}

/** Parses an htpasswd file: `user:$2y$…` lines; comments and blank lines ignored. */
export function parseHtpasswd(text: string, source: string): Map<string, string> {
  const users = new Map<string, string>();
  for (const [i, raw] of text.split('\n').entries()) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const colon = line.indexOf(':');
    const user = line.slice(0, colon);
    const hash = line.slice(colon + 1);
    if (colon <= 0 || !/^\$2[aby]\$\d\d\$[./A-Za-z0-9]{53}$/.test(hash)) {
      throw new HtpasswdError(`${source}:${i + 1}: expected "user:<bcrypt hash>" (htpasswd -B); other hash formats are not accepted`);
    }
    users.set(user, hash);
  }
  return users;
}

export class ClientAuth {
  private readonly users: Map<string, string>;
  private readonly tokens: readonly Buffer[];
  private readonly challenge: string;
  private readonly metrics: Metrics;
  private readonly log: Logger;
  /** sha256 of accepted Authorization headers → when that acceptance expires. */
  private readonly verified = new Map<string, number>();

  constructor(opts: { htpasswd: string | undefined; tokens: readonly string[]; realm: string; metrics: Metrics; logger: Logger }) {
    this.users = opts.htpasswd ? parseHtpasswd(readFileSync(opts.htpasswd, 'utf8'), opts.htpasswd) : new Map();
    this.tokens = opts.tokens.map((t) => Buffer.from(t));
    this.challenge = `Basic realm="${opts.realm}"`;
    this.metrics = opts.metrics;
    this.log = opts.logger.child({ module: 'auth' });
  }

  /** Whether any client credential is configured (otherwise pulls are open). */
  static enabled(opts: { htpasswd: string | undefined; tokens: readonly string[] }): boolean {
    return opts.htpasswd !== undefined || opts.tokens.length > 0;
  }

  /** Throws UNAUTHORIZED (with the Basic challenge) unless the request carries valid credentials. */
  async check(authorization: string | undefined, remote: string | undefined): Promise<void> {
    if (!authorization) throw this.unauthorized('authentication required');
    const key = createHash('sha256').update(authorization).digest('hex');
    const until = this.verified.get(key);
    if (until !== undefined && until > Date.now()) return;
    const space = authorization.indexOf(' ');
    const scheme = authorization.slice(0, space).toLowerCase();
    const value = authorization.slice(space + 1).trim();
    let ok = false;
    let user: string | undefined;
    if (space > 0 && scheme === 'bearer') {
      ok = this.isToken(value);
    } else if (space > 0 && scheme === 'basic') {
      const decoded = Buffer.from(value, 'base64').toString('utf8');
      const colon = decoded.indexOf(':');
      if (colon > 0) {
        user = decoded.slice(0, colon);
        const password = decoded.slice(colon + 1);
        const hash = this.users.get(user);
        // Tokens also work as a Basic password (docker login -u ci -p <token>).
        ok = this.isToken(password) || (hash !== undefined && (await bcrypt.compare(password, hash)));
      }
    }
    if (!ok) {
      const reason = scheme === 'basic' || scheme === 'bearer' ? 'bad-credentials' : 'malformed';
      this.metrics.authFailures.labels(reason).inc();
      // The user name helps an operator; the password or token never goes to the log.
      this.log.warn({ user: user?.slice(0, 100), scheme: scheme.slice(0, 20), remote, reason }, 'client authentication failed');
      throw this.unauthorized('invalid credentials');
    }
    if (this.verified.size >= MAX_VERIFIED) this.verified.clear();
    this.verified.set(key, Date.now() + VERIFIED_TTL_MS);
  }

  private isToken(candidate: string): boolean {
    const given = Buffer.from(candidate);
    let match = false;
    // Compare against every token in constant time per token, whatever matches first.
    for (const t of this.tokens) if (t.length === given.length && timingSafeEqual(t, given)) match = true;
    return match;
  }

  private unauthorized(message: string): OciError {
    return new OciError('UNAUTHORIZED', message, { headers: { 'www-authenticate': this.challenge } });
  }
}
