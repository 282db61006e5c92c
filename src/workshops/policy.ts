// What may be pulled: repository allow/deny lists per upstream (checked before any upstream
// contact, so arbitrary pulls cannot fill the cache), and which tags float and what a request for
// one gets (tags.policy).
import type { Config, TagPolicy } from '../config/schema.ts';
import { repositoryPattern, tagPattern } from '../oci/name-patterns.ts';
import { OciError } from '../oci/errors.ts';

interface RepositoryRules {
  readonly allow: readonly RegExp[];
  readonly deny: readonly RegExp[];
}

export class Policy {
  readonly tagPolicy: TagPolicy;
  private readonly floating: readonly RegExp[];
  private readonly repositories = new Map<string, RepositoryRules>();

  constructor(config: Pick<Config, 'tags' | 'upstreams'>) {
    this.tagPolicy = config.tags.policy;
    this.floating = config.tags.floating.map(tagPattern);
    for (const u of config.upstreams) {
      this.repositories.set(u.name, { allow: u.allow.map(repositoryPattern), deny: u.deny.map(repositoryPattern) });
    }
  }

  /** Whether a tag moves upstream (tags.floating); digests never float. */
  isFloating(tag: string): boolean {
    return this.floating.some((re) => re.test(tag));
  }

  /** Throws DENIED for a repository outside the upstream's allow list or inside its deny list. */
  checkRepository(upstream: string, repo: string): void {
    const rules = this.repositories.get(upstream);
    if (!rules) return;
    if (rules.deny.some((re) => re.test(repo))) {
      throw new OciError('DENIED', `repository ${upstream}/${repo} is denied by this cache's policy (upstreams[].deny)`);
    }
    if (rules.allow.length > 0 && !rules.allow.some((re) => re.test(repo))) {
      throw new OciError('DENIED', `repository ${upstream}/${repo} is not in this cache's allow list (upstreams[].allow)`);
    }
  }
}
