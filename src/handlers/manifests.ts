// GET/HEAD /v2/<name>/manifests/<tag|digest>: answered through the resolver (scopes, pins, the
// floating-tag policy) and the manifest cache's freshness policy.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { OciError } from '../oci/errors.ts';
import { API_VERSION_HEADER } from '../http/respond.ts';
import { upstreamOf, type HandlerContext, type RequestNote } from './context.ts';

export async function handleManifest(
  ctx: HandlerContext,
  route: { upstream: string; repo: string; reference: string; scope?: string },
  req: IncomingMessage,
  res: ServerResponse,
  note: RequestNote,
): Promise<void> {
  const upstream = upstreamOf(ctx, route.upstream);
  const method = req.method === 'HEAD' ? 'HEAD' : 'GET';
  const { answer, result } = await ctx.resolver.resolve(route.scope, upstream, route.repo, route.reference, method);
  note.result = result;
  note.digest = answer.digest;
  res.writeHead(200, {
    ...API_VERSION_HEADER,
    'content-type': answer.mediaType,
    'content-length': answer.size,
    'docker-content-digest': answer.digest,
    etag: `"${answer.digest}"`,
  });
  if (method === 'HEAD') {
    res.end();
    return;
  }
  if (!answer.body) throw new OciError('UNKNOWN', 'manifest body unavailable');
  res.end(answer.body);
  ctx.metrics.servedBytes.labels(route.upstream, result === 'miss' ? 'upstream' : 'cache').inc(answer.size);
}
