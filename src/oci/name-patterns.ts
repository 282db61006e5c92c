// Name patterns in config: tags (`latest`, `*-rc`, `/^v?\d+$/`) and repositories (`library/*`,
// `bitnami/**`). Compiled once to anchored regular expressions.

/** Scope (workshop) names are DNS labels, so `<scope>.<hostSuffix>` also works as a host name. */
export const SCOPE_RE = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

/**
 * A tag pattern: `/…/` is a regular expression (anchor it yourself), anything else is an exact
 * name where `*` matches any run of characters.
 */
export function tagPattern(p: string): RegExp {
  if (p.length > 2 && p.startsWith('/') && p.endsWith('/')) return new RegExp(p.slice(1, -1));
  return new RegExp(`^${escape(p).replace(/\\\*/g, '.*')}$`);
}

/** A repository pattern: `*` matches within one path component, `**` across components. */
export function repositoryPattern(p: string): RegExp {
  const src = escape(p)
    .replace(/\\\*\\\*/g, '\u0000')
    .replace(/\\\*/g, '[^/]*')
    .replace(/\u0000/g, '.*');
  return new RegExp(`^${src}$`);
}

/** Throws with a readable message for a pattern that does not compile. */
export function checkPattern(p: string, compile: (p: string) => RegExp): string | undefined {
  try {
    compile(p);
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}

function escape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}
