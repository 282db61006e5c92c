// What every handler gets: the caches, the upstreams by name, metrics and a logger.
import type { BlobCache } from '../cache/blobs.ts';
import type { ManifestCache } from '../cache/manifests.ts';
import type { Logger } from '../observability/logger.ts';
import type { Metrics } from '../observability/metrics.ts';
import { OciError } from '../oci/errors.ts';
import type { UpstreamRegistry } from '../upstream/registry.ts';
import type { Policy } from '../workshops/policy.ts';
import type { ManifestResolver } from '../workshops/resolver.ts';

export interface HandlerContext {
  readonly blobs: BlobCache;
  readonly manifests: ManifestCache;
  /** Manifest resolution with scopes, pins and the floating-tag policy. */
  readonly resolver: ManifestResolver;
  readonly policy: Policy;
  readonly upstreams: ReadonlyMap<string, UpstreamRegistry>;
  readonly metrics: Metrics;
  readonly log: Logger;
}

/** Per-request facts handlers report back for the access log and metrics. */
export interface RequestNote {
  result?: string;
  digest?: string;
  /** `CODE: message` of the error answered, for the access log. */
  error?: string;
}

export function upstreamOf(ctx: HandlerContext, name: string): UpstreamRegistry {
  const upstream = ctx.upstreams.get(name);
  if (!upstream) throw new OciError('NAME_UNKNOWN', `upstream "${name}" is not configured`);
  return upstream;
}
