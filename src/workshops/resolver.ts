// Manifest resolution with workshop semantics: a floating tag requested in a named scope resolves
// to the digest pinned there (the first resolution pins it, after asking the upstream with a free
// HEAD so a new workshop starts on the current image); `warn` and `deny` policies apply to every
// scope. Used by the manifest handler and by prefetch, so both pin the same way.
import type { ManifestAnswer, ManifestCache } from '../cache/manifests.ts';
import { SingleFlight } from '../cache/single-flight.ts';
import type { Logger } from '../observability/logger.ts';
import type { Metrics } from '../observability/metrics.ts';
import { isDigest } from '../oci/digest.ts';
import { OciError } from '../oci/errors.ts';
import type { UpstreamRegistry } from '../upstream/registry.ts';
import type { Pins } from './pins.ts';
import type { Policy } from './policy.ts';

export interface Resolution {
  readonly answer: ManifestAnswer;
  /** The cache result for logs and metrics: the manifest cache's, or "pinned". */
  readonly result: string;
  /** Set when the answer came from, or created, a pin. */
  readonly pinned: boolean;
}

export class ManifestResolver {
  private readonly manifests: ManifestCache;
  private readonly pins: Pins;
  private readonly policy: Policy;
  private readonly metrics: Metrics;
  private readonly log: Logger;
  /** First resolutions of a tag in a scope, shared by the requests that arrive together. */
  private readonly first = new SingleFlight<{ answer: ManifestAnswer; digest: string }>();

  constructor(deps: { manifests: ManifestCache; pins: Pins; policy: Policy; metrics: Metrics; logger: Logger }) {
    this.manifests = deps.manifests;
    this.pins = deps.pins;
    this.policy = deps.policy;
    this.metrics = deps.metrics;
    this.log = deps.logger.child({ module: 'resolver' });
  }

  /** `scope` undefined = the global scope (tags follow their TTL). */
  async resolve(scope: string | undefined, upstream: UpstreamRegistry, repo: string, reference: string, method: 'GET' | 'HEAD'): Promise<Resolution> {
    if (isDigest(reference) || !this.policy.isFloating(reference)) return this.plain(upstream, repo, reference, method);
    const policy = this.policy.tagPolicy;
    this.metrics.floatingTags.labels(policy).inc();
    switch (policy) {
      case 'deny':
        throw new OciError(
          'DENIED',
          `tag "${reference}" of ${upstream.name}/${repo} is a floating tag (it matches tags.floating) and this cache's tags.policy is deny: ` +
            'pull a fixed version (like 1.27.3) or a digest, so that every pull gets the same image',
        );
      case 'warn':
        this.log.warn({ scope, upstream: upstream.name, repo, tag: reference }, 'floating tag pulled (tags.policy: warn)');
        return this.plain(upstream, repo, reference, method);
      case 'allow':
        return this.plain(upstream, repo, reference, method);
      case 'pin':
        if (scope === undefined) return this.plain(upstream, repo, reference, method);
        return this.pinned(scope, upstream, repo, reference, method);
    }
  }

  private async plain(upstream: UpstreamRegistry, repo: string, reference: string, method: 'GET' | 'HEAD'): Promise<Resolution> {
    const answer = await this.manifests.get(upstream, repo, reference, method);
    return { answer, result: answer.source, pinned: false };
  }

  private async pinned(scope: string, upstream: UpstreamRegistry, repo: string, tag: string, method: 'GET' | 'HEAD'): Promise<Resolution> {
    const held = this.pins.use(scope, upstream.name, repo, tag);
    if (held) {
      const answer = await this.manifests.get(upstream, repo, held.digest, method);
      return { answer, result: 'pinned', pinned: true };
    }
    // First resolution in this scope: what the upstream says now (a HEAD, free on Docker Hub),
    // not a global answer that may be up to tags.ttl old. Sessions starting together share it:
    // the check above and joining this flight happen in one tick, and the pin is in place before
    // the flight ends, so no request can slip between them and resolve a second time.
    const { promise, joined } = this.first.run(`${scope}\n${upstream.name}/${repo}:${tag}`, async () => {
      const answer = await this.manifests.get(upstream, repo, tag, method, { revalidate: true });
      const pin = await this.pins.pin(scope, upstream.name, repo, tag, answer.digest);
      return { answer, digest: pin.digest };
    });
    const first = await promise;
    if (first.digest === first.answer.digest && (!joined || method === 'HEAD' || first.answer.body)) {
      return { answer: first.answer, result: joined ? 'pinned' : first.answer.source, pinned: true };
    }
    // A joiner that needs the body the first (HEAD) answer lacked, or a digest pinned elsewhere.
    return { answer: await this.manifests.get(upstream, repo, first.digest, method), result: 'pinned', pinned: true };
  }
}
