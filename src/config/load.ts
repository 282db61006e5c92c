// Loads the YAML config file, applies environment overrides and validates it with messages that
// name the exact field; the result is deep-frozen.
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { DEFAULTS, DOCKER_HUB_URL, UPSTREAM_DEFAULTS, type Config, type UpstreamConfig } from './schema.ts';
import { SCOPE_RE, checkPattern, repositoryPattern, tagPattern } from '../oci/name-patterns.ts';
import { parseDuration, parseSize } from './units.ts';

export class ConfigError extends Error {
  readonly problems: readonly string[];
  constructor(problems: string[], source: string) {
    super(`invalid configuration (${source}):\n  - ${problems.join('\n  - ')}`);
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

type Env = Record<string, string | undefined>;
type Raw = Record<string, unknown>;

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
const TAG_POLICIES = ['pin', 'allow', 'warn', 'deny'] as const;
const PLATFORM_RE = /^[a-z0-9]+\/[a-z0-9_]+(\/[a-z0-9]+)?$/;
const UPSTREAM_NAME_RE = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*(:[0-9]{1,5})?$/;

/** Reads the file named by `--config`, else REGCACHE_CONFIG, else the embedded defaults. */
export function loadConfig(opts: { file?: string | undefined; env?: Env } = {}): Config {
  const env = opts.env ?? process.env;
  const file = opts.file ?? env['REGCACHE_CONFIG'];
  let raw: unknown = {};
  if (file) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      throw new ConfigError([`cannot read ${file}: ${(err as Error).message}`], file);
    }
    try {
      raw = parseYaml(text) ?? {};
    } catch (err) {
      throw new ConfigError([`not valid YAML: ${(err as Error).message}`], file);
    }
  }
  return buildConfig(raw, env, file ?? 'defaults');
}

/** Validates a parsed document (plus env overrides) into a frozen Config. */
export function buildConfig(raw: unknown, envIn: Env = {}, source = 'inline'): Config {
  // An empty variable counts as unset: Kubernetes Secrets and compose files template them in empty.
  const env: Env = Object.fromEntries(Object.entries(envIn).filter(([, v]) => v !== undefined && v !== ''));
  const problems: string[] = [];
  const doc = asRecord(raw, '(root)', problems) ?? {};
  known(doc, '', ['listen', 'storage', 'upstreams', 'tags', 'scopes', 'prefetch', 'limits', 'metrics', 'log', 'auth', 'admin', 'shutdownTimeout'], problems);

  const listen = str(env['REGCACHE_LISTEN'] ?? doc['listen'], 'listen', problems) ?? DEFAULTS.listen;
  if (!/^(\[[0-9a-fA-F:.]+\]|[^:\s]*):\d{1,5}$/.test(listen) || Number(listen.split(':').pop()) > 65535) {
    problems.push(`listen: expected host:port, got ${JSON.stringify(listen)}`);
  }

  const storage = asRecord(doc['storage'] ?? {}, 'storage', problems) ?? {};
  known(storage, 'storage.', ['root', 'quota', 'highWater', 'lowWater'], problems);
  const root = str(env['REGCACHE_STORAGE_ROOT'] ?? storage['root'], 'storage.root', problems) ?? DEFAULTS.storage.root;
  const quotaBytes = size(env['REGCACHE_STORAGE_QUOTA'] ?? storage['quota'], 'storage.quota', problems);
  const highWater = fraction(storage['highWater'], 'storage.highWater', problems) ?? DEFAULTS.storage.highWater;
  const lowWater = fraction(storage['lowWater'], 'storage.lowWater', problems) ?? DEFAULTS.storage.lowWater;
  if (lowWater >= highWater) problems.push(`storage.lowWater: must be below storage.highWater (${lowWater} >= ${highWater})`);

  const tags = asRecord(doc['tags'] ?? {}, 'tags', problems) ?? {};
  known(tags, 'tags.', ['ttl', 'floating', 'policy'], problems);
  const ttlMs = duration(env['REGCACHE_TAGS_TTL'] ?? tags['ttl'], 'tags.ttl', problems) ?? DEFAULTS.tags.ttlMs;
  const floating = patterns(tags['floating'], 'tags.floating', tagPattern, problems) ?? DEFAULTS.tags.floating;
  const policyRaw = str(env['REGCACHE_TAGS_POLICY'] ?? tags['policy'], 'tags.policy', problems) ?? DEFAULTS.tags.policy;
  const policy = TAG_POLICIES.find((p) => p === policyRaw);
  if (!policy) problems.push(`tags.policy: expected one of ${TAG_POLICIES.join('|')}, got ${JSON.stringify(policyRaw)}`);

  const scopes = asRecord(doc['scopes'] ?? {}, 'scopes', problems) ?? {};
  known(scopes, 'scopes.', ['hostSuffix', 'allowed', 'pinTtl'], problems);
  const hostSuffix = str(scopes['hostSuffix'], 'scopes.hostSuffix', problems)?.toLowerCase().replace(/^\./, '');
  if (hostSuffix !== undefined && !UPSTREAM_NAME_RE.test(hostSuffix)) problems.push(`scopes.hostSuffix: expected a host name like "cache.example", got ${JSON.stringify(hostSuffix)}`);
  let allowed: string[] | undefined;
  if (scopes['allowed'] !== undefined) {
    const list = scopes['allowed'];
    if (!Array.isArray(list) || !list.every((x) => typeof x === 'string' && SCOPE_RE.test(x))) {
      problems.push('scopes.allowed: expected a list of scope names (DNS labels: a-z, 0-9, "-", at most 63)');
    } else allowed = list as string[];
  }
  const pinTtlMs = duration(scopes['pinTtl'], 'scopes.pinTtl', problems) ?? DEFAULTS.scopes.pinTtlMs;

  const prefetch = asRecord(doc['prefetch'] ?? {}, 'prefetch', problems) ?? {};
  known(prefetch, 'prefetch.', ['platforms', 'reserve'], problems);
  let platforms: readonly string[] = DEFAULTS.prefetch.platforms;
  if (prefetch['platforms'] !== undefined) {
    const list = prefetch['platforms'];
    if (!Array.isArray(list) || list.length === 0 || !list.every((x) => typeof x === 'string' && PLATFORM_RE.test(x))) {
      problems.push('prefetch.platforms: expected a non-empty list like [linux/amd64, linux/arm64/v8]');
    } else platforms = list as string[];
  }
  const reserve = prefetch['reserve'] ?? DEFAULTS.prefetch.reserve;
  if (typeof reserve !== 'number' || !Number.isInteger(reserve) || reserve < 0) problems.push('prefetch.reserve: expected a whole number of pulls (0 or more)');

  const limits = asRecord(doc['limits'] ?? {}, 'limits', problems) ?? {};
  known(limits, 'limits.', ['maxManifestSize', 'headersTimeout', 'clientIdleTimeout'], problems);
  const maxManifestBytes = size(limits['maxManifestSize'], 'limits.maxManifestSize', problems) ?? DEFAULTS.limits.maxManifestBytes;
  const headersTimeoutMs = duration(limits['headersTimeout'], 'limits.headersTimeout', problems) ?? DEFAULTS.limits.headersTimeoutMs;
  const clientIdleTimeoutMs = duration(limits['clientIdleTimeout'], 'limits.clientIdleTimeout', problems) ?? DEFAULTS.limits.clientIdleTimeoutMs;

  const metricsDoc = asRecord(doc['metrics'] ?? {}, 'metrics', problems) ?? {};
  known(metricsDoc, 'metrics.', ['listen'], problems);
  const metricsListen = str(env['REGCACHE_METRICS_LISTEN'] ?? metricsDoc['listen'], 'metrics.listen', problems);
  if (metricsListen !== undefined && !/^(\[[0-9a-fA-F:.]+\]|[^:\s]*):\d{1,5}$/.test(metricsListen)) problems.push(`metrics.listen: expected host:port, got ${JSON.stringify(metricsListen)}`);

  const log = asRecord(doc['log'] ?? {}, 'log', problems) ?? {};
  known(log, 'log.', ['level'], problems);
  const levelRaw = str(env['REGCACHE_LOG_LEVEL'] ?? log['level'], 'log.level', problems) ?? DEFAULTS.log.level;
  const level = LOG_LEVELS.find((l) => l === levelRaw);
  if (!level) problems.push(`log.level: expected one of ${LOG_LEVELS.join('|')}, got ${JSON.stringify(levelRaw)}`);

  const authDoc = asRecord(doc['auth'] ?? {}, 'auth', problems) ?? {};
  known(authDoc, 'auth.', ['htpasswd', 'tokens', 'realm'], problems);
  const htpasswd = str(env['REGCACHE_AUTH_HTPASSWD'] ?? authDoc['htpasswd'], 'auth.htpasswd', problems);
  let tokens: string[] = [];
  const rawTokens = env['REGCACHE_AUTH_TOKENS'] !== undefined ? env['REGCACHE_AUTH_TOKENS'].split(',').map((t) => t.trim()).filter(Boolean) : authDoc['tokens'];
  if (rawTokens !== undefined) {
    if (!Array.isArray(rawTokens) || !rawTokens.every((t) => typeof t === 'string')) problems.push('auth.tokens: expected a list of tokens');
    else if (rawTokens.some((t) => t.length < 16)) problems.push('auth.tokens: use at least 16 characters per token');
    else tokens = rawTokens;
  }
  const realm = str(authDoc['realm'], 'auth.realm', problems) ?? DEFAULTS.auth.realm;
  if (/["\\\r\n]/.test(realm)) problems.push('auth.realm: no quotes, backslashes or line breaks');

  const admin = asRecord(doc['admin'] ?? {}, 'admin', problems) ?? {};
  known(admin, 'admin.', ['token'], problems);
  const adminToken = str(env['REGCACHE_ADMIN_TOKEN'] ?? admin['token'], 'admin.token', problems);
  if (adminToken !== undefined && adminToken.length < 16) problems.push('admin.token: use at least 16 characters');

  const shutdownTimeoutMs = duration(doc['shutdownTimeout'], 'shutdownTimeout', problems) ?? DEFAULTS.shutdownTimeoutMs;

  let upstreams: UpstreamConfig[] = [...DEFAULTS.upstreams];
  if (doc['upstreams'] !== undefined) {
    if (!Array.isArray(doc['upstreams']) || doc['upstreams'].length === 0) {
      problems.push('upstreams: expected a non-empty list');
    } else {
      upstreams = doc['upstreams'].map((u, i) => upstream(u, i, problems)).filter((u) => u !== undefined);
    }
  }
  upstreams = upstreams.map((u) => withCredentialsFromEnv(u, env));
  const names = new Set<string>();
  for (const [i, u] of upstreams.entries()) {
    for (const n of [u.name, ...u.aliases]) {
      if (names.has(n)) problems.push(`upstreams[${i}].name: "${n}" is used twice`);
      names.add(n);
    }
  }
  if (upstreams.filter((u) => u.mirror).length > 1) {
    problems.push('upstreams: at most one upstream may have mirror: true');
  }

  if (problems.length > 0) throw new ConfigError(problems, source);
  return deepFreeze({
    listen,
    storage: { root, quotaBytes, highWater, lowWater },
    upstreams,
    tags: { ttlMs, floating, policy: policy ?? 'pin' },
    scopes: { hostSuffix, allowed, pinTtlMs },
    prefetch: { platforms, reserve: typeof reserve === 'number' ? reserve : DEFAULTS.prefetch.reserve },
    limits: { maxManifestBytes, headersTimeoutMs, clientIdleTimeoutMs },
    metrics: { listen: metricsListen },
    log: { level: level ?? 'info' },
    auth: { htpasswd, tokens, realm },
    admin: { token: adminToken },
    shutdownTimeoutMs,
  });
}

function upstream(raw: unknown, i: number, problems: string[]): UpstreamConfig | undefined {
  const at = `upstreams[${i}]`;
  const u = asRecord(raw, at, problems);
  if (!u) return undefined;
  known(u, `${at}.`, ['name', 'url', 'mirror', 'implicitLibrary', 'aliases', 'username', 'password', 'timeout', 'idleTimeout', 'connections', 'allow', 'deny', 'headroomProbe', 'headroomProbeRepository'], problems);
  const name = str(u['name'], `${at}.name`, problems);
  const url = str(u['url'], `${at}.url`, problems);
  if (name === undefined) problems.push(`${at}.name: required`);
  else if (!UPSTREAM_NAME_RE.test(name)) problems.push(`${at}.name: expected a registry host name like "ghcr.io", got ${JSON.stringify(name)}`);
  let origin: URL | undefined;
  if (url === undefined) problems.push(`${at}.url: required`);
  else {
    try {
      origin = new URL(url);
    } catch {
      origin = undefined;
    }
    if (!origin || !['http:', 'https:'].includes(origin.protocol) || origin.username || origin.password || (origin.pathname !== '/' && origin.pathname !== '') || origin.search) {
      problems.push(`${at}.url: expected an http(s) URL with no path, query or credentials, got ${JSON.stringify(url)}`);
      origin = undefined;
    }
  }
  const aliases = u['aliases'] === undefined ? [] : u['aliases'];
  if (!Array.isArray(aliases) || !aliases.every((a) => typeof a === 'string')) {
    problems.push(`${at}.aliases: expected a list of names`);
  }
  const isHub = name === 'docker.io' || origin?.origin === DOCKER_HUB_URL;
  const connections = u['connections'] === undefined ? UPSTREAM_DEFAULTS.connections : u['connections'];
  if (typeof connections !== 'number' || !Number.isInteger(connections) || connections < 1) {
    problems.push(`${at}.connections: expected a positive integer`);
  }
  const username = str(u['username'], `${at}.username`, problems);
  const password = str(u['password'], `${at}.password`, problems);
  const mirror = bool(u['mirror'], `${at}.mirror`, problems) ?? UPSTREAM_DEFAULTS.mirror;
  const implicitLibrary = bool(u['implicitLibrary'], `${at}.implicitLibrary`, problems) ?? isHub;
  const timeoutMs = duration(u['timeout'], `${at}.timeout`, problems) ?? UPSTREAM_DEFAULTS.timeoutMs;
  const idleTimeoutMs = duration(u['idleTimeout'], `${at}.idleTimeout`, problems) ?? UPSTREAM_DEFAULTS.idleTimeoutMs;
  const headroomProbeMs = duration(u['headroomProbe'], `${at}.headroomProbe`, problems);
  const headroomProbeRepository = str(u['headroomProbeRepository'], `${at}.headroomProbeRepository`, problems) ?? UPSTREAM_DEFAULTS.headroomProbeRepository;
  const allow = patterns(u['allow'], `${at}.allow`, repositoryPattern, problems) ?? [];
  const deny = patterns(u['deny'], `${at}.deny`, repositoryPattern, problems) ?? [];
  if (name === undefined || origin === undefined) return undefined;
  return {
    allow,
    deny,
    headroomProbeMs,
    headroomProbeRepository,
    name,
    url: origin.origin,
    mirror,
    implicitLibrary,
    aliases: Array.isArray(aliases) ? aliases.filter((a): a is string => typeof a === 'string') : [],
    ...(username === undefined ? {} : { username }),
    ...(password === undefined ? {} : { password }),
    timeoutMs,
    idleTimeoutMs,
    connections: typeof connections === 'number' ? connections : UPSTREAM_DEFAULTS.connections,
  };
}

/** REGCACHE_UPSTREAM_<NAME>_USERNAME / _PASSWORD, NAME upper-cased with non-alphanumerics as "_". */
function withCredentialsFromEnv(u: UpstreamConfig, env: Env): UpstreamConfig {
  const key = `REGCACHE_UPSTREAM_${u.name.toUpperCase().replace(/[^A-Z0-9]/g, '_')}`;
  const username = env[`${key}_USERNAME`] ?? u.username;
  const password = env[`${key}_PASSWORD`] ?? u.password;
  return { ...u, ...(username === undefined ? {} : { username }), ...(password === undefined ? {} : { password }) };
}

function asRecord(v: unknown, at: string, problems: string[]): Raw | undefined {
  if (v !== null && typeof v === 'object' && !Array.isArray(v)) return v as Raw;
  problems.push(`${at}: expected a mapping, got ${JSON.stringify(v)}`);
  return undefined;
}

/** A list of name patterns, each compiled once to catch mistakes at start. */
function patterns(v: unknown, at: string, compile: (p: string) => RegExp, problems: string[]): string[] | undefined {
  if (v === undefined) return undefined;
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'string' && x !== '')) {
    problems.push(`${at}: expected a list of patterns`);
    return undefined;
  }
  for (const [i, p] of (v as string[]).entries()) {
    const bad = checkPattern(p, compile);
    if (bad) problems.push(`${at}[${i}]: ${bad}`);
  }
  return v as string[];
}

function known(r: Raw, prefix: string, keys: readonly string[], problems: string[]): void {
  for (const k of Object.keys(r)) {
    if (!keys.includes(k)) problems.push(`${prefix}${k}: unknown key (expected one of ${keys.join(', ')})`);
  }
}

function str(v: unknown, at: string, problems: string[]): string | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'string' || typeof v === 'number') return String(v);
  problems.push(`${at}: expected a string, got ${JSON.stringify(v)}`);
  return undefined;
}

function bool(v: unknown, at: string, problems: string[]): boolean | undefined {
  if (v === undefined) return undefined;
  if (typeof v === 'boolean') return v;
  problems.push(`${at}: expected true or false, got ${JSON.stringify(v)}`);
  return undefined;
}

function duration(v: unknown, at: string, problems: string[]): number | undefined {
  if (v === undefined || v === null) return undefined;
  const ms = typeof v === 'string' || typeof v === 'number' ? parseDuration(v) : undefined;
  if (ms === undefined) problems.push(`${at}: expected a duration like "30s" or "5m", got ${JSON.stringify(v)}`);
  return ms;
}

function size(v: unknown, at: string, problems: string[]): number | undefined {
  if (v === undefined || v === null) return undefined;
  const bytes = typeof v === 'string' || typeof v === 'number' ? parseSize(v) : undefined;
  if (bytes === undefined || bytes <= 0) problems.push(`${at}: expected a size like "4MiB", got ${JSON.stringify(v)}`);
  return bytes;
}

function fraction(v: unknown, at: string, problems: string[]): number | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'number' && v > 0 && v <= 1) return v;
  problems.push(`${at}: expected a fraction in (0, 1], got ${JSON.stringify(v)}`);
  return undefined;
}

function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object') {
    for (const v of Object.values(o)) deepFreeze(v);
    Object.freeze(o);
  }
  return o;
}
