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
}

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
  };
  readonly limits: {
    /** Largest manifest accepted from an upstream. */
    readonly maxManifestBytes: number;
  };
  readonly log: {
    readonly level: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
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
} as const;

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
  tags: { ttlMs: 5 * 60_000 },
  limits: { maxManifestBytes: 4 * 2 ** 20 },
  log: { level: 'info' },
  admin: { token: undefined },
  shutdownTimeoutMs: 25_000,
};
