// `regcache admin <command>`: the admin API from a shell, for cron jobs and operators.
import { parseArgs } from 'node:util';

const USAGE = `usage: regcache admin <command> [--url URL] [--token TOKEN]

commands:
  storage                              storage summary (bytes, quota, entries, evictions)
  repos                                cached repositories per upstream
  tags <upstream>/<repo>               cached tags of a repository
  delete-tag <upstream>/<repo>:<tag>   forget a cached tag
  delete-manifest <digest>             delete a stored manifest (and tags pointing at it)
  delete-repo <upstream>/<repo>        forget a repository's tags and manifests
  gc                                   remove blobs that no stored manifest references
  scopes [<scope>]                     workshop scopes and their pins (tag -> digest, expiry)
  pin <scope> <ref>...                 pre-pin floating tags in a scope (upstream HEADs, no pulls)
  release <scope> [<upstream>/<repo>:<tag>]
                                       release one pin, or every pin of the scope

Prefetch (download images into the cache before a workshop): regcache prefetch --help

--url defaults to $REGCACHE_ADMIN_URL or http://127.0.0.1:5000; --token to $REGCACHE_ADMIN_TOKEN.
`;

interface Request {
  readonly method: 'GET' | 'POST' | 'DELETE';
  readonly path: string;
  readonly body?: unknown;
}

/** Maps a command line to an admin API request; throws with the usage text on bad input. */
export function toRequest(args: readonly string[]): Request {
  const [command, arg, ...more] = args;
  const need = (what: string): string => {
    if (!arg) throw new Error(`${command} needs ${what}\n\n${USAGE}`);
    return arg;
  };
  switch (command) {
    case 'storage':
      return { method: 'GET', path: '/admin/v1/storage' };
    case 'repos':
      return { method: 'GET', path: '/admin/v1/repositories' };
    case 'gc':
      return { method: 'POST', path: '/admin/v1/gc' };
    case 'tags':
      return { method: 'GET', path: `/admin/v1/repositories/${need('<upstream>/<repo>')}/tags` };
    case 'delete-tag': {
      const ref = need('<upstream>/<repo>:<tag>');
      const colon = ref.lastIndexOf(':');
      if (colon < 0 || ref.indexOf('/') > colon) throw new Error(`expected <upstream>/<repo>:<tag>, got ${ref}`);
      return { method: 'DELETE', path: `/admin/v1/repositories/${ref.slice(0, colon)}/tags/${ref.slice(colon + 1)}` };
    }
    case 'delete-manifest':
      return { method: 'DELETE', path: `/admin/v1/manifests/${need('<digest>')}` };
    case 'delete-repo':
      return { method: 'DELETE', path: `/admin/v1/repositories/${need('<upstream>/<repo>')}` };
    case 'scopes':
      return { method: 'GET', path: arg ? `/admin/v1/scopes/${arg}` : '/admin/v1/scopes' };
    case 'pin':
      need('<scope>');
      if (more.length === 0) throw new Error(`pin needs <scope> and at least one image reference\n\n${USAGE}`);
      return { method: 'POST', path: `/admin/v1/scopes/${arg}/pins`, body: { refs: more } };
    case 'release': {
      const scope = need('<scope>');
      const ref = more[0];
      if (!ref) return { method: 'DELETE', path: `/admin/v1/scopes/${scope}` };
      const colon = ref.lastIndexOf(':');
      if (colon < 0 || ref.indexOf('/') < 0 || ref.lastIndexOf('/') > colon) throw new Error(`expected <upstream>/<repo>:<tag>, got ${ref}`);
      return { method: 'DELETE', path: `/admin/v1/scopes/${scope}/pins/${ref}` };
    }
    default:
      throw new Error(USAGE);
  }
}

export async function runAdmin(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const { values, positionals } = parseArgs({
    args: [...argv],
    allowPositionals: true,
    options: { url: { type: 'string' }, token: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
  });
  if (values.help || positionals.length === 0) {
    process.stdout.write(USAGE);
    return values.help ? 0 : 2;
  }
  let req: Request;
  try {
    req = toRequest(positionals);
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n`);
    return 2;
  }
  const base = values.url ?? env['REGCACHE_ADMIN_URL'] ?? 'http://127.0.0.1:5000';
  const token = values.token ?? env['REGCACHE_ADMIN_TOKEN'];
  const headers: Record<string, string> = token ? { authorization: `Bearer ${token}` } : {};
  if (req.body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(new URL(req.path, base), { method: req.method, headers, ...(req.body === undefined ? {} : { body: JSON.stringify(req.body) }) });
  const text = await res.text();
  let pretty = text;
  try {
    pretty = JSON.stringify(JSON.parse(text), null, 2);
  } catch {
    // not JSON: print as is
  }
  (res.ok ? process.stdout : process.stderr).write(`${pretty}\n`);
  return res.ok ? 0 : 1;
}
