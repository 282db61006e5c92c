// The typed configuration and its embedded defaults (what `npm start` runs with no file).

export interface UpstreamConfig {
  /** Prefix in explicit refs (`cache.host/<name>/repo:tag`) and the value containerd sends as `?ns=`. */
  readonly name: string;
  /** Base URL of the registry API (http or https, no path). */
  readonly url: string;
  /** Bare `/v2/<repo>/...` requests (dockerd registry-mirrors) go to this upstream. At most one. */
  readonly mirror: boolean;
  /** Docker Hub's implicit `library/` for one-component names. Default: on for Docker Hub. */
  readonly implicitLibrary: boolean;
  /** Extra `ns` values that select this upstream (e.g. index.docker.io for docker.io). */
  readonly aliases: readonly string[];
  readonly username?: string;
  readonly password?: string;
  /** Connect + response-headers timeout for upstream requests. */
  readonly timeoutMs: number;
  /** Longest pause between two body chunks of an upstream response before the fetch is aborted. */
  readonly idleTimeoutMs: number;
  /** Connections per upstream origin. */
  readonly connections: number;
  /** Repository patterns (`library/*`, `bitnami/postgresql`) allowed; empty = all. */
  readonly allow: readonly string[];
  /** Repository patterns refused (checked before `allow`). */
  readonly deny: readonly string[];
  /**
   * Every this often, HEAD `headroomProbeRepository:latest` to refresh the rate-limit gauges
   * (a HEAD costs no pull on Docker Hub); undefined = off.
   */
  readonly headroomProbeMs: number | undefined;
  readonly headroomProbeRepository: string;
}

/** What a request for a floating tag gets. */
export type TagPolicy = 'pin' | 'allow' | 'warn' | 'deny';

export interface Config {
  /** host:port to listen on. */
  readonly listen: string;
  readonly storage: {
    /** Folder for blobs, manifests, temp files and the sqlite metadata. */
    readonly root: string;
    /** Most bytes of content to keep; undefined = unlimited. */
    readonly quotaBytes: number | undefined;
    /** Fraction of the quota that starts an eviction pass. */
    readonly highWater: number;
    /** Fraction of the quota an eviction pass brings usage down to. */
    readonly lowWater: number;
  };
  readonly upstreams: readonly UpstreamConfig[];
  readonly tags: {
    /** How long a tag→digest answer is served before it is revalidated with an upstream HEAD. */
    readonly ttlMs: number;
    /** Tags that move upstream: exact names, `*` globs, or `/regex/`. */
    readonly floating: readonly string[];
    /** pin: one digest per scope (named scopes; the global scope follows ttl); warn/deny: everywhere. */
    readonly policy: TagPolicy;
  };
  readonly scopes: {
    /** `<scope>.<hostSuffix>` in the Host header selects a scope (for dockerd mirrors). */
    readonly hostSuffix: string | undefined;
    /** If set, only these scopes exist; others are refused. */
    readonly allowed: readonly string[] | undefined;
    /** A pin lives this long after its last use (sliding), unless released. */
    readonly pinTtlMs: number;
  };
  readonly prefetch: {
    /** Platforms fetched from an index (`os/arch[/variant]`). */
    readonly platforms: readonly string[];
    /** Stop when an upstream announces this many pulls left or fewer. */
    readonly reserve: number;
  };
  readonly limits: {
    /** Largest manifest accepted from an upstream. */
    readonly maxManifestBytes: number;
    /** Time a client has to send its request headers (slowloris guard). */
    readonly headersTimeoutMs: number;
    /** A client connection with no traffic either way for this long is closed. */
    readonly clientIdleTimeoutMs: number;
  };
  readonly metrics: {
    /** A separate host:port for /metrics (then the main port does not serve it); undefined = main port. */
    readonly listen: string | undefined;
  };
  readonly log: {
    readonly level: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  };
  readonly auth: {
    /** htpasswd file with bcrypt entries (as distribution uses): clients must send Basic credentials. */
    readonly htpasswd: string | undefined;
    /** Read-only tokens (CI clients): `Authorization: Bearer <t>`, or Basic with the token as password. */
    readonly tokens: readonly string[];
    /** Realm in `WWW-Authenticate: Basic realm="…"`. */
    readonly realm: string;
  };
  readonly admin: {
    /** Bearer token for /admin/v1/; undefined = the admin API is disabled. */
    readonly token: string | undefined;
  };
  /** Grace period for in-flight requests on SIGTERM. */
  readonly shutdownTimeoutMs: number;
}

export const DOCKER_HUB_URL = 'https://registry-1.docker.io';

export const UPSTREAM_DEFAULTS = {
  mirror: false,
  timeoutMs: 30_000,
  idleTimeoutMs: 60_000,
  connections: 16,
  allow: [],
  deny: [],
  headroomProbeMs: undefined,
  headroomProbeRepository: 'ratelimitpreview/test',
} as const;

/** Floating by default: the branch-like names, and versions without a patch level (`1`, `1.27`, `v2`, `1.27-alpine`). */
export const DEFAULT_FLOATING = ['latest', 'main', 'master', 'develop', '/^v?\\d+(\\.\\d+)?(-[a-z][a-z0-9._-]*)?$/'] as const;

export const DEFAULTS: Config = {
  listen: '0.0.0.0:5000',
  storage: { root: './data', quotaBytes: undefined, highWater: 0.95, lowWater: 0.85 },
  upstreams: [
    {
      ...UPSTREAM_DEFAULTS,
      name: 'docker.io',
      url: DOCKER_HUB_URL,
      mirror: true,
      implicitLibrary: true,
      aliases: ['index.docker.io', 'registry-1.docker.io'],
    },
  ],
  tags: { ttlMs: 5 * 60_000, floating: DEFAULT_FLOATING, policy: 'pin' },
  scopes: { hostSuffix: undefined, allowed: undefined, pinTtlMs: 24 * 3_600_000 },
  prefetch: { platforms: ['linux/amd64', 'linux/arm64'], reserve: 10 },
  limits: { maxManifestBytes: 4 * 2 ** 20, headersTimeoutMs: 30_000, clientIdleTimeoutMs: 5 * 60_000 },
  metrics: { listen: undefined },
  log: { level: 'info' },
  auth: { htpasswd: undefined, tokens: [], realm: 'regcache' },
  admin: { token: undefined },
  shutdownTimeoutMs: 25_000,
};
