// GET /v2/<name>/tags/list: proxied to the upstream (tags move; listing them is not cached).
import type { IncomingMessage, ServerResponse } from 'node:http';
import { API_VERSION_HEADER } from '../http/respond.ts';
import { VerificationError } from '../upstream/errors.ts';
import { header } from '../upstream/registry.ts';
import { upstreamOf, type HandlerContext, type RequestNote } from './context.ts';

const MAX_TAGS_BODY = 16 * 2 ** 20;

export async function handleTags(
  ctx: HandlerContext,
  route: { upstream: string; repo: string; clientName: string; query: string },
  req: IncomingMessage,
  res: ServerResponse,
  note: RequestNote,
): Promise<void> {
  const upstream = upstreamOf(ctx, route.upstream);
  const up = await upstream.tags(route.repo, route.query);
  const text = await up.body.text();
  if (text.length > MAX_TAGS_BODY) throw new VerificationError(upstream.name, 'tags list too large');
  let parsed: { tags?: unknown };
  try {
    parsed = JSON.parse(text) as { tags?: unknown };
  } catch {
    throw new VerificationError(upstream.name, 'tags list is not JSON');
  }
  const tags = Array.isArray(parsed.tags) ? parsed.tags.filter((t): t is string => typeof t === 'string') : [];
  // Answer under the name the client used, and point Link at our own path, not the upstream's.
  const body = JSON.stringify({ name: route.clientName, tags });
  const headers: Record<string, string | number> = {
    ...API_VERSION_HEADER,
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(body),
  };
  const link = nextLink(header(up.headers, 'link'), route.clientName, new URL(req.url ?? '/', 'http://x').searchParams.get('ns'));
  if (link) headers['link'] = link;
  note.result = 'miss';
  res.writeHead(200, headers);
  res.end(req.method === 'HEAD' ? undefined : body);
}

function nextLink(upstreamLink: string | undefined, clientName: string, ns: string | null): string | undefined {
  const m = upstreamLink ? /<([^>]*)>\s*;\s*rel="?next"?/i.exec(upstreamLink) : null;
  if (!m?.[1]) return undefined;
  const upstreamParams = new URL(m[1], 'http://x').searchParams;
  const params = new URLSearchParams();
  const n = upstreamParams.get('n');
  const last = upstreamParams.get('last');
  if (n) params.set('n', n);
  if (last) params.set('last', last);
  if (ns) params.set('ns', ns);
  return `</v2/${clientName}/tags/list?${params.toString()}>; rel="next"`;
}
